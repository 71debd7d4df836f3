"""``nova_sonic``: speech to speech with Amazon Nova Sonic, over Bedrock's bidirectional stream.

Theory of operation. The SDK is asyncio code; it runs on an asyncio loop thread (``mg.AsyncioLoop``, the
graph's ``asyncio`` resource or the node's own) and the node calls it one coroutine at a time
(:mod:`._sonic_client`), each call under a deadline, so nothing the node does waits on the SDK unbounded. Three
trio-free cores decide everything else: :class:`~._sonic_protocol.SonicInput` writes the input events (an
illegal order cannot be expressed), :class:`~._sonic_output.SonicOutput` reads the output events,
:class:`~._sonic_core.SonicConversation` turns them into messages and keeps the history.

Tasks, all in the node's nursery: two inlet readers (audio converted to 16 kHz mono, text turns), started once
the first session is ready, hand each item to the **writer** (unbuffered, so a failed node has taken at most
one item per inlet that it did not send), which sends it to the current session, a send that stalls for
``ready_timeout`` failing the node; each session has a **reader** that feeds the output through the
conversation into one ordered outbox, sent by one **sender**; the **renewer** opens
the next session when the current one is ``renew_after`` old or the service ended it at its limit
(``ModelTimeoutException``), makes it current, and retires the old one in the background: its last events,
the end of its input, the rest of its output, each bounded by ``close_timeout``. The writer takes the current
session for each item, so every chunk of audio goes to exactly one session, in order: a planned renewal loses
and repeats nothing. A session the service ended (at its limit) takes no more audio: what the writer had
handed the SDK after the service's end is lost with it (counted in the close event's ``unsent``).

Known limits: during a renewal the old session's reader goes on reading its output, so a reply it was still
giving goes out, and if the new session answers before that reply's audio has all arrived, each chunk ends the
other's segment; the history replayed to the new session leaves out a turn the old one is still giving.

Failure: a session that is not ready within ``ready_timeout`` (the SDK's wait for the response headers never
ends when the stream is reset first), an error status, an exception from the service, a protocol error, an
unexpected end of the output: each fails the node with a ``ProviderError`` naming the session and the
service's exception type, raised by the task that saw it, which cancels the others; every session still open is
then closed (bounded) and its asyncio tasks reaped. Credentials are the SDK's business: nothing here reads or
logs them, and error messages are scrubbed of the keys in the environment.

Events: ``sonic_session_opened`` (session, history: turns replayed), ``sonic_ready`` (session, after: seconds),
``sonic_tool_use`` (session, tool, tool_use_id), ``sonic_tool_result_dropped`` (tool_use_id, reason),
``sonic_barge_in`` (session), ``sonic_text`` (session, role, text: a final transcript of the user or of what the
assistant said), ``sonic_session_closed`` (session, reason: renewed, limit, completed, failed or cancelled;
clean; audio: seconds of the user's audio it took; unsent: seconds handed to the SDK after the service ended
the session; stuck: its asyncio tasks that would not end when reaped; error: the exception type, when failed).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, final

import attrs
import trio
import trio.lowlevel

import mediagraph as mg

from ._outbox import Outbox
from ._realtime import virtual_clock
from ._sonic_client import SonicStream
from ._sonic_config import NovaSonicConfig, Tool
from ._sonic_core import Emit, InputAudio, SonicConversation, ToolCall, ToolResult
from ._sonic_output import BargeIn, Out, SonicOutputError, Text, ToolUse
from ._sonic_protocol import INPUT_RATE, SonicInput
from ._sonic_session import LIMIT_EXCEPTION, Session, describe, scrub
from ._speech_core import TextBuffer

if TYPE_CHECKING:
    from mediagraph import AsyncioLoop

__all__ = ["NovaSonic", "NovaSonicConfig", "Tool", "ToolCall", "ToolResult"]

type _Item = tuple[str, bytes | str]


@final
@mg.node_type("nova_sonic", config=NovaSonicConfig, examples={"tools: [{name: clock}]": {"tools": [{"name": "clock"}]}})
class NovaSonic(mg.Actor):
    """A conversation with Nova Sonic: the user's audio and text in, the assistant's speech and text out.

    Inlets: ``audio`` (the user's voice, any rate and channel count), ``text`` (user text turns: chunks joined,
    a ``Flush`` ends a turn); at least one. Outlets: ``audio`` (the assistant's speech, mono at ``sample_rate``,
    48 kHz by default, a ``Flush`` after each segment), ``text`` (the assistant's text of each segment, sent
    before its audio, a ``Flush`` after it), ``user_text`` (the service's final transcript of each user turn,
    with a ``Flush``), ``control`` (an ``Interrupt`` at each barge-in, also sent in order on ``audio`` and
    ``text``). With ``tools``: the outlet ``tool_calls`` (a :class:`ToolCall` each time the assistant calls a
    tool) and the feedback inlet ``tool_results`` (the :class:`ToolResult` of each call).

    Raises:
        mg.ProviderError: a session failed (see the module doc); the message names the node, the session and
            the service's exception type.

    Cancellation: every open session is closed and its asyncio tasks reaped, shielded and bounded by
    ``close_timeout`` and the loop's ``cancel_timeout``. Resource handling: a ``loop`` resource is the graph's;
    otherwise the node's own loop thread is closed (joined, bounded) when it ends.
    """

    @staticmethod
    def ports(config: NovaSonicConfig) -> mg.Ports:
        ports = mg.Ports(
            inlets=[
                mg.InletSpec(name="audio", required=False),
                mg.InletSpec(name="text", types=mg.TextChunk, required=False),
            ],
            outlets=[
                mg.OutletSpec(name="audio", format=mg.AudioFormat(sample_rate=config.sample_rate, channels=1)),
                mg.OutletSpec(name="text", types=mg.TextChunk),
                mg.OutletSpec(name="user_text", types=mg.TextChunk),
                mg.OutletSpec(name="control", types=mg.Interrupt),
            ],
            one_of=[("audio", "text")],
        )
        if not config.tools:
            return ports
        return attrs.evolve(
            ports,
            inlets=[*ports.inlets, mg.InletSpec(name="tool_results", types=ToolResult, feedback=True)],
            outlets=[*ports.outlets, mg.OutletSpec(name="tool_calls", types=ToolCall)],
        )

    def __init__(self, config: NovaSonicConfig) -> None:
        self.config = config
        self.sessions = 0
        self._open: dict[int, Session] = {}

    def __repr__(self) -> str:
        return f"<NovaSonic {self.config.model} sessions={self.sessions} open={sorted(self._open)}>"

    async def run(self, io: mg.NodeIO) -> None:
        self._io = io
        cfg = self.config
        if virtual_clock():
            raise mg.ProviderError(
                f"node {io.name!r} (nova_sonic): a network service answers in real time; on a virtual clock, "
                "which jumps ahead whenever the graph waits, every deadline on it would pass at once (run it on "
                "the real clock)"
            )
        self.sessions = 0
        self._conversation = SonicConversation(history=cfg.history, frame_len=cfg.frame_len, rate=cfg.sample_rate)
        self._outbox = Outbox[Emit]()
        self._current: Session | None = None
        self._switched = trio.Event()
        self._tool_calls: dict[str, int] = {}  # tool use id -> the session that asked
        own: AsyncioLoop | None = None
        if cfg.loop is None:
            self._loop = own = mg.AsyncioLoop()
        else:
            self._loop = io.resource(cfg.loop)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._outbox.drain, self._send)
                async with trio.open_nursery() as inner:
                    # Nothing is taken from the inlets before a session is ready: a node that fails (and is
                    # restarted) before then has lost nothing; later, one item per inlet at most is in hand.
                    self._current = await self._start(1, inner)
                    items, queue = trio.open_memory_channel[_Item](0)
                    async with items:
                        inner.start_soon(self._read_audio, items.clone())
                        inner.start_soon(self._read_text, items.clone())
                    tools = trio.CancelScope()  # the results' inlet ends only after the node (a cycle): cancelled
                    if cfg.tools:
                        inner.start_soon(self._read_tool_results, tools)
                    await self._converse(queue, inner)
                    tools.cancel()
                self._outbox.close()
        finally:
            with trio.CancelScope(shield=True):
                try:
                    for session in list(self._open.values()):
                        await self._abandon(session, "failed" if session.error else "cancelled")
                finally:
                    if own is not None:
                        await trio.to_thread.run_sync(own.close)

    # --- the inlets ------------------------------------------------------------------------------------------

    async def _read_audio(self, items: trio.MemorySendChannel[_Item]) -> None:
        convert = InputAudio()
        async with items:
            async for msg in self._io.inlets["audio"]:
                if isinstance(msg, mg.AudioFrame) and (pcm := convert.convert(msg)):
                    await items.send(("audio", pcm))
            if pcm := convert.end():
                await items.send(("audio", pcm))

    async def _read_text(self, items: trio.MemorySendChannel[_Item]) -> None:
        text = TextBuffer()
        async with items:
            async for msg in self._io.inlets["text"]:
                if isinstance(msg, mg.TextChunk):
                    text.add(msg)
                elif isinstance(msg, mg.Flush) and (turn := text.flush()).strip():
                    await items.send(("text", turn))
            if (turn := text.flush()).strip():
                await items.send(("text", turn))

    # --- the writer and the renewer ------------------------------------------------------------------------

    async def _converse(self, queue: trio.MemoryReceiveChannel[_Item], nursery: trio.Nursery) -> None:
        renewals = trio.CancelScope()
        nursery.start_soon(self._renew, nursery, renewals)
        async with queue:
            async for kind, data in queue:
                await self._write(kind, data)
        await self._io.sleep_until(self._io.time() + self.config.reply_grace)  # the reply to the last words
        renewals.cancel()
        current = self._current
        if current is not None and not current.closed:
            await self._retire(current, "completed")

    async def _write(self, kind: str, data: bytes | str) -> None:
        while True:
            session = await self._live()
            async with session.lock:
                if session.ended.is_set() or session.closed:
                    continue  # it ended while the writer waited for it: the next one takes this item
                if isinstance(data, bytes):
                    if await self._send_events(session, session.input.audio(data)):
                        session.audio += len(data)
                    else:  # the session ended while the SDK held this audio
                        session.unsent += len(data)
                else:
                    self._conversation.user_said(data)
                    await self._send_events(session, session.input.text(data))
                return

    async def _send_events(self, session: Session, events: list[dict[str, Any]]) -> bool:
        """Send events to a session (its lock held); whether they went before it ended.

        Raises:
            mg.ProviderError: the SDK took nothing for ``ready_timeout`` (a stream that stalled unseen).
        """
        limit = self.config.ready_timeout
        with trio.CancelScope() as session.sending:
            try:
                with trio.fail_after(limit):
                    await self._call(session, session.stream.send, events)
            except trio.TooSlowError:
                session.error = "Stalled"
                raise self._error(session, f"the service took no input for {limit} s") from None
            return True
        return False

    async def _read_tool_results(self, scope: trio.CancelScope) -> None:
        """Each tool's result to the session that asked for it (dropped, and logged, if it has ended)."""
        with scope:
            async for msg in self._io.inlets["tool_results"]:
                if not isinstance(msg, ToolResult):
                    continue
                number = self._tool_calls.pop(msg.tool_use_id, None)
                session = self._open.get(number) if number is not None else None
                if session is None:
                    why = "no such call" if number is None else "its session ended"
                    self._io.log("sonic_tool_result_dropped", tool_use_id=msg.tool_use_id, reason=why)
                    continue
                async with session.lock:
                    if session.closed or session.ended.is_set():  # checked under the lock: it may have just ended
                        self._io.log(
                            "sonic_tool_result_dropped", tool_use_id=msg.tool_use_id, reason="its session ended"
                        )
                        continue
                    await self._send_events(session, session.input.tool_result(msg.tool_use_id, msg.content))

    async def _live(self) -> Session:
        """The session to write to: the current one, or the next once it is open (its opening is bounded)."""
        while self._current is None or self._current.ended.is_set():
            await self._switched.wait()
        return self._current

    async def _renew(self, nursery: trio.Nursery, renewals: trio.CancelScope) -> None:
        with renewals:
            while True:
                old = self._current
                assert old is not None
                with trio.move_on_at(old.renew_at):
                    await old.ended.wait()
                if old.ended.is_set() and not old.limit:
                    return  # it failed, and its reader raised; or it completed
                new = await self._start(old.number + 1, nursery)
                self._current = new
                self._switched.set()
                self._switched = trio.Event()
                nursery.start_soon(self._retire, old, "limit" if old.limit else "renewed")

    # --- one session ---------------------------------------------------------------------------------------

    async def _start(self, number: int, nursery: trio.Nursery) -> Session:
        """Open session ``number`` and start its reader; it is ready (or the node fails) within
        ``ready_timeout``."""
        cfg, io = self.config, self._io
        history = self._conversation.history()
        stream = SonicStream(model=cfg.model, region=cfg.region, endpoint=cfg.endpoint, ca_file=_str(cfg.ca_file))
        sonic_input = SonicInput(
            prompt=f"prompt-{number}",
            instructions=cfg.instructions,
            history=history,
            voice=cfg.voice,
            tools=[tool.spec() for tool in cfg.tools],
        )
        session = Session(number=number, stream=stream, input=sonic_input, opened=io.time())
        self._open[number] = session
        self.sessions = max(self.sessions, number)
        io.log("sonic_session_opened", session=number, history=len(history))
        try:
            with trio.fail_after(cfg.ready_timeout):
                await self._call(session, stream.open, sonic_input.open())
        except trio.TooSlowError:
            session.error = "NotReady"
            reaped = await self._abandon(session, "failed")
            said = f" (the SDK said: {'; '.join(reaped)})" if reaped else ""
            raise self._error(session, f"not ready within {cfg.ready_timeout} s{said}") from None
        except Exception as exc:
            session.error = type(exc).__name__
            await self._abandon(session, "failed")
            raise self._error(session, describe(exc)) from None
        except BaseException:  # cancelled while opening: the node stops, or the renewal was not needed
            await self._abandon(session, "cancelled")
            raise
        io.log("sonic_ready", session=number, after=round(io.time() - session.opened, 3))
        session.renew_at = trio.current_time() + cfg.renew_after
        nursery.start_soon(self._read, session)
        return session

    async def _read(self, session: Session) -> None:
        with session.reader:
            try:
                while (event := await self._call(session, session.stream.receive)) is not None:
                    outs = session.output.feed(event)
                    await self._outbox.put(functools.partial(self._decide, session, outs))
            except mg.ProviderError:  # raised by this node's own checks (in _decide): already says it all
                self._stop(session)
                session.error = "ProtocolError"
                raise
            except Exception as exc:
                self._stop(session)
                session.error = type(exc).__name__
                if session.closed:
                    return  # closing: what it says now changes nothing (the close event names it)
                if session.error == LIMIT_EXCEPTION:
                    session.limit = True
                    return  # the renewer opens the next session
                raise self._error(session, str(exc) if isinstance(exc, SonicOutputError) else describe(exc)) from None
            self._stop(session)
            if not session.closed:
                raise self._error(session, "the service ended the stream unasked")

    def _decide(self, session: Session, outs: list[Out]) -> list[Emit]:
        """What the session's output gives, decided (and logged) when the outbox has room for it."""
        io, now, emits = self._io, self._io.time(), []
        for out in outs:
            if isinstance(out, BargeIn):
                io.log("sonic_barge_in", session=session.number)
            elif isinstance(out, Text) and out.final:
                io.log("sonic_text", session=session.number, role=out.role, text=out.text)
            elif isinstance(out, ToolUse):
                io.log("sonic_tool_use", session=session.number, tool=out.name, tool_use_id=out.tool_use_id)
                if not self.config.tools:
                    raise self._error(session, f"the service called tool {out.name!r}, but the node has no tools")
                self._tool_calls[out.tool_use_id] = session.number
            emits += self._conversation.feed(out, now)
        return emits

    def _stop(self, session: Session) -> None:
        """The session takes nothing more: its output ended or failed."""
        session.ended.set()
        if session.sending is not None:
            session.sending.cancel()

    async def _retire(self, session: Session, reason: str) -> None:
        """Close a session cleanly (bounded), then release it."""
        clean = False
        with trio.move_on_after(self.config.close_timeout):
            await session.lock.acquire()  # after the writer's send under way, if any
        if not session.lock.locked():  # that send is stuck: it is given up (its audio counted unsent)
            if session.sending is not None:
                session.sending.cancel()
            await session.lock.acquire()
        try:
            session.closed = True
            with trio.move_on_after(self.config.close_timeout):
                if not session.ended.is_set():
                    await self._call(session, session.stream.send, session.input.close())
                    await self._call(session, session.stream.end_input)
                await session.ended.wait()
                clean = not session.limit
        finally:
            session.lock.release()
        await self._abandon(session, reason, clean=clean)

    async def _abandon(self, session: Session, reason: str, *, clean: bool = False) -> list[str]:
        """Stop its reader, close its client and reap its asyncio tasks (shielded, bounded); log it closed.
        What its failed background tasks said."""
        if self._open.pop(session.number, None) is None:
            return []
        session.closed = True
        session.reader.cancel()
        with trio.CancelScope(shield=True):
            with trio.move_on_after(self.config.close_timeout):
                with contextlib.suppress(Exception):
                    await self._call(session, session.stream.close)
            try:
                reaped = await self._loop.reap(("nova_sonic", id(self), session.number))
            except mg.MediaGraphError as exc:  # the loop thread is blocked: say so, and go on closing
                reaped = mg.Reaped(left=-1, errors=(str(exc),))
        fields: dict[str, Any] = {"error": session.error} if session.error else {}
        self._io.log(
            "sonic_session_closed",
            session=session.number,
            reason=reason,
            clean=clean,
            audio=round(session.audio / 2 / INPUT_RATE, 3),
            unsent=round(session.unsent / 2 / INPUT_RATE, 3),
            stuck=reaped.left,
            **fields,
        )
        return [scrub(e) for e in reaped.errors]

    async def _call[T](self, session: Session, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        with self._loop.session(("nova_sonic", id(self), session.number)):
            return await self._loop.call(fn, *args)

    def _error(self, session: Session, what: str) -> mg.ProviderError:
        said = scrub(what)  # before it is cut short: a key across the cut would leave its head
        said = said if len(said) <= 400 else said[:397] + "..."
        return mg.ProviderError(f"node {self._io.name!r} (nova_sonic): session {session.number}: {said}")

    async def _send(self, emit: Emit) -> None:
        port, msg = emit
        await self._io.outlets[port].send(msg)


def _str(value: object) -> str | None:
    return None if value is None else str(value)
