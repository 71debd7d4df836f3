"""Segment bookkeeping for anything that plays audio. Pure: no trio, no clock, no I/O.

Theory of operation. A segment is one utterance: opened by the first frame queued after the previous one
closed, closed by a flush or the end of the stream. A sink tells its :class:`PlaybackTracker` what it queued
(``queue``), what the device actually consumed (``played``), and the control messages it got (``flush``,
``interrupt``); each call returns the playback events now due, in order. By construction, per segment: at
most one ``PlaybackStarted``, exactly one ``PlaybackFinished`` once closed or interrupted, started before
finished, nothing after finished, segments finish in the order they opened, and the position never exceeds
what was queued. Every flush finishes exactly one segment (an empty one if nothing was queued), so a wrapper
above the sink rotates its segment exactly once per flush.
"""

from __future__ import annotations

from collections import deque

import attrs

from ._frames import PlaybackFinished, PlaybackStarted

__all__ = ["PlaybackEvent", "PlaybackTracker"]

PlaybackEvent = PlaybackStarted | PlaybackFinished


@attrs.define
class _Segment:
    id: int
    queued: int = 0  # samples handed to the device
    played: int = 0  # samples the device consumed
    closed: bool = False
    started: bool = False
    start: float | None = None  # media seconds of the first sample queued


class PlaybackTracker:
    """Turns "queued / played / flush / interrupt" into ordered playback events.

    Args:
        sample_rate: samples per second, to express positions in seconds.
        first_segment: id of the first segment (a slot continues numbering across children).
        generation: stamped on every event; see :meth:`interrupt`.
    """

    def __init__(self, sample_rate: int, *, first_segment: int = 0, generation: int = 0) -> None:
        self.sample_rate = sample_rate
        self.generation = generation
        self.next_id = first_segment
        self._segments: deque[_Segment] = deque()  # unfinished, oldest first; only the last may be open

    def __repr__(self) -> str:
        return f"<PlaybackTracker next={self.next_id} pending={[s.id for s in self._segments]} gen={self.generation}>"

    @property
    def open_segment(self) -> int | None:
        """The id of the segment frames are currently added to, if any."""
        seg = self._segments[-1] if self._segments else None
        return seg.id if seg is not None and not seg.closed else None

    @property
    def unplayed(self) -> int:
        """Samples queued and not yet consumed."""
        return sum(s.queued - s.played for s in self._segments)

    def _open(self) -> _Segment:
        if not self._segments or self._segments[-1].closed:
            self._segments.append(_Segment(self.next_id))
            self.next_id += 1
        return self._segments[-1]

    def queue(self, samples: int, start: float | None = None) -> int:
        """``samples`` more of the current segment were handed to the device; ``start`` is their media time
        in seconds (the frame's timestamp over its rate). Returns the segment id."""
        seg = self._open()
        if seg.queued == 0 and seg.start is None:
            seg.start = start
        seg.queued += samples
        return seg.id

    def flush(self, t: float = 0.0) -> list[PlaybackEvent]:
        """Close the open segment (an empty one if none is open); it finishes once fully played."""
        self._open().closed = True
        return self._settle(t)

    def end(self, t: float = 0.0) -> list[PlaybackEvent]:
        """The stream ended: close the open segment, if any (unlike a flush, never an empty one)."""
        if self.open_segment is not None:
            self._segments[-1].closed = True
        return self._settle(t)

    def played(self, samples: int, t: float) -> list[PlaybackEvent]:
        """The device consumed ``samples`` queued samples, the first of them at graph time ``t``.

        Returns:
            the events due, in order. Samples beyond what was queued are ignored (an underrun is the
            caller's to count).
        """
        events: list[PlaybackEvent] = []
        while samples > 0 and self._segments:
            seg = self._segments[0]
            take = min(samples, seg.queued - seg.played)
            if take > 0:
                if not seg.started:
                    seg.started = True
                    events.append(PlaybackStarted(segment=seg.id, generation=self.generation, t=t, start=seg.start))
                seg.played += take
                samples -= take
            if not (seg.closed and seg.played == seg.queued):
                break  # still playing, or open and waiting for more frames
            events.append(self._finished(self._segments.popleft(), False, t))
        events.extend(self._settle(t))
        return events

    def interrupt(self, t: float = 0.0) -> tuple[list[PlaybackEvent], int]:
        """Cut everything: every unfinished segment finishes as interrupted at the position played.

        Returns:
            the events, and how many queued samples the caller must now discard from its device buffer.
            The generation increases, so the caller can tell events of the interrupted turn from later ones.
        """
        discard = self.unplayed
        events: list[PlaybackEvent] = [self._finished(seg, True, t) for seg in self._segments]
        self._segments.clear()
        self.generation += 1
        return events, discard

    def _finished(self, seg: _Segment, interrupted: bool, t: float) -> PlaybackFinished:
        return PlaybackFinished(
            segment=seg.id,
            position=seg.played / self.sample_rate,
            interrupted=interrupted,
            generation=self.generation,
            t=t,
            start=seg.start,
            sent=seg.queued / self.sample_rate,
        )

    def _settle(self, t: float) -> list[PlaybackEvent]:
        events: list[PlaybackEvent] = []
        while self._segments and self._segments[0].closed and self._segments[0].played == self._segments[0].queued:
            events.append(self._finished(self._segments.popleft(), False, t))
        return events
