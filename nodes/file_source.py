"""``file_source``: audio (and video) decoded with PyAV from any file FFmpeg reads, in fixed-length frames.

Decoding is incremental: each ``produce`` decodes just enough packets for one frame, so a long file costs a
few packets of memory, never the whole file.
"""

from __future__ import annotations

import stat
from collections import deque
from fractions import Fraction
from pathlib import Path
from typing import final

import attrs
import av
import numpy as np

import mediagraph as mg

from ._audio import SampleFifo, holds_a_sample, layout_name, passes_own_check

_v = attrs.validators

#: The most channels a media file may have (FFmpeg's layouts stop at 64; a header claiming more is damaged).
MAX_FILE_CHANNELS = 64
#: The most channels the frames of a file source carry; a file with more needs ``channels:`` to mix it down.
MAX_CHANNELS = 8

#: Containers whose header gives an exact duration: decoding noticeably less than it means the file is damaged.
_EXACT_DURATION = frozenset({"ogg", "mov,mp4,m4a,3gp,3g2,mj2", "flac", "wav", "aiff", "w64", "caf"})


@final
@attrs.frozen(kw_only=True)
class MediaInfo:
    """What probing a media file found: its first audio stream's format, duration, and whether it has video."""

    sample_rate: int
    channels: int
    duration: float | None
    has_video: bool


def probe(path: Path) -> MediaInfo:
    """Open ``path``, read its stream information and close it.

    Raises:
        ValueError: the file is missing, is not a regular file (a FIFO or a device would block or never end),
            is not a media file FFmpeg can read, has no audio stream, or claims an impossible channel count;
            the message names the file.
    """
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise ValueError(f"path {str(path)!r}: not a regular file (a FIFO, a device or a folder)")
    except FileNotFoundError:
        raise ValueError(f"path {str(path)!r}: no such file") from None
    except OSError as exc:
        raise ValueError(f"path {str(path)!r}: cannot read it ({exc.strerror})") from None
    try:
        container = av.open(str(path))
    except FileNotFoundError:
        raise ValueError(f"path {str(path)!r}: no such file") from None
    except (av.FFmpegError, EOFError, OSError) as exc:
        raise ValueError(f"path {str(path)!r}: not a media file FFmpeg can read ({exc})") from exc
    with container:
        if not container.streams.audio:
            kinds = ", ".join(f"{s.type} {s.codec_context.name}" for s in container.streams) or "none"
            raise ValueError(f"path {str(path)!r}: the file has no audio stream (streams: {kinds})")
        audio = container.streams.audio[0]
        duration = float(audio.duration * audio.time_base) if audio.duration and audio.time_base else None
        if audio.sample_rate <= 0 or audio.channels <= 0:
            raise ValueError(f"path {str(path)!r}: its audio stream has no sample rate or channel count")
        if audio.channels > MAX_FILE_CHANNELS:
            raise ValueError(
                f"path {str(path)!r}: its header claims {audio.channels} channels (at most {MAX_FILE_CHANNELS}): "
                "the file is damaged"
            )
        return MediaInfo(
            sample_rate=audio.sample_rate,
            channels=audio.channels,
            duration=duration,
            has_video=bool(container.streams.video),
        )


def _probe_path(config: FileSourceConfig, _: attrs.Attribute[Path], value: Path) -> None:
    """Probe the file and fill in ``config.media``: a validator (the first to run), so an unreadable file is
    the ``path`` parameter's error.
    """
    media = probe(value)
    if config.channels is None and media.channels > MAX_CHANNELS:
        raise ValueError(
            f"path {str(value)!r}: the file has {media.channels} channels; set channels "
            f"(at most {MAX_CHANNELS}) to mix it down"
        )
    object.__setattr__(config, "media", media)


def _rate(config: FileSourceConfig) -> int | None:
    """The rate frames are cut at: ``sample_rate``, else the file's (which ``path`` probed); ``None`` while
    ``sample_rate`` is invalid, which its own validator reports."""
    if not passes_own_check(config, "sample_rate"):
        return None
    return config.sample_rate or config.media.sample_rate


@final
@attrs.frozen(kw_only=True)
class FileSourceConfig:
    """Args:
    path: the media file (any format FFmpeg reads). It is probed when the config is built, so a missing or
        unreadable file, or one without audio, is an error naming the file before the graph runs.
    frame_ms: frame length in milliseconds (the last frame of the file may be shorter).
    sample_rate: resample to this rate (Hz); ``None``: the file's own rate.
    channels: mix to this many channels; ``None``: the file's own.
    paced: release each frame at its media time on the graph clock; ``False``: as fast as the graph takes.
    loop: start again at the end of the file, timestamps going on increasing; ``False``: end the stream.
    """

    path: Path = attrs.field(converter=Path, validator=_probe_path, metadata={"path": "input"})
    frame_ms: float = attrs.field(default=10.0, validator=[_v.gt(0), _v.le(1000), holds_a_sample(_rate)])
    sample_rate: int | None = attrs.field(default=None, validator=_v.optional([_v.ge(8000), _v.le(384000)]))
    channels: int | None = attrs.field(default=None, validator=_v.optional([_v.ge(1), _v.le(8)]))
    paced: bool = True
    loop: bool = False
    media: MediaInfo = attrs.field(init=False, eq=False, repr=False)

    @property
    def format(self) -> mg.AudioFormat:
        """The format of the frames emitted: the requested one, else the file's."""
        return mg.AudioFormat(
            sample_rate=self.sample_rate or self.media.sample_rate, channels=self.channels or self.media.channels
        )

    @property
    def frame_len(self) -> int:
        rate = self.sample_rate or self.media.sample_rate
        return round(rate * self.frame_ms / 1000)

    @property
    def media_seconds(self) -> float | None:
        """How long it plays (``None``: endless, looping, or a file that does not say), for the progress."""
        return None if self.loop else self.media.duration


@final
class _Pass:
    """One decoding pass over the file: demuxes and decodes packet by packet, resampling to packed s16.

    Raises (from :meth:`read`):
        mg.ProviderError: FFmpeg reported an error, a packet is marked corrupt, or the file ended well before
            the duration its header gives (truncated or damaged); the message names the file and the time.
    """

    def __init__(self, path: Path, rate: int, channels: int, video: bool) -> None:
        self.path = path
        try:
            self._container = av.open(str(path))
        except (av.FFmpegError, EOFError, OSError) as exc:
            raise mg.ProviderError(f"cannot open media file {str(path)!r}: {exc}") from exc
        self._audio = self._container.streams.audio[0]
        self._source_rate = self._audio.sample_rate
        duration, base = self._audio.duration, self._audio.time_base
        exact = self._container.format.name in _EXACT_DURATION
        self._expected = float(duration * base) if exact and duration and base else None
        streams: list[av.AudioStream | av.VideoStream] = [self._audio]
        self._video = self._container.streams.video[0] if video and self._container.streams.video else None
        if self._video is not None:
            streams.append(self._video)
        self._packets = self._container.demux(streams)
        self._resampler = av.AudioResampler(format="s16", layout=layout_name(channels), rate=rate)
        self.decoded = 0  # samples at the file's rate, for the damage check at the end
        self.done = False
        self.warning: str | None = None  # set at the end when the file looks cut short, without failing
        self._ogg = self._container.format.name == "ogg"

    def __repr__(self) -> str:
        return f"<_Pass {str(self.path)!r} decoded={self.decoded} done={self.done}>"

    def close(self) -> None:
        self._container.close()

    def _where(self) -> str:
        return f"media file {str(self.path)!r} at {self.decoded / self._source_rate:.2f} s"

    def read(self, audio: SampleFifo, video: list[av.VideoFrame]) -> None:
        """Decode the next packet into ``audio`` (resampled) and ``video``; at the end set ``done``."""
        try:
            packet = next(self._packets, None)
            if packet is None:
                self._end(audio)
                return
            if packet.is_corrupt:
                raise mg.ProviderError(f"{self._where()}: corrupt or truncated data")
            for frame in packet.decode():  # the empty packets at the end drain the decoders
                if isinstance(frame, av.AudioFrame):
                    self.decoded += frame.samples
                    self._put(audio, self._resampler.resample(frame))
                elif isinstance(frame, av.VideoFrame):
                    video.append(frame)
        except av.FFmpegError as exc:
            raise mg.ProviderError(f"{self._where()}: {exc}") from exc

    def _end(self, audio: SampleFifo) -> None:
        self._put(audio, self._resampler.resample(None))
        self.done = True
        self.close()
        if self._ogg and not _ends_with_eos(self.path):
            self.warning = (
                f"media file {str(self.path)!r} ends after {self.decoded / self._source_rate:.2f} s without its "
                "end-of-stream marker: the file was cut short (a copy or a recording interrupted)"
            )
        want = self._expected
        if want is not None:
            got = self.decoded / self._source_rate
            if got < want - 0.05 - want * 0.005:
                raise mg.ProviderError(
                    f"media file {str(self.path)!r} ends after {got:.2f} s of audio but its header says "
                    f"{want:.2f} s: the file is truncated or damaged"
                )

    @staticmethod
    def _put(audio: SampleFifo, frames: list[av.AudioFrame]) -> None:
        for frame in frames:
            flat = np.frombuffer(frame.planes[0], dtype=np.int16, count=frame.samples * audio.channels)
            audio.put(flat.reshape(frame.samples, audio.channels))


def _ends_with_eos(path: Path) -> bool:
    """Whether the last Ogg page of the file has the end-of-stream flag (a complete Ogg stream ends so)."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - 65536))
            tail = f.read()
    except OSError:
        return True  # nothing to say: the decoder read it a moment ago
    page = tail.rfind(b"OggS")
    return page >= 0 and len(tail) > page + 5 and bool(tail[page + 5] & 0x04)


@final
@mg.node_type(
    "file_source",
    config=FileSourceConfig,
    port_notes="outlet audio (AudioFrame, the file's rate and channels, or sample_rate/channels); outlet video "
    "(VideoFrame) too when the file has a video stream",
)
class FileSource(mg.Source):
    """Audio (and video) from a media file, in fixed-length frames with exact consecutive timestamps.

    Outlets: ``audio`` (``AudioFrame``, int16, format from the config or the file); ``video`` (``VideoFrame``
    holding ``av.VideoFrame`` pictures, pts in the file's time base), declared only when the file has video and
    decoded only when linked. Each picture is released with the first audio frame that reaches its time.

    Events: ``media_warning`` (``message``) when an Ogg file ends without its end-of-stream marker (cut
    short: what it held is played, and the graph is told).

    Cancellation: the file is read synchronously in ``produce``, one packet at a time; a cancelled graph stops
    calling it. Resource handling: the file is opened at the first ``produce`` and closed when the stream ends
    or a read fails. Error handling: a file that turns out corrupt or truncated while decoding fails the node
    with :class:`mediagraph.ProviderError` naming the file and the time.
    """

    @staticmethod
    def ports(config: FileSourceConfig) -> mg.Ports:
        outlets = [mg.OutletSpec(name="audio", format=config.format)]
        if config.media.has_video:
            outlets.append(mg.OutletSpec(name="video", types=mg.VideoFrame))
        return mg.Ports(outlets=outlets)

    def __init__(self, config: FileSourceConfig) -> None:
        self.config = config
        fmt = config.format
        assert fmt.sample_rate is not None and fmt.channels is not None
        self.rate: int = fmt.sample_rate
        self.channels: int = fmt.channels
        self.frame_len = config.frame_len
        self.position = 0  # samples emitted
        self.passes = 0
        self._fifo = SampleFifo(self.channels)
        self._pictures: list[av.VideoFrame] = []
        self._video: deque[mg.VideoFrame] = deque()
        self._pass: _Pass | None = None
        self._pass_start = 0  # position at which the current pass began (offsets video times when looping)
        self._decode_video = False

    def __repr__(self) -> str:
        return f"<FileSource {str(self.config.path)!r} at {self.position} samples, pass {self.passes}>"

    def start(self, io: mg.NodeIO) -> None:
        self._log = io.log
        self._emit = io.outlets["audio"].emit
        video = io.outlets.get("video")
        self._emit_video = video.emit if video is not None else None
        self._decode_video = video is not None and bool(video.links)

    def _fill(self) -> bool:
        """Decode until a frame's worth is buffered; ``False`` when the file (and every loop) is exhausted."""
        while len(self._fifo) < self.frame_len:
            if self._pass is None:
                queued = self.position + len(self._fifo)
                if self.passes and (not self.config.loop or queued == self._pass_start):
                    return bool(len(self._fifo))  # ended, or a pass gave no audio at all: never spin
                self._pass_start = queued
                self._pass = _Pass(self.config.path, self.rate, self.channels, self._decode_video)
                self.passes += 1
            try:
                self._pass.read(self._fifo, self._pictures)
            except BaseException:
                self._pass.close()
                self._pass = None
                raise
            self._queue_pictures()
            if self._pass.done:
                if self._pass.warning is not None:
                    self._log("media_warning", message=self._pass.warning)
                self._pass = None
        return True

    def _queue_pictures(self) -> None:
        offset = Fraction(self._pass_start, self.rate)
        for picture in self._pictures:
            tb = picture.time_base
            base = Fraction(tb.numerator, tb.denominator) if tb else Fraction(1, 90000)
            pts = (picture.pts or 0) + round(offset / base)
            self._video.append(mg.VideoFrame(pixels=picture, pts=pts, time_base=base))
        self._pictures.clear()

    def produce(self) -> float | None:
        if not self._fill():
            self._release_video(None)
            return None
        samples = self._fifo.take(self.frame_len)
        frame = mg.AudioFrame(samples=samples, sample_rate=self.rate, channels=self.channels, timestamp=self.position)
        self._emit(frame)
        self.position += len(samples)
        self._release_video(self.position / self.rate)
        return self.position / self.rate if self.config.paced else 0.0

    def _release_video(self, until: float | None) -> None:
        """Emit the pictures whose time is before ``until`` seconds of media (all of them if ``None``)."""
        if self._emit_video is None:
            return
        while self._video and (until is None or self._video[0].time < until):
            self._emit_video(self._video.popleft())
