"""``mediagraph.testing`` itself: every checker catches the violation it is for, and the test nodes, capture,
plans and strategies do what they say."""

from __future__ import annotations

import ast
import importlib
import pathlib
import subprocess
import sys
import threading
from typing import Any

import numpy as np
import pytest
import trio
import trio.testing
from hypothesis import given

import mediagraph as mg
import mediagraph.testing
from mediagraph.testing import (
    Arrival,
    Cancel,
    DeviceTiming,
    FakePortAudioError,
    FakeSounddevice,
    FaultSpec,
    GraphPlan,
    InvariantError,
    ProbeFrame,
    Recorder,
    SinkConfig,
    Stop,
    capture,
    check_failure,
    check_frames,
    check_lifecycle,
    device_timings,
    event_multiset,
    failure_violations,
    fake_sounddevice,
    faults,
    frame_violations,
    graphs,
    lifecycle_violations,
    node_sequences,
    schedules,
)

Entry = tuple[str | None, str, dict[str, Any]]


def log_of(*entries: Entry) -> mg.EventLog:
    """A log of ``(node, event, fields)`` entries, one millisecond apart."""
    log = mg.EventLog()
    for i, (node, event, fields) in enumerate(entries):
        log.record(i / 1000, node, event, **fields)
    return log


START: Entry = (None, "graph_started", {"graph": "g"})
END: Entry = (None, "graph_finished", {"graph": "g", "reason": "completed"})


def started(node: str) -> Entry:
    return (node, "node_started", {})


def finished(node: str, reason: str = "completed", **fields: Any) -> Entry:
    return (node, "node_finished", {"reason": reason, **fields})


def rules(violations: list[Any]) -> set[tuple[str, str | None]]:
    return {(v.rule, v.node) for v in violations}


# --- lifecycle checker ---------------------------------------------------------------------------------------


def test_a_good_log_passes() -> None:
    log = log_of(START, started("b"), started("a"), finished("a"), finished("b"), END)
    assert lifecycle_violations(log, nodes=["a", "b"]) == []
    check_lifecycle(log, nodes=["a", "b"])


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        pytest.param(
            [START, started("a"), finished("a"), finished("a"), END], {("finish-once", "a")}, id="finished-twice"
        ),
        pytest.param([START, started("a"), END], {("finish-once", "a")}, id="never-finished"),
        pytest.param(
            [START, started("a"), started("a"), finished("a"), END], {("start-once", "a")}, id="started-twice"
        ),
        pytest.param([START, finished("a"), END], {("finish-after-start", "a")}, id="finished-without-start"),
        pytest.param(
            [START, finished("a"), started("a"), END],
            {("finish-after-start", "a")},
            id="finished-before-start",
        ),
        pytest.param([started("a"), START, finished("a"), END], {("graph_started", None)}, id="graph-started-late"),
        pytest.param([START, started("a"), END, finished("a")], {("graph_finished", None)}, id="node-after-graph"),
        pytest.param([START, started("a"), finished("a")], {("graph_finished", None)}, id="no-graph-finished"),
        pytest.param(
            [START, started("a"), finished("a"), END, END], {("graph_finished", None)}, id="graph-finished-twice"
        ),
        pytest.param(
            [START, started("a"), finished("a", "failed"), (None, "graph_finished", {"reason": "failed"})],
            {("failure-error", "a")},
            id="failed-without-error",
        ),
        pytest.param(
            [START, started("a"), finished("a", "exploded"), END], {("finish-reason", "a")}, id="unknown-reason"
        ),
        pytest.param(
            [START, started("a"), finished("a"), ("a", "sink_total", {}), END],
            {("events-while-running", "a")},
            id="event-after-finish",
        ),
        pytest.param([START, ("a", "sink_total", {}), END], {("events-while-running", "a")}, id="event-without-start"),
        pytest.param(
            [START, started("a"), ("a", "node_restarted", {"attempt": 2}), finished("a"), END],
            {("restart-attempts", "a")},
            id="restart-attempt-skipped",
        ),
        pytest.param(
            [START, started("a"), finished("a"), (None, "graph_finished", {"reason": "failed"})],
            {("graph-reason", None)},
            id="graph-failed-without-failed-node",
        ),
        pytest.param(
            [START, started("a"), finished("a", "cancelled"), END], {("graph-reason", None)}, id="completed-cancelled"
        ),
        pytest.param(
            [START, started("a"), finished("a"), (None, "graph_finished", {"reason": "done"})],
            {("graph-reason", None)},
            id="unknown-graph-reason",
        ),
    ],
)
def test_each_lifecycle_violation_is_caught(entries: list[Entry], expected: set[tuple[str, str | None]]) -> None:
    log = log_of(*entries)
    assert rules(lifecycle_violations(log)) == expected
    with pytest.raises(InvariantError):
        check_lifecycle(log)


def test_seq_and_time_must_move_forward() -> None:
    events = [
        mg.Event(seq=0, t=0.0, node=None, event="graph_started"),
        mg.Event(seq=1, t=0.5, node="a", event="node_started"),
        mg.Event(seq=1, t=0.4, node="a", event="node_finished", fields={"reason": "completed"}),
        mg.Event(seq=3, t=0.6, node=None, event="graph_finished", fields={"reason": "completed"}),
    ]
    assert rules(lifecycle_violations(events)) == {("seq-increasing", "a"), ("t-monotonic", "a")}


def test_a_node_that_never_started_is_reported_when_expected() -> None:
    log = log_of(START, started("a"), finished("a"), END)
    assert rules(lifecycle_violations(log, nodes=["a", "b"])) == {("node-started", "b")}


def test_the_error_names_the_rule_the_node_and_the_events() -> None:
    log = log_of(START, started("a"), finished("a"), finished("a", "failed", error="x"), END)
    with pytest.raises(AssertionError) as info:
        check_lifecycle(log)
    text = str(info.value)
    assert "[finish-once] node 'a': finished 2 times" in text
    assert "#1 t=0.001 'a' node_started()" in text
    assert "#3 t=0.003 'a' node_finished(reason='failed', error='x')" in text
    assert isinstance(info.value, InvariantError)
    assert len(info.value.violations) == 1


# --- failure checker -----------------------------------------------------------------------------------------

FAILED_LOG = log_of(
    START,
    started("a"),
    started("b"),
    finished("a", "failed", error="RuntimeError: boom"),
    finished("b", "cancelled"),
    (None, "graph_finished", {"graph": "g", "reason": "failed"}),
)


def node_failed(node: str) -> mg.NodeFailedError:
    cause = RuntimeError("boom")
    error = mg.NodeFailedError(node, cause)
    error.__cause__ = cause
    return error


def test_a_failure_naming_the_failed_node_passes() -> None:
    check_failure(FAILED_LOG, node_failed("a"))


def test_a_failure_naming_another_node_is_caught() -> None:
    assert rules(failure_violations(FAILED_LOG, node_failed("b"))) == {("failure-names-node", "b")}


def test_a_failure_that_did_not_surface_is_caught() -> None:
    assert rules(failure_violations(FAILED_LOG, None)) == {("failure-surfaces", None)}
    assert rules(failure_violations(FAILED_LOG, RuntimeError("raw"))) == {("failure-surfaces", None)}


def test_a_failure_without_cause_or_failed_graph_is_caught() -> None:
    log = log_of(START, started("a"), finished("a", "failed", error="E: x"), END)
    error = mg.NodeFailedError("a", RuntimeError("x"))
    assert rules(failure_violations(log, error)) == {("failure-cause", "a"), ("failure-graph-reason", None)}
    with pytest.raises(InvariantError, match="has no __cause__"):
        check_failure(log, error)


# --- frame checker -------------------------------------------------------------------------------------------

ROUTE = ("src", "map.in", "sink.in")


def arrivals(*timestamps: int, route: tuple[str, ...] = ROUTE) -> list[Arrival]:
    return [
        Arrival(index=i, inlet="in", source=route[0], route=route, timestamp=ts, t=0.0, message=None)
        for i, ts in enumerate(timestamps)
    ]


def problems(got: list[Arrival], expected: dict[tuple[str, ...], int | range]) -> list[str]:
    return [v.message for v in frame_violations("sink", got, expected)]


def test_conserved_frames_pass() -> None:
    check_frames("sink", arrivals(0, 1, 2), {ROUTE: 3})
    check_frames("sink", arrivals(0, 1), {ROUTE: range(4)})
    check_frames("sink", [], {ROUTE: 0})


@pytest.mark.parametrize(
    ("timestamps", "expected", "message"),
    [
        pytest.param((0, 2, 3), 4, "frame 1 lost (frame 2 came next)", id="gap"),
        pytest.param((0, 1, 1, 2), 3, "frame 1 duplicated at position 2", id="duplicate"),
        pytest.param((0, 2, 1), 3, "reordered: frame 2 arrived before frame 1", id="reordered"),
        pytest.param((0, 1), 3, "2 frame(s) arrived, expected 3: frames 2..2 lost", id="tail-lost"),
        pytest.param((0, 1, 2, 3), 3, "unexpected frame 3 at position 3", id="extra"),
        pytest.param((1, 2), range(3), "frame 0 lost", id="prefix-with-gap"),
        pytest.param((0,), range(2, 4), "1 frame(s) arrived, expected a prefix of length in range(2, 4)", id="short"),
    ],
)
def test_each_frame_violation_is_caught(timestamps: tuple[int, ...], expected: int | range, message: str) -> None:
    found = problems(arrivals(*timestamps), {ROUTE: expected})
    assert len(found) == 1
    assert message in found[0]
    assert found[0].startswith("route src -> map.in -> sink.in: ")
    with pytest.raises(InvariantError, match="node 'sink'"):
        check_frames("sink", arrivals(*timestamps), {ROUTE: expected})


def test_frames_on_an_unexpected_route_are_caught() -> None:
    other = ("other", "sink.in")
    found = problems(arrivals(0, 1) + arrivals(0, route=other), {ROUTE: 2})
    assert found == ["1 frame(s) on unexpected route other -> sink.in"]


def test_routes_are_checked_separately() -> None:
    a, b = ("a", "sink.in"), ("b", "sink.in")
    interleaved = [*arrivals(0, route=a), *arrivals(0, route=b), *arrivals(1, route=b), *arrivals(2, route=b)]
    assert problems(interleaved, {a: 1, b: 2}) == [
        "route b -> sink.in: unexpected frame 2 at position 2 (expected at most frames 0..1)"
    ]


# --- conveniences --------------------------------------------------------------------------------------------


def test_node_sequences_and_multiset_ignore_the_interleaving() -> None:
    one = log_of(START, started("a"), started("b"), finished("a"), finished("b"), END)
    two = log_of(START, started("b"), started("a"), finished("b"), finished("a"), END)
    assert node_sequences(one) == node_sequences(two)
    assert node_sequences(one)["a"] == [("node_started", None), ("node_finished", "completed")]
    assert event_multiset(one) == event_multiset(two)
    three = log_of(START, started("b"), started("a"), finished("b"), finished("a", "cancelled"), END)
    assert node_sequences(one) != node_sequences(three)
    assert event_multiset(one) != event_multiset(three)


# --- test nodes, capture -------------------------------------------------------------------------------------


def run(graph: mg.Graph, **kwargs: Any) -> Any:
    return trio.run(lambda: capture(graph, **kwargs), clock=trio.testing.MockClock(autojump_threshold=0))


def chain(recorder: Recorder, **source: Any) -> mg.Graph:
    g = mg.Graph("chain")
    g.add("src", "test_source", **source)
    g.add("map", "test_map")
    g.add("actor", "test_actor")
    g.add("sink", "test_sink", config=SinkConfig(recorder=recorder))
    g.link("src.out", "map.in")
    g.link("map.out", "actor.in")
    g.link("actor.out", "sink.in")
    return g


def test_a_chain_of_test_nodes_records_routes_times_and_payloads() -> None:
    recorder = Recorder()
    captured = run(chain(recorder, count=3, paced=True, period=0.02, start=0.01, size=8))
    assert captured.reason == "completed"
    check_lifecycle(captured.log, nodes=["src", "map", "actor", "sink"])
    got = recorder.arrivals("sink")
    assert [(a.index, a.source, a.timestamp) for a in got] == [(0, "src", 0), (1, "src", 1), (2, "src", 2)]
    assert {a.route for a in got} == {("src", "map.in", "actor.in", "sink.in")}
    assert [a.t for a in got] == pytest.approx([0.01, 0.03, 0.05])
    assert all(isinstance(a.message, ProbeFrame) and a.message.payload == bytes(8) for a in got)
    assert recorder.routes("sink") == {("src", "map.in", "actor.in", "sink.in"): [0, 1, 2]}
    assert recorder.sinks == ["sink"]


def test_a_fault_given_as_a_mapping_makes_the_node_fail() -> None:
    g = chain(Recorder(), count=3)
    g.nodes.pop("map")
    g.add("map", "test_map", fault={"at": 1, "source": "src"})
    captured = run(g)
    assert captured.error is not None
    assert captured.error.node == "map"
    check_failure(captured.log, captured.error)


def test_only_an_actor_can_sleep_or_hang() -> None:
    with pytest.raises(mg.GraphDefinitionError, match="only test_actor can"):
        mg.Graph().add("map", "test_map", fault={"at": 0, "action": "hang"})
    mg.Graph().add("actor", "test_actor", fault=FaultSpec(at=0, action="hang"))


def test_a_hung_actor_ends_when_the_graph_is_cancelled() -> None:
    g = chain(Recorder(), count=3)
    g.nodes.pop("actor")
    g.add("actor", "test_actor", fault={"at": 1, "action": "hang"})
    captured = run(g, schedule=Cancel(at=5.0))
    assert captured.reason == "cancelled"
    assert captured.log.of("graph_finished")[0].t == 5.0
    check_lifecycle(captured.log)


def test_a_sleeping_actor_delays_the_frame() -> None:
    recorder = Recorder()
    g = chain(recorder, count=2)
    g.nodes.pop("actor")
    g.add("actor", "test_actor", fault={"at": 1, "action": "sleep", "seconds": 0.5})
    run(g)
    assert [a.t for a in recorder.arrivals("sink")] == [0.0, 0.5]


def test_a_stop_on_schedule_drains() -> None:
    recorder = Recorder()
    captured = run(chain(recorder, count=100, paced=True, period=0.01), schedule=Stop(at=0.055))
    assert captured.reason == "stopped"
    assert recorder.routes("sink") == {("src", "map.in", "actor.in", "sink.in"): list(range(6))}


def test_the_sink_records_any_message() -> None:
    recorder = Recorder()
    g = mg.Graph()
    g.add("tone", "tone_source", duration=0.02, paced=False)
    g.add("sink", "test_sink", config=SinkConfig(recorder=recorder))
    g.link("tone.audio", "sink.in")
    run(g)
    got = recorder.arrivals("sink")
    assert [(a.source, a.route, a.timestamp) for a in got] == [(None, (), 0), (None, (), 480)]


# --- plans and strategies ------------------------------------------------------------------------------------


@given(plan=graphs())
def test_generated_plans_build_valid_graphs_whose_routes_end_at_sinks(plan: GraphPlan) -> None:
    graph = plan.build(Recorder())
    graph.validate()
    assert set(graph.nodes) == {n.name for n in plan.nodes}
    assert plan.sinks
    for sink in plan.sinks:
        for route, count in plan.routes(sink).items():
            assert route[-1].startswith(f"{sink}.")
            assert count == plan.sources[route[0]]


@given(data=graphs(min_inner=1, min_frames=1).flatmap(lambda p: faults(p).map(lambda f: (p, f))))
def test_generated_faults_target_a_frame_the_node_receives(data: tuple[GraphPlan, Any]) -> None:
    plan, fault = data
    faulty = plan.with_fault(fault)
    assert faulty.node(fault.node).config.fault == fault.spec  # type: ignore[union-attr]
    assert fault.spec.source is not None
    assert fault.spec.at < plan.sources[fault.spec.source]
    route = (fault.spec.source, *(fault.spec.path or ()))
    if fault.node != fault.spec.source:
        assert route in plan.routes(fault.node)
    if isinstance(fault.supervision, mg.Restart):
        assert fault.node not in plan.sources


@given(data=graphs(paced=True, min_frames=1).flatmap(lambda p: schedules(p).map(lambda s: (p, s))))
def test_generated_schedules_fall_within_the_run(data: tuple[GraphPlan, Stop | Cancel]) -> None:
    plan, schedule = data
    assert 0 <= schedule.at <= plan.duration + 0.011


# --- the simulated sound device -----------------------------------------------------------------------------


def test_the_fake_sounddevice_is_installed_for_the_block_and_the_previous_module_put_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    with fake_sounddevice() as sd:
        assert importlib.import_module("sounddevice") is sd
        assert isinstance(sd, FakeSounddevice)
    assert "sounddevice" not in sys.modules
    before = FakeSounddevice(name="before")
    monkeypatch.setitem(sys.modules, "sounddevice", before)

    def fail_inside() -> None:
        with fake_sounddevice(name="studio", output_channels=2) as sd:
            assert sys.modules["sounddevice"] is sd
            assert sd.query_devices("studio", "output")["max_output_channels"] == 2
            raise KeyError("an error in the block")

    with pytest.raises(KeyError):
        fail_inside()
    assert sys.modules["sounddevice"] is before


def test_a_fake_stream_plays_exactly_the_blocks_released_in_its_thread() -> None:
    calls: list[tuple[int, float, float, bool, str]] = []

    def callback(outdata: Any, frames: int, time: Any, status: Any) -> None:
        thread = threading.current_thread().name
        calls.append((frames, time.currentTime, time.outputBufferDacTime, status.output_underflow, thread))
        out = np.frombuffer(outdata, np.int16).reshape(frames, 2)
        out[:, 0], out[:, 1] = len(calls), -len(calls)

    with fake_sounddevice() as sd:
        with pytest.raises(ValueError, match="No output device matching 'studio'"):
            sd.query_devices("studio", "output")
        with pytest.raises(FakePortAudioError, match="int16 only"):
            sd.RawOutputStream(device=0, samplerate=8000, channels=2, dtype="float32", blocksize=4, callback=callback)
        stream = sd.RawOutputStream(
            device=0, samplerate=8000, channels=2, dtype="int16", blocksize=4, callback=callback
        )
        assert sd.streams == [stream]
        with pytest.raises(RuntimeError, match="before the stream was started"):
            stream.step(0.0, 0.0)
        stream.start()
        assert calls == []  # nothing runs until the test releases a block
        first = stream.step(0.5, 0.75)
        second = stream.step(1.0, 1.25, underflow=True)
        assert calls == [
            (4, 0.5, 0.75, False, "fake-portaudio-callback"),
            (4, 1.0, 1.25, True, "fake-portaudio-callback"),
        ]
        assert stream.blocks == [first, second]
        assert second is not None
        assert (second.current, second.dac, second.underflow) == (1.0, 1.25, True)
        assert second.samples.reshape(-1, 2).tolist() == [[2, -2]] * 4
        stream.stop()
        stream.close()
        assert stream.stopped and stream.closed
        assert stream.step(2.0, 2.0) is None
        assert len(calls) == len(stream.blocks) == 2


def test_a_fake_stream_raises_what_the_callback_raised_and_plays_no_more() -> None:
    def callback(outdata: Any, frames: int, time: Any, status: Any) -> None:
        raise ZeroDivisionError("in the callback")

    stream = FakeSounddevice().RawOutputStream(
        device=0, samplerate=8000, channels=1, dtype="int16", blocksize=4, callback=callback
    )
    stream.start()
    with pytest.raises(ZeroDivisionError, match="in the callback"):
        stream.step(0.0, 0.0)
    assert stream.step(0.0, 0.0) is None
    stream.close()


def test_the_stream_clock_is_trios() -> None:
    stream = FakeSounddevice().RawOutputStream(
        device=0, samplerate=8000, channels=1, dtype="int16", blocksize=4, callback=print
    )

    clock = trio.testing.MockClock()

    async def main() -> float:
        clock.jump(3.5)
        return stream.time

    assert trio.run(main, clock=clock) == 3.5


@given(timings=device_timings(tick=1 / 256, max_ticks=4, interrupts=False))
def test_generated_device_timings_move_time_forward_in_whole_ticks(timings: list[DeviceTiming]) -> None:
    assert timings
    assert any(t.interval > 0 for t in timings)
    for t in timings:
        assert t.interval * 256 in range(5)
        assert 0.0 <= t.latency <= 0.05
        assert not t.interrupt


# --- the package ---------------------------------------------------------------------------------------------


def test_the_package_uses_only_the_public_api_of_the_core() -> None:
    for path in pathlib.Path(mediagraph.testing.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module or ""]
            for module in modules:
                if module.startswith("mediagraph"):
                    assert not any(part.startswith("_") for part in module.split(".")), (path.name, module)


def test_all_is_exact_and_importable() -> None:
    assert sorted(mediagraph.testing.__all__) == sorted(set(mediagraph.testing.__all__))
    for name in mediagraph.testing.__all__:
        assert hasattr(mediagraph.testing, name), name


def test_hypothesis_is_imported_only_for_the_strategies() -> None:
    code = (
        "import sys, mediagraph.testing as t\n"
        "assert 'hypothesis' not in sys.modules\n"
        "t.graphs\n"
        "assert 'hypothesis' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_test_messages_sends_any_message_on_its_outlets_at_its_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rec = Recorder()
    g = mg.Graph()
    steps = [(0.5, "text", mg.TextChunk(text="hi")), (0.2, "text", mg.Flush()), (1.0, "done", mg.TextChunk(text="!"))]
    g.add("src", "test_messages", outlets={"text": mg.TextChunk, "done": (mg.TextChunk,)}, steps=steps)
    g.add("a", "test_sink", config=SinkConfig(recorder=rec))
    g.add("b", "test_sink", config=SinkConfig(recorder=rec))
    g.link("src.text", "a.in")
    g.link("src.done", "b.in")
    await mg.run(g)
    got = rec.arrivals("a")
    assert [a.message for a in got] == [mg.TextChunk(text="hi"), mg.Flush()]  # the late one right after
    assert [a.t for a in got] == [0.5, pytest.approx(0.5, abs=0.002)]  # (the pacer's next tick)
    assert [(a.t, a.message) for a in rec.arrivals("b")] == [(1.0, mg.TextChunk(text="!"))]
    with pytest.raises(mg.GraphDefinitionError, match=r"step 0: no outlet 'txt' \(outlets: text\)") as info:
        mg.Graph().add("src", "test_messages", outlets={"text": mg.TextChunk}, steps=[(0.0, "txt", mg.Flush())])
    assert info.value.param == "steps"
