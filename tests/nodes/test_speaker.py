"""The PortAudio speaker against a simulated sound device whose callback runs in a real thread.

The simulated ``sounddevice`` of :mod:`mediagraph.testing` (put in ``sys.modules`` for the speaker to import)
has a stream whose thread calls the speaker's callback once per block, when the test releases it: the test
owns the clock (a ``MockClock`` it jumps by hand), chooses each callback's time and DAC latency, and waits for
the thread to finish the block before letting trio settle with ``wait_all_tasks_blocked``. So schedules with callback
jitter, late callbacks and latencies run deterministically, no sleep anywhere, and the thread still runs
the speaker's real callback against its real lock-protected buffer.

Times are multiples of 1/1024 s and a block lasts 1/128 s (250 samples at 32 kHz), so the reference model
below computes exactly what the speaker saw, with no rounding doubt about what happened first.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

import mediagraph as mg
from mediagraph.testing import DeviceTiming, FakeStream, device_timings, fake_sounddevice, playback_violations

# mypy knows the node library as ``nodes`` (its folder); at run time it is installed as ``mediagraph.nodes``.
if TYPE_CHECKING:
    from nodes.speaker import START_SPAN
else:
    from mediagraph.nodes.speaker import START_SPAN

RATE = 32000
FRAME = 250
PERIOD = FRAME / RATE  # 1/128 s: exact in binary, like every time below
TICK = 1 / 1024
BLOCK_MS = 1000 * PERIOD

Step = tuple[str, float]  # ("frame", 0), ("flush", 0), ("interrupt", 0), ("wait", seconds)


# --- the graph: a script of frames into the speaker -------------------------------------------------------


def graph(
    script: Sequence[Step],
    block_ms: float = BLOCK_MS,
    prebuffer_ms: float = 0.0,
    stall_ms: float | None = 1000.0,
    **speaker: Any,
) -> mg.Graph:
    g = mg.Graph("speaker")
    g.add("src", "test_audio_script", script=tuple(script), sample_rate=RATE, frame_samples=FRAME)
    g.add(
        "out",
        "speaker",
        device="fake",
        sample_rate=RATE,
        block_ms=block_ms,
        prebuffer_ms=prebuffer_ms,
        stall_ms=stall_ms,
        **speaker,
    )
    g.link("src.audio", "out.audio")
    return g


@attrs.define
class Played:
    result: mg.GraphResult
    stream: FakeStream
    interrupts: list[tuple[float, int]]  # when the test interrupted the speaker, and after which block
    prebuffer_ms: float


async def start(rt: mg.Runtime, g: mg.Graph, *, pace: bool = True) -> mg.RunningGraph:
    """Start ``g`` and return once the speaker has opened its device (in a worker thread) and settled."""
    log = mg.EventLog()
    opened = trio.Event()
    log.listen(lambda e: opened.set() if e.event == "device_opened" else None)
    running = await rt.start(g, log=log, pace=pace)
    await opened.wait()
    await trio.testing.wait_all_tasks_blocked()
    return running


async def play(
    script: Sequence[Step],
    timing: Sequence[DeviceTiming],
    clock: trio.testing.MockClock,
    *,
    block_ms: float = BLOCK_MS,
    prebuffer_ms: float = 0.0,
) -> Played:
    """Run the graph, releasing the device's callbacks one by one at the given intervals."""
    end = Model.of(script).end
    interrupts: list[tuple[float, int]] = []
    with fake_sounddevice() as sd:
        async with mg.open_runtime() as rt:
            # Unpaced: the script sleeps until each message is due (the shared pacer may release up to a tick
            # late), so the model knows exactly what the speaker had before each callback.
            running = await start(rt, graph(script, block_ms, prebuffer_ms), pace=False)
            stream = sd.streams[0]
            assert (stream.samplerate, stream.channels) == (RATE, 1)
            steps = 0
            while running.result is None:
                interval, latency, interrupt = timing[steps % len(timing)]
                clock.jump(interval)
                await trio.testing.wait_all_tasks_blocked()  # the script and the speaker catch up
                now = trio.current_time()
                block = stream.step(now, now + latency, underflow=interval > 2 * PERIOD)
                if interrupt and now < end and block is not None:
                    # Queued before the speaker's task wakes for what the callback posted: the interrupt
                    # must account for the block the device already took.
                    running.interrupt("out")
                    interrupts.append((now, len(stream.blocks) - 1))
                await trio.testing.wait_all_tasks_blocked()  # the speaker takes what the device posted
                steps += 1
                assert steps < 20000, "the speaker never finished"
            result = await running.wait()
    assert stream.stopped and stream.closed, "the speaker stops its stream (playing out the tail), then closes it"
    assert not stream.aborted
    return Played(result, stream, interrupts, prebuffer_ms)


# --- the reference model ----------------------------------------------------------------------------------


@attrs.define
class Model:
    """What the speaker must have seen, computed from the script alone."""

    segment_of: list[int]  # frame -> segment
    emitted: list[float]  # frame -> graph time it was sent
    #: (time, 0 for the script or 1 for the test, message number or the block the test interrupted after,
    #: whether a segment is open afterwards), in the order the speaker got them
    changes: list[tuple[float, int, int, bool]]
    segments: int
    end: float  # when the script ends and the speaker's input closes

    @classmethod
    def of(cls, script: Sequence[Step], interrupts: Sequence[tuple[float, int]] = ()) -> Model:
        """``interrupts``: (time, block) of the test's interrupts, each sent right after that block's callback,
        so after every message the script sent until then."""
        messages: list[tuple[float, int, int, str]] = []
        at = 0.0
        for kind, value in script:
            if kind == "wait":
                at += value
                continue
            messages.append((at, 0, len(messages), kind))
            if kind == "frame":
                at += PERIOD
        messages += [(t, 1, block, "interrupt") for t, block in interrupts]
        messages.sort(key=lambda m: m[:3])
        tracker = mg.PlaybackTracker(RATE)
        segment_of: list[int] = []
        emitted: list[float] = []
        changes: list[tuple[float, int, int, bool]] = []
        for t, by, n, kind in messages:
            if kind == "frame":
                segment_of.append(tracker.queue(FRAME))
                emitted.append(t)
            elif kind == "flush":
                tracker.flush()
            else:
                tracker.interrupt()
            changes.append((t, by, n, kind == "frame"))
        changes.append((at, 0, len(messages), False))  # the script ends: the speaker's input closes
        tracker.end()
        return cls(segment_of, emitted, changes, tracker.next_id, at)

    def open_at(self, block: int, t: float) -> bool:
        """Whether a segment was open for the callback of ``block``, at ``t``: after the script's messages
        until then and the test's interrupts after earlier blocks (what came before it is a prefix of
        ``changes``)."""
        state = False
        for at, by, n, is_open in self.changes:
            if (at > t) if by == 0 else (n >= block):
                break
            state = is_open
        return state


async def play_concurrently(script: Sequence[Step], bursts: Sequence[int], prebuffer_ms: float) -> Played:
    """Run the graph with the device's callbacks running in a worker thread, in bursts of back-to-back
    blocks, while trio runs the script and the speaker (on an autojump clock) at the same time.

    The speaker's stall and start watchdogs are off: while a burst runs in the thread, trio has nothing to do
    and the autojump clock leaps to the watchdog's deadline, although the device is calling back all the
    while."""
    with fake_sounddevice() as sd:
        async with mg.open_runtime() as rt:
            running = await start(rt, graph(script, prebuffer_ms=prebuffer_ms, stall_ms=None, start_ms=None))
            stream = sd.streams[0]
            assert (stream.samplerate, stream.channels) == (RATE, 1)
            done = 0
            while running.result is None:
                count = bursts[done % len(bursts)]
                times = [((done + k) * PERIOD, (done + k) * PERIOD + 0.01) for k in range(count)]
                await trio.to_thread.run_sync(stream.run_blocks, times)
                done += count
                assert done < 20000, "the speaker never finished"
            result = await running.wait()
    return Played(result, stream, [], prebuffer_ms)


def check(played_out: Played, script: Sequence[Step], *, timed: bool = True) -> mg.EventLog:
    """Check everything against the model; returns the log for more checks.

    ``timed``: the test chose when each callback ran relative to the script (else only what holds under
    any interleaving is checked).
    """
    stream = played_out.stream
    model = Model.of(script, played_out.interrupts)
    log = played_out.result.log
    assert playback_violations(log, "out", closed=model.segments) == []
    total = log.of("speaker_total", "out")[0].fields
    observed = stream.blocks[: total["blocks"]]
    assert len(observed) == total["blocks"]

    # Where each frame's samples came out of the device: (block, index in block) of each played sample.
    played: dict[int, list[tuple[int, int]]] = {}
    for b, block in enumerate(stream.blocks):
        for i, value in enumerate(block.samples):
            if value:
                played.setdefault(int(value) - 1, []).append((b, i))
    assert all(b < len(observed) for spots in played.values() for b, _ in spots), "audio after the speaker ended"
    assert total["played"] == sum(map(len, played.values())), "every sample the device took is counted"

    started = {e.fields["segment"]: e for e in log.of("playback_started", "out")}
    finished = {e.fields["segment"]: e for e in log.of("playback_finished", "out")}
    for segment in range(model.segments):
        frames = [f for f, s in enumerate(model.segment_of) if s == segment]
        spots = [spot for f in frames for spot in played.get(f, [])]
        assert finished[segment].fields["position"] == pytest.approx(len(spots) / RATE, abs=1e-6)
        assert finished[segment].fields["sent"] == pytest.approx(len(frames) * FRAME / RATE, abs=1e-6)
        if not finished[segment].fields["interrupted"]:
            assert len(spots) == len(frames) * FRAME, "a segment that was not interrupted is played whole"
        if not spots:
            assert segment not in started, "no playback_started for a segment of which nothing was played"
            continue
        b, i = min(spots)
        block = stream.blocks[b]
        at = started[segment].fields["at"]
        assert at == pytest.approx(block.dac + i / RATE, abs=1e-9), "stamped when its first sample is played"
        if timed:
            assert at >= block.current >= model.emitted[frames[0]], "never before it was consumed, nor queued"

    if not timed:
        return log
    audio = [int(np.count_nonzero(block.samples)) for block in observed]
    short = [b for b, block in enumerate(observed) if audio[b] < len(block.samples)]
    if played_out.prebuffer_ms:
        assert total["underruns"] <= len(short)
    else:
        # An underrun: the device was playing (it took something, or the block before was full) and ran dry
        # while the segment was open.
        assert total["underruns"] == sum(
            model.open_at(b, observed[b].current)
            for b in short
            if audio[b] or (b > 0 and audio[b - 1] == len(observed[b - 1].samples))
        )
    assert total["device_underflows"] == sum(block.underflow for block in observed)
    return log


# --- tests ------------------------------------------------------------------------------------------------

UTTERANCE: list[Step] = [("frame", 0.0)] * 12 + [("flush", 0.0)]
STEADY = [DeviceTiming(PERIOD, 4 * TICK)]


async def test_playback_started_is_stamped_when_the_device_plays_the_first_sample(
    mock_clock: trio.testing.MockClock,
) -> None:
    script = [("wait", 8 * TICK), *UTTERANCE, ("wait", 40 * TICK), *UTTERANCE]
    log = check(await play(script, STEADY, mock_clock), script)
    starts = [(e.fields["segment"], e.fields["at"]) for e in log.of("playback_started", "out")]
    # The first frame is sent at 8/1024 s, taken by the callback that runs then, and played by the DAC
    # 4/1024 s later.
    assert starts[0] == (0, 12 * TICK)
    assert [e.fields["interrupted"] for e in log.of("playback_finished", "out")] == [False, False]
    total = log.of("speaker_total", "out")[0].fields
    assert total["played"] == 24 * FRAME
    assert total["underruns"] == 0


async def test_a_segment_that_starts_mid_block_gets_the_time_of_its_first_sample(
    mock_clock: trio.testing.MockClock,
) -> None:
    # A block holds two frames, so segment 1 starts in the middle of the first one.
    script = [("frame", 0.0), ("flush", 0.0), ("frame", 0.0), ("flush", 0.0)]
    log = check(await play(script, [DeviceTiming(2 * PERIOD)], mock_clock, block_ms=2 * BLOCK_MS), script)
    starts = [e.fields["at"] for e in log.of("playback_started", "out")]
    assert starts[1] - starts[0] == PERIOD


async def test_underruns_are_counted(mock_clock: trio.testing.MockClock) -> None:
    # Frames stop arriving for 5 blocks in the middle of an utterance: the device runs dry once (and stays
    # silent until the next frame); after the flush it runs dry again, the end of the utterance, no underrun.
    script = [*[("frame", 0.0)] * 5, ("wait", 5 * PERIOD), *UTTERANCE]
    log = check(await play(script, STEADY, mock_clock), script)
    assert log.of("speaker_total", "out")[0].fields["underruns"] == 1
    assert log.of("underrun", "out")[0].fields == {"underruns": 1, "device_underflows": 0}


async def test_a_segment_waits_for_the_prebuffer_unless_it_is_all_there(mock_clock: trio.testing.MockClock) -> None:
    # Prebuffer: 2 frames beyond the block the device takes. The first frame waits for the third (6 blocks
    # later), no underrun meanwhile; a one-frame utterance (sent at 18 blocks) waits for its flush (19
    # blocks), then plays at once.
    script = [("frame", 0.0), ("wait", 4 * PERIOD), *[("frame", 0.0)] * 3, ("flush", 0.0)]
    script += [("wait", 10 * PERIOD), ("frame", 0.0), ("flush", 0.0)]
    log = check(await play(script, STEADY, mock_clock, prebuffer_ms=2 * BLOCK_MS), script)
    starts = [e.fields["at"] for e in log.of("playback_started", "out")]
    assert starts == [6 * PERIOD + 4 * TICK, 19 * PERIOD + 4 * TICK]
    assert log.of("speaker_total", "out")[0].fields["underruns"] == 0


# A device that wakes every other block and takes two blocks back to back, as PortAudio's ALSA host does on
# PulseAudio with its default (high) latency: a 20 ms host buffer for 10 ms blocks.
PAIRS = [DeviceTiming(2 * PERIOD, 4 * TICK), DeviceTiming(0.0, 4 * TICK + PERIOD)]


@pytest.mark.parametrize("late", [0, 1, 15])
async def test_the_prebuffer_is_a_margin_beyond_what_the_device_takes_when_it_wakes_up(
    mock_clock: trio.testing.MockClock, late: int
) -> None:
    # Prebuffer: 2 frames (16 ticks). The device wakes up at 2 and 4 blocks (and learns it takes two blocks
    # at a time), the utterance's frames come at 3, 4, ... blocks, those from the sixth on `late` ticks late.
    # It starts at the wake-up at 6 blocks, with frames 0-3 buffered: 2 to take, 2 beyond. Counting the
    # prebuffer from the wake-up's first block instead would start it at 4 blocks with frames 0-1, both taken
    # at once, and leave upstream no margin: frame 5, needed at 8 blocks, would be short if late at all, and
    # the device would play a gap in the middle of the utterance.
    script = [("wait", 3 * PERIOD), *[("frame", 0.0)] * 5, ("wait", late * TICK), *[("frame", 0.0)] * 7]
    script.append(("flush", 0.0))
    played = await play(script, PAIRS, mock_clock, prebuffer_ms=2 * BLOCK_MS)
    log = check(played, script)
    assert log.of("speaker_total", "out")[0].fields["underruns"] == 0
    assert [e.fields["at"] for e in log.of("playback_started", "out")] == [6 * PERIOD + 4 * TICK]
    loud = [b for b, block in enumerate(played.stream.blocks) if block.samples.any()]
    assert loud == list(range(loud[0], loud[0] + 12)), "twelve frames in twelve consecutive blocks, no gap"


async def test_late_callbacks_are_counted_as_device_underflows(mock_clock: trio.testing.MockClock) -> None:
    script = UTTERANCE
    log = check(await play(script, [DeviceTiming(PERIOD), DeviceTiming(3 * PERIOD)], mock_clock), script)
    assert log.of("speaker_total", "out")[0].fields["device_underflows"] > 0


async def test_an_interrupt_counts_what_the_device_took_before_it(mock_clock: trio.testing.MockClock) -> None:
    # Frames arrive faster than the device plays them; the interrupt cuts what is still buffered.
    script = [*[("frame", 0.0)] * 10, ("interrupt", 0.0), *UTTERANCE]
    log = check(await play(script, [DeviceTiming(3 * PERIOD)], mock_clock), script)
    finished = log.of("playback_finished", "out")
    assert [e.fields["interrupted"] for e in finished] == [True, False]
    assert 0 < finished[0].fields["position"] < 10 * PERIOD


async def test_an_interrupt_right_after_a_callback_counts_the_block_it_took(
    mock_clock: trio.testing.MockClock,
) -> None:
    # The interrupt reaches the speaker before the observation the callback posted: the block still counts.
    script = [*[("frame", 0.0)] * 10, ("wait", 10 * PERIOD)]
    timing = [DeviceTiming(PERIOD)] * 3 + [DeviceTiming(PERIOD, interrupt=True)] + [DeviceTiming(PERIOD)] * 30
    played = await play(script, timing, mock_clock)
    log = check(played, script)
    assert played.interrupts == [(4 * PERIOD, 3)]
    finished = log.of("playback_finished", "out")
    # Frames 0-3 were played by the callbacks at 1-4 blocks; frame 4, sent with the fourth, was cut; frames
    # 5-9 make the next segment.
    assert [(e.fields["interrupted"], e.fields["position"]) for e in finished] == [
        (True, 4 * PERIOD),
        (False, pytest.approx(5 * PERIOD, abs=1e-6)),
    ]


# --- a device that stops playing ---------------------------------------------------------------------------
#
# The test moves the clock by hand, as above, rather than letting an autojump clock run: the speaker opens and
# aborts its stream in worker threads, and while one runs an autojump clock would leap to whatever deadline
# comes next, so the test could not tell the watchdog's deadline from the leap.

# Segment 0: six frames and a flush; segment 1: four frames, still open when the device stops.
# The device plays PLAYED blocks a block apart, enough for it to count as started (START_SPAN).
PLAYED = 33
assert (PLAYED - 1) * PERIOD >= START_SPAN
TWO_SEGMENTS: list[Step] = [*[("frame", 0.0)] * (PLAYED + 3), ("flush", 0.0), *[("frame", 0.0)] * 4]


async def settle(clock: trio.testing.MockClock, seconds: float) -> None:
    clock.jump(seconds)
    await trio.testing.wait_all_tasks_blocked()


@attrs.define
class Lost:
    running: mg.RunningGraph
    stream: FakeStream

    def owed(self) -> list[tuple[int, bool, float, float]]:
        """The playback_finished events so far: (segment, interrupted, position, sent)."""
        return [
            (e.fields["segment"], e.fields["interrupted"], e.fields["position"], e.fields["sent"])
            for e in self.running.log.of("playback_finished", "out")
        ]

    async def failure(self) -> str:
        """The speaker's failure (once its cleanup, in a worker thread, is done)."""
        with pytest.raises(mg.NodeFailedError) as caught:
            await self.running.wait()
        assert isinstance(caught.value.__cause__, mg.ProviderError)
        log = self.running.log
        assert [e.fields["reason"] for e in log.of("node_finished", "out")] == ["failed"]
        assert max(e.seq for e in log.of("playback_finished", "out")) < log.of("node_finished", "out")[0].seq
        assert (self.stream.aborted, self.stream.stopped, self.stream.closed) == (True, False, True), (
            "a device that stopped is aborted, not drained"
        )
        return str(caught.value.__cause__)


@contextlib.asynccontextmanager
async def blocks_played(clock: trio.testing.MockClock) -> AsyncIterator[Lost]:
    """A speaker with TWO_SEGMENTS queued, of which the device played PLAYED blocks, a block apart; the last
    callback was a block ago."""
    with fake_sounddevice() as sd:
        async with mg.open_runtime() as rt:
            running = await start(rt, graph(TWO_SEGMENTS), pace=False)
            stream = sd.streams[0]
            for _ in TWO_SEGMENTS:  # the script queues everything
                await settle(clock, PERIOD)
            for _ in range(PLAYED):
                now = trio.current_time()
                stream.step(now, now + 4 * TICK)
                await trio.testing.wait_all_tasks_blocked()  # the speaker takes what the device posted
                await settle(clock, PERIOD)
            lost = Lost(running, stream)
            assert lost.owed() == [], "nothing finished yet"
            yield lost


# What the speaker owes when the device stops: both segments finish, interrupted, at the position played.
OWED = [(0, True, pytest.approx(PLAYED * PERIOD, abs=1e-6), (PLAYED + 3) * PERIOD), (1, True, 0.0, 4 * PERIOD)]


def check_played(lost: Lost) -> None:
    log, stream = lost.running.log, lost.stream
    assert playback_violations(log, "out", closed=2) == []
    started = [(e.fields["segment"], e.fields["at"]) for e in log.of("playback_started", "out")]
    assert started == [(0, stream.blocks[0].dac - lost.running.t0)]
    assert sum(int(np.count_nonzero(b.samples)) for b in stream.blocks) == PLAYED * FRAME


async def test_a_device_that_stops_calling_back_fails_the_speaker_after_its_owed_events(
    mock_clock: trio.testing.MockClock,
) -> None:
    async with blocks_played(mock_clock) as lost:
        # The watchdog: a second (stall_ms, beyond the simulated device's latency of 0) after the last callback.
        await settle(mock_clock, 1.0 - PERIOD - TICK)
        assert lost.owed() == [], "not a tick before the watchdog's second"
        await settle(mock_clock, TICK)
        assert lost.owed() == OWED
        check_played(lost)
        assert await lost.failure() == (
            "speaker 'out': output device 'fake' stopped calling back: none for 1.000 s, audio waiting for it; "
            "0.055 s of audio queued for it were never played"
        )


async def test_a_device_whose_stream_ends_fails_the_speaker_at_once_after_its_owed_events(
    mock_clock: trio.testing.MockClock,
) -> None:
    async with blocks_played(mock_clock) as lost:
        lost.stream.finish()  # PortAudio calls the finished callback: the device is gone
        await trio.testing.wait_all_tasks_blocked()
        assert lost.owed() == OWED, "at once, without waiting for the watchdog"
        check_played(lost)
        assert await lost.failure() == (
            "speaker 'out': output device 'fake' stopped playing: its stream ended (device unplugged or gone, or "
            "PortAudio stopped it); 0.055 s of audio queued for it were never played"
        )


async def test_an_idle_device_may_stop_calling_back_until_audio_waits_for_it(
    mock_clock: trio.testing.MockClock,
) -> None:
    # The device plays an utterance, then does not call back for 30 s: nothing is owed meanwhile, so nothing is
    # wrong (the simulated device idles; a real one plays silence). Then an utterance arrives and the device
    # resumes a tick before a second has passed: the watchdog's second counts from when audio began to wait.
    script: list[Step] = [*[("frame", 0.0)] * 2, ("flush", 0.0), ("wait", 30.0), *[("frame", 0.0)] * 2]
    script.append(("flush", 0.0))
    with fake_sounddevice() as sd:
        async with mg.open_runtime() as rt:
            running = await start(rt, graph(script), pace=False)
            stream = sd.streams[0]
            # Callbacks a block apart play the first utterance, then silence until the device counts as started;
            # nothing until 30 s + 3 blocks, when the second utterance is queued; the device calls back again a
            # tick before a second more, then a block apart.
            idle = 30.0 - (PLAYED - 3) * PERIOD
            for pause in [PERIOD] * PLAYED + [idle, 1.0 - TICK] + [PERIOD] * 3:
                await settle(mock_clock, pause)
                if pause != idle:
                    now = trio.current_time()
                    stream.step(now, now)
                    await trio.testing.wait_all_tasks_blocked()
            result = await running.wait()
    assert [e.fields["interrupted"] for e in result.log.of("playback_finished", "out")] == [False, False]
    assert (stream.stopped, stream.aborted) == (True, False)


# --- a device slow to start ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spread", [0.0, 2 * TICK])
async def test_a_device_slow_to_start_is_not_taken_for_stopped(
    mock_clock: trio.testing.MockClock, spread: float
) -> None:
    # As PortAudio on an idle PulseAudio null sink: right after opening, six callbacks fill the device's
    # buffer, at one instant or, on a loaded machine, spread over 10 ms of its clock (more than a block: CI saw
    # 9 ms); then none for 2 s (the sink starts the stream at the end of the 2 s block it renders), the
    # utterance waiting all along: well past stall_ms, but a device that has not started has not stopped.
    # Then it plays, a block apart.
    with fake_sounddevice() as sd:
        async with mg.open_runtime() as rt:
            running = await start(rt, graph(UTTERANCE), pace=False)
            stream = sd.streams[0]
            await settle(mock_clock, PERIOD)  # the first frame is queued
            opened = trio.current_time()
            for i in range(6):
                stream.step(opened + i * spread, opened + i * spread)
            await trio.testing.wait_all_tasks_blocked()
            await settle(mock_clock, 2.0)  # the script queues the rest meanwhile
            assert not running.log.of("playback_finished"), "not failed"
            while running.result is None:
                now = trio.current_time()
                stream.step(now, now)
                await trio.testing.wait_all_tasks_blocked()
                await settle(mock_clock, PERIOD)
            result = await running.wait()
    assert [e.fields["interrupted"] for e in result.log.of("playback_finished", "out")] == [False]
    assert result.log.of("device_started", "out")[0].fields == {"after": 2.008, "filled": 6}
    assert result.log.of("speaker_total", "out")[0].fields["played"] == 12 * FRAME
    assert playback_violations(result.log, "out", closed=1) == []


@pytest.mark.parametrize(
    ("filled", "how"),
    [
        (0, "no callback in 3.000 s since its stream was opened"),
        (
            6,
            "it took 6 blocks to fill its buffer, then did not call back again in 3.000 s since its stream was opened",
        ),
    ],
)
async def test_a_device_that_never_starts_fails_the_speaker_after_start_ms_saying_so(
    mock_clock: trio.testing.MockClock, filled: int, how: str
) -> None:
    with fake_sounddevice() as sd:
        async with mg.open_runtime() as rt:
            running = await start(rt, graph(UTTERANCE, start_ms=3000.0), pace=False)
            lost = Lost(running, sd.streams[0])
            await settle(mock_clock, 12 * PERIOD)  # the script queues the utterance
            for _ in range(filled):
                now = trio.current_time()
                lost.stream.step(now, now)
            await settle(mock_clock, 3.0 - 12 * PERIOD - TICK)
            assert lost.owed() == [], "not a tick before start_ms"
            await settle(mock_clock, TICK)
            assert lost.owed() == [(0, True, filled * PERIOD, 12 * PERIOD)], "ends, interrupted"
            assert await lost.failure() == (
                f"speaker 'out': output device 'fake' never started: {how}, audio waiting for it; "
                f"{(12 - filled) * PERIOD:.3f} s of audio queued for it were never played"
            )


async def test_progress_reports_each_block_played_with_progress_ms_0(mock_clock: trio.testing.MockClock) -> None:
    # Four frames, a flush, then three more: the device plays a block (one frame) per callback.
    script: list[Step] = [*[("frame", 0.0)] * 4, ("flush", 0.0), *[("frame", 0.0)] * 3, ("flush", 0.0)]
    with fake_sounddevice() as sd:
        async with mg.open_runtime() as rt:
            running = await start(rt, graph(script, progress_ms=0.0), pace=False)
            stream = sd.streams[0]
            while running.result is None:
                await settle(mock_clock, PERIOD)
                now = trio.current_time()
                stream.step(now, now + 4 * TICK)
                await trio.testing.wait_all_tasks_blocked()
            result = await running.wait()
    log = result.log
    assert playback_violations(log, "out", closed=2) == []
    progress = [(e.fields["segment"], e.fields["position"], e.fields["at"]) for e in log.of("playback_progress")]
    # Every block but each segment's last (its playback_finished says it), at the end of what was played.
    started = {e.fields["segment"]: e.fields["at"] for e in log.of("playback_started", "out")}
    want = [(seg, k * PERIOD, started[seg] + k * PERIOD) for seg, n in ((0, 4), (1, 3)) for k in range(1, n)]
    assert progress == [(s, pytest.approx(p, abs=1e-6), pytest.approx(t)) for s, p, t in want]


async def start_failure(device: str | int, channels: int = 1) -> str:
    g = mg.Graph("speaker")
    g.add("src", "tone_source", sample_rate=RATE, channels=channels, duration=0.1)
    g.add("out", "speaker", device=device, sample_rate=RATE, channels=channels)
    g.link("src.audio", "out.audio")
    with fake_sounddevice(), pytest.raises(mg.NodeFailedError) as caught:
        await mg.run(g)
    assert isinstance(caught.value.__cause__, mg.ProviderError)
    return str(caught.value.__cause__)


async def test_an_unknown_device_fails_at_start_naming_it_and_listing_the_devices(
    autojump_clock: trio.testing.MockClock,
) -> None:
    message = await start_failure("studio")
    assert "speaker 'out': no usable output device 'studio' (No output device matching 'studio')" in message
    assert message.endswith("available devices:\n  0 fake, simulated (0 in, 1 out)")
    message = await start_failure(3)
    assert "no usable output device 3" in message


async def test_a_device_with_too_few_channels_says_so(autojump_clock: trio.testing.MockClock) -> None:
    message = await start_failure("fake", channels=2)
    assert "speaker 'out': output device 'fake' (fake) has 1 output channels, 2 wanted" in message


def test_speaker_device_config() -> None:
    g = mg.Graph()
    with pytest.raises(mg.GraphDefinitionError, match="device must be 'virtual', a device name or an index"):
        g.add("s", "speaker", device="")
    with pytest.raises(mg.GraphDefinitionError, match="device must be 'virtual', a device name or an index"):
        g.add("s", "speaker", device=-1)
    g.add("s", "speaker", device=0)  # an index, as YAML gives it
    g.add("t", "speaker", device="pulse")
    assert [mg.get_node_type("speaker").uses_device(spec.config) for spec in g.nodes.values()] == [True, True]


steps = st.lists(
    st.one_of(
        st.lists(st.just(("frame", 0.0)), min_size=1, max_size=12),
        st.just([("flush", 0.0)]),
        st.just([("interrupt", 0.0)]),
        st.integers(1, 100).map(lambda n: [("wait", n * TICK)]),
    ),
    max_size=10,
).map(lambda chunks: [step for chunk in chunks for step in chunk])

# Callback intervals from 0 (a burst) to five blocks (late: PortAudio would flag an underflow), DAC latency
# from nothing to 50 ms, and now and then an interrupt that overtakes what the callback posted.
timings = device_timings(tick=TICK, max_ticks=40, max_latency=0.05)


prebuffers = st.sampled_from([0.0, 2 * BLOCK_MS])


@settings(deadline=None, max_examples=60)
@given(script=steps, timing=timings, prebuffer_ms=prebuffers)
def test_playback_invariants_over_generated_schedules_and_device_timings(
    script: list[Step], timing: list[DeviceTiming], prebuffer_ms: float
) -> None:
    async def main() -> None:
        clock = trio.lowlevel.current_clock()
        assert isinstance(clock, trio.testing.MockClock)
        check(await play(script, timing, clock, prebuffer_ms=prebuffer_ms), script)

    trio.run(main, clock=trio.testing.MockClock())


@settings(deadline=None, max_examples=30)
@given(script=steps, bursts=st.lists(st.integers(1, 8), min_size=1, max_size=8), prebuffer_ms=prebuffers)
def test_playback_invariants_with_the_callback_thread_running_concurrently(
    script: list[Step], bursts: list[int], prebuffer_ms: float
) -> None:
    """No step-by-step here: the callbacks race the speaker's task for the buffer's lock, interrupts included."""

    async def main() -> None:
        check(await play_concurrently(script, bursts, prebuffer_ms), script, timed=False)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


async def test_a_barge_in_after_the_input_ended_cuts_what_is_left_to_play(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # 2 s of audio arrive at once and the input ends; 1 s into playing it, the listener barges in. It used to
    # be lost (nobody read the ended inlet): the speaker played the whole 2 s.
    g = mg.Graph("late")
    g.add("tone", "tone_source", duration=2.0, paced=False)
    g.add("out", "speaker", device="virtual")
    g.link("tone.audio", "out.audio")
    async with mg.open_runtime() as rt:
        running = await rt.start(g)
        await trio.sleep_until(running.t0 + 1.0)
        running.interrupt("out")
        result = await running.wait()
    (finished,) = result.log.of("playback_finished", "out")
    assert finished.fields["interrupted"] and finished.fields["position"] == pytest.approx(1.0)
    assert finished.t == pytest.approx(1.0)
    assert result.log.of("speaker_total", "out")[0].fields["played"] == 48000
