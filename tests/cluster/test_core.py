"""The session table against a reference model: concurrent callers, workers coming and going, restarts."""

from __future__ import annotations

from typing import Any

import attrs
import hypothesis.strategies as st
import pytest
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from mediagraph.cluster import (
    CommandRefused,
    PoolError,
    RestartPolicy,
    SessionFailed,
    SessionResult,
    SessionSpec,
    WorkerLost,
)
from mediagraph.cluster._core import SessionTable
from mediagraph.cluster._messages import (
    Cancel,
    Effect,
    Interrupt,
    Launch,
    Loss,
    Resolve,
    Send,
    Stop,
    Swap,
)
from mediagraph.cluster._spec import Completed, Failed

SPEC = SessionSpec(graph_text="nodes: {}", base_dir=".")
COMMANDS = [Stop(), Cancel(), Interrupt("spk"), Swap("out", None)]


def spec(policy: RestartPolicy) -> SessionSpec:
    return attrs.evolve(SPEC, restart=policy)


def only[T](effects: list[Effect], kind: type[T]) -> list[T]:
    return [e for e in effects if isinstance(e, kind)]


def answers(effects: list[Effect]) -> list[Resolve]:
    assert all(isinstance(e, Resolve) for e in effects), effects
    return only(effects, Resolve)


# --- examples ---------------------------------------------------------------------------------------------


def test_a_session_goes_to_the_least_loaded_worker_and_reports_its_result() -> None:
    table = SessionTable()
    table.add_worker(1, 0.0, pid=101)
    table.add_worker(2, 0.0, pid=102)
    ids, starts = [], []
    for _ in range(3):
        sid, request, effects = table.start(SPEC, 0.0)
        ids.append(sid)
        starts.append(request)
        (launch,) = only(effects, Launch)
        assert launch.session == sid
    assert ids == ["s1", "s2", "s3"]
    assert [table.load(1), table.load(2)] == [2, 1]
    assert table.started("s1", 1) == [Resolve(starts[0], value="s1")]
    assert table.started("s1", 1) == []  # once
    rid, effects = table.result("s1")
    assert effects == []
    (resolve,) = answers(table.finished("s1", 1, Completed(reason="completed"), 1.0))
    assert resolve.request == rid
    assert isinstance(resolve.value, SessionResult)
    assert resolve.value.reason == "completed" and resolve.value.worker == "pid 101" and resolve.value.pid == 101


def test_a_node_failure_names_the_session_and_the_node() -> None:
    table = SessionTable()
    table.add_worker(1, 0.0, pid=7)
    _, start, _ = table.start(SPEC, 0.0)
    message = "node 'mic' (file_source) failed: FileNotFoundError: no such file"
    (resolve,) = answers(table.finished("s1", 1, Failed(message=message, node="mic", node_type="file_source"), 0.5))
    assert resolve.request == start
    assert isinstance(resolve.error, SessionFailed)
    assert str(resolve.error) == f"session 's1': {message}"
    assert (resolve.error.node, resolve.error.node_type) == ("mic", "file_source")


def test_a_lost_worker_fails_its_sessions_and_answers_its_commands() -> None:
    table = SessionTable()
    table.add_worker(1, 0.0, pid=1234)
    table.add_worker(2, 0.0, pid=99)
    for _ in range(2):
        table.start(SPEC, 0.0)
    table.started("s1", 1)
    table.started("s2", 1)
    command, effects = table.command("s1", Interrupt("spk"), 0.0)
    (send,) = only(effects, Send)
    assert send.worker == 1
    result, _ = table.result("s1")
    effects = table.remove_worker(1, Loss(reason="worker process 1234 exited with signal 9 (SIGKILL)", pid=1234), 1.0)
    errors = {e.request: e.error for e in only(effects, Resolve)}
    assert set(errors) == {command, result}
    assert isinstance(errors[result], WorkerLost)
    assert str(errors[result]) == "session 's1': worker process 1234 exited with signal 9 (SIGKILL) while running it"
    assert [s.state for s in table.status()] == ["lost", "running"]


def test_a_restart_waits_for_its_backoff_then_goes_on_another_attempt() -> None:
    table = SessionTable()
    table.add_worker(1, 0.0)
    table.start(spec(RestartPolicy.on_failure(max_restarts=2, backoff=0.5)), 0.0)
    table.started("s1", 1)
    assert table.finished("s1", 1, Failed(message="boom"), 1.0) == []
    assert table.next_due() == 1.5
    assert table.due(1.4) == []
    (launch,) = only(table.due(1.5), Launch)
    assert launch.attempt == 2
    assert table.started("s1", 1) == []  # a stale report
    table.started("s1", 2)
    table.finished("s1", 2, Failed(message="boom"), 2.0)
    assert table.due(2.9) == [] and len(table.due(3.0)) == 1  # 0.5 * 2**1
    table.started("s1", 3)
    (resolve,) = answers([*table.finished("s1", 3, Failed(message="boom"), 4.0), *table.result("s1")[1]])
    assert isinstance(resolve.error, SessionFailed) and resolve.error.restarts == 2


def test_commands_are_refused_clearly() -> None:
    table = SessionTable()
    _, _, effects = table.start(SPEC, 0.0)
    assert effects == []  # no worker yet: pending
    (refused,) = answers(table.command("s1", Interrupt("spk"), 0.0)[1])
    assert str(refused.error) == "session 's1': it is pending, waiting for a worker; there is nothing to interrupt"
    (refused,) = answers(table.command("s2", Stop(), 0.0)[1])
    assert str(refused.error) == "session 's2': no such session in this pool (known: s1)"
    (*_, done) = answers(table.command("s1", Stop(), 0.0)[1])  # a pending session stops at once
    assert done.error is None
    (refused,) = answers(table.command("s1", Cancel(), 0.0)[1])
    assert isinstance(refused.error, CommandRefused)
    assert str(refused.error) == "session 's1': it has finished; there is nothing to cancel"
    table.close()
    (closed,) = answers(table.start(SPEC, 0.0)[2])
    assert isinstance(closed.error, PoolError)


def test_only_an_ended_session_is_forgotten() -> None:
    table = SessionTable()
    table.start(SPEC, 0.0)
    assert str(table.forget("s1")) == "session 's1': it is pending; only an ended session can be forgotten"
    table.command("s1", Stop(), 0.0)
    assert table.forget("s1") is None
    assert "no such session" in str(table.forget("s1"))
    assert table.start(SPEC, 0.0)[0] == "s2"  # ids are never reused


def test_a_full_pool_queues_sessions_in_order() -> None:
    table = SessionTable()
    table.add_worker(1, 0.0, capacity=1)
    assert len(only(table.start(SPEC, 0.0)[2], Launch)) == 1
    assert table.start(SPEC, 0.0)[2] == []
    table.started("s1", 1)
    (launch,) = only(table.finished("s1", 1, Completed(reason="completed"), 1.0), Launch)
    assert launch.session == "s2"


# --- the reference model ------------------------------------------------------------------------------------


@attrs.define
class Model:
    """One session as the rules say it should be, written as plainly as possible."""

    policy: RestartPolicy
    state: str = "pending"
    attempt: int = 0
    worker: int | None = None
    restarts: int = 0
    stopping: bool = False
    due: float = 0.0


class PoolMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.table = SessionTable()
        self.now = 0.0
        self.model: dict[str, Model] = {}
        self.alive: dict[int, int | None] = {}  # worker -> capacity
        self.next_worker = 1
        self.open: dict[int, tuple[str, str]] = {}  # request -> (kind, session)
        self.sent: dict[int, Send] = {}  # commands a fake worker holds, not yet answered
        self.closed = False

    # --- applying effects, checking each against the model ---

    def apply(self, effects: list[Effect]) -> None:
        for e in effects:
            if isinstance(e, Launch):
                m = self.model[e.session]
                assert m.state == "pending" and m.due <= self.now, (e, m)
                assert e.worker in self.alive and e.attempt == m.attempt + 1
                loads = {w: self.load(w) for w in self.alive}
                room = [w for w, cap in self.alive.items() if cap is None or loads[w] < cap]
                assert e.worker in room and loads[e.worker] == min(loads[w] for w in room), (e, loads)
                earlier = [s for s, o in self.model.items() if o.state == "pending" and o.due <= self.now]
                assert earlier and earlier[0] == e.session  # first come, first placed
                m.state, m.attempt, m.worker = "starting", e.attempt, e.worker
            elif isinstance(e, Send):
                m = self.model[e.session]
                assert e.worker == m.worker and e.attempt == m.attempt and m.state in ("starting", "running")
                self.sent[e.request] = e
            else:
                assert e.request in self.open, f"request {e.request} answered twice or never asked"
                kind, session = self.open.pop(e.request)
                self.sent.pop(e.request, None)
                self.check_answer(kind, session, e)

    def check_answer(self, kind: str, session: str, e: Resolve) -> None:
        m = self.model.get(session)
        if kind == "start":
            if e.error is None and isinstance(e.value, str):
                assert m is not None and m.state == "running"
            else:
                assert m is None or m.state in ("finished", "failed", "lost")
        elif kind == "result":
            assert m is not None and m.state in ("finished", "failed", "lost")
            assert (e.error is None) == (m.state == "finished")
            if isinstance(e.error, WorkerLost):
                assert m.state == "lost"
        elif e.error is not None:
            assert isinstance(e.error, CommandRefused | WorkerLost)

    def load(self, worker: int) -> int:
        return sum(1 for m in self.model.values() if m.worker == worker and m.state in ("starting", "running"))

    def end(self, m: Model, state: str) -> None:
        m.state, m.worker = state, None

    def fail(self, m: Model, state: str, definition: bool = False) -> None:
        if not definition and not m.stopping and not self.closed and m.policy.allows(m.restarts):
            m.restarts += 1
            m.state, m.worker, m.due = "pending", None, self.now + m.policy.delay(m.restarts)
        else:
            self.end(m, state)

    def attempts(self) -> list[tuple[str, Model]]:
        return sorted((s, m) for s, m in self.model.items() if m.state in ("starting", "running"))

    # --- rules ---

    @rule(capacity=st.none() | st.integers(1, 3))
    def add_worker(self, capacity: int | None) -> None:
        w = self.next_worker
        self.next_worker += 1
        self.alive[w] = capacity
        self.apply(self.table.add_worker(w, self.now, capacity=capacity, pid=1000 + w))

    @precondition(lambda self: self.alive)
    @rule(data=st.data())
    def kill_worker(self, data: st.DataObject) -> None:
        w = data.draw(st.sampled_from(sorted(self.alive)))
        del self.alive[w]
        for _, m in self.attempts():
            if m.worker == w:
                self.fail(m, "lost")
        effects = self.table.remove_worker(w, Loss(reason=f"worker process {1000 + w} exited", pid=1000 + w), self.now)
        self.apply(effects)
        assert not any(s.worker == w for s in self.sent.values())

    @rule(
        policy=st.builds(
            RestartPolicy,
            when=st.sampled_from(["never", "on-failure"]),
            max_restarts=st.integers(0, 3),
            backoff=st.sampled_from([0.0, 0.5, 1.0]),
        )
    )
    def start(self, policy: RestartPolicy) -> None:
        sid, request, effects = self.table.start(spec(policy), self.now)
        self.open[request] = ("start", sid)
        if not self.closed:
            assert sid == f"s{len(self.model) + 1}"
            self.model[sid] = Model(policy, due=self.now)
        self.apply(effects)

    @rule(data=st.data(), command=st.sampled_from(COMMANDS))
    def command(self, data: st.DataObject, command: Any) -> None:
        sid = data.draw(st.sampled_from([*self.model, "s99"]))
        request, effects = self.table.command(sid, command, self.now)
        self.open[request] = ("command", sid)
        m = self.model.get(sid)
        stops = isinstance(command, Stop | Cancel)
        if m is not None and stops and m.state in ("pending", "starting", "running"):
            m.stopping = True
            if m.state == "pending":
                self.end(m, "finished")
        self.apply(effects)
        if m is None or m.state in ("finished", "failed", "lost") or (not stops and m.state != "running"):
            assert request not in self.open  # refused (or done) at once
        else:
            assert request in self.sent

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def ask_result(self, data: st.DataObject) -> None:
        sid = data.draw(st.sampled_from(sorted(self.model)))
        request, effects = self.table.result(sid)
        self.open[request] = ("result", sid)
        self.apply(effects)

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def withdraw(self, data: st.DataObject) -> None:
        request = data.draw(st.sampled_from(sorted(self.open)))
        self.table.withdraw(request)
        del self.open[request]
        self.sent.pop(request, None)

    @precondition(lambda self: any(m.state == "starting" for _, m in self.attempts()))
    @rule(data=st.data())
    def report_started(self, data: st.DataObject) -> None:
        sid, m = data.draw(st.sampled_from([(s, m) for s, m in self.attempts() if m.state == "starting"]))
        m.state = "running"
        self.apply(self.table.started(sid, m.attempt))

    @precondition(lambda self: self.attempts())
    @rule(data=st.data(), how=st.sampled_from(["completed", "stopped", "failed", "definition", "lost"]))
    def report_end(self, data: st.DataObject, how: str) -> None:
        sid, m = data.draw(st.sampled_from(self.attempts()))
        attempt = m.attempt
        if how in ("completed", "stopped"):
            self.end(m, "finished")
            effects = self.table.finished(sid, attempt, Completed(reason=how), self.now)
        elif how == "lost":
            self.fail(m, "lost")
            effects = self.table.lost(sid, attempt, Loss(reason="ray node x removed", ray_node="x"), self.now)
        else:
            self.fail(m, "failed", definition=how == "definition")
            failed = Failed(message="node 'a' (t) failed", node="a", definition=how == "definition")
            effects = self.table.finished(sid, attempt, failed, self.now)
        self.apply(effects)
        assert not any(s.session == sid and s.attempt == attempt for s in self.sent.values())

    @rule(data=st.data())
    def stale_report(self, data: st.DataObject) -> None:
        """Reports about an attempt that is not current change nothing."""
        if not self.model:
            return
        sid = data.draw(st.sampled_from(sorted(self.model)))
        m = self.model[sid]
        assert self.table.started(sid, m.attempt + 1) == []
        assert self.table.finished(sid, m.attempt + 1, Failed(message="x"), self.now) == []
        if m.state not in ("starting", "running"):
            assert self.table.finished(sid, m.attempt, Completed(reason="completed"), self.now) == []

    @precondition(lambda self: self.sent)
    @rule(data=st.data(), ok=st.booleans())
    def reply(self, data: st.DataObject, ok: bool) -> None:
        request = data.draw(st.sampled_from(sorted(self.sent)))
        self.apply(self.table.replied(request, None if ok else "graph 'g' has no node 'spk'"))
        assert request not in self.open
        assert self.table.replied(request, None) == []  # a second answer is ignored

    @rule(dt=st.sampled_from([0.1, 0.5, 1.0]))
    def advance(self, dt: float) -> None:
        self.now += dt
        self.apply(self.table.due(self.now))

    @rule()
    def close(self) -> None:
        self.closed = True
        self.table.close()

    # --- invariants ---

    @invariant()
    def states_match_the_model(self) -> None:
        got = {s.session: (s.state, s.attempt, s.restarts, s.worker) for s in self.table.status()}
        want = {s: (m.state, m.attempt, m.restarts, m.worker) for s, m in self.model.items()}
        assert got == want

    @invariant()
    def waiting_requests_wait_for_something(self) -> None:
        assert sorted(self.table.pending_requests()) == sorted(self.open)
        for request, (kind, sid) in self.open.items():
            m = self.model[sid]
            if kind == "start":
                assert m.state in ("pending", "starting")
            elif kind == "result":
                assert m.state in ("pending", "starting", "running")
            else:
                assert request in self.sent and m.state in ("starting", "running")

    @invariant()
    def capacity_and_placement_hold(self) -> None:
        for w, cap in self.alive.items():
            assert cap is None or self.load(w) <= cap
        due = [m for m in self.model.values() if m.state == "pending" and m.due <= self.now]
        if due:  # a session due waits only when no worker has room
            assert all(cap is not None and self.load(w) >= cap for w, cap in self.alive.items())

    @invariant()
    def restarts_within_policy(self) -> None:
        for m in self.model.values():
            assert m.restarts <= (m.policy.max_restarts if m.policy.when == "on-failure" else 0)


TestPoolMachine = PoolMachine.TestCase
TestPoolMachine.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)


@pytest.mark.parametrize("restarts", [0, 1, 5])
def test_restart_delay_doubles(restarts: int) -> None:
    policy = RestartPolicy.on_failure(max_restarts=5, backoff=0.25)
    assert policy.allows(restarts) == (restarts < 5)
    if restarts:
        assert policy.delay(restarts) == 0.25 * 2 ** (restarts - 1)
