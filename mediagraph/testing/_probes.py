"""The frames test nodes pass, the faults they inject and the recorder their sinks fill.

Every test node passes :class:`ProbeFrame` messages, which say where they come from (``source``), which
frame of that source they are (``timestamp``: 0, 1, 2... with no gap) and which links they crossed
(``path``). A sink therefore knows the *route* of every frame it records, and conservation can be checked
per route (each route is a chain of FIFO, exactly-once links), even through fan-out and fan-in.

Faults are keyed on a frame's content (its source and timestamp), not on how many messages a node has
seen: a node rebuilt by a ``Restart`` policy starts with fresh state, and a content key makes a fault fire
once (transient) without any state shared across restarts, and at the same frame in every run of the graph
whatever the interleaving.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, final

import attrs

__all__ = [
    "Arrival",
    "FaultAction",
    "FaultSpec",
    "InjectedFault",
    "ProbeFrame",
    "Recorder",
    "Route",
]

_v = attrs.validators

#: A route: the source's name, then ``"node.inlet"`` for every inlet the frame entered, the sink's last.
Route = tuple[str, ...]


@final
@attrs.frozen(kw_only=True)
class ProbeFrame:
    """The message test nodes pass.

    Args:
        source: name of the ``test_source`` that made it.
        timestamp: index of the frame in its source's stream (0, 1, 2...).
        path: ``"node.inlet"`` of every inlet it crossed since the source, in order.
        payload: filler bytes (a ``test_source``'s ``size``); shared between frames, never copied.
    """

    source: str
    timestamp: int
    path: tuple[str, ...] = ()
    payload: bytes = attrs.field(default=b"", repr=lambda p: f"<{len(p)} bytes>")

    @property
    def route(self) -> Route:
        return (self.source, *self.path)

    def hop(self, inlet: str) -> ProbeFrame:
        """This frame after entering ``inlet`` (``"node.inlet"``)."""
        return ProbeFrame(source=self.source, timestamp=self.timestamp, path=(*self.path, inlet), payload=self.payload)


@final
class InjectedFault(Exception):
    """The exception a test node raises when its :class:`FaultSpec` says so."""


FaultAction = Literal["raise", "sleep", "hang"]


def _optional_tuple(value: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


@final
@attrs.frozen(kw_only=True)
class FaultSpec:
    """When and how a test node misbehaves.

    Args:
        at: the timestamp of the frame that triggers the fault.
        source: only frames of this source trigger it (``None``: any source).
        path: only frames whose ``path`` is this one once they entered the node (so its last element is the
            node's ``"node.inlet"``; ``()`` for a source's own frames) trigger it (``None``: any path). With
            ``source`` and ``path`` set, exactly one message triggers a fault that does not ``repeat``, even
            when a frame reaches the node by several routes.
        action: ``raise`` :class:`InjectedFault` *after* forwarding the frame (so the node itself loses
            nothing; whatever a restart loses is the runtime's), ``sleep`` for ``seconds`` before forwarding
            it, or ``hang`` (sleep forever: only cancelling the graph ends the node). Only actors can sleep
            or hang; transforms and sources must not block.
        seconds: how long ``sleep`` sleeps.
        repeat: trigger on every frame whose timestamp is ``at`` or later, not only on ``at`` (a persistent
            fault: each incarnation of a restarted node fails again on its first such frame).
    """

    at: int = attrs.field(validator=_v.ge(0))
    source: str | None = None
    path: tuple[str, ...] | None = attrs.field(default=None, converter=_optional_tuple)
    action: FaultAction = attrs.field(default="raise", validator=_v.in_(("raise", "sleep", "hang")))
    seconds: float = attrs.field(default=0.0, validator=_v.ge(0))
    repeat: bool = False

    def matches(self, frame: Any) -> bool:
        """Whether ``frame`` (as the node forwards it, its own inlet added to the path) triggers the fault."""
        if type(frame) is not ProbeFrame:
            return False
        if (self.source is not None and frame.source != self.source) or (
            self.path is not None and frame.path != self.path
        ):
            return False
        return frame.timestamp >= self.at if self.repeat else frame.timestamp == self.at


@final
@attrs.frozen(kw_only=True)
class Arrival:
    """One message recorded by a ``test_sink``.

    Args:
        index: arrival order at the sink (0, 1, 2...), across all its inlets.
        inlet: the sink's inlet it arrived on.
        source: the ``test_source`` that made it (``None`` for a message that is not a :class:`ProbeFrame`).
        route: the source, then every ``"node.inlet"`` crossed, this sink's last (empty when unknown).
        timestamp: the frame's timestamp (a ``timestamp`` or ``pts`` attribute for other messages).
        t: graph time of the arrival, in seconds.
        message: the message itself.
    """

    index: int
    inlet: str
    source: str | None
    route: Route
    timestamp: int | None
    t: float
    message: Any = attrs.field(eq=False, repr=False)


@final
class Recorder:
    """What the ``test_sink`` nodes of one run received, by sink name.

    Pass a new recorder in the config of every sink of a graph (``SinkConfig(recorder=rec)``) for each run:
    it is the only mutable state the test nodes share, and it belongs to the test that created it, so no
    state leaks from one run (or one hypothesis example) to the next. A recorder is an ordinary object:
    configs hold a reference to it and compare it by identity.
    """

    def __init__(self) -> None:
        self._arrivals: dict[str, list[Arrival]] = {}

    def __repr__(self) -> str:
        counts = ", ".join(f"{sink}={len(a)}" for sink, a in self._arrivals.items())
        return f"<Recorder {counts or 'empty'}>"

    def record(self, sink: str, inlet: str, message: Any, t: float) -> Arrival:
        """Append what ``sink`` received (called by ``test_sink``)."""
        arrivals = self._arrivals.setdefault(sink, [])
        if type(message) is ProbeFrame:
            source: str | None = message.source
            route: Route = (*message.route, f"{sink}.{inlet}")
            timestamp: int | None = message.timestamp
        else:
            source, route = None, ()
            timestamp = getattr(message, "timestamp", getattr(message, "pts", None))
        arrival = Arrival(
            index=len(arrivals), inlet=inlet, source=source, route=route, timestamp=timestamp, t=t, message=message
        )
        arrivals.append(arrival)
        return arrival

    @property
    def sinks(self) -> list[str]:
        """The sinks that received at least one message."""
        return list(self._arrivals)

    def arrivals(self, sink: str) -> list[Arrival]:
        """Everything ``sink`` received, in arrival order (empty if nothing)."""
        return list(self._arrivals.get(sink, ()))

    def routes(self, sink: str) -> dict[Route, list[int | None]]:
        """The timestamps ``sink`` received on each route, in arrival order."""
        out: dict[Route, list[int | None]] = {}
        for a in self._arrivals.get(sink, ()):
            out.setdefault(a.route, []).append(a.timestamp)
        return out
