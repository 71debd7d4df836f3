"""Nova Sonic's input rules as the service enforces them, checked from the events alone (no trio, no I/O).

Written independently of the node's input state machine (``mediagraph.nodes._sonic_protocol``), which makes
illegal orders unrepresentable; the tests hold one against the other, and the stand-in service
(:mod:`mediagraph.testing.sonic_standin`) rejects a session that breaks a rule as the service does, with a
``validationException``. The rules:

- A session is ``sessionStart``, ``promptStart``, then content blocks, then ``promptEnd``, ``sessionEnd``;
  blocks (``contentStart`` .. inputs .. ``contentEnd``) never interleave; nothing follows ``sessionEnd``.
- The first block is the SYSTEM text; then the history (USER or ASSISTANT text, non-interactive) comes
  completely before the first audio or live text turn.
- Audio goes in USER AUDIO blocks; after the history, text is a user's interactive turn only.
- Inputs (``textInput``, ``audioInput``, ``toolResult``) only inside an open block of their type.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, final

from .._errors import MediaGraphError

__all__ = ["SonicInputChecker", "SonicRuleError", "check_sonic_input"]

type Event = dict[str, Any]


@final
class SonicRuleError(MediaGraphError):
    """An input event that breaks a rule of the protocol (the event's index and the rule are in the message)."""


def check_sonic_input(events: Sequence[Event]) -> None:
    """The service's view of the rules (see the module doc), over a whole or partial input stream.

    Raises:
        SonicRuleError: the first event that breaks a rule, with its index.
    """
    checker = SonicInputChecker()
    for event in events:
        checker.feed(event)


@final
class SonicInputChecker:
    """check_sonic_input one event at a time, as the service reads them (the stand-in service uses it)."""

    def __init__(self) -> None:
        self.count = 0  # events accepted
        self.phase = "start"  # start, prompt, system, history, live, promptEnded, ended
        self.block: tuple[str, str, str] | None = None  # (content name, type, role) of the open block

    def __repr__(self) -> str:
        return f"<SonicInputChecker {self.count} events, {self.phase}, block={self.block}>"

    def feed(self, wrapped: Event) -> None:
        """Accept the next input event.

        Raises:
            SonicRuleError: it breaks a rule (the checker is left as it was).
        """
        try:
            ((name, body),) = wrapped["event"].items()
        except (KeyError, TypeError, ValueError, AttributeError):
            raise SonicRuleError(f"input event {self.count}: not {{'event': {{NAME: {{...}}}}}}") from None
        try:
            phase, block = self._next(name, body)
        except (KeyError, TypeError, AttributeError) as exc:
            raise self._bad(name, f"a missing or malformed field ({type(exc).__name__}: {exc})") from None
        self.phase, self.block = phase, block
        self.count += 1

    def _bad(self, event: str, rule: str) -> SonicRuleError:
        return SonicRuleError(f"input event {self.count} ({event}): {rule}")

    def _next(self, name: str, body: dict[str, Any]) -> tuple[str, tuple[str, str, str] | None]:
        phase, block = self.phase, self.block

        def bad(rule: str) -> SonicRuleError:
            return self._bad(name, rule)

        if phase == "ended":
            raise bad("after sessionEnd")
        if name == "sessionStart":
            if phase != "start":
                raise bad("a second sessionStart")
            phase = "prompt"
        elif name == "promptStart":
            if phase != "prompt":
                raise bad("promptStart outside its place (after sessionStart, once)")
            phase = "system"
        elif name == "contentStart":
            if phase in ("start", "prompt", "promptEnded"):
                raise bad("content outside the prompt (before promptStart or after promptEnd)")
            if block is not None:
                raise bad(f"a block opened inside block {block[0]}")
            kind, role, interactive = body["type"], body["role"], bool(body.get("interactive"))
            if phase == "system" and (kind, role) != ("TEXT", "SYSTEM"):
                raise bad("the first block must be the SYSTEM text")
            if phase == "history":
                if kind == "AUDIO" or (kind == "TEXT" and interactive):
                    phase = "live"  # the first audio, or a user's live text turn, ends the history
                elif kind == "TEXT" and role not in ("USER", "ASSISTANT"):
                    raise bad(f"a {role} text block in the history (USER or ASSISTANT only)")
            if phase == "live" and kind == "TEXT" and not (role == "USER" and interactive):
                raise bad("after the history, text is a user's interactive turn only (history comes before audio)")
            if kind == "AUDIO" and role != "USER":
                raise bad(f"an AUDIO block of role {role}")
            block = (body["contentName"], kind, role)
        elif name in ("textInput", "audioInput", "toolResult"):
            expected = {"textInput": "TEXT", "audioInput": "AUDIO", "toolResult": "TOOL"}[name]
            if block is None or block[0] != body["contentName"] or block[1] != expected:
                raise bad(f"{name} outside an open {expected} block")
        elif name == "contentEnd":
            if block is None or block[0] != body["contentName"]:
                raise bad("contentEnd of a block that is not open")
            if phase == "system":
                phase = "history"
            block = None
        elif name == "promptEnd":
            if block is not None:
                raise bad(f"promptEnd with block {block[0]} open")
            if phase in ("start", "prompt"):
                raise bad("promptEnd before promptStart")
            phase = "promptEnded"
        elif name == "sessionEnd":
            if phase != "promptEnded":
                raise bad("sessionEnd before promptEnd")
            phase = "ended"
        else:
            raise bad("unknown input event")
        return phase, block
