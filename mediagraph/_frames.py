"""Frames and control messages: immutable, slotted, built by name.

Audio samples are interleaved int16 held in a numpy array of shape ``(samples_per_channel, channels)``;
media time is an integer timestamp in samples at the frame's own rate.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import av
    from livekit import rtc

__all__ = [
    "AudioFormat",
    "AudioFrame",
    "Control",
    "EndOfStream",
    "Flush",
    "Interrupt",
    "PlaybackFinished",
    "PlaybackStarted",
    "TextChunk",
    "VideoFrame",
]


def _positive(_: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


@attrs.frozen(kw_only=True)
class AudioFormat:
    """What an audio port produces or accepts; ``None`` in a field means "any"."""

    sample_rate: int | None = attrs.field(default=None, validator=_positive)
    channels: int | None = attrs.field(default=None, validator=_positive)

    def accepts(self, other: AudioFormat) -> bool:
        """Whether audio of format ``other`` satisfies this constraint (unknown fields never conflict)."""
        return all(
            mine is None or theirs is None or mine == theirs
            for mine, theirs in ((self.sample_rate, other.sample_rate), (self.channels, other.channels))
        )

    def __str__(self) -> str:
        rate = f"{self.sample_rate} Hz" if self.sample_rate else "any rate"
        channels = f"{self.channels} ch" if self.channels else "any channels"
        return f"{rate}, {channels}"


def _check_samples(frame: AudioFrame, _: attrs.Attribute[Any], samples: npt.NDArray[np.int16]) -> None:
    if samples.dtype != np.int16 or samples.ndim != 2:
        raise ValueError(
            f"AudioFrame samples must be an int16 array of shape (samples, channels), "
            f"got {samples.dtype} of shape {samples.shape}"
        )
    if samples.shape[1] != frame.channels:
        raise ValueError(f"AudioFrame has {frame.channels} channels but samples have shape {samples.shape}")


@attrs.frozen(kw_only=True)
class AudioFrame:
    """A block of interleaved int16 audio.

    Args:
        samples: int16 array of shape ``(samples_per_channel, channels)``; never written to after construction.
        sample_rate: samples per second per channel.
        channels: channel count.
        timestamp: position of the first sample, in samples at ``sample_rate`` since the stream began.
    """

    samples: npt.NDArray[np.int16] = attrs.field(validator=_check_samples, eq=False)
    sample_rate: int = attrs.field(validator=_positive)
    channels: int = attrs.field(validator=_positive)
    timestamp: int = 0

    @property
    def samples_per_channel(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return float(self.samples.shape[0] / self.sample_rate)

    @property
    def format(self) -> AudioFormat:
        return AudioFormat(sample_rate=self.sample_rate, channels=self.channels)

    @classmethod
    def from_av(cls, frame: av.AudioFrame, *, timestamp: int | None = None) -> AudioFrame:
        """Wrap a packed ``s16`` PyAV frame; the samples are a view of the frame's buffer, not a copy.

        Raises:
            ValueError: the frame is not packed signed 16-bit (resample it with ``av.AudioResampler`` first).
        """
        if frame.format.name != "s16":
            raise ValueError(f"AudioFrame.from_av needs packed s16 audio, got {frame.format.name!r}")
        channels = frame.layout.nb_channels
        flat = np.frombuffer(frame.planes[0], dtype=np.int16, count=frame.samples * channels)
        ts = timestamp if timestamp is not None else (frame.pts if frame.pts is not None else 0)
        return cls(
            samples=flat.reshape(frame.samples, channels),
            sample_rate=frame.sample_rate,
            channels=channels,
            timestamp=ts,
        )

    def to_av(self) -> av.AudioFrame:
        """A PyAV frame with the same samples (PyAV allocates its own buffer: one copy)."""
        import av

        layout = {1: "mono", 2: "stereo"}.get(self.channels) or f"{self.channels}c"
        frame = av.AudioFrame.from_ndarray(self.samples.reshape(1, -1), format="s16", layout=layout)
        frame.sample_rate = self.sample_rate
        frame.pts = self.timestamp
        frame.time_base = Fraction(1, self.sample_rate)
        return frame

    @classmethod
    def from_rtc(cls, frame: rtc.AudioFrame, *, timestamp: int = 0) -> AudioFrame:
        """Wrap a ``livekit.rtc.AudioFrame``; the samples are a view of its buffer, not a copy."""
        flat = np.frombuffer(frame.data, dtype=np.int16)
        return cls(
            samples=flat.reshape(frame.samples_per_channel, frame.num_channels),
            sample_rate=frame.sample_rate,
            channels=frame.num_channels,
            timestamp=timestamp,
        )

    def to_rtc(self) -> rtc.AudioFrame:
        """A ``livekit.rtc.AudioFrame`` sharing this frame's buffer (no copy when samples are contiguous)."""
        from livekit import rtc

        # livekit copies a memoryview whose underlying object's len() differs from its byte count, so hand
        # it a flat byte view of the samples: same memory, len() == nbytes.
        raw = np.ascontiguousarray(self.samples).reshape(-1).view(np.uint8)
        return rtc.AudioFrame(memoryview(raw), self.sample_rate, self.channels, self.samples_per_channel)


@attrs.frozen(kw_only=True)
class VideoFrame:
    """A video picture.

    Args:
        pixels: a numpy array (height, width, channels) or an ``av.VideoFrame``.
        pts: presentation timestamp in ``time_base`` units.
        time_base: seconds per ``pts`` unit.
    """

    pixels: Any = attrs.field(eq=False)
    pts: int
    time_base: Fraction = attrs.field(converter=Fraction)

    @property
    def time(self) -> float:
        return float(self.pts * self.time_base)


@attrs.frozen(kw_only=True)
class TextChunk:
    """A piece of text (a transcript delta), optionally timed in seconds of media."""

    text: str
    start: float | None = None
    end: float | None = None
    final: bool = False


class Control:
    """Base of the control messages. Every inlet accepts them, whatever its data type."""

    __slots__ = ()


@attrs.frozen(kw_only=True)
class Flush(Control):
    """The current segment is complete: play out what is buffered, then close the segment."""


@attrs.frozen(kw_only=True)
class Interrupt(Control):
    """Stop the current segment now (barge-in); what is buffered is discarded."""

    reason: str = "interrupt"


@attrs.frozen(kw_only=True)
class EndOfStream(Control):
    """Sent by a node on an outlet to close it: nothing follows on that outlet."""


@attrs.frozen(kw_only=True)
class PlaybackStarted:
    """A sink began playing ``segment``: its first sample was actually consumed at graph time ``t``.

    ``start`` is the media time (seconds: the first frame's timestamp over its rate) where the segment
    begins, so a node above can tell which of the audio it sent this is without counting segments.
    ``generation`` increases at each swap or interrupt; events of a superseded generation are dropped.
    """

    segment: int
    generation: int = 0
    t: float = 0.0
    start: float | None = None


@attrs.frozen(kw_only=True)
class PlaybackFinished:
    """A sink finished ``segment``: ``position`` seconds of it were played; ``interrupted`` if it was cut.

    ``start`` (media seconds) and ``sent`` (seconds queued) say which audio the segment was: the part from
    ``start + position`` to ``start + sent`` was never played.
    """

    segment: int
    position: float
    interrupted: bool
    generation: int = 0
    t: float = 0.0
    start: float | None = None
    sent: float = 0.0
