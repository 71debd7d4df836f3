"""The ``livekit_room`` resource: one LiveKit room connection shared by the nodes that name it.

Theory of operation. ``livekit.rtc`` is asyncio code: the room runs on an asyncio loop thread of its own
(``mg.AsyncioLoop``), and every SDK object the nodes make for it (streams, sources, tracks) is made and used on
that loop (``room.loop``). The room connects once, when its first user joins (bounded by
``connect_timeout``), and disconnects when the runtime closes the resource, after its last user.

The SDK's room events (a remote track subscribed or gone, reconnecting, reconnected, a token refreshed,
disconnected) arrive as callbacks on the asyncio thread; they only post a :class:`RoomEvent` to the trio side
(``TrioToken.run_sync_soon``), where each node that called :meth:`LivekitRoom.events` gets them all, in order,
on a channel of its own: a message, never a callback into node code. Nothing is posted after the resource
closed.

Credentials: ``url`` and ``token`` from the parameters, else ``LIVEKIT_URL`` / ``LIVEKIT_TOKEN``, else a token
minted from ``LIVEKIT_API_KEY`` / ``LIVEKIT_API_SECRET`` with ``livekit-api`` (the ``livekit`` extra) for
``room`` and ``identity``. The token is a secret: never logged, masked in messages.

Tests give ``backend``, a function building the SDK-side room (a fake with ``rtc.Room``'s events), on the loop.

A room someone else connected (a LiveKit Agents job's ``ctx.room``, see :mod:`.livekit_job`) is given as
``connected`` with the asyncio loop it lives on (``connected_loop``): the resource then hosts its calls on that
loop (``mg.AsyncioLoop.adopt``), never connects or disconnects the room, and on close only unsubscribes its
event handlers and reaps what it started there; the loop goes on.
"""

from __future__ import annotations

import asyncio  # the node library imports it anyway (livekit.rtc); configs' annotations resolve at run time
import contextlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, final

import attrs
import trio
import trio.lowlevel

import mediagraph as mg

if TYPE_CHECKING:
    from mediagraph import AsyncioLoop

__all__ = [
    "LivekitRoom",
    "LivekitRoomConfig",
    "Reconnected",
    "Reconnecting",
    "RoomDisconnected",
    "RoomEvent",
    "TokenRefreshed",
    "TrackAvailable",
    "TrackGone",
]

_v = attrs.validators

#: The SDK's room events the resource turns into messages.
EVENTS: Final = (
    "track_subscribed",
    "track_unsubscribed",
    "reconnecting",
    "reconnected",
    "token_refreshed",
    "disconnected",
)


@final
@attrs.frozen
class TrackAvailable:
    """A remote participant's track was subscribed; ``track`` is the SDK's (use it on ``room.loop`` only);
    ``token``, the room's token at that moment."""

    participant: str
    track_sid: str
    kind: str  # "audio" or "video"
    track: Any = attrs.field(eq=False, repr=False)
    token: str = attrs.field(default="", repr=False)


@final
@attrs.frozen
class TrackGone:
    participant: str
    track_sid: str


@final
@attrs.frozen
class Reconnecting:
    pass


@final
@attrs.frozen
class Reconnected:
    """The room is back; ``token``, its token at that moment (events carry the state of their moment: a
    listener that reads them later must not see a later token)."""

    token: str = attrs.field(default="", repr=False)


@final
@attrs.frozen
class TokenRefreshed:
    """The server refreshed the token: ``token`` is the new one."""

    token: str = attrs.field(default="", repr=False)


@final
@attrs.frozen
class RoomDisconnected:
    reason: str


type RoomEvent = TrackAvailable | TrackGone | Reconnecting | Reconnected | TokenRefreshed | RoomDisconnected


@final
@attrs.frozen(kw_only=True)
class LivekitRoomConfig:
    """``type: livekit_room``.

    Args:
        url: the LiveKit server (``wss://...``); none: ``LIVEKIT_URL``.
        token: an access token; none: ``LIVEKIT_TOKEN``, or one minted from ``LIVEKIT_API_KEY`` /
            ``LIVEKIT_API_SECRET`` for ``room`` and ``identity``.
        room: the room to join when minting a token.
        identity: the participant identity when minting a token.
        connect_timeout: seconds the connection may take (the SDK retries on its own past any single timeout).
        backend: (Python only) builds the SDK-side room, on its loop; none: ``rtc.Room()``. Tests give a fake.
        connected: (Python only) an SDK room already connected by its owner (a LiveKit Agents job's
            ``ctx.room``): used as it is, never connected or disconnected here; needs ``connected_loop``.
        connected_loop: (Python only) the running asyncio loop ``connected`` lives on; its calls run there.
    """

    url: str | None = None
    token: str | None = attrs.field(default=None, repr=False)
    room: str = attrs.field(default="mediagraph", validator=_v.min_len(1))
    identity: str = attrs.field(default="mediagraph", validator=_v.min_len(1))
    connect_timeout: float = attrs.field(default=10.0, validator=[_v.gt(0), _v.le(120)])
    backend: Callable[[], Any] | None = attrs.field(default=None, eq=False, repr=False)
    connected: Any = attrs.field(default=None, eq=False, repr=False)
    connected_loop: asyncio.AbstractEventLoop | None = attrs.field(default=None, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if (self.connected is None) != (self.connected_loop is None):
            raise ValueError("connected and connected_loop go together: the room and the asyncio loop it lives on")
        if self.connected is not None and self.backend is not None:
            raise ValueError("give backend or connected, not both")

    def open(self) -> LivekitRoom:
        return LivekitRoom(self)


@final
class LivekitRoom:
    """The opened resource; see the module doc.

    Resource handling: :meth:`close` (the runtime's, once) disconnects (bounded) and stops the loop thread.
    """

    def __init__(self, config: LivekitRoomConfig) -> None:
        self.config = config
        self.loop: AsyncioLoop
        if config.connected_loop is not None:
            self.loop = mg.AsyncioLoop.adopt(config.connected_loop)
        else:
            self.loop = mg.AsyncioLoop(name="mediagraph-livekit")
        self.owned = config.connected is None  # whether this resource connects (and disconnects) the room
        self.name = config.room
        self.url = ""
        self.token = ""
        self._room: Any = None
        self._connected = False
        self._closed = False
        self._joining: trio.Lock | None = None
        self._channels: list[trio.MemorySendChannel[RoomEvent]] = []
        self._trio: trio.lowlevel.TrioToken | None = None
        self._handlers: list[tuple[str, Callable[..., None]]] = []

    def __repr__(self) -> str:
        state = "closed" if self._closed else "connected" if self._connected else "not connected"
        return f"<LivekitRoom {self.name!r} {state}, {len(self._channels)} listeners>"

    def events(self) -> trio.MemoryReceiveChannel[RoomEvent]:
        """A channel of every room event from now on, in order (call it before :meth:`join` to miss none)."""
        send, receive = trio.open_memory_channel[RoomEvent](float("inf"))
        self._channels.append(send)
        return receive

    async def join(self) -> None:
        """Connect, once for all users (the first waits; later ones return at once).

        Raises:
            mg.ProviderError: no credentials, or the connection failed or took longer than ``connect_timeout``;
                the message names the room and never holds the token.
        """
        if self._joining is None:
            self._joining = trio.Lock()
        async with self._joining:
            if self._connected:
                return
            if self._closed:
                raise mg.ProviderError(f"livekit_room {self.name!r}: closed")
            self._trio = trio.lowlevel.current_trio_token()
            if not self.owned:
                self._room = await self.loop.call(self._attach)
                self._connected = True
                return
            self.url, self.token = self._credentials()
            try:
                with trio.fail_after(self.config.connect_timeout):
                    self._room = await self.loop.call(self._connect)
            except trio.TooSlowError:
                raise mg.ProviderError(
                    f"livekit_room {self.name!r}: no connection to {self.url} within {self.config.connect_timeout} s"
                ) from None
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}"
                message = message.replace(self.token, "***") if self.token else message
                raise mg.ProviderError(
                    f"livekit_room {self.name!r}: connecting to {self.url} failed: {message}"
                ) from None
            self._connected = True

    async def publish(self, track: Any) -> str:
        """Publish a local track (made on :attr:`loop`); its sid."""
        return await self.loop.call(self._publish, track)

    def close(self) -> None:
        self._closed = True
        for channel in self._channels:
            channel.close()
        self._channels.clear()
        if self._room is not None:
            room = self._room
            self._room = None
            self.loop.finish(room.disconnect if self.owned else self._detach)
        self.loop.close()

    # --- on the asyncio loop --------------------------------------------------------------------------------

    async def _connect(self) -> Any:
        if self.config.backend is not None:
            room = self.config.backend()
        else:
            from livekit import rtc

            room = rtc.Room()
        self._subscribe(room)
        await room.connect(self.url, self.token)
        if getattr(room, "name", None):
            self.name = str(room.name)
        return room

    async def _attach(self) -> Any:
        """The room given connected: its events, its name and credentials (the SDK keeps those private)."""
        room = self.config.connected
        self._subscribe(room)
        if isinstance(getattr(room, "name", None), str) and room.name:
            self.name = room.name
        url, token = getattr(room, "_server_url", ""), getattr(room, "_token", "")
        self.url, self.token = (url if isinstance(url, str) else ""), (token if isinstance(token, str) else "")
        return room

    async def _detach(self) -> None:
        """A room its owner keeps: only this resource's handlers go."""
        for name, handler in self._handlers:
            self.config.connected.off(name, handler)
        self._handlers.clear()

    def _subscribe(self, room: Any) -> None:
        for name in EVENTS:
            handler = self._handler(name)
            room.on(name, handler)
            self._handlers.append((name, handler))

    async def _publish(self, track: Any) -> str:
        publication = await self._room.local_participant.publish_track(track)
        return str(getattr(publication, "sid", ""))

    def _handler(self, name: str) -> Callable[..., None]:
        def handle(*args: Any) -> None:  # on the asyncio thread: post, nothing else
            token = str(getattr(self._room, "_token", "") or self.token)  # the SDK keeps it there only
            event = _event(name, args, token)
            if event is not None and self._trio is not None and not self._closed:
                with contextlib.suppress(trio.RunFinishedError):  # the run is over: nobody to tell
                    self._trio.run_sync_soon(self._post, event)

        return handle

    # --- on the trio side -----------------------------------------------------------------------------------

    def _post(self, event: RoomEvent) -> None:
        if isinstance(event, TokenRefreshed):
            self.token = event.token
        for channel in list(self._channels):
            try:
                channel.send_nowait(event)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                self._channels.remove(channel)

    def _credentials(self) -> tuple[str, str]:
        cfg = self.config
        url = cfg.url or os.environ.get("LIVEKIT_URL", "")
        token = cfg.token or os.environ.get("LIVEKIT_TOKEN", "")
        if not token and os.environ.get("LIVEKIT_API_KEY") and os.environ.get("LIVEKIT_API_SECRET"):
            token = _mint(cfg.room, cfg.identity)
        if cfg.backend is None and not (url and token):
            missing = " and ".join(n for n, v in (("a url", url), ("a token", token)) if not v)
            raise mg.ProviderError(
                f"livekit_room {self.name!r}: {missing}: give url/token, or set LIVEKIT_URL and LIVEKIT_TOKEN (or "
                "LIVEKIT_API_KEY and LIVEKIT_API_SECRET to mint one)"
            )
        return url, token


def _event(name: str, args: tuple[Any, ...], token: str) -> RoomEvent | None:
    match name:
        case "track_subscribed":
            track, publication, participant = args[:3]
            kind = "video" if getattr(track, "kind", 1) == 2 else "audio"  # rtc.TrackKind.KIND_VIDEO is 2
            return TrackAvailable(str(participant.identity), str(publication.sid), kind, track, token)
        case "track_unsubscribed":
            _, publication, participant = args[:3]
            return TrackGone(str(participant.identity), str(publication.sid))
        case "reconnecting":
            return Reconnecting()
        case "reconnected":
            return Reconnected(token)
        case "token_refreshed":
            return TokenRefreshed(token)
        case "disconnected":
            return RoomDisconnected(str(args[0]) if args else "")
    return None


def _mint(room: str, identity: str) -> str:
    try:
        from livekit import api
    except ImportError:
        raise mg.ProviderError(
            "livekit_room: minting a token from LIVEKIT_API_KEY/LIVEKIT_API_SECRET needs livekit-api: "
            "pip install 'mediagraph[livekit]'"
        ) from None
    grants = api.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True)
    return str(api.AccessToken().with_identity(identity).with_grants(grants).to_jwt())


mg.register_resource_type(
    mg.ResourceType(
        name="livekit_room",
        config=LivekitRoomConfig,
        open=LivekitRoomConfig.open,
        summary="a LiveKit room, connected once for the nodes that name it; its events become messages",
    )
)
