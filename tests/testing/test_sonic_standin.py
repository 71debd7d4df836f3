"""The Nova Sonic stand-in, driven by the real AWS SDK (CRT HTTP/2 transport) on an asyncio loop thread: a
conversation by audio and by text, a barge-in, a tool round trip, each failure before the stream is ready, a
mid-stream error, the session limit, a broken input rule, a slow ready, and the command line. On the real clock
(the SDK runs on a real thread); every wait is bounded."""

from __future__ import annotations

import contextlib
import json
import pathlib
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, final

import pytest
import trio

import mediagraph as mg
from mediagraph.testing.sonic_standin import SonicScript, SonicStandin

if TYPE_CHECKING:
    from nodes._sonic_output import BargeIn, Out, SonicOutput, Speech, Text, ToolUse, TurnEnd
    from nodes._sonic_protocol import SonicInput, Turn
else:
    from mediagraph.nodes._sonic_output import BargeIn, Out, SonicOutput, Speech, Text, ToolUse, TurnEnd
    from mediagraph.nodes._sonic_protocol import SonicInput, Turn

from aws_sdk_bedrock_runtime.client import AsyncBedrockRuntimeClient
from aws_sdk_bedrock_runtime.config import AsyncBedrockRuntimeConfig
from aws_sdk_bedrock_runtime.models import (
    BidirectionalInputPayloadPart,
    InvokeModelWithBidirectionalStreamInputChunk,
    InvokeModelWithBidirectionalStreamOperationInput,
    ModelStreamErrorException,
    ModelTimeoutException,
    ValidationException,
)
from smithy_http.aio.crt import AWSCRTHTTPClient, AWSCRTHTTPClientConfig

type Event = dict[str, Any]

TURN = 0.2  # seconds of input audio per user turn in these tests
REPLY = 0.3  # seconds of each reply's audio


def pcm(seconds: float, seed: int = 0) -> bytes:
    """Deterministic 16 kHz int16 input audio (a byte pattern: the stand-in keeps it byte for byte)."""
    n = round(seconds * 16000) * 2
    return bytes((seed + i * 7) % 251 for i in range(n))


@final
class Sdk:
    """One bidirectional stream of the real SDK client, every call made from trio on the asyncio loop."""

    def __init__(self, loop: mg.AsyncioLoop) -> None:
        self.loop = loop
        self.client: Any = None
        self.stream: Any = None
        self.out: Any = None

    async def open(self) -> None:
        async def invoke() -> None:
            config = await AsyncBedrockRuntimeConfig.resolve(
                transport=AWSCRTHTTPClient(client_config=AWSCRTHTTPClientConfig(force_http_2=True)), max_attempts=1
            )
            self.client = AsyncBedrockRuntimeClient(config=config)
            self.stream = await self.client.invoke_model_with_bidirectional_stream(
                InvokeModelWithBidirectionalStreamOperationInput(model_id="amazon.nova-2-sonic-v1:0")
            )

        await self.loop.call(invoke)

    async def send(self, events: Sequence[Event]) -> None:
        for event in events:
            part = BidirectionalInputPayloadPart(bytes_=json.dumps(event).encode())
            await self.loop.call(
                self.stream.input_stream.send, InvokeModelWithBidirectionalStreamInputChunk(value=part)
            )

    async def ready(self) -> None:
        _, self.out = await self.loop.call(self.stream.await_output)

    async def receive(self) -> Event | None:
        event = await self.loop.call(self.out.receive)
        return None if event is None else dict(json.loads(event.value.bytes_))

    async def close_input(self) -> None:
        await self.loop.call(self.stream.input_stream.close)

    async def close(self) -> None:
        if self.client is not None:
            await self.loop.call(self.client.close)


@pytest.fixture
def loop() -> Any:
    host = mg.AsyncioLoop(cancel_timeout=0.5)
    yield host
    host.close()


@contextlib.asynccontextmanager
async def standin_and_sdk(
    scripts: SonicScript | Sequence[SonicScript], directory: pathlib.Path, monkeypatch: pytest.MonkeyPatch, loop: Any
) -> AsyncIterator[tuple[SonicStandin, Sdk]]:
    """A serving stand-in, the SDK's environment pointing at it, and an SDK stream opened (closed and reaped
    after)."""
    standin = SonicStandin(scripts, directory=directory)
    async with trio.open_nursery() as nursery:
        await nursery.start(standin.serve)
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION"):
            monkeypatch.delenv(name, raising=False)
        for name, value in standin.environment().items():
            monkeypatch.setenv(name, value)
        sdk = Sdk(loop)
        left = -1
        try:
            with loop.session(sdk):
                with trio.fail_after(5):
                    await sdk.open()
                yield standin, sdk
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                await sdk.close()
                left = (await loop.reap(sdk)).left
            nursery.cancel_scope.cancel()
    assert (left, loop.errors) == (0, [])  # the SDK left no task behind, nor an unretrieved exception


async def read_all(sdk: Sdk, output: SonicOutput, until: Any = None) -> list[Out]:
    """What the output means, read until the end of the stream (or until ``until(outs)`` holds)."""
    outs: list[Out] = []
    while (event := await sdk.receive()) is not None:
        outs += output.feed(event)
        if until is not None and until(outs):
            break
    return outs


async def drain(sdk: Sdk) -> list[Event]:
    """The output events left, to the end of the stream."""
    events = []
    while (event := await sdk.receive()) is not None:
        events.append(event)
    return events


def texts(outs: Sequence[Out], role: str, final: bool) -> list[str]:
    return [o.text for o in outs if isinstance(o, Text) and o.role == role and o.final == final]


def speech(outs: Sequence[Out]) -> int:
    return sum(len(o.pcm) for o in outs if isinstance(o, Speech))


def final_replies(count: int) -> Any:
    return lambda outs: len(texts(outs, "assistant", True)) >= count


async def test_a_conversation_of_two_audio_turns(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, loop: Any
) -> None:
    script = SonicScript(turn_audio=TURN, reply_seconds=REPLY)
    with trio.fail_after(10):
        async with standin_and_sdk(script, tmp_path, monkeypatch, loop) as (standin, sdk):
            sonic, output = SonicInput(instructions="be brief"), SonicOutput()
            await sdk.send(sonic.open())
            await sdk.ready()
            sent = pcm(2 * TURN)
            for i in range(0, len(sent), 640):  # 20 ms chunks
                await sdk.send(sonic.audio(sent[i : i + 640]))
            outs = await read_all(sdk, output, until=final_replies(2))
            await sdk.send(sonic.close())
            await sdk.close_input()
            names = [name for event in await drain(sdk) for name in event["event"]]
            assert names == ["contentEnd", "completionEnd"]  # the last FINAL text's end, then the completion's
            session = standin.sessions[0]
            await session.ended.wait()
    assert texts(outs, "user", True) == ["user turn 0", "user turn 1"]
    assert texts(outs, "assistant", False) == ["reply 0", "reply 1"]
    assert texts(outs, "assistant", True) == ["reply 0", "reply 1"]
    assert speech(outs) == 2 * round(REPLY * 24000 * 2)
    assert bytes(session.audio) == sent
    assert session.outcome == "completed"
    assert session.replies == 2
    assert session.violations == []
    assert session.path.startswith("/model/amazon.nova-2-sonic-v1%3A0/invoke-with-bidirectional-stream")
    assert "/us-east-1/bedrock/aws4_request" in session.headers["authorization"]
    assert session.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDSONICSTANDINFAKE/")
    started = [o.content for o in outs if isinstance(o, Speech | Text)]
    assert len(set(started)) == 2 * 4  # content ids: user, speculative, audio, final text per reply, all distinct


async def test_a_text_turn_is_answered_with_its_text_as_the_user_transcript(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, loop: Any
) -> None:
    with trio.fail_after(10):
        async with standin_and_sdk(SonicScript(reply_seconds=REPLY), tmp_path, monkeypatch, loop) as (standin, sdk):
            sonic, output = SonicInput(), SonicOutput()
            await sdk.send(sonic.open())
            await sdk.ready()
            await sdk.send(sonic.text("what time is it"))
            outs = await read_all(sdk, output, until=final_replies(1))
    assert texts(outs, "user", True) == ["what time is it"]
    assert texts(outs, "assistant", True) == ["reply 0"]
    assert speech(outs) == round(REPLY * 24000 * 2)
    assert standin.sessions[0].replies == 1


async def test_a_barge_in_cuts_the_reply_and_is_reported_once(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, loop: Any
) -> None:
    script = SonicScript(turn_audio=TURN, reply_seconds=0.6, chunk_seconds=0.1, barge_in=frozenset({1}))
    with trio.fail_after(10):
        async with standin_and_sdk(script, tmp_path, monkeypatch, loop) as (_, sdk):
            sonic, output = SonicInput(), SonicOutput()
            await sdk.send(sonic.open())
            await sdk.ready()
            await sdk.send(sonic.audio(pcm(2 * TURN)))
            outs = await read_all(sdk, output, until=final_replies(2))
    ends = [o for o in outs if isinstance(o, TurnEnd)]
    assert [end.stop_reason for end in ends] == ["END_TURN", "INTERRUPTED"]
    assert [o for o in outs if isinstance(o, BargeIn)] == [BargeIn(content=ends[1].content)]
    assert texts(outs, "assistant", True) == ["reply 0", "reply"]  # what was spoken of "reply 1"
    assert speech(outs) == round(0.6 * 24000 * 2) + 3 * round(0.1 * 24000 * 2)  # half of the 6 chunks


async def test_a_tool_round_trip(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, loop: Any) -> None:
    script = SonicScript(turn_audio=TURN, reply_seconds=REPLY, tool="clock")
    with trio.fail_after(10):
        async with standin_and_sdk(script, tmp_path, monkeypatch, loop) as (standin, sdk):
            sonic, output = SonicInput(tools=[{"name": "clock", "description": "the time"}]), SonicOutput()
            await sdk.send(sonic.open())
            await sdk.ready()
            await sdk.send(sonic.audio(pcm(TURN)))
            outs = await read_all(sdk, output, until=lambda outs: any(isinstance(o, ToolUse) for o in outs))
            assert outs[-1] == ToolUse(tool_use_id="tool-0", name="clock", arguments={"turn": 0})
            assert speech(outs) == 0  # nothing is said before the tool's result
            await sdk.send(sonic.tool_result("tool-0", {"time": "noon"}))
            outs += await read_all(sdk, output, until=final_replies(1))
    assert texts(outs, "assistant", True) == ['reply 0: {"time": "noon"}']
    assert speech(outs) == round(REPLY * 24000 * 2)
    assert standin.sessions[0].violations == []


async def test_a_reset_before_the_headers_leaves_await_output_pending(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, loop: Any
) -> None:
    with trio.fail_after(10):
        async with standin_and_sdk(SonicScript(fail="reset"), tmp_path, monkeypatch, loop) as (standin, sdk):
            await sdk.send(SonicInput().open())
            with trio.move_on_after(2) as waited:
                await sdk.ready()
            assert waited.cancelled_caught
            await standin.sessions[0].ended.wait()
    assert standin.sessions[0].outcome == "reset"


async def test_an_http_error_status_raises_from_await_output(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, loop: Any
) -> None:
    with trio.fail_after(10):
        async with standin_and_sdk(SonicScript(fail="status"), tmp_path, monkeypatch, loop) as (standin, sdk):
            await sdk.send(SonicInput().open())
            with pytest.raises(ValidationException, match="scripted validationException"):
                await sdk.ready()
    assert standin.sessions[0].outcome == "status"


async def test_an_exception_first_raises_from_receive(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, loop: Any
) -> None:
    script = SonicScript(fail="exception", fail_type="modelTimeoutException")
    with trio.fail_after(10):
        async with standin_and_sdk(script, tmp_path, monkeypatch, loop) as (standin, sdk):
            await sdk.send(SonicInput().open())
            await sdk.ready()
            with pytest.raises(ModelTimeoutException):
                await sdk.receive()
    assert standin.sessions[0].outcome == "exception"


async def test_an_error_after_some_events_ends_the_stream(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, loop: Any
) -> None:
    with trio.fail_after(10):
        async with standin_and_sdk(SonicScript(error_after=6), tmp_path, monkeypatch, loop) as (standin, sdk):
            sonic = SonicInput()
            await sdk.send(sonic.open())  # 5 events
            await sdk.ready()
            await sdk.send(sonic.audio(pcm(0.02)))  # contentStart: the 6th
            with pytest.raises(ModelStreamErrorException):
                await sdk.receive()
            await standin.sessions[0].ended.wait()
    session = standin.sessions[0]
    assert (session.outcome, len(session.events)) == ("error_after", 6)


async def test_the_session_limit_is_a_model_timeout(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, loop: Any
) -> None:
    with trio.fail_after(10):
        async with standin_and_sdk(SonicScript(limit_audio=0.1), tmp_path, monkeypatch, loop) as (standin, sdk):
            sonic = SonicInput()
            await sdk.send(sonic.open())
            await sdk.ready()
            for _ in range(5):
                await sdk.send(sonic.audio(pcm(0.02)))
            with pytest.raises(ModelTimeoutException):
                await sdk.receive()
    session = standin.sessions[0]
    assert (session.outcome, len(session.audio)) == ("limit", 5 * 640)


async def test_a_broken_rule_is_a_validation_exception(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, loop: Any
) -> None:
    opening = SonicInput(history=[Turn(role="user", text="hello")]).open()  # 8 events: 2, system 3, history 3
    early = {"event": {"audioInput": {"promptName": "prompt", "contentName": "mic", "content": "AAA="}}}
    with trio.fail_after(10):
        async with standin_and_sdk(SonicScript(), tmp_path, monkeypatch, loop) as (standin, sdk):
            await sdk.send(opening[:7])  # the history block is still open
            await sdk.ready()
            await sdk.send([early])
            with pytest.raises(ValidationException, match="audioInput outside an open AUDIO block"):
                await sdk.receive()
            await standin.sessions[0].ended.wait()
    session = standin.sessions[0]
    assert session.outcome == "violation"
    assert session.violations == ["input event 7 (audioInput): audioInput outside an open AUDIO block"]
    assert session.events == opening[:7]


async def test_a_slow_ready(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, loop: Any) -> None:
    with trio.fail_after(10):
        async with standin_and_sdk(SonicScript(ready_delay=0.5), tmp_path, monkeypatch, loop) as (standin, sdk):
            await sdk.send(SonicInput().open())
            start = trio.current_time()
            await sdk.ready()
            waited = trio.current_time() - start
    assert 0.5 <= waited < 2
    assert standin.sessions[0].outcome == "disconnected"  # the client went away without sessionEnd


async def test_the_command_line_prints_the_environment_and_serves(tmp_path: pathlib.Path) -> None:
    command = [sys.executable, "-m", "mediagraph.testing.sonic_standin", "--dir", str(tmp_path), "--turn-audio", "2"]
    process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE)
    try:
        output = b""
        with trio.fail_after(10):
            assert process.stdout is not None
            while output.count(b"\n") < 5:
                output += await process.stdout.receive_some()
        lines = output.decode().splitlines()
        names = [line.split("=", 1)[0] for line in lines]
        assert names == [
            f"export {name}"
            for name in (
                "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
                "SSL_CERT_FILE",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_REGION",
            )
        ]
        port = int(lines[0].rsplit(":", 1)[1])
        with trio.fail_after(5):
            await (await trio.open_tcp_stream("127.0.0.1", port)).aclose()
        assert (tmp_path / "sonic-standin-ca.pem").is_file()
    finally:
        process.kill()
        with trio.fail_after(5):
            await process.wait()


def test_the_command_line_rejects_bad_arguments() -> None:
    command = [sys.executable, "-m", "mediagraph.testing.sonic_standin", "--reply-seconds", "-1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert "--reply-seconds: must be more than 0 seconds, not -1" in result.stderr
