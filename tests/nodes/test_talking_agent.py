"""graphs/talking_agent.yaml end to end, with real speech: text_source → speech → transcript_sync → slot(speaker),
a recorder with subtitles, a barge-in and a mid-sentence speaker swap.

The transcript is checked against what is in the recording, independently of espeak's own word timings:
pocketsphinx aligns each sentence's words in the synthesized audio, and the words heard of a segment are those
whose aligned start lies in the part of the sentence the recording holds for that segment.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pytest
import soxr
import yaml

if TYPE_CHECKING:
    from nodes._espeak import ENGINE
else:
    from mediagraph.nodes._espeak import ENGINE
from pocketsphinx import Decoder

from mediagraph.testing import read_vtt

GRAPHS = Path(__file__).resolve().parents[2] / "graphs"
COMMAND = [sys.executable, "-m", "mediagraph"]
RATE = 48000
#: How far apart pocketsphinx and the cut must be for a word to count as surely heard or surely not.
MARGIN = 0.04


def run(tmp_path: Path, *clock: str) -> tuple[list[dict[str, Any]], Path]:
    shutil.copytree(GRAPHS, tmp_path / "graphs", ignore=shutil.ignore_patterns("out"))
    graph = tmp_path / "graphs" / "talking_agent.yaml"
    ran = subprocess.run(
        [*COMMAND, "run", str(graph), *clock, "--events", "ev.jsonl"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    events = [json.loads(line) for line in (tmp_path / "ev.jsonl").read_text().splitlines()]
    return events, tmp_path / "graphs" / "out"


def words_of(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def aligned_starts(sentence: str) -> list[tuple[str, float]]:
    """Each word of ``sentence`` and where pocketsphinx finds it starting in espeak's audio of it (seconds)."""
    synthesis = ENGINE.synthesize(sentence, voice="en-us", rate=175, pitch=50)
    audio = soxr.resample(synthesis.samples.astype(np.float32) / 32768, synthesis.sample_rate, 16000)
    raw = (np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes()
    decoder = Decoder(samprate=16000, bestpath=False, beam=1e-80, wbeam=1e-60, pbeam=1e-80, loglevel="FATAL")
    decoder.set_align_text(" ".join(words_of(sentence)))
    for second in (False, True):  # a first pass finds the words, the second aligns them (pocketsphinx's recipe)
        if second:
            decoder.set_alignment()
        decoder.start_utt()
        decoder.process_raw(raw, full_utt=True)
        decoder.end_utt()
    found = [
        (w.name.split("(")[0], w.start / 100) for w in decoder.get_alignment() if w.name not in ("<s>", "</s>", "<sil>")
    ]
    assert [w for w, _ in found] == words_of(sentence)
    return found


def read_wav(path: Path) -> npt.NDArray[np.int16]:
    with wave.open(str(path)) as f:
        assert (f.getframerate(), f.getnchannels()) == (RATE, 2)
        return np.frombuffer(f.readframes(f.getnframes()), np.int16).reshape(-1, 2)


def cues(path: Path) -> list[tuple[float, float, str]]:
    return [(start / 1000, end / 1000, text) for start, end, text in read_vtt(path.read_text())]


def rms(samples: npt.NDArray[np.int16]) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if len(samples) else 0.0


def test_the_transcript_and_subtitles_hold_exactly_the_words_the_recording_holds(tmp_path: Path) -> None:
    events, out = run(tmp_path, "--clock", "virtual")
    transcripts = [e for e in events if e["event"] == "transcript_finished"]
    finishes = {e["segment"]: e for e in events if e["event"] == "playback_finished" and e["node"] == "out"}
    assert [t["segment"] for t in transcripts] == sorted(finishes) == [0, 1, 2, 3]
    assert [(t["interrupted"]) for t in transcripts] == [False, True, True, False]  # barge-in, then the cut swap

    # The subtitles say what the log says, on the recording's timeline.
    subtitles = cues(out / "talking_agent.vtt")
    assert [text for _, _, text in subtitles] == [t["text"] for t in transcripts]
    for (begin, end, _), t in zip(subtitles, transcripts, strict=True):
        start = t["start"]
        assert begin == pytest.approx(start, abs=1e-3) and end == pytest.approx(start + t["position"], abs=1e-3)

    # The recording's agent channel holds each segment's voice up to the cut, and nothing of it after.
    agent = read_wav(out / "talking_agent.wav")[:, 1]
    for t, after in zip(transcripts, [*transcripts[1:], None], strict=True):
        start, played = t["start"], t["position"]
        heard = agent[round(start * RATE) : round((start + played) * RATE)]
        assert rms(heard) > 500, t
        cut = round((start + played) * RATE)
        if t["interrupted"] and (after is None or after["start"] * RATE > cut + RATE // 10):
            assert not agent[cut : cut + RATE // 10].any(), t  # trimmed: the rest was never played

    # Independently of espeak's timings: the words pocketsphinx finds in the part each segment played.
    script = yaml.safe_load((GRAPHS / "talking_agent.yaml").read_text())["nodes"]["script"]["script"]
    sentences = [entry["text"] for entry in script]
    by_sentence = {0: [0], 1: [1], 2: [2, 3]}  # the swap split the last sentence into two segments
    for index, segments in by_sentence.items():
        starts = aligned_starts(sentences[index])
        origin = transcripts[segments[0]]["start"]
        for seg in segments:
            t = transcripts[seg]
            begin = t["start"] - origin
            end = begin + t["position"] if t["interrupted"] else float("inf")
            assert all(abs(at - edge) > MARGIN for _, at in starts for edge in (begin, end) if edge > 0), (seg, starts)
            assert words_of(t["text"]) == [w for w, at in starts if begin <= at < end], (seg, starts)


def test_it_runs_on_the_real_clock_with_the_same_transcripts(tmp_path: Path) -> None:
    virtual, _ = run(tmp_path / "virtual", "--clock", "virtual")
    real, out = run(tmp_path / "real")
    said = [[e["text"] for e in log if e["event"] == "transcript_finished"] for log in (virtual, real)]
    assert said[0] == said[1]
    assert (out / "talking_agent.wav").exists() and (out / "talking_agent.vtt").exists()


def test_subtitles_killed_with_sigkill_keep_every_cue_heard_so_far(tmp_path: Path) -> None:
    """Killed once two transcripts are logged: the subtitles in progress parse and hold those two cues."""
    shutil.copytree(GRAPHS, tmp_path / "graphs", ignore=shutil.ignore_patterns("out"))
    log_path = tmp_path / "ev.jsonl"
    proc = subprocess.Popen(
        [*COMMAND, "run", str(tmp_path / "graphs" / "talking_agent.yaml"), "--events", str(log_path)],
        cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(said := heard(log_path)) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, "the agent never said two sentences"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    out = tmp_path / "graphs" / "out"
    assert not (out / "talking_agent.vtt").exists(), "never finalized: nothing under the final name"
    kept = (out / "talking_agent.vtt.part").read_text()
    assert kept.startswith("WEBVTT\n")
    assert [text for _, _, text in cues(out / "talking_agent.vtt.part")][: len(said)] == said


def heard(log: Path) -> list[str]:
    """The transcripts logged so far (the last line may be cut by the kill)."""
    said = []
    for line in log.read_text().splitlines() if log.exists() else []:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            break
        if event["event"] == "transcript_finished":
            said.append(event["text"])
    return said
