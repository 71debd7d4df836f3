"""Sessions past one process and one machine: a session pool on local worker processes or on Ray.

One API, two engines::

    from mediagraph.cluster import SessionSpec, open_pool

    async with open_pool() as pool:                       # one worker process per core
        spec = SessionSpec.from_file("graphs/tone_demo.yaml", sets=["tone.duration=10"])
        session = await pool.start(spec)                   # "s1", once its graph runs in a worker
        with pool.events(session) as events:               # its event log, streamed back in order
            async for event in events:
                print(event.time, event.node, event.event, dict(event.fields))
        result = await pool.result(session)                # or SessionFailed naming the node, or WorkerLost

``open_pool("ray", address=...)`` runs each session as a Ray actor instead (``pip install 'mediagraph[ray]'``);
``run_sessions(specs)`` does it all from synchronous code.

Theory of operation. A graph travels as its YAML text, folder and ``--set`` overrides (:class:`SessionSpec`),
and is loaded where it runs exactly as ``mediagraph run`` loads a file. The pool (``_pool``) is a thin trio
shell around a trio-free session table (``_core``): the state machine ``pending -> starting -> running ->
finished | failed | lost``, least-loaded placement, restarts by :class:`RestartPolicy`, and every pending call
answered exactly once. Engines only start workers and carry frames: ``_local`` (worker processes, ``_worker``,
framed pipes, ``_wire``) and ``_ray`` (one actor per attempt, ``_ray_actor``); both host sessions with the same
``_host``, which runs a graph file's schedule and duration through :func:`mediagraph.drive_graph`.
Errors are :class:`SessionError` (:class:`SessionFailed`, :class:`WorkerLost`, :class:`CommandRefused`) and
:class:`PoolError`, all :class:`mediagraph.MediaGraphError`.
"""

from ._batch import run_batch
from ._batch_plan import BatchItem, BatchPlan, expand_inputs, plan_batch, substitute
from ._errors import CommandRefused, PoolError, SessionError, SessionFailed, WorkerLost
from ._open import open_pool, run_sessions
from ._pool import Pool
from ._serve import ServeReport, Watch, serve
from ._spec import PoolStatus, RestartPolicy, SessionEvent, SessionResult, SessionSpec, SessionStatus, WorkerStatus
from ._streams import EventStream

__all__ = [
    "BatchItem",
    "BatchPlan",
    "ServeReport",
    "Watch",
    "expand_inputs",
    "plan_batch",
    "run_batch",
    "serve",
    "substitute",
    "CommandRefused",
    "EventStream",
    "Pool",
    "PoolError",
    "PoolStatus",
    "RestartPolicy",
    "SessionError",
    "SessionEvent",
    "SessionFailed",
    "SessionResult",
    "SessionSpec",
    "SessionStatus",
    "WorkerLost",
    "WorkerStatus",
    "open_pool",
    "run_sessions",
]
