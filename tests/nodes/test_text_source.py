"""text_source: scripted utterances and text files on the graph clock, chunking, and every way to get it wrong."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hypothesis.strategies as st
import pytest
import trio
import trio.testing
from hypothesis import given

import mediagraph as mg
from mediagraph.testing import Recorder, SinkConfig

if TYPE_CHECKING:
    from nodes.text_source import MAX_FILE_BYTES, Line, TextSourceConfig, chunks
else:
    from mediagraph.nodes.text_source import MAX_FILE_BYTES, Line, TextSourceConfig, chunks


async def collect(graph_text: str, base: Path) -> tuple[list[tuple[float, Any]], mg.GraphResult]:
    """Load a graph file's text (with a node ``src``), link ``src.text`` to a recording sink, run it; what
    arrived, with the graph time it arrived at."""
    recorder = Recorder()
    graph = mg.parse_graph(graph_text, base_dir=base).graph
    graph.add("out", "test_sink", config=SinkConfig(recorder=recorder))
    graph.link("src.text", "out.in")
    with trio.fail_after(3600):
        result = await mg.run(graph)
    return [(a.t, a.message) for a in recorder.arrivals("out")], result


def utterances(got: list[tuple[float, Any]]) -> list[tuple[float, list[str]]]:
    """The utterances as (graph time of their flush, chunk texts), checking each ends with a flush."""
    out: list[tuple[float, list[str]]] = []
    pending: list[str] = []
    for t, msg in got:
        if isinstance(msg, mg.TextChunk):
            assert msg.start is None and msg.end is None
            pending.append(msg.text)
        else:
            assert isinstance(msg, mg.Flush)
            out.append((t, pending))
            pending = []
    assert pending == []  # nothing after the last flush
    return out


async def test_a_script_sends_each_utterance_at_its_time(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    text = """
nodes:
  src: {type: text_source, script: [{at: 0.5, text: "Hello there."}, {at: 0.5, text: "Twice."}, {at: 2, text: "Bye."}]}
"""
    got, result = await collect(text, tmp_path)
    sent = utterances(got)
    assert [texts for _, texts in sent] == [["Hello there."], ["Twice."], ["Bye."]]
    # at their time, within the clock ticks (a millisecond each) that separate two due at once
    assert [t for t, _ in sent] == pytest.approx([0.5, 0.5, 2.0], abs=0.0025)
    assert sent[0][0] == 0.5 and sent[2][0] == 2.0
    assert result.log.of("graph_finished")[0].fields["reason"] == "completed"  # the outlet ended after the last


async def test_chunk_words_cuts_utterances_into_pieces(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    text = """
nodes:
  src: {type: text_source, chunk_words: 2, script: [{at: 0, text: "one two three  four five"}, {at: 0, text: "solo"}]}
"""
    got, _ = await collect(text, tmp_path)
    assert utterances(got) == [(0.0, ["one two ", "three  four ", "five"]), (0.0, ["solo"])]


async def test_a_file_gives_one_utterance_per_line(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    (tmp_path / "lines.txt").write_text("First line.\n\n   \nSecond line.\r\n  Third, indented.  \n", encoding="utf-8")
    got, _ = await collect("nodes:\n  src: {type: text_source, path: lines.txt, every: 1.5}\n", tmp_path)
    assert utterances(got) == [(0.0, ["First line."]), (1.5, ["Second line."]), (3.0, ["Third, indented."])]
    got, _ = await collect("nodes:\n  src: {type: text_source, path: lines.txt}\n", tmp_path)
    times = [t for t, _ in utterances(got)]
    assert times == sorted(times) and times[-1] <= 0.0025  # back to back, at most a clock tick apart


async def test_an_empty_script_ends_at_once(autojump_clock: trio.testing.MockClock, tmp_path: Path) -> None:
    got, result = await collect("nodes:\n  src: text_source\n", tmp_path)
    assert got == [] and result.log.of("graph_finished")[0].t == 0.0


def test_a_graph_with_a_script_dumps_and_loads_back_equal(tmp_path: Path) -> None:
    (tmp_path / "lines.txt").write_text("a\n")
    for params in ('script: [{at: 0.5, text: "Hi."}, [1, "Ho."]], chunk_words: 1', "path: lines.txt, every: 2"):
        graph = mg.parse_graph(f"nodes:\n  src: {{type: text_source, {params}}}\n", base_dir=tmp_path).graph
        assert mg.parse_graph(mg.dump_graph(graph), base_dir=tmp_path).graph == graph
    config = mg.config_from_mapping(TextSourceConfig, {"script": [[1, "Ho."]]}, where="t")
    assert config.lines == (Line(at=1.0, text="Ho."),)


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ('"Hello"', "script must be a list of {at: SECONDS, text: TEXT}, got str"),
        ("[Hello]", "script entry 0: expected a mapping {at: SECONDS, text: TEXT}, got 'Hello'"),
        ("[{at: 1}]", "script entry 0: 'text' must be a non-empty string, got None"),
        ('[{at: 1, text: "  "}]', "script entry 0: 'text' must be a non-empty string, got '  '"),
        ('[{text: "x"}]', "script entry 0: 'at' must be seconds between 0 and 1e6, got None"),
        ('[{at: -1, text: "x"}]', "script entry 0: 'at' must be seconds between 0 and 1e6, got -1"),
        ('[{at: true, text: "x"}]', "script entry 0: 'at' must be seconds between 0 and 1e6, got True"),
        ('[{at: 1, text: "x", voice: en}]', "script entry 0: unknown key 'voice' (known: at, text)"),
        ('[{at: 2, text: "x"}, {at: 1, text: "y"}]', "script entry 1: at 1 comes before the previous entry's 2.0"),
        ("[" + "x" * 500 + "]", "script entry 0: expected a mapping {at: SECONDS, text: TEXT}, got 'xxxx"),
    ],
)
def test_bad_script_entries_are_refused_naming_the_entry(script: str, message: str) -> None:
    text = f"nodes:\n  src: {{type: text_source, script: {script}}}\n"
    with pytest.raises(mg.GraphDefinitionError) as info:
        mg.parse_graph(text)
    assert message in str(info.value)
    assert info.value.param == "script"
    assert "node 'src' (text_source)" in str(info.value) and len(str(info.value)) < 400


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    (tmp_path / "big.txt").write_bytes(b"x\n" * (MAX_FILE_BYTES // 2 + 1))
    (tmp_path / "folder").mkdir()
    for name, problem in [
        ("missing.txt", "no such file"),
        ("latin1.txt", "not UTF-8 text (byte 3)"),
        ("big.txt", f"at most {MAX_FILE_BYTES}"),
        ("folder", "not a regular file"),
    ]:
        with pytest.raises(mg.GraphDefinitionError) as info:
            mg.parse_graph(f"nodes:\n  src: {{type: text_source, path: {name}}}\n", base_dir=tmp_path)
        assert info.value.param == "path", name
        assert str(tmp_path / name) in str(info.value) and problem in str(info.value), str(info.value)


def test_script_and_path_together_are_refused(tmp_path: Path) -> None:
    (tmp_path / "lines.txt").write_text("a\n")
    text = 'nodes:\n  src: {type: text_source, path: lines.txt, script: [{at: 0, text: "b"}]}\n'
    with pytest.raises(mg.GraphDefinitionError, match="give either script or path, not both"):
        mg.parse_graph(text, base_dir=tmp_path)


def test_the_path_is_an_input_of_the_path_policy(tmp_path: Path) -> None:
    (tmp_path / "lines.wav").write_text("a\n")  # a text file, whatever its name
    text = (
        "nodes:\n  src: {type: text_source, path: lines.wav}\n  tone: tone_source\n"
        "  rec: {type: recorder, path: lines.wav}\nlinks: [tone.audio -> rec.user]\n"
    )
    with pytest.raises(mg.GraphDefinitionError, match=r"is also the input of node 'src' parameter 'path'"):
        mg.parse_graph(text, base_dir=tmp_path, output_dirs=[])


@given(text=st.text(alphabet=st.sampled_from("ab é\n\t"), max_size=40), words=st.integers(0, 5))
def test_chunks_join_back_and_hold_at_most_n_words(text: str, words: int) -> None:
    pieces = chunks(text, words)
    assert "".join(pieces) == text
    if words:
        assert all(len(piece.split()) <= words for piece in pieces)
        assert len(pieces) == max(1, -(-len(text.split()) // words))
    else:
        assert pieces == [text]


def test_mediagraph_nodes_lists_it() -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "mediagraph", "nodes", "text_source"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert "outlets:\n  text  TextChunk" in ran.stdout
    for param in ("script", "path", "every", "chunk_words"):
        assert f"\n  {param} " in ran.stdout, param
