"""The speaker's playout buffer: audio waiting for a device, and what the device observed while playing it.

Trio-free and thread-safe: the speaker node writes into a :class:`DeviceBuffer` from trio and a device
consumes it one block at a time (a PortAudio callback thread, or the virtual device's task), writing down
for each block what it observed (:class:`Played`), which the node takes in order.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import NamedTuple, final

import numpy as np
import numpy.typing as npt

__all__ = ["DeviceBuffer", "Played"]

Samples = npt.NDArray[np.int16]


class Played(NamedTuple):
    """What a device observed while consuming one block."""

    samples: int  # taken from the buffer (the rest of the block was silence)
    t: float  # when the first of them is played, on the device's clock
    underrun: bool  # the buffer ran dry while the segment was still open (upstream was late)
    device_underflow: bool  # the device itself reported an output underflow (its callback was late)
    now: float = 0.0  # when the callback ran, on the device's clock


@final
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
            self._observed.append(Played(got, t, underrun, device_underflow, now))
        if out is not None:
            out[got:] = 0
        return got
