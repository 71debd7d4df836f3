"""``file_sink``: one audio stream into one file, at its own rate and channel count, in any format of
:data:`~._writers.SINK_FORMATS`.

Theory of operation. The pure core, :class:`~._file_sink_core.Placement`, places each frame by its timestamp
in the file's timeline (converting rate and channels, filling gaps with silence, dropping overlaps; its
module states the rules); :class:`~._writers.Recording`, the recorder's writer, writes it under an
in-progress name, readable at any moment, and gives it its name once finalized. The actor drains its inlet
in batches into the core and writes what it releases, at least every ``COMMIT_SECONDS`` of the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final, final

import attrs
import numpy as np
import trio

import mediagraph as mg

from ._audio import Samples, passes_own_check
from ._file_sink_core import ChannelMismatch, GapTooLong, Placement
from ._writers import SINK_FORMATS, Format, Recording

__all__ = ["COMMIT_SECONDS", "FileSink", "FileSinkConfig"]

_v = attrs.validators

#: Audio is written in pieces of at least this many seconds of the file (or at the end).
COMMIT_SECONDS: Final = 0.1
#: A file's rate when neither ``sample_rate`` nor a frame gives one (the input ended before any frame).
DEFAULT_RATE: Final = 48000
_NAMES: Final = {"ogg": "Ogg/Opus", "wav": "WAV", "mp4": "MP4/AAC", "flac": "FLAC"}


def _format(path: Path) -> Format:
    return SINK_FORMATS[path.suffix.lower()]


def _check_path(_: object, attribute: attrs.Attribute[Any], path: Path) -> None:
    if path.suffix.lower() not in SINK_FORMATS:
        known = ", ".join(SINK_FORMATS)
        raise ValueError(f"file_sink path {str(path)!r}: unsupported extension {path.suffix!r} (known: {known})")


def _check_rate(config: FileSinkConfig, _: attrs.Attribute[Any], rate: int | None) -> None:
    if rate is None or not passes_own_check(config, "path"):
        return
    fmt = _format(config.path)
    if fmt.rates is not None and rate not in fmt.rates:
        takes = ", ".join(map(str, fmt.rates))
        raise ValueError(f"sample_rate {rate}: {_NAMES[fmt.container]} takes {takes} Hz ({str(config.path)!r})")


def _check_channels(config: FileSinkConfig, _: attrs.Attribute[Any], channels: int | None) -> None:
    if channels is None or not passes_own_check(config, "path"):
        return
    fmt = _format(config.path)
    if channels not in fmt.channel_counts:
        takes = ", ".join(map(str, fmt.channel_counts))
        raise ValueError(f"channels {channels}: {_NAMES[fmt.container]} takes {takes} channels ({str(config.path)!r})")


@final
@attrs.frozen(kw_only=True)
class FileSinkConfig:
    """Args:
    path: the file to write; its extension picks the format: ``.wav`` (16-bit PCM), ``.ogg``/``.opus`` (Opus
        in Ogg), ``.flac``, ``.mp4`` (fragmented MP4, AAC). Missing parent folders are created. It is written
        as ``PATH.part`` and renamed to ``PATH`` once finalized: an existing file there is replaced then (a
        symbolic link there is refused at start). A ``PATH.part`` left by a killed run is replaced when the
        next run starts: move it away to keep it.
    sample_rate: the file's rate, Hz; ``None``: the first frame's (for Opus, which takes 8, 12, 16, 24 or
        48 kHz only, 48 kHz when the first frame's is another). Frames of another rate are resampled.
    max_gap: the longest jump of timestamps, seconds, filled with silence; a longer one fails the node
        (what was written is kept, finalized): a source whose clock leaps would otherwise write hours of
        silence at once.
    channels: the file's channel count; ``None``: the first frame's. Frames of another count are mapped:
        down to mono by averaging, up from mono by copying; any other mapping fails the node.
    """

    path: Path = attrs.field(converter=Path, validator=_check_path, metadata={"path": "output"})
    sample_rate: int | None = attrs.field(
        default=None, validator=[_v.optional([_v.ge(8000), _v.le(384000)]), _check_rate]
    )
    channels: int | None = attrs.field(default=None, validator=[_v.optional([_v.ge(1), _v.le(8)]), _check_channels])
    max_gap: float = attrs.field(default=60.0, validator=[_v.gt(0), _v.le(3600)])

    @property
    def format(self) -> Format:
        return _format(self.path)


@final
@mg.node_type(
    "file_sink",
    config=FileSinkConfig,
    examples={"path: out.wav": {"path": "out.wav"}},
)
class FileSink(mg.Actor):
    """Writes one audio stream to a file (WAV, Ogg/Opus, FLAC or MP4), at its own rate and channel count.

    Inlets: ``audio`` (``AudioFrame``, any rate and channels; converted to the file's, see
    :class:`FileSinkConfig`). Frames are placed by timestamp from the first one on: a gap is filled with
    silence, the part of a frame that overlaps audio already placed is dropped (:mod:`._file_sink_core` states
    the rules). ``Flush`` and ``Interrupt`` are ignored: a file has no segments to end or cut. Logs
    ``file_sink_started`` (the final path, the in-progress one, the file's rate and channels) when the file is
    created, then either ``file_sink_total`` (the file is complete under its name: ``path``, ``sample_rate``,
    ``channels``, ``samples`` written, ``seconds``, ``gaps`` and ``gap_samples`` of silence added,
    ``overlaps`` and ``overlap_samples`` dropped) or ``file_sink_failed`` (the reason, where what was written
    is, and the same counts).

    Raises:
        mg.ProviderError: the file cannot be created (the message says why: a folder on the way is a file,
            no permission, a symbolic link at the path) or written (a full disk); it names the file.
        ValueError: a frame's channels cannot be mapped to the file's (3 channels into a stereo file), or the
            file's channel count taken from the first frame is one the format does not take; it names the
            node, the inlet and the count.

    Resource handling: the file is created when the node starts if ``sample_rate`` and ``channels`` are both
    given, else with the first frame (a node stopped before its first frame leaves no file; one whose input
    ends before any frame leaves an empty one). It is finalized in :meth:`cleanup`, which the runtime runs
    shielded however the graph ends (end of input, stopped, cancelled, another node failed, or this one
    failed on a frame), so what was written is complete under its name; a failed write leaves it under its
    in-progress name. Until then it is readable at any moment: written every ``COMMIT_SECONDS`` and reaching
    the disk at once (WAV, FLAC) or within 250 ms (Ogg pages, MP4 fragments), so a killed process loses about
    the last half second.

    Cancellation: reading the inlet is cancelled with the node; what was received is still written by
    :meth:`cleanup`.
    """

    @staticmethod
    def ports(config: FileSinkConfig) -> mg.Ports:
        return mg.Ports(inlets=[mg.InletSpec(name="audio")])

    def __init__(self, config: FileSinkConfig) -> None:
        self.config = config
        self._placement: Placement | None = None
        self._writer: Recording | None = None
        self._pending: list[Samples] = []
        self._pending_len = 0
        self._io: mg.NodeIO | None = None

    def __repr__(self) -> str:
        return f"<FileSink {str(self.config.path)!r} {self._placement!r}>"

    async def run(self, io: mg.NodeIO) -> None:
        self._io = io
        cfg = self.config
        if cfg.sample_rate is not None and cfg.channels is not None:
            self._open(cfg.sample_rate, cfg.channels)
        inlet = io.inlets["audio"]
        while True:
            try:
                batch = await inlet.receive_batch()
            except trio.EndOfChannel:
                break
            for msg in batch:
                if isinstance(msg, mg.AudioFrame):
                    self._add(msg)
            self._commit(self._commit_samples)
        if self._placement is None:  # no frame at all: an empty file all the same
            self._open(cfg.sample_rate or DEFAULT_RATE, cfg.channels or 1)

    @property
    def _commit_samples(self) -> int:
        return round(COMMIT_SECONDS * self._placement.rate) if self._placement is not None else 0

    def _open(self, rate: int, channels: int) -> None:
        cfg, io = self.config, self._io
        assert io is not None
        self._writer = Recording(cfg.path, video=False, fmt=cfg.format, rate=rate, channels=channels)
        self._placement = Placement(rate, channels, max_gap=self.config.max_gap)
        io.log(
            "file_sink_started", path=str(cfg.path), part=str(self._writer.part), sample_rate=rate, channels=channels
        )

    def _add(self, frame: mg.AudioFrame) -> None:
        if self._placement is None:
            self._open(*self._first_format(frame))
        assert self._placement is not None
        try:
            pieces = self._placement.add(frame)
        except ChannelMismatch as exc:
            raise ChannelMismatch(f"{self._where()}: {exc} (set channels: {frame.channels} to keep them)") from None
        except GapTooLong as exc:
            raise GapTooLong(f"{self._where()}: {exc}") from None
        for piece in pieces:
            self._pending.append(piece)
            self._pending_len += len(piece)

    def _first_format(self, frame: mg.AudioFrame) -> tuple[int, int]:
        """The file's rate and channels, those the config leaves open taken from the first frame."""
        cfg, fmt = self.config, self.config.format
        rate = cfg.sample_rate or frame.sample_rate
        if fmt.rates is not None and rate not in fmt.rates:
            rate = max(fmt.rates)
        channels = cfg.channels or frame.channels
        if channels not in fmt.channel_counts:
            takes = ", ".join(map(str, fmt.channel_counts))
            raise ValueError(
                f"{self._where()}: the first frame has {channels} channels and {_NAMES[fmt.container]} takes "
                f"{takes} (set channels to one of them)"
            )
        return rate, channels

    def _where(self) -> str:
        name = self._io.name if self._io is not None else "?"
        return f"file_sink {name!r} inlet 'audio' (file {str(self.config.path)!r})"

    def _commit(self, minimum: int) -> None:
        """Write what is pending, if at least ``minimum`` samples, at most a second at a time (a long gap's
        silence is never built whole)."""
        writer, placement = self._writer, self._placement
        if writer is None or placement is None or self._pending_len < max(minimum, 1):
            return
        pending, self._pending, self._pending_len = self._pending, [], 0
        chunk: list[Samples] = []
        size = 0
        for piece in pending:
            while len(piece):
                part, piece = piece[: placement.rate - size], piece[placement.rate - size :]
                chunk.append(part)
                size += len(part)
                if size >= placement.rate:
                    writer.write_audio(np.concatenate(chunk))
                    chunk, size = [], 0
        if chunk:
            writer.write_audio(np.concatenate(chunk))

    async def cleanup(self) -> None:
        """Write what is left and finalize the file (shielded and time-bounded by the runtime).

        Raises:
            mg.ProviderError: finishing the file failed (a write failure was raised by ``run`` already).
        """
        writer, placement = self._writer, self._placement
        if writer is None or placement is None:
            return  # never created: nothing to finish, nothing to report
        try:
            if writer.failed is None:
                for piece in placement.flush():
                    self._pending.append(piece)
                    self._pending_len += len(piece)
                self._commit(1)
                writer.finalize()
        except mg.ProviderError:
            writer.abandon()
            self._log("file_sink_failed", writer, placement)
            raise
        finally:
            self._writer = None
        if writer.failed is not None:  # raised by ``run`` already
            writer.abandon()
            self._log("file_sink_failed", writer, placement)
        else:
            self._log("file_sink_total", writer, placement)

    def _log(self, event: str, writer: Recording, placement: Placement) -> None:
        if self._io is None:
            return
        failed = {"part": str(writer.part), "reason": writer.failed} if writer.failed is not None else {}
        self._io.log(
            event,
            path=str(writer.path),
            **failed,
            sample_rate=placement.rate,
            channels=placement.channels,
            samples=writer.samples,
            seconds=writer.samples / placement.rate,
            **placement.statistics(),
        )
