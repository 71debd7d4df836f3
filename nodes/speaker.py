"""``speaker``: plays audio and reports what was actually played, as playback events.

Theory of operation. The node writes the audio it receives into a :class:`~._playout.DeviceBuffer`; a device
(:mod:`._output`) consumes
that buffer one block at a time and writes down, in the same buffer, what it observed for each block
(samples consumed, when the first of them reaches the listener, whether it ran short). The node takes those
observations in order and turns them into :class:`mediagraph.PlaybackTracker` calls, so the playback events
are ordered by construction, whichever device plays:

- ``device: virtual`` plays out on the graph clock with no sound card (servers, tests, demos, virtual
  clock): a task of the node consumes one block every ``block_ms``, exactly as a sound card's callback would.
- any other ``device`` is a PortAudio device (name or index): ``sounddevice``'s callback thread consumes the
  buffer and pokes the node through ``TrioToken.run_sync_soon``. That thread never runs node code and never
  touches node state: it only fills the sound card's block from the buffer, under the buffer's lock.

``playback_started`` is stamped with the time the device actually played the segment's first sample: the
virtual device's tick, or PortAudio's ``outputBufferDacTime`` of the block that held it, on the graph clock.
``playback_progress`` follows every ``progress_ms`` of a segment played (every block with 0), so a recorder
above can write what was played without waiting for the segment to end.
An interrupt takes the observations not yet handled and empties the buffer in one step under the lock, so the
position of an interrupted segment counts exactly the samples the device had taken.

A PortAudio device can stop playing while the node still owes playback events: its stream ends by itself
(device unplugged, PortAudio gave up on it: ``sounddevice``'s ``finished_callback`` says so), or it simply
stops calling back (a hung sound server). Either way the node ends every unfinished segment as interrupted at
the position the device really played, the same way as an interrupt, then fails with a ``ProviderError``
naming the node and the device. A stall is told by time: a device calls back at least once per wake-up of
its own (its latency, at most) whether it has audio or not, so one that has not called back for ``stall_ms``
beyond its latency while audio waits for it is taken for stopped.

A device that has not started yet has not stopped. Sound servers can be slow to start a stream: PortAudio
on an idle PulseAudio null sink calls back for several blocks at once to fill its buffer, then not at all
for up to 2 s, until the sink starts the stream at the end of the 2 s block it is rendering. Those filling
callbacks run as fast as the machine lets them, which on a loaded one is not fast: their ``currentTime``
spread over 9 ms in CI, nearly a block, once taken for playback. So a device has started once its callbacks
span ``START_SPAN`` (a quarter of a second) of its own clock, more than any fill takes (for a device whose
clock stands at 0, a quarter of a second of the graph clock between observations); until then it has its
own, longer bound, ``start_ms`` from opening, and the error says which of the two bounds was passed.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, NoReturn, final

import attrs
import trio

import mediagraph as mg

from ._output import Device, PortAudioDevice, VirtualDevice
from ._playout import DeviceBuffer, Played

_v = attrs.validators


def _device_ok(_: object, attribute: attrs.Attribute[Any], value: str | int) -> None:
    if value == "" or (isinstance(value, int) and value < 0):
        raise ValueError(f"{attribute.name} must be 'virtual', a device name or an index >= 0, got {value!r}")


def _stall_ok(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not 0 < value <= 60000:
        raise ValueError(f"{attribute.name} must be None or > 0 and <= 60000 (ms), got {value!r}")


@final
@attrs.frozen(kw_only=True)
class SpeakerConfig:
    """Args:
    device: ``virtual`` (graph clock, no sound card) or a PortAudio output device: a name, part of one
        (``pulse``, ``default``), or an index, as ``mediagraph devices`` lists them.
    sample_rate: Hz the device plays at; the inlet accepts only this rate.
    channels: channel count the device plays; the inlet accepts only this count.
    block_ms: how much the device consumes at a time.
    prebuffer_ms: a real device starts a segment (or resumes it after running dry) once this much of it is
        buffered beyond what the device takes when it wakes up, or all of it: the margin by which upstream may
        run late without the device running dry. A device takes several blocks at once when its own buffer
        is larger than a block (PortAudio then calls back for each, back to back): those blocks are not part
        of the margin. 0 starts at once. The virtual device plays on the graph clock, with no jitter, and
        never waits.
    stall_ms: a real device that has not called back for this long beyond its latency while audio waits for
        it has stopped (a hung sound server): the speaker fails. ``None`` waits for it forever, for tests
        whose simulated device calls back from a thread while an autojump clock runs ahead of it.
    start_ms: a real device that has not called back once this long after its stream was opened, while audio
        waits for it, never started: the speaker fails. Until its first callback a device is not taken for
        stalled (sound servers may take seconds to start a stream). ``None`` waits for it forever.
    progress_ms: a ``playback_progress`` event is sent each time a segment has played this much more
        (0: every block the device plays).
    """

    device: str | int = attrs.field(default="virtual", validator=_device_ok, metadata={"device": "output"})
    sample_rate: int = attrs.field(default=48000, validator=[_v.ge(8000), _v.le(384000)])
    channels: int = attrs.field(default=1, validator=[_v.ge(1), _v.le(8)])
    block_ms: float = attrs.field(default=10.0, validator=[_v.gt(0), _v.le(200)])
    prebuffer_ms: float = attrs.field(default=20.0, validator=[_v.ge(0), _v.le(2000)])
    stall_ms: float | None = attrs.field(default=1000.0, validator=_stall_ok)
    start_ms: float | None = attrs.field(default=5000.0, validator=_stall_ok)
    progress_ms: float = attrs.field(default=100.0, validator=[_v.ge(0), _v.le(60000)])


PLAYBACK_TYPES = (mg.PlaybackStarted, mg.PlaybackProgress, mg.PlaybackFinished)
#: A device has started once its callbacks span this long of its own clock (seconds; see the module doc).
START_SPAN = 0.25


def log_playback(io: mg.NodeIO, events: list[mg.PlaybackEvent], emit: Any) -> None:
    """Send each event on the playback outlet, in order; the runtime checks each one against the segment
    contract and records it in the event log as it leaves (``at``: the event's own time, for
    ``playback_started`` when the first sample was played, for ``playback_progress`` when the part played
    ends; ``sent``: how much of the segment was queued)."""
    for event in events:
        emit(event)


@final
@mg.node_type("speaker", config=SpeakerConfig, uses_device=lambda c: c.device != "virtual")
class Speaker(mg.Actor):
    """Plays audio; emits playback_started when the device consumes a segment's first sample.

    Inlet ``audio`` (the config's rate and channels); outlet ``playback`` (``PlaybackStarted``,
    ``PlaybackProgress`` every ``progress_ms`` of a segment played, and ``PlaybackFinished``). Logs
    ``speaker_total`` at the end (frames received, samples played, device blocks observed, underruns: times the
    buffer ran dry in the middle of a segment, device_underflows: PortAudio's own count of late callbacks), an
    ``underrun`` event at most once per second while they happen, and for a real device ``device_started``
    (``after``: seconds from opening to its first callback).

    Raises:
        ProviderError: at start, for a PortAudio device that is missing or cannot be opened; later, for one
            that never started (no callback within ``start_ms`` of opening, with audio waiting) or stopped
            playing (its stream ended, or it stopped calling back for ``stall_ms`` with audio waiting).

    Error handling: a device that stopped playing first ends every unfinished segment with
    ``playback_finished`` (interrupted, at the position it played), as an interrupt would.

    Resource handling: the PortAudio stream is opened in ``run`` and closed in ``cleanup`` (aborted, if the
    device stopped playing).
    Cancellation: cancelling stops playback (a real device still plays what it had taken: its latency);
    unfinished segments get no ``playback_finished``.
    """

    @staticmethod
    def ports(config: SpeakerConfig) -> mg.Ports:
        fmt = mg.AudioFormat(sample_rate=config.sample_rate, channels=config.channels)
        return mg.Ports(
            inlets=[mg.InletSpec(name="audio", format=fmt)],
            outlets=[mg.OutletSpec(name="playback", types=PLAYBACK_TYPES)],
        )

    def __init__(self, config: SpeakerConfig) -> None:
        self.config = config
        self.block = max(1, round(config.sample_rate * config.block_ms / 1000))
        self.tracker = mg.PlaybackTracker(config.sample_rate, progress_interval=config.progress_ms / 1000)
        virtual = config.device == "virtual"
        prebuffer = 0 if virtual else round(config.sample_rate * config.prebuffer_ms / 1000)
        self.buffer = DeviceBuffer(prebuffer, config.sample_rate)
        self.device: Device | None = None
        self.received = 0  # frames
        self.played = 0  # samples
        self.blocks = 0  # device blocks observed
        self.underruns = 0
        self.device_underflows = 0
        self.input_done = False
        # Stream positions in samples, to split each observation where a segment begins, so that segment's
        # first sample gets its own time even in the middle of a block.
        self._position = 0  # samples the device has played
        self._end = 0  # position after the last sample queued and still to be played
        self._starts: deque[int] = deque()  # positions where segments not yet started begin
        self._last_segment: int | None = None
        self._audible_until = 0.0  # graph time when the last sample taken will have been played
        self._heard = 0.0  # when (trio's clock) the node last took observations of the device's callbacks
        self._opened = 0.0  # when (trio's clock) the device was opened
        self._started = False  # the device's callbacks spanned START_SPAN: it plays (see the module doc)
        self._first_wake: tuple[float, float] | None = None  # its first callback: device time, trio time
        self._filled = 0  # blocks it took before it was known to play
        self._waiting = 0.0  # when (trio's clock) audio last began to wait for the device, nothing being owed
        self._stopped: str | None = None  # how the device stopped by itself
        self._failed = False
        self._poked = trio.Event()
        self._underrun_logged: float | None = None
        self._underruns_logged = 0

    def __repr__(self) -> str:
        return (
            f"<Speaker {self.config.device} buffered={self.buffer.buffered} played={self.played} "
            f"underruns={self.underruns} {self.tracker!r}>"
        )

    async def run(self, io: mg.NodeIO) -> None:
        self.io = io
        self.emit = io.outlets["playback"].emit
        cfg = self.config
        if cfg.device == "virtual":
            self.device = VirtualDevice(io, self.buffer, cfg.sample_rate, self.block, self._poke)
        else:
            self.device = await PortAudioDevice.open(
                io,
                self.buffer,
                self._poke,
                device=cfg.device,
                rate=cfg.sample_rate,
                channels=cfg.channels,
                block=self.block,
                stall_ms=cfg.stall_ms,
                start_ms=cfg.start_ms,
            )
        self._heard = self._opened = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._run_device)
            nursery.start_soon(self._read)
            while not (self.input_done and self.tracker.unplayed == 0):
                with trio.move_on_at(self._stall_deadline()):
                    await self._poked.wait()
                self._poked = trio.Event()
                self._observe(self.buffer.take())
                if self._stopped is not None:
                    self._fail(self._stopped)
                if (now := trio.current_time()) >= self._stall_deadline():
                    if not self._started:
                        self._fail(self._not_started(now))
                    self._fail(f"stopped calling back: none for {now - self._heard:.3f} s, audio waiting for it")
            await self.device.drain(self._audible_until)
            nursery.cancel_scope.cancel()
        io.log(
            "speaker_total",
            received=self.received,
            played=self.played,
            blocks=self.blocks,
            underruns=self.underruns,
            device_underflows=self.device_underflows,
        )

    async def cleanup(self) -> None:
        if self.device is not None:
            await (self.device.abort() if self._failed else self.device.aclose())

    async def _run_device(self) -> None:
        assert self.device is not None
        self._stopped = await self.device.run()
        self._poke()

    def _stall_deadline(self) -> float:
        """When (trio's clock) the device will be taken for stopped (or, before its first callback, for never
        started) if it does not call back: never while it owes nothing."""
        assert self.device is not None
        if self.tracker.unplayed == 0:
            return math.inf
        if not self._started:
            return math.inf if self.device.start is None else self._opened + self.device.start
        if self.device.stall is None:
            return math.inf
        return max(self._heard, self._waiting) + self.device.stall

    def _fail(self, what: str) -> NoReturn:
        """The device stopped playing: finish every segment owed as interrupted, then fail naming the device."""
        observed, _ = self.buffer.cut()
        self._observe(observed)  # what the device took before it stopped counts as played
        unplayed = self.tracker.unplayed / self.config.sample_rate
        log_playback(self.io, self.tracker.interrupt(self.io.time())[0], self.emit)
        self._failed = True
        raise mg.ProviderError(
            f"speaker {self.io.name!r}: output device {self.config.device!r} {what}; {unplayed:.3f} s of audio "
            f"queued for it were never played"
        )

    def _poke(self) -> None:
        """Observations are waiting (called in the trio thread: directly, or through ``run_sync_soon``)."""
        self._poked.set()

    async def _read(self) -> None:
        assert self.device is not None
        async for msg in self.io.inlets["audio"]:
            if self._failed:
                return  # woken before the failure cancelled it: the tracker is closed
            if isinstance(msg, mg.AudioFrame):
                self.received += 1
                if self.tracker.unplayed == 0:  # the device owes audio again: the watchdog starts from now
                    self._waiting = trio.current_time()
                    self._poke()
                segment = self.tracker.queue(msg.samples_per_channel, msg.timestamp / msg.sample_rate)
                if segment != self._last_segment:
                    self._starts.append(self._end)
                    self._last_segment = segment
                self._end += msg.samples_per_channel
                self.buffer.write(msg.samples)
                self.device.wake()
            elif isinstance(msg, mg.Flush):
                self.buffer.close_segment()
                log_playback(self.io, self.tracker.flush(self.io.time()), self.emit)
            elif isinstance(msg, mg.Interrupt):
                self._interrupt()
        self.buffer.close_segment()
        log_playback(self.io, self.tracker.end(self.io.time()), self.emit)
        self.input_done = True
        self._poke()
        with self.io.inlets["audio"].after_end() as late:  # a barge-in while the rest plays out still cuts it
            async for msg in late:  # (cancelled once all is played)
                if isinstance(msg, mg.Interrupt) and not self._failed:
                    self._interrupt()
                    self._poke()

    def _interrupt(self) -> None:
        observed, _ = self.buffer.cut()
        self._observe(observed)  # what the device took before the cut counts as played
        self._end = self._position
        self._starts.clear()
        events, _ = self.tracker.interrupt(self.io.time())
        log_playback(self.io, events, self.emit)

    def _observe(self, observed: list[Played]) -> None:
        """Turn the device's observations into tracker calls and playback events, in order."""
        if not observed:
            return
        assert self.device is not None
        self._heard = trio.current_time()
        if not self._started:
            self._watch_start(observed)
        graph_time = self.device.graph_time
        self.blocks += len(observed)
        for played in observed:
            if played.samples:
                self._play(played.samples, graph_time(played.t))
            self.underruns += played.underrun
            self.device_underflows += played.device_underflow
        self._log_underruns()

    def _watch_start(self, observed: list[Played]) -> None:
        """Has the device started: do its callbacks span ``START_SPAN`` of its own clock?"""
        for played in observed:
            if self._first_wake is None:
                self._first_wake = (played.now, self._heard)
            elif abs(played.now - self._first_wake[0]) >= START_SPAN or (
                played.now == 0.0 and self._heard - self._first_wake[1] >= START_SPAN  # a clock standing at 0
            ):
                self._started = True
                assert self.device is not None
                if self.device.start is not None:  # a real device: how long it took to start is worth knowing
                    self.io.log("device_started", after=round(self._heard - self._opened, 3), filled=self._filled)
                return
            self._filled += 1

    def _not_started(self, now: float) -> str:
        waited = f"{now - self._opened:.3f} s since its stream was opened"
        if self._first_wake is None:
            return f"never started: no callback in {waited}, audio waiting for it"
        return (
            f"never started: it took {self._filled} blocks to fill its buffer, then did not call back again in "
            f"{waited}, audio waiting for it"
        )

    def _play(self, samples: int, t: float) -> None:
        """The device played ``samples``, the first at graph time ``t``: tell the tracker, one piece per segment."""
        first, end = self._position, self._position + samples
        at = first
        while at < end:
            while self._starts and self._starts[0] <= at:
                self._starts.popleft()
            upto = min(end, self._starts[0]) if self._starts else end
            events = self.tracker.played(upto - at, t + (at - first) / self.config.sample_rate)
            log_playback(self.io, events, self.emit)
            at = upto
        self._position = end
        self.played += samples
        self._audible_until = t + samples / self.config.sample_rate

    def _log_underruns(self) -> None:
        count = self.underruns + self.device_underflows
        if count == self._underruns_logged:
            return
        now = self.io.time()
        if self._underrun_logged is None or now - self._underrun_logged >= 1.0:
            self.io.log("underrun", underruns=self.underruns, device_underflows=self.device_underflows)
            self._underrun_logged = now
            self._underruns_logged = count
