"""A/V sync in a real file: a stand-in avatar beeps and flashes together once a second, `av_sync` paces its video
by the audio the speaker played, the recorder writes MP4; decoded, each flash comes within one frame period of
its beep, and after a barge-in no frame of the old turn appears."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import numpy as np
import numpy.typing as npt
import trio
import trio.testing

import mediagraph as mg
from mediagraph.testing import check_av, check_playback

if TYPE_CHECKING:
    from nodes._pattern import is_flash, read_code
else:
    from mediagraph.nodes._pattern import is_flash, read_code

RATE = 48000
FRAME = 0.02
PERIOD = 1 / 25
BEEPS = [0.5, 1.5, 3.5, 4.5]  # seconds of media; the barge-in at 2.3 s cuts the turn, a new one starts at 3 s
INTERRUPT = 2.3


def chunk(start: float) -> mg.AudioFrame:
    n = round(FRAME * RATE)
    t = start + np.arange(n) / RATE
    beep = np.zeros(n, bool)
    for b in BEEPS:
        beep |= (t >= b) & (t < b + 0.1)
    samples = np.where(beep, 12000 * np.sin(2 * np.pi * 1000 * t), 0).astype(np.int16).reshape(-1, 1)
    return mg.AudioFrame(samples=samples, sample_rate=RATE, channels=1, timestamp=round(start * RATE))


def script() -> list[tuple[float, str, Any]]:
    """Two turns of audio, each frame sent at its media time; the barge-in between them."""
    first = [(i * FRAME, "audio", chunk(i * FRAME)) for i in range(round(INTERRUPT / FRAME))]
    second = [(3.0 + i * FRAME, "audio", chunk(3.0 + i * FRAME)) for i in range(round(2.0 / FRAME))]
    return [*first, (INTERRUPT, "audio", mg.Interrupt()), *second, (5.0, "audio", mg.Flush())]


def graph(path: Path) -> mg.Graph:
    g = mg.Graph("avatar_mp4")
    g.add("script", "test_messages", outlets={"audio": mg.AudioFrame}, steps=script())
    g.add("face", "video_source", audio=True, audio_back=True, latency=0.12, burst=0.2, flash_on_beep=True)
    g.add("sync", "av_sync")
    g.add("out", "slot", child={"type": "speaker", "device": "virtual"})
    g.add("rec", "recorder", path=path)
    g.link("script.audio", "face.audio")
    g.link("face.audio", "sync.audio")
    g.link("face.video", "sync.video")
    g.link("sync.audio", "out.audio")
    g.link("out.playback", "sync.playback")
    g.link("out.playback", "rec.playback")
    g.link("sync.audio", "rec.agent")
    g.link("sync.video", "rec.video")
    return g


def onsets(agent: npt.NDArray[np.float32]) -> list[float]:
    """Where each beep starts in the recorded agent channel (seconds)."""
    loud = np.abs(agent) > 0.1
    starts = np.flatnonzero(loud[1:] & ~loud[:-1]) + 1
    found: list[float] = []
    for s in starts / RATE:
        if not found or s - found[-1] > 0.5:
            found.append(float(s))
    return found


async def test_each_flash_is_shown_with_its_beep_and_nothing_old_after_the_barge_in(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    log = mg.EventLog()
    with trio.fail_after(3600):
        await mg.run(graph(tmp_path / "avatar.mp4"), log=log)
    check_av(log, "sync", sink="out", slack=0.01)
    check_playback(log, "out")
    with av.open(str(tmp_path / "avatar.mp4")) as f:
        pictures = [(float(p.time or 0), p.to_ndarray(format="rgb24")) for p in f.decode(video=0)]
    with av.open(str(tmp_path / "avatar.mp4")) as f:
        audio = np.concatenate([a.to_ndarray().reshape(-1, 2) for a in f.decode(audio=0)])  # float planar → pairs
    flashes = [t for t, pixels in pictures if is_flash(pixels)]
    first_flashes = [t for i, t in enumerate(flashes) if i == 0 or t - flashes[i - 1] > 0.5]
    beeps = onsets(audio[:, 1])
    assert len(beeps) == len(BEEPS), beeps  # every beep played (none falls in the cut tail)
    assert len(first_flashes) == len(BEEPS), first_flashes
    for beep, flash in zip(beeps, first_flashes, strict=True):
        assert abs(flash - beep) <= PERIOD, (beep, flash)
    # Every picture carries the media time it shows; none of the old turn after the barge-in's cut was shown.
    shown = [read_code(pixels) for _, pixels in pictures]
    times = [code[1] / 1000 for code in shown if code is not None]
    assert times == sorted(times)
    # The first turn (from media 0) was heard up to where the speaker was cut; what the avatar had made of the
    # rest, held or in flight at the barge-in, is neither shown nor heard.
    (cut,) = [e for e in log.of("playback_finished") if e.node == "out" and e.fields["interrupted"]]
    heard = float(cut.fields["position"])
    assert 1.5 < heard < INTERRUPT
    assert not [t for t in times if heard + PERIOD <= t < 3.0], (heard, times)
    assert not np.abs(audio[round((heard + 0.01) * RATE) : 3 * RATE, 1]).max() > 0
