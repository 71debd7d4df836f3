"""Tools for testing graphs: test node types, event-log capture, invariant checkers, hypothesis strategies and a
simulated sound device.

Importing this module registers the test node types, which pass :class:`ProbeFrame` messages on ports named
``in`` and ``out``:

==============  ==========================================================================================
``test_source`` a :class:`mediagraph.Source` emitting ``count`` frames with timestamps 0, 1, 2..., paced on
                the graph clock or as fast as possible, with an optional payload size.
``test_map``    a :class:`mediagraph.Transform` pass-through (fused by the runtime when it can be).
``test_actor``  a :class:`mediagraph.Actor` pass-through with its own task.
``test_merge``  a transform with inlets ``in0``, ``in1``... forwarding everything to ``out`` (fan-in).
``test_sink``   a transform recording every arrival into the :class:`Recorder` of its config.
==============  ==========================================================================================

For playback tests, ``test_audio_script`` (:class:`AudioScript`) plays a script of audio frames, flushes,
interrupts and pauses (:class:`ScriptConfig`) on the graph clock into an ``audio`` outlet, and
``test_faulty_sink`` (:class:`FaultySink`) is an audio sink with a speaker's ports that dies at its k-th
frame or at an interrupt, or breaks the segment contract in a chosen way (:data:`Breach`,
:class:`FaultySinkConfig`), so a graph can be tested against bad sinks. ``test_messages`` (:class:`Messages`,
:class:`MessagesConfig`) sends any scripted messages, ``(t, outlet, message)``, on the outlets it is given.

Checkers come in pairs: ``*_violations`` returns the broken rules as :class:`Violation` objects, ``check_*``
raises :class:`InvariantError` (an ``AssertionError``) listing them: :func:`check_lifecycle`,
:func:`check_failure`, :func:`check_frames`, :func:`check_playback`, :func:`check_transcripts` (a transcript
synchronizer against the node below it), :func:`check_av` (an ``av_sync`` node: skew, pts order, nothing stale
after an interrupt, both tracks end once). :func:`read_vtt` reads subtitles strictly, as a player would.
:func:`check_sonic_input` (:class:`SonicInputChecker`, one event at a time) holds a Nova Sonic input stream to
the service's rules; :mod:`mediagraph.testing.sonic_standin` is a local stand-in of the service (imported on its
own: it needs the ``testing`` extra).
:func:`capture` runs a graph and keeps
its event log and its outcome, failure included, with an optional :class:`Stop` or :class:`Cancel` on
schedule.

Every node but the sink can be given a :class:`FaultSpec` (raise, sleep or hang at a given frame). Each
pass-through adds the inlet it crossed to the frame's ``path``, so a sink knows each frame's route and
:func:`check_frames` checks conservation and order route by route, through fan-out and fan-in.

A fault is keyed on a frame's content (its source, path and timestamp), not on a count the node keeps: a
node restarted by its policy is rebuilt from its config with fresh state, so a fault fires once (or, with
``repeat``, again in every incarnation), and at the same frame in every run whatever the interleaving. A
``raise`` forwards the frame first, so the node itself never loses one. The only mutable state the test
nodes share is the :class:`Recorder` a test creates for each run and passes in its sinks' configs, so
nothing leaks from one run, or one hypothesis example, to the next.

:func:`fake_sounddevice` puts a simulated ``sounddevice`` module (:class:`FakeSounddevice`) in ``sys.modules``,
so a ``speaker`` on device ``"fake"`` plays into a :class:`FakeStream`: its real callback runs in a real thread,
one block per :meth:`FakeStream.step`, at the stream times and DAC latencies the test chooses, and every
:class:`DeviceBlock` played is kept. With ``MockClock`` and ``wait_all_tasks_blocked`` between blocks, such a
test runs the same every time (see :mod:`mediagraph.testing._devices` for the loop); :class:`DeviceTiming`
describes one callback of a schedule.

The strategies (:func:`graphs`, :func:`faults`, :func:`schedules`, :func:`device_timings`, in
:mod:`mediagraph.testing.strategies`) need ``hypothesis``; they are imported on first use, so the rest of this
module works without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._av import av_violations, check_av
from ._capture import Cancel, Captured, Schedule, Stop, capture
from ._checks import (
    InvariantError,
    Violation,
    check_failure,
    check_frames,
    check_lifecycle,
    event_multiset,
    failure_violations,
    format_event,
    frame_violations,
    lifecycle_violations,
    node_sequences,
)
from ._devices import DeviceBlock, DeviceTiming, FakePortAudioError, FakeSounddevice, FakeStream, fake_sounddevice
from ._messages import Messages, MessagesConfig
from ._nodes import ActorConfig, MapConfig, MergeConfig, SinkConfig, SourceConfig
from ._plans import Fault, GraphPlan, LinkPlan, NodePlan
from ._playback import check_playback, playback_violations
from ._probes import Arrival, FaultSpec, InjectedFault, ProbeFrame, Recorder, Route
from ._script import AudioScript, ScriptConfig, Step
from ._sinks import Breach, FaultySink, FaultySinkConfig
from ._sonic_rules import SonicInputChecker, SonicRuleError, check_sonic_input
from ._transcripts import check_transcripts, transcript_violations
from ._vtt import Cue, read_vtt

if TYPE_CHECKING:
    from .strategies import device_timings, faults, graphs, schedules

__all__ = [
    "ActorConfig",
    "Arrival",
    "AudioScript",
    "Breach",
    "Cancel",
    "Captured",
    "Cue",
    "DeviceBlock",
    "DeviceTiming",
    "FakePortAudioError",
    "FakeSounddevice",
    "FakeStream",
    "Fault",
    "FaultSpec",
    "FaultySink",
    "FaultySinkConfig",
    "GraphPlan",
    "InjectedFault",
    "InvariantError",
    "LinkPlan",
    "MapConfig",
    "MergeConfig",
    "Messages",
    "MessagesConfig",
    "NodePlan",
    "ProbeFrame",
    "Recorder",
    "Route",
    "Schedule",
    "ScriptConfig",
    "SinkConfig",
    "SonicInputChecker",
    "SonicRuleError",
    "SourceConfig",
    "Step",
    "Stop",
    "Violation",
    "av_violations",
    "capture",
    "check_av",
    "check_failure",
    "check_frames",
    "check_lifecycle",
    "check_playback",
    "check_sonic_input",
    "check_transcripts",
    "device_timings",
    "event_multiset",
    "failure_violations",
    "fake_sounddevice",
    "faults",
    "format_event",
    "frame_violations",
    "graphs",
    "lifecycle_violations",
    "node_sequences",
    "playback_violations",
    "read_vtt",
    "schedules",
    "transcript_violations",
]

_STRATEGIES = frozenset({"device_timings", "faults", "graphs", "schedules"})


def __getattr__(name: str) -> Any:
    if name in _STRATEGIES:
        return getattr(importlib.import_module(f"{__name__}.strategies"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
