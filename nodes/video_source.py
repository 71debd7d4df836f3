"""``video_source``: a test pattern with its frame index and media time burned in; or a stand-in avatar.

:mod:`._pattern` draws the pictures and reads their code back (``read_code``); :mod:`._avatar` is the
stand-in avatar's core (which frames, when).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, final

import attrs
import trio

import mediagraph as mg

from ._avatar import TIME_BASE, Avatar, Shot, fps_fraction, frame_pts
from ._pattern import Pattern

_v = attrs.validators


def _even(_config: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value % 2:
        raise ValueError(f"{attribute.name} {value}: must be even (H.264 and yuv420p need even sizes)")


def _with_audio(default: object) -> Any:
    """A validator refusing a value other than ``default`` unless ``audio`` is true (it would do nothing)."""

    def check(config: VideoSourceConfig, attribute: attrs.Attribute[Any], value: object) -> None:
        if not config.audio and value != default:
            raise ValueError(f"{attribute.name} {value!r}: applies only with audio: true")

    return check


def _without_audio(default: object) -> Any:
    """A validator refusing a value other than ``default`` when ``audio`` is true (the audio sets the pace)."""

    def check(config: VideoSourceConfig, attribute: attrs.Attribute[Any], value: object) -> None:
        if config.audio and value != default:
            raise ValueError(f"{attribute.name} {value!r}: does not apply with audio: true (the audio drives it)")

    return check


@final
@attrs.frozen(kw_only=True)
class VideoSourceConfig:
    """Args:
    fps: frames per second (29.97 and 30000/1001 are taken exactly, as 2997/100 and 30000/1001).
    width: pixels, even, 64 to 3840.
    height: pixels, even, 48 to 2160.
    audio: declare an ``audio`` inlet and act as a stand-in avatar driven by it (``duration`` and ``paced``
        then do not apply).
    duration: seconds of video (the frames whose media time is before it); ``None``: endless.
    paced: send each frame at its media time on the graph clock; ``False``: as fast as the graph takes.
    latency: (audio) seconds from an audio frame's arrival to its video frames' departure.
    jitter: (audio) up to this many more seconds per frame, drawn from ``seed``.
    burst: (audio) hold frames and send them together every ``burst`` seconds; 0: as they are due.
    seed: (audio) of the jitter: the same audio at the same times gives the same frame times.
    flash_on_beep: (audio) a frame made from an audio frame peaking above ``flash_level`` is white above the
        code.
    flash_level: (audio) peak level, above 0 and up to 1 of full scale.
    audio_back: (audio) send the audio back too, on an ``audio`` outlet, each frame with its video (same latency,
        jitter and bursts), as an avatar service returns the voice with the face; flushes and interrupts too.
    """

    fps: float = attrs.field(default=25.0, validator=[_v.gt(0), _v.le(240)])
    width: int = attrs.field(default=320, validator=[_v.ge(64), _v.le(3840), _even])
    height: int = attrs.field(default=240, validator=[_v.ge(48), _v.le(2160), _even])
    audio: bool = False
    duration: float | None = attrs.field(
        default=None, validator=[_v.optional(_v.and_(_v.ge(0), _v.le(1e7))), _without_audio(None)]
    )
    paced: bool = attrs.field(default=True, validator=_without_audio(True))
    latency: float = attrs.field(default=0.0, validator=[_v.ge(0), _v.le(60), _with_audio(0.0)])
    jitter: float = attrs.field(default=0.0, validator=[_v.ge(0), _v.le(10), _with_audio(0.0)])
    burst: float = attrs.field(default=0.0, validator=[_v.ge(0), _v.le(60), _with_audio(0.0)])
    seed: int = attrs.field(default=0, validator=_with_audio(0))
    flash_on_beep: bool = attrs.field(default=False, validator=_with_audio(False))
    flash_level: float = attrs.field(default=0.1, validator=[_v.gt(0), _v.le(1)])
    audio_back: bool = attrs.field(default=False, validator=_with_audio(False))

    @property
    def media_seconds(self) -> float | None:
        """How long the pattern plays (``None``: endless), for the command line's progress and ``check``; a
        stand-in avatar has an inlet: it ends with its audio."""
        return self.duration


@final
@mg.node_type(
    "video_source",
    config=VideoSourceConfig,
    examples={"audio: true, audio_back: true (a stand-in avatar)": {"audio": True, "audio_back": True}},
)
class VideoSource(mg.Actor):
    """A test pattern with each frame's index and media time burned in, or a stand-in avatar driven by audio.

    Outlets: ``video`` (``VideoFrame``: read-only numpy rgb24 ``(height, width, 3)``, ``pts`` in the time base
    1/90000 — frame ``i`` of the pattern shows media time ``i / fps``). Each picture carries
    ``(index, ms)`` (``_pattern.read_code`` reads it back): the frame's index on the frame grid and its media
    time in milliseconds.

    Inlets (``audio: true``): ``audio`` (``AudioFrame``): each frame becomes the video frames covering its media
    time (pts on the audio's timeline), sent after ``latency`` (+ ``jitter``), in bursts of ``burst`` seconds.
    A ``Flush`` goes on after the frames before it. An ``Interrupt`` drops the frames held and is sent down the
    ``video`` outlet at once, so a node below sees where the old turn's video ends (one that acts on the
    Interrupt of its audio can ignore it). When the audio ends, what is held goes out at its time, then the
    video ends.

    Events: ``video_source_total`` (``frames`` sent, and with audio ``made``, ``dropped``, ``flashes``) at the
    end of the stream.

    Cancellation: the node sleeps on the graph clock between frames; cancelled, it sends nothing more.
    """

    @staticmethod
    def ports(config: VideoSourceConfig) -> mg.Ports:
        inlets = [mg.InletSpec(name="audio", types=mg.AudioFrame)] if config.audio else []
        outlets = [mg.OutletSpec(name="video", types=mg.VideoFrame)]
        if config.audio_back:
            outlets.append(mg.OutletSpec(name="audio", format=mg.SameAs("audio")))
        return mg.Ports(inlets=inlets, outlets=outlets)

    def __init__(self, config: VideoSourceConfig) -> None:
        self.config = config
        self.fps = fps_fraction(config.fps)
        self.pattern = Pattern(config.width, config.height)
        self.sent = 0
        self.avatar: Avatar | None = None
        if config.audio:
            level = config.flash_level if config.flash_on_beep else None
            self.avatar = Avatar(
                fps=self.fps,
                latency=config.latency,
                jitter=config.jitter,
                burst=config.burst,
                seed=config.seed,
                flash_level=level,
            )

    def __repr__(self) -> str:
        mode = repr(self.avatar) if self.avatar is not None else "pattern"
        cfg = self.config
        return f"<VideoSource {cfg.width}x{cfg.height} at {cfg.fps} fps, {mode}, sent={self.sent}>"

    @property
    def count(self) -> int | None:
        """How many frames the pattern sends (``None``: endless): those with media time before ``duration``."""
        if self.config.duration is None:
            return None
        return math.ceil(Fraction(repr(self.config.duration)) * self.fps)

    def frame(self, shot: Shot) -> mg.VideoFrame:
        pixels = self.pattern.draw(shot.index, shot.ms, flash=shot.flash)
        return mg.VideoFrame(pixels=pixels, pts=shot.pts, time_base=TIME_BASE)

    async def run(self, io: mg.NodeIO) -> None:
        outlet = io.outlets["video"]
        if self.avatar is None:
            await self._pattern(io, outlet)
            io.log("video_source_total", frames=self.sent)
        else:
            await self._avatar(io, outlet, self.avatar)
            io.log("video_source_total", frames=self.sent, **self.avatar.statistics())

    async def _pattern(self, io: mg.NodeIO, outlet: mg.Outlet) -> None:
        count, index = self.count, 0
        while count is None or index < count:
            pts = frame_pts(index, self.fps)
            if self.config.paced:
                await io.sleep_until(float(pts * TIME_BASE))
            await outlet.send(self.frame(Shot(index=index, pts=pts)))
            self.sent += 1
            index += 1

    async def _avatar(self, io: mg.NodeIO, outlet: mg.Outlet, avatar: Avatar) -> None:
        inlet = io.inlets["audio"]
        back = io.outlets["audio"] if self.config.audio_back else None
        ended = False
        while not ended or avatar.next_due() is not None:
            due = avatar.next_due()
            if ended:
                assert due is not None
                await io.sleep_until(due)
            else:
                batch: Any = ()
                deadline = math.inf if due is None else trio.current_time() + due - io.time()
                with trio.move_on_at(deadline):
                    try:
                        batch = await inlet.receive_batch()
                    except trio.EndOfChannel:
                        ended = True
                for msg in batch:
                    if isinstance(msg, mg.AudioFrame):
                        avatar.audio(msg, io.time(), back=back is not None)
                    elif isinstance(msg, mg.Flush):
                        avatar.flush(msg, io.time())
                    elif isinstance(msg, mg.Interrupt):
                        avatar.interrupt()
                        if back is not None:
                            await back.send(msg)
                        await outlet.send(msg)
            # Woken for ``due``, the clock may read a hair before it (float rounding): take what was due then.
            now = io.time()
            if due is not None and now < due < now + 1e-6:
                now = due
            for item in avatar.take(now):
                if back is not None and not isinstance(item, Shot):
                    await back.send(item)  # the voice, and its flushes
                if not isinstance(item, mg.AudioFrame):
                    await outlet.send(self.frame(item) if isinstance(item, Shot) else item)
                self.sent += isinstance(item, Shot)
