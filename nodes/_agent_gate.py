"""The recorder's agent gate: holds the agent's frames until the sink's playback events say what of them was
played, and trims what was not. Pure: no trio, no clock, no I/O. The rules are in :mod:`._conversation`.
"""

from __future__ import annotations

from collections import deque
from typing import final

import attrs
import numpy as np

import mediagraph as mg

__all__ = ["AgentGate", "PlaybackMessage"]

#: What the recorder's ``playback`` inlet takes.
PlaybackMessage = mg.PlaybackStarted | mg.PlaybackProgress | mg.PlaybackFinished


@final
@attrs.define
class _Span:
    start: float  # media seconds of the segment's first sample
    sent: float = 0.0  # seconds of audio in it
    end: float = 0.0  # media seconds after its last frame


@final
class _Numbering:
    """The fallback for playback events without ``start``: counts the agent's segments as
    :class:`mediagraph.PlaybackTracker` does and gives such an event its counted segment's media range."""

    def __init__(self) -> None:
        self.counter = mg.SegmentCounter()
        self._spans: dict[int, _Span] = {}  # counted segments with frames whose range is still wanted
        self._waiting: dict[int, mg.PlaybackFinished] = {}  # events whose segment is not complete yet

    def __repr__(self) -> str:
        return f"<_Numbering {self.counter!r}>"

    def frame(self, frame: mg.AudioFrame) -> None:
        span = self._spans.setdefault(self.counter.frame(), _Span(start=frame.timestamp / frame.sample_rate))
        span.sent += frame.duration
        span.end = (frame.timestamp + frame.samples_per_channel) / frame.sample_rate

    def boundary(self, *, interrupt: bool) -> mg.PlaybackFinished | None:
        """A Flush, an Interrupt or the end of the input; returns the event of the closed segment, if it came."""
        closed = self.counter.cut() if interrupt else self.counter.flush()
        if closed is None:
            return None
        event = self._waiting.pop(closed, None)
        return None if event is None else self._stamp(closed, event)

    def stamp(self, event: mg.PlaybackFinished) -> mg.PlaybackFinished | None:
        """The event with its counted segment's range; None if it has none (yet: it is kept until complete)."""
        if event.segment == self.counter.open or event.segment >= self.counter.next:
            self._waiting[event.segment] = event
            return None
        return self._stamp(event.segment, event)

    def _stamp(self, segment: int, event: mg.PlaybackFinished) -> mg.PlaybackFinished | None:
        span = self._spans.pop(segment, None)
        return None if span is None else attrs.evolve(event, start=span.start, sent=span.sent)

    def forget(self, before: float) -> None:
        """Audio before media time ``before`` is written: the ranges of closed segments there are not wanted."""
        for segment in [s for s, span in self._spans.items() if s != self.counter.open and span.end <= before]:
            del self._spans[segment]


@final
class AgentGate:
    """Holds the agent's frames until the playback events say what of them was played; trims what was not."""

    def __init__(self, *, hold: bool, max_hold: float) -> None:
        self.hold = hold
        self.max_hold = max_hold
        self.trimmed_samples = 0
        self.unconfirmed_samples = 0  # released before they were settled (max_hold, end of playback)
        self.numbering: _Numbering | None = _Numbering()  # None once the sink stamps its events
        self._held: deque[mg.AudioFrame] = deque()
        self._held_seconds = 0.0
        self._settled: float | None = None  # media seconds: every verdict on audio before it has come
        self._cuts: list[tuple[float, float]] = []  # media ranges never played, [from, to) in seconds
        self._released = 0.0  # media seconds after the last frame released

    def __repr__(self) -> str:
        return f"<AgentGate held={len(self._held)} settled={self._settled} cuts={len(self._cuts)}>"

    def first_held(self) -> mg.AudioFrame | None:
        return self._held[0] if self._held else None

    def frame(self, frame: mg.AudioFrame) -> list[mg.AudioFrame]:
        if self.numbering is not None:
            self.numbering.frame(frame)
        self._held.append(frame)
        self._held_seconds += frame.duration
        return self._release()

    def boundary(self, *, interrupt: bool) -> list[mg.AudioFrame]:
        """A Flush (``interrupt=False``), an Interrupt or the end of the agent input."""
        if self.numbering is None:
            return []
        event = self.numbering.boundary(interrupt=interrupt)
        return [] if event is None else self._verdict(event)

    def playback(self, event: PlaybackMessage) -> list[mg.AudioFrame]:
        if event.start is not None:
            self.numbering = None  # the sink says which audio it means: counting is not needed, nor right
            return self._verdict(event)
        if isinstance(event, mg.PlaybackFinished) and self.numbering is not None:
            stamped = self.numbering.stamp(event)
            if stamped is not None:
                return self._verdict(stamped)
        return []  # from a stamping sink, an event without start is an empty segment's

    def release_all(self) -> list[mg.AudioFrame]:
        """No verdict can come any more (the playback inlet ended, or the recorder is finalizing)."""
        out = self._release(force=True)
        self.hold = False
        return out

    def _verdict(self, event: PlaybackMessage) -> list[mg.AudioFrame]:
        assert event.start is not None
        settled = event.start
        if isinstance(event, mg.PlaybackProgress):
            settled += event.position  # played: no later event can cut it
        elif isinstance(event, mg.PlaybackFinished):
            settled += event.sent
            if event.interrupted and event.position < event.sent:
                self._cuts.append((event.start + event.position, settled))
        self._settled = settled if self._settled is None else max(self._settled, settled)
        return self._release()

    def _release(self, *, force: bool = False) -> list[mg.AudioFrame]:
        out: list[mg.AudioFrame] = []
        while self._held:
            frame = self._held[0]
            ts, end = frame.timestamp, frame.timestamp + frame.samples_per_channel
            limit = ts if self._settled is None else max(ts, round(self._settled * frame.sample_rate))
            if self.hold and end > limit:
                if not force and self._held_seconds <= self.max_hold:
                    if limit > ts:  # settled part way: its settled head goes, the rest waits
                        cut = limit - ts
                        head = attrs.evolve(frame, samples=frame.samples[:cut])
                        self._held[0] = attrs.evolve(frame, samples=frame.samples[cut:], timestamp=limit)
                        self._held_seconds -= head.duration
                        self._released = max(self._released, limit / frame.sample_rate)
                        out.extend(self._trim(head))
                    break
                self.unconfirmed_samples += end - limit
            self._held.popleft()
            self._held_seconds -= frame.duration
            self._released = max(self._released, end / frame.sample_rate)
            out.extend(self._trim(frame))
        if out:
            self._cuts = [cut for cut in self._cuts if cut[1] > self._released]
            if self.numbering is not None:
                self.numbering.forget(self._released)
        return out

    def _trim(self, frame: mg.AudioFrame) -> list[mg.AudioFrame]:
        """The parts of ``frame`` outside every cut, each at its own timestamp."""
        n, ts, rate = frame.samples_per_channel, frame.timestamp, frame.sample_rate
        keep = np.ones(n, dtype=bool)
        for lo, hi in self._cuts:
            keep[max(0, round(lo * rate) - ts) : max(0, round(hi * rate) - ts)] = False
        if keep.all():
            return [frame]
        self.trimmed_samples += n - int(keep.sum())
        edges = np.flatnonzero(np.diff(keep, prepend=False, append=False)).tolist()  # run starts and stops
        runs = zip(edges[::2], edges[1::2], strict=True)
        return [attrs.evolve(frame, samples=frame.samples[a:b], timestamp=ts + a) for a, b in runs]
