"""The recorder's and the file sink's files: audio (48 kHz stereo for the recorder; any rate and channel count
a format takes for ``file_sink``), plus H.264 video in MP4, that survive a killed process.

Theory of operation. A recording is written under an in-progress name next to its own, ``NAME.part``
(``call.ogg`` is written as ``call.ogg.part``), and renamed to ``NAME`` (atomically, in the same folder) only
once finalized, so a file under the final name is always complete, and an existing file there is replaced
only by a complete one. What reaches the disk while recording is readable at any moment, so a process killed
(SIGKILL, power cut after the OS wrote it) leaves a playable ``.part`` that lacks only the last moments:

- **Ogg/Opus**: a page at least every 250 ms, each handed to the OS as soon as it is muxed.
- **WAV**: 16-bit PCM written as it comes, the header's sizes rewritten after each write (a killed file's
  header counts what is there: the data always precedes the header that counts it).
- **FLAC** (``file_sink`` only): each frame handed to the OS as soon as it is muxed; the header's totals are
  written when finalized (a killed file's header says "length unknown", which decoders accept).
- **MP4**: fragmented (an empty ``moov``, then a ``moof``/``mdat`` fragment at least every 250 ms, each handed
  to the OS when complete), so the file is playable up to its last complete fragment.

Files are never written through a symbolic link: a symlink at the final path is refused, the in-progress file
is created with ``O_EXCL | O_NOFOLLOW`` (a leftover ``.part`` of a killed run, a regular file or a link, is
removed first, never followed), and the rename replaces whatever is at the final path itself, never a link's
target.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import struct
import typing
from fractions import Fraction
from pathlib import Path
from typing import Final, Protocol, final

import attrs
import av
import numpy as np
import numpy.typing as npt

import mediagraph as mg

__all__ = ["FORMATS", "SINK_FORMATS", "Format", "Recording", "SubtitleFile", "open_part", "subtitles_path"]

#: The recorder's sample rate (a recording's, unless given).
RATE: Final = 48000
_MP4_FRAGMENT_US: Final = 250_000


@final
@attrs.frozen(kw_only=True)
class Format:
    """Args:
    container, codec, options: what PyAV opens and adds.
    video: MP4: H.264 video may be added.
    rates: the sample rates the codec takes (``None``: any).
    channel_counts: the channel counts the codec takes.
    """

    container: str
    codec: str
    options: dict[str, str] = attrs.field(factory=dict)
    video: bool = False
    rates: tuple[int, ...] | None = None
    channel_counts: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)


_OGG = Format(
    container="ogg",
    codec="libopus",
    options={"page_duration": "250000", "flush_packets": "1"},
    rates=(8000, 12000, 16000, 24000, 48000),
    channel_counts=(1, 2, 5, 6, 7, 8),  # libopus refuses FFmpeg's unnamed 3- and 4-channel layouts
)
FORMATS: Final = {
    ".ogg": _OGG,
    ".opus": _OGG,
    ".wav": Format(container="wav", codec="pcm_s16le"),
    ".mp4": Format(
        container="mp4",
        codec="aac",
        options={
            "movflags": "frag_keyframe+empty_moov+delay_moov+default_base_moof",
            "frag_duration": str(_MP4_FRAGMENT_US),
            "flush_packets": "1",
        },
        video=True,
    ),
}
#: What ``file_sink`` writes: the recorder's formats, and FLAC.
SINK_FORMATS: Final = {**FORMATS, ".flac": Format(container="flac", codec="flac", options={"flush_packets": "1"})}


def part_name(path: Path) -> Path:
    """Where the recording of ``path`` is written until it is finalized."""
    return path.with_name(path.name + ".part")


def subtitles_path(path: Path) -> Path:
    """Where the subtitles of the recording ``path`` go: beside it, ``.vtt`` for its extension."""
    return path.with_suffix(".vtt")


def _fail(path: Path, why: str) -> mg.ProviderError:
    return mg.ProviderError(f"cannot create recording {str(path)!r}: {why}")


def _make_folder(path: Path) -> None:
    """Create the missing folders above ``path``, or say exactly why not."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return
    except (FileExistsError, NotADirectoryError):
        for above in reversed([folder, *folder.parents]):
            if above.exists() and not above.is_dir():
                raise _fail(path, f"{str(above)!r} is a file, not a folder") from None
        raise _fail(path, f"{str(folder)!r} is not a folder") from None
    except PermissionError:
        existing = next(p for p in [folder, *folder.parents] if p.exists())
        raise _fail(path, f"no permission to create a folder in {str(existing)!r}") from None
    except OSError as exc:
        raise _fail(path, f"cannot create its folder {str(folder)!r}: {exc.strerror or exc}") from None


def open_part(path: Path) -> io.FileIO:
    """Create ``path``'s in-progress file, empty, for writing, never through a symlink.

    Raises:
        mg.ProviderError: the final path is a symlink or a folder, a folder on the way is a file, or the
            folder cannot be written; the message names the path and says which.
    """
    _make_folder(path)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise _fail(path, exc.strerror or str(exc)) from None
    if mode is not None and stat.S_ISLNK(mode):
        raise _fail(path, "it is a symbolic link, and a recording is never written through one (remove it)")
    if mode is not None and stat.S_ISDIR(mode):
        raise _fail(path, "it is a folder")
    part = part_name(path)
    try:
        leftover = os.lstat(part).st_mode
    except FileNotFoundError:
        leftover = None
    if leftover is not None:
        if not (stat.S_ISREG(leftover) or stat.S_ISLNK(leftover)):
            raise _fail(path, f"its in-progress name {str(part)!r} is taken by something that is not a file")
        part.unlink()  # a killed run's: removed (a link itself, never its target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(part, flags, 0o644)
    except PermissionError:
        raise _fail(path, f"no permission to write in the folder {str(path.parent)!r}") from None
    except OSError as exc:
        if exc.errno == errno.EROFS:
            raise _fail(path, f"the folder {str(path.parent)!r} is on a read-only file system") from None
        raise _fail(path, exc.strerror or str(exc)) from None
    return io.FileIO(fd, "w")


class _Encoder(Protocol):
    samples: int
    pictures: int
    waiting_for_video: bool

    def write_audio(self, samples: npt.NDArray[np.int16]) -> None: ...

    def write_video(self, picture: mg.VideoFrame) -> None: ...

    def close(self) -> None: ...


def _write_all(file: io.FileIO, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = file.write(view)
        if not written:
            raise OSError(errno.ENOSPC, "nothing written")
        view = view[written:]


@final
class _Wav:
    """16-bit PCM; the header's sizes are rewritten after each write, so the file is always valid."""

    def __init__(self, file: io.FileIO, rate: int, channels: int) -> None:
        self._file = file
        self._rate = rate
        self._channels = channels
        self.samples = 0
        self.pictures = 0
        self.waiting_for_video = False
        self._header(0)

    def _header(self, data: int) -> None:
        data = min(data, 0xFFFFFFFF - 36)  # a WAV counts at most 4 GiB; readers then read to the end
        block = 2 * self._channels
        fmt = struct.pack("<HHIIHH", 1, self._channels, self._rate, self._rate * block, block, 16)
        header = b"RIFF" + struct.pack("<I", 36 + data) + b"WAVEfmt " + struct.pack("<I", 16) + fmt
        header += b"data" + struct.pack("<I", data)
        if self._file.tell():  # rewrite it in place; the file's position stays at its end
            os.pwrite(self._file.fileno(), header, 0)
        else:
            _write_all(self._file, header)

    def write_audio(self, samples: npt.NDArray[np.int16]) -> None:
        _write_all(self._file, np.ascontiguousarray(samples, dtype="<i2").tobytes())
        self.samples += len(samples)
        self._header(self.samples * 2 * self._channels)

    def write_video(self, picture: mg.VideoFrame) -> None:
        raise TypeError("a WAV recording has no video")  # the recorder has no video inlet for it

    def close(self) -> None:
        self._header(self.samples * 2 * self._channels)


@final
class _Av:
    """Ogg/Opus, FLAC or fragmented MP4 (AAC, plus H.264 once the first picture comes, if video is wanted)."""

    def __init__(self, file: io.FileIO, fmt: Format, *, video: bool, rate: int, channels: int) -> None:
        self._rate = rate
        self._layout = {1: "mono", 2: "stereo"}.get(channels) or f"{channels}c"
        self.samples = 0
        self.pictures = 0
        # bitexact: no random Ogg serial number, no version strings; the same input, the same bytes.
        options = {**fmt.options, "fflags": "+bitexact"}
        self._container = av.open(file, "w", format=fmt.container, options=options)
        self._audio = typing.cast(av.AudioStream, self._container.add_stream(fmt.codec, rate=rate, layout=self._layout))
        self._video: av.VideoStream | None = None
        self.waiting_for_video = video  # the muxer needs every stream before the first packet
        self._last_pts = -1

    def write_audio(self, samples: npt.NDArray[np.int16]) -> None:
        flat = np.ascontiguousarray(samples).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(flat, format="s16", layout=self._layout)
        frame.sample_rate = self._rate
        frame.pts = self.samples
        frame.time_base = Fraction(1, self._rate)
        self.samples += len(samples)
        for packet in self._audio.encode(frame):
            self._container.mux(packet)

    def write_video(self, picture: mg.VideoFrame) -> None:
        pixels = picture.pixels
        frame = pixels if isinstance(pixels, av.VideoFrame) else av.VideoFrame.from_ndarray(pixels, format="rgb24")
        if self._video is None:
            self._video = self._container.add_stream("libx264", rate=30)
            self._video.width, self._video.height = frame.width, frame.height
            self._video.pix_fmt = "yuv420p"
            self._video.codec_context.time_base = Fraction(1, 90000)
            self.waiting_for_video = False
        pts = round(picture.time * 90000)
        if pts <= self._last_pts:  # the encoder needs increasing times; a repeat adds nothing
            return
        self._last_pts = pts
        out = frame.reformat(width=self._video.width, height=self._video.height, format="yuv420p")
        out.pts = pts
        out.time_base = Fraction(1, 90000)
        self.pictures += 1
        for packet in self._video.encode(out):
            self._container.mux(packet)

    def close(self) -> None:
        try:
            if not self.samples and not self.pictures:
                self._container.start_encoding()  # PyAV writes the header only with the first packet
            for stream in (self._audio, self._video):
                if stream is not None:
                    for packet in stream.encode(None):
                        self._container.mux(packet)
        finally:
            self._container.close()


@final
class Recording:
    """One recording file, written under its in-progress name (see the module's docstring).

    Args:
        path: the final path; its extension picks the format (one of :data:`FORMATS`) unless ``fmt`` is given.
        video: an MP4 recording waits for its first picture before it writes anything.
        fmt: the format (``file_sink``: one of :data:`SINK_FORMATS`).
        rate, channels: the audio's (48 kHz stereo, the recorder's, by default); samples written are int16
            arrays of shape ``(n, channels)``.

    Raises:
        mg.ProviderError: the file cannot be created (see :func:`open_part`) or written; the message names it.

    Resource handling: the constructor creates the in-progress file; exactly one of :meth:`finalize` (which
    gives the file its name) and :meth:`abandon` (which leaves the in-progress file as it is, for what it
    holds) must then be called. After a write failed, only :meth:`abandon` is.
    """

    def __init__(
        self, path: Path, *, video: bool, fmt: Format | None = None, rate: int = RATE, channels: int = 2
    ) -> None:
        self.path = path
        self.part = part_name(path)
        self.failed: str | None = None  # why writing failed, if it did
        fmt = fmt or FORMATS[path.suffix.lower()]
        self._file = open_part(path)
        try:
            self._encoder: _Encoder = (
                _Wav(self._file, rate, channels)
                if fmt.container == "wav"
                else _Av(self._file, fmt, video=video, rate=rate, channels=channels)
            )
        except (OSError, av.FFmpegError) as exc:
            self._file.close()
            self.part.unlink(missing_ok=True)
            raise _fail(path, str(exc)) from exc

    def __repr__(self) -> str:
        state = f"failed: {self.failed}" if self.failed else "open" if not self._file.closed else "closed"
        return f"<Recording {str(self.path)!r} {self.samples} samples {self.pictures} pictures, {state}>"

    @property
    def samples(self) -> int:
        return self._encoder.samples

    @property
    def pictures(self) -> int:
        return self._encoder.pictures

    @property
    def waiting_for_video(self) -> bool:
        return self._encoder.waiting_for_video

    @waiting_for_video.setter
    def waiting_for_video(self, value: bool) -> None:
        self._encoder.waiting_for_video = value

    def _failure(self, exc: Exception) -> mg.ProviderError:
        self.failed = str(exc)
        return mg.ProviderError(
            f"writing recording {str(self.path)!r} failed: {exc}; what was written so far is in {str(self.part)!r}"
        )

    def write_audio(self, samples: npt.NDArray[np.int16]) -> None:
        try:
            self._encoder.write_audio(samples)
        except (OSError, av.FFmpegError) as exc:
            raise self._failure(exc) from exc

    def write_video(self, picture: mg.VideoFrame) -> None:
        try:
            self._encoder.write_video(picture)
        except (OSError, av.FFmpegError) as exc:
            raise self._failure(exc) from exc

    def finalize(self) -> None:
        """Finish the file (encoders flushed, index written, on disk) and rename it to its final name.

        Raises:
            mg.ProviderError: finishing or renaming failed; the in-progress file is left as it is, named.
        """
        try:
            try:
                self._encoder.close()
                os.fsync(self._file.fileno())
            finally:
                self._file.close()
            os.replace(self.part, self.path)  # replaces a link at the path itself, never its target
        except (OSError, av.FFmpegError) as exc:
            raise self._failure(exc) from exc

    def abandon(self) -> None:
        """Close the in-progress file as it is, best effort (it holds what could be written)."""
        try:
            self._encoder.close()
        except (OSError, av.FFmpegError):
            pass  # the file is as good as it got: it failed to be written already
        finally:
            self._file.close()


@final
class SubtitleFile:
    """The recording's WebVTT subtitles, written under an in-progress name like the recording (see the module's
    docstring): text is appended as it comes and handed to the OS at once, so a killed process leaves a
    ``NAME.vtt.part`` that parses, with every cue appended so far.

    Args:
        path: the final path (``NAME.vtt``).
        header: the text the file starts with.

    Raises:
        mg.ProviderError: the file cannot be created (see :func:`open_part`) or written; the message names it.

    Resource handling: as :class:`Recording`: the constructor creates the in-progress file; exactly one of
    :meth:`finalize` and :meth:`abandon` must then be called, only :meth:`abandon` after a write failed.
    """

    def __init__(self, path: Path, header: str) -> None:
        self.path = path
        self.part = part_name(path)
        self.failed: str | None = None
        self._file = open_part(path)
        try:
            _write_all(self._file, header.encode())
        except OSError as exc:
            self.abandon()
            self.part.unlink(missing_ok=True)
            raise _fail(path, exc.strerror or str(exc)) from exc

    def __repr__(self) -> str:
        state = f"failed: {self.failed}" if self.failed else "open" if not self._file.closed else "closed"
        return f"<SubtitleFile {str(self.path)!r} {state}>"

    def _failure(self, exc: OSError) -> mg.ProviderError:
        self.failed = str(exc)
        return mg.ProviderError(
            f"writing subtitles {str(self.path)!r} failed: {exc}; what was written so far is in {str(self.part)!r}"
        )

    def append(self, text: str) -> None:
        if not text:
            return
        try:
            _write_all(self._file, text.encode())
        except OSError as exc:
            raise self._failure(exc) from exc

    def finalize(self, document: str | None = None) -> None:
        """Put the file on disk (all of it rewritten as ``document`` if given) and give it its final name.

        Raises:
            mg.ProviderError: writing or renaming failed; the in-progress file is left as it is, named.
        """
        try:
            try:
                if document is not None:
                    self._file.seek(0)
                    self._file.truncate()
                    _write_all(self._file, document.encode())
                os.fsync(self._file.fileno())
            finally:
                self._file.close()
            os.replace(self.part, self.path)  # replaces a link at the path itself, never its target
        except OSError as exc:
            raise self._failure(exc) from exc

    def abandon(self) -> None:
        """Close the in-progress file as it is (it holds every cue appended)."""
        self._file.close()
