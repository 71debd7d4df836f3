"""The ``nova_sonic`` node's conversation: what the service's output means for the outlets, and the history a
renewed session replays. No trio, no SDK: output in (:mod:`._sonic_output`'s readings, with the graph time),
messages out, in order.

- **Speech** goes out on ``audio`` as mono int16 frames of ``frame_len`` samples, at the service's 24 kHz or
  resampled (soxr, one stream per segment, so a segment's length is exact) to ``rate``. An assistant audio
  block is one segment: its first frame is stamped at the end of the previous segment, or at the graph time it
  began if that is later; it ends with its last frame padded with silence and a ``Flush``.
- **The assistant's planned text** (SPECULATIVE, which the service sends before the audio it plans) goes out on
  ``text`` as chunks of the segment, a ``Flush`` after the segment's audio ends: what a transcript
  synchronizer needs to release the words as they are played. The spoken text (FINAL, after the audio, cut
  where a barge-in cut it) is not sent (it would repeat the words) but is the history.
- **The user's transcript** goes out on ``user_text``, a ``Flush`` after each final transcript.
- **A barge-in** drops the segment's audio not yet framed and sends an ``Interrupt`` on ``audio``, ``text`` and
  ``control`` (the output reader reports it once per turn, and drops the cut block's later speech).
- **The user's audio** (:class:`InputAudio`): frames of any rate and channel count, downmixed and resampled
  (soxr, one stream per run of one rate) to the 16 kHz mono int16 the service takes.
- **A tool call** goes out on ``tool_calls`` as a :class:`ToolCall`; the node that runs the tool answers
  with a :class:`ToolResult`.
- **History**: the configured turns, then the user's and the assistant's final texts in order (consecutive
  texts of one role joined), the last ``max_turns`` of them, starting with a user turn (the service wants the
  history to start with the user: a placeholder turn is put first otherwise, or, when the history is full, the
  oldest assistant turn goes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, final

import attrs
import numpy as np
import numpy.typing as npt
import soxr

import mediagraph as mg

from ._audio import map_channels
from ._sonic_output import BargeIn, Out, Speech, Text, ToolUse, TurnEnd
from ._sonic_protocol import INPUT_RATE, OUTPUT_RATE, Turn

__all__ = ["CONTINUED", "Emit", "InputAudio", "SonicConversation", "ToolCall", "ToolResult"]

#: The user turn put first in a replayed history that would start with the assistant.
CONTINUED: Final = "(The conversation continues.)"


@final
@attrs.frozen
class ToolCall:
    """The assistant asks for a tool: answer with a :class:`ToolResult` of the same ``tool_use_id``."""

    tool_use_id: str
    name: str
    arguments: Any


@final
@attrs.frozen
class ToolResult:
    """A tool's answer to the :class:`ToolCall` of ``tool_use_id``: ``content`` is any JSON data."""

    tool_use_id: str
    content: Any


type Emit = tuple[str, mg.AudioFrame | mg.TextChunk | mg.Flush | mg.Interrupt | ToolCall]


@final
class SonicConversation:
    """See the module doc.

    Args:
        history: the turns the conversation starts from (the node's ``history`` parameter).
        frame_len: samples per output frame.
        rate: the output's sample rate.
        max_turns: the most turns a renewed session replays.
    """

    def __init__(
        self, *, history: Sequence[Turn] = (), frame_len: int = 480, rate: int = OUTPUT_RATE, max_turns: int = 50
    ) -> None:
        self.frame_len = frame_len
        self.rate = rate
        self.max_turns = max_turns
        self.turns: list[Turn] = []
        for turn in history:
            self._remember(turn.role, turn.text)
        self.segments = 0  # audio segments ended (played out or cut)
        self.barge_ins = 0
        self._position = 0  # where the next segment may start (samples)
        self._next = 0  # the stamp of the next frame of the open segment
        self._open: str | None = None  # the audio block being framed
        self._pending = np.zeros(0, np.int16)
        self._resampler: soxr.ResampleStream | None = None
        self._texts = 0  # text chunks sent for the coming segment

    def __repr__(self) -> str:
        return f"<SonicConversation {len(self.turns)} turns, {self.segments} segments, open={self._open}>"

    def feed(self, out: Out, now: float) -> list[Emit]:
        """The messages one reading of the service's output gives, at graph time ``now`` (seconds)."""
        match out:
            case Speech():
                return self._speech(out, now)
            case Text(role="user"):
                if not out.final:
                    return []
                self._remember("user", out.text)
                return [("user_text", mg.TextChunk(text=out.text, final=True)), ("user_text", mg.Flush())]
            case Text():
                if out.final:
                    self._remember("assistant", out.text)
                    return []
                text = out.text if not self._texts else " " + out.text
                self._texts += 1
                return [("text", mg.TextChunk(text=text))]
            case BargeIn():
                return self._barge_in()
            case TurnEnd():
                return self._turn_end(out)
            case ToolUse():
                return [("tool_calls", ToolCall(out.tool_use_id, out.name, out.arguments))]

    def user_said(self, text: str) -> None:
        """A user's text turn (from the ``text`` inlet), for the history."""
        self._remember("user", text)

    def history(self) -> tuple[Turn, ...]:
        """The turns a new session replays (see the module doc)."""
        turns = self.turns[-self.max_turns :]
        if turns and turns[0].role == "assistant":  # the oldest goes if there is no room for the placeholder
            turns = [Turn("user", CONTINUED), *turns] if len(turns) < self.max_turns else turns[1:]
        return tuple(turns)

    # --- audio ----------------------------------------------------------------------------------------------

    def _speech(self, out: Speech, now: float) -> list[Emit]:
        if self._open != out.content:
            emits = self._end_segment() if self._open is not None else []
            self._open = out.content
            self._next = max(self._position, round(now * self.rate))
            if self.rate != OUTPUT_RATE:
                self._resampler = soxr.ResampleStream(OUTPUT_RATE, self.rate, 1, dtype="int16", quality="HQ")
        else:
            emits = []
        samples = np.frombuffer(out.pcm, dtype="<i2").astype(np.int16)
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        self._pending = np.concatenate([self._pending, samples])
        whole = len(self._pending) // self.frame_len * self.frame_len
        emits += self._frames(self._pending[:whole])
        self._pending = self._pending[whole:]
        return emits

    def _frames(self, samples: npt.NDArray[np.int16]) -> list[Emit]:
        n = self.frame_len
        out: list[Emit] = []
        for i in range(0, len(samples), n):
            block = samples[i : i + n].reshape(-1, 1)
            block.flags.writeable = False
            frame = mg.AudioFrame(samples=block, sample_rate=self.rate, channels=1, timestamp=self._next)
            out.append(("audio", frame))
            self._next += n
        return out

    def _end_segment(self) -> list[Emit]:
        """The open segment's last frame (padded) and its flushes."""
        emits: list[Emit] = []
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(np.zeros(0, np.int16), last=True)
            self._pending = np.concatenate([self._pending, tail])
            self._resampler = None
        whole = len(self._pending) // self.frame_len * self.frame_len
        emits += self._frames(self._pending[:whole])
        self._pending = self._pending[whole:]
        if len(self._pending):
            padded = np.zeros(self.frame_len, np.int16)
            padded[: len(self._pending)] = self._pending
            emits += self._frames(padded)
        self._pending = np.zeros(0, np.int16)
        self._open = None
        self._position = self._next
        self._texts = 0
        self.segments += 1
        return [*emits, ("audio", mg.Flush()), ("text", mg.Flush())]

    def _turn_end(self, out: TurnEnd) -> list[Emit]:
        if out.content != self._open:
            return []  # an audio block that never spoke, or one a barge-in cut: nothing to end
        return self._end_segment()

    def _barge_in(self) -> list[Emit]:
        self.barge_ins += 1
        self._pending = np.zeros(0, np.int16)
        self._resampler = None
        if self._open is not None:
            self._open = None
            self.segments += 1
        self._position = self._next
        self._texts = 0
        return [("audio", mg.Interrupt()), ("text", mg.Interrupt()), ("control", mg.Interrupt())]

    # --- history --------------------------------------------------------------------------------------------

    def _remember(self, role: str, text: str) -> None:
        text = text.strip()
        if not text:
            return
        if self.turns and self.turns[-1].role == role:
            self.turns[-1] = Turn(self.turns[-1].role, f"{self.turns[-1].text} {text}")
        else:
            self.turns.append(Turn("user" if role == "user" else "assistant", text))
        del self.turns[: -self.max_turns]


@final
class InputAudio:
    """The user's frames as 16 kHz mono int16 bytes, in order (a change of rate ends one resampling run)."""

    def __init__(self) -> None:
        self.samples = 0  # 16 kHz samples given out
        self._rate = 0
        self._resampler: soxr.ResampleStream | None = None

    def __repr__(self) -> str:
        return f"<InputAudio from {self._rate} Hz, {self.samples} samples>"

    def convert(self, frame: mg.AudioFrame) -> bytes:
        """This frame's audio (maybe empty: the resampler holds a few samples back)."""
        head = b""
        if frame.sample_rate != self._rate:
            head = self.end()
            self._rate = frame.sample_rate
            if frame.sample_rate != INPUT_RATE:
                self._resampler = soxr.ResampleStream(frame.sample_rate, INPUT_RATE, 1, dtype="int16", quality="HQ")
        mono = np.ascontiguousarray(map_channels(frame.samples, 1)[:, 0])
        if self._resampler is not None:
            mono = self._resampler.resample_chunk(mono)
        return head + self._out(mono)

    def end(self) -> bytes:
        """The resampler's last samples (the input ended, or its rate changed)."""
        resampler, self._resampler = self._resampler, None
        if resampler is None:
            return b""
        return self._out(resampler.resample_chunk(np.zeros(0, dtype=np.int16), last=True))

    def _out(self, samples: npt.NDArray[np.int16]) -> bytes:
        self.samples += len(samples)
        return samples.astype("<i2").tobytes()
