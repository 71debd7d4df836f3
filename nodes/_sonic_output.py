"""Nova Sonic's output events, read into what a node acts on.

No trio, no SDK: :class:`SonicOutput` takes each JSON output event (already decoded from its event-stream
chunk) and returns what it means, in order:

- :class:`Speech`: the assistant's audio (24 kHz mono int16 bytes), of one content block.
- :class:`Text`: text of a content block: ``role`` ``user`` (the service's transcript of the user) or
  ``assistant``; ``final`` is whether the block's generation stage is FINAL (what was actually said), else
  SPECULATIVE (what the assistant plans to say, before its audio).
- :class:`BargeIn`: the user spoke over the assistant: the service says so twice (a ``textOutput`` whose content
  is ``{"interrupted": true}`` and an INTERRUPTED ``contentEnd``); it is reported once per assistant turn. Speech
  that still arrives for an assistant audio block open at that moment is stale: it is dropped (``dropped``).
- :class:`TurnEnd`: an assistant audio block ended (``stop_reason``: END_TURN, PARTIAL_TURN, INTERRUPTED).
- :class:`ToolUse`: the service asks for a tool (its id, name and the arguments, parsed).

A malformed event (content that is not base64 of whole samples, tool arguments that are not JSON, an event
about a block never started) raises :class:`SonicOutputError` naming the event: the service broke its own
protocol, and the session cannot be trusted further. Events the node has no use for (completionStart,
completionEnd, usageEvent) give nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Literal, final

import attrs

import mediagraph as mg

__all__ = ["BargeIn", "Out", "SonicOutput", "SonicOutputError", "Speech", "Text", "ToolUse", "TurnEnd"]


@final
class SonicOutputError(mg.MediaGraphError):
    """An output event that breaks the service's own protocol."""


@final
@attrs.frozen
class Speech:
    content: str
    pcm: bytes


@final
@attrs.frozen
class Text:
    content: str
    role: Literal["user", "assistant"]
    final: bool
    text: str


@final
@attrs.frozen
class BargeIn:
    content: str


@final
@attrs.frozen
class TurnEnd:
    content: str
    stop_reason: str


@final
@attrs.frozen
class ToolUse:
    tool_use_id: str
    name: str
    arguments: Any


type Out = Speech | Text | BargeIn | TurnEnd | ToolUse

_IGNORED = frozenset({"completionStart", "completionEnd", "usageEvent"})


@final
@attrs.frozen
class _Block:
    kind: str
    role: str
    final: bool
    cut: bool = False  # an assistant audio block open at a barge-in: its later speech is stale


@final
class SonicOutput:
    """Reads one session's output events (see the module doc)."""

    def __init__(self) -> None:
        self._blocks: dict[str, _Block] = {}
        self._barged = False  # a barge-in was reported for the current assistant turn
        self.ignored = 0  # events of kinds it does not know
        self.dropped = 0  # speech chunks of blocks a barge-in cut

    def __repr__(self) -> str:
        return f"<SonicOutput blocks={len(self._blocks)} barged={self._barged}>"

    def feed(self, event: dict[str, Any]) -> list[Out]:
        """What one output event (``{"event": {NAME: {...}}}``) means.

        Raises:
            SonicOutputError: the event is malformed (see the module doc).
        """
        try:
            ((name, body),) = event["event"].items()
        except (KeyError, TypeError, ValueError, AttributeError):
            raise SonicOutputError(
                f"an output event that is not {{'event': {{NAME: {{...}}}}}}: {event!r:.80}"
            ) from None
        if name in _IGNORED:
            return []
        handler = getattr(self, f"_on_{name}", None)
        if handler is None:
            self.ignored += 1
            return []
        try:
            result: list[Out] = handler(body)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # ValueError: JSON that does not parse
            raise SonicOutputError(
                f"output event {name}: missing or malformed field ({type(exc).__name__}: {exc})"
            ) from None
        return result

    def _on_contentStart(self, body: dict[str, Any]) -> list[Out]:
        stage = json.loads(body.get("additionalModelFields") or "{}").get("generationStage", "FINAL")
        role = str(body["role"]).lower()
        if role == "assistant" and body["type"] == "AUDIO":
            self._barged = False  # a new assistant turn speaks
        self._blocks[body["contentId"]] = _Block(kind=body["type"], role=role, final=stage == "FINAL")
        return []

    def _on_textOutput(self, body: dict[str, Any]) -> list[Out]:
        block = self._block(body["contentId"], "textOutput")
        content = body["content"]
        if _is_interruption(content):
            return self._barge_in(body["contentId"])
        role: Literal["user", "assistant"] = "user" if block.role == "user" else "assistant"
        return [Text(content=body["contentId"], role=role, final=block.final, text=content)]

    def _on_audioOutput(self, body: dict[str, Any]) -> list[Out]:
        if self._block(body["contentId"], "audioOutput").cut:
            self.dropped += 1
            return []
        try:
            pcm = base64.b64decode(body["content"], validate=True)
        except (binascii.Error, ValueError):
            raise SonicOutputError("output event audioOutput: content is not base64") from None
        if len(pcm) % 2:
            raise SonicOutputError(f"output event audioOutput: {len(pcm)} bytes is not whole 16-bit samples")
        return [Speech(content=body["contentId"], pcm=pcm)]

    def _on_contentEnd(self, body: dict[str, Any]) -> list[Out]:
        content = body["contentId"]
        block = self._block(content, "contentEnd")
        del self._blocks[content]
        reason = str(body.get("stopReason", ""))
        out: list[Out] = self._barge_in(content) if reason == "INTERRUPTED" else []
        if block.kind == "AUDIO" and block.role == "assistant":
            out.append(TurnEnd(content=content, stop_reason=reason))
        return out

    def _on_toolUse(self, body: dict[str, Any]) -> list[Out]:
        try:
            arguments = json.loads(body["content"])
        except json.JSONDecodeError:
            raise SonicOutputError("output event toolUse: its content is not JSON") from None
        return [ToolUse(tool_use_id=body["toolUseId"], name=body["toolName"], arguments=arguments)]

    def _block(self, content: str, event: str) -> _Block:
        block = self._blocks.get(content)
        if block is None:
            raise SonicOutputError(f"output event {event}: content {content!r} was never started")
        return block

    def _barge_in(self, content: str) -> list[Out]:
        if self._barged:
            return []
        self._barged = True
        for name, block in self._blocks.items():
            if block.kind == "AUDIO" and block.role == "assistant":
                self._blocks[name] = attrs.evolve(block, cut=True)
        return [BargeIn(content=content)]


def _is_interruption(content: str) -> bool:
    if "interrupted" not in content:
        return False
    try:
        parsed = json.loads(content)
    except json.JSONDecodeError:
        return False
    return isinstance(parsed, dict) and parsed.get("interrupted") is True
