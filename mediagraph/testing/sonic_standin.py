"""A local stand-in of Amazon Bedrock's Nova Sonic bidirectional stream service, for tests and offline runs.

The real AWS SDK talks to it unchanged: point ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` at :attr:`SonicStandin.endpoint`
and trust its throwaway CA with ``SSL_CERT_FILE`` (:meth:`SonicStandin.environment` gives both, and fake keys).
It speaks HTTP/2 over TLS (ALPN ``h2``, which the SDK's CRT transport requires) and the AWS event-stream framing
(:mod:`mediagraph.testing._sonic_wire`); the wire facts are in ``docs/notes/issue16-nova-sonic-research.md``.

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
import base64
import binascii
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
import numpy as np
import trio
import trustme

from .._errors import MediaGraphError
from . import _sonic_wire as wire
from ._sonic_rules import SonicInputChecker, SonicRuleError

__all__ = ["SonicScript", "SonicStandin", "StandinSession"]

type Json = dict[str, Any]
type Outcome = Literal[
    "running", "completed", "reset", "status", "exception", "error_after", "limit", "violation", "disconnected"
]

INPUT_RATE: Final = 16000
OUTPUT_RATE: Final = 24000
_OPERATION: Final = "/invoke-with-bidirectional-stream"
_TONE_HZ: Final = 440.0


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


def _tone(seconds: float) -> bytes:
    """A deterministic 440 Hz tone, 24 kHz mono int16."""
    t = np.arange(round(seconds * OUTPUT_RATE)) / OUTPUT_RATE
    return (8000 * np.sin(2 * np.pi * _TONE_HZ * t)).astype("<i2").tobytes()


@final
class _Conversation:
    """Plays one session's script on its stream: reads input, checks it, replies (see the module doc)."""

    def __init__(self, session: StandinSession, server: wire.H2Server, stream_id: int) -> None:
        self.session, self.script = session, session.script
        self._server, self._sid = server, stream_id
        self._checker = SonicInputChecker()
        self._lock = trio.Lock()  # one output message at a time; the stream closes under it
        self._closed = False
        self._turns_send, self._turns = trio.open_memory_channel[str | None](float("inf"))
        self._results_send, self._results = trio.open_memory_channel[tuple[str, str]](float("inf"))
        self._prompt = "prompt"
        self._completion = f"standin-completion-{session.index}"
        self._started = False  # completionStart sent
        self._contents = 0
        self._turn_samples = 0
        self._blocks: dict[str, Json] = {}  # open input blocks: content name -> contentStart body
        self._texts: dict[str, list[str]] = {}  # text gathered in open USER interactive text blocks
        self._results_of: dict[str, list[str]] = {}  # toolResult content gathered in open TOOL blocks

    async def run(self, inbox: trio.MemoryReceiveChannel[bytes]) -> Outcome:
        """Until the session ends; its outcome. The replies are a task of their own, so input is read while
        the stand-in speaks; at a clean end of input the replies due are finished first."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._replies)
            outcome = await self._read(inbox)
            self._turns_send.close()
            self._results_send.close()
            if outcome != "completed":
                nursery.cancel_scope.cancel()
        if outcome == "completed":
            try:
                if self._started:
                    await self._emit("completionEnd", stopReason="END_TURN")
                self._close()
            except wire.StreamGone:
                return "disconnected"
        return outcome

    # --- input --------------------------------------------------------------------------------------------

    async def _read(self, inbox: trio.MemoryReceiveChannel[bytes]) -> Outcome:
        decoder = wire.EnvelopeDecoder()
        input_ended = False
        async for data in inbox:
            try:
                items = decoder.feed(data)
            except wire.SonicWireError as exc:
                return await self._fail("validationException", str(exc), "violation")
            for item in items:
                if input_ended:
                    return await self._fail("validationException", "input after the end-of-input message", "violation")
                if item is wire.END_OF_INPUT:
                    input_ended = True
                elif (outcome := await self._accept(item)) is not None:
                    return outcome
        if self._server.was_reset(self._sid):
            return "disconnected"
        if self._checker.phase != "ended":
            return await self._fail("validationException", "end of input before sessionEnd", "violation")
        return "completed"

    async def _accept(self, event: Json) -> Outcome | None:
        try:
            self._checker.feed(event)
        except SonicRuleError as exc:
            return await self._fail("validationException", str(exc), "violation")
        self.session.events.append(event)
        ((name, body),) = event["event"].items()
        if name == "promptStart":
            self._prompt = str(body["promptName"])
        elif name == "contentStart":
            self._blocks[body["contentName"]] = body
        elif name == "audioInput" and (outcome := await self._audio(body["content"])) is not None:
            return outcome
        elif name == "textInput" and self._is_live_text(body["contentName"]):
            self._texts.setdefault(body["contentName"], []).append(str(body["content"]))
        elif name == "toolResult":
            self._results_of.setdefault(body["contentName"], []).append(str(body["content"]))
        elif name == "contentEnd":
            self._block_ended(body["contentName"])
        if self.script.error_after is not None and len(self.session.events) >= self.script.error_after:
            message = f"stand-in: scripted {self.script.error_type} after {self.script.error_after} events"
            return await self._fail(self.script.error_type, message, "error_after")
        return None

    async def _audio(self, content: str) -> Outcome | None:
        try:
            pcm = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            return await self._fail("validationException", "audioInput content is not base64", "violation")
        self.session.audio += pcm
        self._turn_samples += len(pcm) // 2
        per_turn = max(1, round(self.script.turn_audio * INPUT_RATE))
        while self._turn_samples >= per_turn:
            self._turn_samples -= per_turn
            self._turns_send.send_nowait(None)
        limit = self.script.limit_audio
        if limit is not None and len(self.session.audio) >= limit * INPUT_RATE * 2:
            return await self._fail("modelTimeoutException", f"stand-in: the {limit} s session limit", "limit")
        return None

    def _is_live_text(self, name: str) -> bool:
        body = self._blocks.get(name, {})
        return (body.get("type"), body.get("role"), bool(body.get("interactive"))) == ("TEXT", "USER", True)

    def _block_ended(self, name: str) -> None:
        live = self._is_live_text(name)
        body = self._blocks.pop(name, {})
        if live:
            self._turns_send.send_nowait("".join(self._texts.pop(name, [])))
        elif body.get("type") == "TOOL":
            tool_use_id = str(body.get("toolResultInputConfiguration", {}).get("toolUseId"))
            self._results_send.send_nowait((tool_use_id, "".join(self._results_of.pop(name, []))))

    async def _fail(self, member: str, message: str, outcome: Outcome) -> Outcome:
        """Send the exception message and end the stream, as the service does; return ``outcome``."""
        if outcome == "violation":
            self.session.violations.append(message)
        async with self._lock:  # after the message being sent, if any; no reply message follows
            self._closed = True
            try:
                await self._server.send(self._sid, wire.exception(member, message))
                self._server.end(self._sid)
            except wire.StreamGone:
                return "disconnected"
        return outcome

    def _close(self) -> None:
        self._closed = True
        self._server.end(self._sid)

    # --- output -------------------------------------------------------------------------------------------

    async def _replies(self) -> None:
        try:
            async for user_text in self._turns:
                n = self.session.replies
                self.session.replies += 1
                if not await self._reply(n, f"user turn {n}" if user_text is None else user_text):
                    return
        except wire.StreamGone:
            return  # the client went away: the reader sees its inbox end

    async def _reply(self, n: int, user_text: str) -> bool:
        """Reply to turn ``n``; whether it could (not: the input ended while waiting for a tool result)."""
        if not self._started:
            self._started = True
            await self._emit("completionStart", sessionId=f"standin-session-{self.session.index}")
        await self._text_block("USER", "FINAL", [user_text], "PARTIAL_TURN")
        text = f"reply {n}"
        if self.script.tool is not None:
            result = await self._use_tool(n, self.script.tool)
            if result is None:
                return False
            text = f"{text}: {result}"
        await self._text_block("ASSISTANT", "SPECULATIVE", [text], "PARTIAL_TURN")
        pcm, step = _tone(self.script.reply_seconds), 2 * max(1, round(self.script.chunk_seconds * OUTPUT_RATE))
        chunks = [pcm[i : i + step] for i in range(0, len(pcm), step)]
        interrupted = n in self.script.barge_in
        audio = await self._start("AUDIO", "ASSISTANT", "FINAL")
        for piece in chunks[: len(chunks) // 2] if interrupted else chunks:
            await self._emit("audioOutput", contentId=audio, content=base64.b64encode(piece).decode("ascii"))
        if not interrupted:
            await self._emit("contentEnd", contentId=audio, type="AUDIO", stopReason="END_TURN")
            await self._text_block("ASSISTANT", "FINAL", [text], "END_TURN")
            return True
        await self._emit("contentEnd", contentId=audio, type="AUDIO", stopReason="INTERRUPTED")
        words = text.split()
        spoken = " ".join(words[: max(1, len(words) // 2)])
        await self._text_block("ASSISTANT", "FINAL", [spoken, '{ "interrupted" : true }'], "INTERRUPTED")
        return True

    async def _use_tool(self, n: int, tool: str) -> str | None:
        tool_use_id = f"tool-{n}"
        content = await self._start("TOOL", "TOOL", "FINAL")
        await self._emit(
            "toolUse", contentId=content, toolUseId=tool_use_id, toolName=tool, content=json.dumps({"turn": n})
        )
        await self._emit("contentEnd", contentId=content, type="TOOL", stopReason="TOOL_USE")
        async for answered, result in self._results:
            if answered == tool_use_id:
                return result
        return None

    async def _text_block(self, role: str, stage: str, texts: list[str], stop: str) -> None:
        content = await self._start("TEXT", role, stage)
        for text in texts:
            await self._emit("textOutput", contentId=content, content=text, role=role)
        await self._emit("contentEnd", contentId=content, type="TEXT", stopReason=stop)

    async def _start(self, kind: str, role: str, stage: str) -> str:
        self._contents += 1
        content = f"standin-{self.session.index}-content-{self._contents}"
        fields = json.dumps({"generationStage": stage})
        await self._emit("contentStart", contentId=content, type=kind, role=role, additionalModelFields=fields)
        return content

    async def _emit(self, name: str, **body: Any) -> None:
        """One output event (with the prompt's and completion's names), whole: an ending waits for the lock."""
        message = wire.chunk({"event": {name: {"promptName": self._prompt, "completionId": self._completion, **body}}})
        async with self._lock:
            if self._closed:  # the stream has ended with an exception: the reader cancels this task
                await trio.sleep_forever()
            await self._server.send(self._sid, message)


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
        async with trio.open_nursery() as nursery:
            serve = functools.partial(trio.serve_tcp, self._connection, self._port, host="127.0.0.1")
            listeners: list[trio.SocketListener] = await nursery.start(
                functools.partial(serve, handler_nursery=nursery)
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
    return await _Conversation(session, server, sid).run(inbox)


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

    try:
        trio.run(run)
    except OSError as exc:
        print(f"sonic_standin: cannot serve: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
