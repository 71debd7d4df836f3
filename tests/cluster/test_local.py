"""The local engine with real worker processes: sessions by id, events back in order, failures by name,
a worker killed under its sessions, a pool's bounded end."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import av
import pytest
import trio

from mediagraph.cluster import (
    CommandRefused,
    PoolError,
    RestartPolicy,
    SessionEvent,
    SessionFailed,
    SessionResult,
    SessionSpec,
    WorkerLost,
    open_pool,
    run_sessions,
)

ROOT = Path(__file__).resolve().parents[2]
TONE = ROOT / "graphs" / "tone_demo.yaml"

ENDLESS = """
nodes:
  tone: {type: tone_source}
  out: {type: slot, child: {type: speaker, device: virtual}}
links:
  - tone.audio -> out.audio
"""

FAILING = """
plugins: [mediagraph.testing]
nodes:
  tone: {type: tone_source}
  rec: {type: recorder, path: heard.wav}
  bad: {type: test_source, count: 100, paced: true, period: 0.01, fault: {at: 20, action: raise}}
  sink: test_sink
links:
  - tone.audio -> rec.user
  - tone.audio -> rec.agent
  - bad.out -> sink.in
"""


def text_spec(text: str, base: Path, **kwargs: object) -> SessionSpec:
    return SessionSpec(graph_text=text, base_dir=str(base), name="g", **kwargs)  # type: ignore[arg-type]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def collect(stream: object) -> list[SessionEvent]:
    return [e async for e in stream]  # type: ignore[attr-defined]


async def test_sessions_run_on_both_workers_with_their_own_overrides_and_events_in_order() -> None:
    async with open_pool(processes=2, clock="virtual") as pool:
        everything = pool.events()
        durations = [1, 2, 3, 4]
        ids = [await pool.start(SessionSpec.from_file(TONE, sets=[f"tone.duration={d}"])) for d in durations]
        assert ids == ["s1", "s2", "s3", "s4"]
        results = [await pool.result(s) for s in ids]
        for session, result, seconds in zip(ids, results, durations, strict=True):
            assert result.reason == "completed" and result.restarts == 0
            assert result.statistics["sink"].frames_in == seconds * 100
            events = await collect(pool.events(session))  # its history, then its end
            assert [e.seq for e in events] == list(range(len(events)))
            assert (events[0].event, events[-1].event) == ("graph_started", "graph_finished")
            (total,) = [e for e in events if e.event == "sink_total"]
            assert total.fields["seconds"] == seconds
        assert len({r.pid for r in results}) == 2  # least loaded first: both workers took sessions
        assert pool.status().count("finished") == 4
    # the stream of every session ends with the pool and saw each session's events in their order
    seen = await collect(everything)
    for session in ids:
        assert [e.seq for e in seen if e.session == session] == list(range(9))


async def test_stop_cancel_and_refusals_by_id(tmp_path: Path) -> None:
    async with open_pool(processes=1) as pool:
        first = await pool.start(text_spec(ENDLESS, tmp_path))
        second = await pool.start(text_spec(ENDLESS, tmp_path))
        await pool.stop(first)
        await pool.cancel(second)
        assert (await pool.result(first)).reason == "stopped"
        assert (await pool.result(second)).reason == "cancelled"
        with pytest.raises(CommandRefused, match=r"^session 's1': it has finished; there is nothing to interrupt$"):
            await pool.interrupt(first, "out")
        with pytest.raises(CommandRefused, match=r"^session 's7': no such session in this pool"):
            await pool.stop("s7")
        with pytest.raises(CommandRefused, match="no such session"):
            await pool.result("s7")
        pool.forget(first)
        with pytest.raises(CommandRefused, match=r"^session 's1': no such session in this pool \(known: s2\)$"):
            await pool.result(first)


async def test_interrupt_and_swap_reach_the_graph_and_its_refusals_come_back(tmp_path: Path) -> None:
    async with open_pool(processes=1) as pool:
        session = await pool.start(text_spec(ENDLESS, tmp_path))
        with pool.events(session) as events:
            await pool.interrupt(session, "out")
            await pool.swap(session, "out", "{type: speaker, device: virtual, block_ms: 20}")
            with pytest.raises(CommandRefused, match=r"^session 's1': graph 'g' has no node 'nope'"):
                await pool.interrupt(session, "nope")
            with pytest.raises(CommandRefused, match=r"^session 's1': .*'no_such_type'"):
                await pool.swap(session, "out", {"type": "no_such_type"})
            await pool.stop(session)
            seen = [(e.node, e.event) async for e in events]
        assert seen.index(("out", "interrupt_requested")) < seen.index(("out", "swap_started"))
        assert seen.index(("out", "swap_finished")) < seen.index((None, "stop_requested"))
        assert ("out/child2", "node_started") in seen and seen[-1] == (None, "graph_finished")
        assert (await pool.result(session)).reason == "stopped"


async def test_a_failing_node_is_named_and_the_recorder_beside_it_finalizes(tmp_path: Path) -> None:
    async with open_pool(processes=1) as pool:
        session = await pool.start(text_spec(FAILING, tmp_path))
        with pytest.raises(SessionFailed) as caught:
            await pool.result(session)
    error = caught.value
    assert str(error).startswith("session 's1': node 'bad' (test_source) failed: InjectedFault: ")
    assert (error.node, error.node_type, error.error_type) == ("bad", "test_source", "InjectedFault")
    assert not (tmp_path / "heard.wav.part").exists()
    with av.open(str(tmp_path / "heard.wav")) as container:
        samples = sum(frame.samples for frame in container.decode(audio=0))
    assert samples > 0


async def test_an_invalid_graph_fails_its_start_with_the_location(tmp_path: Path) -> None:
    spec = text_spec("nodes:\n  mic: {type: file_source, path: missing.wav}\n", tmp_path, filename="batch.yaml")
    async with open_pool(processes=1) as pool:
        with pytest.raises(SessionFailed, match=r"^session 's1': batch.yaml:2:\d+: error: .*missing.wav") as caught:
            await pool.start(spec)
        assert caught.value.definition and caught.value.node == "mic"
        with pytest.raises(PoolError, match="node='node_a' is for engine='ray'"):
            await pool.start(text_spec(ENDLESS, tmp_path, node="node_a"))


async def test_a_killed_worker_fails_only_its_sessions_and_is_replaced(tmp_path: Path) -> None:
    async with open_pool(processes=2) as pool:
        doomed = await pool.start(text_spec(ENDLESS, tmp_path))
        survivor = await pool.start(text_spec(ENDLESS, tmp_path))
        restarted = await pool.start(text_spec(ENDLESS, tmp_path, restart=RestartPolicy.on_failure(backoff=0)))
        status = {s.session: s for s in pool.status().sessions}
        assert status[doomed].worker == status[restarted].worker != status[survivor].worker
        pid = next(w.pid for w in pool.status().workers if w.worker == status[doomed].worker)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(WorkerLost) as caught:
            await pool.result(doomed)
        assert str(caught.value) == (
            f"session 's1': worker process {pid} exited with signal 9 (SIGKILL) while running it"
        )
        assert caught.value.pid == pid and caught.value.signal == signal.SIGKILL
        await pool.wait_workers(2)
        assert pid not in {w.pid for w in pool.status().workers}
        await pool.stop(survivor)
        assert (await pool.result(survivor)).reason == "stopped"
        with pool.events(restarted) as events:
            async for event in events:
                if event.attempt == 2 and event.event == "graph_started":
                    break
        await pool.stop(restarted)
        result = await pool.result(restarted)
        assert result.reason == "stopped" and result.restarts == 1
        assert result.failures == (f"worker process {pid} exited with signal 9 (SIGKILL) while running it",)
    assert gone(pid)


async def test_restarts_follow_the_policy_then_the_failure_is_final(tmp_path: Path) -> None:
    spec = text_spec(FAILING, tmp_path, restart=RestartPolicy.on_failure(max_restarts=2, backoff=0.01))
    async with open_pool(processes=1) as pool:
        session = await pool.start(spec)
        with pytest.raises(SessionFailed, match="node 'bad'") as caught:
            await pool.result(session)
        assert caught.value.restarts == 2
        attempts = {e.attempt for e in await collect(pool.events(session))}
        assert attempts == {1, 2, 3}


async def test_leaving_the_pool_drains_its_sessions_and_reaps_its_workers(tmp_path: Path) -> None:
    async with open_pool(processes=2) as pool:
        for _ in range(3):
            await pool.start(text_spec(ENDLESS, tmp_path))
        pids = [w.pid for w in pool.status().workers]
        streams = [pool.events(s) for s in pool.sessions()]
    for stream in streams:
        assert any(e.event == "stop_requested" for e in await collect(stream))
    assert all(pid is not None and gone(pid) for pid in pids)


class Boom(Exception):
    pass


async def test_an_exception_in_the_block_cancels_the_sessions_bounded(tmp_path: Path) -> None:
    pids: list[int | None] = []
    streams = []

    async def crash() -> None:
        async with open_pool(processes=1) as pool:
            streams.append(pool.events(await pool.start(text_spec(ENDLESS, tmp_path))))
            pids.extend(w.pid for w in pool.status().workers)
            raise Boom

    with trio.fail_after(30), pytest.raises(Boom):
        await crash()
    events = await collect(streams[0])
    assert [e.fields for e in events if e.event == "cancel_requested"] == [{"by": "pool"}]
    assert not any(e.event == "stop_requested" for e in events)
    assert all(pid is not None and gone(pid) for pid in pids)


async def test_a_slow_reader_loses_events_counted_never_silently() -> None:
    async with open_pool(processes=1, clock="virtual", buffer=3) as pool:
        stream = pool.events()  # nobody reads it until the end: it holds 3 events, then counts
        session = await pool.start(SessionSpec.from_file(TONE, sets=["tone.duration=1"]))
        result = await pool.result(session)
    events = await collect(stream)
    assert [e.seq for e in events] == [0, 1, 2, -1]
    assert events[-1].event == "events_dropped" and events[-1].fields["count"] == result.events_dropped == 6


def test_run_sessions_from_synchronous_code(tmp_path: Path) -> None:
    specs = [SessionSpec.from_file(TONE, sets=["tone.duration=2"]), text_spec(FAILING, tmp_path)]
    ok, failed = run_sessions(specs, processes=2, clock="virtual")
    assert isinstance(ok, SessionResult) and ok.reason == "completed"
    assert isinstance(failed, SessionFailed) and failed.node == "bad"


async def test_a_cancelled_block_tears_everything_down(tmp_path: Path) -> None:
    pids: list[int | None] = []
    with trio.move_on_after(60) as outer:
        async with open_pool(processes=2) as pool:
            await pool.start(text_spec(ENDLESS, tmp_path))
            pids.extend(w.pid for w in pool.status().workers)
            outer.cancel()
            await trio.sleep_forever()
    assert outer.cancelled_caught and trio.current_time() < outer.deadline
    assert len(pids) == 2 and all(pid is not None and gone(pid) for pid in pids)


CTRL_C = """
import os, signal, sys, trio
from mediagraph.cluster import SessionSpec, open_pool

async def main():
    async with open_pool(processes=2) as pool:
        await pool.start(SessionSpec(graph_text=sys.argv[1], base_dir=sys.argv[2]))
        print(*(w.pid for w in pool.status().workers), flush=True)
        os.kill(os.getpid(), signal.SIGINT)
        await trio.sleep_forever()

trio.run(main)
"""


async def test_ctrl_c_tears_the_pool_down_and_leaves_no_worker(tmp_path: Path) -> None:
    with trio.fail_after(60):
        done = await trio.run_process(
            [sys.executable, "-c", CTRL_C, ENDLESS, str(tmp_path)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert done.returncode != 0 and b"KeyboardInterrupt" in done.stderr
    pids = [int(p) for p in done.stdout.split()]
    assert len(pids) == 2 and all(gone(pid) for pid in pids)
