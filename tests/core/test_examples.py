"""Every program in examples/ runs, on the mock clock, and does what its docstring says."""

import importlib.util
import types
from pathlib import Path

import trio
import trio.testing

import mediagraph as mg

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_example_is_tested() -> None:
    # livekit_agent_job: tests/nodes/test_livekit_job.py (it needs the livekit-agents extra)
    assert sorted(p.stem for p in EXAMPLES.glob("*.py")) == [
        "custom_node",
        "hot_swap",
        "livekit_agent_job",
        "property_test",
    ]


def test_hot_swap(tmp_path: Path) -> None:
    example = load("hot_swap")
    result: mg.GraphResult = trio.run(
        example.main, tmp_path / "rec.wav", clock=trio.testing.MockClock(autojump_threshold=0)
    )
    assert [e.fields["policy"] for e in result.log.of("swap_started", "out")] == ["cut", "boundary"]
    finished = result.log.of("playback_finished", "out")
    assert finished[0].fields["interrupted"]
    assert (tmp_path / "rec.wav").stat().st_size > 44
    assert result.reason == "completed"


def test_custom_node(capsys: object) -> None:
    example = load("custom_node")
    result: mg.GraphResult = trio.run(example.main, clock=trio.testing.MockClock(autojump_threshold=0))
    levels = [e.fields for e in result.log.of("level", "meter")]
    assert [lv["seconds"] for lv in levels] == [1.0, 1.0, 0.5]
    assert all(lv["peak_dbfs"] == -12.0 for lv in levels)  # amplitude 0.25


def test_property_test() -> None:
    load("property_test").main()
