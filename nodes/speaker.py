"""``speaker``: plays audio and reports what was actually played, as playback events.

``device: virtual`` plays out on the graph clock with no sound card (servers, tests, demos, virtual clock):
every ``block_ms`` the virtual device consumes one block of what is buffered, exactly as a sound card's
callback would. Events come from a :class:`mediagraph.PlaybackTracker`, so their order holds by construction.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import trio

import mediagraph as mg

_v = attrs.validators


@attrs.frozen(kw_only=True)
class SpeakerConfig:
    """Args:
    device: ``virtual`` (graph clock, no sound card) or a PortAudio device name or index.
    sample_rate: Hz the device plays at; the inlet accepts only this rate.
    channels: channel count the device plays; the inlet accepts only this count.
    block_ms: how much the device consumes at a time.
    """

    device: str = "virtual"
    sample_rate: int = attrs.field(default=48000, validator=[_v.ge(8000), _v.le(384000)])
    channels: int = attrs.field(default=1, validator=[_v.ge(1), _v.le(8)])
    block_ms: float = attrs.field(default=10.0, validator=[_v.gt(0), _v.le(200)])


PLAYBACK_TYPES = (mg.PlaybackStarted, mg.PlaybackFinished)


def log_playback(io: mg.NodeIO, events: list[mg.PlaybackEvent], emit: Any) -> None:
    """Send each event on the playback outlet and record it in the event log, in order."""
    for event in events:
        emit(event)
        if isinstance(event, mg.PlaybackStarted):
            io.log("playback_started", segment=event.segment, generation=event.generation)
        else:
            io.log(
                "playback_finished",
                segment=event.segment,
                generation=event.generation,
                position=round(event.position, 6),
                interrupted=event.interrupted,
            )


@mg.node_type("speaker", config=SpeakerConfig, uses_device=lambda c: c.device != "virtual")
class Speaker(mg.Actor):
    """Plays audio; emits playback_started when the device consumes a segment's first sample."""

    @staticmethod
    def ports(config: SpeakerConfig) -> mg.Ports:
        fmt = mg.AudioFormat(sample_rate=config.sample_rate, channels=config.channels)
        return mg.Ports(
            inlets=[mg.InletSpec(name="audio", format=fmt)],
            outlets=[mg.OutletSpec(name="playback", types=PLAYBACK_TYPES)],
        )

    def __init__(self, config: SpeakerConfig) -> None:
        self.config = config
        self.block = round(config.sample_rate * config.block_ms / 1000)
        self.tracker = mg.PlaybackTracker(config.sample_rate)
        self.buffer: deque[npt.NDArray[np.int16]] = deque()
        self.buffered = 0
        self.received = 0  # frames
        self.played = 0  # samples
        self.underruns = 0
        self.input_done = False
        self._wake = trio.Event()

    def __repr__(self) -> str:
        return f"<Speaker {self.config.device} buffered={self.buffered} played={self.played} {self.tracker!r}>"

    async def run(self, io: mg.NodeIO) -> None:
        self.io = io
        self.emit = io.outlets["playback"].emit
        if self.config.device != "virtual":
            raise mg.ProviderError(
                f"speaker {io.name!r}: device {self.config.device!r}: only 'virtual' is available in this build"
            )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read)
            await self._virtual_device()
            nursery.cancel_scope.cancel()
        io.log("speaker_total", received=self.received, played=self.played, underruns=self.underruns)

    async def _read(self) -> None:
        async for msg in self.io.inlets["audio"]:
            if isinstance(msg, mg.AudioFrame):
                self.received += 1
                self.tracker.queue(msg.samples_per_channel)
                self.buffer.append(msg.samples)
                self.buffered += msg.samples_per_channel
            elif isinstance(msg, mg.Flush):
                log_playback(self.io, self.tracker.flush(self.io.time()), self.emit)
            elif isinstance(msg, mg.Interrupt):
                events, _ = self.tracker.interrupt(self.io.time())
                self.buffer.clear()
                self.buffered = 0
                log_playback(self.io, events, self.emit)
            self._wake.set()
        log_playback(self.io, self.tracker.end(self.io.time()), self.emit)
        self.input_done = True
        self._wake.set()

    def _consume(self, n: int) -> int:
        """Take up to ``n`` samples from the buffer, as the device would; returns how many it got."""
        got = 0
        while got < n and self.buffer:
            head = self.buffer[0]
            take = min(n - got, head.shape[0])
            if take == head.shape[0]:
                self.buffer.popleft()
            else:
                self.buffer[0] = head[take:]
            got += take
        self.buffered -= got
        return got

    async def _virtual_device(self) -> None:
        period = self.block / self.config.sample_rate
        tick = self.io.time()
        while True:
            if not self.buffered:
                if self.input_done:
                    return
                # An idle virtual device waits for audio instead of spinning, then resumes on its grid.
                self._wake = trio.Event()
                await self._wake.wait()
                now = self.io.time()
                tick += max(0, -(-(now - tick) // period)) * period
                continue
            await self.io.sleep_until(tick)
            got = self._consume(self.block)
            if got:
                self.played += got
                log_playback(self.io, self.tracker.played(got, tick), self.emit)
            if got < self.block and self.tracker.open_segment is not None:
                self.underruns += 1
            tick += period
