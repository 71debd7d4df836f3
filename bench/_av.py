"""Workload AV: avatar video released by the audio played, measured from ``av_sync``'s own event log.

A paced tone goes to the stand-in avatar (``video_source`` driven by audio, returning the voice with its face,
120 ms late), then ``av_sync``, a slot holding a virtual speaker, and a video sink; the whole graph runs on
the real clock (``--clock virtual`` for the same on the virtual clock). Patterns:

- ``steady``: the frames come as they are made;
- ``bursty``: held and sent together every 500 ms, with up to 20 ms of jitter each;
- ``interrupt``: 200 ms bursts, and an interrupt every 2 s on ``av_sync``'s audio inlet (a barge-in: the
  tone goes on as the next turn).

Figures per pattern: |skew| (a released frame's pts minus the played media time) p50/p99/max in ms; frames
released, repeated, dropped late, dropped as the interrupted turn's (``stale_dropped``) and never played
(``unplayed``); ``stale_shown``, frames of an interrupted turn shown after the interrupt
(released or repeated: stamped with an older epoch, or before the interrupt's cut); ``old_video_ms``, the
most graph time one was shown after its interrupt; ``old_audio_ms``, the most graph time the speaker went on
playing the interrupted turn after the interrupt. Goal (issue 15): p99 |skew| <= 20 ms on every pattern,
0 stale frames, 0 ms of old-turn audio or video.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from typing import Any, Final

import trio
import trio.testing

import mediagraph as mg

#: pattern -> (the stand-in avatar's options, seconds between interrupts or None)
PATTERNS: Final[Mapping[str, tuple[dict[str, Any], float | None]]] = {
    "steady": ({}, None),
    "bursty": ({"burst": 0.5, "jitter": 0.02}, None),
    "interrupt": ({"burst": 0.2}, 2.0),
}
LATENCY: Final = 0.12


def graph(seconds: float, avatar: Mapping[str, Any]) -> mg.Graph:
    g = mg.Graph("bench_av")
    g.add("tone", "tone_source", duration=seconds)
    g.add("face", "video_source", audio=True, audio_back=True, latency=LATENCY, **avatar)
    g.add("sync", "av_sync")
    g.add("out", "slot", child={"type": "speaker", "device": "virtual"})
    g.add("screen", "video_sink")
    for link in (
        "tone.audio -> face.audio",
        "face.audio -> sync.audio",
        "face.video -> sync.video",
        "sync.audio -> out.audio",
        "sync.video -> screen.video",
        "out.playback -> sync.playback",
    ):
        g.link(*link.split(" -> "))
    return g


async def _run(seconds: float, pattern: str) -> mg.EventLog:
    avatar, every = PATTERNS[pattern]
    log = mg.EventLog()
    async with mg.open_runtime() as rt:
        running = await rt.start(graph(seconds, avatar), log=log)
        async with trio.open_nursery() as nursery:
            if every is not None:

                async def interrupts() -> None:
                    at = every
                    while at < seconds:
                        await trio.sleep_until(running.t0 + at)
                        running.interrupt("sync")
                        at += every

                nursery.start_soon(interrupts)
            await running.wait()
            nursery.cancel_scope.cancel()
    return log


def measure(log: mg.EventLog) -> dict[str, object]:
    """The pattern's figures from the log of one run (see the module doc)."""
    skews = sorted(
        abs(float(e.fields["skew"])) * 1000 for e in log.of("video_out", "sync") if e.fields["kind"] == "release"
    )
    epoch, cut, since = 0, -math.inf, 0.0  # the last interrupt's epoch, cut and graph time
    stale, old_video, old_audio = 0, 0.0, 0.0
    cutting = False  # the speaker's interrupted segment has not finished yet
    for e in log.events:
        f = e.fields
        if e.node == "sync" and e.event == "av_interrupted":
            epoch, cut, since, cutting = int(f["epoch"]), float(f["cut"]), e.t, True
        elif e.node == "sync" and e.event == "video_out" and f["kind"] != "idle":
            if int(f["stamp"]) < epoch or float(f["media"]) < cut - 1e-6:  # never before the first interrupt
                stale += 1
                old_video = max(old_video, (e.t - since) * 1000)
        elif e.node == "out" and e.event == "playback_finished" and f["interrupted"] and cutting:
            old_audio = max(old_audio, (float(f["at"]) - since) * 1000)
            cutting = False
    total = log.of("av_sync_total", "sync")[-1].fields
    return {
        "released": total["released"],
        "repeated": total["repeated"],
        "late": total["late"],
        "stale_dropped": total["stale"],
        "unplayed": total["unplayed"],
        "interrupts": epoch,
        "p50_skew_ms": statistics.median(skews) if skews else math.nan,
        "p99_skew_ms": skews[min(len(skews) - 1, math.ceil(0.99 * len(skews)) - 1)] if skews else math.nan,
        "max_skew_ms": skews[-1] if skews else math.nan,
        "stale_shown": stale,
        "old_video_ms": old_video,
        "old_audio_ms": old_audio,
    }


def run_pattern(pattern: str, seconds: float, clock: str) -> dict[str, object]:
    """Run one pattern for ``seconds`` of audio on the ``real`` or ``virtual`` clock; its figures."""
    virtual = trio.testing.MockClock(autojump_threshold=0) if clock == "virtual" else None
    return measure(trio.run(_run, seconds, pattern, clock=virtual))
