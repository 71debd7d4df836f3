"""Graph files from someone else: bounded before anything runs, located errors, no traceback, nothing written.

Most cases load in-process (fast); the ones that concern the command line run it in a subprocess and check
the exit status, the ``FILE:LINE`` of the message, the time and memory it took and that nothing was written.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import time
import wave
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mediagraph as mg
from mediagraph._draw import to_dot, to_mermaid
from mediagraph._limits import MAX_DEPTH, MAX_SCALAR_CHARS, MAX_VALUES, cut, is_secret, quote
from mediagraph._yaml import Override, parse_graph

SCRIPT = shutil.which("mediagraph", path=str(Path(sys.executable).parent))
COMMAND = [SCRIPT] if SCRIPT else [sys.executable, "-m", "mediagraph"]


def load(text: str, **kwargs: Any) -> mg.GraphFile:
    return parse_graph(textwrap.dedent(text), filename="f.yaml", **kwargs)


def refused(text: str, **kwargs: Any) -> mg.GraphDefinitionError:
    with pytest.raises(mg.GraphDefinitionError) as info:
        load(text, **kwargs)
    return info.value


def mediagraph(
    *args: Any, cwd: Path, timeout: float = 30, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run the command; returns the result and the seconds it took."""
    start = time.monotonic()
    done = subprocess.run(
        [*COMMAND, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    return done, time.monotonic() - start


def peak_child_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def laughs(indent: str, levels: int = 9) -> str:
    """A flow list holding the classic nested aliases: 9**levels strings once expanded, ~400 bytes of text."""
    rows = [f"&l0 [{', '.join(['lol'] * 9)}]"]
    rows += [f"&l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "[\n" + ",\n".join(indent + "  " + row for row in rows) + "\n" + indent + "]"


TONE = """\
nodes:
  tone: {{type: tone_source, duration: 1{extra}}}
  sink: null_sink
links: [tone.audio -> sink.audio]
"""

# --- aliases, depth, sizes ---------------------------------------------------------------------------------

BOMBS = {
    "parameter": "nodes:\n  tone:\n    type: tone_source\n    frequency: {bomb}\n  sink: null_sink\n"
    "links: [tone.audio -> sink.audio]\n",
    "stop": TONE.format(extra="") + "schedule:\n  - at: 1\n    stop: {bomb}\n",
    "slot child": "nodes:\n  tone: {type: tone_source, duration: 1}\n  out:\n    type: slot\n"
    "    child: {type: null_sink, x: {bomb}}\nlinks: [tone.audio -> out.audio]\n",
    "swap target": "nodes:\n  tone: {type: tone_source, duration: 1}\n  out: {type: slot, child: {type: null_sink}}\n"
    "links: [tone.audio -> out.audio]\nschedule:\n  - at: 1\n    swap: {bomb}\n    to: null\n",
}


@pytest.mark.parametrize("where", sorted(BOMBS))
def test_billion_laughs_is_refused_at_once(where: str) -> None:
    text = BOMBS[where].replace("{bomb}", laughs("    "))
    start = time.process_time()
    exc = refused(text)
    assert time.process_time() - start < 1
    assert exc.location is not None and exc.location.startswith("f.yaml:")
    assert f"more than {MAX_VALUES:,} values through YAML aliases" in exc.message
    assert len(str(exc)) < 300


def test_billion_laughs_through_the_cli_is_fast_small_and_located(tmp_path: Path) -> None:
    # Before: 54 s and 2.2 GB, then a MemoryError traceback.
    path = tmp_path / "g.yaml"
    path.write_text(BOMBS["parameter"].replace("{bomb}", laughs("    ")))
    assert path.stat().st_size < 700
    done, seconds = mediagraph("check", path, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert re.match(rf"{re.escape(str(path))}:\d+:\d+: error: nodes > tone > frequency > \[4\]: ", done.stderr)
    assert seconds < 10
    assert peak_child_rss_mb() < 400


def test_an_alias_inside_its_own_anchor() -> None:
    exc = refused(TONE.format(extra=", frequency: &a [1, *a]"))
    assert "contains itself" in exc.message
    assert exc.location == "f.yaml:2:53"


def test_deep_nesting_is_refused_with_its_line() -> None:
    deep = "[" * 400 + "1" + "]" * 400
    exc = refused(TONE.format(extra=f", frequency: {deep}"))
    assert exc.location is not None and exc.location.startswith("f.yaml:2:")
    assert f"deeper than {MAX_DEPTH} levels" in exc.message


def test_nesting_through_aliases_is_bounded_too() -> None:
    inner = "[" * 40 + "1" + "]" * 40
    exc = refused(TONE.format(extra=f", frequency: [&a {inner}, " + "[" * 30 + "*a" + "]" * 30 + "]"))
    assert f"deeper than {MAX_DEPTH} levels through YAML aliases" in exc.message
    assert "tone > frequency" in exc.message


def test_a_huge_value_is_refused_and_not_echoed() -> None:
    exc = refused(TONE.format(extra=", frequency: " + "x" * (MAX_SCALAR_CHARS + 1)))
    assert exc.location == "f.yaml:2:53"
    assert "nodes > tone > frequency" in exc.message
    assert len(str(exc)) < 300


def test_a_long_list_is_refused() -> None:
    exc = refused(TONE.format(extra=", frequency: [" + "1," * MAX_VALUES + "1]"))
    assert f"more than {MAX_VALUES:,} values" in exc.message
    assert exc.location is not None and exc.location.startswith("f.yaml:2:")


def test_a_5_mb_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text(TONE.format(extra=", frequency: " + "9" * 5_000_000))
    with pytest.raises(mg.GraphDefinitionError, match="larger than 1 MiB"):
        mg.load_graph(path)


def test_errors_quote_a_readable_slice_of_a_value() -> None:
    exc = refused(TONE.format(extra=", frequency: [" + ", ".join(["known"] * 5000) + "]"))
    assert "must be float" in exc.message
    assert len(str(exc)) < 300
    exc = refused("nodes:\n  tone:\n    type: tone_source\n    " + "z" * 1000 + ": 1\n")
    assert "unknown parameter" in exc.message
    assert len(str(exc)) < 400


def test_known_names_are_listed_within_bounds() -> None:
    nodes = "".join(f"  n{i}_{'q' * 50}: null_sink\n" for i in range(2000))
    exc = refused("nodes:\n  tone: tone_source\n" + nodes + "links: [tone.audio -> zzz.audio]\n")
    assert "and 1,989 more" in exc.message
    assert len(str(exc)) < 1000


def test_cut_and_quote() -> None:
    assert cut("short") == "short"
    long = cut("a" * 10_000 + "END")
    assert len(long) < 100 and long.endswith("(10,003 characters)") and "END" in long
    assert len(quote(list(range(10**6)))) < 200
    shared: list[Any] = ["lol"] * 9
    for _ in range(8):
        shared = [shared] * 9
    assert len(quote(shared)) < 200  # 9**9 items behind the repr; never built
    assert "sk-123" not in quote({"api_key": "sk-123", "model": "m"})
    assert "<an integer of about" in quote(10**400)


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("api_key", True),
        ("token", True),
        ("db_password", True),
        ("clientSecret", True),
        ("aws-credentials", True),
        ("apikey", True),
        ("keyframe_interval", False),
        ("frequency", False),
        ("path", False),
    ],
)
def test_names_of_secrets(name: str, secret: bool) -> None:
    assert is_secret(name) is secret


# --- numbers -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "where", "message"),
    [
        (", frequency: " + "9" * 400, "f.yaml:2:53", "a number written with 400 characters is out of range"),
        (", frequency: 1.0e+999", "f.yaml:2:53", "parameter 'frequency' must be a finite number, got inf"),
        (", frequency: .nan", "f.yaml:2:53", "parameter 'frequency' must be a finite number, got nan"),
        ("", "f.yaml:2:39", "parameter 'duration' must be a finite number, got inf"),
    ],
)
def test_numbers_out_of_range(extra: str, where: str, message: str) -> None:
    text = TONE.format(extra=extra)
    if not extra:
        text = text.replace("duration: 1", "duration: .inf")
    exc = refused(text)
    assert exc.location == where
    assert message in exc.message


def test_integers_past_int64_are_refused_in_python_too() -> None:
    g = mg.Graph()
    with pytest.raises(mg.GraphDefinitionError, match="out of range") as info:
        g.add("tone", "tone_source", frequency=10**400)
    assert info.value.param == "frequency"
    with pytest.raises(mg.GraphDefinitionError, match="out of range"):
        g.add("tone", "tone_source", sample_rate=2**70)


@pytest.mark.parametrize(
    ("supervision", "message"),
    [
        ("{restart: {backoff: .inf}}", "'backoff' must be a finite number"),
        ("{restart: {max_restarts: 2000}}", "'max_restarts' must be <= 100"),
        ("{restart: {backoff: 7200}}", "'backoff' must be <= 3600"),
    ],
)
def test_supervision_is_bounded(supervision: str, message: str) -> None:
    text = "nodes:\n  tone: {type: tone_source, duration: 1}\n  sink:\n    type: null_sink\n"
    text += f"    supervision: {supervision}\nlinks: [tone.audio -> sink.audio]\n"
    exc = refused(text)
    assert message in exc.message
    assert exc.location is not None and exc.location.startswith("f.yaml:5:")


def test_overrides_are_bounded_too() -> None:
    with pytest.raises(ValueError, match="more than"):
        Override.parse("tone.frequency=" + laughs("").replace("\n", " "))


# --- the graph file itself ---------------------------------------------------------------------------------


def test_non_utf8_bytes_are_reported_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_bytes(TONE.format(extra="").encode() + b"# caf\xe9\n")
    with pytest.raises(mg.GraphDefinitionError) as info:
        mg.load_graph(path)
    assert info.value.location == f"{path}:5:6"
    assert "not UTF-8" in info.value.message


def test_a_control_character_is_reported_with_its_line() -> None:
    exc = refused(TONE.format(extra="") + "# bell \x07\n")
    assert exc.location == "f.yaml:5:8"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_as_the_graph_file_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "g.yaml"
    os.mkfifo(fifo)
    with pytest.raises(mg.GraphDefinitionError, match="not a regular file"):
        mg.load_graph(fifo)


# --- outputs stay where they belong ------------------------------------------------------------------------

MEDIA = Path(__file__).resolve().parents[2] / "graphs" / "media" / "noisy_speech.ogg"

RECORDING = """\
nodes:
  voice: {{type: file_source, path: in.ogg, paced: false}}
  rec: {{type: recorder, path: {out}}}
links: [voice.audio -> rec.user]
"""


def graph_dir(tmp_path: Path, out: str, extra_nodes: str = "") -> Path:
    folder = tmp_path / "graphs"
    folder.mkdir(exist_ok=True)
    shutil.copy(MEDIA, folder / "in.ogg")
    text = RECORDING.format(out=out)
    if extra_nodes:
        text = text.replace("links:", extra_nodes + "links:")
    (folder / "g.yaml").write_text(text)
    return folder / "g.yaml"


def confined(path: Path, *dirs: Path, overrides: tuple[str, ...] = ()) -> mg.GraphFile:
    return mg.load_graph(path, output_dirs=list(dirs), overrides=[Override.parse(o) for o in overrides])


def test_ready_made_outputs_stay_in_their_folder(tmp_path: Path) -> None:
    gf = confined(graph_dir(tmp_path, "out/a.wav"))
    assert [(p.role, p.param) for p in gf.paths] == [("input", "path"), ("output", "path")]


def test_an_output_that_is_the_input_is_refused(tmp_path: Path) -> None:
    path = graph_dir(tmp_path, "in.ogg")
    before = (path.parent / "in.ogg").read_bytes()
    with pytest.raises(mg.GraphDefinitionError) as info:
        mg.load_graph(path)  # even unconfined: it would destroy the input
    assert info.value.location == f"{path}:3:31"
    assert "node 'rec'" in info.value.message and "node 'voice'" in info.value.message
    assert "writing it would destroy what is read" in info.value.message
    assert (path.parent / "in.ogg").read_bytes() == before


def test_two_outputs_on_one_file_are_refused(tmp_path: Path) -> None:
    path = graph_dir(tmp_path, "out/a.wav", "  rec2: {type: recorder, path: out/../out/a.wav}\n")
    path.write_text(
        path.read_text().replace(
            "links: [voice.audio -> rec.user]", "links:\n  - voice.audio -> rec.user\n  - voice.audio -> rec2.user"
        )
    )
    with pytest.raises(mg.GraphDefinitionError, match="two writers would corrupt it") as info:
        mg.load_graph(path)
    assert info.value.location == f"{path}:4:32"


def test_an_output_over_the_graph_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "g.wav"
    path.write_text(
        "nodes:\n  tone: {type: tone_source, duration: 1}\n  rec: {type: recorder, path: g.wav}\n"
        "links: [tone.audio -> rec.user]\n"
    )
    with pytest.raises(mg.GraphDefinitionError, match="is also the graph file"):
        mg.load_graph(path)


@pytest.mark.parametrize("out", ["../a.wav", "../../../a.wav", "out/../../a.wav", "~/a.wav", "/tmp/mediagraph-a.wav"])
def test_outputs_that_escape_need_permission(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, out: str) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = graph_dir(tmp_path, out)
    with pytest.raises(mg.GraphDefinitionError, match="allow its folder with --output-dir DIR") as info:
        confined(path)
    assert info.value.location == f"{path}:3:31"
    assert info.value.param == "path"
    mg.load_graph(path)  # unconfined (the Python API's default), the same file loads
    target = Path(os.path.realpath(Path(out).expanduser() if out[0] in "/~" else path.parent / out))
    confined(path, target.parent)  # allowed explicitly


def test_a_symlinked_folder_leading_out_is_refused(tmp_path: Path) -> None:
    path = graph_dir(tmp_path, "out/a.wav")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (path.parent / "out").symlink_to(elsewhere)
    with pytest.raises(mg.GraphDefinitionError, match="leads outside"):
        confined(path)
    confined(path, elsewhere)


def test_a_symlink_at_the_output_is_refused_even_when_allowed(tmp_path: Path) -> None:
    path = graph_dir(tmp_path, "out/a.wav")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (path.parent / "out").mkdir()
    (path.parent / "out" / "a.wav").symlink_to(victim)
    for dirs in ((), (tmp_path,)):
        with pytest.raises(mg.GraphDefinitionError, match="is a symbolic link"):
            confined(path, *dirs)
    with pytest.raises(mg.GraphDefinitionError, match="is a symbolic link"):
        mg.load_graph(path)
    assert victim.read_text() == "precious"


def test_set_values_stay_in_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = graph_dir(tmp_path, "out/a.wav")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    gf = confined(path, overrides=("rec.path=b.wav",))
    assert gf.paths[-1].path == work / "b.wav"
    with pytest.raises(mg.GraphDefinitionError, match="leads outside") as info:
        confined(path, overrides=("rec.path=../b.wav",))
    assert info.value.location == "--set rec.path=../b.wav"


def test_a_slot_child_and_a_swap_target_are_confined_too(tmp_path: Path) -> None:
    folder = tmp_path / "graphs"
    folder.mkdir()
    path = folder / "g.yaml"
    base = "nodes:\n  tone: {type: tone_source, duration: 1}\n  out: {type: slot, child: {type: recorder, path: %s}}\n"
    base += "links: [tone.audio -> out.user]\n"
    path.write_text(base % "../a.wav")
    with pytest.raises(mg.GraphDefinitionError, match="node 'out' \\(child\\): output path") as info:
        confined(path)
    assert info.value.location == f"{path}:3:28"
    swap = "schedule:\n  - {at: 0.5, swap: out, to: {type: recorder, path: /tmp/x.wav}}\n"
    path.write_text(base % "a.wav" + swap)
    with pytest.raises(mg.GraphDefinitionError, match="swap action") as info:
        confined(path)
    assert info.value.location == f"{path}:6:5"


def test_run_refuses_an_escaping_output_and_writes_nothing(tmp_path: Path) -> None:
    path = graph_dir(tmp_path, "../escaped.wav")
    done, _ = mediagraph("run", path, "--clock", "virtual", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith(f"{path}:3:31: error: node 'rec': output path")
    assert "--output-dir" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "escaped.wav").exists()
    done, _ = mediagraph("run", path, "--clock", "virtual", "--output-dir", tmp_path, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "escaped.wav").stat().st_size > 1000
    done, _ = mediagraph("run", "--help", cwd=tmp_path)
    assert "--output-dir DIR" in done.stdout


# --- a graph's code does not run before 'run'; secrets stay secret; diagrams are escaped ---------------------

PLUGIN = """
import pathlib, os
import livekit.rtc as rtc

pathlib.Path(os.environ["MARKER"]).write_text("imported")


class Sneaky(rtc.FrameProcessor):
    def __init__(self, **options):
        if options.get("fail"):
            raise RuntimeError("the server refused key " + options.get("api_key", ""))

    enabled = True

    def _process(self, frame):
        return frame

    def _close(self):
        pass
"""

PLUGGED = """\
resources:
  ns: {type: plugin, plugin: "sneaky_plugin:Sneaky", options: {api_key: sk-TOPSECRET-42, fail: %s}}
nodes:
  tone: {type: tone_source, duration: 0.1}
  fp: {type: frame_processor, processor: ns}
  sink: null_sink
links: [tone.audio -> fp.audio, fp.audio -> sink.audio]
"""


@pytest.fixture
def plugin_env(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sneaky_plugin.py").write_text(PLUGIN)
    return {**os.environ, "PYTHONPATH": str(site), "MARKER": str(tmp_path / "marker")}


def test_check_and_draw_never_import_the_graphs_code(tmp_path: Path, plugin_env: dict[str, str]) -> None:
    (tmp_path / "g.yaml").write_text(PLUGGED % "false")
    marker = tmp_path / "marker"
    for args in (["check", "g.yaml"], ["draw", "g.yaml", "-o", "g.mmd"]):
        done, _ = mediagraph(*args, cwd=tmp_path, env=plugin_env)
        assert done.returncode == 0, done.stderr
        assert not marker.exists(), args
    done, _ = mediagraph("check", "--import-plugins", "g.yaml", cwd=tmp_path, env=plugin_env)
    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "imported"


def test_a_resource_that_fails_to_open_is_located_and_its_secret_masked(
    tmp_path: Path, plugin_env: dict[str, str]
) -> None:
    (tmp_path / "g.yaml").write_text(PLUGGED % "true")
    done, _ = mediagraph("run", "g.yaml", "--clock", "virtual", "--events", "ev.jsonl", cwd=tmp_path, env=plugin_env)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "g.yaml:2:3: error: resource 'ns' (plugin) failed to open: the server refused key ***" in done.stderr
    assert "sk-TOPSECRET-42" not in done.stderr + (tmp_path / "ev.jsonl").read_text()


def test_a_slot_child_with_a_typo_does_not_echo_a_secret() -> None:
    exc = refused(
        """\
        nodes:
          tone: {type: tone_source, duration: 1}
          out:
            type: slot
            child: {typ: frame_processor, processor: {type: plugin, plugin: "m:C", options: {api_key: sk-LEAK-1}}}
        links: [tone.audio -> out.audio]
        """
    )
    assert "'type'" in exc.message
    assert "sk-LEAK-1" not in str(exc)
    exc = refused(TONE.format(extra="") + "", overrides=[Override.parse("tone.token=sk-LEAK-2")])
    assert "sk-LEAK-2" not in str(exc)


def test_config_reprs_mask_secrets() -> None:
    gf = load(PLUGGED % "false", import_code=False)
    assert "sk-TOPSECRET-42" not in repr(gf.graph.resources["ns"].config)
    assert "sk-TOPSECRET-42" not in repr(gf.graph.nodes["fp"])
    assert "'***'" in repr(gf.graph.nodes["fp"])
    assert gf.secrets == {"sk-TOPSECRET-42"}


def test_mermaid_and_dot_are_escaped() -> None:
    gf = load(
        """\
        graph: "x\\nclick n_tone call alert()\\n%% \\"]) --> evil["
        nodes:
          tone: {type: tone_source, duration: 1}
          sink: null_sink
        links: [tone.audio -> sink.audio]
        """
    )
    mermaid = to_mermaid(gf.graph).splitlines()
    assert len(mermaid) == 5
    assert [line.split()[0] for line in mermaid[1:]] == [
        "%%",
        'n_tone["tone<br/><small>tone_source</small><br/><small>duration=1.0</small>"]',
        'n_sink["sink<br/><small>null_sink</small>"]',
        "n_tone",
    ]
    assert not any("click" in line for line in mermaid[2:])
    dot = to_dot(gf.graph)
    assert dot.splitlines()[0] == 'digraph "x\\nclick n_tone call alert()\\n%% \\"]) --> evil[" {'


def test_the_virtual_clock_refuses_a_real_device_in_a_slot_before_anything_runs(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text(
        "nodes:\n  tone: {type: tone_source, duration: 1}\n"
        "  out: {type: slot, child: {type: speaker, device: default}}\n"
        "links: [tone.audio -> out.audio]\n"
    )
    path2 = tmp_path / "h.yaml"
    path2.write_text(
        "nodes:\n  tone: {type: tone_source, duration: 1}\n"
        "  out: {type: slot, child: {type: speaker, device: virtual}}\n"
        "links: [tone.audio -> out.audio]\nschedule:\n  - {at: 0.5, swap: out, to: {type: speaker, device: default}}\n"
    )
    for graph, where in (
        (path, "g.yaml:3:3: error: node 'out' (slot child) (speaker)"),
        (path2, "h.yaml:6:5: error: swap action at 0.5 s (speaker)"),
    ):
        done, _ = mediagraph("run", graph.name, "--clock", "virtual", "--events", "ev.jsonl", cwd=tmp_path)
        assert done.returncode == 1
        assert done.stderr.startswith(where), done.stderr
        assert "uses a real device" in done.stderr
        assert not (tmp_path / "ev.jsonl").exists()


# --- media files -------------------------------------------------------------------------------------------

SOURCE = "nodes:\n  v: {type: file_source, path: %s, paced: false}\n  s: null_sink\nlinks: [v.audio -> s.audio]\n"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_as_a_media_file_does_not_block_check(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "m.ogg")
    (tmp_path / "g.yaml").write_text(SOURCE % "m.ogg")
    done, seconds = mediagraph("check", "g.yaml", cwd=tmp_path, timeout=20)
    assert done.returncode == 1
    assert done.stderr.startswith("g.yaml:2:32: error: node 'v' (file_source): path ")
    assert "m.ogg': not a regular file" in done.stderr
    assert seconds < 10


def test_a_wav_header_claiming_1000_channels_names_the_file(tmp_path: Path) -> None:
    with wave.open(str(tmp_path / "m.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(b"\0\0" * 4800)
    data = bytearray((tmp_path / "m.wav").read_bytes())
    struct.pack_into("<H", data, 22, 1000)  # the fmt chunk's channel count
    (tmp_path / "m.wav").write_bytes(bytes(data))
    (tmp_path / "g.yaml").write_text(SOURCE % "m.wav")
    done, _ = mediagraph("run", "g.yaml", "--clock", "virtual", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("g.yaml:2:32: error: node 'v' (file_source): path ")
    assert "m.wav': its header claims 1000 channels" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_ogg_cut_in_half_plays_what_it_has_and_says_so(tmp_path: Path) -> None:
    whole = MEDIA.read_bytes()
    (tmp_path / "m.ogg").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "g.yaml").write_text(SOURCE % "m.ogg")
    done, _ = mediagraph("run", "g.yaml", "--clock", "virtual", "--events", "ev.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert re.search(r"v: warning: media file '.*m.ogg' ends after \d+\.\d\d s without its end-of-stream", done.stderr)
    logged = [json.loads(line) for line in (tmp_path / "ev.jsonl").read_text().splitlines()]
    assert [e["node"] for e in logged if e["event"] == "media_warning"] == ["v"]
    # the whole file has its marker: no warning
    (tmp_path / "m.ogg").write_bytes(whole)
    done, _ = mediagraph("run", "g.yaml", "--clock", "virtual", cwd=tmp_path)
    assert done.returncode == 0 and "warning" not in done.stderr


# --- hostile graph files, generated ------------------------------------------------------------------------


def flow_bomb(levels: int, fanout: int) -> str:
    rows = [f"&l0 [{', '.join(['lol'] * fanout)}]"]
    rows += [f"&l{i} [{', '.join([f'*l{i - 1}'] * fanout)}]" for i in range(1, levels)]
    return "[" + ", ".join(rows) + "]"


HOSTILE_VALUES = st.one_of(
    st.builds(flow_bomb, levels=st.integers(7, 10), fanout=st.integers(6, 10)),  # >= 6**7 values expanded
    st.integers(MAX_DEPTH + 1, 600).map(lambda n: "[" * n + "1" + "]" * n),
    st.integers(MAX_DEPTH + 1, 300).map(lambda n: "{a: " * n + "1" + "}" * n),
    st.integers(MAX_SCALAR_CHARS + 1, 100_000).map(lambda n: "x" * n),
    st.integers(MAX_VALUES + 1, MAX_VALUES + 2000).map(lambda n: "[" + "1, " * n + "1]"),
    st.sampled_from([".inf", "-.inf", ".nan", "1.0e+999", "-1.0e+999"]),
    st.integers(41, 5000).map(lambda n: "9" * n),
)

PLACES = {
    "parameter": "nodes:\n  tone: {type: tone_source, duration: 1, frequency: @}\n  sink: null_sink\n"
    "links: [tone.audio -> sink.audio]\n",
    "stop": "nodes:\n  tone: {type: tone_source, duration: 1}\n  sink: null_sink\n"
    "links: [tone.audio -> sink.audio]\nschedule:\n  - {at: 0.5, stop: @}\n",
    "slot child": "nodes:\n  tone: {type: tone_source, duration: 1}\n"
    "  out: {type: slot, child: {type: null_sink, x: @}}\n"
    "links: [tone.audio -> out.audio]\n",
    "swap target": "nodes:\n  tone: {type: tone_source, duration: 1}\n  out: {type: slot, child: {type: null_sink}}\n"
    "links: [tone.audio -> out.audio]\nschedule:\n  - {at: 0.5, swap: @, to: null}\n",
    "supervision": "nodes:\n  tone: {type: tone_source, duration: 1}\n  sink: {type: null_sink, supervision: "
    "{restart: {backoff: @}}}\nlinks: [tone.audio -> sink.audio]\n",
}

HOSTILE_NAMES = st.one_of(
    st.text(min_size=1, max_size=80).filter(lambda s: not s.isidentifier()),
    st.integers(MAX_SCALAR_CHARS + 1, 70_000).map(lambda n: "n" * n),
)

HOSTILE_PATHS = st.sampled_from(
    ["../x.wav", "../../../x.wav", "out/../../x.wav", "/tmp/mediagraph-hostile.wav", "~/x.wav", "in.ogg", "link/x.wav"]
)


@st.composite
def hostile_files(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["value", "name", "path"]))
    if kind == "value":
        return PLACES[draw(st.sampled_from(sorted(PLACES)))].replace("@", draw(HOSTILE_VALUES))
    if kind == "name":
        name = json.dumps(draw(HOSTILE_NAMES))
        nodes = f"nodes:\n  tone: {{type: tone_source, duration: 1}}\n  {name}: null_sink\n"
        return nodes + "links: [tone.audio -> sink.audio]\n"
    return RECORDING.format(out=json.dumps(draw(HOSTILE_PATHS)))


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile") / "graphs"
    folder.mkdir()
    shutil.copy(MEDIA, folder / "in.ogg")
    outside = folder.parent / "outside"
    outside.mkdir()
    (folder / "link").symlink_to(outside)
    return folder


def contents(folder: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(folder.parent)), p.lstat().st_size) for p in folder.parent.rglob("*"))


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(text=hostile_files())
def test_hostile_graph_files_are_refused_quickly_in_bounded_memory(hostile_dir: Path, text: str) -> None:
    before = contents(hostile_dir)
    start = time.perf_counter()
    with pytest.raises(mg.GraphDefinitionError) as info:
        parse_graph(text, filename="h.yaml", base_dir=hostile_dir, output_dirs=[])
    seconds = time.perf_counter() - start
    # the process's peak, tests before included: a file expanded in memory would take gigabytes
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert info.value.location is not None and re.fullmatch(r"h\.yaml:\d+:\d+", info.value.location)
    assert len(str(info.value)) < 1100
    assert seconds < 3
    assert peak_mb < 1024
    assert contents(hostile_dir) == before


@settings(max_examples=4, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(text=hostile_files())
def test_hostile_graph_files_through_the_cli(hostile_dir: Path, text: str) -> None:
    path = hostile_dir / "h.yaml"
    path.write_text(text)
    before = contents(hostile_dir)
    try:
        done, seconds = mediagraph("run", path.name, "--clock", "virtual", cwd=hostile_dir)
    finally:
        path.unlink()
    assert done.returncode == 1, done.stderr
    assert re.match(r"h\.yaml:\d+:\d+: error: ", done.stderr)
    assert "Traceback" not in done.stderr
    assert len(done.stderr) < 1200
    assert seconds < 15
    assert contents(hostile_dir) == [c for c in before if not c[0].endswith("h.yaml")]


# --- signals at start-up -----------------------------------------------------------------------------------

ENDLESS = "nodes:\n  tone: tone_source\n  sink: null_sink\nlinks: [tone.audio -> sink.audio]\n"


def guarded(pid: int) -> bool:
    """Whether the process catches SIGTERM and SIGHUP: ``import mediagraph`` has installed its guard."""
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return all(caught & (1 << (s - 1)) for s in (signal.SIGTERM, signal.SIGHUP))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc to know when to signal")
@pytest.mark.parametrize(
    ("signals", "status"),
    [
        ((signal.SIGINT,), 130),
        ((signal.SIGINT, signal.SIGINT), 130),  # a quick double Ctrl-C
        ((signal.SIGTERM,), 143),
        ((signal.SIGHUP,), 129),
    ],
)
def test_a_signal_at_any_moment_of_start_up_exits_cleanly(
    tmp_path: Path, signals: tuple[signal.Signals, ...], status: int
) -> None:
    (tmp_path / "g.yaml").write_text(ENDLESS)
    procs = []
    for delay in (0.0, 0.05, 0.2, 1.5):  # while importing, loading, starting, and once the graph runs
        proc = subprocess.Popen(
            [*COMMAND, "run", "g.yaml"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 20
        while not guarded(proc.pid):
            assert time.monotonic() < deadline and proc.poll() is None, "the guard was never installed"
            time.sleep(0.001)
        procs.append((proc, time.monotonic() + delay))
    try:
        for proc, when in sorted(procs, key=lambda p: p[1]):
            time.sleep(max(0.0, when - time.monotonic()))
            for signum in signals:
                proc.send_signal(signum)
        for proc, _ in procs:
            _, stderr = proc.communicate(timeout=30)
            assert proc.returncode == status, stderr
            assert "Traceback" not in stderr
            name = signal.Signals(signals[0]).name
            if "before the graph started" in stderr:
                assert stderr == f"mediagraph: interrupted ({name}) before the graph started\n"
            else:
                assert "graph 'g' finished: " in stderr
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
