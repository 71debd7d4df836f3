"""``livekit_in``: a remote participant's audio (and video) tracks from a LiveKit room, as timed frames.

Theory of operation. The node names a ``livekit_room`` resource, listens to its events (messages, see
:mod:`.livekit_room`) and joins it. When a remote track it wants is subscribed (of a kind it takes and has no
track of yet; from the named participant, or with none named, from whoever's track it took first while any of
theirs is on), it reads the track on the room's asyncio loop, one frame per call: audio through an
``rtc.AudioStream``, sent as :class:`mediagraph.AudioFrame` (10 ms frames; timestamps counted in samples from the
first, going on across tracks), video through an ``rtc.VideoStream``, sent as :class:`mediagraph.VideoFrame`
(rgb24 pixels, a view of the SDK's buffer; ``pts`` in microseconds from the SDK's capture timestamps, counted
from the first picture and going on across tracks). The metadata of the audio track (of the video track when
the node takes no audio) goes out on ``metadata``, in order, as the :class:`StreamMetadata` a
``frame_processor`` takes (room, participant, track sid, url, token): when the track comes, again after a
reconnect or a token refresh (the new token), and one :class:`StreamMetadataCleared` when it goes
(unsubscribed, the room disconnected, the node ending). Then it waits for the next track. It ends when the room
disconnects.

Real time only: a room streams on the wall clock.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, final

import attrs
import trio
import trio.lowlevel

import mediagraph as mg

from ._realtime import resource_of, virtual_clock
from ._stream_metadata import StreamMetadata, StreamMetadataCleared

if TYPE_CHECKING:
    from mediagraph import AsyncioLoop

from .livekit_room import (
    LivekitRoom,
    Reconnected,
    RoomDisconnected,
    TokenRefreshed,
    TrackAvailable,
    TrackGone,
)

__all__ = ["LivekitIn", "LivekitInConfig"]

_v = attrs.validators


@final
@attrs.frozen(kw_only=True)
class LivekitInConfig:
    """Args:
    room: the name of a ``livekit_room`` resource.
    participant: the identity whose tracks to take; none: whoever's wanted track is subscribed first.
    audio: take the participant's audio track (outlet ``audio``).
    video: take the participant's video track (outlet ``video``).
    sample_rate: the rate of the audio frames sent (the SDK resamples).
    channels: the channel count of the audio frames sent.
    """

    room: mg.ResourceRef = attrs.field(validator=resource_of("livekit_room", "a livekit_room"))
    participant: str | None = None
    audio: bool = True
    video: bool = False
    sample_rate: int = attrs.field(default=48000, validator=[_v.ge(8000), _v.le(192_000)])
    channels: int = attrs.field(default=1, validator=[_v.ge(1), _v.le(2)])

    def __attrs_post_init__(self) -> None:
        if not (self.audio or self.video):
            raise ValueError("audio and video are both off: take at least one kind of track")

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(kind for kind, on in (("audio", self.audio), ("video", self.video)) if on)


@final
@mg.node_type(
    "livekit_in",
    config=LivekitInConfig,
    port_notes="outlets audio (AudioFrame, sample_rate and channels; with audio on), video (VideoFrame, rgb24; with "
    "video on) and metadata (StreamMetadata, StreamMetadataCleared); no inlet (the room's tracks come through the "
    "livekit_room resource)",
)
class LivekitIn(mg.Actor):
    """A remote participant's audio and video from a LiveKit room; its track's metadata as messages.

    Outlets ``audio`` (10 ms frames at the config's rate and channels, timestamps counted; with ``audio``),
    ``video`` (rgb24 pictures, pts in microseconds; with ``video``) and ``metadata`` (``StreamMetadata`` /
    ``StreamMetadataCleared``, for a ``frame_processor``'s ``metadata`` inlet).

    Raises:
        mg.ProviderError: the room could not be joined, the SDK failed, or the graph runs on the virtual clock.

    Cancellation: the track's stream is closed (bounded) and ``StreamMetadataCleared`` sent if a track was on.
    Resource handling: the room is the graph's resource.
    """

    @staticmethod
    def ports(config: LivekitInConfig) -> mg.Ports:
        outlets = [mg.OutletSpec(name="metadata", types=(StreamMetadata, StreamMetadataCleared))]
        if config.audio:
            fmt = mg.AudioFormat(sample_rate=config.sample_rate, channels=config.channels)
            outlets.insert(0, mg.OutletSpec(name="audio", format=fmt))
        if config.video:
            outlets.insert(-1, mg.OutletSpec(name="video", types=mg.VideoFrame))
        return mg.Ports(outlets=outlets)

    def __init__(self, config: LivekitInConfig) -> None:
        self.config = config
        self.tracks = 0
        self.position = 0  # audio samples sent
        self.pictures = 0
        self._pts = 0  # the next picture's pts at least (microseconds)

    def __repr__(self) -> str:
        return f"<LivekitIn tracks={self.tracks} at {self.position} samples, {self.pictures} pictures>"

    async def run(self, io: mg.NodeIO) -> None:
        self._io = io
        if virtual_clock():
            raise mg.ProviderError(
                f"node {io.name!r} (livekit_in): a room streams in real time; run it on the real clock"
            )
        room: LivekitRoom = io.resource(self.config.room)
        self._room = room
        events = room.events()  # before joining: nothing is missed
        await room.join()
        current: dict[str, tuple[TrackAvailable, trio.CancelScope]] = {}  # kind -> the track taken, its reader
        described = self.config.kinds[0]  # the kind whose track's metadata goes out
        async with trio.open_nursery() as nursery:
            try:
                async for event in events:
                    match event:
                        case TrackAvailable() if self._wanted(event, current):
                            scope = trio.CancelScope()
                            current[event.kind] = (event, scope)
                            if event.kind == described:
                                await self._metadata(event, event.token)
                            reader = self._read_audio if event.kind == "audio" else self._read_video
                            nursery.start_soon(reader, event, scope)
                        case TrackGone():
                            for kind, (track, scope) in list(current.items()):
                                if track.track_sid == event.track_sid:
                                    scope.cancel()
                                    del current[kind]
                                    if kind == described:
                                        cleared = StreamMetadataCleared(reason="track unsubscribed")
                                        await io.outlets["metadata"].send(cleared)
                        case Reconnected() | TokenRefreshed() if described in current:
                            await self._metadata(current[described][0], event.token)  # the token of that moment
                        case RoomDisconnected():
                            break
            finally:
                for _, scope in current.values():
                    scope.cancel()
                if described in current:
                    with trio.CancelScope(shield=True):
                        await io.outlets["metadata"].send(StreamMetadataCleared(reason="room left"))
            nursery.cancel_scope.cancel()

    def _wanted(self, event: TrackAvailable, current: dict[str, tuple[TrackAvailable, trio.CancelScope]]) -> bool:
        if event.kind not in self.config.kinds or event.kind in current:
            return False
        wanted = self.config.participant
        if wanted is None and current:  # whoever the tracks on now are from
            wanted = next(iter(current.values()))[0].participant
        return wanted is None or event.participant == wanted

    async def _metadata(self, track: TrackAvailable, token: str) -> None:
        room = self._room
        metadata = StreamMetadata(
            room=room.name, participant=track.participant, track_id=track.track_sid, url=room.url, token=token
        )
        await self._io.outlets["metadata"].send(metadata)

    async def _read_audio(self, track: TrackAvailable, scope: trio.CancelScope) -> None:
        out = self._io.outlets["audio"]
        with scope:
            async with self._stream(track, self._audio_stream) as events:
                async for event in events:
                    frame = mg.AudioFrame.from_rtc(event.frame, timestamp=self.position)  # a view, no copy
                    self.position += frame.samples_per_channel
                    await out.send(frame)

    async def _read_video(self, track: TrackAvailable, scope: trio.CancelScope) -> None:
        out = self._io.outlets["video"]
        first: int | None = None  # this track's first capture timestamp
        base = self._pts  # ... and where its pictures start on the node's video timeline
        with scope:
            async with self._stream(track, self._video_stream) as events:
                async for event in events:
                    first = event.timestamp_us if first is None else first
                    pts = base + max(0, event.timestamp_us - first)
                    self._pts = pts + 1
                    self.pictures += 1
                    await out.send(mg.VideoFrame.from_rtc(event.frame, pts=pts))

    @contextlib.asynccontextmanager
    async def _stream(
        self, track: TrackAvailable, make: Callable[[Any], Awaitable[Any]]
    ) -> AsyncIterator[AsyncIterator[Any]]:
        """The track's stream events, read on the room's loop; the stream closed after, bounded."""
        loop = self._room.loop
        self.tracks += 1
        stream = await loop.call(make, track.track)
        try:
            yield _events(loop, stream)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                await loop.call(stream.aclose)

    async def _audio_stream(self, track: Any) -> Any:  # on the room's loop
        from livekit import rtc

        return rtc.AudioStream(track, sample_rate=self.config.sample_rate, num_channels=self.config.channels)

    async def _video_stream(self, track: Any) -> Any:  # on the room's loop
        from livekit import rtc

        return rtc.VideoStream(track, format=rtc.VideoBufferType.RGB24)


async def _events(loop: AsyncioLoop, stream: Any) -> AsyncIterator[Any]:
    """A stream's events, each read by one call on ``loop``, until the stream ends."""
    while (event := await loop.call(_next_event, stream)) is not None:
        yield event


async def _next_event(stream: Any) -> Any:
    """The stream's next event, or ``None`` at its end (on the room's loop)."""
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return None
