"""Schedule actions: what a graph file's ``schedule:`` section does while the graph runs.

An action type (:class:`ActionType`, registered with :func:`register_action_type`) parses one
``{at: T, NAME: VALUE, ...}`` entry into an :class:`Action`; :func:`run_schedule` fires the parsed actions at
their graph-clock times. The loader (``mediagraph._yaml``) only finds each entry's type and points at its
errors; ``stop``, ``swap`` and ``interrupt`` are defined here, later features register their own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, final

import attrs
import trio

from . import _paths
from ._configs import building_resources
from ._errors import GraphDefinitionError, MediaGraphError, RegistryError
from ._graph import Graph, NodeSpec
from ._limits import closest, quote
from ._node import get_node_type, node_types
from ._slot_config import ChildSpec, check_swap

if TYPE_CHECKING:
    from ._runtime import GraphResult, RunningGraph

__all__ = [
    "Action",
    "ActionRequest",
    "ActionType",
    "ImmediateAction",
    "InterruptAction",
    "ScheduledAction",
    "Stop",
    "Swap",
    "action_types",
    "drive_graph",
    "register_action_type",
    "run_schedule",
]


# --- the registry ------------------------------------------------------------------------------------------


class Action(Protocol):
    """A parsed schedule action, ready to run against a running graph: it defines ``execute`` (this protocol),
    or ``begin`` instead (an :class:`ImmediateAction`)."""

    async def execute(self, running: RunningGraph) -> None:
        """Do the action, in a task of its own; may wait (a swap at a boundary). Never delays the actions after
        it."""


class ImmediateAction(Protocol):
    """A schedule action that takes effect at once, in the schedule's task, at its time exactly (before anything
    else due at that instant): the built-in ``stop``, ``interrupt`` and ``swap`` are."""

    def begin(self, running: RunningGraph) -> Awaitable[None] | None:
        """Take effect now; what is returned, if anything, is awaited in a task of its own (never delaying the
        actions after it)."""


@final
@attrs.frozen(kw_only=True)
class ActionRequest:
    """One ``{at: T, NAME: VALUE, key: value...}`` entry of ``schedule:``, as an action type's parser gets it.

    ``value`` is the value of the action's own key, ``params`` the entry's other keys (only those the action
    type declares). A parser reports a wrong value with ``GraphDefinitionError(..., param=key)`` (``key`` is
    the action's name for ``value``); the loader points at that value.
    """

    name: str
    at: float
    value: Any
    params: Mapping[str, Any]
    graph: Graph
    base_dir: Path

    def node(self, name: Any, *, param: str | None = None) -> NodeSpec:
        """The graph's node called ``name``.

        Raises:
            GraphDefinitionError: no such node (with the closest names); ``param`` (default: the action's
                own key) says which value named it.
        """
        spec = self.graph.nodes.get(name) if isinstance(name, str) else None
        if spec is None:
            raise GraphDefinitionError(
                f"{self.name} action: unknown node {quote(name)}{closest(str(name), self.graph.nodes)}",
                node=str(name),
                param=param or self.name,
            )
        return spec


@final
@attrs.frozen(kw_only=True)
class ActionType:
    """A kind of schedule action (``stop``; later ``swap``, ``interrupt``...).

    Args:
        name: the key that names it in a schedule entry (``{at: 2, stop: graceful}``).
        parse: builds the action from the entry; raises :class:`GraphDefinitionError` on a bad value.
        params: the other keys the entry may hold (``at`` aside); the loader refuses any other.
        summary: one line for ``mediagraph nodes``.
    """

    name: str
    parse: Callable[[ActionRequest], Action | ImmediateAction]
    params: tuple[str, ...] = ()
    summary: str = ""


_action_types: dict[str, ActionType] = {}


def register_action_type(at: ActionType) -> None:
    """Make ``{at: T, at.name: ...}`` usable in ``schedule:``.

    Raises:
        RegistryError: another action type already has this name, or the name is ``at``.
    """
    existing = _action_types.get(at.name)
    if at.name == "at":
        raise RegistryError("schedule action", at.name, "is reserved (the entry's time)")
    if existing is not None and existing != at:
        raise RegistryError("schedule action", at.name, "is already registered")
    _action_types[at.name] = at


def action_types() -> Mapping[str, ActionType]:
    """Every registered schedule action type (the installed node plugins, which may register some, included)."""
    node_types()  # loads the plugins
    return dict(sorted(_action_types.items()))


@final
@attrs.frozen
class Stop:
    """``{at: T, stop: graceful}`` stops the graph like Ctrl-C (sources stop, mailboxes drain);
    ``{at: T, stop: cancel}`` cancels every node now."""

    mode: Literal["graceful", "cancel"]

    @staticmethod
    def parse(request: ActionRequest) -> Stop:
        if request.value == "graceful":
            return Stop("graceful")
        if request.value == "cancel":
            return Stop("cancel")
        hint = closest(str(request.value), ["graceful", "cancel"])
        got = quote(request.value)
        raise GraphDefinitionError(f"stop must be 'graceful' or 'cancel', got {got}{hint}", param="stop")

    def begin(self, running: RunningGraph) -> None:
        if self.mode == "graceful":
            running.stop()
        else:
            running.cancel()


register_action_type(
    ActionType(
        name="stop",
        parse=Stop.parse,
        summary="stop the graph: 'graceful' (sources stop, mailboxes drain) or 'cancel' (cancel every node)",
    )
)


def _child(value: Any, request: ActionRequest, *, param: str) -> ChildSpec | None:
    """A slot child from a schedule entry's mapping (``None`` empties the slot), paths resolved against the
    file's folder and resource names resolved against the graph's resources."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or not isinstance(value.get("type"), str):
        raise GraphDefinitionError(
            f"{request.name} action: '{param}' must be a node mapping with a 'type' (or null), got {quote(value)}",
            param=param,
        )
    token = building_resources.set(request.graph.resources)
    try:
        nt = get_node_type(value["type"])
        params = _paths.resolve_paths(nt.config, {k: (v, request.base_dir) for k, v in value.items() if k != "type"})
        return ChildSpec.from_mapping({"type": nt.name, **params}, where=f"{request.name} action: {param}")
    except GraphDefinitionError as exc:
        exc.param = param
        raise
    finally:
        building_resources.reset(token)


@final
@attrs.frozen
class Swap:
    """``{at: T, swap: SLOT, to: {type: ..., ...}, policy: cut|boundary}`` replaces a slot's child
    (``to: null`` empties it); see the ``slot`` node type for the policies."""

    slot: str
    child: ChildSpec | None
    policy: str

    @staticmethod
    def parse(request: ActionRequest) -> Swap:
        spec = request.node(request.value)
        if spec.type.name != "slot":
            raise GraphDefinitionError(
                f"swap action: node {quote(spec.name)} is a {spec.type.name}, not a slot", param="swap"
            )
        if "to" not in request.params:
            raise GraphDefinitionError("swap action: 'to' is missing (the new child, or null)", param="swap")
        child = _child(request.params["to"], request, param="to")
        policy = request.params.get("policy", "cut")
        check_swap(spec.name, spec.config, child, policy)
        return Swap(spec.name, child, policy)

    def begin(self, running: RunningGraph) -> Awaitable[None]:
        return running.request_swap(self.slot, self.child, self.policy).wait()


@final
@attrs.frozen
class InterruptAction:
    """``{at: T, interrupt: NODE}`` (``inlet: audio`` by default) delivers an ``Interrupt`` to the node: the
    segment it is playing finishes as interrupted at the position played."""

    node: str
    inlet: str

    @staticmethod
    def parse(request: ActionRequest) -> InterruptAction:
        spec = request.node(request.value)
        inlet = request.params.get("inlet", "audio")
        names = [p.name for p in spec.ports.inlets]
        if inlet not in names:
            raise GraphDefinitionError(
                f"interrupt action: node {quote(spec.name)} has no inlet {quote(inlet)}{closest(str(inlet), names)}",
                param="inlet" if "inlet" in request.params else "interrupt",
            )
        return InterruptAction(spec.name, inlet)

    def begin(self, running: RunningGraph) -> None:
        running.interrupt(self.node, self.inlet)


register_action_type(
    ActionType(
        name="swap",
        parse=Swap.parse,
        params=("to", "policy"),
        summary="replace a slot's child: {swap: SLOT, to: {type: ...} or null, policy: cut|boundary}",
    )
)
register_action_type(
    ActionType(
        name="interrupt",
        parse=InterruptAction.parse,
        params=("inlet",),
        summary="interrupt what a node is playing: {interrupt: NODE, inlet: audio}",
    )
)


@final
@attrs.frozen(kw_only=True)
class ScheduledAction:
    """An action of the file's ``schedule:``; ``location`` is where its entry starts."""

    at: float
    name: str
    action: Action | ImmediateAction
    location: str


async def run_schedule(schedule: Sequence[ScheduledAction], running: RunningGraph) -> None:
    """Fire each action when the graph clock reaches its time, recording a ``schedule_action`` event first.

    Every action runs in its own task, so one that waits (a boundary swap waits in the slot for the segment
    to close) never delays the actions after it. An action refused by the graph (a swap after the slot's
    input ended) is recorded as ``schedule_action_failed``; it does not stop the graph.

    Cancellation: cancel the calling scope to drop the actions not yet due (when the graph has finished).
    """

    def failed(item: ScheduledAction, exc: MediaGraphError) -> None:
        running.record(None, "schedule_action_failed", action=item.name, at=item.at, error=str(exc))

    async def finish(item: ScheduledAction, effect: Awaitable[None]) -> None:
        try:
            await effect
        except MediaGraphError as exc:
            failed(item, exc)

    async with trio.open_nursery() as nursery:
        for item in schedule:
            await trio.sleep_until(running.t0 + item.at)
            running.record(None, "schedule_action", action=item.name, at=item.at)
            action = item.action
            try:
                effect = action.begin(running) if hasattr(action, "begin") else action.execute(running)
            except MediaGraphError as exc:
                failed(item, exc)
                continue
            if effect is not None:
                nursery.start_soon(finish, item, effect)


async def drive_graph(
    running: RunningGraph, schedule: Sequence[ScheduledAction] = (), *, duration: float | None = None
) -> GraphResult:
    """Take a started graph to its end as ``mediagraph run`` does: fire its schedule (:func:`run_schedule`),
    stop it gracefully once ``duration`` seconds of graph time have passed (recording ``stop_requested`` with
    ``by="duration"``), and wait for it to finish. The command line and the session pool's workers
    (``mediagraph.cluster``) both run graph files through this.

    Args:
        running: the graph, as :meth:`Runtime.start` returned it.
        schedule: its actions (a graph file's ``schedule``), in time order.
        duration: seconds of graph time before a graceful stop; ``None``: until it ends by itself.

    Returns:
        how the graph ended (see :class:`GraphResult`).

    Raises:
        MediaGraphError: the graph failed (a node under the default policy: ``NodeFailedError``, its original
            as ``__cause__``); the failure counts as observed, as with :meth:`RunningGraph.wait`.

    Cancellation: the actions not yet due are dropped and the graph goes on; stop or cancel it to end it.
    """
    result: GraphResult | None = None
    failure: MediaGraphError | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_schedule, schedule, running)
        if duration is not None:
            nursery.start_soon(_stop_after, running, duration)
        try:
            result = await running.wait()
        except MediaGraphError as exc:  # raised outside the nursery, as itself rather than in a group
            failure = exc
        nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
    assert result is not None
    return result


async def _stop_after(running: RunningGraph, duration: float) -> None:
    await trio.sleep_until(running.t0 + duration)
    running.record(None, "stop_requested", by="duration")
    running.stop()
