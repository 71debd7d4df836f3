"""A recording killed with SIGKILL loses at most about a second, in every format.

Each case runs the README demo's shape through the CLI in a subprocess, on the real clock: a user tone
(300 Hz) straight into the recorder, an agent tone (1 kHz) played by a virtual speaker whose playback events
go to the recorder, so agent audio is written only once the speaker reports it played. The process is
killed once the speaker has reported a given position (read from the events file, which the CLI writes line
by line); what is left under the in-progress name is decoded and compared with what was played: the last
progress logged, plus one progress interval the speaker may have played unreported.

These are the only tests that wait on a real process; each takes two to three seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest

RATE = 48000
PROGRESS_S = 0.1  # the speaker's default progress_ms
MAX_LOSS_S = 1.0

GRAPH = """\
graph: kill_test
nodes:
  user: {{type: tone_source, frequency: 300}}
  agent: {{type: tone_source, frequency: 1000}}
  speaker: {{type: speaker, device: virtual}}
  recorder: {{type: recorder, path: {name}}}
links:
  - user.audio -> recorder.user
  - agent.audio -> speaker.audio
  - agent.audio -> recorder.agent
  - speaker.playback -> recorder.playback
"""


def events(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # the last line, cut by the kill
            break
    return out


def played(log: list[dict[str, object]]) -> float:
    """The furthest position the speaker reported (its one segment starts at media time 0)."""
    return max((float(e["position"]) for e in log if e["event"] == "playback_progress"), default=0.0)  # type: ignore[arg-type]


def decode(path: Path) -> npt.NDArray[np.int16]:
    """Every sample of ``path`` as (n, 2) int16 at 48 kHz."""
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="s16", layout="stereo", rate=RATE)
        frames = [f for decoded in container.decode(audio=0) for f in resampler.resample(decoded)]
    chunks = [np.zeros((0, 2), np.int16)] + [np.asarray(f.to_ndarray(), np.int16).reshape(-1, 2) for f in frames]
    return np.concatenate(chunks)


def dominant(x: npt.NDArray[np.int16]) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    return float(np.argmax(spectrum) * RATE / len(x))


@pytest.mark.parametrize(("ext", "kill_at"), [(".ogg", 1.3), (".wav", 1.9), (".mp4", 1.6)])
def test_a_recording_killed_with_sigkill_keeps_all_but_the_last_second(
    tmp_path: Path, ext: str, kill_at: float
) -> None:
    name = f"call{ext}"
    graph = tmp_path / "kill_test.yaml"
    graph.write_text(GRAPH.format(name=name), encoding="utf-8")
    log_path = tmp_path / "events.jsonl"
    with open(tmp_path / "output.txt", "wb") as output:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mediagraph", "run", str(graph), "--events", str(log_path)],
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            deadline = time.monotonic() + 30
            while played(events(log_path)) < kill_at:
                assert proc.poll() is None, (tmp_path / "output.txt").read_text()
                assert time.monotonic() < deadline, "the speaker never got there"
                time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    log = events(log_path)
    assert "recording_started" in [e["event"] for e in log if e["node"] == "recorder"]
    assert not [e for e in log if e["event"] in ("recording_finished", "node_finished")], "killed mid-run"
    assert not (tmp_path / name).exists(), "nothing under the final name: the recording was never finalized"
    got = decode(tmp_path / f"{name}.part")
    recorded = len(got) / RATE
    loss = played(log) + PROGRESS_S - recorded
    print(f"{ext}: played {played(log):.2f} s (+{PROGRESS_S} s unreported at most), kept {recorded:.3f} s")
    assert loss <= MAX_LOSS_S, f"{ext}: {loss:.3f} s lost"
    # Both sides are there, each where it belongs, up to the end of what was kept (the codecs' edges aside).
    body = got[RATE // 10 : len(got) - RATE // 20]
    assert len(body) > RATE // 2
    assert dominant(body[:, 0]) == pytest.approx(300, abs=5)
    assert dominant(body[:, 1]) == pytest.approx(1000, abs=5)
    tail = body[-RATE // 10 :].astype(np.float64)
    assert np.sqrt(np.mean(tail**2, axis=0)).min() > 5000, "the last moments kept hold both tones"
