"""Where a speaker's buffer is played: the virtual device (graph clock) and a PortAudio output stream.

Each device consumes the speaker's :class:`~._playout.DeviceBuffer` one block at a time and pokes the node
when observations are waiting; neither ever runs node code in another thread.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol, final

import numpy as np
import trio

import mediagraph as mg

from . import _portaudio
from ._playout import DeviceBuffer

__all__ = ["Device", "PortAudioDevice", "VirtualDevice"]


class Device(Protocol):
    """Where a speaker's buffer is played. The node pokes itself when observations are waiting."""

    #: seconds without a callback after which a device with audio waiting is taken for stopped; ``None``:
    #: it cannot stall
    stall: float | None
    #: seconds from opening within which the device must call back for the first time if audio waits for it
    #: (else it never started); ``None``: it cannot fail to start
    start: float | None

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


@final
class VirtualDevice:
    """Consumes one block every ``block`` samples of graph time; idle (no tick) while the buffer is empty."""

    def __init__(self, io: mg.NodeIO, buffer: DeviceBuffer, rate: int, block: int, poke: Any) -> None:
        self._io = io
        self._buffer = buffer
        self._block = block
        self._period = block / rate
        self._poke = poke
        self._audio = trio.Event()
        self.stall: float | None = None  # it plays on the graph clock
        self.start: float | None = None

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


@final
class PortAudioDevice:
    """A ``sounddevice.RawOutputStream`` whose callback thread plays the buffer and pokes the node.

    A raw stream hands the callback PortAudio's buffer as is; the node makes its own numpy view of it, so
    nothing in the callback depends on how ``sounddevice`` builds arrays.

    Resource handling: :meth:`open` opens and starts the stream; :meth:`aclose` (or :meth:`abort`, once it
    stopped playing) closes it (the speaker calls it from its cleanup, so it runs however the node ends,
    cancellation while opening included: opening is not abandoned, the node gets the stream and its cleanup
    closes it).
    """

    def __init__(self, io: mg.NodeIO, stream: Any, ended: trio.Event, stall: float | None, start: float | None) -> None:
        self._io = io
        self._stream = stream
        self._ended = ended
        self._closed = False
        self.stall = stall
        self.start = start

    def __repr__(self) -> str:
        return f"<PortAudioDevice {self._stream!r}>"

    @classmethod
    async def open(
        cls,
        io: mg.NodeIO,
        buffer: DeviceBuffer,
        poke: Any,
        *,
        device: str | int,
        rate: int,
        channels: int,
        block: int,
        stall_ms: float | None,
        start_ms: float | None,
    ) -> PortAudioDevice:
        """Open and start the stream (in a worker thread: PortAudio blocks while it opens a device).

        Args:
            stall_ms: how long beyond its latency a started device may go without calling back (``None``:
                forever).
            start_ms: how long an opened device may take to call back for the first time (``None``: forever).

        Raises:
            ProviderError: PortAudio is missing, the device does not exist or cannot play this format; the
                message names the node and the device and lists the available devices.
        """
        token = trio.lowlevel.current_trio_token()
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
            device,
            rate,
            channels,
            block,
            callback,
            finished,
        )
        io.log("device_opened", device=info["name"], index=info["index"], latency=stream.latency)
        # The device calls back at least once per wake-up of its own, which its latency bounds.
        stall = None if stall_ms is None else float(stream.latency) + stall_ms / 1000
        return cls(io, stream, ended, stall, None if start_ms is None else start_ms / 1000)

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
