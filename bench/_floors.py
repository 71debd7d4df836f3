"""The plain-Python floors: the same work as mediagraph's graphs, with no runtime around it.

- ``direct-sync``: stages are plain functions, each calling the next (W1, W2).
- ``direct-asyncio`` / ``direct-trio``: one task per session sleeping until each frame is due, then calling the
  stages as plain functions (W3).
- ``asyncio-queue-64``: one asyncio task per stage, an ``asyncio.Queue(64)`` per link (W1, W2, W3).
- ``trio-chan-64``: one trio task per stage, a trio memory channel of 64 per link (W1, W2, W3).

End of stream is a ``None`` on asyncio queues (the usual asyncio idiom) and the channel closing on trio. The
WAV writer stage drains whatever is queued and hands it to the shared ``WavWriter``, as ``bench_wav`` does;
``direct-sync`` hands over each frame. The writer writes ``WAV_BATCH`` frames at a time for all of them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

import trio

import mediagraph as mg

from ._work import FRAME, OUT_RATE, PERIOD, RATE, Counter, LatencyProbe, Resampler, ToneFrames, WavWriter, apply_gain

CAPACITY: Final = 64

Push = Callable[[mg.AudioFrame], None]
AQueue = asyncio.Queue[mg.AudioFrame | None]


def check(what: str, got: int, expected: int) -> None:
    """A benchmark that lost or duplicated work measures nothing: refuse to report it."""
    if got != expected:
        raise RuntimeError(f"{what}: expected {expected}, got {got}")


def _identity(nxt: Push) -> Push:
    def stage(msg: mg.AudioFrame) -> None:
        nxt(msg)

    return stage


def _chain(k: int, sink: Push) -> Push:
    push = sink
    for _ in range(k):
        push = _identity(push)
    return push


# --- W1: source -> K identities -> counting sink, as fast as possible -------------------------------------


def w1_direct_sync(k: int, n: int) -> float:
    tone = ToneFrames()
    counter = Counter()
    push = _chain(k, counter.count)
    t = time.perf_counter()
    for i in range(n):
        push(tone.frame(i))
    elapsed = time.perf_counter() - t
    check("direct-sync W1 sink frames", counter.frames, n)
    return elapsed


async def _aio_source(tone: ToneFrames, n: int, out: AQueue) -> None:
    for i in range(n):
        await out.put(tone.frame(i))
    await out.put(None)


async def _aio_identity(inq: AQueue, out: AQueue) -> None:
    while (msg := await inq.get()) is not None:
        await out.put(msg)
    await out.put(None)


async def _aio_sink(inq: AQueue, sink: Push) -> None:
    while (msg := await inq.get()) is not None:
        sink(msg)


def w1_asyncio_queue(k: int, n: int) -> float:
    async def main() -> float:
        tone = ToneFrames()
        counter = Counter()
        queues: list[AQueue] = [asyncio.Queue(CAPACITY) for _ in range(k + 1)]
        t = time.perf_counter()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(_aio_source(tone, n, queues[0]))
            for i in range(k):
                tg.create_task(_aio_identity(queues[i], queues[i + 1]))
            tg.create_task(_aio_sink(queues[k], counter.count))
        elapsed = time.perf_counter() - t
        check("asyncio-queue-64 W1 sink frames", counter.frames, n)
        return elapsed

    return asyncio.run(main())


TxChan = trio.MemorySendChannel[mg.AudioFrame]
RxChan = trio.MemoryReceiveChannel[mg.AudioFrame]


async def _trio_source(tone: ToneFrames, n: int, out: TxChan) -> None:
    async with out:
        for i in range(n):
            await out.send(tone.frame(i))


async def _trio_identity(inc: RxChan, out: TxChan) -> None:
    async with inc, out:
        async for msg in inc:
            await out.send(msg)


async def _trio_sink(inc: RxChan, sink: Push) -> None:
    async with inc:
        async for msg in inc:
            sink(msg)


def _trio_links(count: int) -> list[tuple[TxChan, RxChan]]:
    return [trio.open_memory_channel[mg.AudioFrame](CAPACITY) for _ in range(count)]


def w1_trio_chan(k: int, n: int) -> float:
    async def main() -> float:
        tone = ToneFrames()
        counter = Counter()
        links = _trio_links(k + 1)
        t = time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_trio_source, tone, n, links[0][0])
            for i in range(k):
                nursery.start_soon(_trio_identity, links[i][1], links[i + 1][0])
            nursery.start_soon(_trio_sink, links[k][1], counter.count)
        elapsed = time.perf_counter() - t
        check("trio-chan-64 W1 sink frames", counter.frames, n)
        return elapsed

    return trio.run(main)


# --- W2: source -> resample -> gain -> tee -> (WAV writer, counting sink) ----------------------------------


def _w2_check(peer: str, n: int, counter: Counter, writer: WavWriter) -> None:
    check(f"{peer} W2 sink samples", counter.samples, n * FRAME * OUT_RATE // RATE)
    check(f"{peer} W2 WAV samples", writer.samples, counter.samples)


def w2_direct_sync(n: int, path: Path) -> float:
    tone = ToneFrames()
    resampler = Resampler()
    writer = WavWriter(path)
    counter = Counter()

    def tee(frame: mg.AudioFrame) -> None:
        writer.add((frame,))
        counter.count(frame)

    def gain(frame: mg.AudioFrame) -> None:
        tee(apply_gain(frame))

    def resample(frame: mg.AudioFrame) -> None:
        out = resampler.process(frame)
        if out is not None:
            gain(out)

    t = time.perf_counter()
    for i in range(n):
        resample(tone.frame(i))
    tail = resampler.flush()
    if tail is not None:
        gain(tail)
    writer.close()
    elapsed = time.perf_counter() - t
    _w2_check("direct-sync", n, counter, writer)
    return elapsed


def w2_asyncio_queue(n: int, path: Path) -> float:
    async def resample(inq: AQueue, out: AQueue) -> None:
        resampler = Resampler()
        while (msg := await inq.get()) is not None:
            frame = resampler.process(msg)
            if frame is not None:
                await out.put(frame)
        tail = resampler.flush()
        if tail is not None:
            await out.put(tail)
        await out.put(None)

    async def gain(inq: AQueue, out: AQueue) -> None:
        while (msg := await inq.get()) is not None:
            await out.put(apply_gain(msg))
        await out.put(None)

    async def tee(inq: AQueue, a: AQueue, b: AQueue) -> None:
        while (msg := await inq.get()) is not None:
            await a.put(msg)
            await b.put(msg)
        await a.put(None)
        await b.put(None)

    async def wav(inq: AQueue, writer: WavWriter) -> None:
        while True:
            batch = [await inq.get()]
            while not inq.empty():
                batch.append(inq.get_nowait())
            frames = [m for m in batch if m is not None]
            writer.add(frames)
            if len(frames) < len(batch):
                break
        writer.close()

    async def main() -> float:
        tone = ToneFrames()
        writer = WavWriter(path)
        counter = Counter()
        q: list[AQueue] = [asyncio.Queue(CAPACITY) for _ in range(5)]
        t = time.perf_counter()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(_aio_source(tone, n, q[0]))
            tg.create_task(resample(q[0], q[1]))
            tg.create_task(gain(q[1], q[2]))
            tg.create_task(tee(q[2], q[3], q[4]))
            tg.create_task(wav(q[3], writer))
            tg.create_task(_aio_sink(q[4], counter.count))
        elapsed = time.perf_counter() - t
        _w2_check("asyncio-queue-64", n, counter, writer)
        return elapsed

    return asyncio.run(main())


def w2_trio_chan(n: int, path: Path) -> float:
    async def resample(inc: RxChan, out: TxChan) -> None:
        resampler = Resampler()
        async with inc, out:
            async for msg in inc:
                frame = resampler.process(msg)
                if frame is not None:
                    await out.send(frame)
            tail = resampler.flush()
            if tail is not None:
                await out.send(tail)

    async def gain(inc: RxChan, out: TxChan) -> None:
        async with inc, out:
            async for msg in inc:
                await out.send(apply_gain(msg))

    async def tee(inc: RxChan, a: TxChan, b: TxChan) -> None:
        async with inc, a, b:
            async for msg in inc:
                await a.send(msg)
                await b.send(msg)

    async def wav(inc: RxChan, writer: WavWriter) -> None:
        async with inc:
            async for msg in inc:
                batch = [msg]
                while True:
                    try:
                        batch.append(inc.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                writer.add(batch)
        writer.close()

    async def main() -> float:
        tone = ToneFrames()
        writer = WavWriter(path)
        counter = Counter()
        c = _trio_links(5)
        t = time.perf_counter()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_trio_source, tone, n, c[0][0])
            nursery.start_soon(resample, c[0][1], c[1][0])
            nursery.start_soon(gain, c[1][1], c[2][0])
            nursery.start_soon(tee, c[2][1], c[3][0], c[4][0])
            nursery.start_soon(wav, c[3][1], writer)
            nursery.start_soon(_trio_sink, c[4][1], counter.count)
        elapsed = time.perf_counter() - t
        _w2_check("trio-chan-64", n, counter, writer)
        return elapsed

    return trio.run(main)


# --- W3: N paced sessions of source -> 5 identities -> latency sink ---------------------------------------

W3_K: Final = 5


class Window:
    """The paced window of a W3 run: process CPU seconds and wall seconds while the probe was active."""

    def __init__(self, started: int = 0) -> None:
        self.started = started  # sessions that were running during the window
        self.cpu = 0.0
        self.wall = 0.0

    async def measure(self, probe: LatencyProbe, seconds: float, sleep: Callable[[float], Awaitable[None]]) -> None:
        c0, w0 = time.process_time(), time.perf_counter()
        probe.active = True
        await sleep(seconds)
        probe.active = False
        self.cpu, self.wall = time.process_time() - c0, time.perf_counter() - w0


def _latency_sink(probe: LatencyProbe, t0: float, now: Callable[[], float]) -> Push:
    record = probe.lateness.append

    def sink(msg: mg.AudioFrame) -> None:
        if probe.active:
            record(now() - (t0 + msg.timestamp / msg.sample_rate))

    return sink


def _phases(n: int, start: float) -> list[float]:
    """Session start times spread evenly over one frame period."""
    return [start + i * PERIOD / n for i in range(n)]


def w3_direct_asyncio(n: int, seconds: float, warmup: float, probe: LatencyProbe) -> Window:
    async def session(tone: ToneFrames, t0: float) -> None:
        loop = asyncio.get_running_loop()
        push = _chain(W3_K, _latency_sink(probe, t0, loop.time))
        i = 0
        while True:
            await asyncio.sleep(max(0.0, t0 + i * PERIOD - loop.time()))
            push(tone.frame(i))
            i += 1

    return asyncio.run(_w3_asyncio(lambda tone, t0: [session(tone, t0)], n, seconds, warmup, probe))


def w3_asyncio_queue(n: int, seconds: float, warmup: float, probe: LatencyProbe) -> Window:
    async def source(tone: ToneFrames, t0: float, out: AQueue) -> None:
        loop = asyncio.get_running_loop()
        i = 0
        while True:
            await asyncio.sleep(max(0.0, t0 + i * PERIOD - loop.time()))
            await out.put(tone.frame(i))
            i += 1

    def session(tone: ToneFrames, t0: float) -> list[Awaitable[None]]:
        q: list[AQueue] = [asyncio.Queue(CAPACITY) for _ in range(W3_K + 1)]
        sink = _latency_sink(probe, t0, asyncio.get_running_loop().time)
        return [
            source(tone, t0, q[0]),
            *(_aio_identity(q[i], q[i + 1]) for i in range(W3_K)),
            _aio_sink(q[W3_K], sink),
        ]

    return asyncio.run(_w3_asyncio(session, n, seconds, warmup, probe))


async def _w3_asyncio(
    session: Callable[[ToneFrames, float], list[Awaitable[None]]],
    n: int,
    seconds: float,
    warmup: float,
    probe: LatencyProbe,
) -> Window:
    loop = asyncio.get_running_loop()
    tone = ToneFrames()
    base = loop.time() + 0.05 + n * 1e-4
    tasks = [asyncio.ensure_future(aw) for t0 in _phases(n, base) for aw in session(tone, t0)]
    await asyncio.sleep(base + warmup - loop.time())
    window = Window(started=n)
    await window.measure(probe, seconds, asyncio.sleep)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return window


def w3_direct_trio(n: int, seconds: float, warmup: float, probe: LatencyProbe) -> Window:
    async def session(tone: ToneFrames, t0: float) -> None:
        push = _chain(W3_K, _latency_sink(probe, t0, trio.current_time))
        i = 0
        while True:
            await trio.sleep_until(t0 + i * PERIOD)
            push(tone.frame(i))
            i += 1

    def start(nursery: trio.Nursery, tone: ToneFrames, t0: float) -> None:
        nursery.start_soon(session, tone, t0)

    return trio.run(_w3_trio, start, n, seconds, warmup, probe)


def w3_trio_chan(n: int, seconds: float, warmup: float, probe: LatencyProbe) -> Window:
    async def source(tone: ToneFrames, t0: float, out: TxChan) -> None:
        async with out:
            i = 0
            while True:
                await trio.sleep_until(t0 + i * PERIOD)
                await out.send(tone.frame(i))
                i += 1

    def start(nursery: trio.Nursery, tone: ToneFrames, t0: float) -> None:
        links = _trio_links(W3_K + 1)
        nursery.start_soon(source, tone, t0, links[0][0])
        for i in range(W3_K):
            nursery.start_soon(_trio_identity, links[i][1], links[i + 1][0])
        nursery.start_soon(_trio_sink, links[W3_K][1], _latency_sink(probe, t0, trio.current_time))

    return trio.run(_w3_trio, start, n, seconds, warmup, probe)


async def _w3_trio(
    start: Callable[[trio.Nursery, ToneFrames, float], None],
    n: int,
    seconds: float,
    warmup: float,
    probe: LatencyProbe,
) -> Window:
    tone = ToneFrames()
    window = Window(started=n)
    async with trio.open_nursery() as nursery:
        base = trio.current_time() + 0.05 + n * 1e-4
        for t0 in _phases(n, base):
            start(nursery, tone, t0)
        await trio.sleep_until(base + warmup)
        await window.measure(probe, seconds, trio.sleep)
        nursery.cancel_scope.cancel()
    return window
