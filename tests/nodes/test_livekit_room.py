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
from fractions import Fraction
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
    from nodes._pattern import Pattern, read_code
    from nodes._stream_metadata import StreamMetadata, StreamMetadataCleared
    from nodes.livekit_room import LivekitRoom, LivekitRoomConfig
else:
    from mediagraph.nodes._pattern import Pattern, read_code
    from mediagraph.nodes._stream_metadata import StreamMetadata, StreamMetadataCleared
    from mediagraph.nodes.livekit_room import LivekitRoom, LivekitRoomConfig

RATE = 48000
FRAME = 480
PATTERN = Pattern(160, 120)
GRAPHS = Path(__file__).resolve().parents[2] / "graphs"


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

    async def subscribe_video(self, participant: str, sid: str) -> None:
        async def make() -> Any:
            source = rtc.VideoSource(160, 120)
            self.sources[sid] = source
            return rtc.LocalVideoTrack.create_video_track(sid, source)

        track = await self.call(make)
        await self.emit("track_subscribed", track, Named(sid=sid), Named(identity=participant))

    async def show(self, sid: str, indices: range) -> None:
        """Pattern pictures carrying ``indices``, 25 a second (the stream delivers what is captured while read)."""
        for index in indices:
            picture = mg.VideoFrame(pixels=PATTERN.draw(index, 40 * index), pts=index, time_base=1).to_rtc()
            await self.call(_capture_picture, self.sources[sid], picture)
            await trio.sleep(0.04)

    async def feed(self, sid: str, frames: int) -> None:
        for _ in range(frames):
            k = self.fed
            samples = (np.arange(k, k + FRAME) % 30000 + 1).astype(np.int16)
            self.fed += FRAME
            await self.call(self.sources[sid].capture_frame, rtc.AudioFrame(samples.tobytes(), RATE, 1, FRAME))


async def _capture_picture(source: Any, picture: Any) -> None:  # on the room's loop
    source.capture_frame(picture)


@contextlib.asynccontextmanager
async def room_graph(
    remote: Remote, recorder: Recorder, *, video: bool = False, **room: Any
) -> AsyncIterator[mg.RunningGraph]:
    g = mg.Graph("room")
    g.add_resource(
        "lk", "livekit_room", config=LivekitRoomConfig(backend=remote.backend, url="wss://fake", token="t0", **room)
    )
    g.add("listen", "livekit_in", room="lk", video=video)
    g.add("audio", "test_sink", config=SinkConfig(recorder=recorder))
    g.add("meta", "test_sink", config=SinkConfig(recorder=recorder))
    g.link("listen.audio", "audio.in")
    g.link("listen.metadata", "meta.in")
    if video:
        g.add("video", "test_sink", config=SinkConfig(recorder=recorder))
        g.link("listen.video", "video.in")
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


async def test_the_participant_s_video_comes_with_its_audio_and_others_are_left_alone() -> None:
    # alice's audio, then bob's video (not alice's: left), then alice's video: taken; its pictures in order,
    # pts in microseconds from the first; the metadata is the audio track's only.
    remote, recorder = Remote(), Recorder()
    async with room_graph(remote, recorder, video=True):
        await remote.subscribe("alice", "TR_a")
        await remote.subscribe_video("bob", "TR_bv")
        await remote.subscribe_video("alice", "TR_av")
        await remote.feed("TR_a", 10)
        await remote.show("TR_bv", range(100, 103))
        await remote.show("TR_av", range(12))
        await trio.sleep(0.2)
        await remote.emit("track_unsubscribed", None, Named(sid="TR_av"), Named(identity="alice"))
        await remote.show("TR_bv", range(103, 106))
        await remote.emit("disconnected", "CLIENT_INITIATED")
    assert metadata(recorder) == [("on", "alice/TR_a/t0"), ("off", "room left")]
    pictures = [a.message for a in recorder.arrivals("video")]
    while pictures and not pictures[0].pixels.any():  # the SDK's stream may open on a black picture
        pictures.pop(0)
    codes = [read_code(p.pixels) for p in pictures]
    indices = [code[0] for code in codes if code is not None]
    assert len(indices) == len(codes), "whole pictures"
    assert indices == sorted(set(indices)) and set(indices) <= set(range(12)), indices
    assert len(indices) >= 8, indices
    stamps = [p.pts for p in pictures]
    assert stamps == sorted(stamps) and pictures[0].time_base == Fraction(1, 1_000_000)
    assert stamps[-1] - stamps[0] == pytest.approx(40_000 * (indices[-1] - indices[0]), abs=30_000), stamps


async def test_livekit_out_publishes_its_track_into_the_room() -> None:
    remote = Remote()
    g = mg.Graph("out")
    g.add_resource("lk", "livekit_room", config=LivekitRoomConfig(backend=remote.backend, url="wss://fake", token="t0"))
    g.add("tone", "tone_source", duration=0.2)
    g.add("face", "video_source", fps=25, duration=0.2)
    g.add("out", "livekit_out", room="lk", video=True)
    g.link("tone.audio", "out.audio")
    g.link("face.video", "out.video")
    log = mg.EventLog()
    with trio.fail_after(30):
        await mg.run(g, log=log)
    audio, video = remote.rooms[0].local_participant.published
    assert isinstance(audio, rtc.LocalAudioTrack) and isinstance(video, rtc.LocalVideoTrack)
    assert [(e.fields["room"], e.fields["track"], e.fields["name"]) for e in log.of("track_published", "out")] == [
        ("fake-room", "TR_local_1", "mediagraph"),
        ("fake-room", "TR_local_2", "mediagraph-video"),
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


async def test_the_avatar_graph_publishes_a_voice_and_the_face_that_goes_with_it(tmp_path: Path) -> None:
    # graphs/livekit_avatar.yaml on the fake room for 3.5 s: both tracks published; the room's video track
    # carries the avatar's pictures (read back through a VideoStream on it), in order, while the voice plays.
    remote = Remote()
    gf = mg.load_graph(GRAPHS / "livekit_avatar.yaml", overrides=[mg.Override.parse(f"recorder.path={tmp_path}/a.mp4")])
    room = LivekitRoomConfig(backend=remote.backend, url="wss://fake", token="t0")
    resources = {**gf.graph.resources, "room": mg.ResourceSpec(name="room", type="livekit_room", config=room)}
    graph = mg.Graph(gf.graph.name)
    graph.resources, graph.nodes, graph.links = resources, dict(gf.graph.nodes), list(gf.graph.links)
    seen: list[int] = []

    async def watch(running: mg.RunningGraph) -> None:
        lk: LivekitRoom = running.resources.values["room"]
        published = remote.rooms[0].local_participant.published if remote.rooms else []
        while len(published) < 2:
            await trio.sleep(0.01)
            published = remote.rooms[0].local_participant.published if remote.rooms else []

        async def open_stream() -> Any:
            return rtc.VideoStream(published[1], format=rtc.VideoBufferType.RGB24)

        stream = await lk.loop.call(open_stream)
        try:
            while True:
                event = await lk.loop.call(stream.__anext__)
                code = read_code(mg.VideoFrame.from_rtc(event.frame, pts=0).pixels)
                if code is not None:
                    seen.append(code[0])
        finally:
            with trio.CancelScope(shield=True):
                await lk.loop.call(stream.aclose)

    log = mg.EventLog()
    async with mg.open_runtime() as runtime:
        with trio.fail_after(30):
            running = await runtime.start(graph, log=log)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch, running)
                await trio.sleep(3.5)
                nursery.cancel_scope.cancel()
            running.stop()
            await running.wait()
    names = [e.fields["name"] for e in log.of("track_published", "agent")]
    assert names == ["avatar", "avatar-video"]
    assert log.of("playback_started", "agent"), "the voice played"
    assert len(seen) >= 10 and seen == sorted(set(seen)), seen


@pytest.mark.parametrize("name", ["livekit_agent.yaml", "livekit_avatar.yaml"])
def test_the_ready_made_livekit_graphs_check_offline_and_refuse_the_virtual_clock(name: str) -> None:
    graph = GRAPHS / name
    command = [sys.executable, "-m", "mediagraph"]
    checked = subprocess.run([*command, "check", graph], capture_output=True, text=True, timeout=60, check=False)
    assert checked.returncode == 0 and checked.stdout.startswith(f"{graph}: ok: "), checked.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}
    ran = subprocess.run(
        [*command, "run", graph, "--clock", "virtual"], capture_output=True, text=True, timeout=60, check=False, env=env
    )
    assert ran.returncode == 1 and "run it on the real clock" in ran.stderr
