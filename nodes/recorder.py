"""``recorder``: what was heard and what was played, as one stereo file (left: user, right: agent), with PyAV.

Theory of operation. The pure core, :class:`Conversation`, places audio on a 48 kHz stereo timeline and says
how much of it is final; the actor around it only drains its inlets in batches into the core and writes what
the core releases. The rules, which the property tests check:

- **Timeline.** A frame's timestamp (in samples at its own rate, counted from media time 0, the same origin
  for both sides) is where it lands: ``timestamp * 48000 / sample_rate``. Other rates are resampled (soxr),
  several channels are averaged to one. Where a side sent nothing the file holds silence. A frame that starts
  before the end of the previous one on its side is placed right after it, never mixed over it
  (``overlaps`` counts them).
- **Trimming.** A :class:`~mediagraph.PlaybackFinished` on the ``playback`` inlet names the audio it is
  about by media time: ``start`` (seconds, where the segment's first sample is) and ``sent`` (seconds of audio
  the sink got for it). When ``interrupted``, the agent audio whose media time ``t`` lies in
  ``start + position <= t < start + sent`` was never played and is not written (silence in its place; the
  rest of a frame stays where its timestamp puts it). Nothing else is trimmed. Segment ids play no part, so
  this holds above a ``slot`` whose cut swaps open segments the agent stream never marked.
- **Fallback: counted segments.** Until an event carries a ``start``, an event without one (from a sink
  that does not stamp them) gets the ``start`` and ``sent`` of the segment with its id, the recorder
  numbering the agent's segments as :class:`mediagraph.PlaybackTracker` does: the first frame after a
  boundary opens the next segment; a :class:`~mediagraph.Flush` closes the open segment (or makes an empty
  one: every flush uses one number); an :class:`~mediagraph.Interrupt` or the end of the inlet closes the
  open one, if any. An event for a segment not complete yet waits for it. Once an event has carried a
  ``start``, events without one are an empty segment's and are ignored.
- **Holding back.** With ``playback`` linked, agent frames are held, in arrival order, until they are
  settled, and nothing after the first held sample is written meanwhile. The *settled time* is the largest
  ``start + sent`` of a ``PlaybackFinished`` and ``start`` of any playback event received so far; a frame is
  settled when it ends at or before it. A sink reports its segments in order, and media time increases along
  the agent stream, so by then every event that can trim the frame has come (whichever came first, the
  event or the audio, is fine). A frame is written trimmed by every range received. When more than
  ``max_hold`` seconds of audio are held, or when the ``playback`` inlet ends or the recorder finalizes,
  held frames are written anyway (``unconfirmed_samples`` counts the unsettled ones).
- **Finality.** The timeline is written up to the point both sides have passed; a side that is quiet is
  waited for at most ``max_lag`` seconds of media behind the other, then its silence is written. Audio that
  arrives for a part already written is dropped and counted (``late_samples``).
"""

from __future__ import annotations

import typing
from collections import deque
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import attrs
import av
import numpy as np
import numpy.typing as npt
import soxr
import trio

import mediagraph as mg

from ._audio import Samples, map_channels

_v = attrs.validators

#: The file's sample rate.
RATE: Final = 48000
#: Audio is written in pieces of at least this many samples (100 ms), or at the end.
COMMIT_SAMPLES: Final = RATE // 10


@attrs.frozen(kw_only=True)
class _Format:
    container: str
    codec: str
    options: dict[str, str] = attrs.field(factory=dict)
    video: bool = False


_FORMATS: Final = {
    # A page at least every 250 ms, and pages reach the file as soon as they are written.
    ".ogg": _Format(container="ogg", codec="libopus", options={"page_duration": "250000", "flush_packets": "1"}),
    ".opus": _Format(container="ogg", codec="libopus", options={"page_duration": "250000", "flush_packets": "1"}),
    ".wav": _Format(container="wav", codec="pcm_s16le"),
    ".mp4": _Format(container="mp4", codec="aac", video=True),
}


def _check_path(_: object, attribute: attrs.Attribute[Any], path: Path) -> None:
    if path.suffix.lower() not in _FORMATS:
        known = ", ".join(_FORMATS)
        raise ValueError(f"recorder path {str(path)!r}: unsupported extension {path.suffix!r} (known: {known})")


@attrs.frozen(kw_only=True)
class RecorderConfig:
    """Args:
    path: the file to write; its extension picks the format: ``.ogg``/``.opus`` (Opus in Ogg, the default
        format), ``.wav`` (16-bit PCM), ``.mp4`` (AAC, plus H.264 when ``video`` is linked). Missing parent
        folders are created. An existing file is replaced.
    max_lag: seconds of media a quiet side is waited for behind the other before its silence is written.
    max_hold: seconds of agent audio held for a ``PlaybackFinished`` before it is written untrimmed.
    """

    path: Path = attrs.field(
        default=Path("recording.ogg"), converter=Path, validator=_check_path, metadata={"path": "output"}
    )
    max_lag: float = attrs.field(default=1.0, validator=[_v.ge(0), _v.le(3600)])
    max_hold: float = attrs.field(default=30.0, validator=[_v.gt(0), _v.le(3600)])

    @property
    def format(self) -> _Format:
        return _FORMATS[self.path.suffix.lower()]


# --- the pure core ---------------------------------------------------------------------------------------


class _Track:
    """One side: frames turned into mono 48 kHz runs placed by timestamp."""

    def __init__(self) -> None:
        self.end = 0  # first position on the timeline after this side's audio
        self.overlaps = 0
        self._rate = 0
        self._next: int | None = None  # the timestamp that would continue the current run
        self._resampler: soxr.ResampleStream | None = None

    def __repr__(self) -> str:
        return f"<_Track end={self.end} rate={self._rate}>"

    def add(self, frame: mg.AudioFrame) -> list[tuple[int, Samples]]:
        """The pieces ``(position, mono samples)`` this frame puts on the timeline (the tail of a previous
        resampled run included when this frame does not continue it)."""
        out: list[tuple[int, Samples]] = []
        if frame.sample_rate != self._rate or frame.timestamp != self._next:
            out = self.flush()
            position = max(0, round(frame.timestamp * RATE / frame.sample_rate))
            if position < self.end:
                self.overlaps += 1
                position = self.end
            self.end = position
            self._rate = frame.sample_rate
            if frame.sample_rate != RATE:
                self._resampler = soxr.ResampleStream(frame.sample_rate, RATE, 1, dtype="int16", quality="HQ")
        self._next = frame.timestamp + frame.samples_per_channel
        mono = map_channels(frame.samples, 1)[:, 0]
        if self._resampler is not None:
            mono = self._resampler.resample_chunk(mono)
        out.append((self.end, mono))
        self.end += len(mono)
        return out

    def flush(self) -> list[tuple[int, Samples]]:
        """End the current run: the resampler's last samples."""
        resampler, self._resampler, self._next = self._resampler, None, None
        if resampler is None:
            return []
        tail: Samples = resampler.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
        position = self.end
        self.end += len(tail)
        return [(position, tail)]


class _Timeline:
    """Stereo samples from ``written`` on; each side writes its own column; what nobody wrote is silence."""

    def __init__(self) -> None:
        self.written = 0
        self.high = 0  # first position after every sample placed so far
        self.late_samples = 0
        self._buf: npt.NDArray[np.int16] = np.zeros((0, 2), dtype=np.int16)

    def __repr__(self) -> str:
        return f"<_Timeline written={self.written} high={self.high}>"

    def place(self, column: int, position: int, samples: Samples) -> None:
        if position < self.written:
            cut = min(self.written - position, len(samples))
            self.late_samples += cut
            samples, position = samples[cut:], self.written
        if not len(samples):
            return
        start = position - self.written
        stop = start + len(samples)
        if stop > len(self._buf):
            grown = np.zeros((max(stop, 2 * len(self._buf)), 2), dtype=np.int16)
            grown[: len(self._buf)] = self._buf
            self._buf = grown
        self._buf[start:stop, column] = samples
        self.high = max(self.high, position + len(samples))

    def take(self, upto: int) -> npt.NDArray[np.int16]:
        """The samples from ``written`` to ``upto``, now written."""
        count = upto - self.written
        out = np.zeros((count, 2), dtype=np.int16)
        have = min(count, len(self._buf))
        out[:have] = self._buf[:have]
        rest = self._buf[have : max(have, self.high - self.written)]
        self._buf = np.zeros((max(len(rest), 1024), 2), dtype=np.int16)
        self._buf[: len(rest)] = rest
        self.written = upto
        return out


@attrs.define
class _Span:
    start: float  # media seconds of the segment's first sample
    sent: float = 0.0  # seconds of audio in it
    end: float = 0.0  # media seconds after its last frame


class _Numbering:
    """The fallback for playback events without ``start``: counts the agent's segments as
    :class:`mediagraph.PlaybackTracker` does and gives such an event its counted segment's media range."""

    def __init__(self) -> None:
        self.open: int | None = None
        self.next = 0
        self._spans: dict[int, _Span] = {}  # counted segments with frames whose range is still wanted
        self._waiting: dict[int, mg.PlaybackFinished] = {}  # events whose segment is not complete yet

    def __repr__(self) -> str:
        return f"<_Numbering open={self.open} next={self.next}>"

    def frame(self, frame: mg.AudioFrame) -> None:
        if self.open is None:
            self.open, self.next = self.next, self.next + 1
        span = self._spans.setdefault(self.open, _Span(start=frame.timestamp / frame.sample_rate))
        span.sent += frame.duration
        span.end = (frame.timestamp + frame.samples_per_channel) / frame.sample_rate

    def boundary(self, *, interrupt: bool) -> mg.PlaybackFinished | None:
        """A Flush, an Interrupt or the end of the input; returns the event of the closed segment, if it came."""
        if self.open is None:
            if interrupt:
                return None
            self.open, self.next = self.next, self.next + 1  # every flush uses one number
        closed, self.open = self.open, None
        event = self._waiting.pop(closed, None)
        return None if event is None else self._stamp(closed, event)

    def stamp(self, event: mg.PlaybackFinished) -> mg.PlaybackFinished | None:
        """The event with its counted segment's range; None if it has none (yet: it is kept until complete)."""
        if event.segment == self.open or event.segment >= self.next:
            self._waiting[event.segment] = event
            return None
        return self._stamp(event.segment, event)

    def _stamp(self, segment: int, event: mg.PlaybackFinished) -> mg.PlaybackFinished | None:
        span = self._spans.pop(segment, None)
        return None if span is None else attrs.evolve(event, start=span.start, sent=span.sent)

    def forget(self, before: float) -> None:
        """Audio before media time ``before`` is written: the ranges of closed segments there are not wanted."""
        for segment in [s for s, span in self._spans.items() if s != self.open and span.end <= before]:
            del self._spans[segment]


class _AgentGate:
    """Holds the agent's frames until the playback events say what of them was played; trims what was not."""

    def __init__(self, *, hold: bool, max_hold: float) -> None:
        self.hold = hold
        self.max_hold = max_hold
        self.trimmed_samples = 0
        self.unconfirmed_samples = 0  # released before they were settled (max_hold, end of playback)
        self.numbering: _Numbering | None = _Numbering()  # None once the sink stamps its events
        self._held: deque[mg.AudioFrame] = deque()
        self._held_seconds = 0.0
        self._settled: float | None = None  # media seconds: every verdict on audio before it has come
        self._cuts: list[tuple[float, float]] = []  # media ranges never played, [from, to) in seconds
        self._released = 0.0  # media seconds after the last frame released

    def __repr__(self) -> str:
        return f"<_AgentGate held={len(self._held)} settled={self._settled} cuts={len(self._cuts)}>"

    def first_held(self) -> mg.AudioFrame | None:
        return self._held[0] if self._held else None

    def frame(self, frame: mg.AudioFrame) -> list[mg.AudioFrame]:
        if self.numbering is not None:
            self.numbering.frame(frame)
        self._held.append(frame)
        self._held_seconds += frame.duration
        return self._release()

    def boundary(self, *, interrupt: bool) -> list[mg.AudioFrame]:
        """A Flush (``interrupt=False``), an Interrupt or the end of the agent input."""
        if self.numbering is None:
            return []
        event = self.numbering.boundary(interrupt=interrupt)
        return [] if event is None else self._verdict(event)

    def playback(self, event: mg.PlaybackStarted | mg.PlaybackFinished) -> list[mg.AudioFrame]:
        if event.start is not None:
            self.numbering = None  # the sink says which audio it means: counting is not needed, nor right
            return self._verdict(event)
        if isinstance(event, mg.PlaybackFinished) and self.numbering is not None:
            stamped = self.numbering.stamp(event)
            if stamped is not None:
                return self._verdict(stamped)
        return []  # from a stamping sink, an event without start is an empty segment's

    def release_all(self) -> list[mg.AudioFrame]:
        """No verdict can come any more (the playback inlet ended, or the recorder is finalizing)."""
        out = self._release(force=True)
        self.hold = False
        return out

    def _verdict(self, event: mg.PlaybackStarted | mg.PlaybackFinished) -> list[mg.AudioFrame]:
        assert event.start is not None
        settled = event.start
        if isinstance(event, mg.PlaybackFinished):
            settled += event.sent
            if event.interrupted and event.position < event.sent:
                self._cuts.append((event.start + event.position, settled))
        self._settled = settled if self._settled is None else max(self._settled, settled)
        return self._release()

    def _release(self, *, force: bool = False) -> list[mg.AudioFrame]:
        out: list[mg.AudioFrame] = []
        while self._held:
            frame = self._held[0]
            end = frame.timestamp + frame.samples_per_channel
            settled = self._settled is not None and end <= round(self._settled * frame.sample_rate)
            if self.hold and not settled:
                if not force and self._held_seconds <= self.max_hold:
                    break
                self.unconfirmed_samples += frame.samples_per_channel
            self._held.popleft()
            self._held_seconds -= frame.duration
            self._released = max(self._released, end / frame.sample_rate)
            out.extend(self._trim(frame))
        if out:
            self._cuts = [cut for cut in self._cuts if cut[1] > self._released]
            if self.numbering is not None:
                self.numbering.forget(self._released)
        return out

    def _trim(self, frame: mg.AudioFrame) -> list[mg.AudioFrame]:
        """The parts of ``frame`` outside every cut, each at its own timestamp."""
        n, ts, rate = frame.samples_per_channel, frame.timestamp, frame.sample_rate
        keep = np.ones(n, dtype=bool)
        for lo, hi in self._cuts:
            keep[max(0, round(lo * rate) - ts) : max(0, round(hi * rate) - ts)] = False
        if keep.all():
            return [frame]
        self.trimmed_samples += n - int(keep.sum())
        edges = np.flatnonzero(np.diff(keep, prepend=False, append=False)).tolist()  # run starts and stops
        runs = zip(edges[::2], edges[1::2], strict=True)
        return [attrs.evolve(frame, samples=frame.samples[a:b], timestamp=ts + a) for a, b in runs]


class Conversation:
    """The recorder's pure core: feed it what arrives on each inlet, take the stereo samples that are final.

    Args:
        sides: the linked audio inlets, a subset of ``{"user", "agent"}``.
        playback: whether the ``playback`` inlet is linked (then agent audio waits for playback events).
        max_lag: seconds a quiet side is waited for, behind the other.
        max_hold: seconds of agent audio held at most for a ``PlaybackFinished``.
    """

    def __init__(self, *, sides: set[str], playback: bool, max_lag: float = 1.0, max_hold: float = 30.0) -> None:
        self.tracks = {side: _Track() for side in sorted(sides)}
        self.open = set(self.tracks)
        self.gate = _AgentGate(hold=playback and "agent" in sides, max_hold=max_hold)
        self.timeline = _Timeline()
        self.max_lag = round(max_lag * RATE)

    def __repr__(self) -> str:
        return f"<Conversation open={sorted(self.open)} {self.timeline!r} {self.gate!r}>"

    def user(self, msg: object) -> None:
        if isinstance(msg, mg.AudioFrame):
            self._place("user", self.tracks["user"].add(msg))

    def agent(self, msg: object) -> None:
        if isinstance(msg, mg.AudioFrame):
            released = self.gate.frame(msg)
        elif isinstance(msg, mg.Flush | mg.Interrupt):
            released = self.gate.boundary(interrupt=isinstance(msg, mg.Interrupt))
        else:
            return
        self._agent(released)

    def playback(self, msg: object) -> None:
        if isinstance(msg, mg.PlaybackStarted | mg.PlaybackFinished):
            self._agent(self.gate.playback(msg))

    def end(self, inlet: str) -> None:
        """``inlet`` (user, agent or playback) has ended."""
        if inlet == "playback":
            self._agent(self.gate.release_all())
        elif inlet in self.open:
            self.open.discard(inlet)
            if inlet == "agent":  # its open segment is complete
                self._agent(self.gate.boundary(interrupt=True))
            self._place(inlet, self.tracks[inlet].flush())

    def take(self, minimum: int = 0) -> npt.NDArray[np.int16] | None:
        """The stereo samples that became final, if there are at least ``minimum`` of them."""
        upto = self._frontier()
        if upto - self.timeline.written < max(minimum, 1):
            return None
        return self.timeline.take(upto)

    def finish(self) -> npt.NDArray[np.int16]:
        """Everything not written yet: ends every inlet, releases held agent audio whole."""
        for inlet in ("playback", *sorted(self.open)):
            self.end(inlet)
        return self.timeline.take(max(self.timeline.high, self.timeline.written))

    def statistics(self) -> dict[str, int]:
        return {
            "written": self.timeline.written,
            "late_samples": self.timeline.late_samples,
            "trimmed_samples": self.gate.trimmed_samples,
            "unconfirmed_samples": self.gate.unconfirmed_samples,
            "overlaps": sum(t.overlaps for t in self.tracks.values()),
        }

    def _agent(self, frames: list[mg.AudioFrame]) -> None:
        if not frames:
            return
        track = self.tracks["agent"]
        for frame in frames:
            self._place("agent", track.add(frame))
        if "agent" not in self.open:  # released after the inlet ended: nothing will continue it
            self._place("agent", track.flush())

    def _place(self, side: str, pieces: list[tuple[int, Samples]]) -> None:
        column = 0 if side == "user" else 1
        for position, samples in pieces:
            self.timeline.place(column, position, samples)

    def _frontier(self) -> int:
        """Where the final part of the timeline ends: no open side may still place audio before it."""
        leader = max((t.end for t in self.tracks.values()), default=0)
        bounds = [max(self.tracks[side].end, leader - self.max_lag) for side in self.open]
        limit = min(bounds, default=self.timeline.high)
        held = self.gate.first_held()
        if held is not None:
            limit = min(limit, round(held.timestamp * RATE / held.sample_rate))
        return max(self.timeline.written, limit)


# --- the file ---------------------------------------------------------------------------------------------


class _Writer:
    """One output file at 48 kHz stereo, with an H.264 video stream added at the first picture if wanted.

    Resource handling: the constructor opens the file (creating missing parent folders); :meth:`close`
    finalizes it and must be called exactly once by whoever constructed it.

    Raises:
        mg.ProviderError: the file cannot be created or written; the message names it.
    """

    def __init__(self, path: Path, fmt: _Format, *, video: bool) -> None:
        self.path = path
        self.samples = 0
        self.pictures = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._container = av.open(str(path), "w", format=fmt.container, options=fmt.options)
        except (OSError, av.FFmpegError) as exc:
            raise mg.ProviderError(f"cannot create recording {str(path)!r}: {exc}") from exc
        self._audio = typing.cast(av.AudioStream, self._container.add_stream(fmt.codec, rate=RATE, layout="stereo"))
        self._video: av.VideoStream | None = None
        self.waiting_for_video = video  # the muxer needs every stream before the first packet
        self._last_pts = -1

    def __repr__(self) -> str:
        return f"<_Writer {str(self.path)!r} {self.samples} samples {self.pictures} pictures>"

    def _fail(self, exc: Exception) -> mg.ProviderError:
        return mg.ProviderError(f"writing recording {str(self.path)!r}: {exc}")

    def write_audio(self, samples: npt.NDArray[np.int16]) -> None:
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples).reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate = RATE
        frame.pts = self.samples
        frame.time_base = Fraction(1, RATE)
        self.samples += len(samples)
        try:
            for packet in self._audio.encode(frame):
                self._container.mux(packet)
        except (OSError, av.FFmpegError) as exc:
            raise self._fail(exc) from exc

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
        try:
            for packet in self._video.encode(out):
                self._container.mux(packet)
        except (OSError, av.FFmpegError) as exc:
            raise self._fail(exc) from exc

    def close(self) -> None:
        """Flush the encoders and finalize the file (header sizes, index); an empty recording is still a file."""
        try:
            if not self.samples and not self.pictures:
                self._container.start_encoding()  # PyAV writes the header only with the first packet
            for stream in (self._audio, self._video):
                if stream is not None:
                    for packet in stream.encode(None):
                        self._container.mux(packet)
        finally:
            self._container.close()


# --- the node ---------------------------------------------------------------------------------------------


@mg.node_type("recorder", config=RecorderConfig)
class ConversationRecorder(mg.Actor):
    """Records what was heard (``user``) and played (``agent``) as one stereo 48 kHz file, optional video.

    Inlets (each optional, at least one of ``user`` and ``agent`` linked): ``user`` and ``agent``
    (``AudioFrame``, any rate and channels), ``playback`` (feedback: the sink's ``PlaybackStarted`` and
    ``PlaybackFinished``, used to trim interrupted agent audio to what was played), and, for ``.mp4`` paths
    only, ``video`` (``VideoFrame``, numpy ``rgb24`` or ``av.VideoFrame`` pictures). The module docstring
    defines placement, segments and trimming exactly.

    Raises:
        mg.GraphDefinitionError: (when the node starts) neither ``user`` nor ``agent`` is linked.
        mg.ProviderError: the file cannot be created or written.

    Resource handling: the file is opened when the node starts and finalized in :meth:`cleanup`, which the
    runtime runs shielded however the graph ends (stopped, cancelled, another node failed), so the file is
    always valid. Ogg pages reach the disk at least every 250 ms; audio is written as soon as both sides have
    passed it, so a killed process loses about the last second (plus ``max_lag`` while a side is quiet, and
    held agent audio waiting for its playback event).

    Cancellation: reading the inlets is cancelled with the node; what was received is still written by
    :meth:`cleanup`.
    """

    @staticmethod
    def ports(config: RecorderConfig) -> mg.Ports:
        inlets = [
            mg.InletSpec(name="user", required=False),
            mg.InletSpec(name="agent", required=False),
            mg.InletSpec(
                name="playback", types=(mg.PlaybackStarted, mg.PlaybackFinished), feedback=True, required=False
            ),
        ]
        if config.format.video:
            inlets.append(mg.InletSpec(name="video", types=mg.VideoFrame, required=False))
        return mg.Ports(inlets=inlets)

    def __init__(self, config: RecorderConfig) -> None:
        self.config = config
        self._core: Conversation | None = None
        self._writer: _Writer | None = None
        self._io: mg.NodeIO | None = None

    def __repr__(self) -> str:
        return f"<ConversationRecorder {str(self.config.path)!r} {self._core!r}>"

    async def run(self, io: mg.NodeIO) -> None:
        self._io = io
        linked = {name for name, inlet in io.inlets.items() if inlet.mailbox is not None}
        sides = linked & {"user", "agent"}
        if not sides:
            raise mg.GraphDefinitionError(
                f"recorder {io.name!r}: link at least one of its inlets 'user' and 'agent' (none is linked)",
                node=io.name,
            )
        cfg = self.config
        self._core = Conversation(
            sides=sides, playback="playback" in linked, max_lag=cfg.max_lag, max_hold=cfg.max_hold
        )
        self._writer = _Writer(cfg.path, cfg.format, video="video" in linked)
        io.log("recording_started", path=str(cfg.path))
        async with trio.open_nursery() as nursery:
            for name in sorted(linked):
                nursery.start_soon(self._drain, io.inlets[name])

    async def _drain(self, inlet: mg.Inlet) -> None:
        core, writer = self._core, self._writer
        assert core is not None and writer is not None
        handle = {"user": core.user, "agent": core.agent, "playback": core.playback, "video": self._video}
        receive = handle[inlet.name]
        while True:
            try:
                batch = await inlet.receive_batch()
            except trio.EndOfChannel:
                break
            for msg in batch:
                receive(msg)
            self._commit(COMMIT_SAMPLES)
        if inlet.name == "video":
            writer.waiting_for_video = False
        else:
            core.end(inlet.name)
        self._commit(1)

    def _video(self, msg: object) -> None:
        if isinstance(msg, mg.VideoFrame):
            assert self._writer is not None
            self._writer.write_video(msg)

    def _commit(self, minimum: int) -> None:
        assert self._core is not None and self._writer is not None
        if self._writer.waiting_for_video:
            return
        samples = self._core.take(minimum)
        if samples is not None:
            self._writer.write_audio(samples)

    async def cleanup(self) -> None:
        """Write what is left and finalize the file (shielded and time-bounded by the runtime)."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            if self._core is not None:
                rest = self._core.finish()
                if len(rest):
                    writer.write_audio(rest)
        finally:
            writer.close()
        if self._io is not None:
            stats = self._core.statistics() if self._core is not None else {}
            self._io.log("recording_finished", path=str(self.config.path), pictures=writer.pictures, **stats)
