"""A local stand-in of Amazon Bedrock's Nova Sonic bidirectional stream service, for tests and offline runs.

The real AWS SDK talks to it unchanged: point ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` at :attr:`SonicStandin.endpoint`
and trust its throwaway CA with ``SSL_CERT_FILE`` (:meth:`SonicStandin.environment` gives both, and fake keys).
It speaks HTTP/2 over TLS (ALPN ``h2``, which the SDK's CRT transport requires) and the AWS event-stream framing
(:mod:`mediagraph.testing._sonic_wire`; the conversations are in :mod:`mediagraph.testing._sonic_conversation`); the
wire facts are in ``docs/notes/issue16-nova-sonic-research.md``.

Each request (one bidirectional stream) is a session that plays a :class:`SonicScript`: a conversation in
which every ``turn_audio`` seconds of input audio, or every interactive user text block, is a user turn that gets
a reply, or one of the service's failures. Every input event is held to the service's rules
(:class:`~mediagraph.testing.SonicInputChecker`); an event that breaks one ends the session with a
``validationException``, as the service does. What each session received and how it ended is kept in a
:class:`StandinSession` for the test to read.

A reply to user turn ``n`` is: ``completionStart`` (once per session), the USER text (FINAL: ``"user turn n"``
or the user's own text), the ASSISTANT text SPECULATIVE ``"reply n"``, the ASSISTANT audio (a 24 kHz tone of
``reply_seconds``, in chunks), ``contentEnd`` END_TURN, then the ASSISTANT text FINAL ``"reply n"``. With a tool,
a TOOL block with ``toolUse`` comes first and the reply text becomes ``"reply n: " + the tool's result``.
A barge-in (reply ``n`` in ``barge_in``) stops the audio after half its chunks with ``contentEnd`` INTERRUPTED;
the FINAL text block then carries what was spoken (the first half of the words) and the textOutput
``{ "interrupted" : true }``, ending INTERRUPTED too.

Command line: ``python -m mediagraph.testing.sonic_standin [--port N] [--dir DIR] [--turn-audio S]
[--reply-seconds S]`` prints the ``export`` lines for a shell, then serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import functools
import json
import pathlib
import shlex
import ssl
import sys
import tempfile
from collections.abc import Sequence
from typing import Any, Final, Literal, final

import attrs
import h2.exceptions
import trio
import trustme

from .._errors import MediaGraphError
from . import _sonic_wire as wire
from ._sonic_conversation import Conversation, Outcome

__all__ = ["SonicScript", "SonicStandin", "StandinSession"]

type Json = dict[str, Any]
_OPERATION: Final = "/invoke-with-bidirectional-stream"


@final
@attrs.frozen(kw_only=True)
class SonicScript:
    """What the stand-in does in one session (one bidirectional stream request).

    Attributes:
        fail: a failure before the stream is ready: ``"reset"`` RST_STREAM before the response headers (the SDK's
            ``await_output`` never returns); ``"status"`` HTTP 400 with ``x-amzn-errortype`` (``await_output``
            raises); ``"exception"`` headers 200, then an exception message first (``receive`` raises).
        fail_type: the lowerCamel exception member for ``"exception"`` (UpperCamel-ized as the errortype for
            ``"status"``).
        ready_delay: real seconds before the response headers (a slow service).
        turn_audio: seconds of input audio (16 kHz int16) that make one user turn.
        reply_seconds: each reply's audio (24 kHz int16), sent in chunks of ``chunk_seconds``.
        barge_in: the replies (0-based, this session) interrupted after half their chunks.
        tool: each reply first asks for this tool and waits for its result.
        error_after: after this many input events accepted, an ``error_type`` exception ends the stream.
        limit_audio: after this many seconds of input audio, ``modelTimeoutException`` (the session limit).
    """

    fail: Literal["none", "reset", "status", "exception"] = attrs.field(
        default="none", validator=attrs.validators.in_(("none", "reset", "status", "exception"))
    )
    fail_type: str = "validationException"
    ready_delay: float = attrs.field(default=0.0, validator=attrs.validators.ge(0.0))
    turn_audio: float = attrs.field(default=1.0, validator=attrs.validators.gt(0.0))
    reply_seconds: float = attrs.field(default=0.6, validator=attrs.validators.gt(0.0))
    chunk_seconds: float = attrs.field(default=0.1, validator=attrs.validators.gt(0.0))
    barge_in: frozenset[int] = frozenset()
    tool: str | None = None
    error_after: int | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.ge(1)))
    error_type: str = "modelStreamErrorException"
    limit_audio: float | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.gt(0.0)))


@final
class StandinSession:
    """What one request did: what it sent, what the stand-in answered, how it ended (tests read these)."""

    def __init__(self, index: int, script: SonicScript, path: str, headers: dict[str, str]) -> None:
        self.index = index
        self.script = script
        self.path = path  # the :path as sent (the SDK adds a trailing "?")
        self.headers = headers
        self.events: list[Json] = []  # every input event accepted, in order
        self.audio = bytearray()  # the PCM of every accepted audioInput, in order
        self.violations: list[str] = []
        self.replies = 0  # replies begun
        self.outcome: Outcome = "running"
        self.ended = trio.Event()

    def __repr__(self) -> str:
        return f"<StandinSession {self.index} {self.outcome}, {len(self.events)} events, {self.replies} replies>"


@final
class SonicStandin:
    """The stand-in service (see the module doc): session ``i`` plays ``scripts[min(i, len(scripts) - 1)]``.

    Args:
        scripts: one script for every session, or one per session (the last repeats).
        directory: where the throwaway CA is written (``sonic-standin-ca.pem``), for ``SSL_CERT_FILE``.
        port: the port on 127.0.0.1 (0: any free one).

    Each instance makes its own CA and a certificate for ``127.0.0.1`` and ``localhost``; nothing is trusted
    beyond the process that is given the CA file.
    """

    def __init__(
        self, scripts: SonicScript | Sequence[SonicScript] = SonicScript(), *, directory: pathlib.Path, port: int = 0
    ) -> None:
        self._scripts = (scripts,) if isinstance(scripts, SonicScript) else tuple(scripts)
        if not self._scripts:
            raise MediaGraphError("SonicStandin needs at least one script")
        ca = trustme.CA(organization_name="mediagraph sonic stand-in")
        self.ca_file = pathlib.Path(directory) / "sonic-standin-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(self._tls)
        self._tls.set_alpn_protocols(["h2"])
        self._port = port
        self._endpoint: str | None = None
        self.sessions: list[StandinSession] = []
        self.errors: list[str] = []  # connections that broke (TLS handshake, HTTP/2 protocol, lost)

    def __repr__(self) -> str:
        return f"<SonicStandin {self._endpoint or 'not serving'}, {len(self.sessions)} sessions>"

    @property
    def endpoint(self) -> str:
        """``https://127.0.0.1:PORT``.

        Raises:
            MediaGraphError: not serving yet.
        """
        if self._endpoint is None:
            raise MediaGraphError("the Sonic stand-in has no endpoint until serve() has started")
        return self._endpoint

    def environment(self) -> dict[str, str]:
        """What the SDK needs to use the stand-in: its endpoint, its CA, fake keys, a region."""
        return {
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": self.endpoint,
            "SSL_CERT_FILE": str(self.ca_file),
            "AWS_ACCESS_KEY_ID": "AKIDSONICSTANDINFAKE",
            "AWS_SECRET_ACCESS_KEY": "sonic-standin-fake-secret-key",
            "AWS_REGION": "us-east-1",
        }

    async def serve(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; ``task_status.started(endpoint)`` once listening. Connections and their streams
        run in this call's nursery; a broken connection ends only itself (noted in :attr:`errors`)."""
        listeners = await trio.open_tcp_listeners(self._port, host="127.0.0.1")  # OSError: the port is taken
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                functools.partial(trio.serve_listeners, self._connection, listeners, handler_nursery=nursery)
            )
            self._endpoint = f"https://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
            task_status.started(self._endpoint)

    async def _connection(self, tcp: trio.SocketStream) -> None:
        tls = trio.SSLStream(tcp, self._tls, server_side=True)
        try:
            await tls.do_handshake()
            if tls.selected_alpn_protocol() != "h2":
                self.errors.append(f"a client without ALPN h2 ({tls.selected_alpn_protocol()})")
                return
            server = wire.H2Server(tls)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(server.write)
                await server.read(functools.partial(self._request, nursery, server))
                nursery.cancel_scope.cancel()
        except* (trio.BrokenResourceError, trio.ClosedResourceError, h2.exceptions.ProtocolError) as group:
            self.errors.extend(f"{type(exc).__name__}: {exc}" for exc in group.exceptions)
        finally:
            await trio.aclose_forcefully(tls)

    def _request(
        self,
        nursery: trio.Nursery,
        server: wire.H2Server,
        stream_id: int,
        headers: dict[str, str],
        inbox: trio.MemoryReceiveChannel[bytes],
    ) -> None:
        nursery.start_soon(self._session, server, stream_id, headers, inbox)

    async def _session(
        self, server: wire.H2Server, sid: int, headers: dict[str, str], inbox: trio.MemoryReceiveChannel[bytes]
    ) -> None:
        with inbox:
            path = headers.get(":path", "")
            if headers.get(":method") != "POST" or not path.split("?")[0].endswith(_OPERATION):
                await _status(server, sid, 404, "UnknownOperationException", f"stand-in: no operation at {path}")
                return
            index = len(self.sessions)
            session = StandinSession(index, self._scripts[min(index, len(self._scripts) - 1)], path, headers)
            self.sessions.append(session)
            try:
                session.outcome = await _play(session, server, sid, inbox)
            except wire.StreamGone:
                session.outcome = "disconnected"
            finally:
                if session.outcome == "running":
                    session.outcome = "disconnected"
                session.ended.set()


async def _play(
    session: StandinSession, server: wire.H2Server, sid: int, inbox: trio.MemoryReceiveChannel[bytes]
) -> Outcome:
    script = session.script
    if script.ready_delay:
        await trio.sleep(script.ready_delay)
    if script.fail == "reset":
        server.reset(sid)
        return "reset"
    message = f"stand-in: scripted {script.fail_type}"
    if script.fail == "status":
        await _status(server, sid, 400, script.fail_type[:1].upper() + script.fail_type[1:], message)
        return "status"
    server.respond(
        sid, 200, {"content-type": "application/vnd.amazon.eventstream", "x-amzn-requestid": f"standin-{session.index}"}
    )
    if script.fail == "exception":
        await server.send(sid, wire.exception(script.fail_type, message))
        server.end(sid)
        return "exception"
    return await Conversation(session, server, sid).run(inbox)


async def _status(server: wire.H2Server, sid: int, status: int, error_type: str, message: str) -> None:
    """An HTTP error response, as the service's front end sends it."""
    server.respond(sid, status, {"content-type": "application/json", "x-amzn-errortype": error_type})
    await server.send(sid, json.dumps({"message": message}).encode())
    server.end(sid)


# --- command line ---------------------------------------------------------------------------------------------


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {text}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535, not {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module doc); its exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m mediagraph.testing.sonic_standin",
        description="A local stand-in of Amazon Bedrock's Nova Sonic service. Prints the environment to export, "
        "then serves until Ctrl-C.",
    )
    parser.add_argument("--port", type=_port, default=0, help="port on 127.0.0.1 (default: any free port)")
    parser.add_argument("--dir", type=pathlib.Path, default=None, help="where to write the CA (default: a temp dir)")
    parser.add_argument("--turn-audio", type=_seconds, default=1.0, help="seconds of input audio per user turn")
    parser.add_argument("--reply-seconds", type=_seconds, default=0.6, help="seconds of audio in each reply")
    args = parser.parse_args(argv)
    directory = args.dir or pathlib.Path(tempfile.mkdtemp(prefix="sonic-standin-"))
    if not directory.is_dir():
        parser.error(f"--dir {directory}: not a directory")
    script = SonicScript(turn_audio=args.turn_audio, reply_seconds=args.reply_seconds)
    standin = SonicStandin(script, directory=directory, port=args.port)

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(standin.serve)
            for name, value in standin.environment().items():
                print(f"export {name}={shlex.quote(value)}", flush=True)
            print(f"# serving at {standin.endpoint}; Ctrl-C to stop", file=sys.stderr, flush=True)

    status = 0
    try:
        trio.run(run)
    except* OSError as group:  # the port is taken, or not ours to bind
        print(f"sonic_standin: cannot serve: {group.exceptions[0]}", file=sys.stderr)
        status = 1
    except* KeyboardInterrupt:
        pass
    return status


if __name__ == "__main__":
    sys.exit(main())
