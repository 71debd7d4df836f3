"""dump_graph is the inverse of the loader: every shipped graph and every generated one comes back equal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

import mediagraph as mg
from mediagraph.testing import GraphPlan
from mediagraph.testing.strategies import graphs

GRAPHS = Path(__file__).resolve().parents[2] / "graphs"


def _same(a: mg.Graph, b: mg.Graph) -> None:
    assert b.name == a.name
    assert b.resources == a.resources
    assert list(b.nodes) == list(a.nodes)
    for name, spec in a.nodes.items():
        assert b.nodes[name].type.name == spec.type.name, name
        assert b.nodes[name].config == spec.config, name
        assert b.nodes[name].supervision == spec.supervision, name
    assert b.links == a.links
    assert b == a


@pytest.mark.parametrize("path", sorted(GRAPHS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_graph_file_round_trips(path: Path, tmp_path: Path) -> None:
    graph = mg.load_graph(path).graph
    text = mg.dump_graph(graph)
    # Paths come back absolute, so the text reads the same from anywhere.
    _same(graph, mg.parse_graph(text, base_dir=tmp_path).graph)


@st.composite
def _audio_graphs(draw: st.DrawFn) -> mg.Graph:
    """A tone through processors (inline and shared as resources) and slots (full, empty), with supervision."""
    g = mg.Graph(draw(st.sampled_from(["audio", "a b", "ünï"])))
    gain = st.floats(-120, 60, allow_nan=False)
    processors: st.SearchStrategy[dict[str, Any]] = st.one_of(
        st.fixed_dictionaries({"type": st.just("gain"), "db": gain}),
        st.fixed_dictionaries(
            {"type": st.just("apm")},
            optional={"noise_suppression": st.booleans(), "stream_delay_ms": st.integers(0, 1000)},
        ),
        st.fixed_dictionaries(
            {"type": st.just("resample"), "sample_rate": st.sampled_from([16000, 24000, 48000])},
            optional={"quality": st.sampled_from(["LQ", "HQ"])},
        ),
    )
    for i in range(draw(st.integers(0, 2))):
        params = draw(processors)
        g.add_resource(f"proc{i}", params.pop("type"), **params)
    supervision: st.SearchStrategy[mg.Supervision] = st.sampled_from(
        [mg.FailGraph(), mg.Isolate(), mg.Restart(), mg.Restart(max_restarts=5, backoff=0)]
    )
    g.add("tone", "tone_source", frequency=draw(st.integers(0, 4000)), duration=1, supervision=draw(supervision))
    last = "tone"
    for i in range(draw(st.integers(0, 3))):
        name = f"n{i}"
        processor: Any = draw(st.sampled_from(sorted(g.resources)) | processors) if g.resources else draw(processors)
        if draw(st.booleans()):
            g.add(name, "frame_processor", processor=processor, supervision=draw(supervision))
        else:
            child = {"type": "frame_processor", "processor": processor}
            timeout = draw(st.sampled_from([5.0, 0.5]))
            g.add(name, "slot", child=child, stop_timeout=timeout, supervision=draw(supervision))
        g.link(f"{last}.audio", f"{name}.audio")
        last = name
    g.add("sink", "null_sink")
    g.link(f"{last}.audio", "sink.audio")
    if draw(st.booleans()):
        g.add("spare", "slot", like="null_sink")  # an empty slot
        g.link("tone.audio", "spare.audio")
    return g


@settings(max_examples=50, deadline=None)
@given(graph=_audio_graphs())
def test_generated_graphs_with_slots_processors_and_resources_round_trip(graph: mg.Graph) -> None:
    _same(graph, mg.parse_graph(mg.dump_graph(graph)).graph)


@settings(max_examples=50, deadline=None)
@given(plan=graphs(), policy=st.sampled_from([mg.FailGraph(), mg.Isolate(), mg.Restart(backoff=0.5)]))
def test_the_strategies_graphs_round_trip(plan: GraphPlan, policy: mg.Supervision) -> None:
    plan = attrs.evolve(plan, nodes=tuple(attrs.evolve(n, supervision=policy) for n in plan.nodes))
    graph = plan.build(name="generated")
    _same(graph, mg.parse_graph(mg.dump_graph(graph)).graph)
