"""``livekit_out``: audio into a LiveKit audio track, with playback events from what the track really played.

Theory of operation. The node feeds an ``rtc.AudioSource`` (``livekit.rtc``, asyncio code, run on an asyncio
loop thread: the graph's ``asyncio`` resource or the node's own) through a ``rtc.LocalAudioTrack``. The
source's native queue (``queue_ms``) drains in real time, which paces the node: ``capture_frame`` returns once
a frame fits. What has played is what was handed to the source less what it still holds; the trio-free
:class:`~._livekit_playout.Playout` keeps that count, and an observer task turns it into playback events every
``POLL`` seconds, so a transcript synchronizer or a recorder above this node follows the audio that left, as
it does above a speaker. An ``Interrupt`` cancels the capture in flight, clears the source's queue (nothing
queued is sent after it) and finishes the segment at the position played.

The ``monitor`` outlet, when linked, carries what the track delivers, read back through an ``rtc.AudioStream``
(10 ms frames, timestamps counted from the first; silence while nothing plays): what a room would receive.

With ``video``, a second track: pictures from the ``video`` inlet go into an ``rtc.VideoSource`` as they arrive
(no queue: whatever paces them upstream, an ``av_sync`` against this node's playback events, paces the
track), stamped with their pts in microseconds; ``video_monitor``, when linked, carries what that track
delivers (rgb24, through the track's i420, pts from the SDK's timestamps counted from the first picture).

With ``room`` (a ``livekit_room`` resource) the track is published into the room once it is joined (and its
SDK objects live on the room's asyncio loop); without, it stays local: the playout alone, heard through the
monitor.

Real time only: the source drains on the wall clock, so the node refuses the virtual clock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, final

import attrs
import numpy as np
import trio
import trio.lowlevel

import mediagraph as mg

from ._livekit_playout import Playout
from ._realtime import resource_of, virtual_clock
from .livekit_room import LivekitRoom

if TYPE_CHECKING:
    from mediagraph import AsyncioLoop

__all__ = ["LivekitOut", "LivekitOutConfig"]

_v = attrs.validators

#: How often what has played is read from the source, in seconds.
POLL: Final = 0.01
#: How long the monitor goes on reading once all has played (the stream hands frames over a little later).
MONITOR_TAIL: Final = 0.1
PLAYBACK_TYPES: Final = (mg.PlaybackStarted, mg.PlaybackProgress, mg.PlaybackFinished)


@final
@attrs.frozen(kw_only=True)
class LivekitOutConfig:
    """Args:
    sample_rate: the track's rate (the inlet takes only this rate).
    channels: the track's channel count (the inlet takes only this count).
    queue_ms: how much audio the source holds before ``capture_frame`` waits (and the most an interrupt cuts
        that was already handed over).
    progress_ms: a ``playback_progress`` event each time a segment has played this much more (0: at every poll).
    track_name: the track's name.
    room: the name of a ``livekit_room`` resource to publish the track into; none: the track stays local.
    loop: (without ``room``) the name of an ``asyncio`` resource to run ``livekit.rtc`` on; none: a loop
        thread of the node's own. With ``room``, the room's loop.
    video: publish a video track too (inlet ``video``, outlet ``video_monitor``), named ``TRACK_NAME-video``.
    width, height: the video track's size (pictures of another size are sent as they are; the SDK scales).
    """

    sample_rate: int = attrs.field(default=48000, validator=[_v.ge(8000), _v.le(192_000)])
    channels: int = attrs.field(default=1, validator=[_v.ge(1), _v.le(2)])
    queue_ms: int = attrs.field(default=100, validator=[_v.ge(10), _v.le(5000)])
    progress_ms: float = attrs.field(default=100.0, validator=[_v.ge(0), _v.le(60000)])
    track_name: str = attrs.field(default="mediagraph", validator=[_v.min_len(1), _v.max_len(200)])
    room: mg.ResourceRef | None = attrs.field(default=None, validator=resource_of("livekit_room", "a livekit_room"))
    loop: mg.ResourceRef | None = attrs.field(default=None, validator=resource_of("asyncio", "an asyncio loop"))
    video: bool = False
    width: int = attrs.field(default=640, validator=[_v.ge(16), _v.le(7680)])
    height: int = attrs.field(default=480, validator=[_v.ge(16), _v.le(4320)])

    def __attrs_post_init__(self) -> None:
        if self.room is not None and self.loop is not None:
            raise ValueError("give room or loop, not both: the room's SDK objects live on the room's own loop")


@final
@mg.node_type("livekit_out", config=LivekitOutConfig)
class LivekitOut(mg.Actor):
    """Feeds a LiveKit audio track in real time; playback events from what it really played.

    Inlet ``audio`` (the config's rate and channels; ``Flush`` ends a segment, ``Interrupt`` cuts it), and with
    ``video`` inlet ``video`` (``VideoFrame``: rgb24/rgba arrays or ``av.VideoFrame``, sent as they come).
    Outlets ``playback`` (``PlaybackStarted``, ``PlaybackProgress``, ``PlaybackFinished``, as a speaker's),
    ``monitor`` (what the audio track delivers) and with ``video`` ``video_monitor`` (what the video track
    delivers).

    Raises:
        mg.ProviderError: ``livekit.rtc`` failed, or the graph runs on the virtual clock.

    Cancellation: unfinished segments get no ``playback_finished``; the track's objects are closed, bounded.
    Resource handling: a ``loop`` resource is the graph's; otherwise the node's own loop thread is closed.
    """

    @staticmethod
    def ports(config: LivekitOutConfig) -> mg.Ports:
        fmt = mg.AudioFormat(sample_rate=config.sample_rate, channels=config.channels)
        inlets = [mg.InletSpec(name="audio", format=fmt)]
        outlets = [mg.OutletSpec(name="playback", types=PLAYBACK_TYPES), mg.OutletSpec(name="monitor", format=fmt)]
        if config.video:
            inlets.append(mg.InletSpec(name="video", types=mg.VideoFrame))
            outlets.append(mg.OutletSpec(name="video_monitor", types=mg.VideoFrame))
        return mg.Ports(inlets=inlets, outlets=outlets)

    def __init__(self, config: LivekitOutConfig) -> None:
        self.config = config
        self.frames = 0
        self.pictures = 0

    def __repr__(self) -> str:
        return f"<LivekitOut {self.config.track_name!r} frames={self.frames} pictures={self.pictures}>"

    async def run(self, io: mg.NodeIO) -> None:
        self._io = io
        cfg = self.config
        if virtual_clock():
            raise mg.ProviderError(
                f"node {io.name!r} (livekit_out): a LiveKit source plays in real time; run it on the real clock"
            )
        self._playout = Playout(cfg.sample_rate, progress_interval=cfg.progress_ms / 1000)
        self._emit = io.outlets["playback"].emit
        own: AsyncioLoop | None = None
        room: LivekitRoom | None = io.resource(cfg.room) if cfg.room is not None else None
        if room is not None:
            self._loop = room.loop
        elif cfg.loop is None:
            self._loop = own = mg.AsyncioLoop()
        else:
            self._loop = io.resource(cfg.loop)
        self._capture: trio.CancelScope | None = None
        self._ended = False  # the input has ended
        self._played_out = trio.Event()  # ... and all of it has played
        self._opened: list[Any] = []  # the SDK objects to close, streams before their sources
        try:
            self._source, self._stream, track = await self._loop.call(self._open)
            tracks = [(track, cfg.track_name)]
            if cfg.video:
                self._video, self._video_stream, video_track = await self._loop.call(self._open_video)
                tracks.append((video_track, f"{cfg.track_name}-video"))
            if room is not None:
                await room.join()
                for published, name in tracks:
                    sid = await room.publish(published)
                    io.log("track_published", room=room.name, track=sid, name=name)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._observe)
                monitors = [name for name in ("monitor", "video_monitor") if name in io.outlets]
                if io.outlets["monitor"].linked:
                    nursery.start_soon(self._monitor)
                if cfg.video:
                    nursery.start_soon(self._write_video)
                    if io.outlets["video_monitor"].linked:
                        nursery.start_soon(self._monitor_video)
                await self._write()
                if any(io.outlets[name].linked for name in monitors):  # what played last is still on its way out
                    await trio.sleep(MONITOR_TAIL)
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                if self._opened:
                    with trio.move_on_after(2):
                        await self._loop.call(self._close)
                if own is not None:
                    await trio.to_thread.run_sync(own.close)

    async def _open(self) -> tuple[Any, Any, Any]:  # on the asyncio loop: the SDK binds it as it builds
        from livekit import rtc

        cfg = self.config
        source = rtc.AudioSource(cfg.sample_rate, cfg.channels, queue_size_ms=cfg.queue_ms)
        track = rtc.LocalAudioTrack.create_audio_track(cfg.track_name, source)
        stream = rtc.AudioStream(track, sample_rate=cfg.sample_rate, num_channels=cfg.channels)
        self._opened += [stream, source]
        return source, stream, track

    async def _open_video(self) -> tuple[Any, Any, Any]:  # on the asyncio loop
        from livekit import rtc

        cfg = self.config
        source = rtc.VideoSource(cfg.width, cfg.height)
        track = rtc.LocalVideoTrack.create_video_track(f"{cfg.track_name}-video", source)
        stream = rtc.VideoStream(track, format=rtc.VideoBufferType.RGB24)
        self._opened += [stream, source]
        return source, stream, track

    async def _close(self) -> None:
        for opened in self._opened:
            await opened.aclose()

    async def _queued(self) -> float:
        """What the source still holds, read on its loop: its estimate changes in several steps there."""
        return float(self._source.queued_duration)

    async def _cut(self) -> float:
        """Clear the source's queue; what it held then (read and cleared in one step on its loop)."""
        queued = float(self._source.queued_duration)
        self._source.clear_queue()
        return queued

    # --- the writer, the observer, the monitor -------------------------------------------------------------

    async def _write(self) -> None:
        io, cfg = self._io, self.config
        async for msg in io.inlets["audio"]:
            if isinstance(msg, mg.AudioFrame):
                n = msg.samples_per_channel
                frame = msg.to_rtc()  # the same memory, no copy
                self._playout.submit(n, msg.timestamp / cfg.sample_rate)
                self.frames += 1
                with trio.CancelScope() as self._capture:
                    await self._loop.call(self._source.capture_frame, frame)
                self._capture = None
            elif isinstance(msg, mg.Interrupt):
                await self._interrupt()
            elif isinstance(msg, mg.Flush):
                self._send(self._playout.flush(io.time()))
        self._send(self._playout.end(io.time()))
        async with trio.open_nursery() as nursery:  # a barge-in while the rest plays out still cuts it
            nursery.start_soon(self._late_interrupts)
            await self._drain()
            nursery.cancel_scope.cancel()

    async def _late_interrupts(self) -> None:
        with self._io.inlets["audio"].after_end() as late:
            async for msg in late:
                if isinstance(msg, mg.Interrupt):
                    await self._interrupt()

    async def _interrupt(self) -> None:
        if self._capture is not None:
            self._capture.cancel()  # its frame is dropped with the queue anyway
        queued = await self._loop.call(self._cut)
        self._send(self._playout.interrupt(queued, self._io.time()))

    async def _drain(self) -> None:
        """Until what was handed over has played (bounded: the queue drains in real time)."""
        self._ended = True
        with trio.move_on_after(self.config.queue_ms / 1000 + 1.0):
            await self._played_out.wait()
        self._send(self._playout.observe(0.0, self._io.time()))

    async def _observe(self) -> None:
        while True:
            await trio.sleep(POLL)
            self._send(self._playout.observe(await self._loop.call(self._queued), self._io.time()))
            if self._ended and not self._playout.pending:
                self._played_out.set()

    async def _monitor(self) -> None:
        cfg, out = self.config, self._io.outlets["monitor"]
        frames = self._stream.__aiter__()
        position = 0
        while True:
            event = await self._loop.call(frames.__anext__)
            data = np.frombuffer(event.frame.data, dtype=np.int16).reshape(-1, cfg.channels)
            frame = mg.AudioFrame(samples=data, sample_rate=cfg.sample_rate, channels=cfg.channels, timestamp=position)
            await out.send(frame)
            position += len(data)

    async def _write_video(self) -> None:
        async for msg in self._io.inlets["video"]:
            if isinstance(msg, mg.VideoFrame):  # an Interrupt on the video is for av_sync above, not the track
                picture, stamp = msg.to_rtc(), round(msg.time * 1_000_000)
                await self._loop.call(self._capture_video, picture, stamp)
                self.pictures += 1

    async def _capture_video(self, picture: Any, stamp: int) -> None:  # on the asyncio loop
        self._video.capture_frame(picture, timestamp_us=stamp)

    async def _monitor_video(self) -> None:
        out = self._io.outlets["video_monitor"]
        events = self._video_stream.__aiter__()
        first: int | None = None
        while True:
            event = await self._loop.call(events.__anext__)
            first = event.timestamp_us if first is None else first
            await out.send(mg.VideoFrame.from_rtc(event.frame, pts=max(0, event.timestamp_us - first)))

    def _send(self, events: list[mg.PlaybackEvent]) -> None:
        for event in events:
            self._emit(event)
