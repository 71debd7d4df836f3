"""The recorder's subtitles: the core against a simple reference (property), then the recorder end to end on the
virtual clock: cues where the agent's audio is in the recording, interrupted cues ending at the cut, finalized on
completion, stop, cancel and failure elsewhere, never a partial file under the final name, and an in-progress
file that parses at any moment (what a killed process would leave)."""

from __future__ import annotations

import re
import shutil
import wave
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import hypothesis.strategies as st
import numpy as np
import numpy.typing as npt
import pytest
import trio
import trio.testing
from hypothesis import given, note, settings

import mediagraph as mg
from mediagraph.testing import Cancel, Cue, FaultSpec, SourceConfig, Stop, capture, read_vtt

if TYPE_CHECKING:
    from nodes._subtitles import Subtitles
else:
    from mediagraph.nodes._subtitles import Subtitles

RATE = 48000
Samples = npt.NDArray[np.int16]


def one_line(text: str) -> str:
    """The reference for cue text: one line, whitespace runs as one space; NUL read as U+FFFD."""
    return re.sub(r"\s+", " ", text.replace("\0", "\ufffd")).strip()


# --- the core, against a reference ------------------------------------------------------------------------

PIECES = ["a", "é", " ", "\n", "\r", "\t", "-", ">", "<", "&", "\0", "\u2028", "\x85", "word", "-->", "&amp;"]
TEXT = st.lists(st.sampled_from(PIECES), max_size=12).map("".join) | st.text(max_size=8)
TRANSCRIPT = st.tuples(
    st.none() | st.integers(0, 4 * 3600 * 1000).map(lambda ms: ms / 1000) | st.floats(0, 100),  # start
    st.floats(0, 60) | st.sampled_from([0.0, 0.0004, 0.0005, 1.0]),  # position
    st.booleans(),  # interrupted
    TEXT,
)


@settings(max_examples=300)
@given(transcripts=st.lists(TRANSCRIPT, max_size=12))
def test_the_core_writes_each_heard_transcript_as_a_cue_in_time_order_that_parses_back(
    transcripts: list[tuple[float | None, float, bool, str]],
) -> None:
    core = Subtitles()
    appended = ""
    want: list[Cue] = []
    untimed = 0
    for segment, (start, position, interrupted, text) in enumerate(transcripts):
        msg = mg.Transcript(segment=segment, interrupted=interrupted, position=position, text=text, start=start)
        appended += core.transcript(msg)
        if not one_line(text):
            continue
        if start is None:  # no agent stream fed: it cannot be placed
            untimed += 1
            continue
        begin = round(start * 1000)
        want.append((begin, max(begin + 1, round((start + position) * 1000)), one_line(text)))
    want.sort(key=lambda cue: cue[0])  # stable: equal starts stay in arrival order
    note(f"want: {want}")
    assert read_vtt(core.document()) == want
    as_appended = read_vtt("WEBVTT\n" + appended)  # what the in-progress file holds
    assert sorted(as_appended, key=lambda cue: cue[0]) == want
    assert core.in_order == (as_appended == want)
    assert core.statistics() == {"cues": len(want), "untimed_cues": untimed}


def test_a_transcript_without_start_takes_its_counted_segments_first_frame() -> None:
    """Segments numbered as the recorder numbers them for playback events without ``start``: a frame after a
    boundary opens one, a flush closes it (or uses a number for an empty one), an interrupt closes the open one."""
    core = Subtitles()

    def frames(at: float, count: int) -> None:
        for i in range(count):
            samples = np.ones((160, 1), np.int16)
            core.agent(
                mg.AudioFrame(samples=samples, sample_rate=16000, channels=1, timestamp=round(at * 16000) + i * 160)
            )

    frames(0.25, 5)  # segment 0
    core.agent(mg.Flush())
    frames(2.0, 3)  # segment 1, cut
    core.agent(mg.Interrupt())
    core.agent(mg.Interrupt())  # nothing open: no number used
    core.agent(mg.Flush())  # segment 2, empty
    frames(5.5, 2)  # segment 3, ended by the end of the stream
    core.end_agent()
    heard = [(0, 0.05, "one"), (1, 0.01, "two"), (2, 0.0, ""), (3, 0.02, "four"), (9, 1.0, "nowhere")]
    for segment, position, text in heard:
        core.transcript(mg.Transcript(segment=segment, position=position, text=text))
    assert read_vtt(core.document()) == [(250, 300, "one"), (2000, 2010, "two"), (5500, 5520, "four")]
    assert core.statistics() == {"cues": 3, "untimed_cues": 1}  # segment 9 was never seen
    # Once a transcript says where its segment is, counting stops: later ones without start are untimed.
    core.transcript(mg.Transcript(segment=4, position=1.0, text="five", start=7.0))
    frames(9.0, 1)
    core.transcript(mg.Transcript(segment=5, position=1.0, text="six"))
    assert core.statistics() == {"cues": 4, "untimed_cues": 2}


# --- the recorder, end to end -----------------------------------------------------------------------------


#: The outlets of the scripted source (``test_messages``).
OUTLETS = {"user": mg.AudioFrame, "agent": mg.AudioFrame, "playback": mg.PLAYBACK_TYPES, "transcript": mg.Transcript}


def utterance(begin: float, seconds: float, value: int) -> list[tuple[float, str, Any]]:
    """The agent's audio at media time ``begin``, sent in real time from graph time ``begin``."""
    steps: list[tuple[float, str, Any]] = []
    for i in range(round(seconds * 100)):
        samples = np.full((480, 1), value, np.int16)
        msg = mg.AudioFrame(samples=samples, sample_rate=RATE, channels=1, timestamp=round(begin * RATE) + i * 480)
        steps.append((begin + i * 0.01, "agent", msg))
    return steps


HEARD = "how are you?\n\n--> <b>fine</b> &\twell"
#: A barge-in 0.4 s into the first reply (media [0.5, 1.0) sent, [0.5, 0.9) played), a second reply played out,
#: a transcript the recorder cannot place, a transcript with nothing heard.
CONVERSATION: list[tuple[float, str, Any]] = [
    *utterance(0.5, 0.5, 1000),
    (0.5, "playback", mg.PlaybackStarted(segment=0, t=0.5, start=0.5)),
    (1.0, "agent", mg.Interrupt()),
    (1.0, "playback", mg.PlaybackFinished(segment=0, position=0.4, interrupted=True, t=1.0, start=0.5, sent=0.5)),
    (1.0, "transcript", mg.Transcript(segment=0, interrupted=True, position=0.4, text="hello there", start=0.5, t=1)),
    *utterance(2.0, 0.6, 2000),
    (2.6, "agent", mg.Flush()),
    (2.6, "playback", mg.PlaybackStarted(segment=1, generation=1, t=2.0, start=2.0)),
    (
        2.6,
        "playback",
        mg.PlaybackFinished(segment=1, generation=1, position=0.6, interrupted=False, t=2.6, start=2.0, sent=0.6),
    ),
    (2.6, "transcript", mg.Transcript(segment=1, generation=1, position=0.6, text=HEARD, start=2.0, t=2.6)),
    (2.7, "transcript", mg.Transcript(segment=2, generation=1, position=0.3, text="unplaced")),
    (2.8, "transcript", mg.Transcript(segment=3, generation=1, interrupted=True, text=" \n ", start=3.0, t=2.8)),
]
WANT = [(500, 900, "hello there"), (2000, 2600, "how are you? --> <b>fine</b> & well")]


def recorder_graph(out: Path, steps: list[tuple[float, str, Any]]) -> mg.Graph:
    g = mg.Graph()
    g.add("script", "test_messages", outlets=OUTLETS, steps=steps)
    g.add("rec", "recorder", path=out)
    for port in ("agent", "playback", "transcript"):
        g.link(f"script.{port}", f"rec.{port}")
    return g


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def read_wav(path: Path) -> Samples:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).reshape(-1, 2)


def read_with_ffmpeg(path: Path) -> list[Cue]:
    """The cues as FFmpeg's WebVTT demuxer reads them (an independent parser): times in ms, text unescaped."""
    with av.open(str(path), format="webvtt") as container:
        stream = container.streams.subtitles[0]
        assert stream.time_base is not None
        assert (stream.time_base.numerator, stream.time_base.denominator) == (1, 1000)
        cues = []
        for packet in container.demux(stream):
            if packet.size:
                assert packet.pts is not None and packet.duration is not None
                cues.append((packet.pts, packet.pts + packet.duration, bytes(packet).decode()))
    return [(a, b, t.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")) for a, b, t in cues]


def check_files(out: Path, log: mg.EventLog, cues: list[Cue]) -> None:
    vtt = out.with_suffix(".vtt")
    assert not Path(f"{out}.part").exists() and not Path(f"{vtt}.part").exists()
    assert read_vtt(vtt.read_text(encoding="utf-8")) == cues
    assert read_with_ffmpeg(vtt) == cues
    (done,) = log.of("recording_finished")
    assert (done.fields["subtitles"], done.fields["cues"]) == (str(vtt), len(cues))
    # Each cue lies exactly over the agent audio the recording keeps of its segment.
    agent = read_wav(out)[:, 1]
    for start, end, _ in cues:
        a, b = start * RATE // 1000, end * RATE // 1000
        assert agent[a:b].all() and not agent[a - 1] and not agent[b : b + 1].any(), (start, end)


@pytest.mark.parametrize("ending", ["completed", "stopped", "cancelled", "failed"])
async def test_the_subtitles_are_complete_under_their_name_however_the_graph_ends(
    tmp_path: Path, ending: str, autojump_clock: trio.testing.MockClock
) -> None:
    out = tmp_path / "call.wav"
    steps = list(CONVERSATION)
    if ending != "completed":
        steps.append((60.0, "user", mg.Flush()))  # keeps the script running until the end comes
    g = recorder_graph(out, steps)
    if ending == "failed":
        g.add("doomed", "test_source", config=SourceConfig(count=1000, paced=True, fault=FaultSpec(at=300)))
        g.add("sink", "test_sink")
        g.link("doomed.out", "sink.in")
    schedules: dict[str, Stop | Cancel] = {"stopped": Stop(at=3.0), "cancelled": Cancel(at=3.0)}
    schedule = schedules.get(ending)
    with trio.fail_after(120):
        captured = await capture(g, schedule=schedule)
    assert captured.reason == ending
    if ending == "failed":
        assert captured.error is not None and captured.error.node == "doomed"
    check_files(out, captured.log, WANT)
    (started,) = captured.log.of("recording_started")
    assert started.fields["subtitles"] == str(tmp_path / "call.vtt")
    assert started.fields["subtitles_part"] == str(tmp_path / "call.vtt.part")
    assert captured.log.of("recording_finished")[0].fields["untimed_cues"] == 1


async def test_the_in_progress_subtitles_parse_at_any_moment_and_never_appear_under_the_final_name(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    out = tmp_path / "call.ogg"
    vtt, part = tmp_path / "call.vtt", tmp_path / "call.vtt.part"
    steps = [*CONVERSATION, (60.0, "user", mg.Flush())]
    seen = []
    async with mg.open_runtime() as runtime:
        running = await runtime.start(recorder_graph(out, steps))
        for at in (0.2, 1.5, 3.0):
            await trio.sleep_until(running.t0 + at)
            assert not vtt.exists(), "nothing under the final name until finalized"
            snapshot = tmp_path / f"snapshot{at}.vtt"
            shutil.copy(part, snapshot)  # what a process killed now would leave
            seen.append(read_vtt(snapshot.read_text(encoding="utf-8")))
            assert read_with_ffmpeg(snapshot) == seen[-1]
        running.cancel()
    assert seen == [[], WANT[:1], WANT]
    assert vtt.exists() and not part.exists()
    assert read_vtt(vtt.read_text(encoding="utf-8")) == WANT


async def test_cues_that_come_out_of_order_are_sorted_in_the_final_file(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    out = tmp_path / "call.wav"
    steps: list[tuple[float, str, Any]] = [
        *utterance(0.0, 0.2, 500),
        (0.2, "transcript", mg.Transcript(segment=1, position=0.1, text="later", start=1.0)),
        (0.3, "transcript", mg.Transcript(segment=0, position=0.2, text="earlier", start=0.0)),
    ]
    g = mg.Graph()
    g.add("script", "test_messages", outlets=OUTLETS, steps=steps)
    g.add("rec", "recorder", path=out)
    g.link("script.agent", "rec.agent")
    g.link("script.transcript", "rec.transcript")
    result = await mg.run(g)
    want = [(0, 200, "earlier"), (1000, 1100, "later")]
    assert read_vtt((tmp_path / "call.vtt").read_text(encoding="utf-8")) == want
    assert read_with_ffmpeg(tmp_path / "call.vtt") == want
    assert result.log.of("recording_finished")[0].fields["cues"] == 2


async def test_a_sink_that_does_not_stamp_its_events_still_gets_its_cues_placed(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """No ``start`` anywhere: the recorder trims by its counted segments, and places the cues by the same count."""
    steps = [
        *[s for s in CONVERSATION if s[1] == "agent"],
        (1.0, "playback", mg.PlaybackFinished(segment=0, position=0.4, interrupted=True)),
        (1.0, "transcript", mg.Transcript(segment=0, interrupted=True, position=0.4, text="hello there")),
        (2.6, "playback", mg.PlaybackFinished(segment=1, position=0.6, interrupted=False)),
        (2.6, "transcript", mg.Transcript(segment=1, position=0.6, text="fine")),
    ]
    steps.sort(key=lambda step: step[0])
    out = tmp_path / "call.wav"
    result = await mg.run(recorder_graph(out, steps))
    check_files(out, result.log, [(500, 900, "hello there"), (2000, 2600, "fine")])
    assert result.log.of("recording_finished")[0].fields["untimed_cues"] == 0


async def test_without_a_transcript_link_no_subtitles_are_written(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    g = mg.Graph()
    g.add("script", "test_messages", outlets=OUTLETS, steps=utterance(0.0, 0.1, 1))
    g.add("rec", "recorder", path=tmp_path / "call.wav")
    g.link("script.agent", "rec.agent")
    result = await mg.run(g)
    assert names(tmp_path) == ["call.wav"]
    assert "subtitles" not in result.log.of("recording_started")[0].fields
    assert "cues" not in result.log.of("recording_finished")[0].fields


async def test_a_symbolic_link_at_the_subtitles_path_is_refused_and_nothing_is_recorded(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    (tmp_path / "call.vtt").symlink_to(target)
    with pytest.raises(mg.NodeFailedError) as info:
        await mg.run(recorder_graph(tmp_path / "call.wav", CONVERSATION))
    assert isinstance(info.value.__cause__, mg.ProviderError)
    assert "symbolic link" in str(info.value) and str(tmp_path / "call.vtt") in str(info.value)
    assert target.read_text() == "keep me"
    assert names(tmp_path) == ["call.vtt", "precious.txt"]


async def test_when_the_recording_cannot_be_created_no_subtitles_are_left(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    (tmp_path / "call.wav").mkdir()
    with pytest.raises(mg.NodeFailedError, match="it is a folder"):
        await mg.run(recorder_graph(tmp_path / "call.wav", CONVERSATION))
    assert names(tmp_path) == ["call.wav"]


@pytest.mark.parametrize(("full", "room"), [(".wav", 300_000), (".vtt", 60)])
async def test_a_full_disk_leaves_both_files_in_progress_or_the_recording_complete_and_names_the_file(
    tmp_path: Path,
    full: str,
    room: int,
    full_disk: Callable[[int, str | None], None],
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The recording fails at about 1.5 s: its subtitles stay in progress with it. The subtitles fail at their
    second cue (2.6 s): the recording is complete under its name, the subtitles in progress."""
    full_disk(room, full)
    out = tmp_path / "call.wav"
    log = mg.EventLog()
    with pytest.raises(mg.NodeFailedError) as info:
        await mg.run(recorder_graph(out, CONVERSATION), log=log)
    assert info.value.node == "rec"
    failed = out.with_suffix(full)
    assert str(info.value.__cause__).startswith(f"writing {'recording' if full == '.wav' else 'subtitles'} '{failed}'")
    if full == ".wav":  # nothing is complete: the recording failed, and its subtitles stay in progress with it
        assert [e.fields["path"] for e in log.of("recording_failed")] == [str(failed)]
        assert not log.of("recording_finished") and not log.of("subtitles_failed")
    else:  # the recording is complete and says so; the subtitles failed and say where what they hold is
        assert [e.fields["path"] for e in log.of("recording_finished")] == [str(out)]
        assert "subtitles" not in log.of("recording_finished")[0].fields
        assert [(e.fields["path"], e.fields["part"]) for e in log.of("subtitles_failed")] == [
            (str(failed), str(failed) + ".part")
        ]
        assert not log.of("recording_failed")
    assert names(tmp_path) == (["call.vtt.part", "call.wav.part"] if full == ".wav" else ["call.vtt.part", "call.wav"])
    assert read_vtt((tmp_path / "call.vtt.part").read_text(encoding="utf-8")) == WANT[:1]
