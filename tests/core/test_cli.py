"""The ``mediagraph`` command, run for real in a subprocess: exit status, messages, files written or not.

Node types the tests need (one that fails, one that holds a "device", one that never finishes on its own)
come from a plugin installed the way third-party node packages are: a ``mediagraph.nodes`` entry point
of a distribution found on ``PYTHONPATH``.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import shutil
import signal
import struct
import subprocess
import sys
import termios
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import pytest

GRAPHS = Path(__file__).resolve().parents[2] / "graphs"
SCRIPT = shutil.which("mediagraph", path=str(Path(sys.executable).parent))
COMMAND = [SCRIPT] if SCRIPT else [sys.executable, "-m", "mediagraph"]

PLUGIN = '''
"""Node types and a schedule action for the CLI tests."""
from typing import Any

import attrs
import trio

import mediagraph as mg
from mediagraph._actions import ActionRequest, ActionType, register_action_type


@attrs.frozen(kw_only=True)
class FailConfig:
    after: int = 3


@mg.node_type("cli_test_fail", config=FailConfig)
class Fail(mg.Transform):
    """Passes audio through, then raises."""

    @staticmethod
    def ports(config: FailConfig) -> mg.Ports:
        return mg.Ports(inlets=[mg.InletSpec(name="audio")], outlets=[mg.OutletSpec(name="audio")])

    def __init__(self, config: FailConfig) -> None:
        self.config = config
        self.seen = 0

    def start(self, io: mg.NodeIO) -> None:
        self.emit = io.outlets["audio"].emit

    def process(self, inlet: str, msg: Any) -> None:
        self.seen += 1
        if self.seen > self.config.after:
            raise RuntimeError(f"boom at frame {self.seen}")
        self.emit(msg)


@attrs.frozen(kw_only=True)
class DeviceConfig:
    device: str = "hw:0"


@mg.node_type("cli_test_device", config=DeviceConfig, uses_device=lambda c: c.device != "virtual")
class Device(mg.Transform):
    """A sink standing for a sound card."""

    @staticmethod
    def ports(config: DeviceConfig) -> mg.Ports:
        return mg.Ports(inlets=[mg.InletSpec(name="audio", format=mg.AudioFormat(sample_rate=48000, channels=1))])

    def __init__(self, config: DeviceConfig) -> None:
        pass

    def start(self, io: mg.NodeIO) -> None:
        pass

    def process(self, inlet: str, msg: Any) -> None:
        pass


@attrs.frozen(kw_only=True)
class NoConfig:
    pass


@mg.node_type("cli_test_stubborn", config=NoConfig)
class Stubborn(mg.Actor):
    """Reads its input to the end, then waits until cancelled."""

    @staticmethod
    def ports(config: NoConfig) -> mg.Ports:
        return mg.Ports(inlets=[mg.InletSpec(name="audio")])

    def __init__(self, config: NoConfig) -> None:
        pass

    async def run(self, io: mg.NodeIO) -> None:
        async for _ in io.inlets["audio"]:
            pass
        io.log("waiting_forever")
        await trio.sleep_forever()


@attrs.frozen
class Poke:
    node: str

    async def execute(self, running: mg.RunningGraph) -> None:
        running.record(self.node, "poked")
        await trio.lowlevel.checkpoint()


register_action_type(ActionType(name="poke", parse=lambda r: Poke(r.node(r.value).name), summary="log an event"))
'''


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    site = tmp_path_factory.mktemp("site")
    (site / "cli_test_nodes.py").write_text(PLUGIN)
    info = site / "cli_test_nodes-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cli-test-nodes\nVersion: 0\n")
    (info / "entry_points.txt").write_text("[mediagraph.nodes]\ncli_test = cli_test_nodes\n")
    return {**os.environ, "PYTHONPATH": str(site)}


def mediagraph(*args: Any, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def mediagraph_all(
    jobs: Mapping[str, tuple[list[str], Path]], env: dict[str, str] | None = None
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Run several commands at once (each start costs about half a second), then wait for all."""
    procs = {
        key: subprocess.Popen(
            [*COMMAND, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for key, (args, cwd) in jobs.items()
    }
    done = {}
    try:
        for key, proc in procs.items():
            stdout, stderr = proc.communicate(timeout=120)
            done[key] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    finally:  # a command that hangs must not outlive the test
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return done


def events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write(folder: Path, text: str, name: str = "g.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


ENDLESS = """\
nodes:
  tone: tone_source
  pass: identity
  sink: null_sink
links: [tone.audio -> pass.audio, pass.audio -> sink.audio]
"""


# --- running ---------------------------------------------------------------------------------------------


#: Not the graphs talking to a network service (nova_sonic, a LiveKit room): they run on the real clock against a
#: stand-in (tests/nodes/test_nova_sonic.py, test_livekit_room.py); the virtual clock is refused (tested there).
NETWORK = ("type: nova_sonic", "type: livekit_room")
VIRTUAL = sorted(p.name for p in GRAPHS.glob("*.yaml") if not any(s in p.read_text() for s in NETWORK))


@pytest.mark.parametrize("name", VIRTUAL)
def test_every_ready_made_graph_checks_and_runs_on_the_virtual_clock(name: str, tmp_path: Path) -> None:
    # A copy, so that what the graph writes (relative to its folder) stays out of the repository.
    shutil.copytree(GRAPHS, tmp_path / "graphs", ignore=shutil.ignore_patterns("out"))
    graph = tmp_path / "graphs" / name
    assert graph.read_text().startswith("#"), "each graph starts with a comment saying what it shows"
    checked = mediagraph("check", graph, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"{graph}: ok: ")
    ran = mediagraph("run", graph, "--clock", "virtual", "--events", "ev.jsonl", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    log = events(tmp_path / "ev.jsonl")
    assert log[-1]["event"] == "graph_finished"
    assert log[-1]["reason"] in ("completed", "stopped")
    assert all(e["reason"] == "completed" for e in log if e["event"] == "node_finished")


def test_a_virtual_minute(tmp_path: Path) -> None:
    ran = mediagraph(
        "run", GRAPHS / "tone_demo.yaml", "--clock", "virtual", "--set", "tone.duration=60", "--events", "ev.jsonl",
        cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    log = events(tmp_path / "ev.jsonl")
    assert [e["seq"] for e in log] == list(range(len(log)))
    assert log[-1]["event"] == "graph_finished"
    assert log[-1]["t"] == pytest.approx(60, abs=0.02)
    total = next(e for e in log if e["event"] == "sink_total")
    assert (total["node"], total["frames"], total["seconds"]) == ("sink", 6000, 60.0)
    assert "graph 'tone_demo' finished: completed" in ran.stderr


def test_duration_stops_gracefully(tmp_path: Path) -> None:
    graph = write(tmp_path, ENDLESS)
    ran = mediagraph("run", graph, "--clock", "virtual", "--duration", "5", "--events", "ev.jsonl", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    log = events(tmp_path / "ev.jsonl")
    assert [e["by"] for e in log if e["event"] == "stop_requested"] == ["duration"]
    assert (log[-1]["event"], log[-1]["reason"]) == ("graph_finished", "stopped")
    assert log[-1]["t"] == pytest.approx(5, abs=0.02)


def test_overrides(tmp_path: Path) -> None:
    ran = mediagraph(
        "run", GRAPHS / "tone_demo.yaml", "--clock", "virtual", "--set", "tone.duration=0.5", "--set",
        "tone.sample_rate=16000", "--events", "ev.jsonl", cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    total = next(e for e in events(tmp_path / "ev.jsonl") if e["event"] == "sink_total")
    assert (total["samples"], total["seconds"]) == (8000, 0.5)


def test_a_node_failure_names_the_node_and_the_cause(tmp_path: Path, plugin_env: dict[str, str]) -> None:
    graph = write(
        tmp_path,
        """\
        nodes:
          tone: {type: tone_source, duration: 1}
          bad: cli_test_fail
          sink: null_sink
        links: [tone.audio -> bad.audio, bad.audio -> sink.audio]
        """,
    )
    ran = mediagraph("run", graph, "--clock", "virtual", "--events", "ev.jsonl", cwd=tmp_path, env=plugin_env)
    assert ran.returncode == 1
    assert ran.stderr.splitlines()[-1] == "mediagraph: error: node 'bad' failed: RuntimeError: boom at frame 4"
    log = events(tmp_path / "ev.jsonl")
    failed = next(e for e in log if e["event"] == "node_finished" and e["node"] == "bad")
    assert (failed["reason"], failed["error"]) == ("failed", "RuntimeError: boom at frame 4")
    assert (log[-1]["event"], log[-1]["reason"]) == ("graph_finished", "failed")


def test_the_virtual_clock_refuses_real_devices(tmp_path: Path, plugin_env: dict[str, str]) -> None:
    graph = write(
        tmp_path,
        """\
        nodes:
          tone: {type: tone_source, duration: 1}
          out: cli_test_device
        links: [tone.audio -> out.audio]
        """,
    )
    ran = mediagraph("run", graph.name, "--clock", "virtual", "--events", "ev.jsonl", cwd=tmp_path, env=plugin_env)
    assert ran.returncode == 1
    assert ran.stderr == (
        "g.yaml:3:3: error: node 'out' (cli_test_device) uses a real device, which --clock virtual cannot drive; "
        "use --clock real (or a virtual device)\n"
    )
    assert not (tmp_path / "ev.jsonl").exists()
    virtual_device = mediagraph(
        "run", graph, "--clock", "virtual", "--set", "out.device=virtual", cwd=tmp_path, env=plugin_env
    )
    assert virtual_device.returncode == 0, virtual_device.stderr


def test_a_scheduled_action_from_a_plugin(tmp_path: Path, plugin_env: dict[str, str]) -> None:
    graph = write(tmp_path, ENDLESS + "schedule:\n  - {at: 1, poke: pass}\n  - {at: 2, stop: cancel}\n")
    ran = mediagraph("run", graph, "--clock", "virtual", "--events", "ev.jsonl", cwd=tmp_path, env=plugin_env)
    assert ran.returncode == 0, ran.stderr
    log = events(tmp_path / "ev.jsonl")
    poked = next(e for e in log if e["event"] == "poked")
    assert (poked["node"], poked["t"]) == ("pass", 1.0)
    assert (log[-1]["event"], log[-1]["reason"], log[-1]["t"]) == ("graph_finished", "cancelled", 2.0)


# --- signals ---------------------------------------------------------------------------------------------


def read_until(stream: IO[str], marker: str) -> list[str]:
    lines = []
    for line in stream:
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError(f"the process ended before printing {marker!r}: {''.join(lines)}")


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[str]] = []

    def start(*args: Any, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [*COMMAND, *map(str, args)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_graph_gracefully(tmp_path: Path, spawn: Any, signum: int, status: int) -> None:
    graph = write(tmp_path, ENDLESS)
    proc = spawn("run", graph, "--events", "ev.jsonl")
    assert proc.stderr is not None
    read_until(proc.stderr, "tone: started")
    proc.send_signal(signum)
    assert proc.wait(timeout=30) == status
    log = events(tmp_path / "ev.jsonl")
    assert [e["by"] for e in log if e["event"] == "stop_requested"] == [signal.Signals(signum).name]
    assert {e["node"]: e["reason"] for e in log if e["event"] == "node_finished"} == dict.fromkeys(
        ["tone", "pass", "sink"], "completed"
    )
    assert (log[-1]["event"], log[-1]["reason"]) == ("graph_finished", "stopped")


def test_a_second_sigint_cancels(tmp_path: Path, spawn: Any, plugin_env: dict[str, str]) -> None:
    graph = write(tmp_path, "nodes: {tone: tone_source, hang: cli_test_stubborn}\nlinks: [tone.audio -> hang.audio]\n")
    proc = spawn("run", graph, "--events", "ev.jsonl", env=plugin_env)
    assert proc.stderr is not None
    read_until(proc.stderr, "tone: started")
    proc.send_signal(signal.SIGINT)
    read_until(proc.stderr, "hang: waiting_forever")  # the graceful stop is stuck on this node
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    log = events(tmp_path / "ev.jsonl")
    assert [e["event"] for e in log if e["event"].endswith("_requested")] == ["stop_requested", "cancel_requested"]
    assert {e["node"]: e["reason"] for e in log if e["event"] == "node_finished"} == {
        "tone": "completed",
        "hang": "cancelled",
    }
    assert (log[-1]["event"], log[-1]["reason"]) == ("graph_finished", "cancelled")


def test_events_are_on_disk_as_they_happen(tmp_path: Path, spawn: Any) -> None:
    graph = write(tmp_path, ENDLESS)
    proc = spawn("run", graph, "--events", "ev.jsonl")
    assert proc.stderr is not None
    read_until(proc.stderr, "tone: started")
    proc.kill()
    proc.wait(timeout=30)
    log = events(tmp_path / "ev.jsonl")
    assert [e["event"] for e in log][:2] == ["graph_started", "node_started"]
    assert {e["node"] for e in log if e["event"] == "node_started"} == {"tone", "pass", "sink"}


RECORDED = """\
# a tone played and recorded
nodes:
  tone: {type: tone_source, duration: 1.0}
  out: {type: speaker}
  recorder: {type: recorder, path: out/tone.wav}
links:
  - tone.audio -> out.audio
  - tone.audio -> recorder.agent
  - out.playback -> recorder.playback
"""


def on_a_terminal(tmp_path: Path, *args: str, size: tuple[int, int] = (40, 200), expect_redraw: bool = True) -> str:
    """What ``mediagraph`` writes to a pseudo-terminal of ``size`` (lines, columns) as its stderr, escape
    sequences removed."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
    try:
        proc = subprocess.Popen([*COMMAND, *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=follower)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the terminal's other side is closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(timeout=30) == 0
        proc.communicate()
    finally:
        os.close(leader)
    screen = b"".join(chunks).decode()
    assert ("\x1b[" in screen) is expect_redraw  # drawn in place, or plain lines
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen).replace("\r", "")


def test_live_status_on_a_terminal_has_headers_position_levels_and_the_recording(tmp_path: Path) -> None:
    graph = write(tmp_path, RECORDED)
    screen = on_a_terminal(tmp_path, "run", str(graph))
    lines = screen.splitlines()
    assert any(line.split() == ["node", "state", "in", "out", "rate/s", "mailbox", "level"] for line in lines), screen
    assert re.search(r"graph .g.  \d\.\d s / 1\.0 s \(\d+%\), \d\.\d s left", screen), screen
    assert f"recorder -> {tmp_path / 'out' / 'tone.wav'}" in screen
    assert re.search(r"^tone +\w+ .* -\d+ dB █+", screen, re.MULTILINE), "the tone's level"
    assert "recorder: recording_started path=" in screen and "out: playback_started" in screen  # events that matter
    rows = [line.split()[:2] for line in lines if line.split()[:1] in (["tone"], ["out"], ["recorder"])]
    last = [row for row in rows if row[1:] != ["->"]][-3:]
    assert last == [["tone", "finished"], ["out", "finished"], ["recorder", "finished"]]


def test_quiet_on_a_terminal_draws_no_table(tmp_path: Path) -> None:
    graph = write(tmp_path, RECORDED)
    screen = on_a_terminal(tmp_path, "run", str(graph), "-q", expect_redraw=False)
    assert "mailbox" not in screen and screen.strip().endswith("graph 'g' finished: completed")


def test_on_a_small_terminal_nothing_wraps_and_the_files_written_still_show(tmp_path: Path) -> None:
    nodes = "".join(f"  pass_{i}_with_a_long_name: identity\n" for i in range(8))
    links = ["tone.audio -> pass_0_with_a_long_name.audio"]
    links += [f"pass_{i}_with_a_long_name.audio -> pass_{i + 1}_with_a_long_name.audio" for i in range(7)]
    links.append("pass_7_with_a_long_name.audio -> out.audio")
    graph = write(
        tmp_path,
        "# many nodes\nnodes:\n  tone: {type: tone_source, duration: 0.5}\n"
        + nodes
        + "  out: {type: file_sink, path: out/x.wav}\nlinks:\n"
        + "".join(f"  - {link}\n" for link in links),
    )
    screen = on_a_terminal(tmp_path, "run", str(graph), size=(12, 60))
    last = screen[screen.rindex("graph 'g'") :].splitlines()  # the last drawing of the table
    assert max(len(line.rstrip()) for line in last) <= 60, last
    drawn = "\n".join(last)
    assert re.search(r"\+\d+ more", drawn), "the rows that do not fit are counted"
    assert "out -> " in drawn and "x.wav" in drawn, "the file written is named (wrapped if it must)"


def test_quiet_and_verbose_and_events_on_standard_output(tmp_path: Path) -> None:
    graph = write(tmp_path, RECORDED)
    quiet = mediagraph("run", graph, "-q", "--clock", "virtual", "--events", "-", cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr.splitlines() == ["[    1.000s] graph 'g' finished: completed"]
    events = [json.loads(line) for line in quiet.stdout.splitlines()]
    assert events[0]["event"] == "graph_started" and events[-1]["event"] == "graph_finished"
    assert not (tmp_path / "-").exists()
    verbose = mediagraph("run", graph, "-v", "--clock", "virtual", cwd=tmp_path)
    assert "playback_progress" in verbose.stderr
    normal = mediagraph("run", graph, "--clock", "virtual", cwd=tmp_path)
    assert "playback_progress" not in normal.stderr and "recording_started" in normal.stderr
    assert re.search(r"playback_finished .* at=1\.0\b", normal.stderr), "times rounded to the millisecond"


# --- bad input -------------------------------------------------------------------------------------------

CHAIN = "nodes:\n  t: tone_source\n  s: null_sink\nlinks:\n  - t.audio -> s.audio\n"

BAD = {
    "yaml syntax": ("nodes:\n  t: {type: tone_source\n", "g.yaml:3:1: error: YAML syntax error: "),
    "unknown type": (
        "nodes:\n  t: {type: tone_sorce}\n",
        "g.yaml:2:13: error: node 't': unknown node type 'tone_sorce' (did you mean 'tone_source'",
    ),
    "misspelled parameter": (
        "nodes:\n  t: {type: tone_source, frequncy: 3}\n",
        "g.yaml:2:26: error: node 't' (tone_source): unknown parameter 'frequncy' (did you mean 'frequency'?)",
    ),
    "wrong type": (
        "nodes:\n  t: {type: tone_source, duration: long}\n",
        "g.yaml:2:36: error: node 't' (tone_source): parameter 'duration' must be float | None, got str 'long'",
    ),
    "out of range": (
        "nodes:\n  t: {type: tone_source, channels: 9}\n",
        "g.yaml:2:36: error: node 't' (tone_source): 'channels' must be <= 8: 9",
    ),
    "malformed link": (
        "nodes:\n  t: tone_source\n  s: null_sink\nlinks:\n  - t.audio to s.audio\n",
        "g.yaml:5:5: error: a link must be 'node.port -> node.port', got 't.audio to s.audio'",
    ),
    "unknown node in link": (
        "nodes:\n  t: tone_source\n  s: null_sink\nlinks:\n  - t.audio -> sink.audio\n",
        "g.yaml:5:16: error: link 't.audio -> sink.audio': unknown node 'sink' in sink.audio (known: s, t)",
    ),
    "unknown port": (
        "nodes:\n  t: tone_source\n  s: null_sink\nlinks:\n  - t.out -> s.audio\n",
        "g.yaml:5:5: error: link 't.out -> s.audio': node 't' (tone_source) has no outlet 'out' (known: audio)",
    ),
    "format mismatch": (
        "nodes:\n  t: {type: tone_source, channels: 2}\n  s: cli_test_device\nlinks:\n  - t.audio -> s.audio\n",
        "g.yaml:5:5: error: link t.audio -> s.audio: format mismatch: t.audio sends AudioFrame (48000 Hz, 2 ch), "
        "s.audio accepts AudioFrame (48000 Hz, 1 ch)",
    ),
    "unconnected inlet": (
        "nodes:\n  t: tone_source\n  s: null_sink\n",
        "g.yaml:3:3: error: required inlet s.audio (AudioFrame) is not linked",
    ),
    "cycle": (
        "nodes:\n  a: identity\n  b: identity\nlinks:\n  - a.audio -> b.audio\n  - b.audio -> a.audio\n",
        "g.yaml:6:5: error: cycle ",
    ),
    "time in the past": (
        CHAIN + "schedule:\n  - {at: -2, stop: graceful}\n",
        "g.yaml:7:10: error: 'at: -2' is in the past: times are seconds of graph time since the start",
    ),
    "schedule out of order": (
        CHAIN + "schedule:\n  - {at: 2, stop: graceful}\n  - {at: 1, stop: cancel}\n",
        "g.yaml:8:10: error: 'at: 1' comes before 'at: 2' (line 7): keep actions in time order",
    ),
    "missing node in schedule": (
        CHAIN + "schedule:\n  - {at: 1, poke: sink}\n",
        "g.yaml:7:19: error: poke action: unknown node 'sink' (known: s, t)",
    ),
    "unknown resource type": (
        CHAIN + "resources:\n  ns: {type: apn}\n",
        "g.yaml:7:14: error: resource 'ns': unknown resource type 'apn' (did you mean 'apm'?)",
    ),
}


@pytest.fixture(scope="module")
def bad_runs(
    tmp_path_factory: pytest.TempPathFactory, plugin_env: dict[str, str]
) -> dict[str, tuple[subprocess.CompletedProcess[str], Path]]:
    folders = {case: write(tmp_path_factory.mktemp("bad"), text).parent for case, (text, _) in BAD.items()}
    jobs = {case: (["run", "g.yaml", "--events", "ev.jsonl"], folder) for case, folder in folders.items()}
    return {case: (ran, folders[case]) for case, ran in mediagraph_all(jobs, env=plugin_env).items()}


@pytest.mark.parametrize("case", BAD)
def test_an_invalid_graph_starts_nothing_and_writes_nothing(
    bad_runs: dict[str, tuple[subprocess.CompletedProcess[str], Path]], case: str
) -> None:
    ran, folder = bad_runs[case]
    assert ran.returncode == 1
    assert ran.stderr.startswith(BAD[case][1])
    assert ran.stderr.count("\n") == 1, ran.stderr
    assert ran.stdout == ""
    assert sorted(p.name for p in folder.iterdir()) == ["g.yaml"]


def test_check_and_draw_refuse_an_invalid_graph(tmp_path: Path) -> None:
    text, message = BAD["unknown port"]
    write(tmp_path, text)
    runs = mediagraph_all(
        {"check": (["check", "g.yaml"], tmp_path), "draw": (["draw", "g.yaml", "-o", "g.mmd"], tmp_path)}
    )
    for ran in runs.values():
        assert (ran.returncode, ran.stderr) == (1, message + "\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.yaml"]


def test_override_errors(tmp_path: Path) -> None:
    graph = GRAPHS / "tone_demo.yaml"
    misspelled = mediagraph("check", graph, "--set", "tone.frequncy=3", cwd=tmp_path)
    assert (misspelled.returncode, misspelled.stderr) == (
        1,
        "--set tone.frequncy=3: error: node 'tone' (tone_source): unknown parameter 'frequncy' "
        "(did you mean 'frequency'?)\n",
    )


USAGE = {
    "no command": [],
    "no file": ["run"],
    "unknown command": ["walk", "g.yaml"],
    "negative duration": ["run", "g.yaml", "--duration", "-1"],
    "unknown clock": ["run", "g.yaml", "--clock", "wall"],
    "malformed --set": ["run", "g.yaml", "--set", "t"],
    "draw without -o": ["draw", "g.yaml"],
    "unknown diagram": ["draw", "g.yaml", "-o", "g.txt"],
    "unknown type": ["nodes", "tone_sorce"],
}


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    folders = {case: write(tmp_path / case.replace(" ", "_"), CHAIN).parent for case in USAGE}
    runs = mediagraph_all({case: (args, folders[case]) for case, args in USAGE.items()})
    for case, ran in runs.items():
        assert ran.returncode == 2, case
        assert ran.stderr.startswith("usage: mediagraph"), case
        assert sorted(p.name for p in folders[case].iterdir()) == ["g.yaml"], case
    assert "argument --set: expected NODE.PARAM=VALUE (or NODE.PARAM.KEY=VALUE" in runs["malformed --set"].stderr
    assert "cannot draw 'g.txt': the output must end with .mmd, .dot, .svg, .png" in runs["unknown diagram"].stderr
    message = "unknown node type, resource type or action 'tone_sorce' (did you mean 'tone_source'"
    assert message in runs["unknown type"].stderr


def test_a_missing_file(tmp_path: Path) -> None:
    ran = mediagraph("run", "nope.yaml", cwd=tmp_path)
    assert ran.returncode == 1
    assert ran.stderr == "nope.yaml: error: cannot read the graph file: No such file or directory\n"


# --- nodes, draw, python -m ------------------------------------------------------------------------------


def test_nodes_lists_every_type(tmp_path: Path) -> None:
    ran = mediagraph("nodes", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    for expected in ("node types:", "tone_source", "identity", "null_sink", "resource types:", "schedule actions:"):
        assert expected in ran.stdout
    assert "stop " in ran.stdout.split("schedule actions:")[1]


def test_nodes_describes_one_type(tmp_path: Path) -> None:
    runs = mediagraph_all({name: (["nodes", name], tmp_path) for name in ("tone_source", "identity")})
    tone, identity = runs["tone_source"], runs["identity"]
    assert tone.returncode == 0, tone.stderr
    assert tone.stdout.startswith("tone_source: A sine tone")
    assert "  audio  AudioFrame  48000 Hz, 1 ch" in tone.stdout
    lines = tone.stdout.splitlines()
    frequency = next(line.split(None, 4) for line in lines if line.strip().startswith("frequency"))
    assert frequency == ["frequency", "float", "default", "440.0", "Hz, between 0 and half the sample rate."]
    duration = next(line for line in lines if line.strip().startswith("duration"))
    assert "float | None" in duration
    assert "default None" in duration
    assert "  audio  AudioFrame  format of inlet 'audio'" in identity.stdout
    assert "required, mailbox 64, block" in identity.stdout


def test_draw_mermaid_and_dot(tmp_path: Path) -> None:
    graph = str(GRAPHS / "fan_out_fan_in.yaml")
    runs = mediagraph_all({out: (["draw", graph, "-o", out], tmp_path) for out in ("fan.mmd", "fan.dot")})
    assert [ran.returncode for ran in runs.values()] == [0, 0]
    mermaid = (tmp_path / "fan.mmd").read_text()
    assert mermaid.startswith("flowchart LR\n")
    assert 'n_tone["tone<br/><small>tone_source</small><br/><small>frequency=220.0</small>' in mermaid
    assert 'n_left -->|"audio<br/>16000 Hz, 1 ch"| n_sink' in mermaid
    assert 'schedule_note["schedule<br/><small>at 2.5 s: stop mode=graceful</small>"]' in mermaid
    dot = (tmp_path / "fan.dot").read_text()
    assert dot.startswith('digraph "fan_out_fan_in" {')
    assert '"tone" -> "right" [label="audio\\n16000 Hz, 1 ch"];' in dot


def test_draw_shows_what_a_slot_holds_resources_and_their_users_and_writes_to_standard_output(
    tmp_path: Path,
) -> None:
    graph = str(GRAPHS / "talking_agent.yaml")
    runs = mediagraph_all({fmt: (["draw", graph, "-o", "-", "--format", fmt], tmp_path) for fmt in ("mmd", "dot")})
    mermaid, dot = runs["mmd"].stdout, runs["dot"].stdout
    assert 'n_out["out<br/><small>slot</small><br/><small>holds: speaker</small>"]' in mermaid
    assert 'r_voice[("voice<br/><small>resource: espeak</small>")]' in mermaid and "r_voice -.- n_tts" in mermaid
    assert "at 9.6 s: swap slot=out, child=speaker, policy=cut" in mermaid
    assert '"resource voice" -> "tts" [style=dotted, arrowhead=none];' in dot
    assert list(tmp_path.iterdir()) == [], "nothing written but to standard output"
    named = write(
        tmp_path / "named",
        "# a node called schedule\nnodes:\n  schedule: {type: tone_source, duration: 1}\n"
        "  sink: null_sink\nlinks: [schedule.audio -> sink.audio]\nschedule:\n  - {at: 0.5, stop: graceful}\n",
    )
    dot = mediagraph("draw", named, "-o", "-", "--format", "dot", cwd=tmp_path).stdout
    assert '"schedule" [label="schedule\\ntone_source' in dot and '"schedule note" [label="schedule\\nat 0.5 s' in dot


def test_a_file_sink_writes_one_stream_at_its_own_rate_from_the_command_line(tmp_path: Path) -> None:
    graph = write(
        tmp_path,
        "# a tone to a FLAC file\nnodes:\n  tone: {type: tone_source, sample_rate: 16000, duration: 0.5}\n"
        "  out: {type: file_sink, path: out/tone.flac}\nlinks: [tone.audio -> out.audio]\n",
    )
    ran = mediagraph("run", graph, "--clock", "virtual", "--events", "ev.jsonl", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    (total,) = [e for e in events(tmp_path / "ev.jsonl") if e["event"] == "file_sink_total"]
    assert (total["sample_rate"], total["channels"], total["samples"]) == (16000, 1, 8000)
    assert (tmp_path / "out" / "tone.flac").stat().st_size > 0
    outside = mediagraph("check", graph, "--set", "out.path=../elsewhere.flac", cwd=tmp_path)
    assert outside.returncode == 1 and "out.path" in outside.stderr


def test_check_warns_about_a_graph_that_never_ends(tmp_path: Path) -> None:
    endless = write(tmp_path, "# endless\nnodes:\n  t: tone_source\n  s: null_sink\nlinks: [t.audio -> s.audio]\n")
    warned = mediagraph("check", endless, cwd=tmp_path)
    assert warned.returncode == 0
    assert warned.stderr == (
        f"{endless}: warning: the graph never ends on its own ('t' (tone_source) never ends): stop it with "
        "Ctrl-C, --duration SECONDS or a stop action in its schedule\n"
    )
    stopped = write(tmp_path, endless.read_text() + "schedule:\n  - {at: 5, stop: graceful}\n", "h.yaml")
    assert mediagraph("check", stopped, cwd=tmp_path).stderr == ""
    assert mediagraph("check", GRAPHS / "tone_demo.yaml", cwd=tmp_path).stderr == ""


def test_draw_svg_needs_graphviz(tmp_path: Path) -> None:
    graph = GRAPHS / "tone_demo.yaml"
    no_graphviz = {**os.environ, "PATH": str(tmp_path / "empty")}
    ran = mediagraph("draw", graph, "-o", "g.svg", cwd=tmp_path, env=no_graphviz)
    assert ran.returncode == 1
    assert "needs Graphviz's 'dot' program, which is not installed" in ran.stderr
    assert not (tmp_path / "g.svg").exists()
    if shutil.which("dot"):
        assert mediagraph("draw", graph, "-o", "g.svg", cwd=tmp_path).returncode == 0
        assert "<svg" in (tmp_path / "g.svg").read_text()


def test_python_dash_m(tmp_path: Path) -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "mediagraph", "check", GRAPHS / "tone_demo.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ": ok: graph 'tone_demo'" in ran.stdout


def test_progress_events_go_to_the_events_file_not_to_the_terminal(tmp_path: Path) -> None:
    shutil.copytree(GRAPHS, tmp_path / "graphs", ignore=shutil.ignore_patterns("out"))
    ran = mediagraph("run", tmp_path / "graphs" / "barge_in.yaml", "--clock", "virtual", "--events", "ev", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "playback_progress" not in ran.stderr and "playback_finished" in ran.stderr
    assert any(e["event"] == "playback_progress" for e in events(tmp_path / "ev"))


def test_a_reader_that_goes_away_ends_the_output_quietly(tmp_path: Path) -> None:
    """`mediagraph nodes | head`: the pipe closes before the listing is written; no traceback, the pipe's status."""
    proc = subprocess.Popen([*COMMAND, "nodes"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the interpreter has even started: every write meets a closed pipe
    assert proc.wait(timeout=60) == 128 + signal.SIGPIPE
    assert proc.stderr.read() == b""
    proc.stderr.close()


def test_the_command_ends_its_process_without_finalizing_the_interpreter(tmp_path: Path) -> None:
    """livekit's FFI (the demo's apm processor) posts log records into Python from its own threads; one that
    lands while the interpreter finalizes aborts the process (SIGABRT after a run that succeeded: 5 of 200
    short runs of a plain livekit script on a loaded machine). So the command leaves with os._exit once its
    outputs are closed: an exit handler (from a sitecustomize here) never runs, and the outputs are whole."""
    site = tmp_path / "site"
    site.mkdir()
    marker = tmp_path / "finalized"
    (site / "sitecustomize.py").write_text(
        f"import atexit, pathlib\natexit.register(pathlib.Path({str(marker)!r}).touch)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = tmp_path / "demo.ogg"
    ran = mediagraph(
        "run",
        GRAPHS / "noisy_speech_demo.yaml",
        "--clock",
        "virtual",
        "--duration",
        "1",
        "--events",
        "ev.jsonl",
        "--set",
        f"recorder.path={out.name}",
        cwd=tmp_path,
        env=env,
    )
    assert ran.returncode == 0, ran.stderr
    assert not marker.exists(), "the interpreter was finalized"
    assert events(tmp_path / "ev.jsonl")[-1]["event"] == "graph_finished"
    assert "graph 'noisy_speech_demo' finished: stopped" in ran.stderr, "stderr was flushed"
    assert out.stat().st_size > 0
    control = subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
    assert control.returncode == 0 and marker.exists(), "the exit handler runs in a process that finalizes"
