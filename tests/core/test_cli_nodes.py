"""``mediagraph nodes`` through the installed command: every name it lists can be inspected (node types with
their ports, resource types, schedule actions), in plain text."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

SCRIPT = shutil.which("mediagraph", path=str(Path(sys.executable).parent))
COMMAND = [SCRIPT] if SCRIPT else [sys.executable, "-m", "mediagraph"]


def test_every_listed_name_is_described_in_plain_text_with_its_ports(tmp_path: Path) -> None:
    listing = subprocess.run([*COMMAND, "nodes"], capture_output=True, text=True, timeout=60, check=True).stdout
    sections: dict[str, list[str]] = {}
    current = ""
    for line in listing.splitlines():
        if line.endswith(":") and not line.startswith(" "):
            current = line[:-1]
        elif line.startswith("  ") and current:
            sections.setdefault(current, []).append(line.split()[0])
    assert {"node types", "resource types", "schedule actions"} <= set(sections)
    names = [name for names in sections.values() for name in names]
    procs = {
        name: subprocess.Popen([*COMMAND, "nodes", name], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in names
    }
    done = {name: (proc.communicate(timeout=60), proc.returncode) for name, proc in procs.items()}  # all reaped
    for name, ((out, err), returncode) in done.items():
        assert returncode == 0, (name, err)
        assert "``" not in out and not re.search(r":\w+:`", out), (name, out)
        if name in sections["node types"]:
            assert re.search(r"^ports", out, re.MULTILINE), (name, out)
            assert "they depend on the parameters" not in out, name
        if name in sections["schedule actions"]:
            assert out.startswith(f"{name} (schedule action): ") and "keys of its schedule entry: at, " in out


def test_the_shell_completes_commands_options_and_type_names(tmp_path: Path) -> None:
    """What bash asks through argcomplete (``eval "$(register-python-argcomplete mediagraph)"``)."""

    def complete(line: str) -> list[str]:
        out = tmp_path / "completions"
        env = os.environ | {
            "_ARGCOMPLETE": "1",
            "COMP_LINE": line,
            "COMP_POINT": str(len(line)),
            "_ARGCOMPLETE_STDOUT_FILENAME": str(out),
        }
        subprocess.run(COMMAND, env=env, capture_output=True, timeout=60, check=True)
        return sorted(word.strip() for word in out.read_text().split("\v"))

    assert complete("mediagraph no") == ["nodes"]
    assert complete("mediagraph nodes nov") == ["nova_sonic"]
    assert complete("mediagraph nodes sw") == ["swap"]
    assert complete("mediagraph run --output-d") == ["--output-device", "--output-dir"]
