"""The Nova Sonic stand-in's conversations: one session's script played on its stream (reading the input and
holding it to the service's rules, replying, failing as scripted). What a reply is, is in
:mod:`mediagraph.testing.sonic_standin`'s doc; the wire is :mod:`mediagraph.testing._sonic_wire`."""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING, Any, Final, Literal, final

import numpy as np
import trio

from . import _sonic_wire as wire
from ._sonic_rules import SonicInputChecker, SonicRuleError

if TYPE_CHECKING:
    from .sonic_standin import StandinSession

__all__ = ["Conversation", "Outcome"]

type Json = dict[str, Any]
type Outcome = Literal[
    "running", "completed", "reset", "status", "exception", "error_after", "limit", "violation", "disconnected"
]

INPUT_RATE: Final = 16000
OUTPUT_RATE: Final = 24000
_TONE_HZ: Final = 440.0


def _tone(seconds: float) -> bytes:
    """A deterministic 440 Hz tone, 24 kHz mono int16."""
    t = np.arange(round(seconds * OUTPUT_RATE)) / OUTPUT_RATE
    return (8000 * np.sin(2 * np.pi * _TONE_HZ * t)).astype("<i2").tobytes()


@final
class Conversation:
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
        self._session_id = f"standin-session-{session.index}"
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
                    await self._emit("completionEnd", sessionId=self._session_id, stopReason="END_TURN")
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
            await self._emit("completionStart", sessionId=self._session_id)
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
