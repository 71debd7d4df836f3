"""A simulated sound device: a stand-in ``sounddevice`` module whose output stream runs the node's real callback
in a real thread, one block at a time, when the test says so.

The device nodes (``speaker``) import ``sounddevice`` lazily, when they start, so a test puts the stand-in in
``sys.modules`` with :func:`fake_sounddevice` and opens the node on device ``"fake"`` (or index 0). The node
then opens a :class:`FakeStream`, whose thread calls the node's callback once per block: the test chooses when
(each block's stream time), the DAC time of the block's first sample, and whether PortAudio would flag an
underflow. The stream's clock is trio's, so under ``trio.testing.MockClock`` the test owns every time the
node sees.

Driving it step by step, deterministically, from a trio test::

    async def test_my_speaker(mock_clock: trio.testing.MockClock) -> None:
        with fake_sounddevice() as sd:
            async with mg.open_runtime() as rt:
                running = await rt.start(graph, log=log)  # a graph with a speaker on device="fake"
                ...  # wait for its "device_opened" event, then:
                await trio.testing.wait_all_tasks_blocked()
                stream = sd.streams[0]
                while running.result is None:
                    mock_clock.jump(block_seconds)
                    await trio.testing.wait_all_tasks_blocked()  # the graph catches up to the new time
                    now = trio.current_time()
                    stream.step(now, now + latency)  # one callback, in the device thread, finished on return
                    await trio.testing.wait_all_tasks_blocked()  # the node takes what the callback posted
                result = await running.wait()
        # stream.blocks: every block the device played, with its times and samples

Use ``MockClock()`` (no autojump) for this: the test alone moves time, and ``wait_all_tasks_blocked`` after
each jump and after each block means the node has seen exactly what the test released, so the run is the
same every time although the callback runs in another thread. :func:`mediagraph.testing.strategies.device_timings`
generates callback schedules (:class:`DeviceTiming`) for such a loop. To let the callbacks race the node
instead, run :meth:`FakeStream.run_blocks` in a worker thread while trio goes on.

A device that fails is simulated too: one that stops calling back is a test that stops calling
:meth:`FakeStream.step`; one whose stream ends by itself (unplugged, or PortAudio gave up on it) is
:meth:`FakeStream.finish`, which runs the stream's ``finished_callback`` in the device thread, as PortAudio does.

Nothing here imports pytest or hypothesis.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
import types
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple, final

import numpy as np
import numpy.typing as npt
import trio

__all__ = [
    "DeviceBlock",
    "DeviceTiming",
    "FakePortAudioError",
    "FakeSounddevice",
    "FakeStream",
    "fake_sounddevice",
]


class _TimeInfo(NamedTuple):
    # The attribute names of PortAudio's callback time info, as sounddevice passes them.
    currentTime: float
    outputBufferDacTime: float


class _Flags(NamedTuple):
    # The part of sounddevice's CallbackFlags an output callback reads.
    output_underflow: bool


class DeviceBlock(NamedTuple):
    """One block the simulated device played: when its callback ran and what the callback wrote."""

    #: the stream time at which the callback ran (the stream's clock is trio's)
    current: float
    #: the stream time at which the block's first sample is played (PortAudio's ``outputBufferDacTime``)
    dac: float
    #: whether the callback was told of an output underflow
    underflow: bool
    #: what the callback wrote, int16, interleaved as in the raw buffer (``reshape(-1, channels)`` gives one
    #: column per channel)
    samples: npt.NDArray[np.int16]


class DeviceTiming(NamedTuple):
    """One step of a device callback schedule, for a test that releases the device's blocks one by one."""

    #: seconds since the previous callback (0: a burst, several blocks at the same instant)
    interval: float
    #: seconds from the callback to the DAC playing the block's first sample
    latency: float = 0.0
    #: the test interrupts the playing node right after this callback, before trio runs again, so the
    #: interrupt reaches the node before what the callback posted
    interrupt: bool = False


@final
class FakePortAudioError(Exception):
    """``sounddevice.PortAudioError`` of the simulated device."""


@final
class FakeStream:
    """A ``sounddevice.RawOutputStream`` whose callback thread runs one block per :meth:`step`.

    Built by :meth:`FakeSounddevice.RawOutputStream`, with the arguments ``sounddevice`` takes. The attributes
    a test reads: ``blocks`` (every :class:`DeviceBlock` played, in order), ``stopped``, ``aborted`` and
    ``closed`` (whether the node called :meth:`stop`, :meth:`abort` and :meth:`close`), ``finished`` (whether
    the stream became inactive: stopped, aborted, ended by :meth:`finish` or by a callback that raised; the
    ``finished_callback`` then ran, once), and the arguments it was opened with.

    Resource handling: :meth:`start` starts the callback thread; :meth:`close` (which the node calls, as with a
    real stream) ends it and waits for it. A thread left running (a test that never let the node close its
    stream) is a daemon and does not keep the interpreter alive.
    """

    def __init__(
        self,
        *,
        device: int,
        samplerate: int,
        channels: int,
        dtype: str,
        blocksize: int,
        callback: Callable[[bytearray, int, Any, Any], object],
        finished_callback: Callable[[], object] | None = None,
    ) -> None:
        if dtype != "int16":
            raise FakePortAudioError(f"the simulated device plays int16 only, not {dtype}")
        if blocksize <= 0:
            raise FakePortAudioError(f"the simulated device needs a fixed blocksize, not {blocksize}")
        self.device = device
        self.samplerate = samplerate
        self.channels = channels
        self.blocksize = blocksize
        self.callback = callback
        self.finished_callback = finished_callback
        #: reported by the stream like a real one's output latency (the node only logs it)
        self.latency = 0.0
        self.blocks: list[DeviceBlock] = []
        self.stopped = False
        self.aborted = False
        self.closed = False
        self.finished = False
        self._finish_lock = threading.Lock()
        self._steps: queue.Queue[tuple[float, float, bool] | None] = queue.Queue()
        self._done: queue.Queue[DeviceBlock | BaseException] = queue.Queue()
        self._thread = threading.Thread(target=self._play, name="fake-portaudio-callback", daemon=True)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "finished" if self.finished else "open"
        return (
            f"<FakeStream device={self.device} {self.samplerate} Hz {self.channels} ch blocksize={self.blocksize} "
            f"{state}, {len(self.blocks)} blocks played>"
        )

    @property
    def time(self) -> float:
        """The stream's clock, which is trio's: read it from the trio thread only (as the nodes do)."""
        return trio.current_time()

    def start(self) -> None:
        """Start the callback thread (the node does, when it opens the stream)."""
        self._thread.start()

    def stop(self, ignore_errors: bool = True) -> None:
        """Record that the node stopped the stream, which finishes it (the ``finished_callback`` runs, in the
        calling thread); blocks the test still releases are played all the same (the device's latency)."""
        self.stopped = True
        self._finish()

    def abort(self, ignore_errors: bool = True) -> None:
        """Record that the node aborted the stream, which finishes it, like :meth:`stop`."""
        self.aborted = True
        self._finish()

    def finish(self) -> None:
        """The stream ends by itself, as when its device is unplugged: the callback thread runs the
        ``finished_callback`` and ends; later :meth:`step` calls return ``None``. Returns once it has run.

        Raises:
            RuntimeError: the stream was never started.
        """
        if self._thread.ident is None:
            raise RuntimeError(f"{self!r}: finish() before the stream was started")
        self._steps.put(None)
        self._thread.join(timeout=10)

    def _finish(self) -> None:
        with self._finish_lock:
            finished, self.finished = self.finished, True
        if not finished and self.finished_callback is not None:
            self.finished_callback()

    def close(self, ignore_errors: bool = False) -> None:
        """End the callback thread and wait for it; later :meth:`step` calls return ``None``."""
        self.closed = True
        self._steps.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _block(self, current: float, dac: float, underflow: bool) -> DeviceBlock:
        raw = bytearray(self.blocksize * self.channels * 2)  # what PortAudio hands a raw stream: bytes to fill
        self.callback(raw, self.blocksize, _TimeInfo(current, dac), _Flags(underflow))
        return DeviceBlock(current, dac, underflow, np.frombuffer(bytes(raw), np.int16))

    def _play(self) -> None:
        while (step := self._steps.get()) is not None:
            try:
                block = self._block(*step)
            except BaseException as exc:  # handed to step(), which raises it; like PortAudio, the stream ends
                self._finish()
                self._done.put(exc)
                return
            self._done.put(block)
        if not self.closed:  # ended by finish(), not by close()
            self._finish()

    def step(self, current: float, dac: float, underflow: bool = False) -> DeviceBlock | None:
        """Run one callback in the device thread and wait for it to return.

        Blocking, but only for as long as the callback runs (which must not wait for trio): call it from the
        trio thread between ``wait_all_tasks_blocked`` calls.

        Args:
            current: the stream time of the callback (``trio.current_time()``, usually).
            dac: when the block's first sample is played (``current`` plus the device's latency).
            underflow: tell the callback PortAudio had to play silence (a late callback).

        Returns:
            the block played (also appended to ``blocks``), or ``None`` once the stream is closed or has
            ended (:meth:`finish`).

        Raises:
            RuntimeError: the stream was never started.
            BaseException: whatever the callback raised (the stream then plays no more).
        """
        if self.closed or (self.finished and not self._thread.is_alive()):
            return None
        if self._thread.ident is None:
            raise RuntimeError(f"{self!r}: step() before the stream was started")
        self._steps.put((current, dac, underflow))
        while True:
            try:
                done = self._done.get(timeout=0.05)
            except queue.Empty:
                if self._thread.is_alive():
                    continue
                return None  # closed while the step was queued
            if isinstance(done, BaseException):
                raise done
            self.blocks.append(done)
            return done

    def run_blocks(self, times: Sequence[tuple[float, float]]) -> None:
        """Run callbacks back to back in the calling thread, which stands in for the device's thread.

        For tests where the callbacks race the node: run it with ``trio.to_thread.run_sync`` while trio goes
        on. Each block is appended to ``blocks``, none flagged as an underflow; it stops early once the stream
        is closed.

        Args:
            times: ``(current, dac)`` of each callback, as for :meth:`step`.
        """
        for current, dac in times:
            if self.closed:
                return
            self.blocks.append(self._block(current, dac, False))


@final
class FakeSounddevice(types.ModuleType):
    """What the device nodes use of the ``sounddevice`` module, with one simulated output device.

    The device is index 0, named ``name``, with ``output_channels`` output channels and no input; it takes
    any sample rate and block size, int16 only. Each stream the node opens is appended to ``streams``.

    Args:
        name: the device's name, which nodes may give as their ``device``.
        output_channels: how many channels the device plays.
    """

    PortAudioError = FakePortAudioError

    def __init__(self, *, name: str = "fake", output_channels: int = 1) -> None:
        super().__init__("sounddevice", "A simulated sounddevice (mediagraph.testing.FakeSounddevice).")
        self.device_name = name
        self.output_channels = output_channels
        self.streams: list[FakeStream] = []

    def __repr__(self) -> str:
        return f"<FakeSounddevice {self.device_name!r}, {len(self.streams)} streams>"

    def query_devices(self, device: int | str | None = None, kind: str | None = None) -> Any:
        """The device list (``device`` omitted), or the device's description; like ``sounddevice``'s.

        Raises:
            ValueError: no device matches ``device`` (or it has no channels of ``kind``).
        """
        if device is None:
            return f"  0 {self.device_name}, simulated (0 in, {self.output_channels} out)"
        if device not in (self.device_name, 0) or kind == "input":
            raise ValueError(f"No {kind} device matching {device!r}")
        return {
            "name": self.device_name,
            "index": 0,
            "max_output_channels": self.output_channels,
            "max_input_channels": 0,
        }

    def RawOutputStream(self, **kwargs: Any) -> FakeStream:
        """A new (not yet started) :class:`FakeStream`, given ``sounddevice.RawOutputStream``'s arguments."""
        stream = FakeStream(**kwargs)
        self.streams.append(stream)
        return stream


@contextlib.contextmanager
def fake_sounddevice(*, name: str = "fake", output_channels: int = 1) -> Iterator[FakeSounddevice]:
    """Put a :class:`FakeSounddevice` in ``sys.modules["sounddevice"]`` for the duration of the block.

    Needs no test framework. ``sys.modules`` is global: everything in the process that imports ``sounddevice``
    meanwhile gets the fake, so do not run such tests in parallel threads.

    Args:
        name, output_channels: the simulated device's (see :class:`FakeSounddevice`).

    Returns:
        a context manager giving the fake module.

    Resource handling: on exit, whatever was in ``sys.modules["sounddevice"]`` before (the real module, or
    nothing) is put back; streams the node left open are not closed here.
    """
    fake = FakeSounddevice(name=name, output_channels=output_channels)
    saved = sys.modules.get("sounddevice")
    sys.modules["sounddevice"] = fake
    try:
        yield fake
    finally:
        if saved is None:
            sys.modules.pop("sounddevice", None)
        else:
            sys.modules["sounddevice"] = saved
