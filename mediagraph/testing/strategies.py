"""Hypothesis strategies: random DAGs of test nodes, faults to inject into them, stop and cancel schedules,
and callback timings for the simulated sound device.

Needs ``hypothesis`` (a development dependency, not a runtime one). Typical use::

    @given(plan=graphs())
    def test_my_invariant(plan: GraphPlan) -> None:
        recorder = Recorder()
        captured = trio.run(capture, plan.build(recorder), clock=MockClock(autojump_threshold=0))
        check_lifecycle(captured.log)

For a fault or a schedule, which depend on the plan, draw them together::

    @given(case=graphs(min_inner=1).flatmap(lambda p: st.tuples(st.just(p), faults(p))))
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Literal

import hypothesis.strategies as st

import mediagraph as mg

from ._capture import Cancel, Schedule, Stop
from ._devices import DeviceTiming
from ._nodes import ActorConfig, MapConfig, MergeConfig, SinkConfig, SourceConfig
from ._plans import Fault, GraphPlan, LinkPlan, NodePlan
from ._probes import FaultAction, FaultSpec, Route

__all__ = ["Policy", "device_timings", "faults", "graphs", "schedules"]

Policy = Literal["fail", "restart", "isolate"]
InnerKind = Literal["map", "actor", "merge"]


@st.composite
def graphs(
    draw: st.DrawFn,
    *,
    max_sources: int = 3,
    min_inner: int = 0,
    max_inner: int = 4,
    max_sinks: int = 2,
    min_frames: int = 0,
    max_frames: int = 10,
    paced: bool | None = None,
    kinds: Sequence[InnerKind] = ("map", "actor", "merge"),
    capacities: Sequence[int] = (1, 2, 64),
) -> GraphPlan:
    """Random DAGs of test nodes: sources, then maps, actors and merges, then sinks.

    Every node but a source takes its input from earlier nodes: maps, actors and sinks from one or two (fan-in
    on one inlet), merges from one per inlet (the same node may feed two inlets). A node may feed several later
    ones (fan-out) or none. Every inlet blocks on overflow, so every route conserves its frames.

    Args:
        max_sources: 1 to this many sources, each of ``min_frames`` to ``max_frames`` frames.
        min_inner, max_inner: how many maps, actors and merges (of ``kinds``).
        max_sinks: 1 to this many sinks.
        paced: whether sources are paced on the graph clock (``None``: each one drawn).
        capacities: mailbox sizes to draw from (small ones exercise backpressure).

    Returns:
        a strategy of :class:`GraphPlan`, with no fault.
    """
    nodes: list[NodePlan] = []
    links: list[LinkPlan] = []
    for i in range(draw(st.integers(1, max_sources))):
        config = SourceConfig(
            count=draw(st.integers(min_frames, max_frames)),
            paced=draw(st.booleans()) if paced is None else paced,
            period=draw(st.sampled_from((0.01, 0.02, 0.05))),
            start=draw(st.sampled_from((0.0, 0.005, 0.03))),
            size=draw(st.sampled_from((0, 960))),
        )
        nodes.append(NodePlan(name=f"src{i}", config=config))
    feeders = [n.name for n in nodes]
    capacity = st.sampled_from(capacities)
    for _ in range(draw(st.integers(min_inner, max_inner))):
        kind = draw(st.sampled_from(kinds))
        name = f"{kind}{len(nodes)}"
        if kind == "merge":
            inlets = draw(st.integers(2, 3))
            nodes.append(NodePlan(name=name, config=MergeConfig(inlets=inlets, capacity=draw(capacity))))
            links += [LinkPlan(src=draw(st.sampled_from(feeders)), dst=name, inlet=f"in{i}") for i in range(inlets)]
        else:
            inner = MapConfig(capacity=draw(capacity)) if kind == "map" else ActorConfig(capacity=draw(capacity))
            nodes.append(NodePlan(name=name, config=inner))
            ups = draw(st.lists(st.sampled_from(feeders), min_size=1, max_size=2, unique=True))
            links += [LinkPlan(src=up, dst=name) for up in ups]
        feeders.append(name)
    for _ in range(draw(st.integers(1, max_sinks))):
        name = f"sink{len(nodes)}"
        nodes.append(NodePlan(name=name, config=SinkConfig(capacity=draw(capacity))))
        ups = draw(st.lists(st.sampled_from(feeders), min_size=1, max_size=2, unique=True))
        links += [LinkPlan(src=up, dst=name) for up in ups]
    return GraphPlan(nodes=tuple(nodes), links=tuple(links))


def _policy(policy: Policy) -> st.SearchStrategy[mg.Supervision]:
    if policy == "fail":
        return st.just(mg.FailGraph())
    if policy == "isolate":
        return st.just(mg.Isolate())
    return st.builds(mg.Restart, max_restarts=st.integers(1, 3), backoff=st.sampled_from((0.0, 0.01)))


@st.composite
def _fault(
    draw: st.DrawFn,
    plan: GraphPlan,
    candidates: Sequence[str],
    actions: Collection[FaultAction],
    policies: Sequence[Policy],
    persistent: bool,
) -> Fault:
    node = plan.node(draw(st.sampled_from(candidates)))
    sources = plan.sources
    if isinstance(node.config, SourceConfig):
        route: Route = (node.name,)
    else:
        route = draw(st.sampled_from(sorted(r for r, count in plan.routes(node.name).items() if count > 0)))
    source = route[0]
    allowed = sorted(actions if isinstance(node.config, ActorConfig) else set(actions) & {"raise"})
    action = draw(st.sampled_from(allowed))
    choices = [p for p in policies if not (p == "restart" and isinstance(node.config, SourceConfig))]
    spec = FaultSpec(
        at=draw(st.integers(0, sources[source] - 1)),
        source=source,
        path=route[1:],
        action=action,
        seconds=draw(st.sampled_from((0.001, 0.05, 1.0))) if action == "sleep" else 0.0,
        repeat=persistent,
    )
    return Fault(node=node.name, spec=spec, supervision=draw(_policy(draw(st.sampled_from(choices)))))


def faults(
    plan: GraphPlan,
    *,
    actions: Collection[FaultAction] = frozenset({"raise"}),
    policies: Sequence[Policy] = ("fail", "restart", "isolate"),
    persistent: bool = False,
) -> st.SearchStrategy[Fault]:
    """Faults for ``plan``: a node that raises, sleeps or hangs at a frame it will receive, and its policy.

    The node is a map, merge or actor (or, except under ``restart``, a source); the trigger is one frame on
    one route into it (its source and path are in the spec), so a fault that does not repeat fires once.
    Sources, maps and merges only ``raise``; actors take any of ``actions``. A ``raise`` forwards the frame
    first, so the faulty node itself loses no frame. Apply the fault with :meth:`GraphPlan.with_fault`.

    Args:
        actions: what the node may do (``raise``, ``sleep``, ``hang``; a hang needs a :class:`Cancel`).
        policies: the supervision policies to draw from.
        persistent: the node fails again at every later frame of that route (a restarted node fails again
            until its restarts run out), instead of only once.

    Returns:
        a strategy of :class:`Fault`; empty when no node of ``plan`` can fail as asked (draw plans with
        ``min_inner=1, min_frames=1`` to avoid that).
    """
    sources = plan.sources
    can_fail = {"raise"} & set(actions) and any(p != "restart" for p in policies)
    candidates = [
        n.name
        for n in plan.nodes
        if any(sources[s] > 0 for s in plan.upstream_sources(n.name))
        and (
            (isinstance(n.config, MapConfig | MergeConfig) and "raise" in actions)
            or isinstance(n.config, ActorConfig)
            or (isinstance(n.config, SourceConfig) and can_fail)
        )
    ]
    if not candidates:
        return st.nothing()
    return _fault(plan, candidates, actions, policies, persistent)


def schedules(
    plan: GraphPlan, *, kinds: Collection[Literal["stop", "cancel"]] = ("stop", "cancel")
) -> st.SearchStrategy[Schedule]:
    """A graceful stop or a cancel at a graph time between 0 and a little after ``plan``'s last paced frame.

    Times are whole milliseconds, so a schedule may land exactly on a frame's due time.
    """
    last = math.ceil(plan.duration * 1000) + 10
    at = st.integers(0, last).map(lambda ms: ms / 1000)
    options: list[st.SearchStrategy[Schedule]] = []
    if "stop" in kinds:
        options.append(st.builds(Stop, at=at))
    if "cancel" in kinds:
        options.append(st.builds(Cancel, at=at))
    return st.one_of(options)


def device_timings(
    *,
    tick: float = 1 / 1024,
    max_ticks: int = 40,
    max_latency: float = 0.05,
    interrupts: bool = True,
) -> st.SearchStrategy[list[DeviceTiming]]:
    """Schedules of device callbacks, for a test releasing a :class:`FakeStream`'s blocks one by one.

    Each callback comes 0 (a burst) to ``max_ticks`` ticks after the previous one: with a block of a few
    ticks, that covers callbacks early, on time and late enough for PortAudio to flag an underflow. Whole
    ticks of a power-of-two fraction of a second add up exactly in binary, so a reference model computes
    exactly what the node saw, with no rounding doubt about what came first. The DAC latency is 0 to
    ``max_latency`` seconds, and now and then (one callback in ten) the test interrupts the node right after
    the callback.

    Args:
        tick: the unit of callback intervals, in seconds.
        max_ticks: the longest interval, in ticks.
        max_latency: the longest DAC latency, in seconds.
        interrupts: whether any callback is followed by an interrupt.

    Returns:
        a strategy of non-empty lists of :class:`DeviceTiming` with at least one positive interval, so a test
        that cycles through the list until the graph ends always moves time forward.
    """
    return st.lists(
        st.builds(
            DeviceTiming,
            st.integers(0, max_ticks).map(lambda n: n * tick),
            st.floats(0.0, max_latency),
            st.integers(0, 9).map(lambda n: n == 0) if interrupts else st.just(False),
        ),
        min_size=1,
    ).filter(lambda ts: any(t.interval > 0 for t in ts))
