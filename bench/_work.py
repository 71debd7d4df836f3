"""The work every peer does, shared so that mediagraph and the floors do exactly the same thing per frame.

Nothing here knows about trio or asyncio: the peers are thin shells around these cores.
"""

from __future__ import annotations

import math
import wave
from array import array
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import soxr

import mediagraph as mg

RATE: Final = 48000  # Hz, mono int16
FRAME: Final = 480  # samples per 10 ms frame
PERIOD: Final = FRAME / RATE  # seconds per frame
OUT_RATE: Final = 16000  # W2 resampler output
FREQUENCY: Final = 440  # the tone, as tone_source's defaults
AMPLITUDE: Final = 0.5
GAIN: Final = 0.5

Samples = npt.NDArray[np.int16]


class ToneFrames:
    """The frames ``tone_source`` emits (same tone, same views into one second of samples, same frame type)."""

    def __init__(self) -> None:
        n = np.arange(RATE, dtype=np.float64)
        wave_ = np.sin(2 * math.pi * FREQUENCY * n / RATE) * (AMPLITUDE * 32767)
        cycle: Samples = np.round(wave_).astype(np.int16)[:, None]
        self.views = [cycle[i : i + FRAME] for i in range(0, RATE, FRAME)]

    def frame(self, index: int) -> mg.AudioFrame:
        position = index * FRAME
        return mg.AudioFrame(
            samples=self.views[position % RATE // FRAME], sample_rate=RATE, channels=1, timestamp=position
        )


class Resampler:
    """48 kHz to 16 kHz with soxr's streaming resampler at VHQ quality; frames keep exact output timestamps."""

    def __init__(self) -> None:
        self._stream: Any = soxr.ResampleStream(RATE, OUT_RATE, 1, dtype="int16", quality="VHQ")
        self._position = 0

    def _frame(self, out: Samples) -> mg.AudioFrame | None:
        if out.shape[0] == 0:  # VHQ's delay: the first few input frames produce nothing
            return None
        frame = mg.AudioFrame(samples=out.reshape(-1, 1), sample_rate=OUT_RATE, channels=1, timestamp=self._position)
        self._position += out.shape[0]
        return frame

    def process(self, frame: mg.AudioFrame) -> mg.AudioFrame | None:
        return self._frame(self._stream.resample_chunk(frame.samples[:, 0]))

    def flush(self) -> mg.AudioFrame | None:
        """The resampler's tail, once the input has ended."""
        return self._frame(self._stream.resample_chunk(np.zeros(0, np.int16), last=True))


_GAIN32 = np.float32(GAIN)


def apply_gain(frame: mg.AudioFrame) -> mg.AudioFrame:
    """Multiply by ``GAIN`` and clip back to int16."""
    samples = (frame.samples * _GAIN32).clip(-32768, 32767).astype(np.int16)
    return mg.AudioFrame(
        samples=samples, sample_rate=frame.sample_rate, channels=frame.channels, timestamp=frame.timestamp
    )


#: Frames per ``writeframes`` call (each also rewrites the WAV header), the same for every peer.
WAV_BATCH: Final = 64


class WavWriter:
    """A WAV file written with the stdlib ``wave`` module, ``WAV_BATCH`` frames per ``writeframes`` call.

    Peers hand over frames in whatever batches their queues give them (one at a time for ``direct-sync``, what
    was queued for the others); the writer keeps them until it has ``WAV_BATCH``, so every peer does the same
    file work: the same number of writes and header updates.

    Resource handling: opened at the first write (which gives the format), closed by :meth:`close`, which
    writes what is left, is idempotent and finalizes the header.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: wave.Wave_write | None = None
        self._pending: list[mg.AudioFrame] = []
        self.samples = 0  # written so far

    def add(self, frames: Iterable[mg.AudioFrame]) -> None:
        self._pending.extend(frames)
        if len(self._pending) >= WAV_BATCH:
            self._write()

    def _write(self) -> None:
        frames, self._pending = self._pending, []
        if not frames:
            return
        if self._file is None:
            self._file = wave.open(str(self.path), "wb")  # noqa: SIM115 - closed by close()
            self._file.setnchannels(frames[0].channels)
            self._file.setsampwidth(2)
            self._file.setframerate(frames[0].sample_rate)
        data = frames[0].samples if len(frames) == 1 else np.concatenate([f.samples for f in frames])
        self._file.writeframes(np.ascontiguousarray(data))
        self.samples += data.shape[0]

    def close(self) -> None:
        self._write()
        if self._file is not None:
            self._file.close()
            self._file = None


def wav_samples(path: Path) -> int:
    """Sample frames in a finished WAV file (0 if none was written)."""
    if not path.exists():
        return 0
    with wave.open(str(path), "rb") as f:
        return f.getnframes()


class Counter:
    """What ``null_sink`` does with a frame: count it and its samples."""

    __slots__ = ("frames", "samples", "seconds")

    def __init__(self) -> None:
        self.frames = 0
        self.samples = 0
        self.seconds = 0.0

    def count(self, msg: object) -> None:
        if type(msg) is mg.AudioFrame:
            self.frames += 1
            self.samples += msg.samples.shape[0]
            self.seconds += msg.samples.shape[0] / msg.sample_rate


class LatencyProbe:
    """Lateness samples (seconds) of every session of a W3 run, recorded only while ``active``."""

    __slots__ = ("active", "lateness")

    def __init__(self) -> None:
        self.active = False
        self.lateness = array("d")

    def percentiles_ms(self) -> tuple[float, float, float]:
        """p50, p99 and max lateness in milliseconds (NaN when nothing was recorded)."""
        if not self.lateness:
            return math.nan, math.nan, math.nan
        values = np.frombuffer(self.lateness, dtype=np.float64) * 1000
        p50, p99 = np.percentile(values, [50, 99])
        return float(p50), float(p99), float(values.max())
