"""Properties of the runtime over generated graphs, faults and schedules, checked with ``mediagraph.testing``.

Each example runs the graph under ``trio.run`` with ``MockClock(autojump_threshold=0)`` (pytest-trio's async
tests and ``@given`` do not mix), so paced sources take no real time and every run is deterministic.
"""

from __future__ import annotations

from typing import Literal

import hypothesis.strategies as st
import pytest
import trio
import trio.testing
from hypothesis import given, note, settings

import mediagraph as mg
from mediagraph._pacer import RESOLUTION
from mediagraph.testing import (
    Cancel,
    Captured,
    Fault,
    GraphPlan,
    InjectedFault,
    Recorder,
    Route,
    Schedule,
    SinkConfig,
    SourceConfig,
    capture,
    check_failure,
    check_frames,
    check_lifecycle,
    event_multiset,
    faults,
    graphs,
    node_sequences,
    schedules,
)
from mediagraph.testing.strategies import Policy

#: Graph seconds after which a run is abandoned (a hang that nothing cancels); never reached in real time.
TIMEOUT = 3600.0

# trio.run and graph start-up take a few milliseconds of real time, unevenly on a loaded machine.
PROPERTY = settings(deadline=None)

FAULTY = graphs(min_inner=1, min_frames=1)


def run_graph(graph: mg.Graph, *, fuse: bool = True, pace: bool = True, schedule: Schedule | None = None) -> Captured:
    """Run ``graph`` to its end under a mock clock."""

    async def main() -> Captured:
        with trio.fail_after(TIMEOUT):
            return await capture(graph, fuse=fuse, pace=pace, schedule=schedule)

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def run_plan(
    plan: GraphPlan, *, fuse: bool = True, pace: bool = True, schedule: Schedule | None = None
) -> tuple[Captured, Recorder]:
    """Build ``plan`` with a fresh recorder and run it to its end under a mock clock."""
    note(f"plan:\n{plan}")
    note(f"fuse={fuse} pace={pace} schedule={schedule}")
    recorder = Recorder()
    return run_graph(plan.build(recorder), fuse=fuse, pace=pace, schedule=schedule), recorder


def with_fault(policy: Policy, *, persistent: bool = False) -> st.SearchStrategy[tuple[GraphPlan, Fault]]:
    """A plan with a raising fault under ``policy`` injected, and the fault."""
    return FAULTY.flatmap(
        lambda plan: faults(plan, policies=(policy,), persistent=persistent).map(
            lambda fault: (plan.with_fault(fault), fault)
        )
    )


def with_schedule(
    plans: st.SearchStrategy[GraphPlan], kind: Literal["stop", "cancel"]
) -> st.SearchStrategy[tuple[GraphPlan, Schedule]]:
    return plans.flatmap(lambda plan: schedules(plan, kinds=(kind,)).map(lambda s: (plan, s)))


def reasons(captured: Captured) -> dict[str, str]:
    """Each node's ``node_finished`` reason."""
    return {e.node: e.fields["reason"] for e in captured.log.of("node_finished") if e.node is not None}


def passes_through(route: Route, node: str) -> bool:
    return route[0] == node or any(hop.partition(".")[0] == node for hop in route[1:])


def via_trigger(route: Route, fault: Fault) -> bool:
    """Whether ``route`` starts with the route into the faulty node its fault is triggered on."""
    trigger = (fault.spec.source, *(fault.spec.path or ()))
    return route[: len(trigger)] == trigger


def all_nodes(plan: GraphPlan) -> list[str]:
    return [n.name for n in plan.nodes]


def check_all_frames(plan: GraphPlan, recorder: Recorder, expected: dict[str, dict[Route, int | range]]) -> None:
    for sink in plan.sinks:
        check_frames(sink, recorder.arrivals(sink), expected[sink])


def prefixes(plan: GraphPlan) -> dict[str, dict[Route, int | range]]:
    """Any prefix on every route: what a cancelled or failed run may deliver (a lost tail, never a gap)."""
    return {sink: {r: range(n + 1) for r, n in plan.routes(sink).items()} for sink in plan.sinks}


def check_accounting(plan: GraphPlan, result: mg.GraphResult, dropping: str | None = None) -> None:
    """Statistics account for every message: once the graph has finished nothing is left queued, and each
    pass-through forwarded every message it received, except those counted as dropped (only ``dropping``
    may drop: an isolated node, whose mailbox discards what is still sent to it)."""
    linked = {link.src for link in plan.links}
    for node in plan.nodes:
        stats = result.statistics[node.name]
        assert stats.queued == 0, stats
        if node.name != dropping:
            assert stats.dropped == 0, stats
        if node.type in ("test_map", "test_actor", "test_merge") and node.name in linked:
            assert stats.frames_in == stats.frames_out + stats.dropped, stats


# --- without faults ------------------------------------------------------------------------------------------


@PROPERTY
@given(plan=graphs(), fuse=st.booleans(), pace=st.booleans())
def test_every_node_finishes_once_and_frames_are_conserved(plan: GraphPlan, fuse: bool, pace: bool) -> None:
    captured, recorder = run_plan(plan, fuse=fuse, pace=pace)
    assert captured.error is None
    assert captured.reason == "completed"
    check_lifecycle(captured.log, nodes=all_nodes(plan))
    assert set(reasons(captured).values()) == {"completed"}
    check_all_frames(plan, recorder, {sink: dict(plan.routes(sink)) for sink in plan.sinks})
    assert captured.result is not None
    for sink in plan.sinks:
        assert captured.result.statistics[sink].frames_in == len(recorder.arrivals(sink))
    check_accounting(plan, captured.result)


@PROPERTY
@given(plan=graphs())
def test_fast_path_and_plain_path_agree(plan: GraphPlan) -> None:
    """Fused and paced by the shared pacer, or one task per node and per source: the same run.

    The global order of events may differ (a fused chain runs inside its upstream's task, the pacer releases
    due sources in one round), so what must agree is each node's own sequence of events, the multiset of
    events (fields included), and at every sink the frames of each route, each arriving when it does on the plain
    path or at most one pacer tick later (the pacer's documented bound), never earlier.
    """
    fast, fast_rec = run_plan(plan, fuse=True, pace=True)
    plain, plain_rec = run_plan(plan, fuse=False, pace=False)
    assert fast.error is None
    assert plain.error is None
    assert node_sequences(fast.log) == node_sequences(plain.log)
    assert event_multiset(fast.log) == event_multiset(plain.log)
    for sink in plan.sinks:
        fast_frames = sorted((a.route, a.timestamp, a.t) for a in fast_rec.arrivals(sink))
        plain_frames = sorted((a.route, a.timestamp, a.t) for a in plain_rec.arrivals(sink))
        assert [f[:2] for f in fast_frames] == [f[:2] for f in plain_frames], sink
        # The pacer releases in rounds a tick apart: a frame is never early and at most one tick late.
        for (_, _, fast_t), (_, _, plain_t) in zip(fast_frames, plain_frames, strict=True):
            assert plain_t - 1e-9 <= fast_t <= plain_t + RESOLUTION + 1e-9, (sink, fast_t, plain_t)


# --- faults --------------------------------------------------------------------------------------------------


@PROPERTY
@given(case=with_fault("fail"), fuse=st.booleans(), pace=st.booleans())
def test_failure_surfaces_with_the_failing_node_name(case: tuple[GraphPlan, Fault], fuse: bool, pace: bool) -> None:
    plan, fault = case
    captured, recorder = run_plan(plan, fuse=fuse, pace=pace)
    check_lifecycle(captured.log)
    check_failure(captured.log, captured.error)
    assert captured.error is not None
    assert captured.error.node == fault.node
    assert isinstance(captured.error.__cause__, InjectedFault)
    check_all_frames(plan, recorder, prefixes(plan))


@PROPERTY
@given(case=with_fault("isolate"), fuse=st.booleans(), pace=st.booleans())
def test_isolate_keeps_the_rest_going(case: tuple[GraphPlan, Fault], fuse: bool, pace: bool) -> None:
    plan, fault = case
    captured, recorder = run_plan(plan, fuse=fuse, pace=pace)
    assert captured.error is None
    assert captured.reason == "completed"
    check_lifecycle(captured.log, nodes=all_nodes(plan))
    assert reasons(captured) == {n: ("failed" if n == fault.node else "completed") for n in all_nodes(plan)}
    assert captured.result is not None
    assert isinstance(captured.result.isolated[fault.node], InjectedFault)
    # Routes avoiding the isolated node get everything; routes through it a prefix, which includes the
    # faulty frame on its own route (the node forwards it before raising).
    expected = {
        sink: {r: range(n + 1) if passes_through(r, fault.node) else n for r, n in plan.routes(sink).items()}
        for sink in plan.sinks
    }
    check_all_frames(plan, recorder, expected)
    for sink in plan.sinks:
        for route, timestamps in recorder.routes(sink).items():
            if via_trigger(route, fault):
                assert fault.spec.at in timestamps, (sink, route)
    check_accounting(plan, captured.result, dropping=fault.node)


@PROPERTY
@given(case=with_fault("restart"), fuse=st.booleans(), pace=st.booleans())
def test_restart_after_a_transient_fault_conserves_frames(
    case: tuple[GraphPlan, Fault], fuse: bool, pace: bool
) -> None:
    """A node that fails once and is restarted loses nothing: the frame that made it fail was forwarded
    before it raised, and whatever it had taken from its mailbox but not yet handled goes to the new
    instance."""
    plan, fault = case
    captured, recorder = run_plan(plan, fuse=fuse, pace=pace)
    assert captured.error is None, captured.error
    check_lifecycle(captured.log, nodes=all_nodes(plan))
    assert set(reasons(captured).values()) == {"completed"}
    assert [e.node for e in captured.log.of("node_restarted")] == [fault.node]
    check_all_frames(plan, recorder, {sink: dict(plan.routes(sink)) for sink in plan.sinks})


@PROPERTY
@given(case=with_fault("restart", persistent=True), fuse=st.booleans())
def test_restarts_run_out_on_a_persistent_fault(case: tuple[GraphPlan, Fault], fuse: bool) -> None:
    plan, fault = case
    assert isinstance(fault.supervision, mg.Restart)
    captured, recorder = run_plan(plan, fuse=fuse)
    check_lifecycle(captured.log)
    restarts = captured.log.of("node_restarted")
    assert {e.node for e in restarts} <= {fault.node}
    assert len(restarts) <= fault.supervision.max_restarts
    # One failure per frame from ``at`` on, as long as restarts remain; so the graph fails exactly when the
    # route carries more such frames than there are restarts.
    assert fault.spec.source is not None  # restart faults are never in sources
    source = plan.node(fault.spec.source).config
    assert isinstance(source, SourceConfig)
    if source.count - fault.spec.at > fault.supervision.max_restarts:
        check_failure(captured.log, captured.error)
        assert captured.error is not None
        assert captured.error.node == fault.node
        assert len(restarts) == fault.supervision.max_restarts
    else:
        assert captured.error is None
        assert len(restarts) == source.count - fault.spec.at
    check_all_frames(plan, recorder, prefixes(plan))


# --- stop and cancel -----------------------------------------------------------------------------------------


def due_times(config: SourceConfig) -> list[float]:
    """Graph time at which each frame of a paced test source is due (as the source computes it)."""
    return [config.start + i * config.period if i else config.start for i in range(config.count)]


@PROPERTY
@given(case=with_schedule(graphs(paced=True), "stop"), fuse=st.booleans(), pace=st.booleans())
def test_graceful_stop_drains_every_node(case: tuple[GraphPlan, Schedule], fuse: bool, pace: bool) -> None:
    """Stopped at any time, sources stop and everything they emitted reaches every sink, on every route."""
    plan, stop = case
    captured, recorder = run_plan(plan, fuse=fuse, pace=pace, schedule=stop)
    assert captured.error is None
    assert captured.reason in ("stopped", "completed")
    check_lifecycle(captured.log, nodes=all_nodes(plan))
    assert set(reasons(captured).values()) == {"completed"}
    assert captured.result is not None
    # What each source emitted (its outlet counts sends only when it is linked; an unlinked one feeds no sink).
    emitted = {s: captured.result.statistics[s].frames_out for s in plan.sources}
    linked = {link.src for link in plan.links}
    for name, count in emitted.items():
        if name not in linked:
            continue
        config = plan.node(name).config
        assert isinstance(config, SourceConfig)
        due = due_times(config)
        # Frames due before the stop were emitted, none due after it; one due at that very instant may be.
        assert sum(t < stop.at - 1e-9 for t in due) <= count <= sum(t <= stop.at + 1e-9 for t in due), name
    check_all_frames(plan, recorder, {sink: {r: emitted[r[0]] for r in plan.routes(sink)} for sink in plan.sinks})


@PROPERTY
@given(
    case=with_schedule(graphs(min_inner=1, min_frames=1), "cancel").flatmap(
        lambda c: faults(c[0], actions={"raise", "sleep", "hang"}, policies=("restart", "isolate")).map(
            lambda f: (c[0].with_fault(f), f, c[1])
        )
    ),
    fuse=st.booleans(),
    pace=st.booleans(),
)
def test_cancel_at_any_time_finishes_every_node(
    case: tuple[GraphPlan, Fault, Schedule], fuse: bool, pace: bool
) -> None:
    """Cancelled at any time, even with a node asleep, hung, restarting or isolated: every node finishes
    once, and each route has delivered a prefix of its frames (a lost tail, never a gap)."""
    plan, fault, cancel = case
    assert isinstance(cancel, Cancel)
    captured, recorder = run_plan(plan, fuse=fuse, pace=pace, schedule=cancel)
    assert captured.error is None
    check_lifecycle(captured.log, nodes=all_nodes(plan))
    assert captured.reason in ("cancelled", "completed")
    if fault.spec.action == "hang":
        assert captured.reason == "cancelled"
    if captured.reason == "completed":
        isolated = fault.spec.action == "raise" and isinstance(fault.supervision, mg.Isolate)
        assert reasons(captured) == {
            n: "failed" if isolated and n == fault.node else "completed" for n in all_nodes(plan)
        }
    check_all_frames(plan, recorder, prefixes(plan))


# --- minimal reproductions of what the properties above found ------------------------------------------------


def test_a_node_failing_while_the_graph_starts_surfaces_as_node_failed_error() -> None:
    """Found by ``test_failure_surfaces_with_the_failing_node_name``: ``bad`` fails while the runtime is
    still starting ``late``; the graph's scope is cancelled before ``Runtime.start`` is told the graph
    started, and trio's ``RuntimeError("child exited without calling task_status.started()")`` escapes."""
    g = mg.Graph()
    g.add("late", "test_source", count=1, paced=True, start=0.005)  # started last
    g.add("bad", "test_source", count=1, fault={"at": 0})  # raises in its first produce()
    captured = run_graph(g)
    check_failure(captured.log, captured.error)
    assert captured.error is not None
    assert captured.error.node == "bad"


def test_a_restarted_transform_keeps_the_messages_it_had_taken() -> None:
    """Found by ``test_restart_after_a_transient_fault_conserves_frames``: a transform with its own task takes
    its mailbox in batches; when it raises at the first message, the rest of the batch is dropped, not handed
    to the restarted instance."""
    recorder = Recorder()
    g = mg.Graph()
    g.add("src", "test_source", count=3)
    g.add("map", "test_map", fault={"at": 0}, supervision=mg.Restart(max_restarts=1, backoff=0))
    g.add("sink", "test_sink", config=SinkConfig(recorder=recorder))
    g.link("src.out", "map.in")
    g.link("map.out", "sink.in")
    captured = run_graph(g)
    assert [e.event for e in captured.log.of(node="map")] == ["node_started", "node_restarted", "node_finished"]
    assert [a.timestamp for a in recorder.arrivals("sink")] == [0, 1, 2]


@pytest.mark.parametrize("supervision", [mg.FailGraph(), mg.Isolate()], ids=["fail", "isolate"])
def test_a_transform_with_two_inlets_fails_with_the_original_exception(supervision: mg.Supervision) -> None:
    """Found by ``test_isolate_keeps_the_rest_going``: a transform with several inlets and its own task reads
    them in a nursery, so its failure is reported as ``ExceptionGroup: Exceptions from Trio nursery`` (in
    ``node_finished``'s error, ``NodeFailedError.__cause__``, ``GraphResult.isolated``), not as what it raised."""
    g = mg.Graph()
    g.add("a", "test_source", count=1)
    g.add("b", "test_source", count=1)
    g.add("merge", "test_merge", fault={"at": 0, "source": "a"}, supervision=supervision)
    g.link("a.out", "merge.in0")
    g.link("b.out", "merge.in1")
    captured = run_graph(g, fuse=False)
    [finished] = captured.log.of("node_finished", "merge")
    assert finished.fields["error"].startswith("InjectedFault: ")
    if captured.error is not None:
        assert isinstance(captured.error.__cause__, InjectedFault)
    else:
        assert captured.result is not None
        assert isinstance(captured.result.isolated["merge"], InjectedFault)


def test_a_node_failing_as_the_graph_is_cancelled_is_still_supervised() -> None:
    """Found by ``test_cancel_at_any_time_finishes_every_node``: when a node's nursery ends with its error
    *and* the graph's cancellation, the group is a ``BaseExceptionGroup`` that ``except Exception`` misses: the
    node is recorded as ``completed`` and the error escapes ``open_runtime`` as a nested ``ExceptionGroup``.
    trio shuffles each scheduling batch, so the race is run many times (it shows about every other run)."""
    g = mg.Graph()
    g.add("src", "test_source", count=2)
    g.add("merge", "test_merge", capacity=1, fault={"at": 0, "path": ["merge.in0"]}, supervision=mg.Isolate())
    g.link("src.out", "merge.in0")
    g.link("src.out", "merge.in1")
    for _ in range(40):
        captured = run_graph(g, schedule=Cancel(at=0))
        check_lifecycle(captured.log, nodes=["src", "merge"])
        [finished] = captured.log.of("node_finished", "merge")
        assert finished.fields["reason"] in ("failed", "cancelled")


def test_an_isolated_node_counts_every_message_it_will_never_handle() -> None:
    """Found by ``check_accounting`` in ``test_isolate_keeps_the_rest_going``: once a node has finished, its
    mailbox still queues what is sent to it up to its capacity (reported as ``queued`` forever, not as
    ``dropped``), and what it had taken from its mailbox but not handled when it failed is counted nowhere."""
    g = mg.Graph()
    g.add("src", "test_source", count=10)
    g.add("actor", "test_actor", capacity=4, fault={"at": 0}, supervision=mg.Isolate())
    g.add("sink", "test_sink")
    g.link("src.out", "actor.in")
    g.link("actor.out", "sink.in")
    captured = run_graph(g)
    assert captured.result is not None
    stats = captured.result.statistics["actor"]
    assert stats.queued == 0, stats
    assert stats.frames_in == stats.frames_out + stats.dropped, stats
