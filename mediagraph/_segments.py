"""Segment bookkeeping for anything that plays audio. Pure: no trio, no clock, no I/O.

Theory of operation. A segment is one utterance: opened by the first frame queued after the previous one
closed, closed by a flush or the end of the stream. A sink tells its :class:`PlaybackTracker` what it queued
(``queue``), what the device actually consumed (``played``), and the control messages it got (``flush``,
``interrupt``); each call returns the playback events now due, in order. By construction, per segment: at
most one ``PlaybackStarted``, exactly one ``PlaybackFinished`` once closed or interrupted, started before
finished, nothing after finished, segments finish in the order they opened, and the position never exceeds
what was queued. Every flush finishes exactly one segment (an empty one if nothing was queued), so a wrapper
above the sink rotates its segment exactly once per flush.

Progress. With a ``progress_interval``, ``played`` also reports how far a started, unfinished segment has
played: a ``PlaybackProgress`` each time its position has grown by at least the interval since the last one
(the first once the interval is played; interval 0: at every ``played`` call that plays some of it), never in
the call that finishes it (its ``PlaybackFinished`` says more). Positions are counted in samples, so the
reports do not depend on any clock, and they never decrease nor exceed what was queued.
"""

from __future__ import annotations

from collections import deque
from typing import final

import attrs

from ._frames import PlaybackFinished, PlaybackProgress, PlaybackStarted

__all__ = ["PlaybackEvent", "PlaybackTracker", "SegmentCounter"]

PlaybackEvent = PlaybackStarted | PlaybackProgress | PlaybackFinished


@final
class SegmentCounter:
    """The one segment numbering, shared by everything that counts segments (sinks through
    :class:`PlaybackTracker`, the slot, the recorder, the transcript synchronizer), so they agree by construction.

    The first frame after a boundary opens the next segment; a flush closes the open one, or uses one number
    for an empty segment if none is open; an interrupt, or the end of the stream, closes the open one, if any.
    ``open`` is the open segment's id (``None`` between segments), ``next`` the id the next segment gets.
    """

    def __init__(self, first: int = 0) -> None:
        self.next = first
        self.open: int | None = None

    def __repr__(self) -> str:
        return f"<SegmentCounter open={self.open} next={self.next}>"

    def frame(self) -> int:
        """A frame: the id of its segment, opened by it if none was open."""
        if self.open is None:
            self.open, self.next = self.next, self.next + 1
        return self.open

    def flush(self) -> int:
        """A flush: the id of the segment it closes (a new, empty one if none was open)."""
        closed = self.frame()
        self.open = None
        return closed

    def cut(self) -> int | None:
        """An interrupt or the end of the stream: the id of the open segment it closes, if one was open."""
        closed, self.open = self.open, None
        return closed


@final
@attrs.define
class _Segment:
    id: int
    queued: int = 0  # samples handed to the device
    played: int = 0  # samples the device consumed
    closed: bool = False
    started: bool = False
    start: float | None = None  # media seconds of the first sample queued
    reported: int = 0  # position (samples) of the last PlaybackProgress
    started_t: float = 0.0  # graph time of its PlaybackStarted: no later event of it is stamped earlier


@final
class PlaybackTracker:
    """Turns "queued / played / flush / interrupt" into ordered playback events.

    Args:
        sample_rate: samples per second, to express positions in seconds.
        first_segment: id of the first segment (a slot continues numbering across children).
        generation: stamped on every event; see :meth:`interrupt`.
        progress_interval: seconds of a segment played between two ``PlaybackProgress`` events (0: at every
            ``played`` call); ``None`` (the default) sends none.

    Raises:
        ValueError: a negative ``progress_interval``.
    """

    def __init__(
        self,
        sample_rate: int,
        *,
        first_segment: int = 0,
        generation: int = 0,
        progress_interval: float | None = None,
    ) -> None:
        if progress_interval is not None and not progress_interval >= 0:
            raise ValueError(f"progress_interval must be None or >= 0 seconds, got {progress_interval!r}")
        self.sample_rate = sample_rate
        # In samples, at least one: a report needs the position to have moved.
        self._every = None if progress_interval is None else max(1, round(progress_interval * sample_rate))
        self.generation = generation
        self.counter = SegmentCounter(first_segment)
        self._segments: deque[_Segment] = deque()  # unfinished, oldest first; only the last may be open

    def __repr__(self) -> str:
        return f"<PlaybackTracker next={self.next_id} pending={[s.id for s in self._segments]} gen={self.generation}>"

    @property
    def next_id(self) -> int:
        """The id the next segment gets."""
        return self.counter.next

    @property
    def open_segment(self) -> int | None:
        """The id of the segment frames are currently added to, if any."""
        return self.counter.open

    @property
    def unplayed(self) -> int:
        """Samples queued and not yet consumed."""
        return sum(s.queued - s.played for s in self._segments)

    def _segment(self, sid: int) -> _Segment:
        if not self._segments or self._segments[-1].id != sid:
            self._segments.append(_Segment(sid))
        return self._segments[-1]

    def queue(self, samples: int, start: float | None = None) -> int:
        """``samples`` more of the current segment were handed to the device; ``start`` is their media time
        in seconds (the frame's timestamp over its rate). Returns the segment id."""
        seg = self._segment(self.counter.frame())
        if seg.queued == 0 and seg.start is None:
            seg.start = start
        seg.queued += samples
        return seg.id

    def flush(self, t: float = 0.0) -> list[PlaybackEvent]:
        """Close the open segment (an empty one if none is open); it finishes once fully played."""
        self._segment(self.counter.flush()).closed = True
        return self._settle(t)

    def end(self, t: float = 0.0) -> list[PlaybackEvent]:
        """The stream ended: close the open segment, if any (unlike a flush, never an empty one)."""
        if self.counter.cut() is not None:
            self._segments[-1].closed = True
        return self._settle(t)

    def played(self, samples: int, t: float) -> list[PlaybackEvent]:
        """The device consumed ``samples`` queued samples, the first of them at graph time ``t``.

        Returns:
            the events due, in order. Samples beyond what was queued are ignored (an underrun is the
            caller's to count).
        """
        events: list[PlaybackEvent] = []
        done = 0  # samples of this call played so far: they end at t + done / rate
        while samples > 0 and self._segments:
            seg = self._segments[0]
            take = min(samples, seg.queued - seg.played)
            if take > 0:
                if not seg.started:
                    seg.started = True
                    seg.started_t = t
                    events.append(PlaybackStarted(segment=seg.id, generation=self.generation, t=t, start=seg.start))
                seg.played += take
                samples -= take
                done += take
            if not (seg.closed and seg.played == seg.queued):
                if take > 0 and self._every is not None and seg.played - seg.reported >= self._every:
                    seg.reported = seg.played
                    events.append(
                        PlaybackProgress(
                            segment=seg.id,
                            position=seg.played / self.sample_rate,
                            generation=self.generation,
                            t=t + done / self.sample_rate,
                            start=seg.start,
                        )
                    )
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
        self.counter.cut()
        self.generation += 1
        return events, discard

    def _finished(self, seg: _Segment, interrupted: bool, t: float) -> PlaybackFinished:
        return PlaybackFinished(
            segment=seg.id,
            position=seg.played / self.sample_rate,
            interrupted=interrupted,
            generation=self.generation,
            t=max(t, seg.started_t) if seg.started else t,  # a device's start can be stamped ahead of now
            start=seg.start,
            sent=seg.queued / self.sample_rate,
        )

    def _settle(self, t: float) -> list[PlaybackEvent]:
        events: list[PlaybackEvent] = []
        while self._segments and self._segments[0].closed and self._segments[0].played == self._segments[0].queued:
            events.append(self._finished(self._segments.popleft(), False, t))
        return events
