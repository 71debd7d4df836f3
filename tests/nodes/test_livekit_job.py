"""A graph as a LiveKit Agents job (``mediagraph.nodes.livekit_job.run_graph_job``), under livekit-agents' own
local job simulation, no server: ``AgentServer.simulate_job(..., fake_job=True)`` with the THREAD executor (the
job's room is the SDK's MagicMock, whose events never fire) runs the real job runner: the graph starts, runs,
finishes, and the job leaves ``active_jobs``; a failing node fails the job (livekit-agents' ERROR record names
the node). ``livekit.agents.testing.fake_job_context(room=...)`` with a fake room whose events fire: the room's
tracks reach livekit_in through the adapter, a disconnect stops the graph, and the example entrypoint runs
graphs/livekit_agent.yaml on it. Each job's asyncio loop runs in a thread of the test (as a worker's would)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import warnings
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast, final

import attrs
import numpy as np
import pytest
import trio

import mediagraph as mg
from mediagraph.testing import Recorder, SinkConfig
from mediagraph.testing.livekit_fakes import FakeRoom, Named

pytest.importorskip(
    "livekit.agents",
    reason="livekit-agents is the optional extra mediagraph[livekit-agents]; tools/test.sh runs this file in "
    ".venv-agents, where it is installed",
)

from livekit import rtc
from livekit.agents import AgentServer, JobContext, JobExecutorType
from livekit.agents.testing import fake_job_context

if TYPE_CHECKING:
    from nodes._stream_metadata import StreamMetadata, StreamMetadataCleared
    from nodes.livekit_job import run_graph_job
else:
    from mediagraph.nodes._stream_metadata import StreamMetadata, StreamMetadataCleared
    from mediagraph.nodes.livekit_job import run_graph_job

#: livekit-agents' fake_job_context makes a JobProcess whose temporary folder nobody cleans up (its runner
#: would): Python warns as the garbage collector does, at some later moment. Not ours to fix.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Implicitly cleaning up <TemporaryDirectory:ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]
ROOT = Path(__file__).resolve().parents[2]
RATE, FRAME = 48000, 480


@contextlib.contextmanager
def records(name: str = "livekit.agents") -> Iterator[list[logging.LogRecord]]:
    """The log records of ``name`` at ERROR and above while the block runs."""
    found: list[logging.LogRecord] = []

    @final
    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            found.append(record)

    handler, logger = Keep(logging.ERROR), logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield found
    finally:
        logger.removeHandler(handler)


@final
@attrs.define
class Simulated:
    seen_job: bool = False
    left: bool = False  # the job came and went from active_jobs
    results: list[mg.GraphResult] = attrs.Factory(list)
    threads: set[str] = attrs.Factory(set)


def simulate_job(graph: Callable[[], mg.Graph], timeout: float = 30) -> Simulated:
    """Run ``graph`` through run_graph_job as a job of ``AgentServer.simulate_job(fake_job=True)`` (blocking)."""
    out = Simulated()

    async def entrypoint(ctx: JobContext) -> None:
        out.threads.add(threading.current_thread().name)
        out.results.append(await run_graph_job(ctx, graph(), log=mg.EventLog()))

    async def harness() -> None:
        server = AgentServer(job_executor_type=JobExecutorType.THREAD, port=0)
        server.rtc_session(entrypoint)
        started = asyncio.Event()
        jobs: list[asyncio.Future[None]] = []

        def on_started() -> None:
            started.set()
            jobs.append(asyncio.ensure_future(server.simulate_job("test-room", fake_job=True)))

        server.once("worker_started", on_started)

        run = asyncio.create_task(server.run(devmode=True, unregistered=True))
        try:
            async with asyncio.timeout(timeout):
                await started.wait()
                while not (out.seen_job and not server.active_jobs):  # the server has no event for it
                    out.seen_job = out.seen_job or bool(server.active_jobs) or bool(out.threads)
                    await asyncio.sleep(0.02)
            out.left = True
        except TimeoutError:
            pass
        finally:
            await server.aclose()
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run

    asyncio.run(harness())
    return out


def tone_to_room() -> mg.Graph:
    g = mg.Graph("job")
    g.add_resource("room", "livekit_room")
    g.add("tone", "tone_source", duration=0.3)
    g.add("agent", "livekit_out", room="room")
    g.link("tone.audio", "agent.audio")
    return g


async def test_a_graph_starts_runs_and_finishes_with_its_simulated_job() -> None:
    with records() as errors:
        out = await trio.to_thread.run_sync(simulate_job, tone_to_room)
    assert out.seen_job and out.left, "the job ended once the graph had (the adapter called ctx.shutdown)"
    (result,) = out.results
    assert result.reason == "completed"
    (published,) = result.log.of("track_published", "agent")
    assert published.fields["room"], "livekit_out published into the job's room"
    assert result.log.of("playback_finished", "agent"), "the tone played through the job's room"
    assert [r.getMessage() for r in errors] == []


def failing() -> mg.Graph:
    g = tone_to_room()
    g.add("asr", "test_source", count=5, fault={"at": 2, "action": "raise"})
    g.add("sink", "test_sink", config=SinkConfig(recorder=Recorder()))
    g.link("asr.out", "sink.in")
    return g


async def test_a_failing_graph_fails_its_simulated_job_naming_the_node() -> None:
    with records() as errors:
        out = await trio.to_thread.run_sync(simulate_job, failing)
    assert out.seen_job and out.left and out.results == []
    (record,) = [r for r in errors if r.getMessage() == "unhandled exception while running the job task"]
    assert record.exc_info is not None
    failure = record.exc_info[1]
    assert isinstance(failure, mg.NodeFailedError) and failure.node == "asr"
    assert str(failure).startswith("node 'asr' failed: InjectedFault")


# --- the adapter against a fake room whose events fire -----------------------------------------------------


async def in_fake_job(
    room: FakeRoom, job: Callable[[JobContext], Awaitable[Any]], drive: Callable[[], Awaitable[None]]
) -> Any:
    """``job(ctx)`` under ``fake_job_context(room=room)`` on an asyncio loop of its own, ``drive()`` beside it."""

    async def main() -> Any:
        with fake_job_context(room=cast(Any, room)) as ctx:
            try:
                task: asyncio.Future[Any] = asyncio.ensure_future(job(ctx))
                await drive()
                async with asyncio.timeout(20):
                    return await task
            finally:
                ctx._tempdir.cleanup()  # livekit-agents never does (see tools/test.sh)

    try:
        return await trio.to_thread.run_sync(asyncio.run, main())
    finally:
        with warnings.catch_warnings():  # the fake job's temporary folder (see pytestmark), now, not in a later test
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


def listener_graph(recorder: Recorder) -> mg.Graph:
    g = mg.Graph("listen")
    g.add_resource("room", "livekit_room")
    g.add("user", "livekit_in", room="room")
    g.add("audio", "test_sink", config=SinkConfig(recorder=recorder))
    g.add("meta", "test_sink", config=SinkConfig(recorder=recorder))
    g.link("user.audio", "audio.in")
    g.link("user.metadata", "meta.in")
    return g


async def test_the_job_room_s_tracks_reach_livekit_in_and_a_disconnect_ends_the_graph() -> None:
    room, recorder = FakeRoom("job-room"), Recorder()

    async def drive() -> None:
        async with asyncio.timeout(20):
            await room.listening.wait()
        source = rtc.AudioSource(RATE, 1, queue_size_ms=200)
        track = rtc.LocalAudioTrack.create_audio_track("mic", source)
        room.emit("track_subscribed", track, Named(sid="TR_user"), Named(identity="alice"))
        for k in range(0, 20 * FRAME, FRAME):
            samples = (np.arange(k, k + FRAME) % 30000 + 1).astype(np.int16)
            await source.capture_frame(rtc.AudioFrame(samples.tobytes(), RATE, 1, FRAME))
        await asyncio.sleep(0.3)  # it plays out in real time
        room.emit("disconnected", "CLIENT_INITIATED")
        await source.aclose()

    result = await in_fake_job(room, lambda ctx: run_graph_job(ctx, listener_graph(recorder)), drive)
    assert result.reason in ("completed", "stopped")
    meta = [a.message for a in recorder.arrivals("meta")]
    assert [type(m) for m in meta] == [StreamMetadata, StreamMetadataCleared]
    assert isinstance(meta[0], StreamMetadata) and (meta[0].room, meta[0].participant) == ("job-room", "alice")
    heard = np.concatenate([a.message.samples[:, 0] for a in recorder.arrivals("audio")])
    marked = heard[heard != 0]
    assert len(marked) >= 15 * FRAME and np.array_equal(marked, np.arange(1, len(marked) + 1))
    ours = ("track_subscribed", "track_unsubscribed", "reconnecting", "reconnected", "token_refreshed")
    assert [room.listeners[e] for e in ours] == [0] * len(ours), f"the resource's handlers went: {room.listeners}"
    assert (room.connects, room.disconnects) == (0, 0), "the job's room is the job's: never connected nor closed"


async def test_the_example_entrypoint_runs_the_livekit_agent_graph_on_the_job_s_room() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("livekit_agent_job", ROOT / "examples" / "livekit_agent_job.py")
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    room = FakeRoom("job-room")

    async def drive() -> None:
        async with asyncio.timeout(20):
            await room.listening.wait()
            while not room.local_participant.published:  # noqa: ASYNC110 - livekit_out published its track
                await asyncio.sleep(0.01)
        room.emit("disconnected", "CLIENT_INITIATED")

    await in_fake_job(room, example.entrypoint, drive)
    (published,) = room.local_participant.published
    assert isinstance(published, rtc.LocalAudioTrack) and published.name == "agent"


async def test_a_cancelled_entrypoint_cancels_the_graph_and_a_missing_room_is_named() -> None:
    room = FakeRoom("job-room")
    g = mg.Graph("forever")
    g.add_resource("room", "livekit_room")
    g.add("user", "livekit_in", room="room")
    g.add("sink", "null_sink")
    g.link("user.audio", "sink.audio")
    ended: list[str] = []

    async def job(ctx: JobContext) -> None:
        task = asyncio.create_task(run_graph_job(ctx, g))
        await room.listening.wait()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            ended.append("cancelled")
        for _ in range(100):  # it ends right after handing its outcome over
            if not [t for t in threading.enumerate() if t.name == "mediagraph-job"]:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the graph's thread did not end")

    async def nothing() -> None:
        pass

    with trio.fail_after(20):
        await in_fake_job(room, job, nothing)
    assert ended == ["cancelled"]
    with pytest.raises(mg.GraphDefinitionError, match="no livekit_room resource 'lk' to be the job's room"):
        await in_fake_job(room, lambda ctx: run_graph_job(ctx, g, room="lk"), nothing)
