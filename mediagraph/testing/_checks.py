"""Checkers for the invariants of the event log and of the frames recorded at sinks.

Each rule has a ``*_violations`` function returning a list of :class:`Violation` (empty when the rule holds)
and a ``check_*`` function raising :class:`InvariantError` (an ``AssertionError``) listing all of them.
Messages name the rule, the node and the events involved, with their sequence numbers.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import final

import attrs

import mediagraph as mg

from ._probes import Arrival, Route

__all__ = [
    "InvariantError",
    "Violation",
    "check_failure",
    "check_frames",
    "check_lifecycle",
    "event_multiset",
    "failure_violations",
    "format_event",
    "frame_violations",
    "lifecycle_violations",
    "node_sequences",
]

NODE_REASONS = frozenset({"completed", "cancelled", "failed"})
GRAPH_REASONS = frozenset({"completed", "stopped", "cancelled", "failed"})


def format_event(e: mg.Event) -> str:
    """``#7 t=0.01 'map1' node_finished(reason='failed', error='...')``."""
    fields = ", ".join(f"{k}={v!r}" for k, v in e.fields.items())
    where = "graph" if e.node is None else repr(e.node)
    return f"#{e.seq} t={e.t:g} {where} {e.event}({fields})"


@final
@attrs.frozen(kw_only=True)
class Violation:
    """One broken rule: which (``rule``), where (``node``, ``None`` for the graph), what (``message``) and the
    events that show it."""

    rule: str
    node: str | None
    message: str
    events: tuple[mg.Event, ...] = ()

    def __str__(self) -> str:
        where = "graph" if self.node is None else f"node {self.node!r}"
        lines = [f"[{self.rule}] {where}: {self.message}"]
        lines += [f"    {format_event(e)}" for e in self.events]
        return "\n".join(lines)


@final
class InvariantError(AssertionError):
    """Raised by the ``check_*`` functions; ``violations`` holds every broken rule found."""

    def __init__(self, violations: Sequence[Violation]) -> None:
        self.violations = list(violations)
        super().__init__(f"{len(self.violations)} invariant violation(s):\n" + "\n".join(map(str, self.violations)))


def raise_if(violations: list[Violation]) -> None:
    """Raise :class:`InvariantError` listing ``violations``, if there are any (what every ``check_*`` does)."""
    if violations:
        raise InvariantError(violations)


def _events(log: Iterable[mg.Event]) -> list[mg.Event]:
    return list(log.events if isinstance(log, mg.EventLog) else log)


# --- conveniences --------------------------------------------------------------------------------------------


def node_sequences(log: Iterable[mg.Event]) -> dict[str | None, list[tuple[str, str | None]]]:
    """Each node's events (``None``: the graph's) as ``(event, reason)`` pairs, in order.

    Two runs of one graph that may interleave nodes differently (fused or not, paced by the shared pacer or
    not) must still give every node the same sequence: compare these, not the global order.
    """
    out: dict[str | None, list[tuple[str, str | None]]] = {}
    for e in _events(log):
        out.setdefault(e.node, []).append((e.event, e.fields.get("reason")))
    return out


def event_multiset(log: Iterable[mg.Event]) -> Counter[tuple[str | None, str, str]]:
    """Every event as ``(node, event, fields as JSON)``, counted, ignoring ``seq`` and ``t``."""
    return Counter((e.node, e.event, json.dumps(e.fields, sort_keys=True, default=repr)) for e in _events(log))


# --- lifecycle -----------------------------------------------------------------------------------------------


def lifecycle_violations(log: Iterable[mg.Event], *, nodes: Iterable[str] | None = None) -> list[Violation]:
    """Check the lifecycle rules on an event log.

    The rules: ``seq`` strictly increases and ``t`` never decreases; ``graph_started`` exactly once and
    first; ``graph_finished`` exactly once and last (so after every ``node_finished``); per node at most one
    ``node_started``, and a node that started finishes exactly once, after it started; a node records nothing
    before its ``node_started`` or after its ``node_finished``; ``node_restarted`` attempts count 1, 2, 3...;
    reasons are known, a ``failed`` node carries a non-empty ``error``; a graph that ``failed`` has a failed
    node, one that ``completed`` or ``stopped`` has no cancelled node.

    Args:
        log: an :class:`mediagraph.EventLog` or any sequence of events, in recorded order.
        nodes: if given, each of these nodes must have started (and so finished).

    Returns:
        the violations found, empty when every rule holds.
    """
    events = _events(log)
    out: list[Violation] = []
    for prev, e in itertools.pairwise(events):
        if e.seq <= prev.seq:
            out.append(Violation(rule="seq-increasing", node=e.node, message="seq does not increase", events=(prev, e)))
        if e.t < prev.t:
            out.append(Violation(rule="t-monotonic", node=e.node, message="t goes back in time", events=(prev, e)))

    out += _graph_bounds(events)
    by_node: dict[str, list[mg.Event]] = {}
    for e in events:
        if e.node is not None:
            by_node.setdefault(e.node, []).append(e)
    for node, node_events in by_node.items():
        out += _node_rules(node, node_events)
    for node in nodes or ():
        if not any(e.event == "node_started" for e in by_node.get(node, ())):
            out.append(Violation(rule="node-started", node=node, message="never started"))
    out += _graph_reason(events, by_node)
    return out


def check_lifecycle(log: Iterable[mg.Event], *, nodes: Iterable[str] | None = None) -> None:
    """Raise :class:`InvariantError` if :func:`lifecycle_violations` finds any."""
    raise_if(lifecycle_violations(log, nodes=nodes))


def _graph_bounds(events: list[mg.Event]) -> list[Violation]:
    out: list[Violation] = []
    for kind, position in (("graph_started", 0), ("graph_finished", -1)):
        found = [e for e in events if e.event == kind]
        if len(found) != 1:
            out.append(
                Violation(rule=kind, node=None, message=f"{kind} recorded {len(found)} times", events=tuple(found))
            )
        elif events[position] is not found[0]:
            where = "first" if position == 0 else "last"
            out.append(
                Violation(
                    rule=kind,
                    node=None,
                    message=f"{kind} is not the {where} event",
                    events=(found[0], events[position]),
                )
            )
    return out


def _node_rules(node: str, events: list[mg.Event]) -> list[Violation]:
    out: list[Violation] = []
    started = [e for e in events if e.event == "node_started"]
    finished = [e for e in events if e.event == "node_finished"]
    if len(started) > 1:
        out.append(Violation(rule="start-once", node=node, message="started more than once", events=tuple(started)))
    if started and len(finished) != 1:
        message = "started but never finished" if not finished else f"finished {len(finished)} times"
        out.append(Violation(rule="finish-once", node=node, message=message, events=(started[0], *finished)))
    if finished and not started:
        out.append(
            Violation(rule="finish-after-start", node=node, message="finished without starting", events=tuple(finished))
        )
    if started and finished and finished[0].seq < started[0].seq:
        out.append(
            Violation(
                rule="finish-after-start",
                node=node,
                message="finished before it started",
                events=(started[0], finished[0]),
            )
        )
    if started:
        first, last = started[0], (finished[-1] if finished else None)
        for e in events:
            if e.event in ("node_started", "node_finished"):
                continue
            if e.seq < first.seq or (last is not None and e.seq > last.seq):
                span = (first,) if last is None else (first, last)
                out.append(
                    Violation(
                        rule="events-while-running",
                        node=node,
                        message=f"{e.event} recorded outside node_started..node_finished",
                        events=(*span, e),
                    )
                )
    elif any(e.event != "node_finished" for e in events):
        out.append(
            Violation(
                rule="events-while-running",
                node=node,
                message="events recorded by a node that never started",
                events=tuple(e for e in events if e.event != "node_finished"),
            )
        )
    restarts = [e for e in events if e.event == "node_restarted"]
    attempts = [e.fields.get("attempt") for e in restarts]
    if attempts != list(range(1, len(restarts) + 1)):
        out.append(
            Violation(
                rule="restart-attempts",
                node=node,
                message=f"attempts {attempts}, expected 1, 2, 3...",
                events=tuple(restarts),
            )
        )
    for e in finished:
        reason = e.fields.get("reason")
        if reason not in NODE_REASONS:
            out.append(Violation(rule="finish-reason", node=node, message=f"unknown reason {reason!r}", events=(e,)))
        error = e.fields.get("error")
        if reason == "failed" and not (isinstance(error, str) and error):
            out.append(
                Violation(rule="failure-error", node=node, message="failed without an error string", events=(e,))
            )
    return out


def _graph_reason(events: list[mg.Event], by_node: Mapping[str, list[mg.Event]]) -> list[Violation]:
    ends = [e for e in events if e.event == "graph_finished"]
    if not ends:
        return []
    end = ends[-1]
    reason = end.fields.get("reason")
    if reason not in GRAPH_REASONS:
        return [Violation(rule="graph-reason", node=None, message=f"unknown reason {reason!r}", events=(end,))]
    finished = [e for es in by_node.values() for e in es if e.event == "node_finished"]
    failed = [e for e in finished if e.fields.get("reason") == "failed"]
    cancelled = [e for e in finished if e.fields.get("reason") == "cancelled"]
    if reason == "failed" and not failed:
        return [Violation(rule="graph-reason", node=None, message="graph failed but no node failed", events=(end,))]
    if reason in ("completed", "stopped") and cancelled:
        return [
            Violation(
                rule="graph-reason",
                node=None,
                message=f"graph {reason} but node(s) were cancelled",
                events=(*cancelled, end),
            )
        ]
    return []


# --- failures ------------------------------------------------------------------------------------------------


def failure_violations(log: Iterable[mg.Event], error: BaseException | None) -> list[Violation]:
    """Check that a graph failure surfaced with the failing node's name.

    Rules: ``error`` is a :class:`mediagraph.NodeFailedError` with an original ``__cause__``; the node it
    names started and finished as ``failed``; the graph finished as ``failed``.

    Args:
        log: the run's event log.
        error: what running the graph raised (``None`` if it raised nothing).
    """
    events = _events(log)
    end = tuple(e for e in events if e.event == "graph_finished")
    if not isinstance(error, mg.NodeFailedError):
        got = "nothing" if error is None else f"{type(error).__name__}: {error}"
        return [
            Violation(rule="failure-surfaces", node=None, message=f"expected NodeFailedError, got {got}", events=end)
        ]
    out: list[Violation] = []
    if error.__cause__ is None:
        out.append(Violation(rule="failure-cause", node=error.node, message=f"{error} has no __cause__"))
    mine = [e for e in events if e.node == error.node and e.event in ("node_started", "node_finished")]
    if not any(e.event == "node_finished" and e.fields.get("reason") == "failed" for e in mine):
        out.append(
            Violation(
                rule="failure-names-node",
                node=error.node,
                message=f"NodeFailedError names {error.node!r}, which did not finish as failed",
                events=tuple(mine),
            )
        )
    if not end or end[-1].fields.get("reason") != "failed":
        out.append(
            Violation(rule="failure-graph-reason", node=None, message="graph did not finish as failed", events=end)
        )
    return out


def check_failure(log: Iterable[mg.Event], error: BaseException | None) -> None:
    """Raise :class:`InvariantError` if :func:`failure_violations` finds any."""
    raise_if(failure_violations(log, error))


# --- frames --------------------------------------------------------------------------------------------------


def _fmt_route(route: Route) -> str:
    return " -> ".join(route) if route else "(unknown route)"


def _sequence_problem(timestamps: Sequence[int | None], count: int) -> str | None:
    """What is wrong with ``timestamps`` as a prefix of 0, 1, ... count - 1, or ``None``."""
    for i, ts in enumerate(timestamps):
        if ts is None or ts < 0 or ts >= count:
            return f"unexpected frame {ts!r} at position {i} (expected at most frames 0..{count - 1})"
        if ts == i:
            continue
        if ts < i:
            return f"frame {ts} duplicated at position {i}"
        if i in timestamps[i + 1 :]:
            return f"reordered: frame {ts} arrived before frame {i}"
        return f"frame {i} lost (frame {ts} came next)"
    return None


def frame_violations(sink: str, arrivals: Sequence[Arrival], expected: Mapping[Route, int | range]) -> list[Violation]:
    """Check conservation and order of the frames a sink recorded, route by route.

    On a route whose links all block on overflow, the sink must see its source's frames 0, 1, 2... with no
    loss, duplicate or reordering.

    Args:
        sink: the sink's name, for messages.
        arrivals: what it recorded (:meth:`Recorder.arrivals`).
        expected: per route, how many frames must arrive: an ``int`` for exactly frames 0..n-1, a ``range``
            for a prefix 0..m-1 whose length m is in the range (a stopped, cancelled or faulty run).
            Routes missing here must receive nothing.
    """
    got: dict[Route, list[int | None]] = {}
    for a in arrivals:
        got.setdefault(a.route, []).append(a.timestamp)
    out: list[Violation] = []
    for route in sorted(set(got) | set(expected)):
        ts = got.get(route, [])
        want = expected.get(route)
        if want is None:
            out.append(
                Violation(
                    rule="frames-route",
                    node=sink,
                    message=f"{len(ts)} frame(s) on unexpected route {_fmt_route(route)}",
                )
            )
            continue
        limit = want if isinstance(want, int) else max(want, default=0)
        problem = _sequence_problem(ts, limit)
        if problem is None and isinstance(want, int) and len(ts) != want:
            problem = f"{len(ts)} frame(s) arrived, expected {want}: frames {len(ts)}..{want - 1} lost"
        if problem is None and isinstance(want, range) and len(ts) not in want:
            problem = f"{len(ts)} frame(s) arrived, expected a prefix of length in {want}"
        if problem is not None:
            out.append(Violation(rule="frames-conserved", node=sink, message=f"route {_fmt_route(route)}: {problem}"))
    return out


def check_frames(sink: str, arrivals: Sequence[Arrival], expected: Mapping[Route, int | range]) -> None:
    """Raise :class:`InvariantError` if :func:`frame_violations` finds any."""
    raise_if(frame_violations(sink, arrivals, expected))
