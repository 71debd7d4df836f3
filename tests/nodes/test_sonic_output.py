"""Nova Sonic's output events read into what the node acts on: speech, text (the user's transcript, the
assistant's planned and spoken text), one barge-in per interrupted turn, turn ends, tool calls; a malformed
event raises SonicOutputError and nothing else, whatever it holds."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

if TYPE_CHECKING:
    from nodes._sonic_output import BargeIn, SonicOutput, SonicOutputError, Speech, Text, ToolUse, TurnEnd
else:
    from mediagraph.nodes._sonic_output import BargeIn, SonicOutput, SonicOutputError, Speech, Text, ToolUse, TurnEnd


def ev(name: str, **body: Any) -> dict[str, Any]:
    return {"event": {name: body}}


def start(content: str, kind: str, role: str, stage: str = "FINAL") -> dict[str, Any]:
    fields = json.dumps({"generationStage": stage})
    return ev("contentStart", contentId=content, type=kind, role=role, additionalModelFields=fields)


def audio(content: str, pcm: bytes) -> dict[str, Any]:
    return ev("audioOutput", contentId=content, content=base64.b64encode(pcm).decode())


def test_a_turn_reads_as_the_user_s_transcript_planned_text_speech_and_its_end() -> None:
    out = SonicOutput()
    events = [
        ev("completionStart", sessionId="s", promptName="p", completionId="c"),
        start("u", "TEXT", "USER"),
        ev("textOutput", contentId="u", content="what time is it", role="USER"),
        ev("contentEnd", contentId="u", stopReason="PARTIAL_TURN"),
        start("plan", "TEXT", "ASSISTANT", "SPECULATIVE"),
        ev("textOutput", contentId="plan", content="It is noon.", role="ASSISTANT"),
        ev("contentEnd", contentId="plan", stopReason="PARTIAL_TURN"),
        start("a", "AUDIO", "ASSISTANT"),
        audio("a", b"\x01\x00\x02\x00"),
        ev("contentEnd", contentId="a", stopReason="END_TURN"),
        ev("usageEvent", completionId="c"),
    ]
    got = [o for e in events for o in out.feed(e)]
    assert got == [
        Text(content="u", role="user", final=True, text="what time is it"),
        Text(content="plan", role="assistant", final=False, text="It is noon."),
        Speech(content="a", pcm=b"\x01\x00\x02\x00"),
        TurnEnd(content="a", stop_reason="END_TURN"),
    ]


def test_a_barge_in_is_reported_once_per_turn() -> None:
    out = SonicOutput()
    got = [
        o
        for e in [
            start("a", "AUDIO", "ASSISTANT"),
            start("t", "TEXT", "ASSISTANT"),
            ev("textOutput", contentId="t", content='{ "interrupted" : true }', role="ASSISTANT"),
            ev("contentEnd", contentId="t", stopReason="INTERRUPTED"),
            ev("contentEnd", contentId="a", stopReason="INTERRUPTED"),
            start("b", "AUDIO", "ASSISTANT"),  # the next turn may be interrupted again
            ev("contentEnd", contentId="b", stopReason="INTERRUPTED"),
        ]
        for o in out.feed(e)
    ]
    assert got == [
        BargeIn(content="t"),
        TurnEnd(content="a", stop_reason="INTERRUPTED"),
        BargeIn(content="b"),
        TurnEnd(content="b", stop_reason="INTERRUPTED"),
    ]


def test_speech_of_a_block_open_at_a_barge_in_is_stale_and_dropped() -> None:
    out = SonicOutput()
    events = [
        start("a", "AUDIO", "ASSISTANT"),  # announced, not spoken yet, when the user barges in
        start("t", "TEXT", "ASSISTANT", "SPECULATIVE"),
        ev("textOutput", contentId="t", content='{ "interrupted" : true }', role="ASSISTANT"),
        audio("a", b"\x01\x00"),  # still in flight
        ev("contentEnd", contentId="a", stopReason="INTERRUPTED"),
        start("b", "AUDIO", "ASSISTANT"),  # the next turn speaks
        audio("b", b"\x02\x00"),
    ]
    got = [o for e in events for o in out.feed(e)]
    assert got == [BargeIn(content="t"), TurnEnd(content="a", stop_reason="INTERRUPTED"), Speech("b", b"\x02\x00")]
    assert out.dropped == 1


def test_a_tool_call_is_read_with_its_arguments() -> None:
    got = SonicOutput().feed(ev("toolUse", toolUseId="t1", toolName="clock", content='{"tz": "UTC"}'))
    assert got == [ToolUse(tool_use_id="t1", name="clock", arguments={"tz": "UTC"})]


@pytest.mark.parametrize(
    ("events", "match"),
    [
        ([audio("x", b"\0\0")], "content 'x' was never started"),
        ([start("a", "AUDIO", "ASSISTANT"), ev("audioOutput", contentId="a", content="%%%")], "not base64"),
        ([start("a", "AUDIO", "ASSISTANT"), audio("a", b"\0")], "not whole 16-bit samples"),
        ([ev("toolUse", toolUseId="t", toolName="n", content="{")], "not JSON"),
        ([ev("contentStart", contentId="a")], "missing or malformed field"),
        ([{"nothing": 1}], "not {'event'"),
    ],
)
def test_a_malformed_event_raises_naming_it(events: list[dict[str, Any]], match: str) -> None:
    out = SonicOutput()
    for e in events[:-1]:
        out.feed(e)
    with pytest.raises(SonicOutputError, match=match):
        out.feed(events[-1])


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
NAMES = st.sampled_from(["contentStart", "textOutput", "audioOutput", "contentEnd", "toolUse", "completionEnd", "x"])


@settings(max_examples=500, deadline=None)
@given(events=st.lists(st.one_of(JSONISH, st.builds(lambda n, b: {"event": {n: b}}, NAMES, JSONISH)), max_size=10))
def test_whatever_an_event_holds_the_reader_answers_or_raises_sonic_output_error(events: list[Any]) -> None:
    out = SonicOutput()
    for e in events:
        try:
            got = out.feed(e)
        except SonicOutputError:
            continue
        assert all(isinstance(o, (Speech, Text, BargeIn, TurnEnd, ToolUse)) for o in got)
