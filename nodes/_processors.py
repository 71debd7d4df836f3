"""Audio processors and their per-stream state: ``apm``, ``gain``, ``resample`` and ``plugin``. Trio-free.

A *processor* (:class:`Processor`) is an opened object that may be shared by several streams (a
noise-cancellation model, say); each node using it opens its own *stream* on it (:class:`ProcessorStream`) for
the state that belongs to one stream (re-chunking buffers, resampler state). Metadata messages reach the
processor through its :class:`~._stream_metadata.MetadataState`.

Resource handling: whoever opens a processor (``ProcessorConfig.open``) closes it exactly once (``with`` or
:meth:`Processor.close`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Final, Self, final

import attrs
import numpy as np
import soxr
from livekit import rtc

import mediagraph as mg

from ._audio import Chunker, Samples, map_channels
from ._stream_metadata import (
    CredentialsCleared,
    CredentialsUpdated,
    MetadataCall,
    MetadataState,
    StreamInfoCleared,
    StreamInfoUpdated,
    StreamMetadata,
    StreamMetadataCleared,
)

if TYPE_CHECKING:
    from ._processor_configs import ApmConfig, GainConfig, PluginConfig, ResampleConfig

__all__ = [
    "CHUNK_MS",
    "ApmProcessor",
    "GainProcessor",
    "PluginProcessor",
    "Processor",
    "ProcessorStream",
    "ResampleProcessor",
]

#: The AudioProcessingModule (and the plugins, like LiveKit's own audio streams) take exactly 10 ms frames.
CHUNK_MS: Final = 10


class ProcessorStream(abc.ABC):
    """One stream's state on a processor. Frames in, frames out, synchronously."""

    @abc.abstractmethod
    def process(self, frame: mg.AudioFrame) -> list[mg.AudioFrame]:
        """The processed frames ready after ``frame`` (maybe none, maybe several)."""

    def reference(self, frame: mg.AudioFrame) -> None:  # noqa: B027 - optional, nothing by default
        """What the speaker actually played (the echo canceller's far end)."""

    def flush(self) -> list[mg.AudioFrame]:
        """Process and return whatever is buffered (at a ``Flush`` and at the end)."""
        return []

    def discard(self) -> None:  # noqa: B027 - optional, nothing by default
        """Drop whatever is buffered (at an ``Interrupt``)."""


class Processor(abc.ABC):
    """An opened audio processor, which several streams may share.

    Resource handling: returned open by :meth:`ProcessorConfig.open`; its opener closes it exactly once with
    :meth:`close` or ``with``. Users of a shared processor call :meth:`stream` and :meth:`update_metadata`,
    never :meth:`close`.
    """

    def __init__(self) -> None:
        self.metadata = MetadataState()
        self.closed = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    @abc.abstractmethod
    def stream(self) -> ProcessorStream:
        """A new stream on this processor, for one node's frames."""

    def update_metadata(self, msg: StreamMetadata | StreamMetadataCleared) -> None:
        """Apply a metadata message; the processor sees each change once, in order, a clear once."""
        for call in self.metadata.apply(msg):
            self._metadata(call)

    def _metadata(self, call: MetadataCall) -> None:  # noqa: B027 - optional hook
        pass

    def close(self) -> None:
        """Release what the processor holds. A second call does nothing."""
        if not self.closed:
            self.closed = True
            self._close()

    def _close(self) -> None:  # noqa: B027 - optional hook
        pass


def _rtc_frame(frame: mg.AudioFrame) -> rtc.AudioFrame:
    """A ``livekit.rtc`` frame with its own writable buffer (processors modify it in place)."""
    return rtc.AudioFrame(bytearray(frame.samples.tobytes()), frame.sample_rate, frame.channels, len(frame.samples))


def _samples(frame: rtc.AudioFrame) -> Samples:
    flat = np.frombuffer(frame.data, dtype=np.int16)
    return flat.reshape(frame.samples_per_channel, frame.num_channels)


@final
class _ChunkedStream(ProcessorStream):
    """A stream on a processor that takes exactly 10 ms frames: re-chunks input and reference alike."""

    def __init__(
        self, process: Callable[[mg.AudioFrame], Samples], reverse: Callable[[mg.AudioFrame], Samples] | None
    ) -> None:
        self._chunks = Chunker(CHUNK_MS, process)
        self._reverse = Chunker(CHUNK_MS, reverse) if reverse is not None else None

    def process(self, frame: mg.AudioFrame) -> list[mg.AudioFrame]:
        return self._chunks.push(frame)

    def reference(self, frame: mg.AudioFrame) -> None:
        if self._reverse is not None:
            self._reverse.push(frame)

    def flush(self) -> list[mg.AudioFrame]:
        return self._chunks.flush()

    def discard(self) -> None:
        self._chunks.discard()


@final
class ApmProcessor(Processor):
    def __init__(self, config: ApmConfig) -> None:
        super().__init__()
        self.config = config
        self._apm = rtc.AudioProcessingModule(
            echo_cancellation=config.echo_cancellation,
            noise_suppression=config.noise_suppression,
            high_pass_filter=config.high_pass_filter,
            auto_gain_control=config.auto_gain_control,
        )

    def __repr__(self) -> str:
        return f"<apm processor {self.config!r}{' closed' if self.closed else ''}>"

    def stream(self) -> ProcessorStream:
        return _ChunkedStream(self._process, self._reverse if self.config.echo_cancellation else None)

    def _process(self, frame: mg.AudioFrame) -> Samples:
        buf = _rtc_frame(frame)
        if self.config.echo_cancellation:  # WebRTC wants the delay before each frame, and only with AEC on
            self._apm.set_stream_delay_ms(self.config.stream_delay_ms)
        self._apm.process_stream(buf)
        return _samples(buf)

    def _reverse(self, frame: mg.AudioFrame) -> Samples:
        buf = _rtc_frame(frame)
        self._apm.process_reverse_stream(buf)
        return frame.samples

    def _close(self) -> None:
        # The module has no close(); its FFI handle is kept alive by a module-level set, so GC never frees it.
        self._apm._ffi_handle.dispose()


@final
class _GainStream(ProcessorStream):
    def __init__(self, factor: float) -> None:
        self.factor = factor

    def process(self, frame: mg.AudioFrame) -> list[mg.AudioFrame]:
        if self.factor == 1.0:
            return [frame]
        scaled = np.clip(np.rint(frame.samples * self.factor), -32768, 32767).astype(np.int16)
        return [attrs.evolve(frame, samples=scaled)]


@final
class GainProcessor(Processor):
    def __init__(self, config: GainConfig) -> None:
        super().__init__()
        self.factor = 10 ** (config.db / 20)

    def stream(self) -> ProcessorStream:
        return _GainStream(self.factor)


@final
class _ResampleStream(ProcessorStream):
    """soxr's streaming resampler; a gap in timestamps or a new input format starts a new run.

    Channels are mapped before resampling when they decrease and after when they increase, so soxr always
    works on the fewest channels and upmixed channels are exact copies.
    """

    def __init__(self, config: ResampleConfig) -> None:
        self.config = config
        self._rate = 0
        self._channels = 0
        self._next: int | None = None  # the input timestamp that continues the current run
        self._out = 0  # the output timestamp of the next sample
        self._resampler: soxr.ResampleStream | None = None

    def process(self, frame: mg.AudioFrame) -> list[mg.AudioFrame]:
        out: list[mg.AudioFrame] = []
        if (frame.sample_rate, frame.channels, frame.timestamp) != (self._rate, self._channels, self._next):
            out = self.flush()
            self._rate, self._channels = frame.sample_rate, frame.channels
            self._out = round(frame.timestamp * self.config.sample_rate / frame.sample_rate)
            if frame.sample_rate != self.config.sample_rate:
                self._resampler = soxr.ResampleStream(
                    frame.sample_rate,
                    self.config.sample_rate,
                    min(frame.channels, self._target),
                    dtype="int16",
                    quality=self.config.quality,
                )
        self._next = frame.timestamp + frame.samples_per_channel
        samples = frame.samples
        if self._target < frame.channels:
            samples = map_channels(samples, self._target)
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        return out + self._frames(samples)

    @property
    def _target(self) -> int:
        return self.config.channels or self._channels

    def flush(self) -> list[mg.AudioFrame]:
        resampler, self._resampler, self._next = self._resampler, None, None
        if resampler is None:
            return []
        empty = np.zeros((0, min(self._channels, self._target)), dtype=np.int16)
        return self._frames(resampler.resample_chunk(empty, last=True))

    def discard(self) -> None:
        self._resampler, self._next = None, None

    def _frames(self, samples: Samples) -> list[mg.AudioFrame]:
        if not len(samples):
            return []
        if samples.ndim == 1:
            samples = samples[:, None]
        samples = map_channels(samples, self._target)
        frame = mg.AudioFrame(
            samples=samples, sample_rate=self.config.sample_rate, channels=samples.shape[1], timestamp=self._out
        )
        self._out += len(samples)
        return [frame]


@final
class ResampleProcessor(Processor):
    def __init__(self, config: ResampleConfig) -> None:
        super().__init__()
        self.config = config

    def stream(self) -> ProcessorStream:
        return _ResampleStream(self.config)


@final
class PluginProcessor(Processor):
    """A ``livekit.rtc.FrameProcessor[rtc.AudioFrame]``, given exactly 10 ms frames."""

    def __init__(self, config: PluginConfig) -> None:
        super().__init__()
        self.config = config
        self.plugin: rtc.FrameProcessor[rtc.AudioFrame] = config.load()(**config.options)

    def __repr__(self) -> str:
        return f"<plugin processor {self.config.plugin}{' closed' if self.closed else ''}>"

    def stream(self) -> ProcessorStream:
        return _ChunkedStream(self._process, None)

    def _process(self, frame: mg.AudioFrame) -> Samples:
        if not self.plugin.enabled:
            return frame.samples
        result = self.plugin._process(_rtc_frame(frame))
        samples = _samples(result)
        if samples.shape != frame.samples.shape:
            raise mg.ProviderError(
                f"plugin {self.config.plugin} returned {samples.shape[0]} samples x {samples.shape[1]} channels "
                f"for a frame of {frame.samples.shape[0]} x {frame.samples.shape[1]}"
            )
        return samples

    def _metadata(self, call: MetadataCall) -> None:
        match call:
            case StreamInfoUpdated(room, participant, track_id):
                self.plugin._on_stream_info_updated(
                    room_name=room, participant_identity=participant, publication_sid=track_id
                )
            case StreamInfoCleared():
                self.plugin._on_stream_info_cleared()
            case CredentialsUpdated(url, token):
                self.plugin._on_credentials_updated(token=token, url=url)
            case CredentialsCleared():
                self.plugin._on_credentials_cleared()

    def _close(self) -> None:
        self.plugin._close()
