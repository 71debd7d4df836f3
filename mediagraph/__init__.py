"""mediagraph: an actor-model media graph runtime for realtime voice and video agents, on trio.

Every node is an actor with typed, bounded mailboxes; graphs are declared, validated before they run, and
run under trio structured concurrency. See the README for a tour.
"""

import typing as _typing

from . import _startup  # noqa: F401 - first: the command line's signal guard (see its docstring)
from ._actions import (
    Action,
    ActionRequest,
    ActionType,
    ImmediateAction,
    ScheduledAction,
    action_types,
    drive_graph,
    register_action_type,
    run_schedule,
)
from ._asyncio_config import AsyncioConfig  # registers the asyncio resource type (asyncio itself: lazily)
from ._clock import run_virtual
from ._configs import ResourceRef, ResourceSpec, config_from_mapping
from ._contract import PLAYBACK_TYPES, PlaybackContract, PlaybackContractError
from ._dataplane import NodeIO, Outlet, PlaybackOutlet
from ._errors import (
    GraphDefinitionError,
    MailboxOverflowError,
    MediaGraphError,
    NodeFailedError,
    ProviderError,
    RegistryError,
)
from ._events import Event, EventLog
from ._frames import (
    AudioFormat,
    AudioFrame,
    Control,
    EndOfStream,
    Flush,
    Interrupt,
    PlaybackFinished,
    PlaybackProgress,
    PlaybackStarted,
    TextChunk,
    Transcript,
    VideoFrame,
)
from ._graph import FailGraph, Graph, Isolate, LinkSpec, NodeHandle, NodeSpec, PortRef, Restart, Supervision
from ._inlet import Inlet
from ._limits import mask as mask_secrets
from ._limits import quote
from ._node import (
    Actor,
    NodeType,
    ResourceType,
    Source,
    Transform,
    get_node_type,
    get_resource_type,
    may_import_code,
    node_type,
    node_types,
    register_resource_type,
    resource_types,
)
from ._noderun import NodeState
from ._ports import InletSpec, OutletSpec, Overflow, Ports, SameAs
from ._requests import Request, RequestBox
from ._runtime import GraphResult, RunningGraph, Runtime, open_runtime, run
from ._segments import PlaybackEvent, PlaybackTracker, SegmentCounter
from ._slot import Slot as _Slot  # noqa: F401 - registers the slot node type
from ._slot_config import ChildSpec, SlotConfig, SwapPolicy
from ._statistics import InletStatistics, LinkStatistics, NodeStatistics, OutletStatistics
from ._yaml import (
    GraphFile,
    Override,
    dump_graph,
    load_graph,
    parse_graph,
)

__version__ = "0.1.0"

__all__ = [
    "Action",
    "ImmediateAction",
    "ActionRequest",
    "ActionType",
    "Actor",
    "AudioFormat",
    "AsyncioConfig",
    "AsyncioLoop",
    "AudioFrame",
    "ChildSpec",
    "Control",
    "EndOfStream",
    "Event",
    "EventLog",
    "FailGraph",
    "Flush",
    "Graph",
    "GraphDefinitionError",
    "GraphFile",
    "GraphResult",
    "Inlet",
    "InletSpec",
    "Interrupt",
    "Isolate",
    "LinkSpec",
    "InletStatistics",
    "LinkStatistics",
    "MailboxOverflowError",
    "MediaGraphError",
    "NodeFailedError",
    "NodeHandle",
    "NodeIO",
    "NodeSpec",
    "NodeState",
    "NodeStatistics",
    "OutletStatistics",
    "NodeType",
    "Outlet",
    "OutletSpec",
    "Overflow",
    "Override",
    "PLAYBACK_TYPES",
    "PlaybackContract",
    "PlaybackContractError",
    "PlaybackEvent",
    "PlaybackFinished",
    "PlaybackOutlet",
    "PlaybackProgress",
    "PlaybackStarted",
    "PlaybackTracker",
    "SegmentCounter",
    "PortRef",
    "Ports",
    "ProviderError",
    "Reaped",
    "RegistryError",
    "Request",
    "RequestBox",
    "ResourceRef",
    "ResourceSpec",
    "ResourceType",
    "Restart",
    "RunningGraph",
    "Runtime",
    "SameAs",
    "ScheduledAction",
    "SlotConfig",
    "Source",
    "Supervision",
    "SwapPolicy",
    "TextChunk",
    "Transcript",
    "Transform",
    "VideoFrame",
    "action_types",
    "config_from_mapping",
    "drive_graph",
    "dump_graph",
    "get_node_type",
    "get_resource_type",
    "load_graph",
    "mask_secrets",
    "may_import_code",
    "node_type",
    "node_types",
    "open_runtime",
    "parse_graph",
    "quote",
    "register_action_type",
    "register_resource_type",
    "resource_types",
    "run",
    "run_schedule",
    "run_virtual",
]

if _typing.TYPE_CHECKING:
    from ._asyncio_host import AsyncioLoop, Reaped


def __getattr__(name: str) -> _typing.Any:
    if name in ("AsyncioLoop", "Reaped"):  # they import asyncio: only for the code that asks for them
        from . import _asyncio_host

        return getattr(_asyncio_host, name)
    raise AttributeError(f"module 'mediagraph' has no attribute {name!r}")
