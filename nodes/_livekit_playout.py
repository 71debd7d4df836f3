"""What a LiveKit audio source has really played, as playback events. No trio, no SDK.

``rtc.AudioSource`` holds the audio handed to ``capture_frame`` in a native queue that drains in real time,
and says only how much it still holds (``queued_duration``, which counts a capture in flight). What it has
played is therefore what was handed to it less what it holds; :class:`Playout` keeps that count and turns it
into the playback events of a :class:`mediagraph.PlaybackTracker` (the one segment bookkeeping every sink
uses): a segment starts when its first sample has played, finishes when its last has (or at an interrupt, at
the position played). Measured against what the source's track delivers (docs/notes/issue18-livekit-research.md,
section 2), the estimate is within a frame (10 ms) of the truth.
"""

from __future__ import annotations

from typing import final

import mediagraph as mg

__all__ = ["Playout"]


@final
class Playout:
    """See the module doc.

    Args:
        sample_rate: the source's rate.
        progress_interval: seconds between ``PlaybackProgress`` events (``None``: none).
    """

    def __init__(self, sample_rate: int, *, progress_interval: float | None = None) -> None:
        self.rate = sample_rate
        self.tracker = mg.PlaybackTracker(sample_rate, progress_interval=progress_interval)
        self.submitted = 0  # samples handed to the source (a capture in flight included), since the last cut
        self.played = 0  # of those, played

    def __repr__(self) -> str:
        return f"<Playout submitted={self.submitted} played={self.played} {self.tracker!r}>"

    @property
    def pending(self) -> int:
        """Samples handed to the source and not played yet."""
        return self.submitted - self.played

    def submit(self, samples: int, start: float | None = None) -> None:
        """``samples`` of the current segment go to the source (``start``: their media time, seconds)."""
        self.tracker.queue(samples, start)
        self.submitted += samples

    def observe(self, queued: float, t: float) -> list[mg.PlaybackEvent]:
        """The source says it holds ``queued`` seconds at graph time ``t``: the events of what played since."""
        now = min(self.submitted, max(self.played, self.submitted - round(queued * self.rate)))
        delta, self.played = now - self.played, now
        if delta <= 0:
            return []
        return self.tracker.played(delta, t - delta / self.rate)  # the first of them played that long ago

    def flush(self, t: float) -> list[mg.PlaybackEvent]:
        return self.tracker.flush(t)

    def end(self, t: float) -> list[mg.PlaybackEvent]:
        return self.tracker.end(t)

    def interrupt(self, queued: float, t: float) -> list[mg.PlaybackEvent]:
        """Everything is cut (the source's queue is cleared) while it held ``queued`` seconds: what played
        until then finishes its segments, interrupted at that position."""
        events = self.observe(queued, t)
        cut, _ = self.tracker.interrupt(t)
        self.submitted = self.played = 0
        return events + cut
