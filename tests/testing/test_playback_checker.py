"""The playback checker and PlaybackProgress: after the start, before the finish, the start's generation,
positions that never go back (up to the finish's) and never exceed what was sent."""

from __future__ import annotations

from typing import Any

import pytest
import trio.testing

import mediagraph as mg
from mediagraph.testing import InvariantError, check_playback, playback_violations


def log(*entries: tuple[str, dict[str, Any]]) -> list[mg.Event]:
    return [mg.Event(seq=i, t=i * 0.1, node="sink", event=kind, fields=f) for i, (kind, f) in enumerate(entries)]


def started(segment: int, generation: int = 0) -> tuple[str, dict[str, Any]]:
    return "playback_started", {"segment": segment, "generation": generation}


def progress(segment: int, position: float, generation: int = 0, **more: Any) -> tuple[str, dict[str, Any]]:
    return "playback_progress", {"segment": segment, "generation": generation, "position": position, **more}


def finished(segment: int, position: float, generation: int = 0, **more: Any) -> tuple[str, dict[str, Any]]:
    fields = {"segment": segment, "generation": generation, "position": position, "interrupted": False, **more}
    return "playback_finished", fields


def rules(entries: list[mg.Event], **kw: Any) -> list[str]:
    return [v.rule for v in playback_violations(entries, "sink", **kw)]


def test_good_progress_passes() -> None:
    good = log(started(0), progress(0, 0.1), progress(0, 0.1), progress(0, 0.2), finished(0, 0.3, sent=0.3))
    assert rules(good, closed=1) == []
    check_playback(good, "sink", closed=1)


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        (log(progress(0, 0.1), started(0), finished(0, 0.2)), ["progress_after_start"]),
        (log(started(0), finished(0, 0.2), progress(0, 0.2)), ["nothing_after_finish"]),
        (log(started(0), progress(0, 0.2), progress(0, 0.1), finished(0, 0.3)), ["progress_order"]),
        (log(started(0), progress(0, 0.2), finished(0, 0.1)), ["progress_order"]),
        (log(started(0), progress(0, 0.1, generation=1), finished(0, 0.2, generation=1)), ["progress_generation"]),
        (
            log(started(0, 1), progress(0, 0.1, generation=0), finished(0, 0.2, generation=1)),
            ["stale_generation", "progress_generation"],
        ),
        (log(started(0), progress(0, 0.5, sent=0.4), finished(0, 0.4, sent=0.4)), ["position_bound", "progress_order"]),
    ],
)
def test_each_progress_violation_is_caught(entries: list[mg.Event], expected: list[str]) -> None:
    assert rules(entries) == expected


def test_progress_is_bounded_by_what_was_sent_when_given() -> None:
    entries = log(started(0), progress(0, 0.5))
    assert rules(entries, sent={0: 0.4}) == ["position_bound"]
    assert rules(entries, sent={0: 0.5}) == []


def test_the_error_names_the_rule_and_the_events() -> None:
    with pytest.raises(InvariantError) as info:
        check_playback(log(started(0), progress(0, 0.2), progress(0, 0.1)), "sink")
    assert "progress_order" in str(info.value)
    assert "progress went back from 0.2 to 0.1" in str(info.value)


async def test_the_virtual_speaker_reports_progress_that_passes_the_checker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    g = mg.Graph()
    g.add("tone", "tone_source", duration=1.0)
    g.add("out", "speaker", progress_ms=250)
    g.link("tone.audio", "out.audio")
    result = await mg.run(g)
    check_playback(result.log, "out", closed=1)
    assert [e.fields["position"] for e in result.log.of("playback_progress", "out")] == [0.25, 0.5, 0.75]
