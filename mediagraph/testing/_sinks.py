"""A fault-injectable audio sink, to test graphs (and slots) against sinks that die or break the contract."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, final, get_args

import attrs

import mediagraph as mg

from ._probes import InjectedFault

__all__ = ["Breach", "FaultySinkConfig", "FaultySink"]

#: The ways :class:`FaultySink` can break the segment contract, at its segment ``breach_segment``:
#: ``second_start`` (a second ``PlaybackStarted``), ``second_finish`` (a second ``PlaybackFinished``),
#: ``start_after_finish``, ``lost_finish`` (the finish is never sent), ``position_beyond_sent`` (a position
#: larger than the ``sent`` it reports), ``inflated_sent`` (position and ``sent`` both a second more than it was
#: sent: only a node that knows what it sent — a slot — can tell), and ``stale`` (once the turn after an interrupt
#: has begun, a late progress event of the interrupted generation: not a breach, the runtime drops it).
Breach = Literal[
    "second_start",
    "second_finish",
    "start_after_finish",
    "lost_finish",
    "position_beyond_sent",
    "inflated_sent",
    "stale",
]


def _breach(_: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and value not in get_args(Breach):
        raise ValueError(f"breach must be one of {', '.join(get_args(Breach))}, got {value!r}")


@final
@attrs.frozen(kw_only=True)
class FaultySinkConfig:
    """Args:
    like: the node type whose ports the sink has (default ``speaker``), so it can go into a slot that holds one.
    die_at_frame: raise :class:`InjectedFault` when the ``die_at_frame``-th audio frame (1-based) arrives.
    die_at_interrupt: raise :class:`InjectedFault` when an ``Interrupt`` arrives.
    breach: how to break the segment contract (see :data:`Breach`), at segment ``breach_segment``.
    breach_segment: the sink's own id of the segment where it breaks the contract.
    """

    like: str = "speaker"
    die_at_frame: int | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.gt(0)))
    die_at_interrupt: bool = False
    breach: str | None = attrs.field(default=None, validator=_breach)
    breach_segment: int = attrs.field(default=0, validator=attrs.validators.ge(0))


@final
@mg.node_type("test_faulty_sink", config=FaultySinkConfig)
class FaultySink(mg.Actor):
    """An audio sink that plays every frame the moment it arrives, sends ``PlaybackProgress`` after each one,
    logs ``sink_total`` (frames received) at its end, and dies or breaks the segment contract on request."""

    @staticmethod
    def ports(config: FaultySinkConfig) -> mg.Ports:
        nt = mg.get_node_type(config.like)
        return nt.ports(nt.make_config({}, where=f"test_faulty_sink like {config.like!r}"))

    def __init__(self, config: FaultySinkConfig) -> None:
        self.config = config
        self.tracker: mg.PlaybackTracker | None = None
        self.frames = 0
        self.stale: mg.PlaybackProgress | None = None  # a late event of an interrupted turn, to send

    async def run(self, io: mg.NodeIO) -> None:
        self.io = io
        ports = self.ports(self.config)
        self.emit = io.outlets[ports.outlets[0].name].emit
        self.progress = mg.PlaybackProgress in ports.outlets[0].types  # sent only where the ports declare it
        async for msg in io.inlets[ports.inlets[0].name]:
            self._handle(msg)
        if self.tracker is not None:
            self._send(self.tracker.end(io.time()))
        io.log("sink_total", received=self.frames)

    def _handle(self, msg: Any) -> None:
        cfg, t = self.config, self.io.time()
        if isinstance(msg, mg.AudioFrame):
            self.frames += 1
            if self.frames == cfg.die_at_frame:
                raise InjectedFault(f"{self.io.name}: died at frame {self.frames}")
            tracker = self._tracker(msg.sample_rate)
            n = msg.samples_per_channel
            tracker.queue(n, start=msg.timestamp / msg.sample_rate)
            self._send(tracker.played(n, t))
        elif isinstance(msg, mg.Interrupt):
            if cfg.die_at_interrupt:
                raise InjectedFault(f"{self.io.name}: died at an interrupt")
            if self.tracker is not None:
                events, _ = self.tracker.interrupt(t)
                self._send(events)
                if cfg.breach == "stale" and events:  # sent once the next generation has begun
                    old = events[-1]
                    self.stale = mg.PlaybackProgress(segment=old.segment, position=0.0, generation=old.generation, t=t)
        elif isinstance(msg, mg.Flush):
            self._send(self._tracker(48000).flush(t))

    def _tracker(self, rate: int) -> mg.PlaybackTracker:
        """The sink's tracker, made at its first frame (or flush): progress at every frame, where declared."""
        if self.tracker is None:
            self.tracker = mg.PlaybackTracker(rate, progress_interval=0 if self.progress else None)
        return self.tracker

    def _send(self, events: Sequence[mg.PlaybackEvent | mg.PlaybackProgress]) -> None:
        cfg = self.config
        for event in events:
            broken = cfg.breach is not None and event.segment == cfg.breach_segment
            if broken and isinstance(event, mg.PlaybackFinished):
                if cfg.breach == "lost_finish":
                    continue
                if cfg.breach == "position_beyond_sent":
                    event = attrs.evolve(event, position=event.sent + 1.0)
                elif cfg.breach == "inflated_sent":
                    event = attrs.evolve(event, position=event.position + 1.0, sent=event.sent + 1.0)
            self.emit(event)
            if self.stale is not None and event.generation > self.stale.generation:
                self.emit(self.stale)  # a late event of the interrupted turn, after the new one began
                self.stale = None
            if not broken:
                continue
            twice = mg.PlaybackStarted if cfg.breach == "second_start" else mg.PlaybackFinished
            if cfg.breach in ("second_start", "second_finish") and isinstance(event, twice):
                self.emit(event)
            elif cfg.breach == "start_after_finish" and isinstance(event, mg.PlaybackFinished):
                self.emit(mg.PlaybackStarted(segment=event.segment, generation=event.generation, t=event.t))
