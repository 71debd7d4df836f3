"""Test node types, the frames they pass and the recorder their sinks fill.

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

from collections.abc import Iterable, Mapping
from typing import Any, Literal

import attrs
import numpy as np
import trio

import mediagraph as mg

__all__ = [
    "ActorConfig",
    "AudioScript",
    "Arrival",
    "FaultSpec",
    "InjectedFault",
    "MapConfig",
    "MergeConfig",
    "ProbeFrame",
    "Recorder",
    "Route",
    "SinkConfig",
    "ScriptConfig",
    "SourceConfig",
    "Step",
    "ProbeActor",
    "ProbeMap",
    "ProbeMerge",
    "ProbeSink",
    "ProbeSource",
]

_v = attrs.validators

#: A route: the source's name, then ``"node.inlet"`` for every inlet the frame entered, the sink's last.
Route = tuple[str, ...]


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


class InjectedFault(Exception):
    """The exception a test node raises when its :class:`FaultSpec` says so."""


FaultAction = Literal["raise", "sleep", "hang"]


def _optional_tuple(value: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


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


def _to_fault(value: FaultSpec | Mapping[str, Any] | None) -> FaultSpec | None:
    """A config field converter, so a YAML graph can say ``fault: {at: 3, action: raise}``."""
    if value is None or isinstance(value, FaultSpec):
        return value
    return mg.config_from_mapping(FaultSpec, value, where="fault")


def _raise_only(_: object, attribute: attrs.Attribute[Any], fault: FaultSpec | None) -> None:
    if fault is not None and fault.action != "raise":
        raise ValueError(f"{attribute.name}: a transform or source cannot {fault.action}; only test_actor can")


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


def _inlet(name: str, capacity: int, overflow: mg.Overflow, types: type = ProbeFrame) -> mg.InletSpec:
    return mg.InletSpec(name=name, types=types, capacity=capacity, overflow=overflow)


_OUT = mg.OutletSpec(name="out", types=ProbeFrame)


# --- test_source ------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class SourceConfig:
    """Args:
    count: frames to emit (timestamps 0 to count - 1).
    paced: emit frame ``i`` at graph time ``start + i * period``; ``False``: as fast as the graph takes them.
    period: seconds between paced frames.
    start: graph time of the first paced frame.
    size: payload bytes per frame.
    fault: raise after emitting the frame the spec names (``action`` must be ``raise``).
    """

    count: int = attrs.field(default=10, validator=_v.ge(0))
    paced: bool = False
    period: float = attrs.field(default=0.01, validator=_v.gt(0))
    start: float = attrs.field(default=0.0, validator=_v.ge(0))
    size: int = attrs.field(default=0, validator=_v.ge(0))
    fault: FaultSpec | None = attrs.field(default=None, converter=_to_fault, validator=_raise_only)


@mg.node_type("test_source", config=SourceConfig)
class ProbeSource(mg.Source):
    """Emits ``count`` probe frames with consecutive timestamps on ``out``, paced or as fast as possible."""

    @staticmethod
    def ports(config: SourceConfig) -> mg.Ports:
        return mg.Ports(outlets=[_OUT])

    def __init__(self, config: SourceConfig) -> None:
        self.config = config
        self.next = 0
        self._waited = not config.paced or config.start == 0
        self._payload = bytes(config.size)

    def __repr__(self) -> str:
        return f"<ProbeSource {self.next}/{self.config.count} frames>"

    def start(self, io: mg.NodeIO) -> None:
        self._name = io.name
        self._emit = io.outlets["out"].emit

    def produce(self) -> float | None:
        cfg = self.config
        if not self._waited:  # the runtime calls produce at once; the first paced frame is due at ``start``
            self._waited = True
            return cfg.start
        if self.next >= cfg.count:
            return None
        frame = ProbeFrame(source=self._name, timestamp=self.next, payload=self._payload)
        self._emit(frame)
        self.next += 1
        if cfg.fault is not None and cfg.fault.matches(frame):
            raise InjectedFault(f"node {self._name!r}: injected fault at frame {frame.source}/{frame.timestamp}")
        if self.next >= cfg.count:
            return None
        return cfg.start + self.next * cfg.period if cfg.paced else 0.0


# --- test_map and test_merge -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class MapConfig:
    """Args:
    capacity: mailbox size of ``in`` (when the runtime gives the node its own task).
    overflow: policy of ``in`` on a full mailbox.
    fault: raise after forwarding the frame the spec names (``action`` must be ``raise``).
    """

    capacity: int = attrs.field(default=64, validator=_v.gt(0))
    overflow: mg.Overflow = attrs.field(default=mg.Overflow.BLOCK, converter=mg.Overflow)
    fault: FaultSpec | None = attrs.field(default=None, converter=_to_fault, validator=_raise_only)


class _PassThrough(mg.Transform):
    """Forwards every message from any inlet to ``out``, adding the inlet to a probe frame's path."""

    def __init__(self, config: MapConfig | MergeConfig) -> None:
        self.fault = config.fault
        self.frames = 0

    def start(self, io: mg.NodeIO) -> None:
        self._name = io.name
        self._emit = io.outlets["out"].emit

    def process(self, inlet: str, msg: Any) -> None:
        if type(msg) is not ProbeFrame:
            self._emit(msg)
            return
        self.frames += 1
        out = msg.hop(f"{self._name}.{inlet}")
        self._emit(out)
        if self.fault is not None and self.fault.matches(out):
            raise InjectedFault(f"node {self._name!r}: injected fault at frame {msg.source}/{msg.timestamp}")


@mg.node_type("test_map", config=MapConfig)
class ProbeMap(_PassThrough):
    """A transform passing probe frames from ``in`` to ``out``; can raise at a given frame."""

    @staticmethod
    def ports(config: MapConfig) -> mg.Ports:
        return mg.Ports(inlets=[_inlet("in", config.capacity, config.overflow)], outlets=[_OUT])

    def __repr__(self) -> str:
        return f"<ProbeMap {self.frames} frames>"


@attrs.frozen(kw_only=True)
class MergeConfig:
    """Args:
    inlets: number of inlets, named ``in0``, ``in1``...
    capacity: mailbox size of each inlet (when the runtime gives the node its own task).
    overflow: policy of each inlet on a full mailbox.
    fault: raise after forwarding the frame the spec names (``action`` must be ``raise``).
    """

    inlets: int = attrs.field(default=2, validator=_v.ge(2))
    capacity: int = attrs.field(default=64, validator=_v.gt(0))
    overflow: mg.Overflow = attrs.field(default=mg.Overflow.BLOCK, converter=mg.Overflow)
    fault: FaultSpec | None = attrs.field(default=None, converter=_to_fault, validator=_raise_only)


@mg.node_type("test_merge", config=MergeConfig)
class ProbeMerge(_PassThrough):
    """A transform merging probe frames from ``in0``, ``in1``... into ``out`` (fan-in)."""

    @staticmethod
    def ports(config: MergeConfig) -> mg.Ports:
        return mg.Ports(
            inlets=[_inlet(f"in{i}", config.capacity, config.overflow) for i in range(config.inlets)],
            outlets=[_OUT],
        )

    def __repr__(self) -> str:
        return f"<ProbeMerge {self.frames} frames>"


# --- test_actor --------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ActorConfig:
    """Args:
    capacity: mailbox size of ``in``.
    overflow: policy of ``in`` on a full mailbox.
    fault: raise after forwarding, sleep or hang before forwarding the frame the spec names.
    """

    capacity: int = attrs.field(default=64, validator=_v.gt(0))
    overflow: mg.Overflow = attrs.field(default=mg.Overflow.BLOCK, converter=mg.Overflow)
    fault: FaultSpec | None = attrs.field(default=None, converter=_to_fault)


@mg.node_type("test_actor", config=ActorConfig)
class ProbeActor(mg.Actor):
    """An actor (its own task) passing probe frames from ``in`` to ``out``; can raise, sleep or hang."""

    @staticmethod
    def ports(config: ActorConfig) -> mg.Ports:
        return mg.Ports(inlets=[_inlet("in", config.capacity, config.overflow)], outlets=[_OUT])

    def __init__(self, config: ActorConfig) -> None:
        self.fault = config.fault
        self.frames = 0

    def __repr__(self) -> str:
        return f"<ProbeActor {self.frames} frames>"

    async def run(self, io: mg.NodeIO) -> None:
        out = io.outlets["out"]
        hop = f"{io.name}.in"
        async for msg in io.inlets["in"]:
            if type(msg) is not ProbeFrame:
                await out.send(msg)
                continue
            self.frames += 1
            forwarded = msg.hop(hop)
            fault = self.fault if self.fault is not None and self.fault.matches(forwarded) else None
            if fault is not None and fault.action == "sleep":
                await trio.sleep(fault.seconds)
            elif fault is not None and fault.action == "hang":
                await trio.sleep_forever()
            await out.send(forwarded)
            if fault is not None and fault.action == "raise":
                raise InjectedFault(f"node {io.name!r}: injected fault at frame {msg.source}/{msg.timestamp}")


# --- test_sink ---------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class SinkConfig:
    """Args:
    recorder: where to record what arrives (``None``: count and discard).
    capacity: mailbox size of ``in`` (when the runtime gives the node its own task).
    overflow: policy of ``in`` on a full mailbox.
    """

    recorder: Recorder | None = attrs.field(default=None, eq=False)
    capacity: int = attrs.field(default=64, validator=_v.gt(0))
    overflow: mg.Overflow = attrs.field(default=mg.Overflow.BLOCK, converter=mg.Overflow)


@mg.node_type("test_sink", config=SinkConfig)
class ProbeSink(mg.Transform):
    """Records every message arriving on ``in`` (any type) into the config's :class:`Recorder`."""

    @staticmethod
    def ports(config: SinkConfig) -> mg.Ports:
        return mg.Ports(inlets=[_inlet("in", config.capacity, config.overflow, types=object)])

    def __init__(self, config: SinkConfig) -> None:
        self.recorder = config.recorder
        self.frames = 0

    def __repr__(self) -> str:
        return f"<ProbeSink {self.frames} messages>"

    def start(self, io: mg.NodeIO) -> None:
        self._io = io

    def process(self, inlet: str, msg: Any) -> None:
        self.frames += 1
        if self.recorder is not None:
            self.recorder.record(self._io.name, inlet, msg, self._io.time())


# --- a scripted audio source, for playback tests ---------------------------------------------------------

#: One step of a :class:`ScriptConfig` script: ``("frame", 0)`` one frame, ``("flush", 0)``, ``("interrupt", 0)``,
#: or ``("wait", seconds)``.
Step = tuple[str, float]
_STEP_KINDS = ("frame", "flush", "interrupt", "wait")


def _steps(steps: Iterable[Step]) -> tuple[Step, ...]:
    out = tuple((str(kind), float(value)) for kind, value in steps)
    for kind, value in out:
        if kind not in _STEP_KINDS or value < 0:
            raise ValueError(f"script step ({kind!r}, {value}): expected one of {', '.join(_STEP_KINDS)}, value >= 0")
    return out


@attrs.frozen(kw_only=True)
class ScriptConfig:
    """Args:
    script: the steps, played on the graph clock: each frame takes its own duration, each wait its seconds,
        flushes and interrupts none.
    sample_rate: Hz, mono.
    frame_samples: samples per frame.
    """

    script: tuple[Step, ...] = attrs.field(default=(), converter=_steps)
    sample_rate: int = attrs.field(default=48000, validator=attrs.validators.gt(0))
    frame_samples: int = attrs.field(default=480, validator=attrs.validators.gt(0))


@mg.node_type("test_audio_script", config=ScriptConfig)
class AudioScript(mg.Source):
    """Plays a script of audio frames, flushes, interrupts and pauses on the graph clock. Frame ``n`` holds the
    value ``n + 1`` in every sample and has timestamp ``n * frame_samples``, so a sink can tell which it got."""

    @staticmethod
    def ports(config: ScriptConfig) -> mg.Ports:
        fmt = mg.AudioFormat(sample_rate=config.sample_rate, channels=1)
        return mg.Ports(outlets=[mg.OutletSpec(name="audio", format=fmt)])

    def __init__(self, config: ScriptConfig) -> None:
        self.config = config
        self.steps = list(config.script)
        self.at = 0.0
        self.frames = 0

    def start(self, io: mg.NodeIO) -> None:
        self.emit = io.outlets["audio"].emit

    def produce(self) -> float | None:
        cfg = self.config
        while self.steps:
            kind, value = self.steps.pop(0)
            if kind == "frame":
                samples = np.full((cfg.frame_samples, 1), self.frames + 1, np.int16)
                timestamp = self.frames * cfg.frame_samples
                self.emit(mg.AudioFrame(samples=samples, sample_rate=cfg.sample_rate, channels=1, timestamp=timestamp))
                self.frames += 1
                self.at += cfg.frame_samples / cfg.sample_rate
                return self.at
            if kind == "wait":
                self.at += value
                return self.at
            self.emit(mg.Flush() if kind == "flush" else mg.Interrupt())
        return None
