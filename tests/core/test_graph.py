"""Graph definition and validation: every error names what is wrong, before anything runs."""

from typing import Any

import attrs
import pytest

import mediagraph as mg


@attrs.frozen(kw_only=True)
class _NoConfig:
    pass


@mg.node_type("core_test_text_source", config=_NoConfig)
class TextSource(mg.Source):
    """Sends one text chunk."""

    @staticmethod
    def ports(config: _NoConfig) -> mg.Ports:
        return mg.Ports(outlets=[mg.OutletSpec(name="text", types=mg.TextChunk)])

    def __init__(self, config: _NoConfig) -> None:
        pass

    def start(self, io: mg.NodeIO) -> None:
        self._emit = io.outlets["text"].emit

    def produce(self) -> float | None:
        self._emit(mg.TextChunk(text="hello"))
        return None


@mg.node_type("core_test_wideband_sink", config=_NoConfig)
class WidebandSink(mg.Transform):
    """Accepts 48 kHz mono only, and optionally feedback events."""

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


def tone_chain(**tone: Any) -> mg.Graph:
    g = mg.Graph("t")
    g.add("tone", "tone_source", **tone)
    g.add("id", "identity")
    g.add("sink", "null_sink")
    g.link("tone.audio", "id.audio")
    g.link("id.audio", "sink.audio")
    return g


def test_valid_graph_orders_sources_first_and_resolves_formats() -> None:
    v = tone_chain(sample_rate=16000).validate()
    assert v.order == ("tone", "id", "sink")
    assert v.formats[mg.PortRef("id", "audio")] == mg.AudioFormat(sample_rate=16000, channels=1)


def test_add_errors() -> None:
    g = mg.Graph()
    with pytest.raises(mg.GraphDefinitionError, match=r"unknown node type 'tone_sorce' \(did you mean 'tone_source'"):
        g.add("a", "tone_sorce")
    with pytest.raises(mg.GraphDefinitionError, match=r"unknown parameter 'frequncy' \(did you mean 'frequency'"):
        g.add("a", "tone_source", frequncy=3)
    with pytest.raises(mg.GraphDefinitionError, match=r"parameter 'frequency' must be float, got str 'high'"):
        g.add("a", "tone_source", frequency="high")
    with pytest.raises(mg.GraphDefinitionError, match="amplitude") as info:
        g.add("a", "tone_source", amplitude=2)
    assert (info.value.node, info.value.param) == ("a", "amplitude")
    with pytest.raises(mg.GraphDefinitionError, match="above half the sample rate"):
        g.add("a", "tone_source", frequency=9000, sample_rate=16000)
    g.add("a", "tone_source")
    with pytest.raises(mg.GraphDefinitionError, match="duplicate node name 'a'"):
        g.add("a", "identity")
    with pytest.raises(mg.GraphDefinitionError, match="must be an identifier"):
        g.add("a.b", "identity")


def test_link_errors() -> None:
    g = tone_chain()
    with pytest.raises(mg.GraphDefinitionError, match="expected 'node.port', got 'tone'"):
        g.link("tone", "id.audio")
    with pytest.raises(mg.GraphDefinitionError, match=r"unknown node 'tnoe' in tnoe.audio \(did you mean 'tone'"):
        g.link("tnoe.audio", "id.audio")
    with pytest.raises(mg.GraphDefinitionError, match=r"node 'tone' \(tone_source\) has no outlet 'audi'"):
        g.link("tone.audi", "id.audio")
    with pytest.raises(mg.GraphDefinitionError, match="sink.audio is an inlet; a link goes from an outlet"):
        g.link("sink.audio", "id.audio")
    with pytest.raises(mg.GraphDefinitionError, match="duplicate link tone.audio -> id.audio"):
        g.link("tone.audio", "id.audio")


def test_type_mismatch_names_both_ends_and_types() -> None:
    g = mg.Graph()
    g.add("txt", "core_test_text_source")
    g.add("sink", "null_sink")
    g.link("txt.text", "sink.audio")
    with pytest.raises(mg.GraphDefinitionError) as info:
        g.validate()
    assert str(info.value) == (
        "link txt.text -> sink.audio: type mismatch: txt.text sends TextChunk, sink.audio accepts AudioFrame"
    )
    assert info.value.link == 0


def test_format_mismatch_is_found_through_pass_through_nodes() -> None:
    g = mg.Graph()
    g.add("tone", "tone_source", sample_rate=16000)
    g.add("id", "identity")
    g.add("wide", "core_test_wideband_sink")
    g.link("tone.audio", "id.audio")
    g.link("id.audio", "wide.audio")
    with pytest.raises(mg.GraphDefinitionError) as info:
        g.validate()
    assert str(info.value) == (
        "link id.audio -> wide.audio: format mismatch: id.audio sends AudioFrame (16000 Hz, 1 ch), "
        "wide.audio accepts AudioFrame (48000 Hz, 1 ch)"
    )


def test_fan_in_of_different_formats_into_a_pass_through_is_refused() -> None:
    g = mg.Graph()
    g.add("a", "tone_source", sample_rate=16000)
    g.add("b", "tone_source", sample_rate=48000)
    g.add("id", "identity")
    g.add("sink", "null_sink")
    g.link("a.audio", "id.audio")
    g.link("b.audio", "id.audio")
    g.link("id.audio", "sink.audio")
    with pytest.raises(mg.GraphDefinitionError, match="inlet id.audio receives different audio formats"):
        g.validate()


def test_unconnected_required_inlet() -> None:
    g = mg.Graph()
    g.add("id", "identity")
    with pytest.raises(mg.GraphDefinitionError, match=r"required inlet id.audio \(AudioFrame\) is not linked"):
        g.validate()


def test_cycles_need_a_feedback_inlet() -> None:
    g = mg.Graph()
    g.add("tone", "tone_source")
    g.add("a", "identity")
    g.add("b", "identity")
    g.link("tone.audio", "a.audio")
    g.link("a.audio", "b.audio")
    g.link("b.audio", "a.audio")
    with pytest.raises(mg.GraphDefinitionError, match="cycle .*only a link into a feedback inlet may close a cycle"):
        g.validate()

    ok = mg.Graph()
    ok.add("tone", "tone_source")
    ok.add("w", "core_test_wideband_sink")
    ok.link("tone.audio", "w.audio")
    ok.link("w.events", "w.events")  # a feedback loop onto itself
    assert ok.validate().order == ("tone", "w")


def test_graphs_compare_by_content() -> None:
    assert tone_chain() == tone_chain()
    assert tone_chain() != tone_chain(frequency=300)
    assert "3 nodes, 2 links" in repr(tone_chain())


def test_one_of_groups_name_real_inlets() -> None:
    inlets = [mg.InletSpec(name="a", required=False), mg.InletSpec(name="b", required=False)]
    assert mg.Ports(inlets=inlets, one_of=[["a", "b"]]).one_of == (("a", "b"),)
    with pytest.raises(ValueError, match=r"one_of group \('a', 'c'\): every name must be an inlet of \['a', 'b'\]"):
        mg.Ports(inlets=inlets, one_of=[("a", "c")])
    with pytest.raises(ValueError, match=r"one_of group \(\)"):
        mg.Ports(inlets=inlets, one_of=[()])
