"""nova_sonic's conversation core against a reference model: generated conversations (turns of planned text,
speech in chunks of any size, barge-ins at any chunk, user transcripts) give exactly the speech of each turn,
framed and stamped without gaps or overlaps, one Flush or one Interrupt per segment, the planned text before
its Flush, and a history that alternates, starts with the user and is bounded."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import hypothesis.strategies as st
import numpy as np
from hypothesis import given, settings

import mediagraph as mg

if TYPE_CHECKING:
    from nodes._sonic_core import CONTINUED, InputAudio, SonicConversation
    from nodes._sonic_output import BargeIn, Out, Speech, Text, TurnEnd
    from nodes._sonic_protocol import Turn
else:
    from mediagraph.nodes._sonic_core import CONTINUED, InputAudio, SonicConversation
    from mediagraph.nodes._sonic_output import BargeIn, Out, Speech, Text, TurnEnd
    from mediagraph.nodes._sonic_protocol import Turn

FRAME = 480


def pcm(start: int, n: int) -> bytes:
    return (np.arange(start, start + n) % 30000).astype("<i2").tobytes()


@st.composite
def conversations(draw: st.DrawFn) -> list[dict[str, Any]]:
    turns = []
    for i in range(draw(st.integers(0, 5))):
        chunks = draw(st.lists(st.integers(1, 3000), min_size=0, max_size=6))
        turns.append(
            {
                "user": draw(st.sampled_from(["", "hello", "what time is it"])),
                "plan": draw(st.lists(st.sampled_from(["Sure.", "It is noon.", "Bye"]), max_size=3)),
                "chunks": chunks,
                "barge": draw(st.none() | st.integers(0, len(chunks))),
                "gap": draw(st.floats(0, 2)),  # graph seconds before the turn
                "id": f"audio-{i}",
            }
        )
    return turns


def cut(turn: dict[str, Any]) -> bool:
    """Whether the user barges in during this turn (before one of its chunks)."""
    return turn["barge"] is not None and turn["barge"] < len(turn["chunks"])


def play(turns: list[dict[str, Any]], conversation: SonicConversation) -> tuple[list[Any], list[list[bytes]]]:
    """Feed the conversation's outputs as the service would send them; the emits, and each turn's expected
    speech (what was sent before any barge-in)."""
    emits: list[Any] = []
    expected: list[list[bytes]] = []
    now, sample = 0.0, 0
    for turn in turns:
        now += turn["gap"]
        outs: list[Out] = []
        if turn["user"]:
            outs.append(Text(content="u", role="user", final=True, text=turn["user"]))
        outs += [Text(content="s", role="assistant", final=False, text=t) for t in turn["plan"]]
        heard: list[bytes] = []
        for k, n in enumerate(turn["chunks"]):
            if turn["barge"] == k:
                outs.append(BargeIn(content=turn["id"]))
                break
            outs.append(Speech(content=turn["id"], pcm=pcm(sample, n)))
            heard.append(pcm(sample, n))
            sample += n
        outs.append(TurnEnd(content=turn["id"], stop_reason="INTERRUPTED" if cut(turn) else "END_TURN"))
        spoken = " ".join(turn["plan"])[: 5 if cut(turn) else None]
        outs.append(Text(content="f", role="assistant", final=True, text=spoken))
        expected.append(heard if turn["chunks"] else [])
        for out in outs:
            emits += [(port, msg, now) for port, msg in conversation.feed(out, now)]
            now += 0.001
    return emits, expected


@settings(max_examples=400, deadline=None)
@given(conversations())
def test_each_turn_s_speech_goes_out_whole_framed_and_placed_once(turns: list[dict[str, Any]]) -> None:
    conversation = SonicConversation(frame_len=FRAME)
    emits, expected = play(turns, conversation)
    audio = [(msg, now) for port, msg, now in emits if port == "audio"]
    # Segments: frames until a Flush (played out) or an Interrupt (barge-in).
    segments: list[list[mg.AudioFrame]] = []
    ends: list[str] = []
    current: list[mg.AudioFrame] = []
    for msg, _ in audio:
        if isinstance(msg, mg.AudioFrame):
            current.append(msg)
        else:
            segments.append(current)
            ends.append(type(msg).__name__)
            current = []
    assert current == [], "every segment ends with a Flush or an Interrupt"
    spoken = [(t, e) for t, e in zip(turns, expected, strict=True) if e or cut(t)]
    assert len(segments) == len(spoken)
    last_end = 0
    for frames, end, (turn, heard) in zip(segments, ends, spoken, strict=True):
        assert end == ("Interrupt" if cut(turn) else "Flush")
        data = b"".join(f.samples.astype("<i2").tobytes() for f in frames)
        want = b"".join(heard)
        if cut(turn):  # what was framed before the barge-in: whole frames of the speech, the rest dropped
            assert data == want[: len(data)] and len(want) - len(data) < 2 * FRAME
        else:
            assert data == want + b"\0" * (len(data) - len(want)) and len(data) - len(want) < 2 * FRAME
        stamps = [f.timestamp for f in frames]
        assert stamps == list(range(stamps[0], stamps[0] + FRAME * len(frames), FRAME)) if frames else True
        if frames:
            assert stamps[0] >= last_end, "segments never overlap"
            last_end = stamps[-1] + FRAME
    assert conversation.barge_ins == sum(1 for e in ends if e == "Interrupt")


@settings(max_examples=300, deadline=None)
@given(conversations())
def test_planned_text_precedes_its_flush_and_barge_ins_reach_every_port_once(turns: list[dict[str, Any]]) -> None:
    emits, _ = play(turns, SonicConversation(frame_len=FRAME))
    for port in ("audio", "text"):
        kinds = [type(m).__name__ for p, m, _ in emits if p == port and not isinstance(m, mg.AudioFrame)]
        other = "text" if port == "audio" else "audio"
        other_kinds = [type(m).__name__ for p, m, _ in emits if p == other and not isinstance(m, mg.AudioFrame)]
        assert [k for k in kinds if k != "TextChunk"] == [k for k in other_kinds if k != "TextChunk"]
    control = [m for p, m, _ in emits if p == "control"]
    assert all(isinstance(m, mg.Interrupt) for m in control)
    assert len(control) == sum(1 for p, m, _ in emits if p == "audio" and isinstance(m, mg.Interrupt))
    users = [m for p, m, _ in emits if p == "user_text"]
    assert [type(m).__name__ for m in users] == ["TextChunk", "Flush"] * sum(1 for t in turns if t["user"])


@settings(max_examples=300, deadline=None)
@given(conversations(), st.integers(1, 8), st.lists(st.sampled_from(["user", "assistant"]), max_size=4))
def test_the_replayed_history_alternates_starts_with_the_user_and_is_bounded(
    turns: list[dict[str, Any]], max_turns: int, start: list[str]
) -> None:
    conversation = SonicConversation(history=[Turn(r, r) for r in start], frame_len=FRAME, max_turns=max_turns)  # type: ignore[arg-type]
    play(turns, conversation)
    history = conversation.history()
    assert len(history) <= max_turns
    if history:
        assert history[0].role == "user"
    roles = [t.role for t in history]
    assert all(a != b for a, b in itertools.pairwise(roles)), "consecutive turns of one role are joined"
    said = [t["user"] for t in turns if t["user"]]
    if said and max_turns >= 3:
        assert said[-1] in history[-1].text or said[-1] in history[-2].text, "the newest turns are kept"
    if said and max_turns >= 2 * len(turns) + len(start) + 1:  # room for every turn: the user's are all there
        users = [t.text for t in history if t.text != CONTINUED]
        assert all(any(s in u for u in users) for s in said)


def test_speech_resampled_for_the_output_keeps_each_segment_s_length() -> None:
    conversation = SonicConversation(frame_len=960, rate=48000)
    emits: list[Any] = []
    for k in range(10):  # 0.5 s at 24 kHz, in uneven chunks
        emits += conversation.feed(Speech(content="a", pcm=pcm(k * 1200, 1200)), 0.0)
    emits += conversation.feed(TurnEnd(content="a", stop_reason="END_TURN"), 0.1)
    frames = [m for p, m in emits if p == "audio" and isinstance(m, mg.AudioFrame)]
    assert all(f.sample_rate == 48000 for f in frames)
    assert len(frames) == 25 and [f.timestamp for f in frames] == [960 * i for i in range(25)]  # 1.0 s: exact
    assert isinstance(emits[-2][1], mg.Flush)


def test_input_audio_at_16_khz_mono_passes_through_and_other_formats_are_converted() -> None:
    convert = InputAudio()
    mono = np.arange(320, dtype=np.int16).reshape(-1, 1)
    frame = mg.AudioFrame(samples=mono, sample_rate=16000, channels=1, timestamp=0)
    assert convert.convert(frame) == mono.astype("<i2").tobytes()
    stereo = np.zeros((960, 2), np.int16)
    total = b""
    for k in range(50):  # one second at 48 kHz stereo
        total += convert.convert(mg.AudioFrame(samples=stereo, sample_rate=48000, channels=2, timestamp=k * 960))
    total += convert.end()
    assert len(total) // 2 == 16000
    assert convert.samples == 16320
