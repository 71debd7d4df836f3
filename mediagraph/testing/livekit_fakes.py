"""A LiveKit room at the SDK boundary, for testing graphs with ``livekit_room`` without a server.

:class:`FakeRoom` is an ``rtc.EventEmitter`` with what the room resource uses of ``rtc.Room``: ``connect``,
``disconnect``, ``name``, the token the SDK keeps (``_token``), and a local participant that records the tracks
published. A test gives ``backend=FakeRoom`` (or a function returning one it keeps) to ``LivekitRoomConfig``, then
emits the SDK's events on the room's loop (``room.emit("track_subscribed", track, publication, participant)``)
with real tracks: a ``LocalAudioTrack`` fed through an ``AudioSource`` stands in for a remote one.
:class:`Named` builds the publication and participant those events carry. Imported on its own (it loads
``livekit.rtc``).
"""

from __future__ import annotations

import asyncio
from typing import Any, final

import attrs
from livekit import rtc

__all__ = ["FakeLocalParticipant", "FakeRoom", "Named"]


@final
@attrs.define
class Named:
    """A participant (``identity``) or a publication (``sid``), as the SDK's events carry them."""

    identity: str = ""
    sid: str = ""


@final
class FakeLocalParticipant:
    """Records the tracks published; each gets the sid ``TR_local_N``."""

    def __init__(self) -> None:
        self.published: list[Any] = []

    async def publish_track(self, track: Any, options: Any = None) -> Named:
        self.published.append(track)
        return Named(sid=f"TR_local_{len(self.published)}")


@final
class FakeRoom(rtc.EventEmitter[str]):
    """``rtc.Room`` at its boundary (see the module doc); ``listeners`` counts the handlers on each event,
    ``listening`` is set once something listens for subscribed tracks, ``connects`` and ``disconnects`` count
    the calls (a job's room, already connected, must see none)."""

    def __init__(self, name: str = "fake-room") -> None:
        super().__init__()
        self.name = name
        self.local_participant = FakeLocalParticipant()
        self.url = ""
        self._token = ""  # where the SDK keeps the token, refreshed
        self.connected = asyncio.Event()
        self.listeners: dict[str, int] = {}
        self.listening = asyncio.Event()
        self.connects = 0
        self.disconnects = 0

    def on(self, event: str, callback: Any = None) -> Any:
        self.listeners[event] = self.listeners.get(event, 0) + 1
        if event == "track_subscribed":
            self.listening.set()
        return super().on(event, callback)

    def off(self, event: str, callback: Any) -> None:
        self.listeners[event] -= 1
        super().off(event, callback)

    async def connect(self, url: str, token: str, options: Any = None) -> None:
        self.connects += 1
        self.url, self._token = url, token
        self.connected.set()

    async def disconnect(self) -> None:
        self.disconnects += 1
        self.connected.clear()

    def refresh_token(self, token: str) -> None:
        """The server gave a new token (emit ``token_refreshed`` next, as the SDK does)."""
        self._token = token
