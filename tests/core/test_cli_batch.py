"""``mediagraph batch`` and ``mediagraph serve`` through the installed command, with real worker processes:
a batch's per-input outputs, its failed input reported in the summary and the exit status, colliding outputs
refused before anything runs; serve keeping sessions up until --duration or a signal (the first stops them
gracefully: exit 130)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np

SCRIPT = shutil.which("mediagraph", path=str(Path(sys.executable).parent))
COMMAND = [SCRIPT] if SCRIPT else [sys.executable, "-m", "mediagraph"]
ROOT = Path(__file__).resolve().parents[2]
DENOISE = ROOT / "graphs" / "denoise_file.yaml"

ENDLESS = """
nodes:
  tone: {type: tone_source}
  sink: null_sink
links:
  - tone.audio -> sink.audio
"""


def recordings(folder: Path, count: int, corrupt: int) -> None:
    folder.mkdir()
    for i in range(count):
        path = folder / f"call{i}.wav"
        if i == corrupt:
            path.write_bytes(b"RIFF....WAVEfmt garbage")
            continue
        samples = (6000 * np.sin(np.arange(8000) * (0.05 + 0.01 * i))).astype(np.int16)
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(samples.tobytes())


def batch(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [*COMMAND, "batch", str(DENOISE), "--over", "rec/*.wav", "--processes", "2", *args]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)


def test_a_batch_names_each_output_after_its_input_and_reports_the_corrupt_one(tmp_path: Path) -> None:
    recordings(tmp_path / "rec", 4, corrupt=1)
    done = batch(tmp_path, "--set", "source.path={file}", "--set", "cleaned.path=out/{stem}.ogg")
    assert done.returncode == 1, done.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["call0.ogg", "call2.ogg", "call3.ogg"]
    assert "4 inputs: 3 ok, 1 failed in " in done.stdout
    row = next(line for line in done.stdout.splitlines() if "rec/call1.wav" in line)
    assert "failed" in row and "node 'source' (file_source)" in done.stdout
    assert "failed rec/call1.wav: " in done.stderr, "a line per input on a pipe, the failure with its reason"


def test_outputs_that_would_collide_are_refused_before_anything_runs(tmp_path: Path) -> None:
    recordings(tmp_path / "rec", 2, corrupt=-1)
    done = batch(tmp_path, "--set", "source.path={file}", "--set", "cleaned.path=out/all.ogg")
    assert done.returncode == 1
    assert "would both write" in done.stderr and "{stem}" in done.stderr
    assert not (tmp_path / "out").exists()


def test_serve_keeps_sessions_up_until_its_duration(tmp_path: Path) -> None:
    graph = tmp_path / "tone.yaml"
    graph.write_text(ENDLESS.replace("{type: tone_source}", "{type: tone_source, duration: 1}"))
    command = [*COMMAND, "serve", str(graph), "--sessions", "2", "--duration", "2.5", "--processes", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "another takes its place" in done.stderr and "2.5 s passed: stopping every session" in done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("serve: ") and ", 0 failed" in last


def test_serve_stops_its_sessions_at_the_first_signal(tmp_path: Path) -> None:
    graph = tmp_path / "endless.yaml"
    graph.write_text(ENDLESS)
    command = [*COMMAND, "serve", str(graph), "--sessions", "3", "--processes", "2"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as serving:
        assert serving.stderr is not None
        for line in serving.stderr:  # the first status line: the sessions are up
            if "serve: 3/3 live" in line:
                break
        serving.send_signal(signal.SIGINT)
        out, err = serving.communicate(timeout=60)
    assert serving.returncode == 130, err
    assert "SIGINT: stopping every session" in err
    assert out.strip().splitlines()[-1] == "serve: 3 sessions started, 3 ended, 0 failed"


def test_a_batch_output_is_byte_for_byte_what_run_on_the_virtual_clock_writes(tmp_path: Path) -> None:
    recordings(tmp_path / "rec", 2, corrupt=-1)
    done = batch(tmp_path, "--set", "source.path={file}", "--set", "cleaned.path=out/{stem}.wav")
    assert done.returncode == 0, done.stderr
    for stem in ("call0", "call1"):
        alone = [f"--set=source.path=rec/{stem}.wav", f"--set=cleaned.path=alone/{stem}.wav"]
        ran = subprocess.run(
            [*COMMAND, "run", str(DENOISE), "--clock", "virtual", "-q", *alone],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert ran.returncode == 0, ran.stderr
        assert (tmp_path / "out" / f"{stem}.wav").read_bytes() == (tmp_path / "alone" / f"{stem}.wav").read_bytes()
