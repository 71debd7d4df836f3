"""A slot's segment bookkeeping. Pure: no trio, no clock, no I/O.

Theory of operation. The slot numbers segments itself, whichever child plays them: the first frame after a
flush or interrupt opens one; a flush closes it (opening an empty one if none is open); an interrupt cuts it.
Each segment remembers the generation in force when it opened, the media time of its first frame, how much
audio was sent for it and which child it was sent to (``None``: the slot was empty). The generation goes up at
every interrupt and every swap.

A child numbers its segments from 0 the same way, starting between two segments, so its segment ``c`` is the
slot's ``base + c``. :meth:`SlotSegments.child_event` maps a child's playback event onto the slot's segment
(id, generation, media range) and refuses one that names a segment the slot never sent it, or already
finished, or a position beyond what was sent. What a child did not finish — it died, was cut short, or was
cancelled — :meth:`SlotSegments.child_gone` finishes as interrupted at the position it last reported, and an
empty slot's segments finish at once, as interrupted at 0.
"""

from __future__ import annotations

from typing import Final, final

import attrs

from ._contract import PlaybackContractError
from ._frames import PlaybackFinished, PlaybackProgress, PlaybackStarted
from ._segments import SegmentCounter

__all__ = ["Answer", "SlotSegments"]

Answer = PlaybackFinished
ChildEvent = PlaybackStarted | PlaybackProgress | PlaybackFinished

_EPSILON: Final = 1e-6


@final
@attrs.define
class _Segment:
    id: int
    generation: int
    owner: str | None  # the child the segment's audio went to
    start: float | None = None
    sent: float = 0.0
    position: float = 0.0
    t: float = 0.0  # graph time of the last event the child reported for it


@final
class SlotSegments:
    """The slot's segments, from what it forwards and what its children report."""

    def __init__(self) -> None:
        self.generation = 0
        self.counter = SegmentCounter()
        self._unfinished: dict[int, _Segment] = {}  # in id order
        self._bases: dict[str, int] = {}  # child -> slot id of its segment 0

    def __repr__(self) -> str:
        return f"<SlotSegments open={self.open} unfinished={list(self._unfinished)} generation={self.generation}>"

    @property
    def open(self) -> int | None:
        """The open segment's id, if one is open."""
        return self.counter.open

    @property
    def next_segment(self) -> int:
        """The id the next segment gets."""
        return self.counter.next

    def _open(self, owner: str | None, start: float | None) -> _Segment:
        sid = self.counter.frame()
        if sid not in self._unfinished:
            self._unfinished[sid] = _Segment(sid, self.generation, owner, start)
        return self._unfinished[sid]

    def frame(self, owner: str | None, start: float, duration: float) -> None:
        """An audio frame (media time ``start``, ``duration`` seconds) is sent to ``owner`` (``None``: dropped)."""
        self._open(owner, start).sent += duration

    def flush(self, owner: str | None, t: float) -> list[Answer]:
        """A flush closes the open segment (an empty one if none is open); an empty slot finishes it now."""
        self._open(owner, None)
        return self._close(t)

    def interrupt(self, t: float, *, count: bool = True) -> list[Answer]:
        """The open segment is cut; with ``count`` (an ``Interrupt`` message) a new generation begins."""
        answers = self._close(t) if self.open is not None else []
        if count:
            self.generation += 1
        return answers

    def end(self, t: float) -> list[Answer]:
        """The input ended: the open segment closes (a child finishes it once played)."""
        return self._close(t) if self.open is not None else []

    def swapped(self) -> None:
        """A swap: events of everything before it are of an older generation."""
        self.generation += 1

    def _close(self, t: float) -> list[Answer]:
        closed = self.counter.cut()
        assert closed is not None
        seg = self._unfinished[closed]
        if seg.owner is None:  # the empty slot played nothing of it
            del self._unfinished[seg.id]
            return [self._finished(seg, t)]
        return []

    def child_started(self, child: str) -> None:
        """``child`` starts between two segments: its segment 0 is the next one the slot opens."""
        assert self.open is None, "a child always starts between segments"
        self._bases[child] = self.next_segment

    def child_event(self, child: str, outlet: str, event: ChildEvent) -> ChildEvent:
        """``child``'s event, as the slot reports it.

        Raises:
            PlaybackContractError: the event names a segment the slot never sent ``child`` or that already
                finished, or a position beyond what was sent.
        """
        sid = self._bases[child] + event.segment
        seg = self._unfinished.get(sid)
        if seg is None or seg.owner != child:
            raise PlaybackContractError(
                child, outlet, "segment_sent", f"event for its segment {event.segment}, which it was not sent"
            )
        if isinstance(event, PlaybackStarted):
            seg.t = event.t
            return PlaybackStarted(segment=sid, generation=seg.generation, t=event.t, start=seg.start)
        if event.position > seg.sent + _EPSILON:
            raise PlaybackContractError(
                child,
                outlet,
                "position_bound",
                f"segment {event.segment}: position {event.position:.6f} s > {seg.sent:.6f} s it was sent",
            )
        seg.position, seg.t = event.position, max(seg.t, event.t)
        if isinstance(event, PlaybackProgress):
            return PlaybackProgress(
                segment=sid, position=event.position, generation=seg.generation, t=event.t, start=seg.start
            )
        del self._unfinished[sid]
        if self.open == sid:  # the child finished a segment still open here (it died, or ended its input)
            self.counter.cut()
        return PlaybackFinished(
            segment=sid,
            position=event.position,
            interrupted=event.interrupted,
            generation=seg.generation,
            t=event.t,
            start=seg.start,
            sent=seg.sent,
        )

    def owes(self, child: str) -> bool:
        """Whether ``child`` has a segment to finish: open, or closed and still playing."""
        return any(seg.owner == child for seg in self._unfinished.values())

    def child_gone(self, child: str, t: float) -> list[Answer]:
        """``child`` has finished: every segment it owed finishes, interrupted at the position it reported."""
        owed = [seg for seg in self._unfinished.values() if seg.owner == child]
        for seg in owed:
            del self._unfinished[seg.id]
            if self.open == seg.id:
                self.counter.cut()
        self._bases.pop(child, None)
        return [self._finished(seg, t) for seg in owed]

    def _finished(self, seg: _Segment, t: float) -> PlaybackFinished:
        return PlaybackFinished(
            segment=seg.id,
            position=seg.position,
            interrupted=True,
            generation=seg.generation,
            t=max(t, seg.t),
            start=seg.start,
            sent=seg.sent,
        )
