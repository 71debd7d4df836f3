"""A user's own node types without packaging, through the installed command: ``plugins:`` in a graph file
(imported by ``run``; by ``check`` only with ``--import-plugins``), ``--plugin`` on the command line, and the
errors of a plugin that is missing or raises."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = shutil.which("mediagraph", path=str(Path(sys.executable).parent))
COMMAND = [SCRIPT] if SCRIPT else [sys.executable, "-m", "mediagraph"]

NODES = '''
import attrs
import mediagraph as mg


@attrs.frozen(kw_only=True)
class TagConfig:
    """Args:
    tag: what it says.
    """

    tag: str = "hello"


@mg.node_type("tagging_pass", config=TagConfig)
class Tag(mg.Transform):
    """Passes audio through and logs its tag once."""

    @staticmethod
    def ports(config):
        return mg.Ports(
            inlets=[mg.InletSpec(name="audio")], outlets=[mg.OutletSpec(name="audio", format=mg.SameAs("audio"))]
        )

    def __init__(self, config):
        self.tag = config.tag

    def start(self, io):
        self.emit = io.outlets["audio"].emit
        io.log("tagged", tag=self.tag)

    def process(self, inlet, msg):
        self.emit(msg)
'''

GRAPH = """\
# my own node, from a file beside the graph
plugins: [my_nodes.py]
nodes:
  tone: {type: tone_source, duration: 0.2}
  tag: {type: tagging_pass, tag: mine}
  sink: null_sink
links: [tone.audio -> tag.audio, tag.audio -> sink.audio]
"""


def mediagraph(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def test_a_graph_file_s_plugins_are_imported_by_run_and_by_check_only_when_asked(tmp_path: Path) -> None:
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    (graphs / "my_nodes.py").write_text(textwrap.dedent(NODES))
    (graphs / "g.yaml").write_text(GRAPH)
    ran = mediagraph("run", "graphs/g.yaml", "--clock", "virtual", cwd=tmp_path)  # relative to the graph's folder
    assert ran.returncode == 0, ran.stderr
    assert "tag: tagged tag=mine" in ran.stderr
    checked = mediagraph("check", "graphs/g.yaml", cwd=tmp_path)
    assert checked.returncode == 1
    assert "unknown node type 'tagging_pass'" in checked.stderr
    assert "(the file's plugins, my_nodes.py, were not imported: --import-plugins imports them)" in checked.stderr
    assert mediagraph("check", "graphs/g.yaml", "--import-plugins", cwd=tmp_path).returncode == 0


def test_plugin_on_the_command_line_and_its_errors(tmp_path: Path) -> None:
    (tmp_path / "my_nodes.py").write_text(textwrap.dedent(NODES))
    described = mediagraph("nodes", "tagging_pass", "--plugin", "my_nodes.py", cwd=tmp_path)
    assert described.returncode == 0, described.stderr
    assert described.stdout.startswith("tagging_pass: Passes audio through and logs its tag once.")
    (tmp_path / "bad.py").write_text("x = 1\nraise RuntimeError('boom')\n")
    cases = {
        "bad.py": "--plugin bad.py: error: plugin 'bad.py': importing it raised RuntimeError: boom at bad.py:2",
        "nosuch": "--plugin nosuch: error: plugin 'nosuch': no such module",
        "nosuch.py": "--plugin nosuch.py: error: plugin 'nosuch.py': no such file",
        "../x y": "--plugin ../x y: error: plugin '../x y': expected a .py file or a module name",
        "syntax.py": "--plugin syntax.py: error: plugin 'syntax.py': importing it raised SyntaxError: ",
        "twice.py": "--plugin twice.py: error: plugin 'twice.py': importing it raised RegistryError: node type "
        "'identity' is already registered",
    }
    (tmp_path / "syntax.py").write_text("x = 1\ndef broken(:\n")
    (tmp_path / "twice.py").write_text(
        "import attrs\nimport mediagraph as mg\n\n\n@attrs.frozen\nclass C:\n    pass\n\n\n"
        "@mg.node_type('identity', config=C)\nclass I(mg.Transform):\n    ports = staticmethod(lambda c: mg.Ports())\n"
    )
    for plugin, message in cases.items():
        done = mediagraph("nodes", "--plugin", plugin, cwd=tmp_path)
        assert done.returncode == 1, plugin
        assert done.stderr.startswith(message), done.stderr
    assert "at syntax.py:2" in mediagraph("nodes", "--plugin", "syntax.py", cwd=tmp_path).stderr
    assert "at twice.py:10" in mediagraph("nodes", "--plugin", "twice.py", cwd=tmp_path).stderr, "the plugin's own line"
