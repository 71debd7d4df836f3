"""Nova Sonic's input protocol, as a state machine in which an illegal order cannot be expressed.

No trio, no SDK, no I/O: :class:`SonicInput` turns what a node wants to say (open the session with its
instructions and history, a chunk of the user's audio, a user text turn, a tool result, close) into the JSON
input events to send, in order; :func:`mediagraph.testing.check_sonic_input` is the service's side of the
same rules, written independently from the event list alone (the tests hold one against the other, the stand-in
service enforces it).

The rules (AWS's input-event guide; the field names are in ``docs/notes/issue16-nova-sonic-research.md``):

- A session is ``sessionStart``, ``promptStart``, then content blocks, then ``promptEnd``, ``sessionEnd``.
  Each content block is ``contentStart`` .. its inputs .. ``contentEnd``, and blocks never interleave.
- The first block is the SYSTEM text (the instructions), then the history: USER or ASSISTANT text blocks, each
  non-interactive. All of it is sent before the first audio ("Chat history should be sent completely before
  streaming audio").
- Audio goes in one USER AUDIO block (interactive) at a time; it stays open across chunks. A user text turn or a
  tool result is a whole block of its own, so an open audio block is closed before it (the next chunk of audio
  opens a new one): audio never lands inside a text or tool block.
- Nothing follows ``sessionEnd``; every open block is closed first.

Content names are ``{prompt}-{n}``, counted: the same calls give the same events, byte for byte.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any, Final, Literal, final

import attrs

import mediagraph as mg

__all__ = ["INPUT_RATE", "OUTPUT_RATE", "SonicInput", "SonicOrderError", "Turn"]

#: The input audio the service takes (16 kHz mono 16-bit) and the speech it returns (24 kHz).
INPUT_RATE: Final = 16000
OUTPUT_RATE: Final = 24000

type Event = dict[str, Any]


@final
class SonicOrderError(mg.MediaGraphError):
    """An input event out of the protocol's order (the rule it breaks is in the message)."""


@final
@attrs.frozen
class Turn:
    """One message of the history: ``role`` ``user`` or ``assistant``, and its text."""

    role: Literal["user", "assistant"] = attrs.field(validator=attrs.validators.in_(("user", "assistant")))
    text: str


def _event(name: str, **body: Any) -> Event:
    return {"event": {name: body}}


@final
class SonicInput:
    """The input side of one session. Each method returns the events to send now, in order, or raises
    :class:`SonicOrderError` having changed nothing.

    Args:
        prompt: the prompt's name (content names derive from it).
        instructions: the system prompt.
        history: the conversation so far (replayed when a session is renewed).
        voice: the output voice id.
        tools: tool specs (``{"name", "description", "schema"}`` with ``schema`` a JSON schema dict).
    """

    def __init__(
        self,
        *,
        prompt: str = "prompt",
        instructions: str = "",
        history: Sequence[Turn] = (),
        voice: str = "matthew",
        tools: Sequence[dict[str, Any]] = (),
    ) -> None:
        self.prompt = prompt
        self.instructions = instructions
        self.history = tuple(history)
        self.voice = voice
        self.tools = tuple(tools)
        self.state: Literal["new", "open", "closed"] = "new"
        self.audio_block: str | None = None  # the open audio block's content name
        self._count = 0

    def __repr__(self) -> str:
        return f"<SonicInput {self.prompt} {self.state} audio={self.audio_block}>"

    def open(self) -> list[Event]:
        """sessionStart, promptStart, the system block and the history blocks."""
        self._need("new", "open")
        out = [
            _event("sessionStart", inferenceConfiguration={"maxTokens": 1024, "topP": 0.9, "temperature": 0.7}),
            _event("promptStart", promptName=self.prompt, **self._output_config()),
            *self._text_block("SYSTEM", self.instructions),
        ]
        for turn in self.history:
            out += self._text_block(turn.role.upper(), turn.text)
        self.state = "open"
        return out

    def audio(self, pcm: bytes) -> list[Event]:
        """A chunk of the user's audio (16 kHz mono int16 bytes), in the open audio block (opened if none)."""
        self._need("open", "audio")
        if len(pcm) % 2:
            raise SonicOrderError(f"audio: {len(pcm)} bytes is not a whole number of 16-bit samples")
        out: list[Event] = []
        if self.audio_block is None:
            self.audio_block = name = self._name()
            config = {
                "mediaType": "audio/lpcm",
                "sampleRateHertz": INPUT_RATE,
                "sampleSizeBits": 16,
                "channelCount": 1,
                "audioType": "SPEECH",
                "encoding": "base64",
            }
            out.append(self._start(name, "AUDIO", "USER", interactive=True, audioInputConfiguration=config))
        content = base64.b64encode(pcm).decode("ascii")
        out.append(_event("audioInput", promptName=self.prompt, contentName=self.audio_block, content=content))
        return out

    def text(self, text: str) -> list[Event]:
        """A user text turn: a whole interactive USER text block (an open audio block is closed first)."""
        self._need("open", "text")
        return self._end_audio() + self._text_block("USER", text, interactive=True)

    def tool_result(self, tool_use_id: str, result: Any) -> list[Event]:
        """The result of a tool the service asked for: a whole TOOL block (an open audio block closed first)."""
        self._need("open", "tool_result")
        name = self._name()
        config = {"toolUseId": tool_use_id, "type": "TEXT", "textInputConfiguration": {"mediaType": "text/plain"}}
        return [
            *self._end_audio(),
            self._start(name, "TOOL", "TOOL", interactive=False, toolResultInputConfiguration=config),
            _event("toolResult", promptName=self.prompt, contentName=name, content=json.dumps(result)),
            _event("contentEnd", promptName=self.prompt, contentName=name),
        ]

    def close(self) -> list[Event]:
        """The open audio block's end, promptEnd, sessionEnd; nothing after (closing twice gives nothing)."""
        if self.state == "closed":
            return []
        if self.state == "new":
            self.state = "closed"
            return []
        out = [*self._end_audio(), _event("promptEnd", promptName=self.prompt), _event("sessionEnd")]
        self.state = "closed"
        return out

    # --- blocks ---------------------------------------------------------------------------------------------

    def _need(self, state: str, what: str) -> None:
        if self.state != state:
            raise SonicOrderError(f"{what}: the session is {self.state}, not {state}")

    def _name(self) -> str:
        self._count += 1
        return f"{self.prompt}-{self._count}"

    def _start(self, name: str, kind: str, role: str, *, interactive: bool, **config: Any) -> Event:
        return _event(
            "contentStart",
            promptName=self.prompt,
            contentName=name,
            type=kind,
            interactive=interactive,
            role=role,
            **config,
        )

    def _text_block(self, role: str, text: str, *, interactive: bool = False) -> list[Event]:
        name = self._name()
        config = {"textInputConfiguration": {"mediaType": "text/plain"}}
        return [
            self._start(name, "TEXT", role, interactive=interactive, **config),
            _event("textInput", promptName=self.prompt, contentName=name, content=text),
            _event("contentEnd", promptName=self.prompt, contentName=name),
        ]

    def _end_audio(self) -> list[Event]:
        if self.audio_block is None:
            return []
        name, self.audio_block = self.audio_block, None
        return [_event("contentEnd", promptName=self.prompt, contentName=name)]

    def _output_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "textOutputConfiguration": {"mediaType": "text/plain"},
            "audioOutputConfiguration": {
                "mediaType": "audio/lpcm",
                "sampleRateHertz": OUTPUT_RATE,
                "sampleSizeBits": 16,
                "channelCount": 1,
                "voiceId": self.voice,
                "encoding": "base64",
                "audioType": "SPEECH",
            },
        }
        if self.tools:
            config["toolUseOutputConfiguration"] = {"mediaType": "application/json"}
            config["toolConfiguration"] = {
                "tools": [
                    {
                        "toolSpec": {
                            "name": t["name"],
                            "description": t.get("description", ""),
                            "inputSchema": {"json": json.dumps(t.get("schema", {"type": "object"}))},
                        }
                    }
                    for t in self.tools
                ]
            }
        return config
