"""The Ray engine: each session attempt a Ray actor (``pip install mediagraph[ray]``; ray imported here only).

Theory of operation. Ray places and runs; the pool keeps its table. The table sees one worker (id 0, no
capacity: Ray's own scheduler queues actors by resources), and each ``Launch`` becomes an actor
(:class:`~mediagraph.cluster._ray_actor.SessionActor`) reserving ``cpus_per_session`` CPUs and, when the spec
names a ``node``, pinned there: a Ray node id (hex) by ``NodeAffinitySchedulingStrategy`` (hard), any other
name as a custom resource the node offers. One task per attempt long-polls the actor from a thread (blocking
Ray calls never run on trio's thread) and hands what it reports to the pool, in order. When the actor dies
(its process killed, its node removed) the attempt is lost, naming the Ray node it ran on; an actor not
placed within ``start_timeout`` (a resource no node has) fails the session, saying what it asked for. The
actor is killed once its attempt has ended, or when the pool closes.

``address=None`` joins the Ray this process has already joined, else starts a local one for the pool's life
(``ray.init(num_cpus=processes, include_dashboard=False)``); any other address is passed to ``ray.init``.
Every Ray node needs mediagraph installed and the graph's ``base_dir`` readable at the same path.
"""

from __future__ import annotations

import contextlib
import functools
import re
from typing import TYPE_CHECKING, Any, Final, final

import trio

from ._errors import PoolError
from ._messages import Launch, Loss, Send
from ._ray_actor import SessionActor
from ._spec import Failed, SessionSpec, WorkerStatus

if TYPE_CHECKING:
    from ._pool import Pool

__all__ = ["RayEngine"]

#: Seconds an actor may wait to be placed and to start its graph before the session fails.
START_TIMEOUT: Final = 120.0
#: Seconds one poll waits in the actor for news.
POLL_WAIT: Final = 0.5
#: Blocking Ray calls in flight at once (each a thread).
THREADS: Final = 256
_NODE_ID = re.compile(r"^[0-9a-f]{56}$")


@final
class RayEngine:
    """Sessions as Ray actors for a :class:`~mediagraph.cluster.Pool` (see the module's theory of operation)."""

    name = "ray"

    def __init__(
        self, pool: Pool, *, address: str | None, clock: str, cpus_per_session: float, num_cpus: int | None = None
    ) -> None:
        try:
            import ray
        except ImportError:
            raise PoolError("engine='ray' needs Ray: pip install 'mediagraph[ray]'") from None
        self._ray: Any = ray
        self._pool = pool
        self._address = address
        self._virtual = clock == "virtual"
        self._cpus = cpus_per_session
        self._num_cpus = num_cpus
        self._actor_class: Any = None
        self._actors: dict[tuple[str, int], Any] = {}
        self._nodes: dict[tuple[str, int], str] = {}
        self._started_ray = False
        self._limiter = trio.CapacityLimiter(THREADS)
        self._nursery: trio.Nursery | None = None

    def __repr__(self) -> str:
        return f"<RayEngine {len(self._actors)} actors>"

    def check(self, spec: SessionSpec) -> None:
        pass  # any spec: a node it names is checked by Ray when placing

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        ray = self._ray
        if not ray.is_initialized() or self._address is not None:
            local = {"num_cpus": self._num_cpus} if self._address is None else {}
            init = functools.partial(
                ray.init,
                address=self._address,
                include_dashboard=False,
                ignore_reinit_error=True,
                log_to_driver=False,
                **local,
            )
            try:
                await trio.to_thread.run_sync(init)
            except Exception as exc:  # ConnectionError, RuntimeError... whatever Ray says, said plainly
                raise PoolError(f"cannot start or join Ray (address={self._address!r}): {exc}") from exc
            self._started_ray = True
        self._actor_class = ray.remote(SessionActor)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._pool.worker_up(0, unlimited=True)
            task_status.started()
            await trio.sleep_forever()

    def launch(self, launch: Launch) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(self._attempt, launch)

    def send(self, send: Send) -> None:
        assert self._nursery is not None
        actor = self._actors.get((send.session, send.attempt))
        if actor is None:  # gone between the table's decision and now: the attempt's end answers the request
            return
        self._nursery.start_soon(self._call, actor.command.remote(send.request, send.command), 30.0)

    def workers(self) -> list[WorkerStatus]:
        """One entry per Ray node running sessions of this pool."""
        counts: dict[str, int] = {}
        for node in self._nodes.values():
            counts[node] = counts.get(node, 0) + 1
        return [
            WorkerStatus(worker=i, alive=True, sessions=n, ray_node=node)
            for i, (node, n) in enumerate(sorted(counts.items()), start=1)
        ]

    async def aclose(self) -> None:
        for actor in list(self._actors.values()):
            await self._call_quietly(self._ray.kill, actor)
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        if self._started_ray and self._address is None:
            await self._call_quietly(self._ray.shutdown)

    # --- inside ---------------------------------------------------------------------------------------------

    def _options(self, spec: SessionSpec) -> dict[str, Any]:
        options: dict[str, Any] = {"num_cpus": self._cpus, "max_concurrency": 4, "max_restarts": 0}
        if spec.node is not None and _NODE_ID.match(spec.node):
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id=spec.node, soft=False)
        elif spec.node is not None:
            options["resources"] = {spec.node: 0.001}
        return options

    async def _call(self, ref: Any, within: float) -> Any:
        """``ray.get(ref)`` in a thread; Ray's ``GetTimeoutError`` after ``within`` seconds."""
        get = functools.partial(self._ray.get, ref, timeout=within)
        return await trio.to_thread.run_sync(get, limiter=self._limiter, abandon_on_cancel=True)

    async def _call_quietly(self, fn: Any, *args: Any) -> None:
        # shielded from a cancel outside, bounded inside; an actor already dead, a Ray already down: all the same
        with trio.CancelScope(shield=True), trio.move_on_after(10), contextlib.suppress(Exception):
            await trio.to_thread.run_sync(fn, *args, limiter=self._limiter, abandon_on_cancel=True)

    async def _attempt(self, launch: Launch) -> None:
        ray, pool, key = self._ray, self._pool, (launch.session, launch.attempt)
        options = self._options(launch.spec)
        actor = self._actor_class.options(**options).remote(launch.session, launch.attempt, launch.spec, self._virtual)
        self._actors[key] = actor
        node: str | None = None
        try:
            try:
                node, pid = await self._call(actor.where.remote(), START_TIMEOUT)
            except ray.exceptions.GetTimeoutError:
                asked = {k: v for k, v in options.items() if k in ("resources", "num_cpus")}
                message = (
                    f"no Ray node took it within {START_TIMEOUT:g} s (it asks for {asked}, node={launch.spec.node!r})"
                )
                pool.session_finished(launch.session, launch.attempt, Failed(message=message, definition=True))
                return
            self._nodes[key] = node
            cursor = 0
            while True:
                cursor, items = await self._call(actor.poll.remote(cursor, POLL_WAIT), POLL_WAIT + 30.0)
                if self._report(launch, items, node, pid):
                    return
        except ray.exceptions.RayActorError as exc:
            pool.session_lost(launch.session, launch.attempt, _loss(exc, node))
        except ray.exceptions.GetTimeoutError:
            where = f"on ray node {node}" if node else "not yet placed"
            loss = Loss(reason=f"the session's Ray actor ({where}) stopped answering", ray_node=node)
            pool.session_lost(launch.session, launch.attempt, loss)
        finally:
            self._actors.pop(key, None)
            self._nodes.pop(key, None)
            await self._call_quietly(ray.kill, actor)

    def _report(self, launch: Launch, items: list[tuple[Any, ...]], node: str, pid: int) -> bool:
        """Hand the actor's news to the pool; whether the attempt has finished."""
        pool = self._pool
        batch: list[tuple[Any, ...]] = []
        for item in items:
            if item[0] == "event":
                batch.append(item[3])
                continue
            if batch:
                pool.session_events(launch.session, launch.attempt, batch)
                batch = []
            if item[0] == "started":
                pool.session_started(launch.session, launch.attempt, where=f"ray node {node}", pid=pid, ray_node=node)
            elif item[0] == "reply":
                pool.replied(item[1], item[2])
            elif item[0] == "finished":
                pool.session_finished(launch.session, launch.attempt, item[3])
                return True
        if batch:
            pool.session_events(launch.session, launch.attempt, batch)
        return False


def _loss(exc: BaseException, node: str | None) -> Loss:
    """Why an actor died, for people: its node removed, or the actor itself gone."""
    text = str(exc)
    first = next((line.strip() for line in text.splitlines() if "died" in line), text.splitlines()[0] if text else "")
    if node is not None and ("node has died" in text or "node was terminated" in text or "node is dead" in text):
        return Loss(reason=f"ray node {node} removed", ray_node=node)
    where = f" on ray node {node}" if node else ""
    return Loss(reason=f"the session's Ray actor{where} died ({first[:200]})", ray_node=node)
