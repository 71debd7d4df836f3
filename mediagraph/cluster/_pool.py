"""The session pool: one trio API over the session table and an engine (local processes or Ray).

Theory of operation. :class:`Pool` is a thin shell around the trio-free :class:`SessionTable` (``_core``):
each API call becomes a request of the table, each report of the engine (a worker up or gone, an attempt
started or finished, a reply, events) is fed to it, and the effects it gives back are carried out at once:
``Launch`` and ``Send`` go to the engine, ``Resolve`` wakes the caller waiting on that request. A timer task
feeds the table the time when a restart's backoff ends. Calls answer within a bound: ``stop``, ``cancel``
and ``interrupt`` within ``command_timeout`` (a worker that does not answer is reported), ``swap`` when the
slot has done it or the session ended, ``start`` when the session runs or has ended, ``result`` when it has
ended; a worker lost answers every call waiting on it with :class:`WorkerLost`.

Events. Each session's events go to the streams open on it (:meth:`Pool.events`) and into a history of its
last ``history`` events, which a stream opened later starts with. Nothing is unbounded: a stream holds at
most ``buffer`` events not yet read and drops what comes past that, counting it; the count is delivered in
order as an ``events_dropped`` event. A worker does the same with events the pool does not read fast enough.
Dropping, not blocking, is the policy, so a slow reader never holds up another session's calls.
"""

from __future__ import annotations

import copy
import math
from collections import deque
from collections.abc import Iterator
from typing import Any, Final, Protocol, final

import attrs
import trio

from ._core import SessionTable
from ._errors import CommandRefused
from ._messages import Cancel, Command, Effect, Interrupt, Launch, Loss, Resolve, Send, Stop, Swap
from ._spec import Completed, Failed, PoolStatus, SessionEvent, SessionResult, SessionSpec, WorkerStatus
from ._streams import EventStream, dropped

__all__ = ["Engine", "Pool"]

#: Seconds the sessions still running when the pool closes get to drain once stopped, then to end once cancelled.
DRAIN_TIMEOUT: Final = 10.0
CANCEL_TIMEOUT: Final = 10.0


class Engine(Protocol):
    """Where sessions run: starts workers and reports to the pool (see ``_local`` and ``_ray``)."""

    name: str

    def check(self, spec: SessionSpec) -> None: ...
    async def run(self, task_status: trio.TaskStatus[None] = ...) -> None: ...
    def launch(self, launch: Launch) -> None: ...
    def send(self, send: Send) -> None: ...
    def workers(self) -> list[WorkerStatus]: ...
    async def aclose(self) -> None: ...


@final
@attrs.define
class _Waiter:
    done: trio.Event = attrs.Factory(trio.Event)
    answer: Resolve | None = None


@final
class Pool:
    """A pool of sessions; open one with :func:`~mediagraph.cluster.open_pool`."""

    def __init__(
        self, *, command_timeout: float = 30.0, history: int = 1000, buffer: int = 10_000, capacity: int | None = None
    ) -> None:
        self.table = SessionTable()
        self._capacity = capacity
        self.engine: Engine | None = None
        self._command_timeout = command_timeout
        self._history_size = history
        self._buffer = buffer
        self._waiters: dict[int, _Waiter] = {}
        self._history: dict[str, deque[SessionEvent]] = {}
        self._evicted: dict[str, int] = {}
        self._streams: list[EventStream] = []
        self._changed = trio.lowlevel.ParkingLot()  # unparked whenever the table has changed

    def __repr__(self) -> str:
        engine = self.engine.name if self.engine else "no engine"
        return f"<Pool {engine}: {self.table!r}>"

    # --- the API --------------------------------------------------------------------------------------------

    async def start(self, spec: SessionSpec) -> str:
        """Start a session; its id (``s1``, ``s2``...) once its graph has started in a worker.

        A session waits for a worker with room (``sessions_per_worker``) first, and across restarts.

        Raises:
            SessionFailed: its graph is invalid, or failed while starting (naming the node), and is not to be
                restarted; the session stays in the pool with that result.
            WorkerLost: its worker went away before it started, and it is not to be restarted.
            PoolError: the pool is closed, or the engine cannot run this spec (a Ray ``node`` on the local one).

        Cancellation: the session goes on starting; stop it by id if needed (:meth:`status` lists it).
        """
        assert self.engine is not None
        self.engine.check(spec)
        session, request, effects = self.table.start(spec, trio.current_time())
        if session:
            self._history[session] = deque(maxlen=self._history_size)
        await self._wait(request, effects)
        return session

    async def stop(self, session: str) -> None:
        """Stop a session gracefully (sources stop, mailboxes drain); returns once its worker took the order.
        A session waiting to start or restart ends at once. Await :meth:`result` for the end.

        Raises:
            CommandRefused: no such session, it has ended already, or its worker did not answer in time.
            WorkerLost: its worker went away first.
        """
        await self._command(session, Stop())

    async def cancel(self, session: str) -> None:
        """Cancel every node of a session now (see :meth:`stop` for the rest)."""
        await self._command(session, Cancel())

    async def interrupt(self, session: str, node: str, inlet: str = "audio") -> None:
        """Deliver an ``Interrupt`` to a node of a running session (as the schedule's ``interrupt`` action).

        Raises:
            CommandRefused: no such session, not running, or the graph refused (no such node or inlet, the
                inlet has ended); the message is the graph's.
            WorkerLost: its worker went away first.
        """
        await self._command(session, Interrupt(node, inlet))

    async def swap(self, session: str, slot: str, child: Any, policy: str = "cut") -> None:
        """Replace the child of a slot of a running session, waiting until done (as the schedule's ``swap``).

        Args:
            child: the new child as a node mapping (``{"type": "speaker", "block_ms": 20}``), its YAML text,
                or ``None`` to empty the slot. Its relative paths resolve against the graph's folder.
            policy: ``"cut"`` or ``"boundary"``.

        Raises:
            CommandRefused: no such session, not running, the child is invalid, or the slot ended first.
            WorkerLost: its worker went away first.

        Cancellation: the call stops waiting; the swap, already queued in the slot, still happens.
        """
        await self._command(session, Swap(slot, child, policy), within=math.inf)

    async def result(self, session: str) -> SessionResult:
        """Wait for a session to end; how it ended.

        Raises:
            SessionFailed: its graph failed (the message names the node and its type), finally.
            WorkerLost: its worker (process, Ray actor or node) went away, finally.
            CommandRefused: no such session.
        """
        request, effects = self.table.result(session)
        result: SessionResult = await self._wait(request, effects)
        return result

    def events(self, session: str | None = None) -> EventStream:
        """A stream of a session's events (its last ``history`` first), or of every session's from now on.

        Raises:
            CommandRefused: no such session.
        """
        stream = EventStream(self, session, self._buffer)
        if session is not None:
            if session not in self.table.sessions:
                raise CommandRefused(session, "no such session in this pool")
            evicted = self._evicted.get(session, 0)
            for i, event in enumerate(self._history.get(session, ())):
                stream.put(dropped(event, evicted) if i == 0 and evicted else event)
                if i == 0 and evicted:
                    stream.put(event)
            if not self.table.sessions[session].state.live:
                stream.end()
                return stream
        self._streams.append(stream)
        return stream

    def status(self) -> PoolStatus:
        """Every session's state and every worker's load, now."""
        assert self.engine is not None
        known = self.table.workers  # a local worker's load is the table's; a Ray node's, the engine's count
        workers = tuple(
            attrs.evolve(w, sessions=self.table.load(w.worker)) if w.worker in known else w
            for w in self.engine.workers()
        )
        return PoolStatus(engine=self.engine.name, sessions=tuple(self.table.status()), workers=workers)

    def forget(self, session: str) -> None:
        """Drop an ended session and its event history: a pool serving sessions for days stays bounded.
        Its id is not reused; calls about it are refused from now on.

        Raises:
            CommandRefused: no such session, or it has not ended.
        """
        refused = self.table.forget(session)
        if refused is not None:
            raise refused
        self._history.pop(session, None)
        self._evicted.pop(session, None)

    async def wait_workers(self, count: int) -> None:
        """Wait until at least ``count`` workers are up (a pool replaces a lost worker in the background)."""
        assert self.engine is not None
        while len(self.engine.workers()) < count:
            await self._changed.park()

    def sessions(self) -> Iterator[str]:
        """The ids of every session the pool knows, in the order they were started."""
        return iter(list(self.table.sessions))

    # --- reports from the engine ----------------------------------------------------------------------------

    def worker_up(
        self, worker: int, *, pid: int | None = None, ray_node: str | None = None, unlimited: bool = False
    ) -> None:
        """A worker is ready (``unlimited``: it takes any number of sessions, whatever ``sessions_per_worker``)."""
        capacity = None if unlimited else self._capacity
        self._apply(self.table.add_worker(worker, trio.current_time(), pid=pid, ray_node=ray_node, capacity=capacity))

    def worker_down(self, worker: int, loss: Loss) -> None:
        self._apply(self.table.remove_worker(worker, loss, trio.current_time()))

    def no_workers(self, loss: Loss) -> None:
        self._apply(self.table.abandon_pending(loss))

    def session_started(
        self, session: str, attempt: int, *, where: str = "", pid: int | None = None, ray_node: str | None = None
    ) -> None:
        self._apply(self.table.started(session, attempt, where=where, pid=pid, ray_node=ray_node))

    def session_events(self, session: str, attempt: int, batch: list[tuple[Any, ...]]) -> None:
        history = self._history.get(session)
        if history is None:
            return
        for seq, t, node, name, fields in batch:
            event = SessionEvent(
                session=session, attempt=attempt, seq=seq, time=t, node=node, event=name, fields=fields
            )
            if name == "events_dropped":
                self.count_dropped(session, int(fields.get("count", 0)))
            if len(history) == history.maxlen:
                self._evicted[session] = self._evicted.get(session, 0) + 1
            history.append(event)
            for stream in self._streams:
                if stream.session in (None, session):
                    stream.put(event)

    def session_finished(self, session: str, attempt: int, outcome: Completed | Failed) -> None:
        self._apply(self.table.finished(session, attempt, outcome, trio.current_time()))

    def session_lost(self, session: str, attempt: int, loss: Loss) -> None:
        self._apply(self.table.lost(session, attempt, loss, trio.current_time()))

    def replied(self, request: int, error: str | None) -> None:
        self._apply(self.table.replied(request, error))

    def count_dropped(self, session: str, count: int) -> None:
        self.table.note_dropped(session, count)

    def unsubscribe(self, stream: EventStream) -> None:
        if stream in self._streams:
            self._streams.remove(stream)

    # --- inside ---------------------------------------------------------------------------------------------

    def _apply(self, effects: list[Effect]) -> None:
        assert self.engine is not None
        for effect in effects:
            if isinstance(effect, Launch):
                self.engine.launch(effect)
            elif isinstance(effect, Send):
                self.engine.send(effect)
            else:
                waiter = self._waiters.get(effect.request)
                if waiter is not None:
                    waiter.answer = effect
                    waiter.done.set()
        for stream in list(self._streams):  # a session's stream ends with it (its events came before its end)
            if stream.session is not None and not self.table.sessions[stream.session].state.live:
                stream.end()
                self._streams.remove(stream)
        self._changed.unpark_all()

    async def _command(self, session: str, command: Command, within: float | None = None) -> None:
        request, effects = self.table.command(session, command, trio.current_time())
        await self._wait(request, effects, self._command_timeout if within is None else within, session)

    async def _wait(self, request: int, effects: list[Effect], within: float = math.inf, session: str = "") -> Any:
        """Wait for the answer to ``request`` (``within`` seconds at most) and return or raise it."""
        waiter = self._waiters[request] = _Waiter()
        try:
            self._apply(effects)
            with trio.move_on_after(within) as scope:
                await waiter.done.wait()
            if scope.cancelled_caught:
                raise CommandRefused(session, f"its worker did not answer within {within:g} s")
        finally:
            del self._waiters[request]
            if waiter.answer is None:
                self.table.withdraw(request)
        answer = waiter.answer
        assert answer is not None
        if answer.error is not None:
            raise copy.copy(answer.error)  # each caller raises its own, with its own traceback
        return answer.value

    async def timer(self) -> None:
        """Feed the table the time when a restart's backoff ends."""
        while True:
            due = self.table.next_due()
            if due is not None and due > trio.current_time():
                with trio.move_on_at(due):
                    await self._changed.park()
            else:
                await self._changed.park()
            self._apply(self.table.due(trio.current_time()))

    async def shutdown(self, *, drain: bool) -> None:
        """Stop (``drain``) then cancel every live session, bounded; then close the engine; end every stream."""
        assert self.engine is not None
        self.table.close()
        live = [s for s, rec in self.table.sessions.items() if rec.state.live]
        for command, timeout in ((Stop(), DRAIN_TIMEOUT), (Cancel(), CANCEL_TIMEOUT)):
            if not drain and isinstance(command, Stop):
                continue
            for session in live:
                if self.table.sessions[session].state.live:
                    request, effects = self.table.command(session, command, trio.current_time())
                    self.table.withdraw(request)  # nobody waits for the answer: the end is what counts
                    self._apply(effects)
            with trio.move_on_after(timeout):
                while any(self.table.sessions[s].state.live for s in live):
                    await self._changed.park()
        await self.engine.aclose()
        for stream in self._streams:
            stream.end()
        self._streams.clear()
