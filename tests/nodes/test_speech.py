"""speech: real espeak-ng synthesis (48 kHz frames, word timings, flushes), serialization of the process-wide
engine, interrupts, determinism, errors; and its trio-free core.

Under ``MockClock(autojump_threshold=0)`` the clock may jump to the graph's next deadline while a synthesis runs in
its worker thread (every task is then waiting), so these tests compare what is sent (samples, timestamps, text),
never the graph time it arrived at, except where no deadline is pending.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import threading
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import hypothesis.strategies as st
import numpy as np
import numpy.typing as npt
import pytest
import trio
import trio.testing
from hypothesis import given

import mediagraph as mg

if TYPE_CHECKING:
    from nodes._espeak import ENGINE, EspeakError, Word
    from nodes._speech_core import MAX_CHARS, RATE, TextBuffer, Timeline, cut, resample, word_chunks
    from nodes.speech import in_thread
else:
    from mediagraph.nodes._espeak import ENGINE, EspeakError, Word
    from mediagraph.nodes._speech_core import MAX_CHARS, RATE, TextBuffer, Timeline, cut, resample, word_chunks
    from mediagraph.nodes.speech import in_thread

SENTENCE = "The quick brown fox jumps over the lazy dog."

Step = tuple[float, str, str]  # (graph time, "text" | "flush" | "interrupt", text)


# --- test nodes ---------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ScriptConfig:
    steps: tuple[Step, ...] = ()


@mg.node_type("speech_test_script", config=ScriptConfig)
class Script(mg.Source):
    """Sends text chunks, flushes and interrupts at graph times."""

    @staticmethod
    def ports(config: ScriptConfig) -> mg.Ports:
        return mg.Ports(outlets=[mg.OutletSpec(name="text", types=mg.TextChunk)])

    def __init__(self, config: ScriptConfig) -> None:
        self.steps = list(config.steps)

    def start(self, io: mg.NodeIO) -> None:
        self.emit = io.outlets["text"].emit
        self.time = io.time

    def produce(self) -> float | None:
        while self.steps and self.steps[0][0] <= self.time():
            _, kind, text = self.steps.pop(0)
            self.emit({"text": mg.TextChunk(text=text), "flush": mg.Flush(), "interrupt": mg.Interrupt()}[kind])
        return self.steps[0][0] if self.steps else None


@attrs.frozen(kw_only=True)
class CollectConfig:
    into: list[tuple[float, str, Any]] = attrs.field(eq=False)


@mg.node_type("speech_test_collect", config=CollectConfig)
class Collect(mg.Transform):
    """Keeps every message with the graph time it arrived at and its inlet."""

    @staticmethod
    def ports(config: CollectConfig) -> mg.Ports:
        return mg.Ports(
            inlets=[
                mg.InletSpec(name="audio", required=False),
                mg.InletSpec(name="text", types=mg.TextChunk, required=False),
            ]
        )

    def __init__(self, config: CollectConfig) -> None:
        self.into = config.into

    def start(self, io: mg.NodeIO) -> None:
        self.io = io

    def process(self, inlet: str, msg: Any) -> None:
        self.into.append((self.io.time(), inlet, msg))


@attrs.frozen(kw_only=True)
class Output:
    """What one speech node sent: per outlet, the messages in order (with the graph time they arrived)."""

    audio: list[tuple[float, Any]]
    text: list[tuple[float, Any]]

    @property
    def frames(self) -> list[mg.AudioFrame]:
        return [m for _, m in self.audio if isinstance(m, mg.AudioFrame)]

    @property
    def words(self) -> list[mg.TextChunk]:
        return [m for _, m in self.text if isinstance(m, mg.TextChunk)]

    def kinds(self, outlet: str) -> list[str]:
        """The outlet's messages as a compact list: ``frame``, ``word``, ``flush``, ``interrupt``."""
        names = {mg.AudioFrame: "frame", mg.TextChunk: "word", mg.Flush: "flush", mg.Interrupt: "interrupt"}
        out: list[str] = []
        for _, m in getattr(self, outlet):
            name = names[type(m)]
            if not (out and out[-1] == name and name in ("frame", "word")):
                out.append(name)
        return out

    def utterances(self) -> list[list[mg.AudioFrame]]:
        """The frames of each utterance, as the audio outlet's flushes close them."""
        out: list[list[mg.AudioFrame]] = [[]]
        for _, m in self.audio:
            if isinstance(m, mg.AudioFrame):
                out[-1].append(m)
            elif isinstance(m, mg.Flush):
                out.append([])
        return out[:-1]

    def fingerprint(self) -> tuple[Any, ...]:
        """Everything sent but arrival times: samples, timestamps, texts and timings, control messages."""
        audio = [(m.timestamp, m.samples.tobytes()) if isinstance(m, mg.AudioFrame) else m for _, m in self.audio]
        return (audio, [m for _, m in self.text])


def steps_for(*sentences: str, at: Sequence[float] | None = None) -> tuple[Step, ...]:
    times = at if at is not None else [0.0] * len(sentences)
    out: list[Step] = []
    for t, sentence in zip(times, sentences, strict=True):
        out += [(t, "text", sentence), (t, "flush", "")]
    return tuple(out)


async def speak(
    steps: tuple[Step, ...] | dict[str, tuple[Step, ...]], *, engine: bool = False, **params: Any
) -> dict[str, Output] | Output:
    """Run script -> speech -> collect (one chain per entry of ``steps`` if a dict); what each speech node sent."""
    chains = steps if isinstance(steps, dict) else {"tts": steps}
    g = mg.Graph()
    if engine:
        g.add_resource("engine", "espeak")
    got: dict[str, list[tuple[float, str, Any]]] = {}
    for name, script in chains.items():
        got[name] = []
        g.add(f"{name}_src", "speech_test_script", steps=script)
        node_params: dict[str, Any] = {**params, **({"engine": "engine"} if engine else {})}
        g.add(name, "speech", **node_params)
        g.add(f"{name}_out", "speech_test_collect", into=got[name])
        g.link(f"{name}_src.text", f"{name}.text")
        g.link(f"{name}.audio", f"{name}_out.audio")
        g.link(f"{name}.text", f"{name}_out.text")
    with trio.fail_after(600):
        await mg.run(g)
    outputs = {
        name: Output(
            audio=[(t, m) for t, inlet, m in got[name] if inlet == "audio"],
            text=[(t, m) for t, inlet, m in got[name] if inlet == "text"],
        )
        for name in chains
    }
    return outputs if isinstance(steps, dict) else outputs["tts"]


async def speak_one(steps: tuple[Step, ...], **params: Any) -> Output:
    out = await speak(steps, **params)
    assert isinstance(out, Output)
    return out


def joined(frames: Sequence[mg.AudioFrame]) -> npt.NDArray[np.int16]:
    return np.concatenate([f.samples[:, 0] for f in frames])


def rms(samples: npt.NDArray[np.int16]) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if len(samples) else 0.0


def check_contiguous(frames: Sequence[mg.AudioFrame], frame_len: int, start: int = 0) -> None:
    position = start
    for f in frames:
        assert (f.sample_rate, f.channels, f.samples_per_channel) == (RATE, 1, frame_len)
        assert f.samples.dtype == np.dtype(np.int16)
        assert f.timestamp == position
        position += frame_len


# --- real synthesis -----------------------------------------------------------------------------------------


async def test_a_sentence_is_48khz_frames_and_one_timed_chunk_per_word(autojump_clock: trio.testing.MockClock) -> None:
    out = await speak_one(steps_for(SENTENCE), paced=False)
    assert out.kinds("audio") == ["frame", "flush"]
    assert out.kinds("text") == ["word", "flush"]
    check_contiguous(out.frames, 960)
    duration = len(out.frames) * 960 / RATE
    assert 1.5 < duration < 5  # nine words at 175 words a minute
    words = out.words
    assert [w.text.strip(" .") for w in words] == SENTENCE.rstrip(".").split()
    assert "".join(w.text for w in words) == SENTENCE
    starts = [w.start or 0.0 for w in words]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    for w in words:
        assert w.start is not None and w.end is not None
        assert 0 <= w.start < w.end <= duration
    # the padding of the last frame is silence, and the voice is loud enough to hear
    assert rms(joined(out.frames)) > 1000


async def test_each_word_starts_where_its_voice_is(autojump_clock: trio.testing.MockClock) -> None:
    out = await speak_one(steps_for(SENTENCE), paced=False)
    samples = joined(out.frames)
    quiet = rms(samples[-480:])  # espeak ends a sentence with a pause
    assert quiet < 50
    for w in out.words:
        assert w.start is not None and w.end is not None
        a, b = round(w.start * RATE), round(min(w.end, w.start + 0.2) * RATE)
        assert rms(samples[a:b]) > 800, (w, rms(samples[a:b]))
    # and the time before the first word is short: espeak starts speaking at once
    first = out.words[0]
    assert first.start == 0.0 and rms(samples[: RATE // 10]) > 300


async def test_utterances_share_one_timeline_and_each_ends_with_a_flush(
    autojump_clock: trio.testing.MockClock,
) -> None:
    out = await speak_one(steps_for("Hello there.", "How are you?", "Fine.", at=[0.0, 0.2, 9.0]), frame_ms=10)
    assert out.kinds("audio") == ["frame", "flush", "frame", "flush", "frame", "flush"]
    assert out.kinds("text") == ["word", "flush", "word", "flush", "word", "flush"]
    first, second, third = out.utterances()
    check_contiguous(first, 480)
    check_contiguous(second, 480, start=first[-1].timestamp + 480)  # back to back: the second came during the first
    check_contiguous(third, 480, start=9 * RATE)  # paced: placed at the graph time its flush came
    for t, m in out.audio:
        if isinstance(m, mg.AudioFrame):
            assert t == pytest.approx(m.timestamp / RATE)  # released at its media time, never early or late


async def test_the_virtual_clock_waits_for_a_synthesis(autojump_clock: trio.testing.MockClock) -> None:
    """A regression test: while the worker thread synthesizes, every task used to be blocked, so the autojump
    clock jumped to the next deadline (here the run's end at 60 s, so the graph stopped before speaking)."""
    got: list[tuple[float, str, Any]] = []
    g = mg.Graph()
    g.add("src", "speech_test_script", steps=steps_for("Hello.", at=[0.25]))
    g.add("tts", "speech")
    g.add("out", "speech_test_collect", into=got)
    g.link("src.text", "tts.text")
    g.link("tts.audio", "out.audio")
    await mg.run(g, duration=60)
    frames = [(t, m) for t, _, m in got if isinstance(m, mg.AudioFrame)]
    assert frames[0] == (0.25, frames[0][1]) and frames[0][1].timestamp == RATE // 4
    assert all(t == pytest.approx(m.timestamp / RATE) for t, m in frames)


async def test_cancelling_a_thread_wait_aborts_the_work_and_waits_for_it() -> None:
    abort, ended = threading.Event(), threading.Event()

    def work() -> str:
        assert abort.wait(30)
        ended.set()
        return "stopped"

    async with trio.open_nursery() as nursery:
        scope = trio.CancelScope()

        async def cancel_soon() -> None:
            await trio.lowlevel.checkpoint()
            scope.cancel()

        nursery.start_soon(cancel_soon)
        with scope:
            await in_thread(work, abort)
    assert scope.cancelled_caught and abort.is_set() and ended.is_set()  # no thread left running
    assert await in_thread(lambda: 42, threading.Event()) == 42
    with pytest.raises(ZeroDivisionError):
        await in_thread(lambda: 1 // 0, threading.Event())


def test_an_aborted_synthesis_stops_early() -> None:
    abort = threading.Event()
    abort.set()
    full = ENGINE.synthesize(SENTENCE, voice="en-us", rate=175, pitch=50)
    cut_short = ENGINE.synthesize(SENTENCE, voice="en-us", rate=175, pitch=50, abort=abort)
    assert not full.aborted and cut_short.aborted
    assert len(cut_short.samples) < len(full.samples) // 4 and len(cut_short.words) < len(full.words)


async def test_unpaced_sends_as_fast_as_the_graph_takes(autojump_clock: trio.testing.MockClock) -> None:
    out = await speak_one(steps_for("One.", "Two.", "Three."), paced=False)
    assert {t for t, _ in out.audio} == {0.0}
    check_contiguous(out.frames, 960)
    assert [w.text for w in out.words] == ["One.", "Two.", "Three."]


async def test_the_output_is_the_same_on_every_run(autojump_clock: trio.testing.MockClock) -> None:
    steps = steps_for("Determinism is a feature.", "Twice the same.", at=[0.0, 0.3])
    first, second = await speak_one(steps, rate=200, pitch=70), await speak_one(steps, rate=200, pitch=70)
    assert first.fingerprint() == second.fingerprint()
    other = await speak_one(steps, rate=200, pitch=30)
    assert joined(other.frames).tobytes() != joined(first.frames).tobytes()  # the pitch is applied


@pytest.mark.parametrize("engine", [False, True], ids=["own", "shared-resource"])
async def test_two_speech_nodes_are_serialized(engine: bool, autojump_clock: trio.testing.MockClock) -> None:
    a, b = steps_for(SENTENCE, "A second sentence, to overlap."), steps_for("Other words here.", SENTENCE)
    alone_a, alone_b = await speak_one(a, paced=False), await speak_one(b, paced=False)
    before = ENGINE.calls
    both = await speak({"a": a, "b": b}, paced=False, engine=engine)
    assert isinstance(both, dict)
    calls = ENGINE.calls - before
    assert calls == 4
    spans = sorted(list(ENGINE.spans)[-calls:])
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start  # never two syntheses at once
    assert both["a"].fingerprint() == alone_a.fingerprint()  # the same bytes as alone: no state shared
    assert both["b"].fingerprint() == alone_b.fingerprint()


async def test_two_voices_in_one_graph_each_keep_their_own(autojump_clock: trio.testing.MockClock) -> None:
    steps = steps_for(SENTENCE)
    us, gb = await speak_one(steps, paced=False), await speak_one(steps, paced=False, voice="en-gb")
    g = mg.Graph()
    got: dict[str, list[tuple[float, str, Any]]] = {"us": [], "gb": []}
    g.add("src", "speech_test_script", steps=steps)
    for name, voice in (("us", "en-us"), ("gb", "en-gb")):
        g.add(name, "speech", voice=voice, paced=False)
        g.add(f"{name}_out", "speech_test_collect", into=got[name])
        g.link("src.text", f"{name}.text")
        g.link(f"{name}.audio", f"{name}_out.audio")
    await mg.run(g)
    for name, alone in (("us", us), ("gb", gb)):
        frames = [m for _, _, m in got[name] if isinstance(m, mg.AudioFrame)]
        assert joined(frames).tobytes() == joined(alone.frames).tobytes()
    assert joined(us.frames).tobytes() != joined(gb.frames).tobytes()


async def test_an_interrupt_stops_the_utterance_and_drops_pending_text(
    autojump_clock: trio.testing.MockClock,
) -> None:
    steps: tuple[Step, ...] = (
        (0.0, "text", SENTENCE),
        (0.0, "flush", ""),
        (0.5, "text", "never spoken"),
        (0.61, "interrupt", ""),
        (1.0, "text", "After."),
        (1.0, "flush", ""),
    )
    out = await speak_one(steps)
    assert out.kinds("audio") == ["frame", "interrupt", "frame", "flush"]
    assert out.kinds("text") == ["word", "flush", "interrupt", "word", "flush"]  # its words are all known at once
    cut_at = next(i for i, (_, m) in enumerate(out.audio) if isinstance(m, mg.Interrupt))
    before = [m for _, m in out.audio[:cut_at]]
    after = [m for _, m in out.audio[cut_at + 1 :] if isinstance(m, mg.AudioFrame)]
    check_contiguous(before, 960)
    assert before[-1].timestamp / RATE == pytest.approx(0.6)  # the last frame due before the interrupt at 0.61
    assert after[0].timestamp == RATE  # the next utterance at its own time
    assert "".join(w.text for w in out.words) == SENTENCE + "After."


async def test_an_interrupt_right_after_a_flush_speaks_nothing(autojump_clock: trio.testing.MockClock) -> None:
    before = ENGINE.calls
    steps: tuple[Step, ...] = (
        (0.0, "text", SENTENCE),
        (0.0, "flush", ""),
        (0.0, "interrupt", ""),
        (0.1, "text", "Only this."),
        (0.1, "flush", ""),
    )
    out = await speak_one(steps, paced=False)
    assert out.kinds("text") == ["interrupt", "word", "flush"]
    assert out.kinds("audio") == ["interrupt", "frame", "flush"]
    assert ENGINE.calls - before == 1
    assert out.frames[0].timestamp == 0


async def test_an_empty_flush_is_an_empty_utterance_and_unflushed_text_is_spoken_at_the_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    steps: tuple[Step, ...] = ((0.0, "flush", ""), (0.0, "text", "  "), (0.0, "flush", ""), (0.0, "text", "Last"))
    out = await speak_one(steps, paced=False)
    assert out.kinds("audio") == ["flush", "flush", "frame", "flush"]
    assert out.kinds("text") == ["flush", "flush", "word", "flush"]
    assert [w.text for w in out.words] == ["Last"]


# --- errors -------------------------------------------------------------------------------------------------


def test_an_unknown_voice_is_refused_before_anything_runs() -> None:
    g = mg.Graph()
    with pytest.raises(mg.GraphDefinitionError) as info:
        g.add("tts", "speech", voice="en-uss")
    assert info.value.param == "voice"
    assert (
        "node 'tts'" in str(info.value) and "'en-uss'" in str(info.value) and "did you mean 'en-us'" in str(info.value)
    )


@pytest.mark.parametrize(
    ("params", "param"),
    [({"rate": 20}, "rate"), ({"rate": 1000}, "rate"), ({"pitch": 101}, "pitch"), ({"frame_ms": 0}, "frame_ms")],
)
def test_out_of_range_parameters_are_refused(params: dict[str, Any], param: str) -> None:
    with pytest.raises(mg.GraphDefinitionError) as info:
        mg.Graph().add("tts", "speech", **params)
    assert info.value.param == param


def test_the_engine_must_be_an_espeak_resource() -> None:
    text = "resources: {ns: {type: gain, db: 0}}\nnodes:\n  tts: {type: speech, engine: ns}\n"
    with pytest.raises(mg.GraphDefinitionError, match=r"resource 'ns' is a gain, not an espeak engine") as info:
        mg.parse_graph(text)
    assert info.value.param == "engine"


async def test_a_failing_library_fails_the_node_naming_it(
    monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.testing.MockClock
) -> None:
    def broken(text: str, **_: Any) -> Any:
        raise EspeakError("espeak_Synth failed with status -1")

    monkeypatch.setattr(ENGINE, "synthesize", broken)
    with pytest.raises(mg.NodeFailedError) as info:
        await speak_one(steps_for("Hello."))
    assert isinstance(info.value.__cause__, mg.ProviderError)
    assert "node 'tts' (speech): voice 'en-us': espeak_Synth failed" in str(info.value.__cause__)


async def test_an_utterance_without_a_flush_is_bounded(autojump_clock: trio.testing.MockClock) -> None:
    with pytest.raises(mg.NodeFailedError, match="tts") as info:
        await speak_one(((0.0, "text", "word " * (MAX_CHARS // 5)), (0.0, "text", "more")))
    assert "without a Flush" in str(info.value.__cause__)


# --- a graph file, and `mediagraph nodes` --------------------------------------------------------------------


async def test_a_graph_file_shares_an_espeak_resource(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    text = """
resources: {voice: {type: espeak}}
nodes:
  say: {type: text_source, script: [{at: 0, text: "Hello."}, {at: 0.5, text: "Bye."}]}
  a: {type: speech, engine: voice}
  b: {type: speech, engine: voice, voice: en-gb, rate: 220}
  sink_a: null_sink
  sink_b: null_sink
links:
  - say.text -> a.text
  - say.text -> b.text
  - a.audio -> sink_a.audio
  - b.audio -> sink_b.audio
"""
    gf = mg.parse_graph(text, base_dir=tmp_path)
    result = await mg.run(gf.graph)
    assert [e.fields["resource"] for e in result.log.of("resource_opened")] == ["voice"]
    assert [e.fields["resource"] for e in result.log.of("resource_closed")] == ["voice"]
    assert mg.parse_graph(mg.dump_graph(gf.graph)).graph == gf.graph


def test_mediagraph_nodes_lists_the_ports() -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "mediagraph", "nodes", "speech"], capture_output=True, text=True, timeout=60, check=False
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("speech: Speaks text offline")
    assert re.search(r"inlets:\n  text +TextChunk", ran.stdout)
    assert re.search(r"outlets:\n  audio +AudioFrame +48000 Hz, 1 ch\n  text +TextChunk", ran.stdout)
    for param in ("voice", "rate", "pitch", "frame_ms", "paced", "engine"):
        assert re.search(rf"^  {param} ", ran.stdout, re.MULTILINE), param


# --- the core -----------------------------------------------------------------------------------------------


@given(length=st.integers(0, 5000), frame_len=st.integers(1, 2000), start=st.integers(0, 10**9))
def test_cut_pads_the_last_frame_and_stamps_consecutively(length: int, frame_len: int, start: int) -> None:
    samples = (np.arange(length) % 30000 + 1).astype(np.int16)
    frames = cut(samples, start=start, frame_len=frame_len)
    assert len(frames) == -(-length // frame_len)
    check_contiguous(frames, frame_len, start=start) if frames else None
    flat = joined(frames) if frames else np.zeros(0, np.int16)
    assert np.array_equal(flat[:length], samples) and not flat[length:].any()


@given(st.lists(st.tuples(st.integers(0, 10**6), st.none() | st.floats(0, 100), st.none() | st.floats(0, 1))))
def test_the_timeline_never_goes_back(placements: list[tuple[int, float | None, float | None]]) -> None:
    """Each utterance starts after what was sent (all of the previous one, or the part sent before a cut)."""
    timeline, end = Timeline(), 0
    for length, now, cut_at in placements:
        start = timeline.place(length, now=now)
        assert start >= end and (now is None or start >= round(now * RATE))
        assert start == end or (now is not None and start == round(now * RATE))
        end = start + length
        if cut_at is not None:  # interrupted after sending a part
            end = start + round(length * cut_at)
            timeline.note_sent(end)
            timeline.cut()
        else:
            timeline.note_sent(end)


@given(st.integers(1, 50_000), st.sampled_from([8000, 16000, 22050, 44100]))
def test_resampling_gives_the_rounded_length(length: int, rate: int) -> None:
    out = resample(np.ones(length, np.int16), rate)
    assert out.dtype == np.int16 and len(out) == round(length * RATE / rate)


words_strategy = st.lists(
    st.builds(
        Word,
        position=st.integers(-2, 60),
        length=st.integers(0, 10),
        ms=st.integers(0, 5000),
        end_ms=st.none() | st.integers(0, 6000),
    ),
    max_size=12,
).map(lambda ws: sorted(ws, key=lambda w: w.ms))


@given(text=st.text(min_size=0, max_size=60), words=words_strategy, duration=st.floats(0.1, 10))
def test_word_chunks_give_back_the_text_with_timings_inside_the_audio(
    text: str, words: list[Word], duration: float
) -> None:
    chunks = word_chunks(text, words, duration)
    if text.strip() or any(0 <= w.position < len(text) for w in words):
        assert "".join(c.text for c in chunks) == text
    for c in chunks:
        assert c.start is not None and c.end is not None
        assert 0 <= c.start <= c.end <= duration
    starts = [c.start for c in chunks]
    assert starts == sorted(starts)  # type: ignore[type-var]


def test_word_chunks_of_real_events() -> None:
    synthesis = ENGINE.synthesize("Hello world, again.", voice="en-us", rate=175, pitch=50)
    chunks = word_chunks("Hello world, again.", synthesis.words, len(synthesis.samples) / synthesis.sample_rate)
    assert [c.text for c in chunks] == ["Hello ", "world, ", "again."]
    assert chunks[0].start == 0.0 and chunks[1].end is not None and chunks[1].end <= (chunks[2].start or 0)


def test_the_text_buffer_joins_drops_and_bounds() -> None:
    buffer = TextBuffer()
    buffer.add(mg.TextChunk(text="Hello "))
    buffer.add(mg.TextChunk(text="world"))
    assert buffer.flush() == "Hello world" and buffer.flush() == ""
    buffer.add(mg.TextChunk(text="gone"))
    buffer.drop()
    assert len(buffer) == 0
    buffer.add(mg.TextChunk(text="x" * MAX_CHARS))
    with pytest.raises(ValueError, match="without a Flush"):
        buffer.add(mg.TextChunk(text="y"))
    assert len(buffer) == MAX_CHARS


def test_a_virtual_run_writes_the_same_recording_in_every_process(tmp_path: Path) -> None:
    """text_source -> speech -> recorder under `mediagraph run --clock virtual`, twice, each in its own process."""
    (tmp_path / "talk.yaml").write_text(
        """
nodes:
  say: {type: text_source, script: [{at: 0.2, text: "Good morning."}, {at: 1.5, text: "How are you today?"}]}
  tts: {type: speech, voice: en-gb, rate: 190}
  rec: {type: recorder, path: talk.wav}
links:
  - say.text -> tts.text
  - tts.audio -> rec.agent
"""
    )
    outputs = []
    for _ in range(2):
        ran = subprocess.run(
            [sys.executable, "-m", "mediagraph", "run", "talk.yaml", "--clock", "virtual"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert ran.returncode == 0, ran.stderr
        outputs.append((tmp_path / "talk.wav").read_bytes())
    assert outputs[0] == outputs[1]
    with wave.open(str(tmp_path / "talk.wav")) as w:
        rate, channels = w.getframerate(), w.getnchannels()
        samples = np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, channels)
    agent = samples[:, 1]
    assert rate == RATE and rms(agent[: round(0.2 * rate)]) == 0  # silent until the first utterance's time
    assert rms(agent[round(0.2 * rate) : round(0.8 * rate)]) > 800  # then the voice, where it was said
