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
    from nodes._sonic_output import BargeIn, Out, SonicOutput, Speech, Text, ToolUse
    from nodes._sonic_protocol import SonicInput
else:
    from mediagraph.nodes._sonic_output import BargeIn, Out, SonicOutput, Speech, Text, ToolUse
    from mediagraph.nodes._sonic_protocol import SonicInput

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
            await self.loop.call(self.stream.input_stream.send, InvokeModelWithBidirectionalStreamInputChunk(value=part))

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
        try:
            with loop.session(sdk):
                with trio.fail_after(5):
                    await sdk.open()
                yield standin, sdk
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                await sdk.close()
                await loop.reap(sdk)
            nursery.cancel_scope.cancel()


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
