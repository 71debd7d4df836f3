"""The probe node types: ``test_source``, ``test_map``, ``test_merge``, ``test_actor`` and ``test_sink``.

They pass :class:`~mediagraph.testing._probes.ProbeFrame` messages on ports named ``in`` and ``out``; each
pass-through adds the inlet it crossed to a frame's path, every node but the sink can be given a
:class:`~mediagraph.testing._probes.FaultSpec`, and the sink records what arrives into the
:class:`~mediagraph.testing._probes.Recorder` of its config. Importing this module registers them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, final

import attrs
import trio

import mediagraph as mg

from ._probes import FaultSpec, InjectedFault, ProbeFrame, Recorder

__all__ = [
    "ActorConfig",
    "MapConfig",
    "MergeConfig",
    "ProbeActor",
    "ProbeMap",
    "ProbeMerge",
    "ProbeSink",
    "ProbeSource",
    "SinkConfig",
    "SourceConfig",
]

_v = attrs.validators


def _to_fault(value: FaultSpec | Mapping[str, Any] | None) -> FaultSpec | None:
    """A config field converter, so a YAML graph can say ``fault: {at: 3, action: raise}``."""
    if value is None or isinstance(value, FaultSpec):
        return value
    return mg.config_from_mapping(FaultSpec, value, where="fault")


def _raise_only(_: object, attribute: attrs.Attribute[Any], fault: FaultSpec | None) -> None:
    if fault is not None and fault.action != "raise":
        raise ValueError(f"{attribute.name}: a transform or source cannot {fault.action}; only test_actor can")


def _inlet(name: str, capacity: int, overflow: mg.Overflow, types: type = ProbeFrame) -> mg.InletSpec:
    return mg.InletSpec(name=name, types=types, capacity=capacity, overflow=overflow)


_OUT = mg.OutletSpec(name="out", types=ProbeFrame)


# --- test_source ------------------------------------------------------------------------------------------


@final
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


@final
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


@final
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


@final
@mg.node_type("test_map", config=MapConfig)
class ProbeMap(_PassThrough):
    """A transform passing probe frames from ``in`` to ``out``; can raise at a given frame."""

    @staticmethod
    def ports(config: MapConfig) -> mg.Ports:
        return mg.Ports(inlets=[_inlet("in", config.capacity, config.overflow)], outlets=[_OUT])

    def __repr__(self) -> str:
        return f"<ProbeMap {self.frames} frames>"


@final
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


@final
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


@final
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


@final
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


@final
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


@final
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
