"""The ``transcript_sync`` node: the transcript follows the voice the listener actually heard.

Theory of operation. The node sits above a sink (or a slot holding one): its ``audio`` goes down unchanged, and
the sink's playback events come back on the feedback inlet ``playback``. All the deciding is done by the
trio-free :class:`TranscriptCore` (``_transcript_core``). One reader task per inlet feeds it each message as it
arrives and queues what it decides in one outbox, in the same step; one sender task sends the outbox in order,
so the outlets and the log see exactly the core's order whatever the outlets' backpressure: a word on
``text`` once the played position reaches the word's start, and exactly one :class:`mediagraph.Transcript` per
segment on ``transcript`` when the segment finished (all of its text if it played out, exactly the words
started before the cut if it was interrupted). Only a ``PlaybackFinished`` from below finishes a segment, so
an interrupt, a flush, a slot swap below (either policy), an empty slot or a sink that dies all end up as the
one event that finishes it.

Each transcript is logged as ``transcript_finished`` (segment, generation, interrupted, position, start: the
segment's media time, text), and each batch of released words as ``words_released`` (segment, words, last:
the start of the last one, seconds into the segment), which :func:`mediagraph.testing.check_transcripts`
checks against the playback events.

Known limit: the text and audio inlets are two mailboxes. Text of a cut utterance still queued in the text
mailbox when the audio's interrupt is read is taken for the next utterance's; a producer that sends the text
of an utterance before its audio (as ``speech`` does) leaves that window one scheduling round wide.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Final, final

import attrs
import trio

import mediagraph as mg

from ._audio_sent import AudioSent
from ._outbox import Outbox
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
        self._outbox = outbox = Outbox[_Item]()
        self._sent = AudioSent()  # audio sent down (counted by the sender), and the finished segments' account
        self._audio_ended = False
        self._late = trio.CancelScope()  # reading interrupts after the audio ended: until the sink finished
        async with trio.open_nursery() as nursery:
            nursery.start_soon(outbox.drain, self._send)
            async with trio.open_nursery() as readers:
                readers.start_soon(self._read_media)
                async for event in io.inlets["playback"]:
                    await self._feed(functools.partial(self._core.playback, event))
                    if isinstance(event, mg.PlaybackFinished):
                        self._sent.finish(event.sent)
                        await self._feed(_nothing, _Pass(None))
                # The sink below finished: nothing more plays, and no barge-in has anything left to cut.
                self._late.cancel()
            outbox.close()  # the sender sends what is left, then ends
        if self._words_sent:  # words went out for segments that never finished: there is no transcript of them
            io.log("transcript_unfinished", segments=sorted(self._words_sent))

    # --- the readers: each message goes to the core, and what it decides joins the outbox in the same step ---

    async def _feed(self, decide: Callable[[], list[Decision]], *first: _Item) -> None:
        """Ask the core, and queue ``first`` and what it decided (see :class:`Outbox`)."""

        def items() -> list[_Item]:
            decided = decide()
            return [*first, decided] if decided else list(first)

        await self._outbox.put(items)

    async def _read_media(self) -> None:
        """Audio and text, each in its own task; once both have ended, the core knows everything is said. Then
        the interrupts of the ended audio inlet, until the sink below finished."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read_text)
            await self._read_audio()
        await self._feed(self._core.end)
        with self._late, self._io.inlets["audio"].after_end() as late:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._close_by_deadline)
                async for msg in late:  # cancelled once the sink below finished
                    if isinstance(msg, mg.Interrupt):
                        await self._feed(self._core.interrupt, _Pass(msg))

    async def _close_by_deadline(self) -> None:
        """The audio outlet closes once the account is overdue (``_audio_sent.GRACE`` after a real-time sink
        would have played all it was sent), whatever the sink reported: the end never waits for reports that
        cannot come."""
        while (deadline := self._sent.deadline) > self._io.time():
            await self._io.sleep_until(deadline)  # the sender may still be sending: look again then
        await self._feed(_nothing, _Pass(_CLOSE))

    async def _read_audio(self) -> None:
        core = self._core
        open_segment = False  # the last message down was a frame: a segment is open below
        async for msg in self._io.inlets["audio"]:
            open_segment = isinstance(msg, mg.AudioFrame)
            # The frame goes down after the core has it, so nothing below can report it first.
            decide: Callable[[], list[Decision]]
            if isinstance(msg, mg.AudioFrame):
                rate = msg.sample_rate
                decide = functools.partial(core.audio, msg.timestamp / rate, msg.samples_per_channel, rate)
            elif isinstance(msg, mg.Flush):
                decide = core.audio_end
            elif isinstance(msg, mg.Interrupt):
                decide = core.interrupt
            else:
                decide = _nothing
            await self._feed(decide, _Pass(msg))
        # The audio ended. The outlet stays open until all the audio sent down has played (the sink's finished
        # segments account for it), so a barge-in during the last words still goes down; the open segment is
        # closed by a Flush, as the end of the input would close it.
        await self._feed(core.audio_end if open_segment else _nothing, *([_Pass(mg.Flush())] if open_segment else []))
        await self._feed(_nothing, _Pass(_ENDED))

    async def _read_text(self) -> None:
        core = self._core
        async for msg in self._io.inlets["text"]:
            if isinstance(msg, mg.TextChunk):
                await self._feed(functools.partial(core.text, msg.text, msg.start, msg.end))
            elif isinstance(msg, mg.Flush):
                await self._feed(core.text_end)
            # An Interrupt on the text is the audio's to act on: the core drops the text beyond the cut then.

    # --- the one sender: the outlets and the log see the core's order ---------------------------------------

    async def _send(self, item: _Item) -> None:
        if isinstance(item, _Pass):
            audio, msg = self._io.outlets["audio"], item.msg
            if msg is _ENDED:  # in order: every frame before it has been counted in `_sent`
                self._audio_ended = True
            if msg is None or msg is _CLOSE or msg is _ENDED:  # time to see whether all the audio sent has played
                played = self._audio_ended and self._sent.accounted
                if (played or msg is _CLOSE) and not audio.closed:
                    audio.close()
            elif not audio.closed:
                if isinstance(msg, mg.AudioFrame):
                    self._sent.send(msg.samples_per_channel / msg.sample_rate, self._io.time())
                await audio.send(msg)
            elif isinstance(msg, mg.Interrupt):  # after everything played: nothing was left to cut
                self._io.log("interrupt_after_end")
        else:
            await self._decided(item)

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


@final
@attrs.frozen
class _Pass:
    """An audio message to pass down (``None``: close the outlet if the audio ended and all of it played)."""

    msg: Any


_Item = _Pass | list[Decision]
_CLOSE: Final = object()  # passed down: close the audio outlet now (the account is overdue)
_ENDED: Final = object()  # passed down: the audio inlet ended (after its last frame)


def _nothing() -> list[Decision]:
    return []
