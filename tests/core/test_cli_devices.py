"""The command line's sound devices, through the installed command: ``mediagraph devices`` (with PulseAudio's
devices, with none, without PortAudio), ``--output-device``/``--input-device`` reaching every speaker and mic
(slot children and swap targets included), and ``mediagraph play``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GRAPHS = ROOT / "graphs"
SCRIPT = shutil.which("mediagraph", path=str(Path(sys.executable).parent))
COMMAND = [SCRIPT] if SCRIPT else [sys.executable, "-m", "mediagraph"]
PULSE_DIR = os.environ.get("MEDIAGRAPH_PULSE_DIR", "/tmp/mediagraph-pulse")
SAMPLE = GRAPHS / "media" / "noisy_speech.ogg"


def mediagraph(*args: object, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def pulse_env() -> dict[str, str]:
    """The environment of a command that sees the test PulseAudio server (started if needed)."""
    started = subprocess.run(
        ["bash", str(ROOT / "tools" / "pulse.sh"), "--start"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    if started.returncode != 0:
        pytest.skip(f"PulseAudio cannot be started (bash tools/pulse.sh installs it): {started.stderr.strip()}")
    return os.environ | {"PULSE_SERVER": f"unix:{PULSE_DIR}/native", "PULSE_SINK": "mediagraph_out"}


def test_devices_lists_the_outputs_and_inputs_with_the_defaults_marked(
    tmp_path: Path, pulse_env: dict[str, str]
) -> None:
    done = mediagraph("devices", cwd=tmp_path, env=pulse_env)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    outputs, inputs = out.split("input devices")
    assert outputs.startswith("output devices (") and "pulse" in outputs
    assert any(line.startswith(" * ") and "default" in line for line in outputs.splitlines()), out
    assert "pulse" in inputs


def test_devices_with_no_sound_server_says_so(tmp_path: Path) -> None:
    env = os.environ | {"PULSE_SERVER": f"unix:{tmp_path}/nothing-here"}
    done = mediagraph("devices", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "output devices: none (PortAudio sees no sound card, and no sound server" in done.stdout


def test_devices_without_portaudio_names_the_library_and_the_install_command(tmp_path: Path) -> None:
    (tmp_path / "sounddevice.py").write_text("raise OSError('PortAudio library not found')\n")
    env = os.environ | {"PYTHONPATH": str(tmp_path)}
    done = mediagraph("devices", cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "mediagraph: error: the PortAudio library (libportaudio2) is not installed, so there are no sound devices "
        "to list (PortAudio library not found); install it with: apt-get install libportaudio2"
    )


SWAP_ONLY = """\
# a speaker only as a swap target
nodes:
  tone: {type: tone_source, duration: 0.5}
  out: {type: slot, like: speaker}
links: [tone.audio -> out.audio]
schedule:
  - {at: 0.1, swap: out, to: {type: speaker, device: virtual}}
"""


def test_the_output_device_reaches_slot_children_and_swap_targets(tmp_path: Path) -> None:
    shutil.copytree(GRAPHS, tmp_path / "graphs", ignore=shutil.ignore_patterns("out"))
    talking = tmp_path / "graphs" / "talking_agent.yaml"
    refused = mediagraph("run", talking, "--clock", "virtual", "--output-device", "pulse", cwd=tmp_path)
    assert refused.returncode == 1
    assert "node 'out' (slot child) (speaker) uses a real device" in refused.stderr
    (tmp_path / "swap.yaml").write_text(SWAP_ONLY)
    refused = mediagraph("run", "swap.yaml", "--clock", "virtual", "--output-device", "pulse", cwd=tmp_path)
    assert refused.returncode == 1
    assert "swap action at 0.1 s (speaker) uses a real device" in refused.stderr
    assert mediagraph("run", "swap.yaml", "--clock", "virtual", cwd=tmp_path).returncode == 0
    real = textwrap.dedent(SWAP_ONLY).replace("device: virtual", "device: pulse")
    (tmp_path / "real.yaml").write_text(real)
    made_virtual = mediagraph("run", "real.yaml", "--clock", "virtual", "--output-device", "virtual", cwd=tmp_path)
    assert made_virtual.returncode == 0, made_virtual.stderr


def test_a_mic_has_no_virtual_device_and_says_what_to_use(tmp_path: Path) -> None:
    (tmp_path / "mic.yaml").write_text(
        "# a mic\nnodes:\n  mic: {type: mic}\n  sink: {type: null_sink}\nlinks: [mic.audio -> sink.audio]\n"
    )
    done = mediagraph("check", "mic.yaml", "--input-device", "virtual", cwd=tmp_path)
    assert done.returncode == 1
    assert "a mic has no virtual device (a speaker has); for recorded input use a file_source node" in done.stderr
    assert done.stderr.rstrip().endswith("(the value of --input-device)"), "the flag that set it is named"
    assert mediagraph("check", "mic.yaml", "--input-device", "3", cwd=tmp_path).returncode == 0


def test_play_plays_a_file_on_the_chosen_device(tmp_path: Path) -> None:
    done = mediagraph("play", SAMPLE, "--output-device", "virtual", "--duration", "0.5", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    total = re.search(r"speaker_total received=(\d+) played=(\d+)", done.stderr)
    assert total is not None, done.stderr
    received, played = map(int, total.groups())  # half a second of real time: about 50 frames of 10 ms
    assert 40 <= received <= 60 and 0 < played <= received * 480, done.stderr


def test_play_with_no_output_device_says_so_and_what_to_do(tmp_path: Path) -> None:
    env = os.environ | {"PULSE_SERVER": f"unix:{tmp_path}/nothing-here"}
    done = mediagraph("play", SAMPLE, cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert done.stderr.startswith("mediagraph: error: there is no sound output device")
    assert "--output-device virtual" in done.stderr


def test_play_a_file_that_is_not_media_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not audio\n")
    done = mediagraph("play", "notes.txt", "--output-device", "virtual", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("mediagraph: error: node 'file' (file_source): path 'notes.txt': not a media file")


def test_play_reaches_a_real_device(tmp_path: Path, pulse_env: dict[str, str]) -> None:
    done = mediagraph("play", SAMPLE, "--output-device", "pulse", "--duration", "0.5", cwd=tmp_path, env=pulse_env)
    assert done.returncode == 0, done.stderr
    assert "speaker_total" in done.stderr and "played=" in done.stderr
