"""video_sink: its presentation statistics, from scripted frames and from the video source."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
import trio
import trio.testing

import mediagraph as mg
import mediagraph.testing  # registers test_messages

PIXELS = [np.full((48, 64, 3), i, dtype=np.uint8) for i in range(4)]


def video(pts_ms: int, pixels: int = 0) -> mg.VideoFrame:
    return mg.VideoFrame(pixels=PIXELS[pixels], pts=pts_ms, time_base=Fraction(1, 1000))


async def totals(steps: list[tuple[float, str, Any]], **params: Any) -> dict[str, Any]:
    g = mg.Graph()
    g.add("script", "test_messages", outlets={"video": mg.VideoFrame}, steps=steps)
    g.add("sink", "video_sink", **params)
    g.link("script.video", "sink.video")
    with trio.fail_after(3600):
        result = await mg.run(g)
    (total,) = [e.fields for e in result.log if e.event == "video_sink_total"]
    return dict(total)


async def test_a_steady_stream_is_counted_clean(autojump_clock: trio.testing.MockClock) -> None:
    steps = [(i * 0.04, "video", video(i * 40, i % 2)) for i in range(25)]
    got = await totals(steps)
    assert got == {
        "frames": 25,
        "repeats": 0,
        "pts_gaps": 0,
        "pts_backwards": 0,
        "max_pts_gap": 0.04,
        "max_arrival_gap": 0.04,
        "late": 0,
        "max_late": 0.0,
        "interrupts": 0,
        "flushes": 0,
    }


async def test_repeats_gaps_stalls_and_late_frames_are_counted(autojump_clock: trio.testing.MockClock) -> None:
    steps = [
        (0.0, "video", video(0, 0)),
        (0.04, "video", video(40, 0)),  # a repeat: the same pixels object
        (0.08, "video", video(80, 1)),
        (0.30, "video", video(120, 2)),  # arrives 180 ms after its time (late) after a 220 ms stall
        (0.31, "video", video(240, 3)),  # a pts gap of 120 ms (3 periods)
        (0.32, "video", mg.Interrupt()),
        (0.32, "video", mg.Flush()),
        (0.33, "video", video(240, 3)),  # not after the one before, and a repeat
        (0.40, "video", video(400, 0)),
    ]
    got = await totals(steps, max_late=0.1)
    assert got["frames"] == 7
    assert got["repeats"] == 2
    assert got["pts_gaps"] == 2  # 120 -> 240 and 240 -> 400
    assert got["pts_backwards"] == 1
    assert got["max_pts_gap"] == pytest.approx(0.16)
    assert got["max_arrival_gap"] == pytest.approx(0.22)
    assert got["late"] == 1
    assert got["max_late"] == pytest.approx(0.18)
    assert (got["interrupts"], got["flushes"]) == (1, 1)


async def test_lateness_counts_from_the_schedule_the_earliest_frame_set(autojump_clock: trio.testing.MockClock) -> None:
    # Behind an avatar's 300 ms latency every frame arrives 0.3 s after its media time: on schedule. One lags
    # 80 ms more (late at max_late 50 ms); one comes 20 ms sooner than the others, which then lag 20 ms more.
    lags = [0.3, 0.3, 0.38, 0.3, 0.28, 0.3]
    steps = [(i * 0.04 + lag, "video", video(i * 40, i % 2)) for i, lag in enumerate(lags)]
    got = await totals(steps)
    assert (got["late"], got["max_late"]) == (1, pytest.approx(0.08))


async def test_the_fps_sets_what_a_gap_is(autojump_clock: trio.testing.MockClock) -> None:
    steps = [(i * 0.1, "video", video(i * 100, i % 2)) for i in range(5)]
    assert (await totals(steps))["pts_gaps"] == 4  # 100 ms at 25 fps: gaps
    assert (await totals(steps, fps=10))["pts_gaps"] == 0


async def test_it_counts_the_video_source_on_time(autojump_clock: trio.testing.MockClock) -> None:
    g = mg.Graph()
    g.add("video", "video_source", duration=2.0, width=64, height=48)
    g.add("sink", "video_sink", max_late=0)
    g.link("video.video", "sink.video")
    with trio.fail_after(3600):
        result = await mg.run(g)
    (total,) = [e.fields for e in result.log if e.event == "video_sink_total"]
    assert (total["frames"], total["repeats"], total["pts_gaps"], total["late"]) == (50, 0, 0, 0)
    assert total["max_arrival_gap"] == pytest.approx(0.04)


def test_mediagraph_nodes_lists_its_ports() -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "mediagraph", "nodes", "video_sink"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert "inlets:\n  video  VideoFrame" in ran.stdout
    for param in ("fps", "max_late"):
        assert f"\n  {param} " in ran.stdout, param
