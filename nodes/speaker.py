"""``speaker``: plays audio and reports what was actually played, as playback events.

Theory of operation. The node writes the audio it receives into a :class:`DeviceBuffer`; a device consumes
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
An interrupt takes the observations not yet handled and empties the buffer in one step under the lock, so the
position of an interrupted segment counts exactly the samples the device had taken.

A PortAudio device can stop playing while the node still owes playback events: its stream ends by itself
(device unplugged, PortAudio gave up on it: ``sounddevice``'s ``finished_callback`` says so), or it simply
stops calling back (a hung sound server). Either way the node ends every unfinished segment as interrupted at
the position the device really played, the same way as an interrupt, then fails with a ``ProviderError``
naming the node and the device. A stall is told by time: a device calls back at least once per wake-up of
its own (its latency, at most) whether it has audio or not, so one that has not called back for ``stall_ms``
beyond its latency while audio waits for it is taken for stopped.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections import deque
from typing import Any, NamedTuple, NoReturn, Protocol

import attrs
import numpy as np
import numpy.typing as npt
import trio

import mediagraph as mg

from . import _portaudio

_v = attrs.validators

Samples = npt.NDArray[np.int16]


def _device_ok(_: object, attribute: attrs.Attribute[Any], value: str | int) -> None:
    if value == "" or (isinstance(value, int) and value < 0):
        raise ValueError(f"{attribute.name} must be 'virtual', a device name or an index >= 0, got {value!r}")


def _stall_ok(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not 0 < value <= 60000:
        raise ValueError(f"{attribute.name} must be None or > 0 and <= 60000 (ms), got {value!r}")


@attrs.frozen(kw_only=True)
class SpeakerConfig:
    """Args:
    device: ``virtual`` (graph clock, no sound card) or a PortAudio output device: a name, part of one
        (``pulse``, ``default``), or an index, as ``python -m sounddevice`` lists them.
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
    """

    device: str | int = attrs.field(default="virtual", validator=_device_ok)
    sample_rate: int = attrs.field(default=48000, validator=[_v.ge(8000), _v.le(384000)])
    channels: int = attrs.field(default=1, validator=[_v.ge(1), _v.le(8)])
    block_ms: float = attrs.field(default=10.0, validator=[_v.gt(0), _v.le(200)])
    prebuffer_ms: float = attrs.field(default=20.0, validator=[_v.ge(0), _v.le(2000)])
    stall_ms: float | None = attrs.field(default=1000.0, validator=_stall_ok)


PLAYBACK_TYPES = (mg.PlaybackStarted, mg.PlaybackFinished)


def log_playback(io: mg.NodeIO, events: list[mg.PlaybackEvent], emit: Any) -> None:
    """Send each event on the playback outlet, in order; the runtime checks each one against the segment
    contract and records it in the event log as it leaves (``at``: the event's own time, for
    ``playback_started`` when the first sample was played; ``sent``: how much of the segment was queued)."""
    for event in events:
        emit(event)


class Played(NamedTuple):
    """What a device observed while consuming one block."""

    samples: int  # taken from the buffer (the rest of the block was silence)
    t: float  # when the first of them is played, on the device's clock
    underrun: bool  # the buffer ran dry while the segment was still open (upstream was late)
    device_underflow: bool  # the device itself reported an output underflow (its callback was late)


class DeviceBuffer:
    """Audio waiting for the device, and the device's observations waiting for the node.

    Thread-safe: the node writes and cuts from trio, a device reads from its callback thread; every method
    holds the lock for a few list operations and one copy at most.

    The device's wake-ups: the blocks it asks for at one instant (``now`` closer than half a block apart) are
    one wake-up. A device whose own buffer holds several blocks takes them back to back, all of them from
    what was buffered when it woke up, so the prebuffer is counted beyond the most it took in one of its
    recent wake-ups, else those blocks would use up the margin (a 20 ms prebuffer before a device that takes
    20 ms at each wake-up leaves upstream no time at all to be late). A device whose ``now`` never moves
    (a host API that leaves PortAudio's ``currentTime`` at 0) is counted as taking one block at a time.

    Args:
        prebuffer: samples a segment needs buffered, beyond what the device takes in a wake-up, before the
            device starts it, or resumes it after running dry (unless it is all there); 0 starts at once.
        rate: samples per second, to tell a wake-up's blocks from the next wake-up's.
    """

    #: wake-ups whose size the prebuffer allows for: the device's recent pattern, which a one-off catch-up
    #: after a stall does not inflate for long.
    WAKES = 8

    def __init__(self, prebuffer: int = 0, rate: int = 48000) -> None:
        self._lock = threading.Lock()
        self._prebuffer = prebuffer
        self._rate = rate
        self._chunks: deque[Samples] = deque()
        self._observed: list[Played] = []
        self.buffered = 0  # samples
        self._open = False  # more audio of the current segment is expected
        self._playing = False  # the device is playing from the buffer (else waiting for it to fill)
        self._wake: float | None = None  # `now` of the device's current wake-up
        self._wake_asked = 0  # samples asked for in the current wake-up, before this block
        self._wakes: deque[int] = deque(maxlen=self.WAKES)  # samples asked for in the last complete wake-ups

    def __repr__(self) -> str:
        return (
            f"<DeviceBuffer {self.buffered} samples, {len(self._observed)} observations, "
            f"wake-ups of up to {max(self._wakes, default=0)} samples>"
        )

    def write(self, samples: Samples) -> None:
        """Queue ``samples`` (never written to afterwards: frames are immutable)."""
        with self._lock:
            self._chunks.append(samples)
            self.buffered += samples.shape[0]
            self._open = True

    def close_segment(self) -> None:
        """No more audio of the current segment: running dry from now on is its end, not an underrun."""
        with self._lock:
            self._open = False

    def take(self) -> list[Played]:
        """The observations since the last call, oldest first."""
        with self._lock:
            observed, self._observed = self._observed, []
        return observed

    def cut(self) -> tuple[list[Played], int]:
        """Empty the buffer: the observations not yet taken, and how many samples were discarded."""
        with self._lock:
            observed, self._observed = self._observed, []
            discarded, self.buffered = self.buffered, 0
            self._chunks.clear()
            self._open = self._playing = False
        return observed, discarded

    def read(self, count: int, now: float, t: float, out: Samples | None = None, device_underflow: bool = False) -> int:
        """The device consumes a block of ``count`` samples at ``now``, the first played at ``t`` (both on the
        device's clock).

        Fills ``out`` (when given) with what is buffered and silence after it, and records the observation.
        Returns how many buffered samples it took.
        """
        got = 0
        with self._lock:
            if self._wake is None or now - self._wake >= count / self._rate / 2:
                if self._wake is not None:
                    self._wakes.append(self._wake_asked)
                self._wake, self._wake_asked = now, 0
            if not self._playing:
                # What this wake-up is still going to take, this block included.
                ahead = max(max(self._wakes, default=0), self._wake_asked + count) - self._wake_asked
                ready = not self._prebuffer or self.buffered >= self._prebuffer + ahead
                self._playing = self.buffered > 0 and (ready or not self._open)
            self._wake_asked += count
            if self._playing:
                while got < count and self._chunks:
                    head = self._chunks[0]
                    take = min(count - got, head.shape[0])
                    if out is not None:
                        out[got : got + take] = head[:take]
                    if take == head.shape[0]:
                        self._chunks.popleft()
                    else:
                        self._chunks[0] = head[take:]
                    got += take
                self.buffered -= got
            # Running dry while playing ends playback until the buffer fills again: the end of a segment, or,
            # while more of it is expected, an underrun.
            underrun = self._playing and got < count and self._open
            self._playing = self._playing and got == count
            self._observed.append(Played(got, t, underrun, device_underflow))
        if out is not None:
            out[got:] = 0
        return got


class Device(Protocol):
    """Where a speaker's buffer is played. The node pokes itself when observations are waiting."""

    #: seconds without a callback after which a device with audio waiting is taken for stopped; ``None``:
    #: it cannot stall
    stall: float | None

    def graph_time(self, t: float) -> float:
        """An observation's time (device clock) on the graph clock."""

    def wake(self) -> None:
        """Audio was written to the buffer."""

    async def run(self) -> str:
        """Play until cancelled; return only if the device stopped by itself, saying how."""

    async def drain(self, until: float) -> None:
        """Return once the device has played out what it took: until graph time ``until``."""

    async def aclose(self) -> None:
        """Stop playing, after what the device took, and release the device; idempotent."""

    async def abort(self) -> None:
        """Release a device that stopped playing, without waiting for it to play anything; idempotent.
        Cancellation: gives up on a device that does not even let go."""


class VirtualDevice:
    """Consumes one block every ``block`` samples of graph time; idle (no tick) while the buffer is empty."""

    def __init__(self, io: mg.NodeIO, buffer: DeviceBuffer, config: SpeakerConfig, block: int, poke: Any) -> None:
        self._io = io
        self._buffer = buffer
        self._block = block
        self._period = block / config.sample_rate
        self._poke = poke
        self._audio = trio.Event()
        self.stall: float | None = None  # it plays on the graph clock

    def __repr__(self) -> str:
        return f"<VirtualDevice block={self._block}>"

    def graph_time(self, t: float) -> float:
        return t

    def wake(self) -> None:
        self._audio.set()

    async def run(self) -> str:
        tick = self._io.time()
        while True:
            if not self._buffer.buffered:
                # An idle virtual device waits for audio instead of spinning, then resumes on its grid.
                self._audio = trio.Event()
                await self._audio.wait()
                now = self._io.time()
                tick += max(0, -(-(now - tick) // self._period)) * self._period
                continue
            await self._io.sleep_until(tick)
            self._buffer.read(self._block, tick, tick)
            self._poke()
            tick += self._period

    async def drain(self, until: float) -> None:
        pass  # a virtual block is played the moment it is taken

    async def aclose(self) -> None:
        pass

    async def abort(self) -> None:
        pass


class PortAudioDevice:
    """A ``sounddevice.RawOutputStream`` whose callback thread plays the buffer and pokes the node.

    A raw stream hands the callback PortAudio's buffer as is; the node makes its own numpy view of it, so
    nothing in the callback depends on how ``sounddevice`` builds arrays.

    Resource handling: :meth:`open` opens and starts the stream; :meth:`aclose` (or :meth:`abort`, once it
    stopped playing) closes it (the speaker calls it from its cleanup, so it runs however the node ends,
    cancellation while opening included: opening is not abandoned, the node gets the stream and its cleanup
    closes it).
    """

    def __init__(self, io: mg.NodeIO, stream: Any, ended: trio.Event, stall: float | None) -> None:
        self._io = io
        self._stream = stream
        self._ended = ended
        self._closed = False
        self.stall = stall

    def __repr__(self) -> str:
        return f"<PortAudioDevice {self._stream!r}>"

    @classmethod
    async def open(
        cls, io: mg.NodeIO, buffer: DeviceBuffer, config: SpeakerConfig, block: int, poke: Any
    ) -> PortAudioDevice:
        """Open and start the stream (in a worker thread: PortAudio blocks while it opens a device).

        Raises:
            ProviderError: PortAudio is missing, the device does not exist or cannot play this format; the
                message names the node and the device and lists the available devices.
        """
        token = trio.lowlevel.current_trio_token()
        channels = config.channels
        ended = trio.Event()

        # Runs in PortAudio's thread: fill the block from the buffer, poke the node, nothing else.
        def callback(outdata: Any, frames: int, time: Any, status: Any) -> None:
            t = time.outputBufferDacTime or time.currentTime
            out = np.frombuffer(outdata, dtype=np.int16).reshape(frames, channels)
            buffer.read(frames, time.currentTime, t, out, bool(status.output_underflow))
            # RunFinishedError: a last callback while the stream closes after trio.run ended.
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(poke)

        # Runs once the stream is inactive, in PortAudio's thread or in the one that stopped it: tell the node.
        def finished() -> None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(ended.set)

        stream, info = await trio.to_thread.run_sync(
            _portaudio.open_stream,
            f"speaker {io.name!r}",
            "output",
            config.device,
            config.sample_rate,
            channels,
            block,
            callback,
            finished,
        )
        io.log("device_opened", device=info["name"], index=info["index"], latency=stream.latency)
        # The device calls back at least once per wake-up of its own, which its latency bounds.
        stall = None if config.stall_ms is None else float(stream.latency) + config.stall_ms / 1000
        return cls(io, stream, ended, stall)

    def graph_time(self, t: float) -> float:
        return _portaudio.map_clock(self._stream.time, self._io.time(), t)

    def wake(self) -> None:
        pass  # the stream plays continuously, silence included

    async def run(self) -> str:
        # The stream plays in PortAudio's thread; it ends by itself only when it can play no more. (Stopping
        # it ends it too, but only in cleanup, once the node no longer runs this.)
        await self._ended.wait()
        return "stopped playing: its stream ended (device unplugged or gone, or PortAudio stopped it)"

    async def drain(self, until: float) -> None:
        # What the callback took is still in the device's buffers (PortAudio's and the sound server's) until
        # its DAC time; closing the stream earlier would cut it off.
        await self._io.sleep_until(until)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await trio.to_thread.run_sync(self._stop_and_close)

    async def abort(self) -> None:
        if not self._closed:
            self._closed = True
            # A hung sound server may block even an abort (PulseAudio frozen: until it resumes): the node's
            # cleanup, bounded by the runtime, gives up on it then, leaving the worker thread behind.
            await trio.to_thread.run_sync(self._abort_and_close, abandon_on_cancel=True)

    def _stop_and_close(self) -> None:
        # Blocking, so off the trio thread: stopping lets the device play what it already took (its latency,
        # tens of milliseconds; closing alone would cut that tail off), closing releases it.
        try:
            self._stream.stop()
        finally:
            self._stream.close()

    def _abort_and_close(self) -> None:
        # A device that stopped playing has no tail to play: stopping would wait for a dead device to drain
        # its buffers, aborting drops them.
        try:
            self._stream.abort()
        finally:
            self._stream.close()


@mg.node_type("speaker", config=SpeakerConfig, uses_device=lambda c: c.device != "virtual")
class Speaker(mg.Actor):
    """Plays audio; emits playback_started when the device consumes a segment's first sample.

    Inlet ``audio`` (the config's rate and channels); outlet ``playback`` (``PlaybackStarted`` and
    ``PlaybackFinished``). Logs ``speaker_total`` at the end (frames received, samples played, device blocks
    observed, underruns: times the buffer ran dry in the middle of a segment, device_underflows: PortAudio's own
    count of late callbacks) and an ``underrun`` event at most once per second while they happen.

    Raises:
        ProviderError: at start, for a PortAudio device that is missing or cannot be opened; later, for one
            that stopped playing (its stream ended, or it stopped calling back for ``stall_ms`` with audio
            waiting).

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
        self.tracker = mg.PlaybackTracker(config.sample_rate)
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
        if self.config.device == "virtual":
            self.device = VirtualDevice(io, self.buffer, self.config, self.block, self._poke)
        else:
            self.device = await PortAudioDevice.open(io, self.buffer, self.config, self.block, self._poke)
        self._heard = trio.current_time()
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
        """When (trio's clock) the device will be taken for stopped if it does not call back: never while it
        owes nothing."""
        assert self.device is not None
        if self.device.stall is None or self.tracker.unplayed == 0:
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
                observed, _ = self.buffer.cut()
                self._observe(observed)  # what the device took before the cut counts as played
                self._end = self._position
                self._starts.clear()
                events, _ = self.tracker.interrupt(self.io.time())
                log_playback(self.io, events, self.emit)
        self.buffer.close_segment()
        log_playback(self.io, self.tracker.end(self.io.time()), self.emit)
        self.input_done = True
        self._poke()

    def _observe(self, observed: list[Played]) -> None:
        """Turn the device's observations into tracker calls and playback events, in order."""
        if not observed:
            return
        assert self.device is not None
        self._heard = trio.current_time()
        graph_time = self.device.graph_time
        self.blocks += len(observed)
        for played in observed:
            if played.samples:
                self._play(played.samples, graph_time(played.t))
            self.underruns += played.underrun
            self.device_underflows += played.device_underflow
        self._log_underruns()

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
