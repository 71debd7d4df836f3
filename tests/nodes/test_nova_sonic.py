"""nova_sonic through the real AWS SDK against the local stand-in service (mediagraph.testing.sonic_standin):
conversations, text turns, barge-ins, every failure before ready and mid-way, renewal by age and at the
service's limit. On the real clock (the SDK runs on a real asyncio thread); every run is bounded, and after
each one no task of the node or the SDK is left and its loop thread is gone."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, final

import attrs
import hypothesis.strategies as st
import pytest
import trio
from hypothesis import HealthCheck, given, settings

import mediagraph as mg
from mediagraph.testing import (
    Cancel,
    Captured,
    Recorder,
    Schedule,
    SinkConfig,
    Stop,
    capture,
    check_sonic_input,
    format_event,
    read_vtt,
)
from mediagraph.testing.sonic_standin import SonicScript, SonicStandin, StandinSession

if TYPE_CHECKING:
    from nodes._sonic_client import SonicStream
    from nodes._sonic_core import SonicConversation
    from nodes._sonic_protocol import SonicInput
    from nodes._sonic_session import Session
    from nodes.nova_sonic import NovaSonic, NovaSonicConfig, ToolCall, ToolResult
else:
    from mediagraph.nodes._sonic_client import SonicStream
    from mediagraph.nodes._sonic_core import SonicConversation
    from mediagraph.nodes._sonic_protocol import SonicInput
    from mediagraph.nodes._sonic_session import Session
    from mediagraph.nodes.nova_sonic import NovaSonic, NovaSonicConfig, ToolCall, ToolResult

#: Real seconds any one run may take before the test fails.
BOUND = 30.0
SINKS = ("audio", "text", "user_text", "control")


@attrs.frozen
class Run:
    captured: Captured
    recorder: Recorder
    sessions: list[StandinSession]
    sent: bytes  # the user's audio as the source sent it (16 kHz mono)
    standin: SonicStandin

    def got(self, outlet: str) -> list[Any]:
        return [a.message for a in self.recorder.arrivals(outlet)]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e.fields for e in self.captured.log.of(name) if e.node == "sonic"]

    @property
    def received(self) -> bytes:
        return b"".join(bytes(s.audio) for s in self.sessions)


async def converse(
    tmp_path: Path,
    scripts: SonicScript | Sequence[SonicScript],
    *,
    audio: float = 0.0,
    texts: Sequence[tuple[float, str]] = (),
    environment: pytest.MonkeyPatch | None = None,
    schedule: Schedule | None = None,
    wire: Callable[[mg.Graph], None] | None = None,
    **params: Any,
) -> Run:
    """Run a graph of a 16 kHz tone of ``audio`` seconds (paced) and/or text turns into ``nova_sonic`` against a
    stand-in playing ``scripts``, every outlet recorded. The node finds the stand-in through its parameters,
    or through the environment only (set with the ``environment`` monkeypatch)."""
    standin = SonicStandin(scripts, directory=tmp_path)
    recorder = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(standin.serve)
        graph = mg.Graph("sonic_test")
        if environment is None:
            params |= {"endpoint": standin.endpoint, "ca_file": str(standin.ca_file)}
        else:
            environment.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", standin.endpoint)
            environment.setenv("SSL_CERT_FILE", str(standin.ca_file))
        graph.add("sonic", "nova_sonic", region="us-east-1", reply_grace=0.3, **params)
        if audio:
            graph.add("mic", "tone_source", sample_rate=16000, frame_ms=20, duration=audio, frequency=300)
            graph.add("heard", "test_sink", config=SinkConfig(recorder=recorder))
            graph.link("mic.audio", "sonic.audio")
            graph.link("mic.audio", "heard.in")
        if texts:
            graph.add("typed", "text_source", script=[{"at": at, "text": text} for at, text in texts])
            graph.link("typed.text", "sonic.text")
        for outlet in SINKS:
            graph.add(outlet, "test_sink", config=SinkConfig(recorder=recorder))
            graph.link(f"sonic.{outlet}", f"{outlet}.in")
        if wire is not None:
            wire(graph)
        with trio.fail_after(BOUND):
            captured = await capture(graph, schedule=schedule)
        nursery.cancel_scope.cancel()
    assert "mediagraph-asyncio" not in {t.name for t in threading.enumerate()}, "the node's loop thread is joined"
    sent = b"".join(a.message.samples.tobytes() for a in recorder.arrivals("heard"))
    return Run(captured, recorder, standin.sessions, sent, standin)


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake keys for the SDK's standard chain (the stand-in accepts any signature)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDNOVASONICTESTKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "nova-sonic-test-secret-never-shown")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME"):
        monkeypatch.delenv(name, raising=False)


def segments(messages: list[Any]) -> list[tuple[int, str]]:
    """Audio as (samples, how it ended: Flush or Interrupt) per segment."""
    out: list[tuple[int, str]] = []
    count = 0
    for msg in messages:
        if isinstance(msg, mg.AudioFrame):
            count += msg.samples_per_channel
        else:
            out.append((count, type(msg).__name__))
            count = 0
    assert count == 0, "the last segment ended"
    return out


def texts(messages: list[Any]) -> list[str]:
    """Text chunks joined per utterance (a Flush or an Interrupt ends one)."""
    out, pending = [], ""
    for msg in messages:
        if isinstance(msg, mg.TextChunk):
            pending += msg.text
        else:
            out.append(pending + ("" if isinstance(msg, mg.Flush) else " <cut>"))
            pending = ""
    return out


def no_secrets(run: Run) -> None:
    shown = "\n".join(format_event(e) for e in run.captured.log)
    shown += str(run.captured.error)
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in shown
    assert os.environ["AWS_ACCESS_KEY_ID"] not in shown


# --- conversations ---------------------------------------------------------------------------------------------


async def test_a_spoken_conversation_goes_through_the_real_sdk(tmp_path: Path, credentials: None) -> None:
    run = await converse(tmp_path, SonicScript(turn_audio=0.5, reply_seconds=0.4), audio=1.1)
    assert run.captured.error is None, run.captured.error
    (session,) = run.sessions
    assert session.outcome == "completed" and session.violations == []
    check_sonic_input(session.events)
    assert run.received == run.sent, "every sample of the user's audio reached the service once, in order"
    assert segments(run.got("audio")) == [(19200, "Flush")] * 2  # 0.4 s at 48 kHz each
    assert texts(run.got("text")) == ["reply 0", "reply 1"]
    assert texts(run.got("user_text")) == ["user turn 0", "user turn 1"]
    assert run.got("control") == []
    frames = [m for m in run.got("audio") if isinstance(m, mg.AudioFrame)]
    stamps = [f.timestamp for f in frames]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert [e["reason"] for e in run.events("sonic_session_closed")] == ["completed"]
    assert run.events("sonic_session_closed")[0]["clean"] is True
    spoken = [(e["role"], e["text"]) for e in run.events("sonic_text")]
    assert spoken == [
        ("user", "user turn 0"),
        ("assistant", "reply 0"),
        ("user", "user turn 1"),
        ("assistant", "reply 1"),
    ]
    no_secrets(run)


async def test_the_service_is_found_through_the_environment_alone(
    tmp_path: Path, credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await converse(tmp_path, SonicScript(), texts=[(0.0, "hello there")], environment=monkeypatch)
    assert run.captured.error is None, run.captured.error
    assert texts(run.got("user_text")) == ["hello there"]


async def test_a_user_text_turn_is_answered(tmp_path: Path, credentials: None) -> None:
    run = await converse(tmp_path, SonicScript(reply_seconds=0.2), texts=[(0.0, "what time is it")])
    assert run.captured.error is None, run.captured.error
    assert texts(run.got("user_text")) == ["what time is it"]
    assert texts(run.got("text")) == ["reply 0"]
    assert segments(run.got("audio")) == [(9600, "Flush")]


async def test_a_barge_in_cuts_the_turn_on_every_outlet_once(tmp_path: Path, credentials: None) -> None:
    run = await converse(tmp_path, SonicScript(turn_audio=0.3, reply_seconds=0.6, barge_in=frozenset({0})), audio=0.7)
    assert run.captured.error is None, run.captured.error
    ends = [end for _, end in segments(run.got("audio"))]
    assert ends == ["Interrupt", "Flush"]
    assert [type(m).__name__ for m in run.got("control")] == ["Interrupt"]
    assert texts(run.got("text"))[0].endswith("<cut>")
    assert len(run.events("sonic_barge_in")) == 1
    cut, played = segments(run.got("audio"))
    assert cut[0] < played[0], "only what came before the barge-in went out"


# --- failures --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "match", "within"),
    [
        (SonicScript(fail="reset"), "session 1: not ready within 1.5 s", 1.5),
        (SonicScript(fail="status"), "session 1: ValidationException", 1.0),
        (SonicScript(fail="exception", fail_type="throttlingException"), "session 1: ThrottlingException", 1.0),
        (SonicScript(ready_delay=5.0), "session 1: not ready within 1.5 s", 1.5),
        (SonicScript(turn_audio=0.2, error_after=12), "session 1: ModelStreamErrorException", 1.0),
    ],
    ids=["reset", "status", "exception", "slow", "mid-way"],
)
async def test_a_failure_fails_the_node_within_its_bound_naming_the_session_and_the_error(
    tmp_path: Path, credentials: None, script: SonicScript, match: str, within: float
) -> None:
    t0 = trio.current_time()
    run = await converse(tmp_path, script, audio=3.0, ready_timeout=1.5)
    elapsed = trio.current_time() - t0
    assert run.captured.error is not None
    assert isinstance(run.captured.error.__cause__, mg.ProviderError)
    assert match in str(run.captured.error), str(run.captured.error)
    assert "node 'sonic' (nova_sonic)" in str(run.captured.error)
    assert elapsed < within + 2.5, f"surfaced after {elapsed:.2f} s"
    (closed,) = run.events("sonic_session_closed")
    assert closed["reason"] == "failed"
    no_secrets(run)


async def test_under_restart_a_failed_session_is_retried_and_the_conversation_goes_on(
    tmp_path: Path, credentials: None
) -> None:
    scripts = [SonicScript(fail="status"), SonicScript(fail="reset"), SonicScript(reply_seconds=0.2)]
    run = await converse(
        tmp_path, scripts, texts=[(0.0, "hi")], ready_timeout=2.0, supervision=mg.Restart(max_restarts=3, backoff=0.1)
    )
    assert run.captured.error is None, run.captured.error
    assert [s.outcome for s in run.standin.sessions][-1] == "completed"
    assert [e["reason"] for e in run.events("sonic_session_closed")] == ["failed", "failed", "completed"]
    assert [e.fields.get("error") for e in run.captured.log.of("node_restarting")][:2] != [None, None]
    assert texts(run.got("text")) == ["reply 0"]


async def test_a_slow_ready_within_the_deadline_is_only_slow(tmp_path: Path, credentials: None) -> None:
    run = await converse(tmp_path, SonicScript(ready_delay=0.5, turn_audio=0.3, reply_seconds=0.2), audio=0.5)
    assert run.captured.error is None, run.captured.error
    (ready,) = run.events("sonic_ready")
    assert ready["after"] >= 0.5
    assert run.received == run.sent, "the audio that waited for ready was all sent after it"


# --- renewal ---------------------------------------------------------------------------------------------------


async def test_renewal_replays_the_history_and_loses_or_repeats_no_audio(tmp_path: Path, credentials: None) -> None:
    script = SonicScript(turn_audio=0.4, reply_seconds=0.2)
    history = [{"role": "user", "text": "my name is Ada"}, {"role": "assistant", "text": "hello Ada"}]
    run = await converse(tmp_path, script, audio=2.0, renew_after=0.7, history=history)
    assert run.captured.error is None, run.captured.error
    assert len(run.sessions) >= 3
    for session in run.sessions:
        assert session.violations == []
        check_sonic_input(session.events)
    assert run.received == run.sent, "each chunk went to exactly one session, in order"
    reasons = [e["reason"] for e in run.events("sonic_session_closed")]
    assert reasons.count("completed") == 1 and set(reasons) == {"renewed", "completed"}
    replayed = [e["event"]["textInput"]["content"] for e in run.sessions[-1].events if "textInput" in e["event"]]
    assert replayed[1:3] == ["my name is Ada", "hello Ada"], "the configured history comes first"
    assert any("reply 0" in text for text in replayed), "then what was said since"


async def test_at_the_service_s_limit_a_new_session_goes_on(tmp_path: Path, credentials: None) -> None:
    script = SonicScript(turn_audio=5.0, limit_audio=0.6)
    run = await converse(tmp_path, script, audio=2.0)
    assert run.captured.error is None, run.captured.error
    assert len(run.sessions) >= 3
    reasons = [e["reason"] for e in run.events("sonic_session_closed")]
    assert reasons[:2] == ["limit", "limit"]
    # At the limit the service drops what it had not read yet: what it took is the input, in order, with gaps
    # only at the session ends.
    position = 0
    for session in run.sessions:
        at = run.sent.find(bytes(session.audio[:640]), position)
        assert at >= position and run.sent[at : at + len(session.audio)] == bytes(session.audio)
        position = at + len(session.audio)
    assert len(run.sent) - len(run.received) < 16000 * 2 * 0.5 * len(run.sessions)


# --- the ready-made graph --------------------------------------------------------------------------------------

GRAPHS = Path(__file__).resolve().parents[2] / "graphs"
COMMAND = [sys.executable, "-m", "mediagraph"]


async def test_the_ready_made_agent_runs_against_the_stand_in_from_the_command_line(tmp_path: Path) -> None:
    shutil.copytree(GRAPHS, tmp_path / "graphs", ignore=shutil.ignore_patterns("out"))
    standin = SonicStandin(SonicScript(turn_audio=1.0, reply_seconds=0.5), directory=tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(standin.serve)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | standin.environment()
        args = ["run", "graphs/nova_sonic_agent.yaml", "--duration", "3", "--set", "sonic.reply_grace=1.0"]
        with trio.fail_after(BOUND):
            done = await trio.run_process(
                [*COMMAND, *args, "--events", "ev.jsonl"],
                cwd=tmp_path,
                env=env,
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
        nursery.cancel_scope.cancel()
    out = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, out
    log = [json.loads(line) for line in (tmp_path / "ev.jsonl").read_text().splitlines()]
    closed = [e for e in log if e["event"] == "sonic_session_closed"]
    assert [(e["reason"], e["clean"]) for e in closed] == [("completed", True)]
    assert standin.sessions[0].replies >= 2 and standin.sessions[0].violations == []
    cues = read_vtt((tmp_path / "graphs/out/nova_sonic_agent.vtt").read_text())
    assert [text for _, _, text in cues][:2] == ["reply 0", "reply 1"], "the transcript follows the speech played"
    secrets = standin.environment()
    for shown in (out, (tmp_path / "ev.jsonl").read_text()):
        assert secrets["AWS_SECRET_ACCESS_KEY"] not in shown and secrets["AWS_ACCESS_KEY_ID"] not in shown


def test_the_virtual_clock_is_refused_with_the_reason(tmp_path: Path) -> None:
    shutil.copytree(GRAPHS, tmp_path / "graphs", ignore=shutil.ignore_patterns("out"))
    done = subprocess.run(
        [*COMMAND, "run", "graphs/nova_sonic_agent.yaml", "--clock", "virtual"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "nova_sonic): a network service answers in real time" in done.stderr
    assert "run it on the real clock" in done.stderr


# --- generated scenarios ---------------------------------------------------------------------------------------


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    first = SonicScript(
        fail=draw(st.sampled_from(["none", "none", "none", "reset", "status", "exception"])),
        ready_delay=draw(st.sampled_from([0.0, 0.0, 0.3, 0.9])),
        turn_audio=draw(st.sampled_from([0.3, 0.5])),
        reply_seconds=draw(st.sampled_from([0.1, 0.4])),
        barge_in=frozenset(draw(st.sets(st.integers(0, 2), max_size=2))),
        error_after=draw(st.none() | st.none() | st.integers(3, 80)),
        limit_audio=draw(st.none() | st.sampled_from([0.4, 0.7])),
    )
    later = SonicScript(turn_audio=0.4, reply_seconds=0.2, limit_audio=draw(st.none() | st.just(0.5)))
    return {
        "scripts": [first, later],
        "audio": draw(st.sampled_from([0.0, 0.6, 1.2])),
        "texts": sorted(draw(st.lists(st.tuples(st.sampled_from([0.0, 0.3, 0.8]), st.just("hi")), max_size=2))),
        "renew_after": draw(st.sampled_from([30.0, 0.5])),
        "schedule": draw(
            st.none()
            | st.builds(Stop, at=st.sampled_from([0.2, 0.7]))
            | st.builds(Cancel, at=st.sampled_from([0.1, 0.5, 0.9]))
        ),
    }


@settings(max_examples=14, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios())
async def test_whatever_happens_when_nothing_breaks_the_protocol_hangs_or_leaks(
    scenario: dict[str, Any], tmp_path_factory: pytest.TempPathFactory, credentials: None
) -> None:
    if not scenario["audio"] and not scenario["texts"]:
        scenario["texts"] = [(0.0, "hi")]
    schedule = scenario.pop("schedule")
    run = await converse(tmp_path_factory.mktemp("sonic"), ready_timeout=0.6, schedule=schedule, **scenario)
    for session in run.sessions:
        assert session.violations == [], session.violations
        check_sonic_input(session.events)
    opened = [e["session"] for e in run.events("sonic_session_opened")]
    closed = [e["session"] for e in run.events("sonic_session_closed")]
    assert sorted(closed) == opened, "every session opened is closed once"
    assert all(e["stuck"] == 0 for e in run.events("sonic_session_closed")), "no asyncio task outlives its session"
    error = run.captured.error
    if error is not None:
        assert isinstance(error.__cause__, mg.ProviderError), error
        assert re.search(r"node 'sonic' \(nova_sonic\): session \d+: ", str(error)), error
    position = 0  # what the service took is the user's audio, in order, never twice
    for session in run.sessions:
        if session.audio:
            at = run.sent.find(bytes(session.audio[:640]), position)
            assert at >= position and run.sent[at : at + len(session.audio)] == bytes(session.audio)
            position = at + len(session.audio)
    ended_by_service = any(e["reason"] == "limit" for e in run.events("sonic_session_closed"))
    if error is None and not ended_by_service and not isinstance(schedule, Cancel):
        assert run.received == run.sent, "no audio lost or repeated"
    barge_ins = len(run.events("sonic_barge_in"))
    assert len(run.got("control")) == barge_ins
    assert sum(isinstance(m, mg.Interrupt) for m in run.got("audio")) == barge_ins


# --- tools -----------------------------------------------------------------------------------------------------


@final
@attrs.frozen
class ClockConfig:
    """The test's tool runner: answers every call with the time, or never (``silent``)."""

    silent: bool = False


@final
@mg.node_type("sonic_test_clock", config=ClockConfig)
class Clock(mg.Transform):
    @staticmethod
    def ports(config: ClockConfig) -> mg.Ports:
        return mg.Ports(
            inlets=[mg.InletSpec(name="calls", types=ToolCall)],
            outlets=[mg.OutletSpec(name="results", types=ToolResult)],
        )

    def __init__(self, config: ClockConfig) -> None:
        self.silent = config.silent

    def start(self, io: mg.NodeIO) -> None:
        self._emit = io.outlets["results"].emit

    def process(self, inlet: str, msg: Any) -> None:
        if isinstance(msg, ToolCall) and not self.silent:
            self._emit(ToolResult(msg.tool_use_id, {"time": "noon", "asked": msg.arguments}))


CLOCK = [{"name": "clock", "description": "the time now", "schema": {"type": "object", "properties": {}}}]


async def test_a_tool_call_goes_to_the_tool_node_and_its_result_back_to_the_session(
    tmp_path: Path, credentials: None
) -> None:
    def wire(graph: mg.Graph) -> None:
        graph.add("clock", "sonic_test_clock")
        graph.link("sonic.tool_calls", "clock.calls")
        graph.link("clock.results", "sonic.tool_results")

    script = SonicScript(turn_audio=0.3, reply_seconds=0.2, tool="clock")
    run = await converse(tmp_path, script, audio=0.5, tools=CLOCK, wire=wire)
    assert run.captured.error is None, run.captured.error
    (uses,) = run.events("sonic_tool_use")
    assert (uses["tool"], uses["tool_use_id"]) == ("clock", "tool-0")
    said = [e["text"] for e in run.events("sonic_text") if e["role"] == "assistant"]
    assert said == ['reply 0: {"time": "noon", "asked": {"turn": 0}}']
    tool_spec = run.sessions[0].events[1]["event"]["promptStart"]["toolConfiguration"]["tools"][0]["toolSpec"]
    assert tool_spec["name"] == "clock" and json.loads(tool_spec["inputSchema"]["json"])["type"] == "object"


def test_tools_need_their_runner_linked_and_are_checked() -> None:
    graph = mg.Graph("g")
    graph.add("sonic", "nova_sonic", tools=CLOCK)
    graph.add("typed", "text_source", script=[{"at": 0, "text": "hi"}])
    graph.link("typed.text", "sonic.text")
    with pytest.raises(mg.GraphDefinitionError, match="tool_results"):
        graph.validate()
    with pytest.raises(mg.GraphDefinitionError, match="a second tool named 'clock'"):
        mg.Graph("g").add("sonic", "nova_sonic", tools=CLOCK * 2)
    with pytest.raises(mg.GraphDefinitionError, match="schema is not JSON"):
        mg.Graph("g").add("sonic", "nova_sonic", tools=[{"name": "x", "schema": "{nope"}])


# --- regressions -----------------------------------------------------------------------------------------------


async def test_a_send_that_stalls_fails_the_node_in_bounded_time_even_while_renewing(
    tmp_path: Path, credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream that stalls unseen (no reset, no end) blocks the SDK's send; the renewal's close of the old
    session waited for the writer's lock forever, and the node never ended."""
    original = SonicStream.send
    stalled: list[SonicStream] = []
    sent: dict[int, int] = {}

    async def send(self: SonicStream, events: list[dict[str, Any]]) -> None:
        if not stalled:
            stalled.append(self)
        sent[id(self)] = sent.get(id(self), 0) + sum("audioInput" in e["event"] for e in events)
        if self is stalled[0] and sent[id(self)] > 10:
            await asyncio.Event().wait()  # session 1's send never returns
        await original(self, events)

    monkeypatch.setattr(SonicStream, "send", send)
    t0 = trio.current_time()
    run = await converse(tmp_path, SonicScript(turn_audio=5.0), audio=4.0, renew_after=0.4, ready_timeout=2.0)
    assert trio.current_time() - t0 < 8
    assert run.captured.error is not None
    assert "session 1: the service took no input for 2.0 s" in str(run.captured.error)
    closed = {e["session"]: e for e in run.events("sonic_session_closed")}
    assert closed[1]["error"] == "Stalled" and closed[1]["reason"] == "failed"


async def test_a_tool_call_from_the_service_without_tools_fails_once_naming_the_tool(
    tmp_path: Path, credentials: None
) -> None:
    run = await converse(tmp_path, SonicScript(turn_audio=0.3, tool="clock"), audio=0.5)
    assert run.captured.error is not None
    message = str(run.captured.error.__cause__)
    assert message == "node 'sonic' (nova_sonic): session 1: the service called tool 'clock', but the node has no tools"
    (closed,) = run.events("sonic_session_closed")
    assert (closed["reason"], closed["error"]) == ("failed", "ProtocolError")


@final
class _SlowStream:
    """A stream whose every send takes 0.3 s; its input's end ends the session's output."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.ended: trio.Event | None = None

    async def send(self, events: list[dict[str, Any]]) -> None:
        self.sent += [next(iter(e["event"])) for e in events]
        await trio.sleep(0.3)

    async def end_input(self) -> None:
        assert self.ended is not None
        self.ended.set()

    async def close(self) -> None:
        pass


@final
class _DirectLoop:
    """Runs the 'asyncio' calls right in trio (the stream above is trio code)."""

    def session(self, tag: object) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await fn(*args)

    async def reap(self, tag: object) -> mg.Reaped:
        return mg.Reaped(0, ())


async def test_a_tool_result_for_a_session_being_closed_is_dropped_not_sent_into_it(autojump_clock: Any) -> None:
    """White box: the result waited for the session's lock behind its close (itself behind a send under way),
    then went into the closed input (SonicOrderError, not even a ProviderError)."""
    log: list[tuple[str, dict[str, Any]]] = []
    results_tx, results_rx = trio.open_memory_channel[Any](4)
    node = NovaSonic(NovaSonicConfig(tools=CLOCK, close_timeout=0.5))
    node._io = SimpleNamespace(  # type: ignore[assignment]
        name="sonic", inlets={"tool_results": results_rx}, time=trio.current_time, log=lambda e, **f: log.append((e, f))
    )
    node._loop = _DirectLoop()  # type: ignore[assignment]
    node._conversation = SonicConversation()
    node._switched = trio.Event()
    stream = _SlowStream()
    sonic_input = SonicInput(prompt="p", tools=[t.spec() for t in node.config.tools])
    sonic_input.open()
    session = Session(number=1, stream=stream, input=sonic_input)  # type: ignore[arg-type]
    stream.ended = session.ended
    node._open[1] = node._current = session
    node._tool_calls = {"tool-0": 1}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(node._read_tool_results, trio.CancelScope())
        nursery.start_soon(node._write, "audio", b"\0" * 640)  # holds the lock for 0.3 s
        await trio.sleep(0.05)
        nursery.start_soon(node._retire, session, "renewed")  # waits for the lock
        await trio.sleep(0.05)
        await results_tx.send(ToolResult("tool-0", {"t": 1}))  # waits for the lock, behind the close
        await trio.sleep(2)
        nursery.cancel_scope.cancel()
    assert "toolResult" not in stream.sent
    assert ("sonic_tool_result_dropped", {"tool_use_id": "tool-0", "reason": "its session ended"}) in log
