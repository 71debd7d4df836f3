"""``livekit_in``: a remote participant's audio track from a LiveKit room, as timed audio frames.

Theory of operation. The node names a ``livekit_room`` resource, listens to its events (messages, see
:mod:`.livekit_room`) and joins it. When a remote audio track it wants is subscribed (the first one, or the
named participant's), it reads the track through an ``rtc.AudioStream`` on the room's asyncio loop, one frame
per call, and sends each as an :class:`mediagraph.AudioFrame` (10 ms frames; timestamps counted in samples from
the first, going on across tracks). The track's metadata goes out on ``metadata``, in order, as the
:class:`StreamMetadata` a ``frame_processor`` takes (room, participant, track sid, url, token): when the track
comes, again after a reconnect or a token refresh (the new token), and one :class:`StreamMetadataCleared` when
it goes (unsubscribed, the room disconnected, the node ending). Then it waits for the next track. It ends when
the room disconnects.

Real time only: a room streams on the wall clock.
"""

from __future__ import annotations

from typing import Any, final

import attrs
import trio
import trio.lowlevel

import mediagraph as mg

from ._realtime import resource_of, virtual_clock
from ._stream_metadata import StreamMetadata, StreamMetadataCleared
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
    participant: the identity whose audio to take; none: the first remote audio track subscribed.
    sample_rate: the rate of the frames sent (the SDK resamples).
    channels: the channel count of the frames sent.
    """

    room: mg.ResourceRef = attrs.field(validator=resource_of("livekit_room", "a livekit_room"))
    participant: str | None = None
    sample_rate: int = attrs.field(default=48000, validator=[_v.ge(8000), _v.le(192_000)])
    channels: int = attrs.field(default=1, validator=[_v.ge(1), _v.le(2)])


@final
@mg.node_type(
    "livekit_in",
    config=LivekitInConfig,
    port_notes="outlets audio (AudioFrame, sample_rate and channels) and metadata (StreamMetadata, "
    "StreamMetadataCleared); no inlet (the room's tracks come through the livekit_room resource)",
)
class LivekitIn(mg.Actor):
    """A remote participant's audio from a LiveKit room; its track's metadata as messages.

    Outlets ``audio`` (10 ms frames at the config's rate and channels, timestamps counted) and ``metadata``
    (``StreamMetadata`` / ``StreamMetadataCleared``, for a ``frame_processor``'s ``metadata`` inlet).

    Raises:
        mg.ProviderError: the room could not be joined, the SDK failed, or the graph runs on the virtual clock.

    Cancellation: the track's stream is closed (bounded) and ``StreamMetadataCleared`` sent if a track was on.
    Resource handling: the room is the graph's resource.
    """

    @staticmethod
    def ports(config: LivekitInConfig) -> mg.Ports:
        return mg.Ports(
            outlets=[
                mg.OutletSpec(
                    name="audio", format=mg.AudioFormat(sample_rate=config.sample_rate, channels=config.channels)
                ),
                mg.OutletSpec(name="metadata", types=(StreamMetadata, StreamMetadataCleared)),
            ]
        )

    def __init__(self, config: LivekitInConfig) -> None:
        self.config = config
        self.tracks = 0
        self.position = 0  # samples sent

    def __repr__(self) -> str:
        return f"<LivekitIn tracks={self.tracks} at {self.position} samples>"

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
        current: tuple[TrackAvailable, trio.CancelScope] | None = None
        async with trio.open_nursery() as nursery:
            try:
                async for event in events:
                    match event:
                        case TrackAvailable() if current is None and self._wanted(event):
                            scope = trio.CancelScope()
                            current = (event, scope)
                            await self._metadata(event, event.token)
                            nursery.start_soon(self._read, event, scope)
                        case TrackGone() if current is not None and event.track_sid == current[0].track_sid:
                            current[1].cancel()
                            current = None
                            await io.outlets["metadata"].send(StreamMetadataCleared(reason="track unsubscribed"))
                        case Reconnected() | TokenRefreshed() if current is not None:
                            await self._metadata(current[0], event.token)  # the token of that moment
                        case RoomDisconnected():
                            break
            finally:
                if current is not None:
                    current[1].cancel()
                    with trio.CancelScope(shield=True):
                        await io.outlets["metadata"].send(StreamMetadataCleared(reason="room left"))
            nursery.cancel_scope.cancel()

    def _wanted(self, event: TrackAvailable) -> bool:
        wanted = self.config.participant
        return event.kind == "audio" and (wanted is None or event.participant == wanted)

    async def _metadata(self, track: TrackAvailable, token: str) -> None:
        room = self._room
        metadata = StreamMetadata(
            room=room.name, participant=track.participant, track_id=track.track_sid, url=room.url, token=token
        )
        await self._io.outlets["metadata"].send(metadata)

    async def _read(self, track: TrackAvailable, scope: trio.CancelScope) -> None:
        loop, out = self._room.loop, self._io.outlets["audio"]
        self.tracks += 1
        with scope:
            stream = await loop.call(self._stream, track.track)
            try:
                while (received := await loop.call(_next_frame, stream)) is not None:
                    frame = mg.AudioFrame.from_rtc(received, timestamp=self.position)  # a view, no copy
                    self.position += frame.samples_per_channel
                    await out.send(frame)
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(2):
                    await loop.call(stream.aclose)

    async def _stream(self, track: Any) -> Any:  # on the room's loop
        from livekit import rtc

        return rtc.AudioStream(track, sample_rate=self.config.sample_rate, num_channels=self.config.channels)


async def _next_frame(stream: Any) -> Any:
    """The next ``rtc.AudioFrame``, or ``None`` at the stream's end (on the room's loop)."""
    try:
        event = await stream.__anext__()
    except StopAsyncIteration:
        return None
    return event.frame
