"""The stand-in avatar's pure core: audio in, timed video frames out, as an avatar service would send them.

No trio, no clock, no I/O: the actor (``video_source`` with ``audio: true``) feeds it each audio frame and
control message with the graph time ``now``, sleeps until :meth:`Avatar.next_due` and sends what
:meth:`Avatar.take` releases.

Theory of operation. Media times are exact fractions of a second on the audio's timeline (``timestamp /
sample_rate``); video frames sit on the grid of the frame rate: frame ``k`` shows media time ``k / fps``.

- **Coverage.** An audio frame covering media ``[start, end)`` makes the frames ``k`` with ``start <= k / fps
  < end`` not made before (media time only moves on, so a frame is made at most once), each with
  ``pts = round(k / fps * 90000)`` in the time base 1/90000: the video covers the audio's media time on the
  frame grid, and a gap in the audio is a gap in the video.
- **Flash.** With a ``flash_level``, a frame made from an audio frame whose peak is above that fraction of
  full scale is a flash (the stand-in beeps and flashes together: the beep's first audio frame flashes the
  frame at or after its start, within one frame period of the onset).
- **Timing.** A frame made at graph time ``now`` is due at ``now + latency + j``, ``j`` drawn uniformly from
  ``[0, jitter]`` by a generator seeded with ``seed`` (the same input gives the same times), but never before
  the frame made before it (frames go out in pts order). With ``burst`` > 0 frames are held and released
  together at the next multiple of ``burst`` seconds of graph time at or after they are due: bursts of
  ``burst`` seconds of video.
- **Control.** A :class:`~mediagraph.Flush` goes out after the frames made before it, at ``now + latency`` at
  the earliest. :meth:`Avatar.interrupt` drops every frame and Flush held (counted as ``dropped``); the actor
  sends the Interrupt on at once.
"""

from __future__ import annotations

import math
import random
from collections import deque
from fractions import Fraction
from typing import Final, final

import attrs
import numpy as np

import mediagraph as mg

__all__ = ["TIME_BASE", "Avatar", "Shot", "fps_fraction"]

#: The time base of every frame the video source makes.
TIME_BASE: Final = Fraction(1, 90000)


def fps_fraction(fps: float) -> Fraction:
    """A frame rate as an exact fraction: 25 -> 25, 29.97 -> 2997/100, 30000/1001 -> 30000/1001."""
    return Fraction(fps).limit_denominator(1001)


def frame_pts(index: int, fps: Fraction) -> int:
    """The pts (in :data:`TIME_BASE`) of frame ``index`` of the grid."""
    return round(index / fps / TIME_BASE)


@final
@attrs.frozen(kw_only=True)
class Shot:
    """A frame to draw and send: its index on the frame grid, its pts (:data:`TIME_BASE`) and whether it flashes."""

    index: int
    pts: int
    flash: bool = False

    @property
    def ms(self) -> int:
        """Its media time in whole milliseconds (what the picture's code carries)."""
        return round(self.pts * TIME_BASE * 1000)


def peak(samples: np.ndarray[tuple[int, ...], np.dtype[np.generic]]) -> float:
    """The peak level of ``samples``, 0 to 1 of full scale (integer samples over their type's maximum)."""
    if samples.size == 0:
        return 0.0
    top = float(np.abs(samples.astype(np.float64)).max())
    if np.issubdtype(samples.dtype, np.integer):
        return top / (np.iinfo(samples.dtype.str).max + 1)
    return top


@final
class Avatar:
    """See the module docstring.

    Args:
        fps: frame rate (exact fraction).
        latency, jitter, burst: seconds, each at least 0.
        seed: of the jitter.
        flash_level: peak level (0 to 1) above which a frame flashes; ``None``: never.
    """

    def __init__(
        self,
        *,
        fps: Fraction,
        latency: float = 0.0,
        jitter: float = 0.0,
        burst: float = 0.0,
        seed: int = 0,
        flash_level: float | None = None,
    ) -> None:
        self.fps = fps
        self.latency = latency
        self.jitter = jitter
        self.burst = burst
        self.flash_level = flash_level
        self._random = random.Random(seed)
        self._held: deque[tuple[float, Shot | mg.Flush | mg.AudioFrame]] = deque()
        self._next = 0  # the first frame index not made yet
        self._last_due = -math.inf
        self.made = 0
        self.released = 0
        self.dropped = 0
        self.flashes = 0

    def __repr__(self) -> str:
        return f"<Avatar made={self.made} released={self.released} held={len(self._held)} dropped={self.dropped}>"

    def _release_time(self, due: float) -> float:
        due = max(due, self._last_due)
        self._last_due = due
        if self.burst > 0:
            return math.ceil(round(due / self.burst, 9)) * self.burst
        return due

    def audio(self, frame: mg.AudioFrame, now: float, *, back: bool = False) -> list[Shot]:
        """Make the frames covering ``frame``'s media time; they are due later (see :meth:`take`). With ``back``,
        the audio frame itself comes back too, just before them, as an avatar service returns the voice with its
        face."""
        start = Fraction(frame.timestamp, frame.sample_rate)
        end = start + Fraction(frame.samples.shape[0], frame.sample_rate)
        first = max(self._next, math.ceil(start * self.fps))
        stop = math.ceil(end * self.fps)
        flash = self.flash_level is not None and peak(frame.samples) > self.flash_level
        shots = [Shot(index=k, pts=frame_pts(k, self.fps), flash=flash) for k in range(first, stop)]
        if back:
            self._held.append((self._release_time(now + self.latency), frame))
        for shot in shots:
            jitter = self._random.uniform(0, self.jitter) if self.jitter > 0 else 0.0
            self._held.append((self._release_time(now + self.latency + jitter), shot))
        self._next = max(self._next, stop)
        self.made += len(shots)
        self.flashes += len(shots) if flash else 0
        return shots

    def flush(self, msg: mg.Flush, now: float) -> None:
        """Pass ``msg`` on after the frames made before it."""
        self._held.append((self._release_time(now + self.latency), msg))

    def interrupt(self) -> int:
        """Drop everything held; the number of frames dropped."""
        frames = sum(isinstance(item, Shot) for _, item in self._held)
        self.dropped += frames
        self._held.clear()
        return frames

    def next_due(self) -> float | None:
        """The graph time the next held item is due, ``None`` if none is held."""
        return self._held[0][0] if self._held else None

    def take(self, now: float) -> list[Shot | mg.Flush | mg.AudioFrame]:
        """What is due at ``now``, in order."""
        out: list[Shot | mg.Flush | mg.AudioFrame] = []
        while self._held and self._held[0][0] <= now:
            out.append(self._held.popleft()[1])
        self.released += sum(isinstance(item, Shot) for item in out)
        return out

    def statistics(self) -> dict[str, int]:
        return {"made": self.made, "released": self.released, "dropped": self.dropped, "flashes": self.flashes}
