"""Virtual-clock runs repeat exactly: the same graph gives the same event log and the same bytes in every file.

Every graph in ``graphs/`` runs twice through the ``mediagraph`` command on the virtual clock, in separate
processes with different hash seeds (``PYTHONHASHSEED``: the order of sets of strings), each on a fresh copy
of the folder so that what it writes lands in the copy. The two runs of a graph use the same place one after
the other, since the log names the files written by their absolute path; different graphs run at once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

import mediagraph as mg
import mediagraph._clock
from mediagraph._cli import main

GRAPHS = Path(__file__).resolve().parents[2] / "graphs"
SCRIPT = shutil.which("mediagraph", path=str(Path(sys.executable).parent))
COMMAND = [SCRIPT] if SCRIPT else [sys.executable, "-m", "mediagraph"]
HASH_SEEDS = ("1", "2")

#: The ready-made graphs that run on the virtual clock: not those talking to a network service (nova_sonic, a
#: LiveKit room), which run on the real clock against a stand-in (tests/nodes/test_nova_sonic.py, test_livekit_room.py).
NETWORK = ("type: nova_sonic", "type: livekit_room")
VIRTUAL = [p for p in sorted(GRAPHS.glob("*.yaml")) if not any(s in p.read_text() for s in NETWORK)]
#: case -> (graph file, extra arguments of ``mediagraph run``)
CASES: dict[str, tuple[str, tuple[str, ...]]] = {p.name: (p.name, ()) for p in VIRTUAL}
CASES["fan_out_fan_in.yaml --duration 2"] = ("fan_out_fan_in.yaml", ("--duration", "2"))
CASES["noisy_speech_demo.yaml --duration 2"] = ("noisy_speech_demo.yaml", ("--duration", "2"))


@attrs.frozen
class Run:
    status: int
    stderr: str
    events: bytes
    outputs: dict[str, bytes]  # path under graphs/out -> content

    def log(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.events.decode().splitlines()]


def run_twice(graph: str, args: tuple[str, ...], root: Path) -> tuple[Run, ...]:
    runs = []
    for seed in HASH_SEEDS:
        copy = root / "graphs"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(GRAPHS, copy, ignore=shutil.ignore_patterns("out"))
        events = root / "events.jsonl"
        done = subprocess.run(
            [*COMMAND, "run", f"graphs/{graph}", "--clock", "virtual", "--events", str(events), *args],
            cwd=root,
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        out = copy / "out"
        files = sorted(p for p in out.rglob("*") if p.is_file())
        outputs = {str(p.relative_to(out)): p.read_bytes() for p in files}
        runs.append(Run(done.returncode, done.stderr, events.read_bytes() if events.exists() else b"", outputs))
    return tuple(runs)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Future[tuple[Run, ...]]]]:
    """Every case's two runs, started at once for the whole module (two at a time: two cores)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            case: pool.submit(run_twice, graph, args, tmp_path_factory.mktemp("determinism"))
            for case, (graph, args) in CASES.items()
        }
        yield futures
        for future in futures.values():
            future.cancel()


def first_difference(a: bytes, b: bytes) -> str:
    lines = zip(a.decode(errors="replace").splitlines(), b.decode(errors="replace").splitlines(), strict=False)
    for number, (x, y) in enumerate(lines, 1):
        if x != y:
            return f"line {number}:\n  {x}\n  {y}"
    return f"one is a prefix of the other ({len(a)} and {len(b)} bytes)"


@pytest.mark.parametrize("case", CASES)
def test_a_graph_on_the_virtual_clock_repeats_event_for_event_and_byte_for_byte(
    case: str, pairs: dict[str, Future[tuple[Run, ...]]]
) -> None:
    first, second = pairs[case].result()
    assert first.status == 0, first.stderr
    assert second.status == 0, second.stderr
    log = first.log()
    assert log[0]["event"] == "graph_started"
    assert log[-1]["event"] == "graph_finished"
    assert first.events == second.events, first_difference(first.events, second.events)
    assert first.stderr == second.stderr, first_difference(first.stderr.encode(), second.stderr.encode())
    if "type: recorder" in (GRAPHS / CASES[case][0]).read_text():
        assert first.outputs, "the recorder wrote nothing"
    assert first.outputs.keys() == second.outputs.keys()
    for name, content in first.outputs.items():
        assert content == second.outputs[name], f"{name} differs"


def sink_total(run: Run) -> dict[str, Any]:
    return next(e for e in run.log() if e["event"] == "sink_total")


def test_a_stop_at_graph_time_t_ends_the_media_at_t(pairs: dict[str, Future[tuple[Run, ...]]]) -> None:
    """A stop at 2.5 s (the schedule) or 2 s (``--duration``) falls on a frame's due time: that frame and
    every later one are never sent. 16 kHz through two branches: 2 x 16,000 samples a second; the recorder
    writes 48,000 a second."""
    scheduled, _ = pairs["fan_out_fan_in.yaml"].result()
    timed, _ = pairs["fan_out_fan_in.yaml --duration 2"].result()
    assert (sink_total(scheduled)["frames"], sink_total(scheduled)["samples"]) == (500, 80_000)
    assert (sink_total(timed)["frames"], sink_total(timed)["samples"]) == (400, 64_000)
    stops = [(e["t"], e["by"]) for e in timed.log() if e["event"] == "stop_requested"]
    assert stops == [(2.0, "duration")]
    # The figure: 96,000 samples or 96,480 from run to run; 2 s at 48 kHz is 96,000.
    recorded, _ = pairs["noisy_speech_demo.yaml --duration 2"].result()
    assert [e["written"] for e in recorded.log() if e["event"] == "recording_finished"] == [96_000]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(("args", "samples"), [((), 80_000), (("--duration", "2"), 64_000)])
def test_the_stop_comes_before_the_frame_due_at_its_time_in_any_schedule_order(
    seed: int, args: tuple[str, ...], samples: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever order the scheduler gives the tasks woken at 2.5 s (the schedule, the pacer), the stop acts
    first: the pacer lets a scheduling pass go by before releasing the frames due at that time."""
    monkeypatch.setattr(mediagraph._clock, "SCHEDULING_SEED", seed)
    events = tmp_path / "events.jsonl"
    graph = GRAPHS / "fan_out_fan_in.yaml"  # writes no file
    assert main(["run", str(graph), "--clock", "virtual", "--events", str(events), *args]) == 0
    log = [json.loads(line) for line in events.read_text().splitlines()]
    assert next(e for e in log if e["event"] == "sink_total")["samples"] == samples


async def interleaving() -> list[tuple[int, int]]:
    """Which task ran when: five tasks, each checkpointing twenty times."""
    trace: list[tuple[int, int]] = []

    async def step(task: int) -> None:
        for i in range(20):
            trace.append((task, i))
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        for task in range(5):
            nursery.start_soon(step, task)
    return trace


def test_run_virtual_gives_tasks_the_same_order_every_run(monkeypatch: pytest.MonkeyPatch) -> None:
    switch = getattr(trio._core._run, "_ALLOW_DETERMINISTIC_SCHEDULING")  # noqa: B009 - a private name
    state = trio._core._run._r.getstate()
    traces = {tuple(mg.run_virtual(interleaving)) for _ in range(5)}
    assert len(traces) == 1
    # Not the one order trio happens to take: another seed orders the same tasks otherwise, as repeatably.
    monkeypatch.setattr(mediagraph._clock, "SCHEDULING_SEED", 1)
    other = {tuple(mg.run_virtual(interleaving)) for _ in range(5)}
    assert len(other) == 1
    assert other != traces
    # trio is left as it was found.
    assert getattr(trio._core._run, "_ALLOW_DETERMINISTIC_SCHEDULING") == switch  # noqa: B009
    assert trio._core._run._r.getstate() == state


async def slot_run() -> list[tuple[float, str | None, str, tuple[tuple[str, Any], ...]]]:
    """A tone into a slot: the slot starts its child in its own task while the runtime starts the tone."""
    g = mg.Graph("api")
    g.add("tone", "tone_source", duration=0.5)
    g.add("out", "slot", child={"type": "speaker"})
    g.link("tone.audio", "out.audio")
    result = await mg.run(g)
    return [(e.t, e.node, e.event, tuple(sorted(e.fields.items()))) for e in result.log]


def test_a_graph_run_through_the_api_with_run_virtual_repeats() -> None:
    logs = [mg.run_virtual(slot_run) for _ in range(10)]
    assert {"out/child1", "tone"} <= {node for _, node, event, _ in logs[0] if event == "node_started"}
    assert all(log == logs[0] for log in logs)
