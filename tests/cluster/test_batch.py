"""Batches and serving on the local pool: each input's overrides from templates, outputs per input (two inputs
writing one file are refused before anything runs), a corrupt input failed on its own while the others go on,
``fail_fast``, and ``serve`` keeping N sessions up: a session that completes is replaced, one that fails is
restarted by its policy, then reported, and its place stays empty."""

from __future__ import annotations

import functools
import wave
from pathlib import Path

import numpy as np
import pytest
import trio

import mediagraph as mg
from mediagraph.cluster import (
    RestartPolicy,
    ServeReport,
    SessionSpec,
    Watch,
    expand_inputs,
    open_pool,
    plan_batch,
    run_batch,
    serve,
    substitute,
)

ROOT = Path(__file__).resolve().parents[2]
DENOISE = ROOT / "graphs" / "denoise_file.yaml"
TONE = ROOT / "graphs" / "tone_demo.yaml"
SETS = ("source.path={file}", "cleaned.path={dir}/out/{stem}.wav")

FAILING = """
plugins: [mediagraph.testing]
nodes:
  bad: {type: test_source, count: 100, paced: true, period: 0.01, fault: {at: 20, action: raise}}
  sink: test_sink
links:
  - bad.out -> sink.in
"""


def recordings(folder: Path, count: int, *, corrupt: int | None = None) -> list[Path]:
    """``count`` short WAV files of different tones (one of them garbage)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"call{i}.wav"
        if i == corrupt:
            path.write_bytes(b"RIFF not really a wave file")
        else:
            t = np.arange(16000 // 2) / 16000
            samples = (8000 * np.sin(2 * np.pi * (300 + 100 * i) * t)).astype(np.int16)
            with wave.open(str(path), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(16000)
                w.writeframes(samples.tobytes())
        paths.append(path)
    return paths


def test_templates_give_each_input_its_own_values_as_strings(tmp_path: Path) -> None:
    odd = tmp_path / "a: b #1.wav"
    assert substitute("mic.path={file}", odd, 3) == f'mic.path="{odd.absolute()}"'
    assert substitute("rec.path=out/{stem}-{index}.ogg", odd, 3) == 'rec.path="out/a: b #1-3.ogg"'
    assert substitute("tone.frequency=440", odd, 3) == "tone.frequency=440"  # no placeholder: left as it was
    override = mg.Override.parse(substitute("mic.path={file}", odd, 3))
    assert override.value == str(odd.absolute()), "a path with ': ' and '#' stays a path"
    with pytest.raises(mg.GraphDefinitionError, match=r"unknown placeholder \{stme\} \(known: \{file\}, \{stem\}"):
        substitute("rec.path=out/{stme}.ogg", odd, 0)
    with pytest.raises(mg.GraphDefinitionError, match="literal brace"):
        substitute("rec.path=out/{stem.ogg", odd, 0)


def test_inputs_expand_sorted_once_each_and_a_pattern_naming_nothing_is_an_error(tmp_path: Path) -> None:
    paths = recordings(tmp_path / "rec", 12)
    (tmp_path / "rec" / "sub").mkdir()
    assert expand_inputs([f"{tmp_path}/rec/*.wav", f"{tmp_path}/rec/call1.wav"]) == paths, "call2 before call10"
    with pytest.raises(mg.GraphDefinitionError, match=r"--over .*\*\.ogg: no file matches"):
        expand_inputs([f"{tmp_path}/rec/*.ogg"])


def test_two_inputs_writing_one_file_are_refused_before_anything_runs(tmp_path: Path) -> None:
    paths = recordings(tmp_path / "rec", 2)
    with pytest.raises(mg.GraphDefinitionError, match=r"call0\.wav' and '.*call1\.wav' would both write .*same\.wav"):
        plan_batch(DENOISE, paths, ["source.path={file}", f"cleaned.path={tmp_path}/same.wav"])
    assert not (tmp_path / "same.wav").exists()


async def test_a_batch_runs_every_input_and_a_corrupt_one_fails_alone(tmp_path: Path) -> None:
    paths = recordings(tmp_path / "rec", 4, corrupt=2)
    plan = plan_batch(DENOISE, paths, SETS, output_dirs=[tmp_path])
    assert [item.state for item in plan.items] == ["pending", "pending", "failed", "pending"]
    assert "node 'source' (file_source)" in str(plan.items[2].error), "the corrupt input fails naming the node"
    seen: list[tuple[int, str]] = []
    with trio.fail_after(60):
        async with open_pool(processes=2, clock="virtual", sessions_per_worker=1) as pool:
            await run_batch(pool, plan, parallel=2, on_update=lambda item: seen.append((item.index, item.state)))
    assert [item.state for item in plan.items] == ["ok", "ok", "failed", "ok"]
    for item in plan.items:
        assert (item.index, item.state) in seen
        if item.state == "ok":
            (output,) = item.outputs
            assert output == tmp_path / "rec" / "out" / f"{item.path.stem}.wav"
            with wave.open(str(output)) as w:  # finalized, the whole input (0.5 s at the file's rate)
                assert w.getnframes() == pytest.approx(w.getframerate() * 0.5, abs=w.getframerate() * 0.011)


async def test_fail_fast_skips_what_had_not_run(tmp_path: Path) -> None:
    paths = recordings(tmp_path / "rec", 4, corrupt=0)
    plan = plan_batch(DENOISE, paths, SETS, output_dirs=[tmp_path])
    with trio.fail_after(60):
        async with open_pool(processes=1, clock="virtual", sessions_per_worker=1) as pool:
            await run_batch(pool, plan, parallel=1, fail_fast=True)
    assert [item.state for item in plan.items] == ["failed", "skipped", "skipped", "skipped"]


async def test_serve_replaces_completed_sessions_and_reports_a_failure_after_its_restarts(tmp_path: Path) -> None:
    notes: list[str] = []
    stopping = trio.Event()

    def note(line: str) -> None:
        notes.append(line)
        if sum("another takes its place" in n for n in notes) == 4:  # each tone session completes after 0.5 s
            stopping.set()

    report = ServeReport()
    tone = SessionSpec.from_file(TONE, sets=["tone.duration=0.5"])
    restart = RestartPolicy.on_failure(max_restarts=2, backoff=0.01)
    failing = SessionSpec(graph_text=FAILING, base_dir=str(tmp_path), restart=restart)
    with trio.fail_after(60):
        async with open_pool(processes=2) as pool, trio.open_nursery() as nursery:
            nursery.start_soon(
                functools.partial(serve, pool, tone, sessions=2, stopping=stopping, note=note, report=report)
            )
            failed = await serve(pool, failing, sessions=1, stopping=stopping, note=note)
    assert report.ended >= 5 and report.started == report.ended and not report.failures, report
    (failure,) = failed.failures
    assert "node 'bad' (test_source)" in failure and "after 2 restarts" in failure, failure
    assert f"{failure} (place 0 stays empty)" in notes
    assert failed.started == 1, "restarts are the pool's (by policy), not new sessions"


def test_watch_says_what_changed() -> None:
    from mediagraph.cluster import PoolStatus, SessionStatus

    def status(state: str, restarts: int) -> PoolStatus:
        session = SessionStatus(
            session="s1", state=state, attempt=restarts + 1, restarts=restarts, worker=0, where="pid 7"
        )
        return PoolStatus(engine="local", sessions=(session,), workers=())

    watch = Watch()
    assert watch.changes(status("running", 0)) == []
    assert watch.changes(status("pending", 1)) == ["session 's1' restarted (restart 1, attempt 2)"]
    assert watch.changes(status("lost", 1)) == ["session 's1' lost (pid 7)"]
