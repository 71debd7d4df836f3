"""Graph files: what they build (equal to the graph built in Python), and where every error points."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import attrs
import hypothesis.strategies as st
import pytest
import trio
from hypothesis import given

import mediagraph as mg
from mediagraph import _actions
from mediagraph._actions import ActionRequest, ActionType, Stop, run_schedule
from mediagraph._yaml import GraphFile, Override, dump_graph, load_graph, parse_graph

GRAPHS = Path(__file__).resolve().parents[2] / "graphs"


@attrs.frozen(kw_only=True)
class _NoConfig:
    pass


@mg.node_type("yaml_test_narrow_sink", config=_NoConfig)
class NarrowSink(mg.Transform):
    """Accepts 48 kHz mono audio only; optional feedback events."""

    @staticmethod
    def ports(config: _NoConfig) -> mg.Ports:
        return mg.Ports(
            inlets=[
                mg.InletSpec(name="audio", format=mg.AudioFormat(sample_rate=48000, channels=1)),
                mg.InletSpec(name="events", types=mg.PlaybackFinished, feedback=True, required=False),
            ],
            outlets=[mg.OutletSpec(name="events", types=mg.PlaybackFinished)],
        )

    def __init__(self, config: _NoConfig) -> None:
        pass

    def start(self, io: mg.NodeIO) -> None:
        pass

    def process(self, inlet: str, msg: Any) -> None:
        pass


@mg.node_type("yaml_test_text_source", config=_NoConfig)
class TextSource(mg.Source):
    """Sends nothing, declares text."""

    @staticmethod
    def ports(config: _NoConfig) -> mg.Ports:
        return mg.Ports(outlets=[mg.OutletSpec(name="text", types=mg.TextChunk)])

    def __init__(self, config: _NoConfig) -> None:
        pass

    def start(self, io: mg.NodeIO) -> None:
        pass

    def produce(self) -> float | None:
        return None


@attrs.frozen(kw_only=True)
class FilesConfig:
    path: Path = attrs.field(converter=Path)
    maybe: Path | None = None
    name: str = attrs.field(default="", metadata={"path": True})
    label: str = "not a path"


@mg.node_type("yaml_test_files", config=FilesConfig)
class Files(mg.Transform):
    """Has path parameters and an optional inlet."""

    @staticmethod
    def ports(config: FilesConfig) -> mg.Ports:
        return mg.Ports(inlets=[mg.InletSpec(name="audio", required=False)])

    def __init__(self, config: FilesConfig) -> None:
        pass

    def start(self, io: mg.NodeIO) -> None:
        pass

    def process(self, inlet: str, msg: Any) -> None:
        pass


def load(text: str, **kwargs: Any) -> GraphFile:
    return parse_graph(textwrap.dedent(text), filename="f.yaml", **kwargs)


SLOT_GRAPH = """\
nodes:
  tone: {type: tone_source, duration: 3}
  out: {type: slot, child: {type: speaker}}
links:
  - tone.audio -> out.audio
schedule:
"""

TONE_CHAIN = """\
nodes:
  tone: {type: tone_source, frequency: 440, duration: 3}
  pass: identity
  sink: null_sink
links:
  - tone.audio -> pass.audio
  - pass.audio -> sink.audio
"""


def tone_demo_in_python() -> mg.Graph:
    g = mg.Graph("tone_demo")
    tone = g.add("tone", "tone_source", frequency=440, duration=3)
    through = g.add("pass", "identity")
    sink = g.add("sink", "null_sink")
    g.link(tone["audio"], through["audio"])
    g.link(through["audio"], sink["audio"])
    return g


# --- what files build ------------------------------------------------------------------------------------


def test_tone_demo_equals_the_graph_built_in_python() -> None:
    gf = load_graph(GRAPHS / "tone_demo.yaml")
    assert gf.graph == tone_demo_in_python()
    assert gf.schedule == ()
    assert gf.locations["pass"] == f"{GRAPHS / 'tone_demo.yaml'}:10:3"


def test_the_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    path = tmp_path / "my_graph.yaml"
    path.write_text(textwrap.dedent(TONE_CHAIN))
    assert load_graph(path).graph.name == "my_graph"
    path.write_text("graph: named\n" + textwrap.dedent(TONE_CHAIN))
    assert load_graph(path).graph.name == "named"


def test_dump_then_parse_gives_the_same_graph() -> None:
    g = tone_demo_in_python()
    assert parse_graph(dump_graph(g), name="other").graph == g


@given(
    frequency=st.integers(0, 4000) | st.floats(0, 4000, allow_nan=False),
    amplitude=st.floats(0, 1),
    sample_rate=st.sampled_from([8000, 16000, 48000]),
    duration=st.none() | st.floats(0, 100),
    paced=st.booleans(),
    supervision=st.sampled_from([mg.FailGraph(), mg.Isolate(), mg.Restart(), mg.Restart(max_restarts=5, backoff=0)]),
)
def test_round_trip_through_yaml_text(
    frequency: float, amplitude: float, sample_rate: int, duration: float | None, paced: bool, supervision: Any
) -> None:
    g = mg.Graph("rt")
    g.add(
        "tone",
        "tone_source",
        supervision=supervision,
        frequency=frequency,
        amplitude=amplitude,
        sample_rate=sample_rate,
        duration=duration,
        paced=paced,
    )
    g.add("sink", "null_sink")
    g.link("tone.audio", "sink.audio")
    assert parse_graph(dump_graph(g)).graph == g


def test_anchors_merge_keys_and_shorthand() -> None:
    gf = load(
        """\
        nodes:
          a: &tone {type: tone_source, frequency: 220, duration: 1}
          b: {<<: *tone, frequency: 330}
          sa: null_sink
          sb: {type: null_sink}
        links: [a.audio -> sa.audio, b.audio -> sb.audio]
        """
    )
    assert gf.graph.nodes["a"].config.frequency == 220
    assert gf.graph.nodes["b"].config.frequency == 330
    assert gf.graph.nodes["b"].config.duration == 1


def test_supervision() -> None:
    gf = load(
        """\
        nodes:
          a: {type: tone_source, supervision: isolate}
          b: {type: tone_source, supervision: restart}
          c: {type: tone_source, supervision: {restart: {max_restarts: 7, backoff: 0.5}}}
          d: {type: tone_source, supervision: fail}
        """
    )
    policies = {name: spec.supervision for name, spec in gf.graph.nodes.items()}
    assert policies == {
        "a": mg.Isolate(),
        "b": mg.Restart(),
        "c": mg.Restart(max_restarts=7, backoff=0.5),
        "d": mg.FailGraph(),
    }


def test_relative_paths_resolve_against_the_files_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "graphs"
    folder.mkdir()
    path = folder / "files.yaml"
    path.write_text(
        "nodes:\n"
        "  rel: {type: yaml_test_files, path: out/a.wav, maybe: b.wav, name: c.wav, label: d.wav}\n"
        "  abs: {type: yaml_test_files, path: /data/a.wav, maybe: null}\n"
    )
    monkeypatch.chdir(tmp_path)
    nodes = load_graph(Path("graphs/files.yaml")).graph.nodes
    assert nodes["rel"].config == FilesConfig(
        path=folder / "out/a.wav", maybe=folder / "b.wav", name=str(folder / "c.wav"), label="d.wav"
    )
    assert nodes["abs"].config == FilesConfig(path=Path("/data/a.wav"))
    # --set values are relative to the current directory, like any command-line path
    overridden = load_graph(path, overrides=[Override.parse("rel.path=x.wav")]).graph.nodes["rel"]
    assert overridden.config.path == tmp_path / "x.wav"


def test_overrides_replace_file_values() -> None:
    gf = load(TONE_CHAIN, overrides=[Override.parse("tone.frequency=880"), Override.parse("tone.paced=false")])
    config = gf.graph.nodes["tone"].config
    assert (config.frequency, config.paced, config.duration) == (880.0, False, 3.0)


NESTED = """\
resources:
  voice: {type: espeak}
  gain: {type: gain, db: 3}
nodes:
  tone: {type: tone_source, duration: 3}
  loud: {type: frame_processor, processor: {type: gain, db: -6}}
  out: {type: slot, child: {type: speaker, block_ms: 10}}
links:
  - tone.audio -> loud.audio
  - loud.audio -> out.audio
"""


def test_overrides_reach_into_nested_parameters_and_resources() -> None:
    overrides = [
        Override.parse("loud.processor.db=-12"),
        Override.parse("out.child.block_ms=20"),
        Override.parse("out.child.device=pulse"),
        Override.parse("resources.gain.db=1.5"),
    ]
    gf = load(NESTED, overrides=overrides)
    assert gf.graph.nodes["loud"].config.processor.db == -12
    child = gf.graph.nodes["out"].config.child
    assert (child.type, child.config.block_ms, child.config.device) == ("speaker", 20, "pulse")
    assert gf.graph.resources["gain"].config.db == 1.5


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("out.child.block_ms=-5", "--set out.child.block_ms=-5: error: node 'out' (slot): slot child (speaker):"),
        ("loud.processor.dbb=1", "processor 'gain': unknown parameter 'dbb' (did you mean 'db'?)"),
        ("tone.duration.x=1", "--set tone.duration.x=1: error: tone.duration is int 3, not a mapping"),
        ("resources.gian.db=1", "--set resources.gian.db=1: error: unknown resource 'gian' (did you mean 'gain'?)"),
        ("resources.gain.type=espeak", "--set cannot change a resource's 'type'"),
    ],
)
def test_a_nested_override_s_error_points_at_the_argument(override: str, message: str) -> None:
    with pytest.raises(mg.GraphDefinitionError) as caught:
        load(NESTED, overrides=[Override.parse(override)])
    assert message in str(caught.value)


def test_a_secret_in_a_nested_override_never_shows_in_its_error() -> None:
    for text in ("loud.processor={type: gain, db: x, api_key: sekrit123}", "loud.processor.api_key.deep=sekrit123"):
        with pytest.raises(mg.GraphDefinitionError) as caught:
            load(NESTED, overrides=[Override.parse(text)])
        assert "sekrit123" not in str(caught.value), text


@pytest.mark.parametrize("text", ["tone", "tone.frequency", "tone.frequency:1", "1tone.x=1", "tone..b=1", "tone.a-b=1"])
def test_malformed_overrides(text: str) -> None:
    with pytest.raises(ValueError, match="NODE.PARAM=VALUE"):
        Override.parse(text)


def test_schedule_actions_in_order() -> None:
    gf = load(TONE_CHAIN + "schedule:\n  - {at: 0, stop: graceful}\n  - {at: 2.5, stop: cancel}\n")
    assert [(a.at, a.name, a.action, a.location) for a in gf.schedule] == [
        (0.0, "stop", Stop("graceful"), "f.yaml:9:5"),
        (2.5, "stop", Stop("cancel"), "f.yaml:10:5"),
    ]


async def test_a_stop_action_stops_the_graph_at_its_time(autojump_clock: trio.testing.MockClock) -> None:
    gf = load_graph(GRAPHS / "fan_out_fan_in.yaml")
    async with mg.open_runtime() as runtime:
        running = await runtime.start(gf.graph)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_schedule, gf.schedule, running)
            result = await running.wait()
    finished = result.log.of("graph_finished")[0]
    assert finished.t == pytest.approx(2.5)
    assert finished.fields["reason"] == "stopped"
    assert result.log.of("schedule_action")[0].fields == {"action": "stop", "at": 2.5}
    sent = result.statistics["tone"].frames_out
    assert result.statistics["sink"].frames_in == 2 * sent


# --- extension points ------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ModelConfig:
    model: Path
    strength: float = attrs.field(default=1.0, validator=attrs.validators.le(1))


class _Model:
    def __init__(self, config: ModelConfig) -> None:
        self.config = config

    def close(self) -> None:
        pass


@attrs.frozen(kw_only=True)
class _UserConfig:
    model: mg.ResourceRef


@mg.node_type("yaml_test_model_user", config=_UserConfig)
class ModelUser(mg.Transform):
    """Uses a model resource."""

    @staticmethod
    def ports(config: _UserConfig) -> mg.Ports:
        return mg.Ports(inlets=[mg.InletSpec(name="audio")])

    def __init__(self, config: _UserConfig) -> None:
        pass

    def start(self, io: mg.NodeIO) -> None:
        pass

    def process(self, inlet: str, msg: Any) -> None:
        pass


def test_resource_types_plug_in(monkeypatch: pytest.MonkeyPatch) -> None:
    from mediagraph import _node

    rt = mg.ResourceType(name="yaml_test_model", config=ModelConfig, open=_Model, summary="a model")
    monkeypatch.setitem(_node._resource_types, rt.name, rt)
    gf = load(
        """\
        resources:
          denoiser: {type: yaml_test_model, model: m.bin}
        nodes:
          tone: tone_source
          user: {type: yaml_test_model_user, model: denoiser}
        links:
          - tone.audio -> user.audio
        """,
        base_dir="/models",
    )
    config = ModelConfig(model=Path("/models/m.bin"))
    assert gf.graph.resources == {"denoiser": mg.ResourceSpec(name="denoiser", type="yaml_test_model", config=config)}
    assert gf.resources == {"denoiser": config}
    assert gf.graph.nodes["user"].config.model == mg.ResourceRef(name="denoiser", type="yaml_test_model", config=config)
    with pytest.raises(mg.GraphDefinitionError) as info:
        load("resources:\n  d: {type: yaml_test_model, model: m, strength: 2}\nnodes: {t: tone_source}\n")
    assert str(info.value).startswith("f.yaml:2:50: error: resource 'd' (yaml_test_model): ")
    with pytest.raises(mg.GraphDefinitionError) as info:
        load("resources:\n  d: {type: yaml_test_modle, model: m}\nnodes: {t: tone_source}\n")
    assert str(info.value) == (
        "f.yaml:2:13: error: resource 'd': unknown resource type 'yaml_test_modle' (did you mean 'yaml_test_model'?)"
    )
    with pytest.raises(mg.GraphDefinitionError) as info:
        load(
            "resources:\n  denoiser: {type: yaml_test_model, model: m}\n"
            "nodes:\n  u: {type: yaml_test_model_user, model: denoser}\n"
        )
    assert str(info.value) == (
        "f.yaml:4:42: error: node 'u' (yaml_test_model_user): parameter 'model': "
        "unknown resource 'denoser' (did you mean 'denoiser'?)"
    )


@attrs.frozen
class Mark:
    node: str
    label: str

    async def execute(self, running: mg.RunningGraph) -> None:
        running.record(self.node, "marked", label=self.label)
        await trio.lowlevel.checkpoint()


def parse_mark(request: ActionRequest) -> Mark:
    spec = request.node(request.value)
    label = request.params.get("label", "")
    if not isinstance(label, str):
        raise mg.GraphDefinitionError(f"label must be a string, got {label!r}", param="label")
    return Mark(spec.name, label)


@pytest.fixture
def mark_action(monkeypatch: pytest.MonkeyPatch) -> None:
    action = ActionType(name="mark", parse=parse_mark, params=("label",), summary="record an event")
    monkeypatch.setitem(_actions._action_types, "mark", action)


@pytest.mark.usefixtures("mark_action")
async def test_schedule_actions_plug_in(autojump_clock: trio.testing.MockClock) -> None:
    gf = load(TONE_CHAIN + "schedule:\n  - {at: 1, mark: pass, label: hello}\n")
    assert gf.schedule[0].action == Mark("pass", "hello")
    async with mg.open_runtime() as runtime:
        running = await runtime.start(gf.graph)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_schedule, gf.schedule, running)
            result = await running.wait()
    marked = result.log.of("marked")[0]
    assert (marked.t, marked.node, marked.fields) == (1.0, "pass", {"label": "hello"})


@pytest.mark.usefixtures("mark_action")
@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("{at: 1, mark: paas}", "f.yaml:9:19: error: mark action: unknown node 'paas' (did you mean 'pass'?)"),
        ("{at: 1, mark: pass, label: 5}", "f.yaml:9:32: error: label must be a string, got 5"),
        (
            "{at: 1, mark: pass, lable: x}",
            "f.yaml:9:25: error: mark action: unknown key 'lable' (did you mean 'label'?)",
        ),
        ("{at: 1, mark: pass, stop: cancel}", "f.yaml:9:25: error: one action per schedule entry, got mark and stop"),
    ],
)
def test_plugged_in_action_errors(entry: str, expected: str) -> None:
    with pytest.raises(mg.GraphDefinitionError) as info:
        load(TONE_CHAIN + f"schedule:\n  - {entry}\n")
    assert str(info.value) == expected


# --- where errors point ----------------------------------------------------------------------------------

ERRORS = [
    # YAML syntax
    ("nodes:\n  tone: {type: tone_source\n", "3:1", "YAML syntax error: "),
    ("nodes:\n  a: b: c\n", "2:7", "YAML syntax error: mapping values are not allowed here"),
    ("nodes: !!python/name:os.system {}\n", "1:8", "YAML syntax error: could not determine a constructor"),
    ("", "1:1", "the file is empty"),
    ("- a\n", "1:1", "a graph file must be a mapping, got a list"),
    # sections
    ("nodez: {}\n", "1:1", "unknown section 'nodez' (did you mean 'nodes'?)"),
    ("graph: g\n", "1:1", "no 'nodes:' section"),
    ("nodes: {}\n", "1:1", "'nodes' is empty"),
    ("graph: [1]\nnodes: {t: tone_source}\n", "1:8", "the graph's name must be a string, got a list"),
    # nodes
    ("nodes:\n  tone: {type: tone_sauce}\n", "2:16", "node 'tone': unknown node type 'tone_sauce' (did you mean"),
    ("nodes:\n  tone: {frequency: 3}\n", "2:3", "node 'tone' has no 'type'"),
    ("nodes:\n  tone: {type: 3}\n", "2:16", "node 'tone': 'type' must be a type name, got int 3"),
    ("nodes:\n  tone: [tone_source]\n", "2:9", "node 'tone' must be a mapping, got a list"),
    ("nodes:\n  tone: tone_source\n  tone: null_sink\n", "3:3", "duplicate key 'tone' in 'nodes' (first at line 2)"),
    ("nodes:\n  my-tone: tone_source\n", "2:3", "node name 'my-tone' must be an identifier"),
    ("nodes:\n  tone: {type: tone_source, frequncy: 3}\n", "2:29", "unknown parameter 'frequncy' (did you mean"),
    ("nodes:\n  tone: {type: tone_source, frequency: '3'}\n", "2:40", "parameter 'frequency' must be float, got str"),
    (
        "nodes:\n  tone: {type: tone_source, amplitude: 2}\n",
        "2:40",
        "node 'tone' (tone_source): 'amplitude' must be <= 1",
    ),
    (
        "nodes:\n  tone:\n    type: tone_source\n    sample_rate: 8000\n    frequency: 5000\n",
        "5:16",
        "frequency 5000.0 Hz is above half the sample rate 8000 Hz",
    ),
    (
        "nodes:\n  fp: {type: frame_processor, processor: {type: apm, noise_suppresion: true}}\n",
        "2:54",
        "node 'fp' (frame_processor): processor 'apm': unknown parameter 'noise_suppresion' (did you mean",
    ),
    (
        "nodes:\n  out: {type: slot, child: {type: speaker, rate: 8}}\n",
        "2:44",
        "node 'out' (slot): slot child (speaker): unknown parameter 'rate'",
    ),
    ("nodes:\n  t: {type: tone_source, supervision: retry}\n", "2:39", "supervision must be fail, isolate, restart"),
    (
        "nodes:\n  t: {type: tone_source, supervision: {restart: {max_restarts: -1}}}\n",
        "2:64",
        "supervision restart: 'max_restarts' must be >= 0",
    ),
    # links
    ("nodes:\n  t: tone_source\n  s: null_sink\nlinks: tone.audio -> s.audio\n", "4:8", "'links' must be a list"),
    ("nodes:\n  t: tone_source\n  s: null_sink\nlinks:\n  - [t.audio, s.audio]\n", "5:5", "a link must be a string"),
    (
        "nodes:\n  t: tone_source\n  s: null_sink\nlinks:\n  - t.audio => s.audio\n",
        "5:5",
        "a link must be 'node.port -> node.port', got 't.audio => s.audio'",
    ),
    (
        "nodes:\n  t: tone_source\n  s: null_sink\nlinks:\n  - t.audio -> s\n",
        "5:16",
        "link 't.audio -> s': expected 'node.port', got 's'",
    ),
    (
        "nodes:\n  t: tone_source\n  s: null_sink\nlinks:\n  - t.audio -> x.audio\n",
        "5:16",
        "link 't.audio -> x.audio': unknown node 'x' in x.audio",
    ),
    (
        "nodes:\n  t: tone_source\n  s: null_sink\nlinks:\n  - 't.audoi -> s.audio'\n",
        "5:6",
        "node 't' (tone_source) has no outlet 'audoi' (did you mean 'audio'?)",
    ),
    (
        'nodes:\n  t: tone_source\n  s: null_sink\nlinks:\n  - "t.audio -> s.audoi"\n',
        "5:17",
        "node 's' (null_sink) has no inlet 'audoi' (did you mean 'audio'?)",
    ),
    (
        "nodes:\n  t: tone_source\n  s: null_sink\nlinks:\n  - s.audio -> t.audio\n",
        "5:5",
        "s.audio is an inlet; a link goes from an outlet to an inlet",
    ),
    (
        "nodes:\n  t: tone_source\n  s: null_sink\nlinks:\n  - t.audio -> s.audio\n  - t.audio -> s.audio\n",
        "6:5",
        "duplicate link t.audio -> s.audio",
    ),
    # validation
    (
        "nodes:\n  t: {type: tone_source, sample_rate: 16000}\n  s: yaml_test_narrow_sink\nlinks:\n"
        "  - t.audio -> s.audio\n",
        "5:5",
        "link t.audio -> s.audio: format mismatch: t.audio sends AudioFrame (16000 Hz, 1 ch), "
        "s.audio accepts AudioFrame (48000 Hz, 1 ch)",
    ),
    (
        "nodes:\n  t: yaml_test_text_source\n  s: null_sink\nlinks:\n  - t.text -> s.audio\n",
        "5:5",
        "link t.text -> s.audio: type mismatch: t.text sends TextChunk, s.audio accepts AudioFrame",
    ),
    ("nodes:\n  t: tone_source\n  s: null_sink\n", "3:3", "required inlet s.audio (AudioFrame) is not linked"),
    (
        "nodes:\n  t: tone_source\n  a: identity\n  b: identity\n  s: null_sink\nlinks:\n"
        "  - t.audio -> a.audio\n  - a.audio -> b.audio\n  - b.audio -> a.audio\n  - b.audio -> s.audio\n",
        "9:5",
        "cycle ",
    ),
    # schedule
    (TONE_CHAIN + "schedule:\n  - {at: -1, stop: graceful}\n", "9:10", "'at: -1' is in the past"),
    (TONE_CHAIN + "schedule:\n  - {at: soon, stop: graceful}\n", "9:10", "'at' must be a number of seconds"),
    (TONE_CHAIN + "schedule:\n  - {stop: graceful}\n", "9:5", "a schedule action needs 'at: SECONDS'"),
    (
        TONE_CHAIN + "schedule:\n  - {at: 2, stop: graceful}\n  - {at: 1, stop: cancel}\n",
        "10:10",
        "'at: 1' comes before 'at: 2' (line 9): keep actions in time order",
    ),
    (TONE_CHAIN + "schedule:\n  - {at: 2, stop: gracefull}\n", "9:19", "stop must be 'graceful' or 'cancel'"),
    (TONE_CHAIN + "schedule:\n  - {at: 2, swop: s}\n", "9:13", "unknown schedule action 'swop' (did you mean"),
    (SLOT_GRAPH + "  - {at: 1, swap: tone, to: {type: speaker}}\n", "7:19", "node 'tone' is a tone_source, not a slot"),
    (SLOT_GRAPH + "  - {at: 1, swap: out}\n", "7:19", "'to' is missing"),
    (SLOT_GRAPH + "  - {at: 1, swap: out, to: {type: null_sink}}\n", "7:28", "child null_sink has ports"),
    (SLOT_GRAPH + "  - {at: 1, swap: out, to: {type: speaker, rate: 8}}\n", "7:28", "unknown parameter 'rate'"),
    (SLOT_GRAPH + "  - {at: 1, swap: out, to: {type: speaker}, policy: soon}\n", "7:53", "policy must be cut or"),
    (SLOT_GRAPH + "  - {at: 1, interrupt: outt}\n", "7:24", "unknown node 'outt' (did you mean 'out'"),
    (SLOT_GRAPH + "  - {at: 1, interrupt: out, inlet: video}\n", "7:36", "node 'out' has no inlet 'video'"),
    (TONE_CHAIN + "schedule:\n  - {at: 2}\n", "9:5", "the schedule action at 2 says nothing to do"),
    (TONE_CHAIN + "schedule:\n  - {at: 2, stop: cancel, when: now}\n", "9:27", "stop action: unknown key 'when'"),
    # resources
    (
        TONE_CHAIN + "resources:\n  d: {type: apn}\n",
        "9:13",
        "resource 'd': unknown resource type 'apn' (did you mean 'apm'?)",
    ),
    (TONE_CHAIN + "resources:\n  d: {kind: apm}\n", "9:3", "resource 'd' has no 'type'"),
    (
        TONE_CHAIN + "resources:\n  d: {type: plugin, plugin: 'no_such_module_xyz:C'}\n",
        "9:29",
        "resource 'd' (plugin): plugin 'no_such_module_xyz:C': cannot import 'no_such_module_xyz'",
    ),
    (TONE_CHAIN + "resources:\n  d: {type: apm, stream_delay_ms: -1}\n", "9:35", "'stream_delay_ms' must be >= 0"),
]


@pytest.mark.parametrize(("text", "where", "message"), ERRORS)
def test_errors_point_at_the_offending_key_or_value(text: str, where: str, message: str) -> None:
    with pytest.raises(mg.GraphDefinitionError) as info:
        parse_graph(textwrap.dedent(text), filename="f.yaml")
    assert info.value.location == f"f.yaml:{where}"
    assert str(info.value).startswith(f"f.yaml:{where}: error: ")
    assert message in info.value.message


def test_override_errors_point_at_the_argument() -> None:
    with pytest.raises(mg.GraphDefinitionError) as info:
        load(TONE_CHAIN, overrides=[Override.parse("tone.frequency=high")])
    assert str(info.value) == (
        "--set tone.frequency=high: error: node 'tone' (tone_source): parameter 'frequency' must be float, "
        "got str 'high'"
    )
    with pytest.raises(mg.GraphDefinitionError, match=r"^--set tune.x=1: error: unknown node 'tune' \(did you mean"):
        load(TONE_CHAIN, overrides=[Override.parse("tune.x=1")])
    with pytest.raises(mg.GraphDefinitionError, match=r"^--set tone.type=identity: error: --set cannot change"):
        load(TONE_CHAIN, overrides=[Override.parse("tone.type=identity")])


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(mg.GraphDefinitionError) as info:
        load_graph(tmp_path / "missing.yaml")
    assert (
        str(info.value) == f"{tmp_path / 'missing.yaml'}: error: cannot read the graph file: No such file or directory"
    )


def test_a_feedback_link_may_close_a_cycle() -> None:
    gf = load(
        """\
        nodes:
          t: tone_source
          s: yaml_test_narrow_sink
          s2: yaml_test_narrow_sink
        links:
          - t.audio -> s.audio
          - t.audio -> s2.audio
          - s.events -> s2.events
          - s2.events -> s.events
        """
    )
    assert len(gf.graph.links) == 4


def test_swap_and_interrupt_actions_run_from_the_file(tmp_path: Path) -> None:
    text = SLOT_GRAPH + (
        "  - {at: 0.5, swap: out, to: {type: speaker, block_ms: 20}}\n"
        "  - {at: 1.0, interrupt: out}\n"
        "  - {at: 2.0, swap: out, to: null, policy: boundary}\n"
    )
    gf = load(text)
    assert [a.name for a in gf.schedule] == ["swap", "interrupt", "swap"]

    async def main() -> mg.GraphResult:
        async with mg.open_runtime() as rt:
            running = await rt.start(gf.graph)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run_schedule, gf.schedule, running)
                result = await running.wait()
                nursery.cancel_scope.cancel()
        return result

    result = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    swaps = [(e.event, e.fields.get("policy"), e.t) for e in result.log if e.event == "swap_started"]
    assert swaps == [("swap_started", "cut", 0.5), ("swap_started", "boundary", pytest.approx(2.99))]  # at the end
    finished = result.log.of("playback_finished", "out")
    assert [(e.fields["segment"], e.fields["interrupted"]) for e in finished] == [(0, True), (1, True), (2, False)]
    assert result.log.of("interrupt_requested", "out")[0].t == 1.0


def test_paths_inside_an_inline_child_resolve_against_the_file() -> None:
    gf = load(
        """\
        nodes:
          tone: {type: tone_source, duration: 1}
          out: {type: slot, child: {type: recorder, path: rec/a.wav}}
        links:
          - tone.audio -> out.agent
        """,
        base_dir="/calls",
    )
    assert gf.graph.nodes["out"].config.child.config.path == Path("/calls/rec/a.wav")
