"""Private helpers shared by the media nodes: a sample FIFO, channel mapping, PyAV layouts, a 10 ms chunker."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, final

import attrs
import numpy as np
import numpy.typing as npt

import mediagraph as mg

Samples = npt.NDArray[np.int16]


def passes_own_check(config: Any, name: str) -> bool:
    """Whether field ``name`` of an attrs config passes its own validator. A validator that reads another field
    checks this first and stays quiet when it fails: that field's own validator reports it, as its error."""
    field = attrs.fields_dict(type(config))[name]
    try:
        if field.validator is not None:
            field.validator(config, field, getattr(config, name))
    except ValueError:
        return False
    return True


def holds_a_sample(rate_of: Callable[[Any], int | None]) -> Callable[[Any, attrs.Attribute[float], float], None]:
    """A ``frame_ms`` validator: a frame holds at least one sample at ``rate_of(config)`` (``None``: no rate to
    check against yet). A validator, though it reads the rate, so the error is ``frame_ms``'s."""

    def check(config: Any, _: attrs.Attribute[float], frame_ms: float) -> None:
        rate = rate_of(config)
        if rate is not None and round(rate * frame_ms / 1000) < 1:
            raise ValueError(f"frame_ms {frame_ms} holds no sample at {rate} Hz")

    return check


def layout_name(channels: int) -> str:
    """The PyAV channel layout for a channel count."""
    return {1: "mono", 2: "stereo"}.get(channels) or f"{channels}c"


def map_channels(samples: Samples, channels: int) -> Samples:
    """Downmix to mono by averaging, upmix mono by copying; ``samples`` is returned as is when it fits.

    Raises:
        ValueError: any other mapping (say 3 to 2 channels), which has no obvious meaning.
    """
    have = samples.shape[1]
    if have == channels:
        return samples
    if channels == 1:
        return np.round(samples.mean(axis=1, dtype=np.float64)).astype(np.int16)[:, None]
    if have == 1:
        return np.repeat(samples, channels, axis=1)
    raise ValueError(f"cannot map {have} channels to {channels}: only to mono, or from mono")


@final
class SampleFifo:
    """A first-in first-out queue of int16 samples of shape ``(n, channels)``; copies only when taking."""

    def __init__(self, channels: int) -> None:
        self.channels = channels
        self._chunks: deque[Samples] = deque()
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def __repr__(self) -> str:
        return f"<SampleFifo {self._len} samples x {self.channels}>"

    def put(self, samples: Samples) -> None:
        if len(samples):
            self._chunks.append(samples)
            self._len += len(samples)

    def take(self, count: int) -> Samples:
        """The first ``min(count, len(self))`` samples, removed from the queue."""
        count = min(count, self._len)
        first = self._chunks[0] if self._chunks else None
        if first is not None and len(first) == count:  # the common case: whole chunks, no copy
            self._chunks.popleft()
            self._len -= count
            return first
        out = np.empty((count, self.channels), dtype=np.int16)
        filled = 0
        while filled < count:
            chunk = self._chunks[0]
            n = min(len(chunk), count - filled)
            out[filled : filled + n] = chunk[:n]
            filled += n
            if n == len(chunk):
                self._chunks.popleft()
            else:
                self._chunks[0] = chunk[n:]
        self._len -= count
        return out

    def clear(self) -> None:
        self._chunks.clear()
        self._len = 0


@final
class Chunker:
    """Re-chunks a stream of audio frames into frames of exactly ``chunk_ms`` and runs ``process`` on each.

    Timestamps stay right: a chunk's timestamp is that of its first sample. A frame that does not continue
    the previous one (a gap in timestamps, or another rate or channel count) first flushes what is buffered.
    Flushing pads the last partial chunk with silence to full length, processes it, and keeps only the
    samples that were real, so no sample is added or lost.

    Args:
        chunk_ms: chunk length in milliseconds; the sample rate must hold a whole number of samples.
        process: maps one exact chunk to its processed samples (same shape).
    """

    def __init__(self, chunk_ms: int, process: Callable[[mg.AudioFrame], Samples]) -> None:
        self.chunk_ms = chunk_ms
        self._process = process
        self._fifo: SampleFifo | None = None
        self._rate = 0
        self._start = 0  # timestamp of the first buffered sample
        self._chunk = 0

    def __repr__(self) -> str:
        return f"<Chunker {self.chunk_ms} ms, {len(self._fifo or ())} buffered>"

    def push(self, frame: mg.AudioFrame) -> list[mg.AudioFrame]:
        """Buffer ``frame``; returns every complete chunk, processed.

        Raises:
            ValueError: the frame's rate holds no whole number of samples in ``chunk_ms``.
        """
        out: list[mg.AudioFrame] = []
        fifo = self._fifo
        if (
            fifo is None
            or frame.sample_rate != self._rate
            or frame.channels != fifo.channels
            or (frame.timestamp != self._start + len(fifo))
        ):
            out = self.flush()
            chunk = frame.sample_rate * self.chunk_ms
            if chunk % 1000:
                raise ValueError(f"{frame.sample_rate} Hz holds no whole number of samples in {self.chunk_ms} ms")
            self._fifo = fifo = SampleFifo(frame.channels)
            self._rate, self._chunk, self._start = frame.sample_rate, chunk // 1000, frame.timestamp
        fifo.put(frame.samples)
        while len(fifo) >= self._chunk:
            out.append(self._run(fifo.take(self._chunk), self._chunk))
        return out

    def flush(self) -> list[mg.AudioFrame]:
        """Process and return what is buffered (padded to a chunk for processing, trimmed back after)."""
        fifo = self._fifo
        if fifo is None or not len(fifo):
            return []
        real = len(fifo)
        samples = np.zeros((self._chunk, fifo.channels), dtype=np.int16)
        samples[:real] = fifo.take(real)
        frame = self._run(samples, real)
        return [attrs.evolve(frame, samples=frame.samples[:real])]

    def discard(self) -> None:
        """Drop what is buffered."""
        if self._fifo is not None:
            self._start += len(self._fifo)
            self._fifo.clear()

    def _run(self, samples: Samples, real: int) -> mg.AudioFrame:
        assert self._fifo is not None
        frame = mg.AudioFrame(
            samples=samples, sample_rate=self._rate, channels=self._fifo.channels, timestamp=self._start
        )
        self._start += real
        return attrs.evolve(frame, samples=self._process(frame))
