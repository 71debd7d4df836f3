"""``mediagraph batch`` and ``mediagraph serve``: a graph on a session pool, from the command line.

``batch`` runs the graph once per input file (``mediagraph.cluster._batch``), with a progress bar on a
terminal (a line per input otherwise), a summary table on standard output, and the exit status 1 when an input
failed. ``serve`` keeps N sessions up (``mediagraph.cluster._serve``) with a live table of the pool's load on a
terminal (a line every few seconds otherwise) until a signal: the first SIGINT/SIGTERM/SIGHUP stops the
sessions gracefully, the next cancels them; ``--duration`` stops them after that long.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Final

import trio
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from ._cli_run import EXIT_ERROR, EXIT_OK, SIGNAL_EXIT, error
from ._graphfile import Override
from ._yaml import load_graph
from .cluster import (
    BatchItem,
    BatchPlan,
    Pool,
    PoolStatus,
    RestartPolicy,
    ServeReport,
    SessionSpec,
    Watch,
    expand_inputs,
    open_pool,
    plan_batch,
    run_batch,
    serve,
)

__all__ = ["batch_command", "serve_command"]

#: How often serve's status is redrawn on a terminal, and written as a line otherwise, in seconds.
LIVE_PERIOD: Final = 1.0
LINE_PERIOD: Final = 10.0
SIGNALS: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _restart(args: argparse.Namespace) -> RestartPolicy:
    if args.restart == "never":
        return RestartPolicy()
    return RestartPolicy.on_failure(args.max_restarts, args.backoff)


def _pool(args: argparse.Namespace, *, one_each: bool = False) -> contextlib.AbstractAsyncContextManager[Pool]:
    """The pool the arguments ask for; ``one_each``: a local worker runs one session at a time (a batch)."""
    per_worker = 1 if one_each and args.engine == "local" else None
    return open_pool(
        args.engine,
        processes=args.processes,
        clock=args.clock,
        address=args.address,
        sessions_per_worker=per_worker,
    )


# --- batch -----------------------------------------------------------------------------------------------


def batch_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    inputs = expand_inputs(args.over)
    restart = RestartPolicy.on_failure(args.retries, 1.0) if args.retries else None
    plan = plan_batch(
        args.file, inputs, args.set, duration=args.duration, restart=restart, output_dirs=args.output_dirs
    )
    parallel = args.parallel or args.processes or os.cpu_count() or 1
    console = Console(file=sys.stderr)
    began = time.monotonic()
    if sys.stderr.isatty() and not args.quiet:
        with Progress(
            TextColumn("[bold]batch"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]} failed"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("batch", total=len(plan.items), failed=0)

            def advance(item: BatchItem) -> None:
                if item.done:
                    progress.update(task, completed=_done(plan), failed=plan.count("failed"))
                if item.state == "failed":
                    progress.console.print(f"failed: {item.path}: {item.error}", markup=False, highlight=False)

            _run_plan(args, plan, parallel, advance)
    else:

        def line(item: BatchItem) -> None:
            if item.state == "failed" or (item.done and not args.quiet):
                detail = f": {item.error}" if item.error else f" ({item.seconds:.1f} s)"
                error(f"mediagraph: [{_done(plan)}/{len(plan.items)}] {item.state} {item.path}{detail}")

        _run_plan(args, plan, parallel, line)
    _summary(plan, time.monotonic() - began, args.engine)
    return EXIT_OK if plan.count("ok") == len(plan.items) else EXIT_ERROR


def _done(plan: BatchPlan) -> int:
    return sum(1 for item in plan.items if item.done)


def _run_plan(args: argparse.Namespace, plan: BatchPlan, parallel: int, on_update: Callable[[BatchItem], None]) -> None:
    async def main() -> None:
        with trio.open_signal_receiver(*SIGNALS) as signals:
            async with trio.open_nursery() as nursery:
                async with _pool(args, one_each=True) as pool:
                    nursery.start_soon(_cancel_on_signal, signals, nursery.cancel_scope)
                    await run_batch(pool, plan, parallel=parallel, fail_fast=args.fail_fast, on_update=on_update)
                nursery.cancel_scope.cancel()

    trio.run(main)


async def _cancel_on_signal(signals: AsyncIterator[int], scope: trio.CancelScope) -> None:
    async for signum in signals:
        error(f"mediagraph: {signal.Signals(signum).name}: cancelling the batch")
        scope.cancel()
        return


def _summary(plan: BatchPlan, seconds: float, engine: str) -> None:
    table = Table(title=f"batch on {engine}: {len(plan.items)} inputs", title_justify="left")
    for column in ("#", "input", "result", "seconds", "outputs or error"):
        table.add_column(column, overflow="fold", justify="right" if column in ("#", "seconds") else "left")
    for item in plan.items:
        detail = item.error or ", ".join(str(p) for p in item.outputs)
        table.add_row(str(item.index), str(item.path), item.state, f"{item.seconds:.2f}", detail)
    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 160)
    console.print(table, markup=False, highlight=False)
    counts = ", ".join(f"{plan.count(s)} {s}" for s in ("ok", "failed", "skipped") if plan.count(s))
    rate = len(plan.items) / seconds if seconds > 0 else 0.0
    print(f"{len(plan.items)} inputs: {counts} in {seconds:.1f} s ({rate:.2f} inputs/s)", flush=True)


# --- serve -----------------------------------------------------------------------------------------------


def serve_command(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    spec = SessionSpec.from_file(args.file, sets=args.set, restart=_restart(args), output_dirs=args.output_dirs)
    # The graph loads here first, as a worker will load it: a bad graph fails before any worker starts.
    load_graph(args.file, overrides=[Override.parse(text) for text in args.set], output_dirs=args.output_dirs)
    report = ServeReport()
    got: list[int] = []
    live = sys.stderr.isatty() and not args.quiet
    trio.run(_serve, args, spec, report, got, live)
    print(
        f"serve: {report.started} sessions started, {report.ended} ended, {len(report.failures)} failed",
        flush=True,
    )
    if got:
        return SIGNAL_EXIT[signal.Signals(got[0])]
    return EXIT_ERROR if report.failures else EXIT_OK


async def _serve(args: argparse.Namespace, spec: SessionSpec, report: ServeReport, got: list[int], live: bool) -> None:
    stopping, cancelling = trio.Event(), trio.Event()
    with trio.open_signal_receiver(*SIGNALS) as signals:
        async with _pool(args) as pool, trio.open_nursery() as nursery:
            nursery.start_soon(_on_signals, signals, stopping, cancelling, got)
            if args.duration is not None:
                nursery.start_soon(_stop_after, args.duration, stopping)
            nursery.start_soon(_show, pool, report, args, live)
            await serve(
                pool,
                spec,
                sessions=args.sessions,
                stopping=stopping,
                cancelling=cancelling,
                note=lambda line: error(f"mediagraph: {line}"),
                report=report,
            )
            nursery.cancel_scope.cancel()


async def _on_signals(
    signals: AsyncIterator[int], stopping: trio.Event, cancelling: trio.Event, got: list[int]
) -> None:
    async for signum in signals:
        name = signal.Signals(signum).name
        got.append(signum)
        if not stopping.is_set():
            error(f"mediagraph: {name}: stopping every session (again to cancel them)")
            stopping.set()
        else:
            error(f"mediagraph: {name}: cancelling every session")
            cancelling.set()


async def _stop_after(seconds: float, stopping: trio.Event) -> None:
    await trio.sleep(seconds)
    error(f"mediagraph: {seconds:g} s passed: stopping every session")
    stopping.set()


async def _show(pool: Pool, report: ServeReport, args: argparse.Namespace, live: bool) -> None:
    watch = Watch()
    status = pool.status
    if live:
        with Live(
            _table(status(), report, args.sessions), console=Console(file=sys.stderr), auto_refresh=False
        ) as view:
            while True:
                await trio.sleep(LIVE_PERIOD)
                now = status()
                for line in watch.changes(now):
                    view.console.print(line, markup=False, highlight=False)
                view.update(_table(now, report, args.sessions), refresh=True)
    last = 0.0
    while True:
        await trio.sleep(LIVE_PERIOD)
        now = status()
        for line in watch.changes(now):
            error(f"mediagraph: {line}")
        if not args.quiet and time.monotonic() - last >= LINE_PERIOD:
            last = time.monotonic()
            error(f"mediagraph: {_load_line(now, report, args.sessions)}")


def _load_line(status: PoolStatus, report: ServeReport, wanted: int) -> str:
    states = ", ".join(f"{status.count(s)} {s}" for s in ("running", "starting", "pending") if status.count(s))
    workers = "; ".join(
        f"{_where(w.pid, w.ray_node)} {w.sessions} sessions"
        + (f" {w.cpu_percent:.0f}% cpu" if w.cpu_percent is not None else "")
        for w in status.workers
        if w.alive
    )
    restarts = sum(s.restarts for s in status.sessions)
    return (
        f"serve: {len(report.live)}/{wanted} live ({states or 'none'}), {restarts} restarts, "
        f"{len(report.failures)} failed; workers: {workers or 'none'}"
    )


def _where(pid: int | None, ray_node: str | None) -> str:
    return f"pid {pid}" if pid is not None else f"ray node {(ray_node or '?')[:12]}"


def _table(status: PoolStatus, report: ServeReport, wanted: int) -> Table:
    title = _load_line(status, report, wanted).split(";")[0]
    table = Table(title=title, title_justify="left", min_width=len(title))
    for column in ("worker", "sessions", "cpu"):
        table.add_column(column, justify="left" if column == "worker" else "right")
    for w in status.workers:
        cpu = f"{w.cpu_percent:.0f} %" if w.cpu_percent is not None else "-"
        table.add_row(_where(w.pid, w.ray_node) + ("" if w.alive else " (down)"), str(w.sessions), cpu)
    return table
