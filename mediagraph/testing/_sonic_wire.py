"""The Nova Sonic stand-in's wire: AWS event-stream framing and a small HTTP/2 server connection (``h2``).

Kept apart from the stand-in's behaviour (:mod:`mediagraph.testing.sonic_standin`) so that each is small. What
the real SDK sends and expects (``docs/notes/issue16-nova-sonic-research.md``, section 2):

- Client to server, every message is a *signed envelope* (headers ``:date``, ``:chunk-signature``) whose
  payload is the inner message (``:message-type event``, ``:event-type chunk``, payload
  ``{"bytes": base64(JSON)}``); an envelope with an empty payload is the end of input. Signatures are not
  checked: the stand-in only has to look like the service to the client.
- Server to client, unsigned messages: events as above, exceptions as ``:message-type exception`` with
  ``:exception-type`` the lowerCamel union member (UpperCamel makes the SDK raise a bare ``KeyError``).
- HTTP/2 flow control: the client's window is 64 KiB and its frames 16 KiB, so sending waits for
  ``WindowUpdated``; input is acknowledged as it arrives.

One task per connection reads (:meth:`H2Server.read`), one writes (:meth:`H2Server.write`): the other tasks only
call ``h2``'s synchronous methods and wake the writer, so a cancelled session never leaves half a write on the
TLS stream (which trio would then call broken).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
import math
from collections.abc import Callable, Iterator
from typing import Any, Final, final

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import trio
from smithy_aws_event_stream.events import Event, EventMessage
from smithy_aws_event_stream.exceptions import EventError

from .._errors import MediaGraphError

__all__ = ["END_OF_INPUT", "EnvelopeDecoder", "H2Server", "SonicWireError", "StreamGone", "chunk", "exception"]

type Json = dict[str, Any]
type OnRequest = Callable[[int, dict[str, str], trio.MemoryReceiveChannel[bytes]], None]

#: What :meth:`EnvelopeDecoder.feed` returns for the client's empty signed envelope.
END_OF_INPUT: Final = None

_PRELUDE = 12  # total length, headers length, prelude CRC


@final
class SonicWireError(MediaGraphError):
    """Input bytes that are not a well-formed signed envelope around a Nova Sonic JSON event."""


@final
class StreamGone(MediaGraphError):
    """The stream was reset or its connection lost: nothing more can be sent on it."""


def chunk(event: Json) -> bytes:
    """An output event message carrying the Nova Sonic JSON ``event``."""
    body = {"bytes": base64.b64encode(json.dumps(event).encode()).decode("ascii")}
    headers = {":message-type": "event", ":event-type": "chunk", ":content-type": "application/json"}
    return EventMessage(headers=headers, payload=json.dumps(body).encode()).encode()


def exception(member: str, message: str) -> bytes:
    """A modeled exception message; ``member`` is the lowerCamel union member, e.g. ``validationException``."""
    headers = {":message-type": "exception", ":exception-type": member, ":content-type": "application/json"}
    return EventMessage(headers=headers, payload=json.dumps({"message": message}).encode()).encode()


@final
class EnvelopeDecoder:
    """Cuts the client's byte stream into signed envelopes and opens them (see the module doc)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Json | None]:
        """The Nova Sonic events (or :data:`END_OF_INPUT`) completed by ``data``, in order.

        Raises:
            SonicWireError: a message that does not decode (bad CRC, not an envelope, not JSON...).
        """
        self._buffer += data
        out: list[Json | None] = []
        while len(self._buffer) >= _PRELUDE:
            total = int.from_bytes(self._buffer[:4], "big")
            if total < _PRELUDE + 4:
                raise SonicWireError(f"an event-stream message of impossible length {total}")
            if len(self._buffer) < total:
                break
            raw = bytes(self._buffer[:total])
            del self._buffer[:total]
            envelope = _decode(raw, "envelope")
            if not {":date", ":chunk-signature"} <= set(envelope.headers):
                raise SonicWireError(f"an unsigned input message (headers {sorted(envelope.headers)})")
            out.append(_open(envelope.payload) if envelope.payload else END_OF_INPUT)
        return out


def _decode(raw: bytes, what: str) -> EventMessage:
    try:
        event = Event.decode(io.BytesIO(raw))
    except (EventError, ValueError) as exc:
        raise SonicWireError(f"an {what} that does not decode ({type(exc).__name__}: {exc})") from None
    if event is None:
        raise SonicWireError(f"an empty {what}")
    return event.message


def _open(payload: bytes) -> Json:
    inner = _decode(payload, "inner message")
    kind = (inner.headers.get(":message-type"), inner.headers.get(":event-type"))
    if kind != ("event", "chunk"):
        raise SonicWireError(f"an inner message of type {kind}, not ('event', 'chunk')")
    try:
        event = json.loads(base64.b64decode(json.loads(inner.payload)["bytes"], validate=True))
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise SonicWireError(f"a chunk whose payload is not {{'bytes': base64(JSON)}} ({exc})") from None
    if not isinstance(event, dict):
        raise SonicWireError(f"a chunk whose JSON is a {type(event).__name__}, not an object")
    return event


@final
class _Stream:
    def __init__(self) -> None:
        self.send, self.inbox = trio.open_memory_channel[bytes](math.inf)
        self.reset = False  # by the client (or the connection lost): not a clean end of input


@final
class H2Server:
    """The server side of one HTTP/2 connection over ``stream`` (TLS with ALPN ``h2`` already negotiated)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        self._conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        self._conn.initiate_connection()
        self._streams: dict[int, _Stream] = {}
        self._window = trio.Event()  # set (and replaced) when the peer opens a flow-control window
        self._wake_send, self._wake = trio.open_memory_channel[None](1)
        self._lost = False

    def __repr__(self) -> str:
        return f"<H2Server {len(self._streams)} streams>"

    async def read(self, on_request: OnRequest) -> None:
        """Read until the peer goes away; ``on_request(stream_id, headers, inbox)`` is called (synchronously)
        for each request, ``inbox`` receiving the request's body chunks and closed at its end or reset.

        Raises:
            trio.BrokenResourceError, h2.exceptions.ProtocolError: the connection broke.
        """
        try:
            while data := await self._stream.receive_some(65536):
                for event in self._conn.receive_data(data):
                    self._dispatch(event, on_request)
                self._flush()
        finally:
            for stream in self._streams.values():
                stream.reset = True
                stream.send.close()
            self._lost = True
            self._window.set()

    def _dispatch(self, event: h2.events.Event, on_request: OnRequest) -> None:
        if isinstance(event, h2.events.RequestReceived):
            stream = self._streams[event.stream_id] = _Stream()
            headers = {str(k): str(v) for k, v in event.headers or ()}
            on_request(event.stream_id, headers, stream.inbox)
        elif isinstance(event, h2.events.DataReceived):
            self._conn.acknowledge_received_data(event.flow_controlled_length or 0, event.stream_id or 0)
            receiver = self._streams.get(event.stream_id or 0)
            if receiver is not None and event.data:
                with contextlib.suppress(trio.BrokenResourceError):  # its session is over: dropped
                    receiver.send.send_nowait(event.data)
        elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
            ended = self._streams.get(event.stream_id or 0)
            if ended is not None:
                ended.reset = isinstance(event, h2.events.StreamReset)
                ended.send.close()
            self._window.set()  # a sender waiting on a reset stream finds it gone
            self._window = trio.Event()
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self._window.set()
            self._window = trio.Event()

    async def write(self) -> None:
        """Write what ``h2`` has to send, whenever a task has given it something (run for the connection's life).

        Raises:
            trio.BrokenResourceError: the connection broke.
        """
        await self._stream.send_all(self._conn.data_to_send())
        async for _ in self._wake:
            if data := self._conn.data_to_send():
                await self._stream.send_all(data)

    def _flush(self) -> None:
        with contextlib.suppress(trio.WouldBlock):  # else the writer is already due to run
            self._wake_send.send_nowait(None)

    def was_reset(self, stream_id: int) -> bool:
        """Whether the request's stream ended by a reset (or a lost connection) rather than END_STREAM."""
        return self._streams[stream_id].reset

    def respond(self, stream_id: int, status: int, headers: dict[str, str], *, end: bool = False) -> None:
        """Send the response headers."""
        with self._sending():
            self._conn.send_headers(stream_id, [(":status", str(status)), *headers.items()], end_stream=end)

    def reset(self, stream_id: int) -> None:
        """RST_STREAM (INTERNAL_ERROR), as the service's front end does before a response."""
        with self._sending():
            self._conn.reset_stream(stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)

    def end(self, stream_id: int) -> None:
        """END_STREAM on the response."""
        with self._sending():
            self._conn.end_stream(stream_id)

    async def send(self, stream_id: int, data: bytes) -> None:
        """Send ``data`` on the stream within the peer's flow-control windows, waiting for them to open.

        Raises:
            StreamGone: the stream was reset or the connection lost.
        """
        view = memoryview(data)
        while view:
            with self._sending():
                size = min(self._conn.local_flow_control_window(stream_id), self._conn.max_outbound_frame_size)
                if size > 0:
                    self._conn.send_data(stream_id, bytes(view[:size]))
                    view = view[size:]
            if size == 0:
                await self._window.wait()

    @contextlib.contextmanager
    def _sending(self) -> Iterator[None]:
        """h2 calls that queue output: StreamGone if the stream or the connection is gone; wakes the writer."""
        if self._lost:
            raise StreamGone("the connection is lost")
        try:
            yield
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError) as exc:
            raise StreamGone(f"the stream is gone ({type(exc).__name__})") from None
        self._flush()
