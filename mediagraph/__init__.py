"""mediagraph: an actor-model media graph runtime for realtime voice and video agents, on trio.

Every node is an actor with typed, bounded mailboxes; graphs are declared, validated before they run, and
run under trio structured concurrency. See the README for a tour.
"""

from ._errors import (
    GraphDefinitionError,
    MailboxOverflowError,
    MediaGraphError,
    NodeFailedError,
    ProviderError,
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
    PlaybackStarted,
    TextChunk,
    VideoFrame,
)
from ._graph import FailGraph, Graph, Isolate, LinkSpec, NodeHandle, NodeSpec, PortRef, Restart, Supervision
from ._node import Actor, NodeType, Source, Transform, config_from_mapping, get_node_type, node_type, node_types
from ._ports import InletSpec, OutletSpec, Overflow, Ports, SameAs
from ._runtime import (
    GraphResult,
    Inlet,
    LinkStatistics,
    NodeIO,
    NodeStatistics,
    Outlet,
    RunningGraph,
    Runtime,
    open_runtime,
    run,
)
from ._segments import PlaybackEvent, PlaybackTracker
from ._slot import ChildSpec, SlotConfig

__version__ = "0.1.0"

__all__ = [
    "Actor",
    "AudioFormat",
    "AudioFrame",
    "Control",
    "EndOfStream",
    "Event",
    "EventLog",
    "FailGraph",
    "Flush",
    "Graph",
    "GraphDefinitionError",
    "GraphResult",
    "Inlet",
    "InletSpec",
    "Interrupt",
    "Isolate",
    "LinkSpec",
    "LinkStatistics",
    "MailboxOverflowError",
    "MediaGraphError",
    "NodeFailedError",
    "NodeHandle",
    "NodeIO",
    "NodeSpec",
    "NodeStatistics",
    "NodeType",
    "Outlet",
    "OutletSpec",
    "Overflow",
    "PlaybackEvent",
    "PlaybackFinished",
    "PlaybackStarted",
    "PlaybackTracker",
    "PortRef",
    "Ports",
    "ProviderError",
    "Restart",
    "RunningGraph",
    "Runtime",
    "ChildSpec",
    "SlotConfig",
    "SameAs",
    "Source",
    "Supervision",
    "TextChunk",
    "Transform",
    "VideoFrame",
    "config_from_mapping",
    "get_node_type",
    "node_type",
    "node_types",
    "open_runtime",
    "run",
]
