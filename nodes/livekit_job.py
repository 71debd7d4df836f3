"""A graph as a LiveKit Agents job: :func:`run_graph_job`, called from a ``livekit-agents`` entrypoint.

Theory of operation. A job's entrypoint runs on the job's asyncio loop, and its room (``ctx.room``) lives
there: every SDK object made for that room (streams, sources, the publishing) must be made and used on that
loop. So the graph's ``livekit_room`` resource is replaced by one wrapping ``ctx.room`` on the job's loop
(``LivekitRoomConfig(connected=..., connected_loop=...)``, which hosts its calls there with
``mg.AsyncioLoop.adopt`` and never connects or disconnects the job's room), and trio runs the graph in a
thread of its own (``trio.run``), next to the job's loop rather than on it:

- the bridge's waits stay what they are everywhere else (a trio thread waiting on a loop thread), including
  the blocking ones of a resource's synchronous close, which in trio's guest mode on the job's loop would
  block the very loop they wait for;
- nodes' own CPU work (resampling, noise suppression, file writing) never stalls the job's loop, which
  carries the room's media and the agents framework's own tasks.

The job ends with the graph: when the graph has finished (completed, or stopped because the room
disconnected) the adapter calls ``ctx.shutdown("graph finished")`` (a job does not end when its entrypoint
returns). A graph that fails raises its :class:`mediagraph.NodeFailedError` (``node 'NAME' failed: ...``)
out of the entrypoint, which ``livekit-agents`` logs (``unhandled exception while running the job task``) and
ends the job with ("job crashed"). The room disconnecting stops the graph gracefully; the entrypoint task
being cancelled (what the job runner does to an entrypoint still running 15 s after a shutdown, or on a
process shutdown) cancels it, waits for it within ``cleanup_timeout`` + 1 s, and goes on being cancelled.
``livekit-agents`` 1.8 gives an entrypoint no other sign of a shutdown request.

``livekit.agents`` is an optional extra (``pip install 'mediagraph[livekit-agents]'``); this module never
imports it (the node library is imported by every graph): the job context is used through its public
attributes only (``room``, ``connect()``, ``shutdown()``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, final

import attrs
import outcome
import trio

import mediagraph as mg

from .livekit_room import LivekitRoomConfig

if TYPE_CHECKING:
    import asyncio

__all__ = ["run_graph_job"]

logger = logging.getLogger("mediagraph.livekit_job")


async def run_graph_job(
    ctx: Any,
    graph: mg.Graph | mg.GraphFile | str | os.PathLike[str],
    *,
    room: str = "room",
    log: mg.EventLog | None = None,
    cleanup_timeout: float = 5.0,
    **load_kwargs: Any,
) -> mg.GraphResult:
    """Run ``graph`` as the job of ``ctx`` (a ``livekit.agents.JobContext``), on the job's room; see the
    module doc. Call it from the job's entrypoint (``async def entrypoint(ctx): await run_graph_job(ctx,
    "graphs/livekit_agent.yaml")``).

    Args:
        ctx: the job's context; its room is connected here (``ctx.connect()``, a no-op when already done).
        graph: a graph, a loaded graph file (its schedule runs too), or the path of one.
        room: the name of the graph's ``livekit_room`` resource that becomes the job's room.
        log: the event log to record into.
        cleanup_timeout: seconds the graph's nodes may take to clean up when it is cancelled.
        load_kwargs: for a path, :func:`mediagraph.load_graph`'s keyword arguments (``overrides``...).

    Returns:
        How the graph ended, after ``ctx.shutdown("graph finished")`` was called.

    Raises:
        mg.GraphDefinitionError: the graph is invalid or has no ``livekit_room`` resource named ``room``.
        mg.NodeFailedError: a node failed (the job fails with it; the message names the node).
    """
    import asyncio

    job = _job_graph(graph, room, load_kwargs)
    await ctx.connect()
    loop = asyncio.get_running_loop()
    spec = job.graph.resources[room]
    config = attrs.evolve(spec.config, connected=ctx.room, connected_loop=loop)
    resources = {**job.graph.resources, room: mg.ResourceSpec(name=room, type=spec.type, config=config)}
    running = _GraphThread(_with_resources(job.graph, resources), job.schedule, log, cleanup_timeout)

    def on_disconnected(*_: Any) -> None:  # on the job's loop
        running.request("stop")

    ctx.room.on("disconnected", on_disconnected)
    done: asyncio.Future[outcome.Outcome[mg.GraphResult]] = loop.create_future()
    thread = threading.Thread(target=running.run, args=(loop, done), name="mediagraph-job", daemon=True)
    logger.info("job %s: graph %r starting on room %r", _job_id(ctx), job.graph.name, getattr(ctx.room, "name", ""))
    thread.start()
    try:
        ended = await asyncio.shield(done)
    except asyncio.CancelledError:
        running.request("cancel")
        await asyncio.wait([done], timeout=cleanup_timeout + 1.0)
        raise
    finally:
        ctx.room.off("disconnected", on_disconnected)
    try:
        result = ended.unwrap()
    except mg.NodeFailedError as exc:
        logger.info("job %s: graph %r failed: %s", _job_id(ctx), job.graph.name, exc)
        raise
    logger.info("job %s: graph %r %s", _job_id(ctx), job.graph.name, result.reason)
    ctx.shutdown("graph finished")
    return result


@final
@attrs.frozen
class _JobGraph:
    graph: mg.Graph
    schedule: tuple[mg.ScheduledAction, ...] = ()


def _job_graph(graph: mg.Graph | mg.GraphFile | str | os.PathLike[str], room: str, load: dict[str, Any]) -> _JobGraph:
    if isinstance(graph, str | os.PathLike):
        graph = mg.load_graph(Path(graph), **load)
    elif load:
        raise TypeError(f"run_graph_job: {sorted(load)} are for loading a graph file, and a graph was given")
    found = _JobGraph(graph.graph, tuple(graph.schedule)) if isinstance(graph, mg.GraphFile) else _JobGraph(graph)
    spec = found.graph.resources.get(room)
    if spec is None or not isinstance(spec.config, LivekitRoomConfig):
        rooms = sorted(n for n, s in found.graph.resources.items() if isinstance(s.config, LivekitRoomConfig))
        raise mg.GraphDefinitionError(
            f"graph {found.graph.name!r} has no livekit_room resource {room!r} to be the job's room"
            + (f" (its livekit_room resources: {', '.join(rooms)})" if rooms else "")
        )
    return found


def _with_resources(graph: mg.Graph, resources: dict[str, mg.ResourceSpec]) -> mg.Graph:
    """``graph`` with other resources (the caller's graph is left as it was)."""
    copy = mg.Graph(graph.name)
    copy.resources = resources
    copy.nodes = dict(graph.nodes)
    copy.links = list(graph.links)
    return copy


def _job_id(ctx: Any) -> str:
    return str(getattr(getattr(ctx, "job", None), "id", "?"))


@final
class _GraphThread:
    """The graph under ``trio.run`` in its own thread; stop and cancel requests come from the job's loop."""

    def __init__(
        self,
        graph: mg.Graph,
        schedule: tuple[mg.ScheduledAction, ...],
        log: mg.EventLog | None,
        cleanup_timeout: float,
    ) -> None:
        self.graph = graph
        self.schedule = schedule
        self.log = log
        self.cleanup_timeout = cleanup_timeout
        self.requested: str | None = None  # "stop" or "cancel"
        self._lock = threading.Lock()
        self._token: trio.lowlevel.TrioToken | None = None
        self._running: mg.RunningGraph | None = None

    def __repr__(self) -> str:
        return f"<graph job {self.graph.name!r} requested={self.requested}>"

    def run(self, loop: asyncio.AbstractEventLoop, done: asyncio.Future[outcome.Outcome[mg.GraphResult]]) -> None:
        ended = outcome.capture(trio.run, self._main)
        try:
            loop.call_soon_threadsafe(lambda: None if done.done() else done.set_result(ended))
        except RuntimeError:  # the job's loop is closed: nobody waits any more
            logger.warning("graph %r ended after its job: %s", self.graph.name, ended)

    def request(self, what: str) -> None:
        """Stop (gracefully) or cancel the graph, from any thread; a cancel overrides a stop."""
        with self._lock:
            if self.requested != "cancel":
                self.requested = what
            token = self._token
        if token is not None:
            with contextlib.suppress(trio.RunFinishedError):  # it has ended: nothing to stop
                token.run_sync_soon(self._apply)

    async def _main(self) -> mg.GraphResult:
        async with mg.open_runtime() as runtime:
            self._running = await runtime.start(self.graph, log=self.log, cleanup_timeout=self.cleanup_timeout)
            with self._lock:
                self._token = trio.lowlevel.current_trio_token()
            self._apply()  # a request that came while it started
            async with trio.open_nursery() as nursery:
                if self.schedule:
                    nursery.start_soon(mg.run_schedule, self.schedule, self._running)
                await self._running.wait_finished()
                nursery.cancel_scope.cancel()
            return await self._running.wait()

    def _apply(self) -> None:  # in the trio thread
        if self._running is None:
            return
        if self.requested == "cancel":
            self._running.cancel()
        elif self.requested == "stop":
            self._running.stop()
