"""``file_sink``'s pure core: :class:`Placement` turns a stream of audio frames into the samples of one file at
its rate and channel count, in order, placed by timestamp. No trio, no clock, no I/O. The rules:

- **Origin.** The file starts at the first frame's media time: a frame's place in the file is
  ``timestamp * rate / frame_rate`` minus that of the first frame (rounded to a sample of the file).
- **Conversion.** A frame of another rate is resampled (soxr, one stream per *run*: frames of one rate and
  channel count whose timestamps follow each other exactly); channels are mapped as
  :func:`~._audio.map_channels` does (down to mono by averaging, up from mono by copying; channels are mapped
  before resampling when they decrease, after when they increase). Any other mapping (3 channels into a
  stereo file) is refused: :class:`ChannelMismatch`.
- **Gaps.** A run that starts after the end of what was placed leaves silence between (``gaps``,
  ``gap_samples``). Differences of one sample of the file between runs of a resampled rate are rounding,
  neither gap nor overlap.
- **Overlaps.** A run that starts before the end of what was placed is cut: its samples up to that end are
  dropped (``overlaps`` counts such frames, ``overlap_samples`` the samples dropped, at the file's rate), the
  rest lands where its timestamp puts it. Nothing is ever mixed or moved.
"""

from __future__ import annotations

import math
from typing import final

import numpy as np
import soxr

import mediagraph as mg

from ._audio import Samples, map_channels

__all__ = ["ChannelMismatch", "Placement"]


@final
class ChannelMismatch(ValueError):
    """A frame's channels cannot be mapped to the file's (only to mono, or from mono)."""


@final
class GapTooLong(ValueError):
    """A frame's timestamp jumps further ahead than the sink fills with silence."""


def silence(count: int, channels: int) -> Samples:
    """``count`` samples of silence, without allocating them (a read-only view of one zero sample)."""
    return np.broadcast_to(np.zeros((1, channels), dtype=np.int16), (count, channels))


@final
class Placement:
    """Frames in, the file's samples out, in order (see the module's docstring).

    Args:
        rate: the file's sample rate.
        channels: the file's channel count.
        max_gap: the longest gap (seconds) filled with silence; a longer jump raises :class:`GapTooLong`.
    """

    def __init__(self, rate: int, channels: int, *, max_gap: float = math.inf) -> None:
        self.rate = rate
        self.channels = channels
        self.max_gap = max_gap
        self.end = 0  # samples of the file released so far (silence included)
        self.gaps = 0
        self.gap_samples = 0
        self.overlaps = 0
        self.overlap_samples = 0
        self._origin: int | None = None  # the first frame's media time, in samples of the file
        self._run: tuple[int, int] = (0, 0)  # the current run's rate and channels
        self._next: int | None = None  # the timestamp that continues the current run
        self._resampler: soxr.ResampleStream | None = None

    def __repr__(self) -> str:
        return f"<Placement {self.rate} Hz x {self.channels} at {self.end}, run {self._run}>"

    def statistics(self) -> dict[str, int]:
        """Gaps filled and overlaps dropped (``end`` says how many samples were released)."""
        return {
            "gaps": self.gaps,
            "gap_samples": self.gap_samples,
            "overlaps": self.overlaps,
            "overlap_samples": self.overlap_samples,
        }

    def add(self, frame: mg.AudioFrame) -> list[Samples]:
        """The samples ``frame`` releases, in order: the previous run's resampler tail, silence, its own.

        Raises:
            ChannelMismatch: its channels cannot be mapped to the file's; nothing changes then.
        """
        have = frame.channels
        if have != self.channels and have != 1 and self.channels != 1:
            raise ChannelMismatch(
                f"a {have}-channel frame cannot go into a {self.channels}-channel file: channels are mapped only "
                "to mono (averaged) or from mono (copied)"
            )
        rate, samples, timestamp = frame.sample_rate, frame.samples, frame.timestamp
        if (rate, have) == self._run and timestamp == self._next:
            self._next = timestamp + len(samples)
            return self._convert(samples)
        out = self.flush()
        if self._origin is None:
            self._origin = self._place(timestamp, rate)
        position = self._place(timestamp, rate) - self._origin
        slack = 0 if rate == self.rate else 1
        if position < self.end - slack:
            # Drop the input samples that would land before the end (the first one at or after it stays).
            cut = min(len(samples), math.ceil((self.end - position) * rate / self.rate))
            self.overlaps += 1
            self.overlap_samples += self._place(timestamp + cut, rate) - self._place(timestamp, rate)
            samples, timestamp = samples[cut:], timestamp + cut
            if not len(samples):
                return out  # all of it was before the end: no run starts
        elif position > self.end + slack:
            gap = position - self.end
            if gap > self.max_gap * self.rate:
                raise GapTooLong(
                    f"a frame {gap / self.rate:.3f} s after the end of the audio before it (timestamp {timestamp} at "
                    f"{rate} Hz): more than max_gap, {self.max_gap} s, of silence to write"
                )
            self.gaps += 1
            self.gap_samples += gap
            self.end = position
            out.append(silence(gap, self.channels))
        self._run = (rate, have)
        self._next = timestamp + len(samples)
        if rate != self.rate:
            channels = min(have, self.channels)
            self._resampler = soxr.ResampleStream(rate, self.rate, channels, dtype="int16", quality="HQ")
        return out + self._convert(samples)

    def flush(self) -> list[Samples]:
        """End the current run: its resampler's last samples (say, at the end of the stream)."""
        resampler, self._resampler, self._next = self._resampler, None, None
        if resampler is None:
            return []
        channels = min(self._run[1], self.channels)
        return self._out(resampler.resample_chunk(np.zeros((0, channels), dtype=np.int16), last=True))

    def _place(self, timestamp: int, rate: int) -> int:
        return round(timestamp * self.rate / rate)

    def _convert(self, samples: Samples) -> list[Samples]:
        if self.channels < samples.shape[1]:
            samples = map_channels(samples, self.channels)
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        return self._out(samples)

    def _out(self, samples: Samples) -> list[Samples]:
        if not len(samples):
            return []
        if samples.ndim == 1:
            samples = samples[:, None]
        samples = map_channels(samples, self.channels)
        self.end += len(samples)
        return [samples]
