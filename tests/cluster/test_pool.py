"""The pool's trio shell over an in-process fake engine: concurrent callers, each in its own task, against
generated schedules of worker reports, replies and deaths. Every call answers (returns or raises a
MediaGraphError), none hangs, and what it answers agrees with what the engine did."""

from __future__ import annotations

from typing import Any

import attrs
import hypothesis.strategies as st
import trio
import trio.testing
from hypothesis import given, settings

from mediagraph import MediaGraphError
from mediagraph.cluster import CommandRefused, Pool, RestartPolicy, SessionResult, SessionSpec, WorkerStatus
from mediagraph.cluster._messages import Cancel, Launch, Loss, Send, Stop
from mediagraph.cluster._spec import Completed, Failed


@attrs.define
class FakeEngine:
    """Runs nothing: remembers what it was asked, and the schedule decides what it reports."""

    pool: Pool
    name: str = "fake"
    alive: list[int] = attrs.Factory(lambda: [1, 2])
    attempts: dict[tuple[str, int], int] = attrs.Factory(dict)  # (session, attempt) -> worker, live ones
    sent: list[Send] = attrs.Factory(list)

    def check(self, spec: SessionSpec) -> None:
        pass

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        for w in self.alive:
            self.pool.worker_up(w, pid=100 + w)
        task_status.started()

    def launch(self, launch: Launch) -> None:
        self.attempts[launch.session, launch.attempt] = launch.worker

    def send(self, send: Send) -> None:
        self.sent.append(send)

    def workers(self) -> list[WorkerStatus]:
        return [WorkerStatus(worker=w, alive=True, sessions=0, pid=100 + w) for w in self.alive]

    async def aclose(self) -> None:
        for w in list(self.alive):
            self.kill(w)

    def kill(self, worker: int) -> None:
        self.alive.remove(worker)
        self.attempts = {k: w for k, w in self.attempts.items() if w != worker}
        self.sent = [s for s in self.sent if s.worker != worker]
        self.pool.worker_down(worker, Loss(reason=f"worker process {100 + worker} exited", pid=100 + worker))

    def end(self, key: tuple[str, int], outcome: Completed | Failed) -> None:
        del self.attempts[key]
        for s in [s for s in self.sent if (s.session, s.attempt) == key]:  # a worker answers before the end
            self.sent.remove(s)
            self.pool.replied(s.request, None)
        self.pool.session_finished(*key, outcome)


CALLS = st.sampled_from(["start", "start_restarting", "stop", "cancel", "interrupt", "result"])
REPORTS = st.sampled_from(["started", "completed", "failed", "reply", "refuse", "kill"])
STEPS = st.lists(st.tuples(st.sampled_from(["call", "report"]), CALLS, REPORTS, st.integers(0, 5)), max_size=40)


@settings(max_examples=150, deadline=None)
@given(steps=STEPS)
def test_every_call_answers_whatever_the_engine_does(steps: list[tuple[str, str, str, int]]) -> None:
    answers: list[tuple[str, Any]] = []

    async def main() -> None:
        pool = Pool(command_timeout=5.0)
        engine = pool.engine = FakeEngine(pool)
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            nursery.start_soon(pool.timer)
            callers: list[trio.Nursery] = []
            async with trio.open_nursery() as calls:
                callers.append(calls)
                for kind, call, report, pick in steps:
                    if kind == "call":
                        calls.start_soon(caller, pool, call, pick)
                    else:
                        do_report(engine, report, pick)
                    await trio.testing.wait_all_tasks_blocked()
                # the end: a worker if none is left, every attempt runs and completes, every send is answered
                if not engine.alive:
                    engine.alive.append(9)
                    pool.worker_up(9, pid=109)
                while engine.attempts or engine.sent or any(r.state.live for r in pool.table.sessions.values()):
                    for s in list(engine.sent):
                        engine.sent.remove(s)
                        pool.replied(s.request, None)
                    for key in list(engine.attempts):
                        pool.session_started(*key)
                        engine.end(key, Completed(reason="completed"))
                    await trio.sleep(0.1)  # mock time: a restart's backoff passes
            await pool.shutdown(drain=True)
            nursery.cancel_scope.cancel()
        assert not pool.table.commands and not list(pool.table.pending_requests())

    async def caller(pool: Pool, call: str, pick: int) -> None:
        session = f"s{pick}"
        try:
            if call.startswith("start"):
                policy = RestartPolicy.on_failure(max_restarts=1, backoff=0.1) if call.endswith("ing") else None
                spec = SessionSpec(graph_text="nodes: {}", base_dir=".", restart=policy or RestartPolicy())
                got: Any = await pool.start(spec)
                assert got in pool.table.sessions
                state = pool.table.sessions[got].state.value
                assert state in ("running", "finished"), state  # answered once running, or once it had ended
            elif call == "result":
                got = await pool.result(session)
                assert isinstance(got, SessionResult) and not pool.table.sessions[session].state.live
            else:
                await getattr(pool, call)(session, *(["out"] if call == "interrupt" else []))
                got = None
        except MediaGraphError as exc:
            got = exc
            if isinstance(exc, CommandRefused) and "no such session" in str(exc):
                assert session not in pool.table.sessions
        answers.append((call, got))

    def do_report(engine: FakeEngine, report: str, pick: int) -> None:
        keys = sorted(engine.attempts)
        if report == "kill":
            if engine.alive:
                engine.kill(engine.alive[pick % len(engine.alive)])
        elif report in ("reply", "refuse"):
            if engine.sent:
                s = engine.sent.pop(pick % len(engine.sent))
                engine.pool.replied(s.request, None if report == "reply" else "graph 'g' has no node 'out'")
        elif keys:
            key = keys[pick % len(keys)]
            if report == "started":
                engine.pool.session_started(*key)
            else:
                stopped = any(
                    isinstance(s.command, Stop | Cancel) for s in engine.sent if (s.session, s.attempt) == key
                )
                outcome: Completed | Failed = (
                    Completed(reason="stopped" if stopped else "completed")
                    if report == "completed"
                    else Failed(message="node 'a' (t) failed: Boom: x", node="a", node_type="t")
                )
                engine.end(key, outcome)

    async def bounded() -> None:
        with trio.fail_after(3600):  # on the mock clock: a call that hangs fails the example at once
            await main()

    trio.run(bounded, clock=trio.testing.MockClock(autojump_threshold=0))
    assert len(answers) == sum(1 for kind, *_ in steps if kind == "call")  # every caller got its answer
