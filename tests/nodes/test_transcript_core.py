"""The transcript synchronizer's core against a simple reference model: word starts computed offline from an
utterance's whole text and audio, the transcript of a segment = its words started before the played position."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import hypothesis.strategies as st
import pytest
from hypothesis import given, note, settings

import mediagraph as mg

if TYPE_CHECKING:
    from nodes._transcript_core import Decision, TranscriptCore, Word, syllables
else:
    from mediagraph.nodes._transcript_core import Decision, TranscriptCore, Word, syllables

RATE = 48000
SPS = 4.0


class Utt:
    """One scripted utterance and what of it was fed."""

    def __init__(self, words: list[str], starts: list[int] | None, seps: list[str], frames: list[int], end: str):
        self.words, self.starts, self.frames, self.ending = words, starts, frames, end
        self.text = "".join(sep + w for sep, w in zip(seps, words, strict=True))
        beginnings = [
            len("".join(s + x for s, x in zip(seps[:i], words[:i], strict=True))) + len(seps[i])
            for i in range(len(words))
        ]
        self.begin: dict[int, int | None] = dict(
            zip(beginnings, starts if starts is not None else [None] * len(words), strict=True)
        )
        self.fed_text = ""
        self.fed_samples = 0
        self.ended = ""  # "flush" or "interrupt" once its audio ended

    def reference(self) -> list[tuple[str, float]]:
        """Every word of the text fed, with its start: offline, from the whole utterance."""
        spans = [(m, w) for m, w in _spans(self.fed_text)]
        if self.starts is not None:
            raw = [self.begin[at] / RATE for at, _ in spans]  # type: ignore[operator]
        else:
            counts = [syllables(w) for _, w in spans]
            total = sum(counts)
            duration = self.fed_samples / RATE
            raw = []
            for i in range(len(spans)):
                before = sum(counts[:i])
                raw.append(duration * before / total if self.ended == "flush" and duration > 0 else before / SPS)
        out: list[tuple[str, float]] = []
        for (_, w), at in zip(spans, raw, strict=True):
            out.append((w, max(at, out[-1][1]) if out else at))
        return out


def _spans(text: str) -> list[tuple[int, str]]:
    out, i = [], 0
    for w in text.split():
        i = text.index(w, i)
        out.append((i, w))
        i += len(w)
    return out


@st.composite
def utterances(draw: st.DrawFn) -> Utt:
    words = draw(st.lists(st.text("abeioutxyz", min_size=1, max_size=6), max_size=6))
    timed = draw(st.booleans())
    starts = [draw(st.integers(0, 2 * RATE)) for _ in words] if timed else None
    seps = [draw(st.sampled_from(["", " "] if i == 0 else [" ", "  ", "\n"])) for i in range(len(words))]
    frames = draw(st.lists(st.integers(1, 6000), max_size=5))
    return Utt(words, starts, seps, frames, draw(st.sampled_from(["flush", "flush", "interrupt"])))


def chunking(utt: Utt, data: st.DataObject) -> list[tuple[str, float | None]]:
    """Any chunking; a timed utterance's chunks are cut at every word beginning (and anywhere else), each
    chunk timed by the word it begins with."""
    n = len(utt.text)
    cuts = set(data.draw(st.lists(st.integers(1, max(1, n - 1)), max_size=6), label="cuts")) if n > 1 else set()
    if utt.starts is not None:
        cuts |= set(utt.begin) - {0}
    bounds = [0, *sorted(c for c in cuts if 0 < c < n), n]
    out = []
    for a, b in itertools.pairwise(bounds):
        start = utt.begin.get(a) if utt.starts is not None else None
        out.append((utt.text[a:b], None if start is None else start / RATE))
    return out


@settings(deadline=None, max_examples=300)
@given(
    script=st.lists(utterances(), min_size=1, max_size=4), interval=st.sampled_from([0.0, 0.01, None]), data=st.data()
)
def test_transcripts_match_the_reference_and_text_never_runs_ahead(
    script: list[Utt], interval: float | None, data: st.DataObject
) -> None:
    core = TranscriptCore(syllables_per_second=SPS)
    tracker = mg.PlaybackTracker(RATE, progress_interval=interval)
    audio: list[tuple[Any, ...]] = []
    text: list[tuple[Any, ...]] = []
    for u, utt in enumerate(script):
        audio += [("frame", u, n) for n in utt.frames] + [(utt.ending, u)]
        text += [("chunk", u, piece, at) for piece, at in chunking(utt, data)]
        if utt.ending == "flush":
            text.append(("text_end", u))
    placed: dict[int, tuple[int, int]] = {}  # tracker segment -> (utterance, samples of it before the segment)
    finishes: dict[int, mg.PlaybackFinished] = {}
    pending: list[mg.PlaybackEvent] = []
    delivered: dict[int, float] = {}  # segment -> position the core was told
    played_out: set[int] = set()
    released: dict[int, list[Word]] = {}
    transcripts: list[mg.Transcript] = []
    media = 0
    t = 0.0

    def check(decisions: list[Decision]) -> None:
        for d in decisions:
            assert all(x.segment != d.segment for x in transcripts), f"{d} after the segment's transcript"
            if isinstance(d, Word):
                u, before = placed[d.segment]
                offset = before / RATE
                ref = [(w, at) for w, at in script[u].reference() if at >= offset]
                got = released.setdefault(d.segment, [])
                assert ref[len(got)][0] == d.text, (ref, got, d)
                assert d.segment in played_out or ref[len(got)][1] < offset + delivered[d.segment], "ahead"
                got.append(d)
            else:
                transcripts.append(d)

    def emit(events: list[mg.PlaybackEvent]) -> None:
        for e in events:
            if isinstance(e, mg.PlaybackFinished):
                finishes[e.segment] = e
        pending.extend(events)

    while audio or text or pending:
        choices = [k for k, q in (("audio", audio), ("text", text), ("events", pending)) if q]
        if text and audio and any(a[0] == "interrupt" and a[1] < text[0][1] for a in audio):
            choices.remove("text")  # the producer's next utterance comes after the interrupt
        kind = data.draw(st.sampled_from(choices), label="next")
        if kind == "audio":
            item = audio.pop(0)
            utt = script[item[1]]
            if item[0] == "frame":
                sid = tracker.queue(item[2], start=media / RATE)
                placed.setdefault(sid, (item[1], utt.fed_samples))
                check(core.audio(media / RATE, item[2], RATE))
                media += item[2] + data.draw(st.sampled_from([0, 0, 7]), label="gap")
                utt.fed_samples += item[2]
            elif item[0] == "flush":
                if tracker.open_segment is None:
                    placed[tracker.next_id] = (item[1], utt.fed_samples)
                utt.ended = "flush"
                emit(tracker.flush(t))
                check(core.audio_end())
            else:
                utt.ended = "interrupt"
                emit(tracker.interrupt(t)[0])
                text[:] = [x for x in text if x[1] > item[1]]
                check(core.interrupt())
        elif kind == "text":
            item = text.pop(0)
            if item[0] == "chunk":
                script[item[1]].fed_text += item[2]
                check(core.text(item[2], item[3]))
            else:
                check(core.text_end())
        else:
            for e in pending[: data.draw(st.integers(1, len(pending)), label="deliver")]:
                pending.remove(e)
                if not isinstance(e, mg.PlaybackStarted):
                    delivered[e.segment] = e.position
                if isinstance(e, mg.PlaybackFinished) and not e.interrupted:
                    played_out.add(e.segment)
                delivered.setdefault(e.segment, 0.0)
                check(core.playback(e))
        # The sink plays some, or is cut below (never between an utterance's last frame and its flush: the
        # documented limit), by the draw.
        action = data.draw(st.sampled_from(["none", "play", "play", "cut"]), label="sink")
        t += 0.01
        if action == "play" and tracker.unplayed:
            emit(tracker.played(data.draw(st.integers(1, tracker.unplayed), label="played"), t))
        elif action == "cut":
            open_ = tracker.open_segment
            if open_ is None or (audio and audio[0][0] == "frame" and audio[0][1] == placed[open_][0]):
                emit(tracker.interrupt(t)[0])
        if not audio and tracker.unplayed:
            emit(tracker.played(tracker.unplayed, t))
    check(core.end())
    note(f"finishes {finishes}")
    note(f"transcripts {transcripts}")

    # Exactly one transcript per segment, in order, as the reference says.
    assert [x.segment for x in transcripts] == sorted(finishes)
    for x in transcripts:
        finish = finishes[x.segment]
        u, before = placed[x.segment]
        offset = before / RATE
        ref = [
            w
            for w, at in script[u].reference()
            if at >= offset and (not finish.interrupted or at < offset + finish.position)
        ]
        assert x.text == " ".join(ref), (x, ref)
        assert (x.interrupted, x.position, x.generation) == (finish.interrupted, finish.position, finish.generation)
        assert [w.text for w in released.get(x.segment, [])] == ref, "every word heard released before it"


def test_a_word_split_across_timed_chunks_starts_where_it_began_and_is_released_once_heard() -> None:
    core = TranscriptCore()
    core.audio(0.0, RATE, RATE)
    assert core.text("hel", 0.5) == [] and core.text("lo wor", 0.6) == [] and core.text("ld", 0.9) == []
    core.playback(mg.PlaybackStarted(segment=0, start=0.0))
    assert core.playback(mg.PlaybackProgress(segment=0, position=0.55, start=0.0)) == [
        Word(segment=0, generation=0, text="hello", start=0.5)
    ]
    core.text_end()  # "world" began in the chunk timed 0.6
    out = core.playback(mg.PlaybackFinished(segment=0, position=0.6, interrupted=True, start=0.0, sent=1.0))
    assert out == [mg.Transcript(segment=0, generation=0, interrupted=True, position=0.6, text="hello", start=0.0)]


def test_untimed_text_after_its_audio_is_scaled_to_the_flushed_audio_and_waits_for_its_end() -> None:
    core = TranscriptCore(syllables_per_second=100.0)
    core.audio(0.0, RATE, RATE)
    core.audio_end()
    core.playback(mg.PlaybackStarted(segment=0, start=0.0))
    core.playback(mg.PlaybackProgress(segment=0, position=0.6, start=0.0))
    assert core.text("cat dog") == []  # not final: more text would move them
    out = core.text_end()  # one syllable each over 1 s: starts 0 and 0.5
    assert [w.text for w in out if isinstance(w, Word)] == ["cat", "dog"]
    out = core.playback(mg.PlaybackFinished(segment=0, position=0.6, interrupted=True, start=0.0, sent=1.0))
    assert out == [mg.Transcript(segment=0, generation=0, interrupted=True, position=0.6, text="cat dog", start=0.0)]


def test_an_empty_segment_and_a_zero_duration_one_get_their_transcripts_in_order() -> None:
    core = TranscriptCore()
    core.audio_end()  # segment 0: no audio, no text
    core.text_end()
    core.text("said in no time")
    core.text_end()
    core.audio_end()  # segment 1: text, no audio
    assert core.playback(mg.PlaybackFinished(segment=0, position=0.0, interrupted=False)) == [
        mg.Transcript(segment=0, generation=0, interrupted=False, position=0.0, text="")
    ]
    out = core.playback(mg.PlaybackFinished(segment=1, position=0.0, interrupted=False))
    assert [w.text for w in out if isinstance(w, Word)] == ["said", "in", "no", "time"]
    assert out[-1] == mg.Transcript(segment=1, interrupted=False, position=0.0, text="said in no time")


def test_a_cut_below_splits_the_utterance_and_the_rest_is_placed_by_its_start() -> None:
    core = TranscriptCore()
    core.text("a b c d", 0.0, 0.8)  # 0, 0.2, 0.4, 0.6
    core.text_end()
    for i in range(4):
        core.audio(i * 0.25, RATE // 4, RATE)
    core.audio_end()
    core.playback(mg.PlaybackStarted(segment=0, start=0.0))
    first = core.playback(mg.PlaybackFinished(segment=0, position=0.1, interrupted=True, start=0.0, sent=0.5))
    assert [x.text for x in first] == ["a", "a"]  # the word, then the transcript
    core.playback(mg.PlaybackStarted(segment=1, generation=1, start=0.5))  # the rest, from 0.5 s on
    out = core.playback(mg.PlaybackFinished(segment=1, generation=1, position=0.5, interrupted=False, start=0.5))
    assert out[-1] == mg.Transcript(segment=1, generation=1, interrupted=False, position=0.5, text="d", start=0.5)
    assert isinstance(out[0], Word) and (out[0].segment, out[0].text) == (1, "d")
    assert out[0].start == pytest.approx(0.1)  # into the segment: 0.6 s into the utterance, which began 0.5 s in


def test_a_duplicate_finish_or_a_segment_never_fed_breaks_the_contract_and_stale_events_are_ignored() -> None:
    core = TranscriptCore()
    core.audio_end()
    core.playback(mg.PlaybackFinished(segment=0, position=0.0, interrupted=True, generation=1))
    assert core.playback(mg.PlaybackProgress(segment=1, position=0.1, generation=0)) == []
    assert core.stale == 1
    with pytest.raises(mg.PlaybackContractError, match="nothing_after_finish"):
        core.playback(mg.PlaybackFinished(segment=0, position=0.0, interrupted=True, generation=1))
    with pytest.raises(mg.PlaybackContractError, match="segment_sent"):
        core.playback(mg.PlaybackFinished(segment=1, position=0.0, interrupted=True, generation=1))


def test_syllables_are_vowel_groups_at_least_one() -> None:
    assert [syllables(w) for w in ["the", "hello", "queue", "rhythm", "b", "Audio"]] == [1, 2, 1, 1, 1, 2]
