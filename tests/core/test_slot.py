"""Slots: hot-swap without losing the chain above, ordered playback events, empty slots answer flushes."""

from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

import mediagraph as mg
from mediagraph.testing import check_lifecycle, playback_violations  # registers test_audio_script

RATE = 48000
FRAME = 480  # 10 ms


@attrs.frozen(kw_only=True)
class WrapperConfig:
    pass


ROTATIONS: list[int] = []
PLAYBACK: list[mg.PlaybackEvent] = []  # every event the wrapper got, in order


@mg.node_type("core_test_wrapper", config=WrapperConfig)
class Wrapper(mg.Actor):
    """Sits above a sink like a transcript synchronizer: forwards audio, rotates its segment on each finish."""

    @staticmethod
    def ports(config: WrapperConfig) -> mg.Ports:
        return mg.Ports(
            inlets=[
                mg.InletSpec(name="audio"),
                mg.InletSpec(name="playback", types=mg.PLAYBACK_TYPES, feedback=True, required=False),
            ],
            outlets=[mg.OutletSpec(name="audio", format=mg.SameAs("audio"))],
        )

    def __init__(self, config: WrapperConfig) -> None:
        pass

    async def run(self, io: mg.NodeIO) -> None:
        async def events() -> None:
            async for event in io.inlets["playback"]:
                PLAYBACK.append(event)
                if isinstance(event, mg.PlaybackFinished):
                    ROTATIONS.append(event.segment)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(events)
            async for msg in io.inlets["audio"]:
                await io.outlets["audio"].send(msg)
            io.outlets["audio"].close()


@attrs.frozen(kw_only=True)
class BadSpeakerConfig:
    fail_at: int = 3


@mg.node_type("core_test_bad_speaker", config=BadSpeakerConfig)
class BadSpeaker(mg.Actor):
    """A speaker that plays each frame at once and whose device dies at its ``fail_at``-th frame."""

    @staticmethod
    def ports(config: BadSpeakerConfig) -> mg.Ports:
        return mg.get_node_type("speaker").ports(mg.get_node_type("speaker").config())

    def __init__(self, config: BadSpeakerConfig) -> None:
        self.config = config

    async def run(self, io: mg.NodeIO) -> None:
        tracker, emit, frames = mg.PlaybackTracker(RATE), io.outlets["playback"].emit, 0
        events: list[mg.PlaybackEvent] = []
        async for msg in io.inlets["audio"]:
            if isinstance(msg, mg.AudioFrame):
                frames += 1
                if frames == self.config.fail_at:
                    raise OSError("device unplugged")
                tracker.queue(msg.samples_per_channel, start=msg.timestamp / RATE)
                events = tracker.played(msg.samples_per_channel, io.time())
            elif isinstance(msg, mg.Flush):
                events = tracker.flush(io.time())
            elif isinstance(msg, mg.Interrupt):
                events, _ = tracker.interrupt(io.time())
            for event in events:
                emit(event)
            events = []
        for event in tracker.end(io.time()):
            emit(event)
        io.log("speaker_total", received=frames)


SPEAKER = {"type": "speaker"}
BAD = {"type": "core_test_bad_speaker", "fail_at": 3}


def graph(
    script: Sequence[tuple[str, float]],
    child: dict[str, Any] | None = SPEAKER,
    supervision: mg.Supervision | None = None,
) -> mg.Graph:
    g = mg.Graph("slot")
    g.add("src", "test_audio_script", script=tuple(script))
    g.add("wrap", "core_test_wrapper")
    g.add("out", "slot", child=child, like="speaker", supervision=supervision or mg.FailGraph())
    g.link("src.audio", "wrap.audio")
    g.link("wrap.audio", "out.audio")
    g.link("out.playback", "wrap.playback")
    return g


async def run(g: mg.Graph, actions: Sequence[tuple[float, str, Any]] = ()) -> mg.GraphResult:
    ROTATIONS.clear()
    PLAYBACK.clear()
    async with mg.open_runtime() as rt:
        running = await rt.start(g)
        for at, what, arg in actions:
            await trio.sleep_until(running.t0 + at)
            if running.result is not None:
                break
            try:
                if what == "interrupt":
                    running.interrupt("out")
                else:
                    await running.swap("out", arg, policy=what)
            except mg.MediaGraphError as exc:  # the slot had ended, or its input had: refused, clearly
                if "nothing to" not in str(exc) and "has ended (its input finished)" not in str(exc):
                    raise
        return await running.wait()


def check(result: mg.GraphResult, script: Sequence[tuple[str, float]]) -> None:
    check_lifecycle(result.log)
    if "out" in result.isolated:  # a child failed, and with it the slot: every segment it opened still finished
        seen = [e.fields["segment"] for e in result.log if e.node == "out" and e.event.startswith("playback_")]
        segments = max(seen, default=-1) + 1
        assert playback_violations(result.log, "out", closed=segments) == []
        assert list(range(segments)) == ROTATIONS
        assert "device unplugged" in str(result.isolated["out"])
        return
    total = result.log.of("slot_total", "out")[0].fields
    assert playback_violations(result.log, "out", closed=total["segments"]) == []
    assert list(range(total["segments"])) == ROTATIONS, "the wrapper sees every segment rotate exactly once"
    frames = sum(1 for kind, _ in script if kind == "frame")
    received = sum(e.fields["received"] for e in result.log.of("speaker_total"))
    assert received + total["discarded"] == frames, "every frame reaches exactly one child (or an empty slot)"
    sent = sum(e.fields["sent"] for e in result.log.of("playback_finished", "out"))
    assert sent == pytest.approx(frames * FRAME / RATE)


UTTERANCE: list[tuple[str, float]] = [("frame", 0.0)] * 30 + [("flush", 0.0)]


async def test_cut_swap_mid_utterance(autojump_clock: trio.testing.MockClock) -> None:
    script = UTTERANCE * 2
    result = await run(graph(script), [(0.15, "cut", SPEAKER)])
    check(result, script)
    finished = result.log.of("playback_finished", "out")
    assert [(e.fields["segment"], e.fields["interrupted"], e.fields["generation"]) for e in finished] == [
        (0, True, 0),  # cut at the position reached
        (1, False, 1),  # the rest of the utterance, on the new child
        (2, False, 1),
    ]
    assert 0.1 <= finished[0].fields["position"] <= 0.15
    # The events say which audio each segment was: the cut one, then the rest of the utterance after it.
    events = [e for e in PLAYBACK if isinstance(e, mg.PlaybackFinished)]
    assert [e.start for e in events] == [0.0, pytest.approx(events[0].sent), 0.3]
    assert sum(e.sent for e in events[:2]) == pytest.approx(0.3)
    swaps = [(e.event, e.fields.get("policy")) for e in result.log if e.event.startswith("swap_")]
    assert swaps == [("swap_started", "cut"), ("swap_finished", None)]
    started = [str(e.node) for e in result.log.of("node_started")]
    assert [n for n in started if "/" not in n] == ["out", "wrap", "src"]  # sinks first
    assert [n for n in started if "/" in n] == ["out/child1", "out/child2"]
    assert started.index("out") < started.index("out/child1")


async def test_cut_swap_cuts_a_flushed_segment_still_playing(autojump_clock: trio.testing.MockClock) -> None:
    # The whole 0.3 s utterance is sent and flushed at once; at 0.1 s the old child is still playing it. A cut
    # swap used to send no Interrupt (no segment was open in the slot): the old child played the other 0.2 s
    # while the swap waited for it.
    frames = [
        mg.AudioFrame(samples=np.ones((FRAME, 1), np.int16), sample_rate=RATE, channels=1, timestamp=k * FRAME)
        for k in range(30)
    ]
    steps = [(0.0, "audio", f) for f in frames] + [(0.0, "audio", mg.Flush()), (1.0, "audio", mg.Flush())]
    g = mg.Graph("flushed")
    g.add("src", "test_messages", outlets={"audio": (mg.AudioFrame, mg.Flush)}, steps=steps)
    g.add("out", "slot", child=SPEAKER, like="speaker")
    g.link("src.audio", "out.audio")
    async with mg.open_runtime() as rt:
        running = await rt.start(g)
        await trio.sleep_until(running.t0 + 0.1)
        await running.swap("out", SPEAKER, policy="cut")
        assert trio.current_time() - running.t0 == pytest.approx(0.1), "the swap did not wait for the old child"
        result = await running.wait()
    first = result.log.of("playback_finished", "out")[0]
    assert first.fields["interrupted"] and first.fields["position"] == pytest.approx(0.1, abs=0.011)
    assert result.log.of("speaker_total", "out/child1")[0].fields["played"] <= 0.11 * RATE


async def test_a_barge_in_after_the_input_ended_reaches_the_child_still_playing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # 0.3 s of audio sent at once, then the input ends; the child still plays it when the API interrupts the
    # slot at 0.1 s. The slot reads on after its end and hands the interrupt to the child (it used to be lost).
    frames = [
        mg.AudioFrame(samples=np.ones((FRAME, 1), np.int16), sample_rate=RATE, channels=1, timestamp=k * FRAME)
        for k in range(30)
    ]
    g = mg.Graph("late")
    g.add("src", "test_messages", outlets={"audio": mg.AudioFrame}, steps=[(0.0, "audio", f) for f in frames])
    g.add("out", "slot", child=SPEAKER, like="speaker")
    g.link("src.audio", "out.audio")
    async with mg.open_runtime() as rt:
        running = await rt.start(g)
        await trio.sleep_until(running.t0 + 0.1)
        running.interrupt("out")
        result = await running.wait()
    (finished,) = result.log.of("playback_finished", "out")
    assert finished.fields["interrupted"] and finished.fields["position"] == pytest.approx(0.1, abs=0.011)
    assert result.log.of("speaker_total", "out/child1")[0].fields["played"] <= 0.11 * RATE
    assert playback_violations(result.log, "out", closed=1) == []


async def test_boundary_swap_waits_for_the_end_of_the_segment(autojump_clock: trio.testing.MockClock) -> None:
    script = UTTERANCE * 2
    result = await run(graph(script), [(0.15, "boundary", SPEAKER)])
    check(result, script)
    finished = result.log.of("playback_finished", "out")
    assert [(e.fields["segment"], e.fields["interrupted"], e.fields["position"]) for e in finished] == [
        (0, False, 0.3),
        (1, False, 0.3),
    ]
    swap_done = result.log.of("swap_finished", "out")[0]
    assert swap_done.t >= finished[0].t


async def test_an_empty_slot_answers_a_flush_with_a_message(autojump_clock: trio.testing.MockClock) -> None:
    script = [("frame", 0)] * 3 + [("flush", 0), ("flush", 0)]
    result = await run(graph(script, child=None))
    check(result, script)
    assert [(e.fields["segment"], e.fields["interrupted"]) for e in result.log.of("playback_finished", "out")] == [
        (0, True),
        (1, True),
    ]


async def test_interrupt_from_the_api(autojump_clock: trio.testing.MockClock) -> None:
    script = [*UTTERANCE, ("wait", 0.5), *UTTERANCE]
    result = await run(graph(script), [(0.1, "interrupt", None)])
    check(result, script)
    finished = result.log.of("playback_finished", "out")
    assert finished[0].fields["interrupted"]
    assert [e.fields["generation"] for e in finished] == [0, 1, 1]  # the interrupt starts a new generation


async def test_swap_refuses_a_child_with_other_ports(autojump_clock: trio.testing.MockClock) -> None:
    async with mg.open_runtime() as rt:
        running = await rt.start(graph(UTTERANCE))
        with pytest.raises(mg.GraphDefinitionError, match="child null_sink has ports"):
            await running.swap("out", {"type": "null_sink"})
        with pytest.raises(mg.GraphDefinitionError, match="swap policy must be cut or boundary"):
            await running.swap("out", SPEAKER, policy="later")
        with pytest.raises(mg.MediaGraphError, match="node 'src' is not a slot"):
            await running.swap("src", SPEAKER)
        await running.wait()


def test_slot_config_errors() -> None:
    g = mg.Graph()
    with pytest.raises(mg.GraphDefinitionError, match="a slot needs a child, or 'like: TYPE'"):
        g.add("s", "slot")
    with pytest.raises(mg.GraphDefinitionError, match="unknown node type 'speakr'"):
        g.add("s", "slot", child={"type": "speakr"})
    with pytest.raises(mg.GraphDefinitionError, match=r"unknown parameter 'devce'"):
        g.add("s", "slot", child={"type": "speaker", "devce": "virtual"})


steps = st.lists(
    st.one_of(
        st.lists(st.just(("frame", 0.0)), min_size=1, max_size=12),
        st.just([("flush", 0.0)]),
        st.just([("interrupt", 0.0)]),
        st.floats(0.005, 0.2).map(lambda w: [("wait", w)]),
    ),
    max_size=12,
).map(lambda chunks: [step for chunk in chunks for step in chunk])

actions = st.lists(
    st.tuples(
        st.floats(0.0, 1.5),
        st.sampled_from(["cut", "boundary", "interrupt"]),
        st.sampled_from([SPEAKER, None, {"type": "speaker", "block_ms": 20.0}, BAD]),
    ),
    max_size=4,
).map(lambda xs: sorted(xs, key=lambda a: a[0]))


@settings(deadline=None)
@given(script=steps, plan=actions, start_empty=st.booleans())
def test_segment_invariants_over_generated_schedules(
    script: Sequence[tuple[str, float]], plan: list[tuple[float, str, Any]], start_empty: bool
) -> None:
    async def main() -> None:
        with trio.fail_after(600):  # on the mock clock: a deadlock becomes an error, at once
            result = await run(graph(script, None if start_empty else SPEAKER, mg.Isolate()), plan)
        check(result, script)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


async def test_a_dead_child_fails_the_slot_with_its_own_error_after_finishing_its_segments(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = mg.EventLog()
    ROTATIONS.clear()
    with pytest.raises(mg.NodeFailedError, match="node 'out' failed: .*node 'out/child1' failed: OSError") as info:
        await mg.run(graph(UTTERANCE, child=BAD), log=log)
    assert isinstance(info.value.__cause__, mg.NodeFailedError)
    finished = log.of("playback_finished", "out")
    assert [(e.fields["segment"], e.fields["interrupted"], e.fields["position"]) for e in finished] == [(0, True, 0.0)]
    assert ROTATIONS == [0]  # the wrapper above still saw its segment end, once
