"""Nova Sonic's input protocol: whatever a node asks for, in any order, the events sent keep every rule; an
illegal request changes nothing and says which rule. The independent checker (what the stand-in service will
enforce) is tested on hand-made streams that break each rule."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from mediagraph.testing import SonicRuleError
from mediagraph.testing import check_sonic_input as check_input

if TYPE_CHECKING:
    from nodes._sonic_protocol import SonicInput, SonicOrderError, Turn
else:
    from mediagraph.nodes._sonic_protocol import SonicInput, SonicOrderError, Turn

HISTORY = [Turn("user", "what is the time?"), Turn("assistant", "noon")]


def names(events: list[dict[str, Any]]) -> list[str]:
    return [next(iter(e["event"])) for e in events]


def test_a_session_opens_with_the_system_block_then_the_history_and_audio_stays_in_one_block() -> None:
    s = SonicInput(prompt="p", instructions="be brief", history=HISTORY)
    events = s.open() + s.audio(b"\x01\x00" * 4) + s.audio(b"\x02\x00" * 4) + s.close()
    assert names(events) == [
        "sessionStart",
        "promptStart",
        *["contentStart", "textInput", "contentEnd"] * 3,  # system, user, assistant
        "contentStart",
        "audioInput",
        "audioInput",
        "contentEnd",
        "promptEnd",
        "sessionEnd",
    ]
    starts = [e["event"]["contentStart"] for e in events if "contentStart" in e["event"]]
    assert [(b["type"], b["role"], b["interactive"]) for b in starts] == [
        ("TEXT", "SYSTEM", False),
        ("TEXT", "USER", False),
        ("TEXT", "ASSISTANT", False),
        ("AUDIO", "USER", True),
    ]
    assert starts[3]["audioInputConfiguration"]["sampleRateHertz"] == 16000
    audio = [e["event"]["audioInput"] for e in events if "audioInput" in e["event"]]
    assert base64.b64decode(audio[1]["content"]) == b"\x02\x00" * 4
    assert {a["contentName"] for a in audio} == {"p-4"}
    check_input(events)


def test_a_text_turn_or_a_tool_result_closes_the_audio_block_first() -> None:
    s = SonicInput(prompt="p")
    events = s.open() + s.audio(b"\0\0") + s.text("stop") + s.audio(b"\0\0") + s.tool_result("t1", {"ok": 1})
    assert names(events)[5:] == [
        "contentStart",
        "audioInput",
        "contentEnd",  # the audio block, before the text block
        "contentStart",
        "textInput",
        "contentEnd",
        "contentStart",  # a new audio block
        "audioInput",
        "contentEnd",
        "contentStart",
        "toolResult",
        "contentEnd",
    ]
    check_input(events + s.close())


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: s.audio(b"\0\0"), "audio: the session is new"),
        (lambda s: s.text("hi"), "text: the session is new"),
        (lambda s: s.open() and s.open(), "open: the session is open"),
        (lambda s: s.open() and s.audio(b"\0"), "not a whole number of 16-bit samples"),
        (lambda s: s.open() and s.close() and s.audio(b"\0\0"), "audio: the session is closed"),
    ],
)
def test_an_illegal_request_is_refused_naming_the_rule(call: Any, match: str) -> None:
    with pytest.raises(SonicOrderError, match=match):
        call(SonicInput())


def test_the_checker_finds_each_broken_rule() -> None:
    s = SonicInput(prompt="p", history=HISTORY)
    good = s.open() + s.audio(b"\0\0") + s.close()
    check_input(good)
    system, user = good[2:5], good[5:8]
    audio_start, audio_chunk, audio_end = good[11:14]
    broken = {
        "a second sessionStart": [good[0], good[0]],
        "the first block must be the SYSTEM text": [*good[:2], *user],
        "history comes before audio": [*good[:2], *system, audio_start, audio_chunk, audio_end, *good[8:11]],
        "audioInput outside an open AUDIO block": [*good[:2], *system, audio_chunk],
        "a block opened inside block": [*good[:2], *system, audio_start, *user],
        "promptEnd with block": [*good[:2], *system, audio_start, good[-2]],
        "after sessionEnd": [*good, good[0]],
        "sessionEnd before promptEnd": [*good[:5], good[-1]],
        "content outside the prompt": [*good[:5], good[-2], *user],
    }
    for rule, events in broken.items():
        with pytest.raises(SonicRuleError, match=rule):
            check_input(events)


CALLS = st.lists(
    st.sampled_from(["open", "audio", "text", "tool", "close", "odd"]),
    max_size=30,
)


@settings(max_examples=500, deadline=None)
@given(calls=CALLS, history=st.lists(st.builds(Turn, st.sampled_from(["user", "assistant"]), st.text(max_size=5))))
def test_any_order_of_requests_sends_only_legal_streams(calls: list[str], history: list[Turn]) -> None:
    s = SonicInput(prompt="p", history=history)
    sent: list[dict[str, Any]] = []
    for call in calls:
        before = (s.state, s.audio_block, len(sent))
        try:
            if call == "open":
                sent += s.open()
            elif call == "audio":
                sent += s.audio(b"\x01\x02" * 3)
            elif call == "odd":
                sent += s.audio(b"\x01")
            elif call == "text":
                sent += s.text("hello")
            elif call == "tool":
                sent += s.tool_result("t", [1, 2])
            else:
                sent += s.close()
        except SonicOrderError:
            assert (s.state, s.audio_block, len(sent)) == before, "a refused request changed nothing"
        check_input(sent)  # every prefix is legal
    sent += s.close()
    check_input(sent)
    assert s.close() == [], "closing twice sends nothing"
    if sent:
        assert names(sent)[-2:] == ["promptEnd", "sessionEnd"]
