"""The runtime: lifecycle order, supervision, mailboxes and their policies, stop and cancel, the clock."""

import io
import json
import math
import sys
from typing import Any

import attrs
import pytest
import trio
import trio.testing

import mediagraph as mg

_v = attrs.validators


@attrs.frozen(kw_only=True)
class SlowSinkConfig:
    delay: float = 0.0  # seconds of graph time spent on each message
    fail_at: int = -1  # raise on this message (0-based); -1 never
    capacity: int = 4
    overflow: str = "block"
    cleanup_delay: float = 0.0


SEEN: dict[str, list[Any]] = {}
CLEANED: list[str] = []


@mg.node_type("core_test_slow_sink", config=SlowSinkConfig)
class SlowSink(mg.Actor):
    """Takes each message slowly, with its own task; records what it saw in SEEN[name]."""

    @staticmethod
    def ports(config: SlowSinkConfig) -> mg.Ports:
        policy = mg.Overflow(config.overflow)
        return mg.Ports(inlets=[mg.InletSpec(name="audio", capacity=config.capacity, overflow=policy)])

    def __init__(self, config: SlowSinkConfig) -> None:
        self.config = config

    async def run(self, io: mg.NodeIO) -> None:
        self.name = io.name
        seen = SEEN.setdefault(io.name, [])
        async for msg in io.inlets["audio"]:
            if len(seen) == self.config.fail_at:
                raise RuntimeError(f"boom at {len(seen)}")
            seen.append(msg.timestamp)
            if self.config.delay:
                await trio.sleep(self.config.delay)

    async def cleanup(self) -> None:
        await trio.sleep(self.config.cleanup_delay)
        CLEANED.append(self.name)


@pytest.fixture(autouse=True)
def _clear() -> None:
    SEEN.clear()
    CLEANED.clear()


def chain(frames: int = 20, paced: bool = False, **sink: Any) -> mg.Graph:
    g = mg.Graph("chain")
    g.add("tone", "tone_source", duration=frames / 100, paced=paced)
    g.add("id", "identity")
    g.add("sink", "core_test_slow_sink", **sink)
    g.link("tone.audio", "id.audio")
    g.link("id.audio", "sink.audio")
    return g


def lifecycle(log: mg.EventLog) -> list[tuple[str | None, str, str | None]]:
    return [(e.node, e.event, e.fields.get("reason")) for e in log if e.event.startswith(("graph_", "node_"))]


@pytest.mark.parametrize("fuse", [True, False])
async def test_lifecycle_order_sinks_start_first_and_everything_arrives(fuse: bool) -> None:
    result = await mg.run(chain(), fuse=fuse)
    assert lifecycle(result.log) == [
        (None, "graph_started", None),
        ("sink", "node_started", None),
        ("id", "node_started", None),
        ("tone", "node_started", None),
        ("tone", "node_finished", "completed"),
        ("id", "node_finished", "completed"),
        ("sink", "node_finished", "completed"),
        (None, "graph_finished", "completed"),
    ]
    assert SEEN["sink"] == [480 * i for i in range(20)]
    assert result.statistics["id"].fused is fuse
    assert result.statistics["sink"].frames_in == 20
    assert [e.seq for e in result.log] == list(range(len(result.log)))


async def test_backpressure_blocks_the_source_without_loss(autojump_clock: trio.testing.MockClock) -> None:
    result = await mg.run(chain(frames=50, delay=0.01, capacity=4))
    assert SEEN["sink"] == [480 * i for i in range(50)]
    stats = result.statistics["sink"]
    assert stats.dropped == 0 and stats.peak_mailbox <= 4


async def test_drop_oldest_counts_what_it_drops(autojump_clock: trio.testing.MockClock) -> None:
    result = await mg.run(chain(frames=50, delay=0.01, capacity=4, overflow="drop_oldest"))
    stats = result.statistics["sink"]
    assert stats.dropped > 0
    assert len(SEEN["sink"]) + stats.dropped == 50
    assert SEEN["sink"] == sorted(SEEN["sink"])
    assert SEEN["sink"][-1] == 49 * 480  # the newest survive


async def test_fail_policy_fails_the_receiving_node(autojump_clock: trio.testing.MockClock) -> None:
    with pytest.raises(mg.NodeFailedError, match="node 'sink' failed: MailboxOverflowError: inlet sink.audio") as e:
        await mg.run(chain(frames=50, delay=0.01, capacity=4, overflow="fail"))
    assert isinstance(e.value.__cause__, mg.MailboxOverflowError)


async def test_failure_names_the_node_keeps_the_cause_and_cancels_the_rest() -> None:
    log = mg.EventLog()
    with pytest.raises(mg.NodeFailedError, match="node 'sink' failed: RuntimeError: boom at 3") as info:
        await mg.run(chain(fail_at=3), log=log)
    assert info.value.node == "sink"
    assert isinstance(info.value.__cause__, RuntimeError)
    finished = {e.node: e.fields for e in log.of("node_finished")}
    assert finished["sink"] == {"reason": "failed", "error": "RuntimeError: boom at 3"}
    assert log.events[-1].event == "graph_finished" and log.events[-1].fields["reason"] == "failed"
    assert CLEANED == ["sink"]  # cleanup ran despite the failure


async def test_isolate_lets_the_rest_go_on() -> None:
    g = mg.Graph()
    g.add("tone", "tone_source", duration=0.2, paced=False)
    g.add("bad", "core_test_slow_sink", fail_at=2, supervision=mg.Isolate())
    g.add("good", "core_test_slow_sink")
    g.link("tone.audio", "bad.audio")
    g.link("tone.audio", "good.audio")
    result = await mg.run(g)
    assert result.reason == "completed"
    assert len(SEEN["good"]) == 20 and len(SEEN["bad"]) == 2
    assert str(result.isolated["bad"]) == "boom at 2"
    assert result.statistics["bad"].state == "finished"
    assert result.statistics["bad"].dropped > 0  # what reached the dead node is counted, and never blocks


@attrs.frozen(kw_only=True)
class FlakyConfig:
    failures: int = 2


FLAKY_RUNS: list[int] = []


@mg.node_type("core_test_flaky", config=FlakyConfig)
class Flaky(mg.Actor):
    """Fails on its first message the first ``failures`` times it runs."""

    @staticmethod
    def ports(config: FlakyConfig) -> mg.Ports:
        return mg.Ports(inlets=[mg.InletSpec(name="audio")])

    def __init__(self, config: FlakyConfig) -> None:
        self.config = config

    async def run(self, io: mg.NodeIO) -> None:
        FLAKY_RUNS.append(len(FLAKY_RUNS))
        async for _ in io.inlets["audio"]:
            if len(FLAKY_RUNS) <= self.config.failures:
                raise ConnectionError("flaky")


async def test_restart_with_backoff(autojump_clock: trio.testing.MockClock) -> None:
    FLAKY_RUNS.clear()
    g = mg.Graph()
    g.add("tone", "tone_source", duration=0.1, paced=False)
    g.add("f", "core_test_flaky", failures=2, supervision=mg.Restart(max_restarts=3, backoff=0.5))
    g.link("tone.audio", "f.audio")
    result = await mg.run(g)
    restarts = result.log.of("node_restarted")
    assert [(e.fields["attempt"], e.t) for e in restarts] == [(1, 0.0), (2, 0.5)]
    assert result.statistics["f"].restarts == 2
    assert result.log.of("node_finished", "f")[0].fields["reason"] == "completed"
    FLAKY_RUNS.clear()
    g2 = mg.Graph()
    g2.add("tone", "tone_source", duration=0.1, paced=False)
    g2.add("f", "core_test_flaky", failures=5, supervision=mg.Restart(max_restarts=1, backoff=0))
    g2.link("tone.audio", "f.audio")
    with pytest.raises(mg.NodeFailedError, match="node 'f' failed: ConnectionError: flaky"):
        await mg.run(g2)


async def test_fused_transform_failure_is_reported_with_its_own_name() -> None:
    g = mg.Graph()
    g.add("tone", "tone_source", duration=0.1, paced=False, frame_ms=10)
    g.add("wide", "core_test_wideband_sink_for_failure")
    g.link("tone.audio", "wide.audio")
    log = mg.EventLog()
    with pytest.raises(mg.NodeFailedError, match="node 'wide' failed: ValueError: bad frame") as info:
        await mg.run(g, log=log)
    assert info.value.node == "wide"
    reasons = {e.node: e.fields["reason"] for e in log.of("node_finished")}
    assert reasons == {"wide": "failed", "tone": "cancelled"}


@mg.node_type("core_test_wideband_sink_for_failure", config=SlowSinkConfig)
class Refuses(mg.Transform):
    """Raises on the second frame."""

    @staticmethod
    def ports(config: SlowSinkConfig) -> mg.Ports:
        return mg.Ports(inlets=[mg.InletSpec(name="audio")])

    def __init__(self, config: SlowSinkConfig) -> None:
        self.n = 0

    def start(self, io: mg.NodeIO) -> None:
        pass

    def process(self, inlet: str, msg: Any) -> None:
        self.n += 1
        if self.n == 2:
            raise ValueError("bad frame")


async def test_graceful_stop_drains_and_completes(autojump_clock: trio.testing.MockClock) -> None:
    g = mg.Graph()
    g.add("tone", "tone_source")  # endless, paced
    g.add("sink", "core_test_slow_sink", delay=0.005)
    g.link("tone.audio", "sink.audio")
    result = await mg.run(g, duration=60.0)
    assert result.reason == "stopped"
    reasons = {e.node: e.fields["reason"] for e in result.log.of("node_finished")}
    assert reasons == {"tone": "completed", "sink": "completed"}
    sent = result.statistics["tone"].frames_out
    assert SEEN["sink"] == [480 * i for i in range(sent)]  # drained: everything sent arrived
    assert 5990 <= sent <= 6001
    assert result.log.events[-1].t == pytest.approx(60.0, abs=0.02)


async def test_cancel_finishes_every_node_as_cancelled_and_runs_cleanup_shielded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    g = mg.Graph()
    g.add("tone", "tone_source")
    g.add("sink", "core_test_slow_sink", cleanup_delay=1.0)
    g.link("tone.audio", "sink.audio")
    async with mg.open_runtime() as rt:
        running = await rt.start(g)
        await trio.sleep(0.5)
        running.cancel()
        result = await running.wait()
    assert result.reason == "cancelled"
    assert {e.node: e.fields["reason"] for e in result.log.of("node_finished")} == {
        "tone": "cancelled",
        "sink": "cancelled",
    }
    assert CLEANED == ["sink"]
    assert result.log.of("node_finished", "sink")[0].t == pytest.approx(1.5)


async def test_cleanup_is_time_bounded(autojump_clock: trio.testing.MockClock) -> None:
    async with mg.open_runtime() as rt:
        running = await rt.start(chain(frames=3, cleanup_delay=100.0), cleanup_timeout=2.0)
        result = await running.wait()
    assert CLEANED == []
    assert result.log.of("cleanup_timeout")[0].fields == {"seconds": 2.0}
    assert result.log.of("node_finished", "sink")[0].t == pytest.approx(2.0)


async def test_paced_minute_on_the_mock_clock(autojump_clock: trio.testing.MockClock) -> None:
    g = mg.Graph()
    g.add("tone", "tone_source", duration=60.0)
    g.add("sink", "null_sink")
    g.link("tone.audio", "sink.audio")
    result = await mg.run(g)
    total = result.log.of("sink_total")[0]
    assert total.fields == {"frames": 6000, "samples": 2_880_000, "seconds": 60.0}
    assert total.t == pytest.approx(59.99)


async def test_event_log_as_json_lines() -> None:
    result = await mg.run(chain(frames=2))
    buf = io.StringIO()
    result.log.write_jsonl(buf)
    rows = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert rows[0] == {"seq": 0, "t": 0.0, "node": None, "event": "graph_started", "graph": "chain"}
    assert rows[-1]["event"] == "graph_finished"
    assert all(set(r) >= {"seq", "t", "node", "event"} for r in rows)


async def test_fan_in_ends_when_every_link_closed() -> None:
    g = mg.Graph()
    g.add("a", "tone_source", duration=0.05, paced=False)
    g.add("b", "tone_source", duration=0.3, paced=False)
    g.add("sink", "core_test_slow_sink")
    g.link("a.audio", "sink.audio")
    g.link("b.audio", "sink.audio")
    result = await mg.run(g)
    assert len(SEEN["sink"]) == 35
    assert result.statistics["sink"].frames_in == 35


async def test_statistics_and_reprs() -> None:
    async with mg.open_runtime() as rt:
        running = await rt.start(chain(frames=5))
        await running.wait()
    links = running.link_statistics()
    assert [(s.src, s.dst, s.frames) for s in links] == [("tone.audio", "id.audio", 5), ("id.audio", "sink.audio", 5)]
    assert "completed" in repr(running)
    assert "Runtime" in repr(rt)


@attrs.frozen(kw_only=True)
class StuckConfig:
    capacity: int = 4


@mg.node_type("core_test_stuck", config=StuckConfig)
class Stuck(mg.Actor):
    """Takes one batch, handles one message of it, and then never handles another."""

    @staticmethod
    def ports(config: StuckConfig) -> mg.Ports:
        return mg.Ports(inlets=[mg.InletSpec(name="audio", types=(mg.AudioFrame,), capacity=config.capacity)])

    def __init__(self, config: StuckConfig) -> None:
        pass

    async def run(self, io: mg.NodeIO) -> None:
        await io.inlets["audio"].receive()
        await trio.sleep_forever()


async def test_inlet_outlet_and_link_statistics_count_the_lag(autojump_clock: trio.testing.MockClock) -> None:
    g = mg.Graph("stuck")
    g.add("tone", "tone_source", duration=1.0, paced=False)
    g.add("stuck", "core_test_stuck", capacity=4)
    g.link("tone.audio", "stuck.audio")
    async with mg.open_runtime() as rt:
        running = await rt.start(g)
        await trio.sleep(1)
        (inlet,) = running.inlet_statistics()
        # The actor took the first batch (4 frames), handled one, and the source refilled the mailbox to 4.
        assert (inlet.node, inlet.name, inlet.linked, inlet.capacity) == ("stuck", "audio", True, 4)
        assert (inlet.queued, inlet.taken, inlet.lag, inlet.peak, inlet.ended) == (4, 3, 7, 4, False)
        tone = {(s.node, s.name): s for s in running.outlet_statistics()}[("tone", "audio")]
        assert (tone.links, tone.sent, tone.closed, tone.lag) == (1, 8, False, 7)
        (link,) = running.link_statistics()
        assert (link.frames, link.queued, link.peak, link.dropped, link.lag) == (8, 4, 4, 0, 7)
        running.cancel()
    (inlet,) = running.inlet_statistics()
    # What it took and never handled, and what was still queued, count as dropped when it finished.
    assert (inlet.queued, inlet.taken, inlet.lag, inlet.dropped, inlet.ended) == (0, 0, 0, 7, True)
    assert running.statistics()["stuck"].state is mg.NodeState.FINISHED


@attrs.frozen(kw_only=True)
class StampConfig:
    pass


ARRIVALS: list[tuple[int, float]] = []


@mg.node_type("core_test_stamp", config=StampConfig)
class Stamp(mg.Transform):
    """Records (timestamp, graph time) of every frame."""

    @staticmethod
    def ports(config: StampConfig) -> mg.Ports:
        return mg.Ports(inlets=[mg.InletSpec(name="audio")])

    def __init__(self, config: StampConfig) -> None:
        pass

    def start(self, io: mg.NodeIO) -> None:
        self.io = io

    def process(self, inlet: str, msg: Any) -> None:
        ARRIVALS.append((msg.timestamp, self.io.time()))


async def _paced_lateness(phases: tuple[float, ...], duration: float) -> list[float]:
    """Lateness of every frame of paced tone sessions started ``phases`` apart on one runtime (shared pacer)."""
    ARRIVALS.clear()
    async with mg.open_runtime() as rt:
        graphs = []
        for phase in phases:
            g = mg.Graph()
            g.add("tone", "tone_source", duration=duration)
            g.add("stamp", "core_test_stamp")
            g.link("tone.audio", "stamp.audio")
            await trio.sleep(phase)
            graphs.append(await rt.start(g))
        for running in graphs:
            await running.wait()
    return [t - ts / 48000 for ts, t in ARRIVALS]


async def test_the_pacer_batches_within_a_tick_never_early(autojump_clock: trio.testing.MockClock) -> None:
    """Frames due within one pacer tick of the previous round leave together: at most a tick late, never early."""
    from mediagraph._pacer import RESOLUTION

    lateness = await _paced_lateness((0.0, 0.0003, 0.0007), 0.1)  # three sessions due within one tick
    assert len(lateness) == 30
    assert min(lateness) >= 0
    assert max(lateness) < RESOLUTION


@pytest.mark.skipif(sys.platform != "linux", reason="timerfd is Linux only")
async def test_under_the_system_clock_the_pacer_sleeps_on_a_timerfd_never_early_and_movable() -> None:
    """Real clock: the alarm wakes at or after its deadline, and moving it earlier wakes a sleeper at once.

    Without the move, the sleeper would wait 100 s; ``fail_after`` turns that bug into a failure, not a hang.
    """
    from mediagraph._pacer import _alarm, _TimerfdAlarm

    alarm = _alarm()
    assert isinstance(alarm, _TimerfdAlarm)
    try:
        with trio.fail_after(10):
            for delay in (0.002, 0.0, -1.0):  # in the future, now, in the past
                deadline = trio.current_time() + delay
                await alarm.sleep_until(deadline)
                assert trio.current_time() >= deadline
            async with trio.open_nursery() as nursery:
                nursery.start_soon(alarm.sleep_until, trio.current_time() + 100)
                await trio.testing.wait_all_tasks_blocked()
                moved_to = trio.current_time() + 0.001
                alarm.move(moved_to)
            assert trio.current_time() >= moved_to
            alarm.move(math.inf)  # disarmed: nothing fires
            with trio.move_on_after(0.01) as waited:
                await alarm.sleep_until(math.inf)
            assert waited.cancelled_caught
    finally:
        alarm.close()


async def test_paced_frames_on_the_real_clock_are_never_early_and_all_arrive() -> None:
    """The pacer on trio's system clock (its timerfd alarm on Linux): three sessions with different phases."""
    lateness = await _paced_lateness((0.0, 0.0003, 0.0041), 0.05)
    assert len(lateness) == 15
    assert min(lateness) >= 0


# --- interrupts after the end of an inlet's input ------------------------------------------------------------


@attrs.frozen(kw_only=True)
class LingerConfig:
    listen: bool = False  # read the inlet after its end (Inlet.after_end)


@mg.node_type("core_test_linger", config=LingerConfig)
class Linger(mg.Actor):
    """Reads its inlet to the end, then stays running until cancelled: listening after the end, or not."""

    @staticmethod
    def ports(config: LingerConfig) -> mg.Ports:
        return mg.Ports(inlets=[mg.InletSpec(name="audio")])

    def __init__(self, config: LingerConfig) -> None:
        self.config = config

    async def run(self, io: mg.NodeIO) -> None:
        async for _ in io.inlets["audio"]:
            pass
        if not self.config.listen:
            await trio.sleep_forever()
        with io.inlets["audio"].after_end() as late:
            async for msg in late:
                io.log("late", kind=type(msg).__name__)


@pytest.mark.parametrize("listen", [False, True])
async def test_an_interrupt_of_an_ended_inlet_reaches_a_node_that_reads_after_the_end_or_is_refused(
    autojump_clock: trio.testing.MockClock, listen: bool
) -> None:
    # It used to be accepted and left in the mailbox, where nobody would ever read it: a barge-in lost.
    g = mg.Graph("late")
    g.add("tone", "tone_source", duration=0.1, paced=False)
    g.add("sink", "core_test_linger", listen=listen)
    g.link("tone.audio", "sink.audio")
    async with mg.open_runtime() as rt:
        running = await rt.start(g)
        await trio.sleep(1.0)  # the tone ended long ago; the sink runs on
        if listen:
            running.interrupt("sink")
            await trio.testing.wait_all_tasks_blocked()
            assert [e.fields for e in running.log.of("late", "sink")] == [{"kind": "Interrupt"}]
        else:
            with pytest.raises(mg.MediaGraphError, match="inlet 'audio' has ended .* the interrupt would be lost"):
                running.interrupt("sink")
            assert not running.log.of("interrupt_requested")
        running.cancel()
        await running.wait()


def test_an_event_log_that_keeps_nothing_still_numbers_and_hands_out_every_event() -> None:
    seen: list[mg.Event] = []
    log = mg.EventLog(keep=False)
    log.listen(seen.append)
    for i in range(3):
        log.record(float(i), None, "tick")
    assert [e.seq for e in seen] == [0, 1, 2]
    assert len(log) == 0 and list(log) == [] and repr(log) == "<EventLog 3 events (not kept)>"
