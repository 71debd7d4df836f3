"""The ``av_sync`` node: avatar video released by the audio the listener actually heard.

Theory of operation. The node sits above an audio sink (or a slot holding one) and a video sink: its ``audio``
goes down, the sink's playback events come back on the feedback inlet ``playback``, and the video frames that
arrive on ``video`` (pts on the audio's media timeline) go out on ``video`` when their audio plays. All the
deciding is done by the trio-free :class:`AvCore` (``_av_core``; its docstring states the rules). One reader
task per inlet feeds it each message as it arrives, stamped with the core's epoch when taken from its inlet,
and queues what it decides in one outbox in the same step; a ticker task calls the core back at
:meth:`AvCore.next_wake`; one sender task sends the outbox in order, so the outlets and the log see exactly
the core's order whatever the outlets' backpressure.

An ``Interrupt`` on ``audio`` (from upstream, the schedule's ``interrupt`` action or ``RunningGraph.interrupt``)
starts a new epoch in the core and goes down ``audio`` first, so the sink below flushes; a ``Flush`` passes
through. The output video frames are new :class:`mediagraph.VideoFrame` objects in a 1/90000 s time base,
their pts the core's output time (strictly increasing): a release keeps the frame's pixels and, until an
idle spell outran the new turn's media, its pts; a repeat shows the last frame's pixels a whole number of
frame periods on; an idle frame shows the last frame released before the interrupt (``idle: last``) or a
still of ``still_color``, a frame period after the frame before it.
When the audio inlet ends, a ``Flush`` closes the segment below, but the audio outlet stays open: both
outlets end together, exactly once, when the video inlet has ended too and the audio sent has played (or
the sink below finished, or the graph stops). Until then the node reads on after its audio input ended, so
an interrupt during the last words (``RunningGraph.interrupt``, the schedule) still cuts them and their
video; one that comes after everything played is logged (``interrupt_after_end``).

Known limit: the output time is a presentation time, the media time only until an idle spell outruns the next
turn's media. That happens only with a producer whose media time stands still across a pause (timestamps
that count samples, not the graph clock): its next turn then goes out offset by the idle spell, and a
consumer that places video by pts on the media timeline (the recorder) shows it that much after its audio.
``speech`` and the stand-in avatar stamp turns on the graph clock, so their offset stays 0.

Log events (checked by :func:`mediagraph.testing.check_av`):

- ``av_sync_started``: fps, max_late, idle.
- ``video_out`` per frame sent on ``video``: kind (``release``, ``repeat``, ``idle``), pts (the output time sent,
  seconds rounded to the microsecond), and for a release and a repeat ``media``
  (the frame's media time) and ``stamp`` (the epoch the frame was stamped with when it arrived); for a release
  also ``skew`` (media minus the played media time),
  ``played``, ``since`` (the played time after the core's previous call: from ``since`` to ``played`` the
  audio played, or was skipped below, in one step) and ``waited`` (the frame arrived before it was due and
  waited for its audio).
- ``av_interrupted``: epoch (the new one), cut (media seconds: media before it is the old turn's).
- ``video_dropped`` per batch of drops of one reason: reason (``late``, ``stale``, ``unplayed``, ``overflow``:
  more than ``max_waiting`` frames waited), count, first and last pts.
- ``audio_dropped``: an audio frame of an older epoch was not sent down (start, duration).
- ``track_ended``: track (``audio`` or ``video``), once each.
- ``av_sync_total`` at the end: the core's statistics plus ``overflow``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any, Final, Literal, final

import attrs
import numpy as np
import trio

import mediagraph as mg

from ._av_core import AvCore, Decision, Drop, End, Idle, Release, Repeat
from ._outbox import Outbox

__all__ = ["AvSync", "AvSyncConfig"]

_v = attrs.validators

#: The time base of the frames sent on ``video``: 90 kHz, so frame periods of common rates are whole ticks.
TIME_BASE: Final = Fraction(1, 90000)

#: The least graph time between two ticks that decided nothing (no spinning at one instant).
MIN_TICK: Final = 0.001


def _colour(value: Any) -> tuple[int, int, int]:
    r, g, b = (int(c) for c in value)
    return r, g, b


def _colour_ok(_config: Any, _attribute: Any, value: tuple[int, int, int]) -> None:
    if not all(0 <= c <= 255 for c in value):
        raise ValueError(f"still_color must be three values 0..255, got {value!r}")


def _size_ok(_config: Any, _attribute: Any, value: tuple[int, int]) -> None:
    if len(value) != 2 or not all(1 <= int(c) <= 8192 for c in value):
        raise ValueError(f"still_size must be (width, height), each 1..8192, got {value!r}")


@final
@attrs.frozen(kw_only=True)
class AvSyncConfig:
    """Args:
    fps: the output frame rate: the last frame repeats, and the idle frame shows, at it.
    max_late: seconds a due frame may be behind the played audio and still be shown; a later one is dropped.
    idle: what the video shows after an interrupt until new speech plays: the ``last`` frame, or a ``still``.
    still_color: the still's RGB colour.
    still_size: the still's (width, height) before any frame was seen (then the last frame's size).
    max_waiting: video frames that may wait for their audio; one more is dropped (``overflow``).
    """

    fps: float = attrs.field(default=25.0, validator=[_v.gt(0), _v.le(240)])
    max_late: float = attrs.field(default=0.1, validator=[_v.ge(0), _v.le(60)])
    idle: Literal["last", "still"] = attrs.field(default="last", validator=_v.in_(("last", "still")))
    still_color: tuple[int, int, int] = attrs.field(default=(0, 0, 0), converter=_colour, validator=_colour_ok)
    still_size: tuple[int, int] = attrs.field(default=(640, 360), converter=tuple, validator=_size_ok)
    max_waiting: int = attrs.field(default=250, validator=[_v.ge(1), _v.le(100000)])


@final
@attrs.frozen
class _In:
    """A video frame as the core holds it: the frame and the epoch it was stamped with when it arrived."""

    frame: mg.VideoFrame
    stamp: int


@final
@attrs.frozen
class _Pass:
    """An audio message to pass down (or one of the markers below, to log in order)."""

    msg: Any


@final
@attrs.frozen
class _Decided:
    decisions: list[Decision[_In]]
    arrived: _In | None = None  # the frame whose arrival the core was asked about
    since: float | None = None  # the played media time after the core call before this one


_Item = _Pass | _Decided


@final
@mg.node_type("av_sync", config=AvSyncConfig)
class AvSync(mg.Actor):
    """Releases avatar video frames as the audio below plays their media time; nothing stale after an interrupt.

    Inlets: ``audio`` (what will be played, with ``Interrupt`` and ``Flush``), ``video`` (``mg.VideoFrame`` with
    pts on the audio's media timeline), ``playback`` (feedback: the playback events of the sink or slot below).
    Outlets: ``audio`` (the audio of the current epoch, the Interrupts and Flushes), ``video`` (the frames
    released, repeated and idle, in a 1/90000 s time base).
    """

    @staticmethod
    def ports(config: AvSyncConfig) -> mg.Ports:
        return mg.Ports(
            inlets=[
                mg.InletSpec(name="audio"),
                mg.InletSpec(name="video", types=mg.VideoFrame),
                mg.InletSpec(name="playback", types=mg.PLAYBACK_TYPES, feedback=True),
            ],
            outlets=[
                mg.OutletSpec(name="audio", format=mg.SameAs("audio")),
                mg.OutletSpec(name="video", types=mg.VideoFrame),
            ],
        )

    def __init__(self, config: AvSyncConfig) -> None:
        self.config = config
        self._core = AvCore[_In](fps=config.fps, max_late=config.max_late, idle=config.idle)
        self._overflow = 0

    def __repr__(self) -> str:
        return f"<AvSync {self._core!r} overflow={self._overflow}>"

    async def run(self, io: mg.NodeIO) -> None:
        cfg = self.config
        self._io = io
        self._core = core = AvCore[_In](fps=cfg.fps, max_late=cfg.max_late, idle=cfg.idle)
        self._overflow = 0
        self._size = (cfg.still_size[1], cfg.still_size[0])  # (height, width) of the still
        self._still: np.ndarray[Any, Any] | None = None
        self._ended = False
        self._played: float | None = None  # the played media time after the last core call
        self._changed = trio.Event()
        self._late = trio.CancelScope()  # reading interrupts after the audio ended: until the sink finished
        self._outbox = outbox = Outbox[_Item]()
        io.log("av_sync_started", fps=cfg.fps, max_late=cfg.max_late, idle=cfg.idle)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(outbox.drain, self._send)
            async with trio.open_nursery() as tasks:
                tasks.start_soon(self._tick)
                async with trio.open_nursery() as readers:
                    readers.start_soon(self._read_audio)
                    readers.start_soon(self._read_video)
                    async for event in io.inlets["playback"]:
                        await self._feed(functools.partial(self._playback, event))
                    # The sink below finished: nothing more plays, and no barge-in has anything left to cut.
                    self._late.cancel()
                # Whatever still waits will never play.
                await self._feed(lambda: self._decide(core.close(io.time())))
            outbox.close()  # the sender sends what is left, then ends
        stats = attrs.asdict(core.statistics())
        io.log("av_sync_total", **stats, overflow=self._overflow)

    def statistics(self) -> dict[str, Any]:
        return {**attrs.asdict(self._core.statistics()), "overflow": self._overflow}

    # --- the readers: each message goes to the core, and what it decides joins the outbox in the same step ---

    async def _feed(self, decide: Callable[[], list[_Item]]) -> None:
        """Ask the core, and queue what it decided (see :class:`Outbox`)."""
        await self._outbox.put(decide)
        self._changed.set()  # the ticker's next wake may have moved

    def _playback(self, event: mg.PlaybackEvent) -> list[_Item]:
        return self._decide(self._core.playback(event, self._io.time()))

    def _decide(self, decisions: list[Decision[_In]], arrived: _In | None = None) -> list[_Item]:
        """Wrap what a core call just decided; notes the played time then, for the next call's releases."""
        since, self._played = self._played, self._core.played(self._io.time())
        return [_Decided(decisions, arrived, since)] if decisions else []

    async def _read_audio(self) -> None:
        core, io = self._core, self._io

        def audio(msg: mg.AudioFrame, stamp: int) -> list[_Item]:
            rate = msg.sample_rate
            (kept,) = core.audio(msg.timestamp / rate, msg.samples_per_channel / rate, io.time(), stamp)
            return [_Pass(msg)] if kept.keep else [_Pass(_AudioDropped(kept.start, kept.duration))]

        def interrupt(msg: mg.Interrupt) -> list[_Item]:
            if core.ended:  # everything played: nothing to cut (logged as interrupt_after_end)
                return [_Pass(msg)]
            # The Interrupt goes down first, so the sink flushes the old turn at once.
            decided = core.interrupt(io.time())
            return [_Pass(msg), _Pass(_Cut(core.epoch, core.cut)), *self._decide(decided)]

        inlet = io.inlets["audio"]
        open_segment = False  # the last message down was a frame: a segment is open below
        async for msg in inlet:
            stamp = core.epoch  # taken from the inlet now: queued before an interrupt read later, it is old
            open_segment = isinstance(msg, mg.AudioFrame)
            if isinstance(msg, mg.AudioFrame):
                await self._feed(functools.partial(audio, msg, stamp))
            elif isinstance(msg, mg.Interrupt):
                await self._feed(functools.partial(interrupt, msg))
            else:
                await self._feed(functools.partial(_just, _Pass(msg)))
        # The audio track stays open until its audio has played (the core's End), the open segment closed by a
        # Flush, so that a barge-in during the last words still goes down to the sink.
        flush = [_Pass(mg.Flush())] if open_segment else []
        await self._feed(lambda: [*flush, *self._decide(core.end_audio(io.time()))])
        with self._late, inlet.after_end() as late:
            async for msg in late:  # cancelled once the sink below finished
                if isinstance(msg, mg.Interrupt):
                    await self._feed(functools.partial(interrupt, msg))

    async def _read_video(self) -> None:
        core, io = self._core, self._io

        def video(item: _In) -> list[_Item]:
            if core.statistics().waiting >= self.config.max_waiting:
                self._overflow += 1
                return [_Pass(_Overflow(item.frame.time))]
            return self._decide(core.video(item, item.frame.time, io.time(), item.stamp), item)

        async for msg in io.inlets["video"]:
            if isinstance(msg, mg.VideoFrame):  # an Interrupt or Flush on the video is the audio's to act on
                await self._feed(functools.partial(video, _In(msg, core.epoch)))
        await self._feed(lambda: self._decide(core.end_video(io.time())))

    async def _tick(self) -> None:
        """Calls the core back when it may have something due: repeats, idle frames, frames whose audio plays."""
        core, io = self._core, self._io
        floor = -math.inf  # after a tick that decided nothing, not again before MIN_TICK: never spin
        decided: list[Decision[_In]] = []

        def tick() -> list[_Item]:
            decided[:] = core.tick(io.time())
            return self._decide(decided)

        while not core.ended:
            self._changed = changed = trio.Event()
            now = io.time()
            wake = core.next_wake(now)
            if wake is None:
                await changed.wait()
                continue
            wake = max(wake, floor)
            if wake > now:
                with trio.move_on_after(wake - now):
                    await changed.wait()
                if changed.is_set():
                    continue
            await self._feed(tick)
            floor = -math.inf if decided else io.time() + MIN_TICK

    # --- the one sender: the outlets and the log see the core's order ---------------------------------------

    async def _send(self, item: _Item) -> None:
        if isinstance(item, _Pass):
            await self._pass(item.msg)
        else:
            await self._decided(item)

    async def _pass(self, msg: Any) -> None:
        io, audio = self._io, self._io.outlets["audio"]
        if isinstance(msg, _Cut):
            io.log("av_interrupted", epoch=msg.epoch, cut=_round(msg.cut))
        elif isinstance(msg, _AudioDropped):
            io.log("audio_dropped", start=_round(msg.start), duration=_round(msg.duration))
        elif isinstance(msg, _Overflow):
            io.log("video_dropped", reason="overflow", count=1, first=_round(msg.pts), last=_round(msg.pts))
        elif not audio.closed:
            await audio.send(msg)
        elif isinstance(msg, mg.Interrupt):  # after the end: the audio had all played, nothing was left to cut
            io.log("interrupt_after_end")

    async def _decided(self, item: _Decided) -> None:
        video = self._io.outlets["video"]
        drops: list[Drop[_In]] = []
        for d in item.decisions:
            if isinstance(d, Drop):
                if drops and drops[-1].reason != d.reason:
                    self._log_drops(drops)
                    drops = []
                drops.append(d)
                continue
            self._log_drops(drops)
            drops = []
            if isinstance(d, End):
                self._end()
                continue
            if video.closed:
                continue
            if isinstance(d, Release):
                waited = item.arrived is not d.frame
                since = None if item.since is None else _round(item.since)
                fields = {"skew": _round(d.skew), "played": _round(d.pts - d.skew), "since": since, "waited": waited}
                await self._show(d.frame.frame.pixels, d.out, "release", media=d.pts, stamp=d.frame.stamp, **fields)
            elif isinstance(d, Repeat):
                await self._show(d.frame.frame.pixels, d.out, "repeat", media=d.pts, stamp=d.frame.stamp)
            elif isinstance(d, Idle):
                pixels = d.frame.frame.pixels if d.frame is not None else self._still_pixels()
                await self._show(pixels, d.out, "idle")
        self._log_drops(drops)

    async def _show(self, pixels: Any, pts: float, kind: str, *, media: float | None = None, **fields: Any) -> None:
        if kind != "idle":
            shape = getattr(pixels, "shape", None)
            if shape is not None and len(shape) >= 2:
                self._size = (int(shape[0]), int(shape[1]))
        if media is not None:
            fields = {"media": _round(media), **fields}
        self._io.log("video_out", kind=kind, pts=_round(pts), **fields)
        await self._io.outlets["video"].send(
            mg.VideoFrame(pixels=pixels, pts=round(pts / TIME_BASE), time_base=TIME_BASE)
        )

    def _still_pixels(self) -> np.ndarray[Any, Any]:
        if self._still is None or self._still.shape[:2] != self._size:
            still = np.empty((*self._size, 3), np.uint8)
            still[...] = self.config.still_color
            self._still = still
        return self._still

    def _log_drops(self, drops: list[Drop[_In]]) -> None:
        if drops:
            first, last = _round(drops[0].pts), _round(drops[-1].pts)
            self._io.log("video_dropped", reason=drops[0].reason, count=len(drops), first=first, last=last)

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        for name in ("audio", "video"):
            outlet = self._io.outlets[name]
            if not outlet.closed:
                outlet.close()
                self._io.log("track_ended", track=name)


@final
@attrs.frozen
class _Cut:
    """The interrupt's place in the outbox, to log it in order: the new epoch and its cut."""

    epoch: int
    cut: float


@final
@attrs.frozen
class _AudioDropped:
    """An audio frame of an older epoch, not sent down: logged in order."""

    start: float
    duration: float


@final
@attrs.frozen
class _Overflow:
    """A video frame dropped because ``max_waiting`` frames waited: logged in order."""

    pts: float


def _just(item: _Item) -> list[_Item]:
    return [item]


def _round(x: float) -> float:
    return round(x, 6)
