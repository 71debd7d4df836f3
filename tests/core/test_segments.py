"""PlaybackTracker: the segment invariants hold for any sequence of queue / play / flush / interrupt."""

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import mediagraph as mg
from mediagraph.testing import playback_violations

RATE = 1000
PROGRESS = 25  # samples between progress events


def as_log(events: list[mg.PlaybackEvent]) -> list[mg.Event]:
    out = []
    for i, e in enumerate(events):
        if isinstance(e, mg.PlaybackStarted):
            out.append(
                mg.Event(
                    seq=i,
                    t=e.t,
                    node="sink",
                    event="playback_started",
                    fields={"segment": e.segment, "generation": e.generation},
                )
            )
        elif isinstance(e, mg.PlaybackProgress):
            out.append(
                mg.Event(
                    seq=i,
                    t=e.t,
                    node="sink",
                    event="playback_progress",
                    fields={"segment": e.segment, "generation": e.generation, "position": e.position},
                )
            )
        else:
            out.append(
                mg.Event(
                    seq=i,
                    t=e.t,
                    node="sink",
                    event="playback_finished",
                    fields={
                        "segment": e.segment,
                        "generation": e.generation,
                        "position": e.position,
                        "interrupted": e.interrupted,
                    },
                )
            )
    return out


class TrackerMachine(RuleBasedStateMachine):
    """Reference model: one stream of queued chunks ``[segment, samples]`` and a play cursor over it; an
    interrupt drops every chunk past the cursor. Per segment, what was played is what the cursor crossed."""

    def __init__(self) -> None:
        super().__init__()
        self.tracker = mg.PlaybackTracker(RATE, progress_interval=PROGRESS / RATE)
        self.events: list[mg.PlaybackEvent] = []
        self.reported: dict[int, int] = {}  # segment -> position (samples) of its last progress
        self.chunks: list[list[int]] = []  # [segment, samples not yet played]
        self.played: dict[int, int] = {}
        self.queued: dict[int, int] = {}
        self.opened = 0
        self.open: int | None = None
        self.closed: set[int] = set()
        self.t = 0.0

    @rule(n=st.integers(1, 40))
    def queue(self, n: int) -> None:
        if self.open is None:
            self.open, self.opened = self.opened, self.opened + 1
        assert self.tracker.queue(n) == self.open
        self.chunks.append([self.open, n])
        self.queued[self.open] = self.queued.get(self.open, 0) + n

    @rule()
    def flush(self) -> None:
        if self.open is None:  # an empty segment
            self.open, self.opened = self.opened, self.opened + 1
        self.closed.add(self.open)
        self.open = None
        self.events += self.tracker.flush(self.t)

    @rule()
    def end(self) -> None:
        if self.open is not None:
            self.closed.add(self.open)
        self.open = None
        self.events += self.tracker.end(self.t)

    @rule()
    def interrupt(self) -> None:
        events, discard = self.tracker.interrupt(self.t)
        assert discard == sum(n for _, n in self.chunks)
        self.chunks.clear()
        if self.open is not None:
            self.closed.add(self.open)
        self.open = None
        self.events += events
        assert all(isinstance(e, mg.PlaybackFinished) and e.interrupted for e in events)

    @rule(n=st.integers(1, 60), dt=st.floats(0, 0.05))
    def play(self, n: int, dt: float) -> None:
        self.t += dt
        events = self.tracker.played(n, self.t)
        self.events += events
        before = dict(self.played)
        while n and self.chunks:
            take = min(n, self.chunks[0][1])
            self.played[self.chunks[0][0]] = self.played.get(self.chunks[0][0], 0) + take
            self.chunks[0][1] -= take
            n -= take
            if not self.chunks[0][1]:
                self.chunks.pop(0)
        # A progress for each started, unfinished segment that played and moved PROGRESS samples since the last.
        finished = {e.segment for e in self.events if isinstance(e, mg.PlaybackFinished)}
        due = {
            seg
            for seg, played in self.played.items()
            if seg not in finished and played > before.get(seg, 0) and played - self.reported.get(seg, 0) >= PROGRESS
        }
        progress = {e.segment: e for e in events if isinstance(e, mg.PlaybackProgress)}
        assert set(progress) == due
        for seg, e in progress.items():
            assert e.position * RATE == self.played[seg], "the position played so far"
            assert e.start is None and e.generation == self.tracker.generation
            self.reported[seg] = self.played[seg]

    @invariant()
    def invariants_hold(self) -> None:
        sent = {s: q / RATE for s, q in self.queued.items()}
        assert playback_violations(as_log(self.events), "sink", sent=sent) == []

    @invariant()
    def positions_are_what_was_played(self) -> None:
        for e in self.events:
            if isinstance(e, mg.PlaybackFinished):
                assert e.position * RATE == self.played.get(e.segment, 0)

    @invariant()
    def a_segment_finishes_once_closed_and_played_out(self) -> None:
        finished = {e.segment for e in self.events if isinstance(e, mg.PlaybackFinished)}
        pending = {seg for seg, _ in self.chunks}
        assert finished == self.closed - pending - {s for s in self.closed if any(p < s for p in pending)}


TestTracker = TrackerMachine.TestCase


def test_started_comes_with_the_first_sample_and_finished_after_the_last() -> None:
    tr = mg.PlaybackTracker(100)
    assert tr.queue(50, start=2.0) == 0
    assert tr.queue(10, start=2.5) == 0  # the segment keeps the start of its first frame
    assert tr.played(10, 0.5) == [mg.PlaybackStarted(segment=0, t=0.5, start=2.0)]
    assert tr.flush(0.6) == []
    assert tr.queue(30, start=3.0) == 1  # a frame after the flush opens segment 1
    assert tr.played(70, 0.7) == [
        mg.PlaybackFinished(segment=0, position=0.6, interrupted=False, t=0.7, start=2.0, sent=0.6),
        mg.PlaybackStarted(segment=1, t=0.7, start=3.0),
    ]
    events, discard = tr.interrupt(0.8)
    assert discard == 10
    assert events == [mg.PlaybackFinished(segment=1, position=0.2, interrupted=True, t=0.8, start=3.0, sent=0.3)]
    assert tr.generation == 1
    assert tr.flush(0.9) == [mg.PlaybackFinished(segment=2, position=0.0, interrupted=False, generation=1, t=0.9)]
    assert tr.end(1.0) == []  # the end of the stream never invents an empty segment


def test_progress_comes_every_interval_of_a_segment_played_never_with_its_finish() -> None:
    tr = mg.PlaybackTracker(100, progress_interval=0.2)
    tr.queue(60, start=1.0)
    assert tr.played(10, 0.0) == [mg.PlaybackStarted(segment=0, t=0.0, start=1.0)]
    assert tr.played(5, 0.1) == []  # 0.15 s played: not yet
    assert tr.played(10, 0.15) == [mg.PlaybackProgress(segment=0, position=0.25, t=0.25, start=1.0)]
    assert tr.played(20, 0.25) == [mg.PlaybackProgress(segment=0, position=0.45, t=0.45, start=1.0)]
    tr.flush()
    assert tr.played(15, 0.45) == [
        mg.PlaybackFinished(segment=0, position=0.6, interrupted=False, t=0.45, start=1.0, sent=0.6)
    ]
    every = mg.PlaybackTracker(100, progress_interval=0)
    every.queue(30)
    assert [type(e) for e in every.played(1, 0.0)] == [mg.PlaybackStarted, mg.PlaybackProgress]
    assert every.played(1, 0.01) == [mg.PlaybackProgress(segment=0, position=0.02, t=0.02)]
    assert every.played(0, 0.02) == []  # nothing played, nothing to report
    assert mg.PlaybackTracker(100).played(0, 0.0) == []


def test_the_segment_counter_numbers_frames_flushes_and_cuts() -> None:
    counter = mg.SegmentCounter(first=3)
    assert counter.cut() is None and counter.next == 3  # nothing open: an interrupt uses no number
    assert [counter.frame(), counter.frame()] == [3, 3]  # the first frame opens the segment, the next joins it
    assert counter.flush() == 3 and counter.open is None
    assert counter.flush() == 4  # a flush with nothing open: one number, for an empty segment
    assert counter.frame() == 5 and counter.cut() == 5 and counter.frame() == 6
    assert repr(counter) == "<SegmentCounter open=6 next=7>"
