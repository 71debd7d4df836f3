"""The segment contract of a playback outlet. Pure: no trio, no clock, no I/O.

Theory of operation. Every outlet that carries playback events (``PlaybackStarted``, ``PlaybackProgress``,
``PlaybackFinished``) has one :class:`PlaybackContract`, owned by the runtime, so that no node — a user's sink
included — can pass a broken event stream upstream. Each event the node emits goes through :meth:`check`:

- an event of a generation older than one already seen on the outlet is *stale*: it is dropped here and
  counted, never delivered;
- any other breach raises :class:`PlaybackContractError`, naming the node, the outlet and the rule, and the
  event is not delivered: the runtime fails the node with that error.

The rules, per segment: at most one start; progress only between start and finish, never going back; exactly
one finish, with a position no smaller than the progress reported and no larger than what the event says was
sent (when it says: ``sent`` 0 means it does not), stamped no earlier than the start; nothing after the
finish. Across segments: they play and finish one after another in id order, with no id skipped (a finish for
a later segment while an earlier one is unfinished means that earlier finish was lost). A node numbers from 0;
after a restart, the first event of the new incarnation sets where its numbering starts.

Incarnations. When the runtime restarts a node, or the node dies, :meth:`end_incarnation` finishes what the
dead incarnation owed (the segment it had started, interrupted at the position it last reported). A restarted
node numbers its segments and generations from scratch; the contract maps them after everything the outlet
has carried (segment ids continue, the generation goes up), so the nodes above see one unbroken stream.
"""

from __future__ import annotations

from typing import Final, final

import attrs

from ._errors import MediaGraphError
from ._frames import PlaybackFinished, PlaybackProgress, PlaybackStarted

__all__ = ["PLAYBACK_TYPES", "PlaybackContract", "PlaybackContractError"]

PLAYBACK_TYPES: Final = (PlaybackStarted, PlaybackProgress, PlaybackFinished)
PlaybackMessage = PlaybackStarted | PlaybackProgress | PlaybackFinished

_EPSILON: Final = 1e-6  # seconds: positions are sums of float durations


@final
class PlaybackContractError(MediaGraphError):
    """A node emitted a playback event that breaks the segment contract; ``rule`` names the rule."""

    def __init__(self, node: str, outlet: str, rule: str, message: str) -> None:
        super().__init__(f"node {node!r} broke the playback contract on outlet {outlet!r} ({rule}): {message}")
        self.node = node
        self.outlet = outlet
        self.rule = rule


@final
@attrs.define
class _Playing:
    """The segment the outlet expects to finish next, once an event for it was seen."""

    segment: int  # the node's own id
    generation: int
    started: bool = False
    position: float = 0.0
    start: float | None = None
    started_t: float = 0.0  # graph time of its PlaybackStarted


@final
class PlaybackContract:
    """Checks, and maps across restarts, the playback events of one outlet.

    Args:
        node: the node's name, for messages.
        outlet: the outlet's name, for messages.
    """

    def __init__(self, node: str, outlet: str) -> None:
        self.node = node
        self.outlet = outlet
        self.stale = 0  # events dropped for an older generation
        self._expect: int | None = None  # the incarnation's id of the segment to finish next
        self._playing: _Playing | None = None
        self._generation = 0  # the highest generation of this incarnation
        self._segment_base = 0  # outlet id of the incarnation's first segment
        self._generation_base = 0  # added to the incarnation's generations
        self._first: int | None = None  # the incarnation's first segment id
        self._incarnations = 0  # ended before the current one
        self._next_out = 0  # the outlet id after the last one finished
        self._top_generation = 0  # the highest outlet generation carried

    def __repr__(self) -> str:
        playing = self._playing.segment if self._playing else None
        return f"<PlaybackContract {self.node}.{self.outlet} expect={self._expect} playing={playing}>"

    def check(self, event: PlaybackMessage) -> PlaybackMessage | None:
        """The event as the outlet carries it, or ``None`` if it is stale.

        Raises:
            PlaybackContractError: the event breaks a rule; it must not be delivered.
        """
        if event.generation < self._generation:
            self.stale += 1
            return None
        seg = event.segment
        if self._expect is None:  # a node's first incarnation numbers from 0; a restarted one from anywhere
            self._first = seg if self._incarnations else 0
            self._expect = self._first
        if seg < self._expect:
            self._breach("nothing_after_finish", f"{_name(event)} for segment {seg} after its playback_finished")
        if seg > self._expect:
            self._breach(
                "finish_order",
                f"{_name(event)} for segment {seg} while segment {self._expect} has not finished "
                "(segments play and finish in order; a playback_finished was lost)",
            )
        self._generation = event.generation
        playing = self._playing
        if playing is None or playing.segment != seg:
            playing = self._playing = _Playing(segment=seg, generation=event.generation)
        if isinstance(event, PlaybackStarted):
            if playing.started:
                self._breach("started_once", f"a second playback_started for segment {seg}")
            playing.started, playing.start, playing.started_t = True, event.start, event.t
        elif isinstance(event, PlaybackProgress):
            if not playing.started:
                self._breach("progress_after_start", f"playback_progress for segment {seg} before its start")
            if event.position < playing.position - _EPSILON:
                self._breach(
                    "position_monotonic",
                    f"segment {seg}: position went back from {playing.position:.6f} to {event.position:.6f}",
                )
            playing.position = event.position
        else:
            if event.sent > 0 and event.position > event.sent + _EPSILON:  # sent 0: the node does not say
                self._breach("position_bound", f"segment {seg}: position {event.position:.6f} > {event.sent:.6f} sent")
            if event.position < playing.position - _EPSILON:
                self._breach(
                    "position_monotonic",
                    f"segment {seg}: finished at {event.position:.6f} after progress {playing.position:.6f}",
                )
            if playing.started and event.t < playing.started_t:
                self._breach("finish_after_start", f"segment {seg}: finished at t={event.t} before its start")
            self._expect = seg + 1
            self._playing = None
        return self._map(event)

    def _map(self, event: PlaybackMessage) -> PlaybackMessage:
        assert self._first is not None
        out = self._segment_base + event.segment - self._first
        generation = self._generation_base + event.generation
        self._top_generation = max(self._top_generation, generation)
        if isinstance(event, PlaybackFinished):
            self._next_out = out + 1
        if out == event.segment and generation == event.generation:
            return event
        return attrs.evolve(event, segment=out, generation=generation)

    @property
    def owes(self) -> bool:
        """Whether a segment was started (or reported) and not finished."""
        return self._playing is not None

    def end_incarnation(self, t: float) -> list[PlaybackMessage]:
        """The node died or restarts: the finish it owed (as interrupted, at the position it last reported),
        already mapped; the next incarnation's numbering continues after it."""
        owed: list[PlaybackMessage] = []
        playing = self._playing
        if playing is not None:
            finish = PlaybackFinished(
                segment=playing.segment,
                position=playing.position,
                interrupted=True,
                generation=playing.generation,
                t=max(t, playing.started_t),
                start=playing.start,
                sent=playing.position,
            )
            owed.append(self._map(finish))
        self._segment_base = self._next_out
        self._generation_base = self._top_generation + 1 if self._first is not None else self._generation_base
        self._expect = self._first = self._playing = None
        self._incarnations += 1
        self._generation = 0
        return owed

    def _breach(self, rule: str, message: str) -> None:
        raise PlaybackContractError(self.node, self.outlet, rule, message)


def _name(event: PlaybackMessage) -> str:
    if isinstance(event, PlaybackStarted):
        return "playback_started"
    return "playback_progress" if isinstance(event, PlaybackProgress) else "playback_finished"
