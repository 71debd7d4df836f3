"""The session pool's trio-free core: the session table, its state machine, placement and every pending call.

Theory of operation. :class:`SessionTable` is fed what happens (a call from the API, a worker coming up or
going away, a worker's report that an attempt started or finished, a reply, the time) and gives back
*effects* for the engine shell to carry out: :class:`Launch` an attempt on a worker, :class:`Send` a command
to the worker that runs an attempt, :class:`Resolve` a pending call. It never blocks, never reads a clock
(``now`` is passed in) and imports no trio, so hypothesis drives it through any schedule.

A session goes ``pending -> starting -> running -> finished | failed | lost``. ``pending`` waits for a worker
with room (least loaded first, ties to the lowest id, sessions in the order they came) and, after a failure
its :class:`RestartPolicy` allows, for the backoff's end; each run is an *attempt*, numbered from 1, and
reports about any other attempt than the current one are stale and ignored. A failure is final when the
policy says so, when the graph itself is invalid, when the session was asked to stop or cancel, or when the
pool is closing. Legal calls: ``stop``/``cancel`` in every live state (a pending session ends at once,
``stopped``/``cancelled``, without running again), ``interrupt``/``swap`` only while ``running``; anything
about an unknown or ended session is refused with a :class:`CommandRefused` that says why.

Every call is a *request* with an id that the table resolves exactly once: a start when its session runs
(or ends first), a result when its session ends, a command when its worker replies, or when the attempt it
was sent to ends or its worker is lost. A caller that gives up withdraws its request.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterator
from typing import final

import attrs

from .._limits import closest
from ._errors import CommandRefused, PoolError, SessionError, SessionFailed, WorkerLost
from ._messages import VERBS, Cancel, Command, Effect, Launch, Loss, Resolve, Send, Stop
from ._spec import Completed, Failed, SessionResult, SessionSpec, SessionStatus

__all__ = ["SessionTable", "State"]


class State(enum.Enum):
    PENDING = "pending"
    STARTING = "starting"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    LOST = "lost"

    @property
    def live(self) -> bool:
        return self in (State.PENDING, State.STARTING, State.RUNNING)

    def __str__(self) -> str:
        return self.value


@final
@attrs.define
class _Worker:
    id: int
    capacity: int | None
    pid: int | None
    ray_node: str | None
    alive: bool = True


@final
@attrs.define
class _Session:
    id: str
    number: int
    spec: SessionSpec
    state: State = State.PENDING
    attempt: int = 0
    worker: int | None = None
    due: float = 0.0
    restarts: int = 0
    failures: list[str] = attrs.Factory(list)
    stopping: bool = False
    where: str = ""
    pid: int | None = None
    ray_node: str | None = None
    result: SessionResult | None = None
    error: SessionError | None = None
    observed: bool = False
    dropped: int = 0
    starts: list[int] = attrs.Factory(list)  # requests waiting for it to run
    results: list[int] = attrs.Factory(list)  # requests waiting for it to end


@final
class SessionTable:
    """The pool's sessions and workers (see the module's theory of operation)."""

    def __init__(self) -> None:
        self.sessions: dict[str, _Session] = {}
        self.workers: dict[int, _Worker] = {}
        self.closed = False
        self._numbers = itertools.count(1)
        self._requests = itertools.count(1)
        # request -> (session, attempt, command) for every command sent and not yet answered
        self.commands: dict[int, tuple[str, int, Command]] = {}

    def __repr__(self) -> str:
        live = sum(1 for s in self.sessions.values() if s.state.live)
        return f"<SessionTable {len(self.sessions)} sessions ({live} live), {len(self.workers)} workers>"

    # --- workers --------------------------------------------------------------------------------------------

    def add_worker(
        self,
        worker: int,
        now: float,
        *,
        capacity: int | None = None,
        pid: int | None = None,
        ray_node: str | None = None,
    ) -> list[Effect]:
        """A worker is ready; pending sessions may go to it."""
        self.workers[worker] = _Worker(worker, capacity, pid, ray_node)
        return self._place(now)

    def remove_worker(self, worker: int, loss: Loss, now: float) -> list[Effect]:
        """A worker went away: every attempt on it is lost (restarted if the policy says so), every command
        sent to it is answered with the loss."""
        w = self.workers.get(worker)
        if w is None or not w.alive:
            return []
        w.alive = False
        effects: list[Effect] = []
        for s in list(self.sessions.values()):
            if s.worker == worker and s.state in (State.STARTING, State.RUNNING):
                effects += self._attempt_lost(s, loss, now)
        return effects + self._place(now)

    def abandon_pending(self, loss: Loss) -> list[Effect]:
        """No worker is left nor can be started: the sessions waiting for one are lost."""
        if any(w.alive for w in self.workers.values()):
            return []
        effects: list[Effect] = []
        for s in self.sessions.values():
            if s.state is State.PENDING:
                error = WorkerLost(s.id, f"{loss.reason} before it could run", pid=loss.pid, restarts=s.restarts)
                effects += self._fail(s, State.LOST, error)
        return effects

    def load(self, worker: int) -> int:
        """The attempts a worker is starting or running."""
        return sum(
            1 for s in self.sessions.values() if s.worker == worker and s.state in (State.STARTING, State.RUNNING)
        )

    # --- calls ----------------------------------------------------------------------------------------------

    def start(self, spec: SessionSpec, now: float) -> tuple[str, int, list[Effect]]:
        """A new session; its id and the request answered once it runs (or has ended)."""
        request = next(self._requests)
        if self.closed:
            return "", request, [Resolve(request, error=PoolError("the pool is closed: no new session starts"))]
        number = next(self._numbers)
        s = _Session(id=f"s{number}", number=number, spec=spec, due=now)
        self.sessions[s.id] = s
        s.starts.append(request)
        return s.id, request, self._place(now)

    def command(self, session: str, command: Command, now: float) -> tuple[int, list[Effect]]:
        """A command for a session: sent to its worker, done here (stopping a pending session), or refused."""
        request = next(self._requests)
        s = self.sessions.get(session)
        verb = VERBS[type(command)]
        if s is None:
            return request, [Resolve(request, error=self._unknown(session))]
        if not s.state.live:
            ended = {State.FINISHED: "has finished", State.FAILED: "has failed", State.LOST: "was lost"}[s.state]
            return request, [Resolve(request, error=CommandRefused(s.id, f"it {ended}; there is nothing to {verb}"))]
        if isinstance(command, Stop | Cancel):
            s.stopping = True
            if s.state is State.PENDING:
                reason = "stopped" if isinstance(command, Stop) else "cancelled"
                return request, [*self._end(s, Completed(reason=reason)), Resolve(request)]
        elif s.state is not State.RUNNING:
            waiting = "waiting for a worker" if s.restarts == 0 else f"waiting to restart (restart {s.restarts})"
            doing = "starting" if s.state is State.STARTING else f"pending, {waiting}"
            return request, [Resolve(request, error=CommandRefused(s.id, f"it is {doing}; there is nothing to {verb}"))]
        assert s.worker is not None
        self.commands[request] = (s.id, s.attempt, command)
        return request, [Send(s.worker, request, s.id, s.attempt, command)]

    def result(self, session: str) -> tuple[int, list[Effect]]:
        """A request answered with the session's result (or error) once it has ended."""
        request = next(self._requests)
        s = self.sessions.get(session)
        if s is None:
            return request, [Resolve(request, error=self._unknown(session))]
        if s.state.live:
            s.results.append(request)
            return request, []
        return request, [self._answer(s, request)]

    def withdraw(self, request: int) -> None:
        """The caller gave up (cancelled, timed out): the request is dropped unanswered."""
        self.commands.pop(request, None)
        for s in self.sessions.values():
            if request in s.starts:
                s.starts.remove(request)
            if request in s.results:
                s.results.remove(request)

    def forget(self, session: str) -> CommandRefused | None:
        """Drop an ended session from the table (a long-lived pool keeps memory bounded); why not, if not."""
        s = self.sessions.get(session)
        if s is None:
            return self._unknown(session)
        if s.state.live:
            return CommandRefused(s.id, f"it is {s.state}; only an ended session can be forgotten")
        del self.sessions[session]
        return None

    def close(self) -> None:
        """No new session starts, and no failure is restarted any more."""
        self.closed = True

    # --- reports from workers -------------------------------------------------------------------------------

    def started(
        self, session: str, attempt: int, *, where: str = "", pid: int | None = None, ray_node: str | None = None
    ) -> list[Effect]:
        """The attempt's graph has started (every node listening)."""
        s = self._current(session, attempt)
        if s is None or s.state is not State.STARTING:
            return []
        s.state = State.RUNNING
        s.where, s.pid, s.ray_node = where or s.where, pid or s.pid, ray_node or s.ray_node
        starts, s.starts = s.starts, []
        return [Resolve(r, value=s.id) for r in starts]

    def finished(self, session: str, attempt: int, outcome: Completed | Failed, now: float) -> list[Effect]:
        """The attempt's graph has ended (or could not be loaded or started)."""
        s = self._current(session, attempt)
        if s is None or s.state not in (State.STARTING, State.RUNNING):
            return []
        effects = self._close_commands(s, f"it ended ({_what(outcome)}) before answering")
        if isinstance(outcome, Completed):
            return effects + self._end(s, outcome) + self._place(now)
        error = SessionFailed(
            s.id,
            outcome.message,
            node=outcome.node,
            node_type=outcome.node_type,
            error_type=outcome.error_type,
            definition=outcome.definition,
            restarts=s.restarts,
        )
        if outcome.definition or not self._may_restart(s):
            return effects + self._fail(s, State.FAILED, error) + self._place(now)
        return effects + self._restart(s, outcome.message, now)

    def lost(self, session: str, attempt: int, loss: Loss, now: float) -> list[Effect]:
        """One attempt's own worker went away (a Ray actor or its node)."""
        s = self._current(session, attempt)
        if s is None or s.state not in (State.STARTING, State.RUNNING):
            return []
        return self._attempt_lost(s, loss, now) + self._place(now)

    def replied(self, request: int, error: str | None = None) -> list[Effect]:
        """The worker answered a command: done, or refused with ``error`` (the graph's message)."""
        sent = self.commands.pop(request, None)
        if sent is None:  # withdrawn, or already answered by the end of its attempt
            return []
        return [Resolve(request, error=None if error is None else CommandRefused(sent[0], error))]

    def note_dropped(self, session: str, count: int) -> None:
        """``count`` events of the session were dropped on the way (kept for its result)."""
        s = self.sessions.get(session)
        if s is not None:
            s.dropped += count

    # --- time -----------------------------------------------------------------------------------------------

    def due(self, now: float) -> list[Effect]:
        """Launch what may launch now (a restart whose backoff has passed)."""
        return self._place(now)

    def next_due(self) -> float | None:
        """The earliest time a pending session's backoff ends, if any waits for one."""
        times = [s.due for s in self.sessions.values() if s.state is State.PENDING]
        return min(times) if times else None

    # --- views ----------------------------------------------------------------------------------------------

    def status(self) -> list[SessionStatus]:
        return [
            SessionStatus(
                session=s.id,
                state=s.state.value,
                attempt=s.attempt,
                restarts=s.restarts,
                worker=s.worker,
                where=s.where,
            )
            for s in self.sessions.values()
        ]

    def unobserved_failures(self) -> list[SessionError]:
        """The final failures nobody has asked for (the pool reports them when it closes)."""
        return [s.error for s in self.sessions.values() if s.error is not None and not s.observed]

    def pending_requests(self) -> Iterator[int]:
        """Every request not yet answered (for checks)."""
        yield from self.commands
        for s in self.sessions.values():
            yield from s.starts
            yield from s.results

    # --- inside -----------------------------------------------------------------------------------------------

    def _current(self, session: str, attempt: int) -> _Session | None:
        s = self.sessions.get(session)
        return s if s is not None and s.attempt == attempt else None

    def _unknown(self, session: str) -> CommandRefused:
        return CommandRefused(session, f"no such session in this pool{closest(session, self.sessions)}")

    def _may_restart(self, s: _Session) -> bool:
        return not s.stopping and not self.closed and s.spec.restart.allows(s.restarts)

    def _place(self, now: float) -> list[Effect]:
        effects: list[Effect] = []
        loads = {w.id: self.load(w.id) for w in self.workers.values() if w.alive}
        for s in self.sessions.values():
            if s.state is not State.PENDING or s.due > now:
                continue
            room = [w for w, n in loads.items() if _has_room(self.workers[w].capacity, n)]
            if not room:
                break
            worker = min(room, key=lambda w: (loads[w], w))
            loads[worker] += 1
            w = self.workers[worker]
            s.state, s.worker, s.attempt = State.STARTING, worker, s.attempt + 1
            s.pid, s.ray_node = w.pid, w.ray_node
            s.where = f"pid {w.pid}" if w.pid is not None else (f"ray node {w.ray_node}" if w.ray_node else "")
            effects.append(Launch(s.id, s.attempt, worker, s.spec))
        return effects

    def _attempt_lost(self, s: _Session, loss: Loss, now: float) -> list[Effect]:
        message = f"{loss.reason} while running it"
        error = WorkerLost(s.id, message, pid=loss.pid, signal=loss.signal, ray_node=loss.ray_node, restarts=s.restarts)
        effects: list[Effect] = []
        for request, (session, attempt, _) in list(self.commands.items()):
            if session == s.id and attempt == s.attempt:
                del self.commands[request]
                effects.append(Resolve(request, error=WorkerLost(s.id, f"{loss.reason} before answering")))
        if self._may_restart(s):
            return effects + self._restart(s, message, now)
        return effects + self._fail(s, State.LOST, error)

    def _restart(self, s: _Session, why: str, now: float) -> list[Effect]:
        s.restarts += 1
        s.failures.append(why)
        s.state, s.worker, s.due = State.PENDING, None, now + s.spec.restart.delay(s.restarts)
        return self._place(now)

    def _close_commands(self, s: _Session, why: str) -> list[Effect]:
        effects: list[Effect] = []
        for request, (session, attempt, command) in list(self.commands.items()):
            if session == s.id and attempt == s.attempt:
                del self.commands[request]
                done = isinstance(command, Stop | Cancel)  # it did end, which is what was asked
                effects.append(Resolve(request, error=None if done else CommandRefused(s.id, why)))
        return effects

    def _end(self, s: _Session, outcome: Completed) -> list[Effect]:
        s.state, s.worker = State.FINISHED, None
        s.result = SessionResult(
            session=s.id,
            reason=outcome.reason,
            statistics=outcome.statistics,
            isolated=outcome.isolated,
            restarts=s.restarts,
            failures=tuple(s.failures),
            worker=s.where,
            pid=s.pid,
            ray_node=s.ray_node,
            events_dropped=s.dropped,
        )
        return self._settle(s)

    def _fail(self, s: _Session, state: State, error: SessionError) -> list[Effect]:
        s.state, s.worker, s.error = state, None, error
        return self._settle(s)

    def _settle(self, s: _Session) -> list[Effect]:
        """Answer everyone waiting on an ended session."""
        waiting = s.starts + s.results
        s.starts, s.results = [], []
        return [self._answer(s, request) for request in waiting]

    def _answer(self, s: _Session, request: int) -> Resolve:
        s.observed = True
        if s.error is not None:
            return Resolve(request, error=s.error)
        if s.result is not None and s.dropped != s.result.events_dropped:
            s.result = attrs.evolve(s.result, events_dropped=s.dropped)
        return Resolve(request, value=s.result)


def _what(outcome: Completed | Failed) -> str:
    return outcome.reason if isinstance(outcome, Completed) else "failed"


def _has_room(capacity: int | None, load: int) -> bool:
    return capacity is None or load < capacity
