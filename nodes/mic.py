"""``mic``: records from a PortAudio input device in fixed frames with exact timestamps.

Theory of operation. PortAudio's callback thread copies each block (exactly one frame: the stream's block
size is the frame size) and posts it to the node through ``TrioToken.run_sync_soon``; that thread never runs
node code. In the trio thread the posted call only appends to a bounded queue, which the node's task drains
onto the ``audio`` outlet. Frame ``n`` always has timestamp ``n * frame_len`` (samples since the stream
began), counted as blocks arrive, so timestamps are exact and consecutive; a frame dropped because the node
fell behind leaves a visible gap.

Nothing is lost silently: a block that arrives while the queue is full pushes out the oldest one and counts
an overrun, PortAudio's own ``input_overflow`` flag (the device lost samples before the callback saw them)
is counted too, both are logged as ``mic_overrun`` events (at most one a second) and in ``mic_total``.
Nor does the node wait forever on a device that is gone: when the stream ends by itself (``sounddevice``'s
``finished_callback``: device unplugged, or PortAudio gave up on it), the node sends the frames it had and
fails, naming the device.
"""

from __future__ import annotations

import contextlib
from collections import deque
from typing import Any, final

import attrs
import numpy as np
import numpy.typing as npt
import trio

import mediagraph as mg

from . import _portaudio
from ._audio import holds_a_sample

_v = attrs.validators


def _device_ok(_: object, attribute: attrs.Attribute[Any], value: str | int) -> None:
    if value == "" or (isinstance(value, int) and value < 0):
        raise ValueError(f"{attribute.name} must be a device name or an index >= 0, got {value!r}")
    if value == "virtual":
        raise ValueError(
            f"{attribute.name} 'virtual': a mic has no virtual device (a speaker has); for recorded input use a "
            "file_source node"
        )


@final
@attrs.frozen(kw_only=True)
class MicConfig:
    """Args:
    device: a PortAudio input device: a name, part of one (``pulse``, ``default``), or an index, as
        ``mediagraph devices`` lists them.
    sample_rate: Hz to record at.
    channels: channel count to record.
    frame_ms: length of each frame (and of the device's blocks), in milliseconds.
    queue_frames: frames held for the node when it falls behind; beyond that the oldest are dropped and
        counted as overruns.
    """

    device: str | int = attrs.field(default="default", validator=_device_ok, metadata={"device": "input"})
    sample_rate: int = attrs.field(default=48000, validator=[_v.ge(8000), _v.le(384000)])
    channels: int = attrs.field(default=1, validator=[_v.ge(1), _v.le(8)])
    frame_ms: float = attrs.field(
        default=10.0, validator=[_v.gt(0), _v.le(1000), holds_a_sample(lambda c: c.sample_rate)]
    )
    queue_frames: int = attrs.field(default=50, validator=_v.ge(1))

    @property
    def media_seconds(self) -> float | None:
        """A live device never ends on its own (``None``), for the command line's progress and ``check``."""
        return None


@final
@mg.node_type("mic", config=MicConfig, uses_device=lambda c: True)
class Mic(mg.Actor):
    """Records from a sound device in fixed frames; overruns are counted and reported, never silent.

    Outlet ``audio`` (the config's rate and channels). Logs ``mic_started`` (``at``: graph time of the first
    sample), ``mic_overrun`` events and ``mic_total`` (frames, overruns, input_overflows).

    Raises:
        ProviderError: at start, when PortAudio is missing or the device is missing or cannot record this
            format; the message names the node and the device and lists the available devices. Later, when
            the stream ends by itself (the device is gone).

    Resource handling: the input stream is opened in ``run`` and closed in ``cleanup`` (cancellation while
    opening included: opening is not abandoned, so cleanup gets the stream to close).
    Cancellation: a source: a graceful stop cancels it; whatever is queued is not sent.
    """

    @staticmethod
    def ports(config: MicConfig) -> mg.Ports:
        fmt = mg.AudioFormat(sample_rate=config.sample_rate, channels=config.channels)
        return mg.Ports(outlets=[mg.OutletSpec(name="audio", format=fmt)])

    def __init__(self, config: MicConfig) -> None:
        self.config = config
        self.frame_len = round(config.sample_rate * config.frame_ms / 1000)
        self.queue: deque[tuple[int, npt.NDArray[np.int16], float]] = deque()  # (index, samples, ADC time)
        self.arrived = 0  # blocks the device delivered
        self.sent = 0
        self.overruns = 0  # frames dropped because the node was behind
        self.input_overflows = 0  # blocks PortAudio flagged: samples lost before the callback
        self.stream: Any = None
        self._ended = False  # the stream ended by itself
        self._ready = trio.Event()
        self._logged_at: float | None = None
        self._logged_count = 0

    def __repr__(self) -> str:
        return (
            f"<Mic {self.config.device} arrived={self.arrived} sent={self.sent} queued={len(self.queue)} "
            f"overruns={self.overruns} input_overflows={self.input_overflows}>"
        )

    async def run(self, io: mg.NodeIO) -> None:
        self.io = io
        self.stream = await self._open(io)
        outlet = io.outlets["audio"]
        rate = self.config.sample_rate
        while True:
            await self._ready.wait()
            self._ready = trio.Event()
            while self.queue:
                index, samples, t = self.queue.popleft()
                if self.sent == 0:
                    first = _portaudio.map_clock(self.stream.time, io.time(), t) - index * self.frame_len / rate
                    io.log("mic_started", at=first)
                self._log_overruns()
                frame = mg.AudioFrame(
                    samples=samples, sample_rate=rate, channels=self.config.channels, timestamp=index * self.frame_len
                )
                await outlet.send(frame)
                self.sent += 1
            if self._ended:
                raise mg.ProviderError(
                    f"mic {io.name!r}: input device {self.config.device!r} stopped recording: its stream ended "
                    f"(device unplugged or gone, or PortAudio stopped it) after {self.arrived} frames"
                )

    async def cleanup(self) -> None:
        if self.stream is None:
            return
        stream, self.stream = self.stream, None
        # Closing waits for a callback in progress to return: a few milliseconds, off the trio thread.
        await trio.to_thread.run_sync(stream.close)
        self.io.log(
            "mic_total",
            frames=self.arrived,
            sent=self.sent,
            overruns=self.overruns,
            input_overflows=self.input_overflows,
        )

    async def _open(self, io: mg.NodeIO) -> Any:
        """Open and start the input stream, in a worker thread (PortAudio blocks while it opens a device)."""
        token = trio.lowlevel.current_trio_token()
        arrived = self._arrived
        channels = self.config.channels

        # Runs in PortAudio's thread: copy the block (PortAudio reuses its memory) and post it; nothing else.
        # A raw stream hands over PortAudio's buffer as is; the copy is made here, independent of how
        # sounddevice would build arrays.
        def callback(indata: Any, frames: int, time: Any, status: Any) -> None:
            t = time.inputBufferAdcTime or time.currentTime
            samples = np.frombuffer(indata, dtype=np.int16).reshape(frames, channels).copy()
            # RunFinishedError: a last callback while the stream closes after trio.run ended.
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(arrived, samples, t, bool(status.input_overflow))

        # Runs once the stream is inactive (in PortAudio's thread, or in the one closing it): tell the node.
        def finished() -> None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(self._stream_ended)

        cfg = self.config
        stream, info = await trio.to_thread.run_sync(
            _portaudio.open_stream,
            f"mic {io.name!r}",
            "input",
            cfg.device,
            cfg.sample_rate,
            channels,
            self.frame_len,
            callback,
            finished,
        )
        io.log("device_opened", device=info["name"], index=info["index"], latency=stream.latency)
        return stream

    def _arrived(self, samples: npt.NDArray[np.int16], t: float, overflow: bool) -> None:
        """One block from the device, in the trio thread through ``run_sync_soon``: queue it, nothing that
        could fail (an exception here would crash trio itself)."""
        if len(self.queue) >= self.config.queue_frames:
            self.queue.popleft()
            self.overruns += 1
        self.queue.append((self.arrived, samples, t))
        self.arrived += 1
        self.input_overflows += overflow
        self._ready.set()

    def _stream_ended(self) -> None:
        """The stream is inactive, in the trio thread through ``run_sync_soon``: ended by itself, unless the
        node already closed it in ``cleanup`` (then nobody is listening)."""
        self._ended = True
        self._ready.set()

    def _log_overruns(self) -> None:
        count = self.overruns + self.input_overflows
        if count == self._logged_count:
            return
        now = self.io.time()
        if self._logged_at is None or now - self._logged_at >= 1.0:
            self.io.log("mic_overrun", overruns=self.overruns, input_overflows=self.input_overflows)
            self._logged_at = now
            self._logged_count = count
