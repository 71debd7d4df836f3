"""Running sessions inside one trio run: what a local worker process and a Ray actor both do.

Theory of operation. A :class:`SessionHost` owns a nursery and a shared :class:`mediagraph.Runtime` (one
pacer for every session of the process). ``launch`` loads an attempt's graph from its spec exactly as
``mediagraph run`` loads a file (``parse_graph`` with the ``--set`` overrides and output folders), starts it
and takes it to its end with :func:`mediagraph.drive_graph` (its schedule, its ``duration``). Everything it
has to say goes to a :class:`Reporter` (a worker's ``_wire.Outbox``, an actor's ``Mailbox``): each event as
it is recorded, ``started`` once every node listens, the replies to commands, and last ``finished`` with a
:class:`Completed` or :class:`Failed` outcome, never before the replies of that attempt's commands (they run
in the attempt's own nursery). The host never raises out of an attempt: whatever goes wrong is the
attempt's outcome.

Commands arriving for an attempt that is still loading wait until it started (or ended); ``stop`` and
``cancel`` of an attempt that has ended are done already; anything else is refused with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, final

import attrs
import trio

from .._actions import ActionRequest, drive_graph
from .._actions import Swap as SwapAction
from .._edges import check_devices
from .._errors import GraphDefinitionError, MediaGraphError, NodeFailedError
from .._events import Event, EventLog
from .._graphfile import GraphFile
from .._limits import cut, safe_load, scrub
from .._runtime import RunningGraph, Runtime
from .._yaml import parse_graph
from ._messages import Cancel, Command, Interrupt, Stop, Swap
from ._spec import Completed, Failed, SessionSpec

__all__ = ["Reporter", "SessionHost", "plain"]

#: Nesting kept when event fields are made plain for the way out (deeper values become their ``str``).
PLAIN_DEPTH = 6


class Reporter(Protocol):
    """Where a host's reports go; every method returns at once (see the module's theory of operation)."""

    def event(self, session: str, attempt: int, event: Event) -> None: ...
    def started(self, session: str, attempt: int) -> None: ...
    def finished(self, session: str, attempt: int, outcome: Completed | Failed) -> None: ...
    def reply(self, request: int, error: str | None) -> None: ...


def plain(value: Any, depth: int = PLAIN_DEPTH) -> Any:
    """``value`` as built-in data that pickles anywhere: containers become lists and dicts, anything else
    its ``str``."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if depth <= 0:
        return cut(str(value), 200)
    if isinstance(value, Mapping):
        return {str(k): plain(v, depth - 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v, depth - 1) for v in value]
    return str(value)


@final
@attrs.define
class _Attempt:
    spec: SessionSpec
    nursery: trio.Nursery
    gf: GraphFile | None = None
    running: RunningGraph | None = None
    ready: trio.Event = attrs.Factory(trio.Event)  # set once started, or once it ended without starting


@final
class SessionHost:
    """Hosts the attempts a worker is given. ``virtual``: this trio run is on the virtual clock, so graphs
    holding a real device are refused (as ``mediagraph run --clock virtual`` refuses them)."""

    def __init__(self, runtime: Runtime, nursery: trio.Nursery, outbox: Reporter, *, virtual: bool = False) -> None:
        self._runtime = runtime
        self._nursery = nursery
        self._outbox = outbox
        self._virtual = virtual
        self.attempts: dict[tuple[str, int], _Attempt] = {}

    def __repr__(self) -> str:
        return f"<SessionHost {len(self.attempts)} attempts{' (virtual clock)' if self._virtual else ''}>"

    def launch(self, session: str, attempt: int, spec: SessionSpec) -> None:
        self._nursery.start_soon(self._run, session, attempt, spec)

    def command(self, request: int, session: str, attempt: int, command: Command) -> None:
        found = self.attempts.get((session, attempt))
        if found is None:
            done = isinstance(command, Stop | Cancel)
            self._outbox.reply(request, None if done else "it has ended")
            return
        found.nursery.start_soon(self._command, found, request, command)

    def cancel_all(self) -> None:
        """Cancel every attempt's graph (the worker is closing)."""
        for found in self.attempts.values():
            if found.running is not None:
                found.running.record(None, "cancel_requested", by="worker closing")
                found.running.cancel()

    async def _run(self, session: str, attempt: int, spec: SessionSpec) -> None:
        key = (session, attempt)
        log = EventLog(keep=False)  # streamed out as recorded: a session running for days stays bounded
        outcome: Completed | Failed
        async with trio.open_nursery() as commands:  # the attempt's commands end before it reports its end
            found = self.attempts[key] = _Attempt(spec, commands)
            log.listen(lambda e: self._outbox.event(session, attempt, _scrubbed(e, found.gf)))
            try:
                outcome = await self._attempt(session, attempt, found, log)
            except Exception as exc:  # a bug of ours: still the attempt's outcome, never the worker's end
                outcome = Failed(message=f"{type(exc).__name__}: {exc}", error_type=type(exc).__name__)
            finally:
                found.ready.set()
                del self.attempts[key]  # later commands are answered at once; those begun end in this nursery
        self._outbox.finished(session, attempt, outcome)

    async def _attempt(self, session: str, attempt: int, found: _Attempt, log: EventLog) -> Completed | Failed:
        spec = found.spec
        try:
            gf = found.gf = parse_graph(
                spec.graph_text,
                filename=spec.filename,
                base_dir=spec.base_dir,
                name=spec.name,
                overrides=spec.overrides(),
                output_dirs=None if spec.output_dirs is None else [Path(d) for d in spec.output_dirs],
            )
            if self._virtual:
                check_devices(gf)
        except GraphDefinitionError as exc:
            return _invalid(exc)
        try:
            running = found.running = await self._runtime.start(gf.graph, log=log)
        except GraphDefinitionError as exc:
            return _invalid(exc, gf)
        except MediaGraphError as exc:
            return _failed(exc, gf)
        found.ready.set()
        self._outbox.started(session, attempt)
        try:
            result = await drive_graph(running, gf.schedule, duration=spec.duration)
        except MediaGraphError as exc:
            return _failed(exc, gf)
        isolated = {name: scrub(f"{type(e).__name__}: {e}", gf.secrets) for name, e in result.isolated.items()}
        return Completed(reason=result.reason, statistics=dict(result.statistics), isolated=isolated)

    async def _command(self, found: _Attempt, request: int, command: Command) -> None:
        await found.ready.wait()
        running, gf = found.running, found.gf
        if running is None or gf is None or running.result is not None:
            self._outbox.reply(request, None if isinstance(command, Stop | Cancel) else "it has ended")
            return
        try:
            if isinstance(command, Stop):
                running.record(None, "stop_requested", by="pool")
                running.stop()
            elif isinstance(command, Cancel):
                running.record(None, "cancel_requested", by="pool")
                running.cancel()
            elif isinstance(command, Interrupt):
                running.interrupt(command.node, command.inlet)
            else:
                await self._swap(running, gf, found.spec, command)
        except MediaGraphError as exc:
            self._outbox.reply(request, scrub(str(exc), gf.secrets))
        else:
            self._outbox.reply(request, None)

    async def _swap(self, running: RunningGraph, gf: GraphFile, spec: SessionSpec, command: Swap) -> None:
        """A swap as the schedule's ``swap`` action does it: the child's paths resolve against the graph's
        folder, its resources against the graph's."""
        child = command.child
        if isinstance(child, str):
            try:
                child = safe_load(child, filename="swap")
            except Exception as exc:  # yaml.YAMLError, or a limit passed
                raise GraphDefinitionError(f"swap: the child is not valid YAML ({cut(str(exc), 300)})") from None
        request = ActionRequest(
            name="swap",
            at=running.time(),
            value=command.slot,
            params={"to": child, "policy": command.policy},
            graph=gf.graph,
            base_dir=Path(spec.base_dir),
        )
        await SwapAction.parse(request).begin(running)


def _invalid(exc: GraphDefinitionError, gf: GraphFile | None = None) -> Failed:
    spec = gf.graph.nodes.get(exc.node) if gf is not None and exc.node is not None else None
    return Failed(
        message=str(exc),
        node=exc.node,
        node_type=spec.type.name if spec is not None else None,
        error_type="GraphDefinitionError",
        definition=True,
    )


def _failed(exc: MediaGraphError, gf: GraphFile) -> Failed:
    """A graph's failure, naming the node and its type: ``node 'mic' (file_source) failed: OSError: ...``."""
    if isinstance(exc, NodeFailedError):
        cause = exc.__cause__ or exc
        spec = gf.graph.nodes.get(exc.node)
        node_type = spec.type.name if spec is not None else None
        typed = f" ({node_type})" if node_type else ""
        message = f"node {exc.node!r}{typed} failed: {type(cause).__name__}: {cause}"
        return Failed(
            message=scrub(message, gf.secrets), node=exc.node, node_type=node_type, error_type=type(cause).__name__
        )
    cause = exc.__cause__ or exc
    return Failed(message=scrub(str(exc), gf.secrets), error_type=type(cause).__name__)


def _scrubbed(event: Event, gf: GraphFile | None) -> Event:
    """The event with the graph's secrets masked in its text fields (as ``mediagraph run --events`` writes)."""
    if gf is None or not gf.secrets:
        return event
    fields = {k: scrub(v, gf.secrets) if isinstance(v, str) else v for k, v in event.fields.items()}
    return attrs.evolve(event, fields=fields)
