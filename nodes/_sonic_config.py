"""The ``nova_sonic`` node's parameters, checked when the graph is built (no SDK call, no network)."""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, final

import attrs

import mediagraph as mg

from ._realtime import resource_of
from ._sonic_client import missing_sdk
from ._sonic_protocol import Turn

__all__ = ["DEFAULT_INSTRUCTIONS", "MAX_HISTORY", "MAX_TOOLS", "SESSION_LIMIT", "NovaSonicConfig", "Tool"]

_v = attrs.validators

#: The service ends a session after 8 minutes; the node renews its sessions before that.
SESSION_LIMIT: Final = 480.0
#: The most history turns a graph may give, and the most tools.
MAX_HISTORY: Final = 200
MAX_TOOLS: Final = 64
DEFAULT_INSTRUCTIONS: Final = (
    "You are a friendly voice assistant. Answer in one or two short sentences, as people speak, without lists."
)


def _history(value: Any) -> tuple[Turn, ...]:
    """Turns from a list of ``{role: user|assistant, text: TEXT}`` mappings (or :class:`Turn`)."""
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
        raise ValueError(f"history must be a list of {{role: user|assistant, text: TEXT}}, got {mg.quote(value)}")
    if len(value) > MAX_HISTORY:
        raise ValueError(f"history has {len(value)} turns, at most {MAX_HISTORY}")
    turns: list[Turn] = []
    for i, entry in enumerate(value):
        if isinstance(entry, Turn):
            turns.append(entry)
            continue
        if not isinstance(entry, Mapping) or set(entry) != {"role", "text"}:
            raise ValueError(f"history turn {i}: expected {{role: user|assistant, text: TEXT}}, got {mg.quote(entry)}")
        role, text = entry["role"], entry["text"]
        if role not in ("user", "assistant"):
            raise ValueError(f"history turn {i}: role must be user or assistant, got {mg.quote(role)}")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"history turn {i}: text must be a non-empty string, got {mg.quote(text)}")
        turns.append(Turn(role, text))
    return tuple(turns)


def _schema(value: Any) -> str:
    """A tool's JSON schema as canonical JSON text (given as a mapping or as JSON text)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"schema is not JSON: {exc}") from None
    if not isinstance(value, Mapping):
        raise ValueError(f"schema must be a JSON schema object (a mapping), got {mg.quote(value)}")
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"schema is not JSON data: {exc}") from None


@final
@attrs.frozen(kw_only=True)
class Tool:
    """A tool the assistant may call: ``name``, what it does (``description``, which the model reads) and the
    JSON schema of its arguments (``schema``, kept as JSON text)."""

    name: str = attrs.field(validator=_v.matches_re(r"[A-Za-z][A-Za-z0-9_-]{0,63}"))
    description: str = attrs.field(default="", validator=_v.max_len(4000))
    schema: str = attrs.field(default='{"type": "object"}', converter=_schema)

    def spec(self) -> dict[str, Any]:
        """As the input protocol takes it."""
        return {"name": self.name, "description": self.description, "schema": json.loads(self.schema)}


def _tools(value: Any) -> tuple[Tool, ...]:
    """Tools from a list of ``{name, description, schema}`` mappings (or :class:`Tool`)."""
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
        raise ValueError(f"tools must be a list of {{name, description, schema}}, got {mg.quote(value)}")
    if len(value) > MAX_TOOLS:
        raise ValueError(f"{len(value)} tools, at most {MAX_TOOLS}")
    tools: list[Tool] = []
    for i, entry in enumerate(value):
        if not isinstance(entry, Tool):
            if not isinstance(entry, Mapping) or "name" not in entry or set(entry) - {"name", "description", "schema"}:
                raise ValueError(f"tool {i}: expected {{name, description, schema}}, got {mg.quote(entry)}")
            try:
                entry = Tool(**entry)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"tool {i}: {exc}") from None
        if any(t.name == entry.name for t in tools):
            raise ValueError(f"tool {i}: a second tool named {entry.name!r}")
        tools.append(entry)
    return tuple(tools)


def _endpoint(_: object, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None and not re.fullmatch(r"https://[^\s/?#]+(:\d+)?/?", value):
        raise ValueError(
            f"endpoint {mg.quote(value)}: expected https://HOST[:PORT] (the service streams over HTTP/2, which its "
            "client speaks over TLS only)"
        )


def _optional_path(value: Any) -> Path | None:
    return None if value is None else Path(value)


def _readable(_: object, attribute: attrs.Attribute[Path | None], value: Path | None) -> None:
    if value is None:
        return
    try:
        if not stat.S_ISREG(value.stat().st_mode):
            raise ValueError(f"ca_file {str(value)!r}: not a regular file")
    except FileNotFoundError:
        raise ValueError(f"ca_file {str(value)!r}: no such file") from None
    except OSError as exc:
        raise ValueError(f"ca_file {str(value)!r}: cannot read it ({exc.strerror})") from None


def _sdk(_: object, attribute: attrs.Attribute[str], model: str) -> None:
    why = missing_sdk()
    if why is not None:
        raise ValueError(why)


@final
@attrs.frozen(kw_only=True)
class NovaSonicConfig:
    """Args:
    model: the Bedrock model id.
    region: the AWS region; none: the SDK's standard resolution (``AWS_REGION``, ``AWS_DEFAULT_REGION``, the
        profile).
    endpoint: the service's URL (``https://HOST[:PORT]``); none: the SDK's resolution, which honours
        ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` (how the tests reach the stand-in service).
    ca_file: a CA bundle (PEM) to trust instead of the system store (as ``AWS_CA_BUNDLE`` does for the AWS
        CLI); none: the system store, or the bundle ``SSL_CERT_FILE`` names.
    voice: the voice id of the assistant's speech (``matthew``, ``tiffany``, ``amy``...).
    instructions: the system prompt.
    history: the conversation so far, ``[{role: user|assistant, text: ...}]``, sent before any audio.
    tools: tools the assistant may call, ``[{name, description, schema}]`` (``schema``: the JSON schema of the
        arguments). With tools, the node has an outlet ``tool_calls`` and a feedback inlet ``tool_results``:
        link them to the node that runs the tools.
    renew_after: seconds after which a session is replaced by a new one (the conversation's history replayed,
        the user's audio going on in the new one without a gap); the service's own limit is 8 minutes.
    ready_timeout: seconds a session may take to open (the service's response headers); a session not ready
        by then fails the node.
    close_timeout: seconds a session may take to close cleanly (its last events, the end of its input, the end
        of its output); after that it is abandoned, and the event log says so.
    reply_grace: seconds the last session stays open once the inlets have ended, for the reply to the last
        words (a mic never ends; a file does).
    sample_rate: the rate of the speech sent on ``audio`` (the service speaks at 24 kHz; a speaker takes 48 kHz).
    frame_ms: the length of the speech frames sent on ``audio``, milliseconds.
    loop: the name of an ``asyncio`` resource to run the SDK on (shared with other nodes); none: a loop
        thread of the node's own.
    """

    model: str = attrs.field(default="amazon.nova-2-sonic-v1:0", validator=[_v.min_len(1), _v.max_len(200), _sdk])
    region: str | None = attrs.field(default=None, validator=_v.optional(_v.matches_re(r"[a-z0-9-]{2,40}")))
    endpoint: str | None = attrs.field(default=None, validator=_endpoint)
    ca_file: Path | None = attrs.field(
        default=None, converter=_optional_path, validator=_readable, metadata={"path": "input"}
    )
    voice: str = attrs.field(default="matthew", validator=_v.matches_re(r"[a-z][a-z_-]{1,39}"))
    instructions: str = attrs.field(default=DEFAULT_INSTRUCTIONS, validator=[_v.min_len(1), _v.max_len(20_000)])
    history: tuple[Turn, ...] = attrs.field(default=(), converter=_history)
    tools: tuple[Tool, ...] = attrs.field(default=(), converter=_tools)
    renew_after: float = attrs.field(default=SESSION_LIMIT - 30, validator=[_v.gt(0), _v.le(SESSION_LIMIT)])
    ready_timeout: float = attrs.field(default=10.0, validator=[_v.gt(0), _v.le(120)])
    close_timeout: float = attrs.field(default=3.0, validator=[_v.gt(0), _v.le(60)])
    reply_grace: float = attrs.field(default=5.0, validator=[_v.ge(0), _v.le(600)])
    sample_rate: int = attrs.field(default=48000, validator=[_v.ge(8000), _v.le(192_000)])
    frame_ms: float = attrs.field(default=20.0, validator=[_v.gt(0), _v.le(1000)])
    loop: mg.ResourceRef | None = attrs.field(default=None, validator=resource_of("asyncio", "an asyncio loop"))

    @property
    def frame_len(self) -> int:
        return max(1, round(self.sample_rate * self.frame_ms / 1000))
