"""``speech``: offline speech synthesis with espeak-ng (from PyPI's ``espeakng-loader``), with word timings.

Theory of operation. Text chunks are joined into utterances, each ended by a ``Flush``
(:class:`~._speech_core.TextBuffer`). The actor has two tasks: a reader that takes the ``text`` inlet's messages
(and acts on an ``Interrupt`` at once), and a speaker that synthesizes the queued utterances one by one. The
synthesis runs in a worker thread (:func:`in_thread`): the thread calls the library only (:mod:`._espeak`) and
returns samples and word events; the speaker task then resamples them to 48 kHz, cuts frames, times the words
(:mod:`._speech_core`, trio-free) and sends them. On the virtual clock a synthesis takes no graph time: the
clock does not jump ahead while the thread works.

Serialization. espeak-ng is a process-wide, non-reentrant singleton: every call into it holds the lock of
:data:`._espeak.ENGINE`, so two speech nodes in one process never synthesize at the same time, whatever graph
they are in. A graph resource of type ``espeak`` (``resources: {tts: {type: espeak}}``, ``engine: tts``) adds
a shared capacity limiter of one thread: the nodes naming it queue for the engine in trio, in order, rather
than each parking a worker thread on the lock.
"""

from __future__ import annotations

import functools
import threading
from collections import deque
from collections.abc import Callable
from typing import Final, final

import attrs
import numpy as np
import outcome
import trio
import trio.lowlevel

import mediagraph as mg

from ._audio import holds_a_sample
from ._espeak import ENGINE, MAX_PITCH, MAX_RATE, MIN_PITCH, MIN_RATE, EspeakError, Synthesis
from ._realtime import resource_of, virtual_clock
from ._speech_core import RATE, TextBuffer, Timeline, cut, resample, word_chunks

__all__ = ["MAX_QUEUED", "EspeakConfig", "EspeakResource", "SpeechConfig", "SpeechNode"]

_v = attrs.validators

#: Utterances waiting to be spoken before the node stops reading its inlet (backpressure upstream).
MAX_QUEUED: Final = 64


@final
@attrs.frozen(kw_only=True)
class EspeakConfig:
    """``type: espeak``: the process's espeak-ng engine, shared by the speech nodes naming it (no parameters:
    voice, rate and pitch are each node's)."""

    def open(self) -> EspeakResource:
        return EspeakResource()


@final
class EspeakResource:
    """The engine as a graph resource: one worker thread at a time for all the nodes that name it.

    Resource handling: the runtime opens it before its first user and closes it after its last; closing
    leaves the library loaded (it belongs to the process).
    """

    def __init__(self) -> None:
        self.limiter = trio.CapacityLimiter(1)

    def __repr__(self) -> str:
        return f"<EspeakResource {ENGINE!r}, {self.limiter.statistics().tasks_waiting} waiting>"

    def close(self) -> None:
        pass


def _check_voice(_: object, attribute: attrs.Attribute[str], voice: str) -> None:
    try:
        ENGINE.check_voice(voice)
    except EspeakError as exc:
        raise ValueError(f"voice {voice[:80]!r}: {exc}") from exc


@final
@attrs.frozen(kw_only=True)
class SpeechConfig:
    """Args:
    voice: an espeak-ng voice (``en-us``, ``en-gb``, ``fr``..., a variant after ``+``: ``en-us+f3``); checked
        when the graph is built.
    rate: speaking rate, words per minute (espeak-ng's range, 80 to 450).
    pitch: base pitch, 0 to 100.
    frame_ms: length of the audio frames sent, milliseconds (the last of an utterance is padded with silence).
    paced: release each frame at its media time on the graph clock; ``False``: as fast as the graph takes.
    engine: the name of an ``espeak`` resource to share with other speech nodes; none: the process's engine
        directly (serialized all the same).
    """

    voice: str = attrs.field(default="en-us", validator=_check_voice)
    rate: int = attrs.field(default=175, validator=[_v.ge(MIN_RATE), _v.le(MAX_RATE)])
    pitch: int = attrs.field(default=50, validator=[_v.ge(MIN_PITCH), _v.le(MAX_PITCH)])
    frame_ms: float = attrs.field(default=20.0, validator=[_v.gt(0), _v.le(1000), holds_a_sample(lambda _: RATE)])
    paced: bool = True
    engine: mg.ResourceRef | None = attrs.field(default=None, validator=resource_of("espeak", "an espeak engine"))

    @property
    def frame_len(self) -> int:
        return round(RATE * self.frame_ms / 1000)


_END: Final = None  # the work item that ends the speaker


async def in_thread[T](fn: Callable[[], T], abort: threading.Event) -> T:
    """``fn()`` in a worker thread; its result or exception.

    On an autojump clock (the virtual clock, ``MockClock(autojump_threshold=0)``) the calling task stays
    runnable while it waits, checkpointing, so graph time never jumps ahead while the thread works: a synthesis
    takes no graph time, and a virtual run repeats exactly. On a real clock it simply waits.

    Cancellation: sets ``abort`` (``fn`` is to stop soon when it is set), then waits for the thread to end,
    shielded, before raising ``Cancelled``: no thread outlives the call.
    """
    done = trio.Event()
    box: list[outcome.Outcome[T]] = []
    token = trio.lowlevel.current_trio_token()

    def deliver(result: outcome.Outcome[T]) -> None:  # in the thread: hand the result to trio, nothing else
        box.append(result)
        token.run_sync_soon(done.set)

    spin = virtual_clock()

    async def wait() -> None:
        while spin and not done.is_set():
            await trio.lowlevel.checkpoint()
        await done.wait()

    trio.lowlevel.start_thread_soon(fn, deliver, name="mediagraph speech")
    try:
        await wait()
    finally:
        if not done.is_set():
            abort.set()
            with trio.CancelScope(shield=True):
                await wait()
    return box[0].unwrap()


@final
@mg.node_type("speech", config=SpeechConfig)
class SpeechNode(mg.Actor):
    """Speaks text offline (espeak-ng), 48 kHz mono audio and one timed text chunk per word.

    Inlet: ``text`` (``TextChunk``: their texts are joined; a ``Flush`` ends an utterance, an ``Interrupt``
    drops the text not spoken yet and stops the utterance being spoken). Outlets: ``audio`` (``AudioFrame``,
    int16, 48 kHz mono, frames of ``frame_ms``; timestamps on one media timeline: an utterance starts right
    after the previous one, or, paced, at the graph time its flush arrived if that is later), then a
    ``Flush`` after each utterance; ``text`` (one ``TextChunk`` per word before the utterance's audio, ``start``
    and ``end`` in seconds from the utterance's first sample, then a ``Flush``, before the audio). An
    ``Interrupt`` is passed on both outlets, in order; an empty utterance is a ``Flush`` alone on both. Text
    left without a flush when the inlet ends is spoken, with its flush.

    Raises:
        mg.ProviderError: espeak-ng failed while speaking (the message names the voice).
        ValueError: an utterance longer than 10000 characters without a flush.

    Cancellation: a synthesis under way (tens of milliseconds) finishes in its thread before the node's task
    ends; an ``Interrupt`` stops it at its next block of samples. Resource handling: nothing to close; an
    ``engine`` resource is the graph's.
    """

    @staticmethod
    def ports(config: SpeechConfig) -> mg.Ports:
        return mg.Ports(
            inlets=[mg.InletSpec(name="text", types=mg.TextChunk)],
            outlets=[
                mg.OutletSpec(name="audio", format=mg.AudioFormat(sample_rate=RATE, channels=1)),
                mg.OutletSpec(name="text", types=mg.TextChunk),
            ],
        )

    def __init__(self, config: SpeechConfig) -> None:
        self.config = config
        self.utterances = 0  # spoken to the end
        self.interrupted = 0
        self.words = 0
        self._text = TextBuffer()
        self._timeline = Timeline()
        self._work: deque[str | mg.Interrupt | None] = deque()
        self._wake = trio.Event()
        self._room = trio.Event()
        self._epoch = 0  # increased by each interrupt: what was started before it is not sent
        self._scope: trio.CancelScope | None = None
        self._abort: threading.Event | None = None

    def __repr__(self) -> str:
        return (
            f"<SpeechNode {self.config.voice!r} spoken={self.utterances} interrupted={self.interrupted} "
            f"queued={len(self._work)} at {self._timeline.position} samples>"
        )

    async def run(self, io: mg.NodeIO) -> None:
        self._io = io
        engine = self.config.engine
        self._limiter = io.resource(engine).limiter if engine is not None else trio.CapacityLimiter(1)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._speak)
            await self._read(io.inlets["text"])

    # --- the reader ----------------------------------------------------------------------------------------

    async def _read(self, inlet: mg.Inlet) -> None:
        async for msg in inlet:
            if type(msg) is mg.TextChunk:
                self._text.add(msg)
            elif isinstance(msg, mg.Flush):
                while len(self._work) >= MAX_QUEUED:
                    await self._room.wait()
                    self._room = trio.Event()
                self._queue(self._text.flush())
            elif isinstance(msg, mg.Interrupt):
                self._interrupt(msg)
        rest = self._text.flush()
        if rest.strip():
            self._queue(rest)
        self._queue(_END)

    def _queue(self, item: str | mg.Interrupt | None) -> None:
        self._work.append(item)
        self._wake.set()

    def _interrupt(self, msg: mg.Interrupt) -> None:
        self._text.drop()
        self._work.clear()
        self._room.set()
        self._queue(msg)
        self._epoch += 1
        if self._abort is not None:
            self._abort.set()
        if self._scope is not None:
            self._scope.cancel()

    # --- the speaker ---------------------------------------------------------------------------------------

    async def _speak(self) -> None:
        outlets = self._io.outlets
        while True:
            while not self._work:
                await self._wake.wait()
                self._wake = trio.Event()
            item = self._work.popleft()
            self._room.set()
            if item is _END:
                return
            if isinstance(item, mg.Interrupt):
                self.interrupted += 1
                self._timeline.cut()
                await outlets["text"].send(item)
                await outlets["audio"].send(item)
                continue
            with trio.CancelScope() as self._scope:
                await self._utterance(item, self._epoch)
            self._scope = None

    async def _synthesize(self, text: str) -> Synthesis:
        cfg = self.config
        self._abort = abort = threading.Event()
        speak = functools.partial(ENGINE.synthesize, text, voice=cfg.voice, rate=cfg.rate, pitch=cfg.pitch, abort=abort)
        try:
            async with self._limiter:
                return await in_thread(speak, abort)
        except EspeakError as exc:
            raise mg.ProviderError(f"node {self._io.name!r} (speech): voice {cfg.voice!r}: {exc}") from exc
        finally:
            self._abort = None

    async def _utterance(self, text: str, epoch: int) -> None:
        io, cfg = self._io, self.config
        if text.strip():
            synthesis = await self._synthesize(text)
            samples = resample(synthesis.samples, synthesis.sample_rate)
            chunks = word_chunks(text, synthesis.words, len(samples) / RATE)
        else:
            samples, chunks = np.zeros(0, np.int16), []
        ready = io.time() if cfg.paced else None
        if epoch != self._epoch:
            return
        count = -(-len(samples) // cfg.frame_len)
        frames = cut(samples, start=self._timeline.place(count * cfg.frame_len, now=ready), frame_len=cfg.frame_len)
        text_out, audio_out = io.outlets["text"], io.outlets["audio"]
        for chunk in chunks:
            await text_out.wait_room()
            if epoch != self._epoch:
                return
            text_out.emit(chunk)
        await text_out.wait_room()
        if epoch != self._epoch:
            return
        text_out.emit(mg.Flush())  # every word is known: a transcript synchronizer need not wait for the audio
        self.words += len(chunks)
        for frame in frames:
            if cfg.paced:
                await io.sleep_until(frame.timestamp / RATE)
            else:
                await trio.lowlevel.checkpoint()  # an interrupt read meanwhile stops the utterance here
            await audio_out.wait_room()
            if epoch != self._epoch:
                return
            audio_out.emit(frame)
            self._timeline.note_sent(frame.timestamp + cfg.frame_len)
        await audio_out.wait_room()
        if epoch != self._epoch:
            return
        audio_out.emit(mg.Flush())
        self.utterances += 1


mg.register_resource_type(
    mg.ResourceType(
        name="espeak",
        config=EspeakConfig,
        open=EspeakConfig.open,
        summary="the espeak-ng engine, one synthesis at a time, shared by the speech nodes that name it",
    )
)
