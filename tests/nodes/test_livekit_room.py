"""The livekit_room resource, livekit_in and livekit_out against a fake room at the SDK boundary (an
``rtc.EventEmitter`` with ``rtc.Room``'s events, driven from the tests on the room's asyncio loop), with real
``livekit.rtc`` tracks: the "remote" track is a LocalAudioTrack fed with marked audio, read by livekit_in
through a real AudioStream. Hypothesis drives schedules of subscribe, unsubscribe, reconnect, token refresh and
disconnect: the metadata messages arrive in order, cleared exactly once per track, nothing after the room went.
Also: a real rtc.Room against a closed port fails fast and names the room, never the token; credentials are
required, or minted from an API key and secret. On the real clock, each run bounded."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, final

import hypothesis.strategies as st
import numpy as np
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from livekit import rtc

import mediagraph as mg
from mediagraph.testing import Recorder, SinkConfig
from mediagraph.testing.livekit_fakes import FakeRoom, Named

if TYPE_CHECKING:
    from nodes._stream_metadata import StreamMetadata, StreamMetadataCleared
    from nodes.livekit_room import LivekitRoom, LivekitRoomConfig
else:
    from mediagraph.nodes._stream_metadata import StreamMetadata, StreamMetadataCleared
    from mediagraph.nodes.livekit_room import LivekitRoom, LivekitRoomConfig

RATE = 48000
FRAME = 480


@final
class Remote:
    """What a test drives: the fake room (built on the room's loop) and remote tracks fed with marked audio."""

    def __init__(self) -> None:
        self.rooms: list[FakeRoom] = []
        self.room: LivekitRoom | None = None
        self.sources: dict[str, Any] = {}
        self.fed = 0

    def backend(self) -> FakeRoom:
        fake = FakeRoom()
        self.rooms.append(fake)
        return fake

    async def call(self, fn: Any, *args: Any) -> Any:
        assert self.room is not None
        return await self.room.loop.call(fn, *args)

    async def emit(self, event: str, *args: Any) -> None:
        async def emit() -> None:
            self.rooms[0].emit(event, *args)

        await self.call(emit)

    async def subscribe(self, participant: str, sid: str) -> None:
        async def make() -> Any:
            source = rtc.AudioSource(RATE, 1, queue_size_ms=200)
            self.sources[sid] = source
            return rtc.LocalAudioTrack.create_audio_track(sid, source)

        track = await self.call(make)
        await self.emit("track_subscribed", track, Named(sid=sid), Named(identity=participant))

    async def feed(self, sid: str, frames: int) -> None:
        for _ in range(frames):
            k = self.fed
            samples = (np.arange(k, k + FRAME) % 30000 + 1).astype(np.int16)
            self.fed += FRAME
            await self.call(self.sources[sid].capture_frame, rtc.AudioFrame(samples.tobytes(), RATE, 1, FRAME))


@contextlib.asynccontextmanager
async def room_graph(remote: Remote, recorder: Recorder, **room: Any) -> AsyncIterator[mg.RunningGraph]:
    g = mg.Graph("room")
    g.add_resource(
        "lk", "livekit_room", config=LivekitRoomConfig(backend=remote.backend, url="wss://fake", token="t0", **room)
    )
    g.add("listen", "livekit_in", room="lk")
    g.add("audio", "test_sink", config=SinkConfig(recorder=recorder))
    g.add("meta", "test_sink", config=SinkConfig(recorder=recorder))
    g.link("listen.audio", "audio.in")
    g.link("listen.metadata", "meta.in")
    async with mg.open_runtime() as runtime:
        with trio.fail_after(30):
            running = await runtime.start(g)
            remote.room = running.resources.values["lk"]
            await remote.room.join()  # the node joins as it starts; this waits for that connection
            yield running
            await running.wait()


def metadata(recorder: Recorder) -> list[tuple[str, str]]:
    out = []
    for a in recorder.arrivals("meta"):
        m = a.message
        if isinstance(m, StreamMetadata):
            out.append(("on", f"{m.participant}/{m.track_id}/{m.token}"))
        elif isinstance(m, StreamMetadataCleared):
            out.append(("off", m.reason))
    return out


async def test_a_remote_track_s_audio_and_metadata_follow_the_room() -> None:
    remote, recorder = Remote(), Recorder()
    async with room_graph(remote, recorder):
        await remote.subscribe("alice", "TR_a")
        await remote.feed("TR_a", 30)
        await remote.emit("reconnecting")
        await remote.emit("reconnected")
        remote.rooms[0].refresh_token("t1")
        await remote.emit("token_refreshed")
        await trio.sleep(1.0)  # the fed audio (0.3 s, 0.2 s of it queued) plays out in real time: a wide margin
        await remote.emit("track_unsubscribed", None, Named(sid="TR_a"), Named(identity="alice"))
        await remote.emit("disconnected", "CLIENT_INITIATED")
    assert metadata(recorder) == [
        ("on", "alice/TR_a/t0"),
        ("on", "alice/TR_a/t0"),  # after the reconnect
        ("on", "alice/TR_a/t1"),  # the refreshed token
        ("off", "track unsubscribed"),
    ]
    frames = [a.message for a in recorder.arrivals("audio")]
    stamps = [f.timestamp for f in frames]
    assert stamps == list(range(0, FRAME * len(frames), FRAME)), "counted 10 ms frames"
    heard = np.concatenate([f.samples[:, 0] for f in frames])
    marked = heard[heard != 0]
    assert np.array_equal(marked, np.arange(1, len(marked) + 1)), "the remote audio, in order, nothing twice"
    assert len(marked) >= 25 * FRAME


async def test_livekit_out_publishes_its_track_into_the_room() -> None:
    remote = Remote()
    g = mg.Graph("out")
    g.add_resource("lk", "livekit_room", config=LivekitRoomConfig(backend=remote.backend, url="wss://fake", token="t0"))
    g.add("tone", "tone_source", duration=0.2)
    g.add("out", "livekit_out", room="lk")
    g.link("tone.audio", "out.audio")
    log = mg.EventLog()
    with trio.fail_after(30):
        await mg.run(g, log=log)
    (published,) = remote.rooms[0].local_participant.published
    assert isinstance(published, rtc.LocalAudioTrack)
    assert [(e.fields["room"], e.fields["track"]) for e in log.of("track_published", "out")] == [
        ("fake-room", "TR_local_1")
    ]


ACTIONS = st.lists(st.sampled_from(["subscribe", "subscribe_other", "unsubscribe", "reconnect", "refresh"]), max_size=8)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ACTIONS)
async def test_metadata_is_in_order_and_cleared_once_whatever_the_room_does(actions: list[str]) -> None:
    remote, recorder = Remote(), Recorder()
    live: str | None = None  # the track livekit_in takes (the first subscribed while none is on)
    expected: list[tuple[str, str]] = []
    token, n = "t0", 0
    async with room_graph(remote, recorder):
        for action in actions:
            n += 1
            if action.startswith("subscribe"):
                who = "alice" if action == "subscribe" else "bob"
                await remote.subscribe(who, f"TR_{n}")
                if live is None:
                    live = f"{who}/TR_{n}"
                    expected.append(("on", f"{live}/{token}"))
            elif action == "unsubscribe" and live is not None:
                who, sid = live.split("/")
                await remote.emit("track_unsubscribed", None, Named(sid=sid), Named(identity=who))
                expected.append(("off", "track unsubscribed"))
                live = None
            elif action == "reconnect":
                await remote.emit("reconnected")
                if live is not None:
                    expected.append(("on", f"{live}/{token}"))
            elif action == "refresh":
                token = f"t{n}"
                remote.rooms[0].refresh_token(token)
                await remote.emit("token_refreshed")
                if live is not None:
                    expected.append(("on", f"{live}/{token}"))
        await remote.emit("disconnected", "SERVER_SHUTDOWN")
        if live is not None:
            expected.append(("off", "room left"))
    assert metadata(recorder) == expected


async def test_a_real_room_against_a_closed_port_fails_fast_naming_the_room_never_the_token() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    g = mg.Graph("g")
    g.add_resource("lk", "livekit_room", url=f"ws://127.0.0.1:{port}", token="secret-token-value", connect_timeout=5)
    g.add("listen", "livekit_in", room="lk")
    g.add("sink", "null_sink")
    g.link("listen.audio", "sink.audio")
    t0 = trio.current_time()
    with trio.fail_after(20), pytest.raises(mg.NodeFailedError) as caught:
        await mg.run(g)
    message = str(caught.value)
    assert "livekit_room 'mediagraph': connecting to ws://127.0.0.1:" in message and "failed" in message
    assert "secret-token-value" not in message
    assert trio.current_time() - t0 < 5


async def test_credentials_are_required_or_minted(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LIVEKIT_URL", "LIVEKIT_TOKEN", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
        monkeypatch.delenv(name, raising=False)
    room = LivekitRoom(LivekitRoomConfig())
    try:
        with pytest.raises(mg.ProviderError, match="a url and a token: give url/token, or set LIVEKIT_URL"):
            await room.join()
    finally:
        room.close()
    monkeypatch.setenv("LIVEKIT_URL", "ws://127.0.0.1:1")
    monkeypatch.setenv("LIVEKIT_API_KEY", "devkey")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "a-secret-long-enough-for-hs256-0123456789")
    from livekit import api

    url, token = LivekitRoom(LivekitRoomConfig(room="demo", identity="agent"))._credentials()
    claims = api.TokenVerifier("devkey", "a-secret-long-enough-for-hs256-0123456789").verify(token)
    assert url == "ws://127.0.0.1:1" and claims.identity == "agent"
    assert claims.video is not None and claims.video.room == "demo"


def test_the_ready_made_livekit_graph_checks_offline_and_refuses_the_virtual_clock(tmp_path: Path) -> None:
    graph = Path(__file__).resolve().parents[2] / "graphs" / "livekit_agent.yaml"
    command = [sys.executable, "-m", "mediagraph"]
    checked = subprocess.run([*command, "check", graph], capture_output=True, text=True, timeout=60, check=False)
    assert checked.returncode == 0 and checked.stdout.startswith(f"{graph}: ok: "), checked.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
    ran = subprocess.run(
        [*command, "run", graph, "--clock", "virtual"], capture_output=True, text=True, timeout=60, check=False, env=env
    )
    assert ran.returncode == 1 and "run it on the real clock" in ran.stderr
