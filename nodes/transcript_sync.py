"""The ``transcript_sync`` node: the transcript follows the voice the listener actually heard.

Theory of operation. The node sits above a sink (or a slot holding one): its ``audio`` goes down unchanged, and
the sink's playback events come back on the feedback inlet ``playback``. All the deciding is done by the
trio-free :class:`TranscriptCore` (``_transcript_core``): the actor feeds it every message in arrival order
and sends what it decides — a word on ``text`` once the played position reaches the word's start, and
exactly one :class:`mediagraph.Transcript` per segment on ``transcript`` when the segment finished (all of its
text if it played out, exactly the words started before the cut if it was interrupted). Only a
``PlaybackFinished`` from below finishes a segment, so an interrupt, a flush, a slot swap below (either
policy), an empty slot or a sink that dies all end up as the one event that finishes it.

Each transcript is logged as ``transcript_finished`` (segment, generation, interrupted, position, start: the
segment's media time, text), and
each batch of released words as ``words_released`` (segment, words, last: the start of the last one, seconds
into the segment), which :func:`mediagraph.testing.check_transcripts` checks against the playback events.
"""

from __future__ import annotations

from typing import final

import attrs
import trio

import mediagraph as mg

from ._transcript_core import Decision, TranscriptCore, Word

__all__ = ["TranscriptSync", "TranscriptSyncConfig"]

_v = attrs.validators


@final
@attrs.frozen(kw_only=True)
class TranscriptSyncConfig:
    """Args:
    syllables_per_second: the speaking rate at which text without word timings is estimated (syllables are
        counted as vowel groups, see ``_transcript_core.syllables``); once the utterance's audio has ended the
        estimate is scaled to the audio's duration.
    """

    syllables_per_second: float = attrs.field(default=4.0, validator=[_v.gt(0), _v.le(50)])


@final
@mg.node_type("transcript_sync", config=TranscriptSyncConfig)
class TranscriptSync(mg.Actor):
    """Releases the words of the text as the audio below plays them, and one transcript per segment as heard.

    The audio passes through unchanged; the words of ``text`` go out as ``playback`` reports them played, and one
    ``mg.Transcript`` per segment on ``transcript``.

    Inlets: ``audio`` (what will be played), ``text`` (``mg.TextChunk`` of the same utterances, a ``Flush``
    ending each; optional), ``playback`` (feedback: the playback events of the sink or slot below). Outlets:
    ``audio`` (unchanged), ``text`` (a ``mg.TextChunk`` per word released, a ``Flush`` after each segment's
    words), ``transcript`` (``mg.Transcript``).

    Raises:
        mg.PlaybackContractError: the playback events break the segment contract (an event for audio never
            sent, a finished segment reported again, segments out of order).
    """

    @staticmethod
    def ports(config: TranscriptSyncConfig) -> mg.Ports:
        return mg.Ports(
            inlets=[
                mg.InletSpec(name="audio"),
                mg.InletSpec(name="text", types=mg.TextChunk, required=False),
                mg.InletSpec(name="playback", types=mg.PLAYBACK_TYPES, feedback=True),
            ],
            outlets=[
                mg.OutletSpec(name="audio", format=mg.SameAs("audio")),
                mg.OutletSpec(name="text", types=mg.TextChunk),
                mg.OutletSpec(name="transcript", types=mg.Transcript),
            ],
        )

    def __init__(self, config: TranscriptSyncConfig) -> None:
        self.config = config
        self._core = TranscriptCore(syllables_per_second=config.syllables_per_second)

    def __repr__(self) -> str:
        return f"<TranscriptSync {self._core!r}>"

    async def run(self, io: mg.NodeIO) -> None:
        self._io = io
        self._core = TranscriptCore(syllables_per_second=self.config.syllables_per_second, name=io.name)
        self._words_sent: dict[int, int] = {}  # segment -> words released on `text` so far
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read_media)
            async for event in io.inlets["playback"]:
                await self._decided(self._core.playback(event))
        if self._words_sent:  # words went out for segments that never finished: there is no transcript of them
            io.log("transcript_unfinished", segments=sorted(self._words_sent))

    async def _read_media(self) -> None:
        """Audio and text, each in its own task; once both have ended, the core knows everything is said."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read_text)
            await self._read_audio()
        await self._decided(self._core.end())

    async def _read_audio(self) -> None:
        core, audio = self._core, self._io.outlets["audio"]
        async for msg in self._io.inlets["audio"]:
            if isinstance(msg, mg.AudioFrame):
                decided = core.audio(msg.timestamp / msg.sample_rate, msg.samples_per_channel, msg.sample_rate)
            elif isinstance(msg, mg.Flush):
                decided = core.audio_end()
            elif isinstance(msg, mg.Interrupt):
                decided = core.interrupt()
            else:
                decided = []
            await audio.send(msg)  # after the core has it: nothing below can report it first
            await self._decided(decided)
        audio.close()  # at once, so the sink below plays out and finishes, whatever the text still does

    async def _read_text(self) -> None:
        core = self._core
        async for msg in self._io.inlets["text"]:
            if isinstance(msg, mg.TextChunk):
                await self._decided(core.text(msg.text, msg.start, msg.end))
            elif isinstance(msg, mg.Flush):
                await self._decided(core.text_end())
            # An Interrupt on the text is the audio's to act on: the core drops the text beyond the cut then.

    async def _decided(self, decisions: list[Decision]) -> None:
        io = self._io
        words: list[Word] = []
        for decision in decisions:
            if isinstance(decision, Word):
                words.append(decision)
                continue
            await self._release(words)
            words = []
            sent = self._words_sent.pop(decision.segment, 0)
            if sent:
                await io.outlets["text"].send(mg.Flush())
            io.log(
                "transcript_finished",
                segment=decision.segment,
                generation=decision.generation,
                interrupted=decision.interrupted,
                position=round(decision.position, 6),
                start=None if decision.start is None else round(decision.start, 6),
                text=decision.text,
            )
            await io.outlets["transcript"].send(decision)
        await self._release(words)

    async def _release(self, words: list[Word]) -> None:
        if not words:
            return
        io, text = self._io, self._io.outlets["text"]
        for word in words:
            first = self._words_sent.get(word.segment, 0) == 0
            self._words_sent[word.segment] = self._words_sent.get(word.segment, 0) + 1
            await text.send(mg.TextChunk(text=word.text if first else f" {word.text}", start=word.start))
        last = words[-1]
        io.log("words_released", segment=last.segment, words=len(words), last=round(last.start, 6))
