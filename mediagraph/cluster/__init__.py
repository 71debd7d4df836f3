"""Sessions past one process and one machine: a session pool on local worker processes or on Ray.

See ``mediagraph.cluster._pool`` for the theory of operation.
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
