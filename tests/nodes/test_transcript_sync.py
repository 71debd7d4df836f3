"""transcript_sync through real nodes on the virtual clock: a scripted speaker of text and audio above it, a
speaker (or a slot holding one, swapped under it, or a sink that dies) below it."""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Sequence
from typing import Any, final

import attrs
import hypothesis.strategies as st
import numpy as np
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, note, settings

import mediagraph as mg
from mediagraph.testing import Recorder, SinkConfig, check_playback, check_transcripts

RATE = 48000
FRAME = 480  # 10 ms

#: A step of the utterances script: ("frame",), ("flush",), ("interrupt",), ("text", chunk, start, end),
#: ("tflush",) (a Flush on the text), ("wait", seconds).
Step = tuple[Any, ...]


@final
@attrs.frozen(kw_only=True)
class UtterancesConfig:
    steps: tuple[Step, ...] = ()


@final
@mg.node_type("test_utterances", config=UtterancesConfig)
class Utterances(mg.Source):
    """Plays a script of audio frames (10 ms, 48 kHz mono, paced; ``("burst", n)``: n frames at once), text
    chunks, flushes and interrupts."""

    @staticmethod
    def ports(config: UtterancesConfig) -> mg.Ports:
        return mg.Ports(
            outlets=[
                mg.OutletSpec(name="audio", format=mg.AudioFormat(sample_rate=RATE, channels=1)),
                mg.OutletSpec(name="text", types=mg.TextChunk),
            ]
        )

    def __init__(self, config: UtterancesConfig) -> None:
        self.steps = list(config.steps)
        self.at = 0.0
        self.frames = 0

    def start(self, io: mg.NodeIO) -> None:
        self.audio = io.outlets["audio"].emit
        self.text = io.outlets["text"].emit

    def produce(self) -> float | None:
        while self.steps:
            step = self.steps.pop(0)
            kind = step[0]
            if kind == "frame":
                self._frame()
                self.at += FRAME / RATE
                return self.at
            if kind == "burst":
                for _ in range(step[1]):
                    self._frame()
                continue
            if kind == "wait":
                self.at += step[1]
                return self.at
            if kind == "text":
                self.text(mg.TextChunk(text=step[1], start=step[2], end=step[3]))
            elif kind == "tflush":
                self.text(mg.Flush())
            else:
                self.audio(mg.Flush() if kind == "flush" else mg.Interrupt())
        return None

    def _frame(self) -> None:
        samples = np.full((FRAME, 1), self.frames % 30000 + 1, np.int16)
        self.audio(mg.AudioFrame(samples=samples, sample_rate=RATE, channels=1, timestamp=self.frames * FRAME))
        self.frames += 1


@final
@attrs.frozen(kw_only=True)
class SlowConfig:
    recorder: Recorder = attrs.field(eq=False)


@final
@mg.node_type("test_slow_words", config=SlowConfig)
class SlowWords(mg.Actor):
    """Takes one message at a time (mailbox of one) and 50 ms over each: backpressure on what feeds it."""

    @staticmethod
    def ports(config: SlowConfig) -> mg.Ports:
        return mg.Ports(inlets=[mg.InletSpec(name="in", types=object, capacity=1)])

    def __init__(self, config: SlowConfig) -> None:
        self.recorder = config.recorder

    async def run(self, io: mg.NodeIO) -> None:
        async for msg in io.inlets["in"]:
            self.recorder.record(io.name, "in", msg, io.time())
            await trio.sleep(0.05)


def graph(
    steps: list[Step], below: dict[str, Any], recorder: Recorder, *, sps: float = 4.0, slow_words: bool = False
) -> mg.Graph:
    g = mg.Graph("talk")
    g.add("src", "test_utterances", steps=tuple(steps))
    g.add("sync", "transcript_sync", syllables_per_second=sps)
    g.add("out", below.pop("type"), supervision=below.pop("supervision", mg.FailGraph()), **below)
    g.add("heard", "test_sink", config=SinkConfig(recorder=recorder))
    if slow_words:
        g.add("words", "test_slow_words", config=SlowConfig(recorder=recorder))
    else:
        g.add("words", "test_sink", config=SinkConfig(recorder=recorder))
    g.link("src.audio", "sync.audio")
    g.link("src.text", "sync.text")
    g.link("sync.audio", "out.audio")
    g.link("out.playback", "sync.playback")
    g.link("sync.transcript", "heard.in")
    g.link("sync.text", "words.in")
    return g


def transcripts(recorder: Recorder) -> list[mg.Transcript]:
    return [a.message for a in recorder.arrivals("heard") if isinstance(a.message, mg.Transcript)]


def speaker() -> dict[str, Any]:
    return {"type": "speaker", "sample_rate": RATE, "progress_ms": 10}


def frames(n: int) -> list[Step]:
    return [("frame",)] * n


async def test_played_out_segments_get_their_whole_text(autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    steps = [("text", "hello there", None, None), ("tflush",), *frames(50), ("flush",)]
    steps += [*frames(30), ("flush",), ("text", "general", None, None), ("text", " kenobi", None, None), ("tflush",)]
    log = mg.EventLog()
    await mg.run(graph(steps, speaker(), rec), log=log)
    assert [(t.segment, t.interrupted, t.text) for t in transcripts(rec)] == [
        (0, False, "hello there"),
        (1, False, "general kenobi"),
    ]
    words = "".join(a.message.text for a in rec.arrivals("words") if isinstance(a.message, mg.TextChunk))
    assert words == "hello theregeneral kenobi"  # a Flush separates the segments' words on `text`
    assert [type(a.message).__name__ for a in rec.arrivals("words")].count("Flush") == 2
    check_transcripts(log, "sync", "out")
    check_playback(log, "out")
    finished = log.of("transcript_finished")
    assert [e.fields["text"] for e in finished] == ["hello there", "general kenobi"]


async def test_an_interrupt_keeps_exactly_the_words_started_before_the_cut(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    # Timed words 0.1 s apart; the interrupt comes after 35 frames were sent, the speaker having played ~0.3 s.
    words = ["one", "two", "three", "four", "five", "six"]
    steps: list[Step] = [("text", f"{w} ", i * 0.1, None) for i, w in enumerate(words)] + [("tflush",)]
    steps += [*frames(35), ("interrupt",), *frames(10), ("flush",)]
    log = mg.EventLog()
    await mg.run(graph(steps, {**speaker(), "prebuffer_ms": 0}, rec), log=log)
    first, second = transcripts(rec)
    assert first.interrupted and 0.25 < first.position <= 0.35
    assert first.text == " ".join(w for i, w in enumerate(words) if i * 0.1 < first.position)
    assert (second.segment, second.interrupted, second.text) == (1, False, "")  # its text was never given
    check_transcripts(log, "sync", "out")


async def test_a_barge_in_after_the_input_ended_cuts_the_last_words(autojump_clock: trio.testing.MockClock) -> None:
    # The utterance's 0.6 s of audio is all sent at once and the input ends; the speaker is still playing it
    # when the API interrupts at 0.35 s. It used to be lost (nobody read the ended inlet): the
    # whole text was heard.
    rec = Recorder()
    words = ["one", "two", "three", "four", "five", "six"]
    steps: list[Step] = [("text", f"{w} ", i * 0.1, None) for i, w in enumerate(words)] + [("tflush",)]
    steps += [("burst", 60), ("flush",)]
    log = mg.EventLog()
    async with mg.open_runtime() as rt:
        running = await rt.start(graph(steps, speaker(), rec), log=log)
        await trio.sleep_until(running.t0 + 0.35)
        running.interrupt("sync")
        await running.wait()
    (heard,) = transcripts(rec)
    assert heard.interrupted and heard.position == pytest.approx(0.35, abs=0.011)
    assert heard.text == "one two three four"
    check_transcripts(log, "sync", "out")
    check_playback(log, "out")


async def test_the_text_of_a_slot_child_that_dies_is_cut_where_it_died(autojump_clock: trio.testing.MockClock) -> None:
    rec = Recorder()
    steps: list[Step] = [("text", "a b c d e f g h", 0.0, 0.8), ("tflush",), *frames(100), ("flush",)]
    below = {"type": "slot", "child": {"type": "test_faulty_sink", "die_at_frame": 40}}
    log = mg.EventLog()
    with pytest.raises(mg.NodeFailedError):
        await mg.run(graph(steps, below, rec), log=log)
    (only,) = transcripts(rec)
    assert only.interrupted and only.text == " ".join("abcdefgh"[: math.ceil(only.position / 0.1 - 1e-9)])
    check_transcripts(log, "sync", "out")


async def test_a_cut_below_between_the_last_frame_and_the_flush_leaves_an_empty_tail(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Found by the generated schedules: the slot empties (cut) after an utterance's last frame and before its
    flush, so the flush becomes an empty segment of its own; it is that utterance's tail, not a next one."""
    rec = Recorder()
    steps: list[Step] = [("tflush",), *frames(18), ("flush",), ("text", "end", None, None), ("tflush",)]
    steps += [*frames(22), ("flush",)]
    log = await run_with_swaps(graph(steps, {"type": "slot", "child": speaker()}, rec), [(0.4, None, "cut")])
    check_transcripts(log, "sync", "out")
    assert [(t.segment, t.interrupted) for t in transcripts(rec)] == [(0, False), (1, True), (2, True)]
    assert transcripts(rec)[2].text == ""


async def test_words_go_out_in_order_whatever_the_backpressure_on_text(autojump_clock: trio.testing.MockClock) -> None:
    """Found in review: the readers each sent what the core decided, so a reader waiting on a full `text`
    outlet let another's later words overtake its own, differently from run to run."""
    rec = Recorder()
    words = [f"w{k}" for k in range(60)]
    steps: list[Step] = [*frames(150), ("flush",), ("text", " ".join(words), None, None), ("tflush",)]
    log = mg.EventLog()
    await mg.run(graph(steps, speaker(), rec, slow_words=True), log=log)
    got = [a.message.text.strip() for a in rec.arrivals("words") if isinstance(a.message, mg.TextChunk)]
    assert got == words
    check_transcripts(log, "sync", "out")


# --- generated schedules ----------------------------------------------------------------------------------

WORDS = ["hi", "there", "banana", "a", "extraordinary", "cat", "on", "mat", "seriously", "ok"]


@st.composite
def scripts(draw: st.DrawFn) -> tuple[list[Step], list[list[str]]]:
    """Utterances with timed words (0.05 to 0.2 s apart) or untimed ones, chunked anyhow (a word may be split),
    their text before, during or after their audio, and interrupts at drawn frames."""
    steps: list[Step] = []
    said: list[list[str]] = []
    for _ in range(draw(st.integers(1, 3))):
        words = draw(st.lists(st.sampled_from(WORDS), min_size=0, max_size=6))
        timed = draw(st.booleans())
        said.append(words)
        text_steps: list[Step] = []
        if timed:
            at = 0.0
            for w in words:
                text_steps.append(("text", w + " ", round(at, 3), None))
                at += draw(st.sampled_from([0.05, 0.1, 0.2]))
        else:
            whole = " ".join(words)
            cuts = sorted(draw(st.sets(st.integers(1, max(1, len(whole) - 1)), max_size=3))) if whole else []
            bounds = [0, *cuts, len(whole)]
            text_steps = [("text", whole[a:b], None, None) for a, b in itertools.pairwise(bounds) if b > a]
        text_steps.append(("tflush",))
        n = draw(st.integers(0, 60))
        audio: list[Step] = [*frames(n)]
        cut = draw(st.none() | st.integers(0, n))
        if cut is not None:
            audio.insert(cut, ("interrupt",))
        elif draw(st.booleans()):  # all at once, ahead of real time, as a fast TTS sends it
            audio = [("burst", n)]
        audio.append(("flush",))
        where = draw(st.sampled_from(["before", "after", "middle"]))
        if where == "before":
            steps += text_steps + audio
        elif where == "after":
            steps += audio + text_steps
        else:
            half = len(audio) // 2
            steps += audio[:half] + text_steps + audio[half:]
    return steps, said


@st.composite
def belows(draw: st.DrawFn) -> tuple[dict[str, Any], list[tuple[float, Any, str]]]:
    """A speaker; a slot holding one, swapped (cut or at a boundary, to a speaker or to nothing) at drawn times;
    or a slot whose child dies at a drawn frame, the slot isolated or restarted."""
    kind = draw(st.sampled_from(["speaker", "slot", "dying"]))
    if kind == "speaker":
        return speaker(), []
    if kind == "dying":
        child = {"type": "test_faulty_sink", "die_at_frame": draw(st.integers(1, 60))}
        supervision = draw(st.sampled_from([mg.Isolate(), mg.Restart(max_restarts=2, backoff=0.05)]))
        return {"type": "slot", "child": child, "supervision": supervision}, []
    swaps = draw(
        st.lists(
            st.tuples(
                st.sampled_from([0.05, 0.2, 0.4, 0.7]),
                st.sampled_from([None, "speaker"]),
                st.sampled_from(["cut", "boundary"]),
            ),
            max_size=2,
        )
    )
    child = {"type": "speaker", "sample_rate": RATE, "progress_ms": 10}
    return {"type": "slot", "child": child}, [(at, child if c else None, p) for at, c, p in swaps]


async def run_with_swaps(
    g: mg.Graph, swaps: list[tuple[float, Any, str]], interrupts: Sequence[float] = ()
) -> mg.EventLog:
    """Run ``g`` with its swaps and API interrupts of ``sync`` (graph seconds), each in its own task."""
    log = mg.EventLog()
    async with mg.open_runtime() as rt:
        running = await rt.start(g, log=log)

        async def interrupt(at: float) -> None:
            await trio.sleep_until(running.t0 + at)
            refusal = ""
            try:
                running.interrupt("sync")
            except mg.MediaGraphError as exc:
                refusal = str(exc)
            # Refused only once nothing is left to cut (the node finished, or all its audio played).
            assert not refusal or "is finished" in refusal or "has ended" in refusal, refusal

        async def swap(at: float, child: Any, policy: str) -> None:
            await trio.sleep_until(running.t0 + at)
            with contextlib.suppress(mg.MediaGraphError):  # the slot had ended: nothing to swap
                await running.swap("out", child, policy)

        async with trio.open_nursery() as nursery:
            for at, child, policy in swaps:
                nursery.start_soon(swap, at, child, policy)
            for at in interrupts:
                nursery.start_soon(interrupt, at)
            with trio.fail_after(60), contextlib.suppress(mg.NodeFailedError):  # a child died past its restarts
                await running.wait()
            nursery.cancel_scope.cancel()
    return log


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    script=scripts(),
    below=belows(),
    api=st.lists(st.sampled_from([0.1, 0.3, 0.6, 1.0]), max_size=2, unique=True),
)
def test_generated_schedules_keep_every_transcript_rule(
    script: tuple[list[Step], list[list[str]]], below: tuple[dict[str, Any], list[Any]], api: list[float]
) -> None:
    steps, said = script
    kind, swaps = below
    note(f"steps={steps} below={kind} swaps={swaps} api={api}")
    rec = Recorder()
    g = graph(steps, dict(kind), rec)
    log = trio.run(run_with_swaps, g, swaps, api, clock=trio.testing.MockClock(autojump_threshold=0))
    check_transcripts(log, "sync", "out")
    check_playback(log, "out")
    heard = transcripts(rec)
    assert [t.segment for t in heard] == sorted({t.segment for t in heard})
    for t in heard:
        assert set(t.text.split()) <= set(WORDS)  # never a piece of a word: a word split across chunks is whole
    dies = kind.get("child", {}).get("type") == "test_faulty_sink"
    if kind["type"] == "speaker":  # every segment starts where its utterance does: what was heard is a prefix
        for t in heard:
            assert any(t.text.split() == words[: len(t.text.split())] for words in said), t
    if not swaps and not dies and not api and ("interrupt",) not in steps:  # nothing cut: all of each utterance
        assert [(t.interrupted, t.text) for t in heard] == [(False, " ".join(words)) for words in said]
