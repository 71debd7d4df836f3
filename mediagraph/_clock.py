"""The virtual clock: a graph run that takes no real time and repeats exactly.

Two things make a trio run repeat. The clock: ``MockClock(autojump_threshold=0)`` jumps to the next
deadline only when no task can run, so time never passes while work is pending and no real time is read.
The order of tasks that are runnable at the same instant: trio deliberately runs each batch of runnable
tasks in a random order (it reverses the batch on the flip of a coin seeded from the operating system), so
two events recorded by different tasks at the same graph time (a slot's child starting while the source
upstream starts; a stop action and the frame due at its time) come out in either order from run to run.
Trio has one switch for this, the one its Hypothesis plugin throws: sort each batch by the order in which
its tasks were created, then shuffle it with trio's own random generator. :func:`run_virtual` throws that
switch and seeds that generator for the length of the run, so every run of the same graph takes the same
schedule, however the hash seed and the addresses of objects differ.

What is left to the graph: no real time, no thread, no randomness of its own (Python's ``hash`` of a
string changes with ``PYTHONHASHSEED``: never iterate a set of strings into anything observable).
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import trio

from ._errors import MediaGraphError

__all__ = ["repeatable_scheduling", "run_virtual"]

#: The seed of trio's scheduling shuffle on the virtual clock; any fixed value repeats, this one is the one.
SCHEDULING_SEED = 0
#: The switch in ``trio._core._run`` (trio's own tests throw it the same way, python-trio/trio#32).
_SWITCH = "_ALLOW_DETERMINISTIC_SCHEDULING"


@contextmanager
def repeatable_scheduling(seed: int | None = None) -> Iterator[None]:
    """Within the block, ``trio.run`` orders the tasks runnable at the same instant the same way every run.

    Args:
        seed: of the order (default :data:`SCHEDULING_SEED`); another seed, another order, as repeatable.

    Raises:
        MediaGraphError: this trio has no deterministic scheduling switch (its internals changed): a
            virtual-clock run could not promise to repeat, so it does not start.
    """
    core = importlib.import_module("trio._core._run")
    rng = getattr(core, "_r", None)
    if not hasattr(core, _SWITCH) or not isinstance(rng, random.Random):
        raise MediaGraphError(
            f"trio {trio.__version__} has no deterministic scheduling switch, which --clock virtual needs to "
            "repeat runs exactly; install a trio version mediagraph supports"
        )
    saved = getattr(core, _SWITCH), rng.getstate()
    setattr(core, _SWITCH, True)
    rng.seed(SCHEDULING_SEED if seed is None else seed)
    try:
        yield
    finally:
        setattr(core, _SWITCH, saved[0])
        rng.setstate(saved[1])


def run_virtual[*Ts, T](async_fn: Callable[[*Ts], Awaitable[T]], *args: *Ts) -> T:
    """``trio.run(async_fn, *args)`` on the virtual clock, in an order of tasks that repeats: the same graph
    gives the same event log and the same output files, byte for byte, on every run, and a minute of media
    takes milliseconds. ``mediagraph run --clock virtual`` runs graphs this way.

    A plain ``trio.run(async_fn, clock=MockClock(autojump_threshold=0))`` is as fast but does not repeat:
    trio orders the tasks runnable at the same instant at random.

    Returns:
        what ``async_fn`` returned.

    Raises:
        MediaGraphError: this trio cannot order tasks repeatably (see :func:`repeatable_scheduling`).
        Whatever ``async_fn`` raised.
    """
    from trio.testing import MockClock  # only here: it imports pytest, a tenth of a second at every start

    with repeatable_scheduling():
        return trio.run(async_fn, *args, clock=MockClock(autojump_threshold=0))
