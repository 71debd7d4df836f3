"""Stream metadata for processors: who a stream belongs to and its credentials, as messages, and the pure
:class:`MetadataState` that turns them into the calls a processor sees (in order, each change once, a clear
once however many times it arrives). Trio-free.
"""

from __future__ import annotations

from typing import final

import attrs

__all__ = [
    "CredentialsCleared",
    "CredentialsUpdated",
    "MetadataCall",
    "MetadataState",
    "StreamInfoCleared",
    "StreamInfoUpdated",
    "StreamMetadata",
    "StreamMetadataCleared",
]


@final
@attrs.frozen(kw_only=True)
class StreamMetadata:
    """Who a stream belongs to and how to reach its service; sent again whenever any of it changes
    (reconnect, token refresh). The token is never shown in ``repr``.

    Args:
        room: room name.
        participant: participant identity.
        track_id: the track's publication id.
        url: the service URL (``""``: no credentials).
        token: the access token (``""``: no credentials).
    """

    room: str
    participant: str
    track_id: str
    url: str = ""
    token: str = attrs.field(default="", repr=False)


@final
@attrs.frozen(kw_only=True)
class StreamMetadataCleared:
    """The stream left its room: stream information and credentials are gone."""

    reason: str = ""


@final
@attrs.frozen
class StreamInfoUpdated:
    room: str
    participant: str
    track_id: str


@final
@attrs.frozen
class StreamInfoCleared:
    pass


@final
@attrs.frozen
class CredentialsUpdated:
    url: str
    token: str = attrs.field(repr=False)


@final
@attrs.frozen
class CredentialsCleared:
    pass


MetadataCall = StreamInfoUpdated | StreamInfoCleared | CredentialsUpdated | CredentialsCleared


@final
class MetadataState:
    """Turns metadata messages into the calls a processor sees (pure, no I/O).

    A message that changes the stream information gives one :class:`StreamInfoUpdated`; one that changes the
    credentials one :class:`CredentialsUpdated` (or :class:`CredentialsCleared` when they become empty); a
    message that changes nothing gives nothing. :class:`StreamMetadataCleared` gives
    :class:`StreamInfoCleared` (and :class:`CredentialsCleared` if there were credentials) once: clearing
    what is already clear gives nothing.
    """

    def __init__(self) -> None:
        self.current: StreamMetadata | None = None

    def __repr__(self) -> str:
        return f"<MetadataState {self.current!r}>"

    def apply(self, msg: StreamMetadata | StreamMetadataCleared) -> list[MetadataCall]:
        prev, calls = self.current, list[MetadataCall]()
        if isinstance(msg, StreamMetadataCleared):
            self.current = None
            if prev is not None:
                calls.append(StreamInfoCleared())
                if prev.url or prev.token:
                    calls.append(CredentialsCleared())
            return calls
        self.current = msg
        if prev is None or (prev.room, prev.participant, prev.track_id) != (msg.room, msg.participant, msg.track_id):
            calls.append(StreamInfoUpdated(msg.room, msg.participant, msg.track_id))
        before = (prev.url, prev.token) if prev is not None else ("", "")
        if (msg.url, msg.token) != before:
            calls.append(CredentialsUpdated(msg.url, msg.token) if msg.url or msg.token else CredentialsCleared())
        return calls
