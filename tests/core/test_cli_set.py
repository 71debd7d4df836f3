"""``--set`` through the installed command: dotted paths into nested parameters (a processor's, a slot
child's) and into resources, with errors located at the argument."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

GRAPHS = Path(__file__).resolve().parents[2] / "graphs"
SCRIPT = shutil.which("mediagraph", path=str(Path(sys.executable).parent))
COMMAND = [SCRIPT] if SCRIPT else [sys.executable, "-m", "mediagraph"]


def check(tmp_path: Path, graph: str, *sets: str) -> subprocess.CompletedProcess[str]:
    args = [arg for s in sets for arg in ("--set", s)]
    return subprocess.run(
        [*COMMAND, "check", str(tmp_path / "graphs" / graph), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_set_reaches_nested_parameters_and_resources_and_locates_its_errors(tmp_path: Path) -> None:
    shutil.copytree(GRAPHS, tmp_path / "graphs", ignore=shutil.ignore_patterns("out"))
    ok = check(tmp_path, "noisy_speech_demo.yaml", "denoise.processor.noise_suppression=false")
    assert ok.returncode == 0, ok.stderr
    ok = check(tmp_path, "talking_agent.yaml", "out.child.block_ms=20", "tts.rate=200")
    assert ok.returncode == 0, ok.stderr
    ok = check(tmp_path, "nova_sonic_agent.yaml", "resources.aws.cancel_timeout=2")
    assert ok.returncode == 0, ok.stderr
    typo = check(tmp_path, "noisy_speech_demo.yaml", "denoise.processor.noise_supression=false")
    assert typo.returncode == 1
    assert typo.stderr.startswith("--set denoise.processor.noise_supression=false: error: node 'denoise'")
    assert "(did you mean 'noise_suppression'?)" in typo.stderr
    bad = check(tmp_path, "talking_agent.yaml", "resources.voice.type=apm")
    assert bad.returncode == 1 and "--set cannot change a resource's 'type'" in bad.stderr
