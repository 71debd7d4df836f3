"""The recorder's core with a sink that reports progress: agent audio is written as soon as it is confirmed
played, never before, every sample exactly once and in its place."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import hypothesis.strategies as st
import numpy as np
import numpy.typing as npt
from hypothesis import given, note, settings

import mediagraph as mg

if TYPE_CHECKING:
    from nodes._conversation import Conversation
else:
    from mediagraph.nodes._conversation import Conversation

RATE = 48000
Samples = npt.NDArray[np.int16]


def frame(samples: Samples, timestamp: int) -> mg.AudioFrame:
    return mg.AudioFrame(samples=samples, sample_rate=RATE, channels=1, timestamp=timestamp)


AGENT_STEP = st.one_of(
    st.tuples(st.just("frame"), st.integers(1, 3000), st.sampled_from([0, 0, 0, 1, 700, 5000])),
    st.tuples(st.sampled_from(["flush", "interrupt"]), st.just(0), st.just(0)),
)


class Sink:
    """A sink below the recorder: a real PlaybackTracker reporting progress, played as the test draws."""

    def __init__(self, interval: float) -> None:
        self.tracker = mg.PlaybackTracker(RATE, progress_interval=interval)
        self.events: list[mg.PlaybackEvent] = []

    def settled(self, events: list[mg.PlaybackEvent]) -> int:
        """Samples of media time before which ``events`` settle everything (what the rules say)."""
        out = 0
        for e in events:
            if e.start is None:
                continue
            at = e.start
            if isinstance(e, mg.PlaybackProgress):
                at += e.position
            elif isinstance(e, mg.PlaybackFinished):
                at += e.sent
            out = max(out, round(at * RATE))
        return out


@settings(deadline=None, max_examples=150)
@given(agent=st.lists(AGENT_STEP, max_size=20), interval=st.sampled_from([0.0, 0.01, 0.1]), data=st.data())
def test_agent_audio_is_written_once_confirmed_played_exactly_once_in_order_and_without_lag(
    agent: list[tuple[str, int, int]], interval: float, data: st.DataObject
) -> None:
    rng = np.random.default_rng(len(agent))
    sink = Sink(interval)
    frames: list[tuple[str, Any]] = []  # what reaches the recorder's agent inlet, in order
    pieces: list[tuple[int, Samples]] = []
    position = 0
    for kind, size, gap in agent:
        if kind == "frame":
            position += gap
            samples = rng.integers(-32768, 32767, (size, 1), dtype=np.int16)
            sink.tracker.queue(size, start=position / RATE)
            frames.append(("agent", frame(samples, position)))
            pieces.append((position, samples))
            position += size
        elif kind == "flush":
            sink.events += sink.tracker.flush()
            frames.append(("agent", mg.Flush()))
        else:
            sink.events += sink.tracker.interrupt()[0]
            frames.append(("agent", mg.Interrupt()))
        played = data.draw(st.integers(0, sink.tracker.unplayed), label="played")
        sink.events += sink.tracker.played(played, 0.0)
    # The events reach the recorder in their order, the frames in theirs, interleaved anyhow.
    steps: list[tuple[str, Any]] = []
    events = [("playback", e) for e in sink.events]
    while frames or events:
        take = bool(frames) and (not events or data.draw(st.booleans(), label="frame next"))
        steps.append((frames if take else events).pop(0))
    note(f"events: {sink.events}")

    length = position
    want = np.zeros(length, dtype=np.int16)
    present = np.zeros(length, dtype=bool)
    for ts, samples in pieces:
        want[ts : ts + len(samples)] = samples[:, 0]
        present[ts : ts + len(samples)] = True
    for e in sink.events:
        if isinstance(e, mg.PlaybackFinished) and e.interrupted and e.start is not None:
            cut = slice(round((e.start + e.position) * RATE), round((e.start + e.sent) * RATE))
            want[cut] = 0
            present[cut] = False

    core = Conversation(sides={"agent"}, playback=True, max_lag=3600, max_hold=3600)
    written: list[Samples] = []
    received: list[mg.PlaybackEvent] = []
    fed_end = 0  # media time after the last agent frame fed
    for inlet, msg in steps:
        if inlet == "agent":
            core.agent(msg)
            if isinstance(msg, mg.AudioFrame):
                fed_end = msg.timestamp + msg.samples_per_channel
        else:
            core.playback(msg)
            received.append(msg)
        taken = core.take()
        if taken is not None:
            written.append(taken[:, 1])
        done = core.timeline.written
        settled = sink.settled(received)
        # Nothing written before it was confirmed: every agent sample written lies before the settled time.
        assert not present[settled:done].any(), f"written up to {done}, settled only up to {settled}"
        # No lag: the agent audio kept that is confirmed and has arrived is written.
        due = np.flatnonzero(present[: min(settled, fed_end)])
        assert not len(due) or done > due[-1], f"written up to {done}, settled {settled}, fed {fed_end}"
    written.append(core.finish()[:, 1])
    got = np.concatenate(written)
    # Every sample exactly once, in its place; what was cut is silence; nothing after the last sample kept.
    last = int(np.flatnonzero(present)[-1]) + 1 if present.any() else 0
    assert len(got) >= last
    assert np.array_equal(got[:last], want[:last])
    assert not got[last:].any()
    assert core.statistics()["late_samples"] == 0


def test_a_frame_settled_part_way_is_written_up_to_the_position_played() -> None:
    core = Conversation(sides={"agent", "user"}, playback=True)
    core.user(frame(np.full((RATE, 1), 5, np.int16), 0))
    core.agent(frame(np.full((RATE, 1), 7, np.int16), 0))  # one second in one frame
    assert core.take() is None, "the agent's second is not played yet, nor the user's side behind it"
    core.playback(mg.PlaybackStarted(segment=0, start=0.0))
    core.playback(mg.PlaybackProgress(segment=0, position=0.25, start=0.0))
    taken = core.take()
    assert taken is not None and len(taken) == RATE // 4
    assert np.all(taken == [5, 7])
    core.playback(mg.PlaybackProgress(segment=0, position=0.3, start=None))  # no start: ignored
    assert core.take() is None
    core.playback(mg.PlaybackFinished(segment=0, position=0.5, interrupted=True, start=0.0, sent=1.0))
    rest = core.finish()
    assert len(taken) + len(rest) == RATE
    assert np.all(rest[: RATE // 4, 1] == 7) and not rest[RATE // 4 :, 1].any()
    assert core.statistics()["trimmed_samples"] == RATE // 2
    assert core.statistics()["unconfirmed_samples"] == 0
