"""The exception tree: one root, a few meaningful children."""

from __future__ import annotations

from typing import final

#: The longest message a :class:`GraphDefinitionError` keeps: the parts that quote values cut them already
#: (``mediagraph._limits.quote``); this bounds what a third-party validator may have quoted in full.
MESSAGE_CHARS = 1000


def _bounded(message: str) -> str:
    if len(message) <= MESSAGE_CHARS:
        return message
    return f"{message[: MESSAGE_CHARS - 200]} ... {message[-150:]} ({len(message):,} characters)"


class MediaGraphError(Exception):
    """Root of every error mediagraph raises on purpose."""


@final
class GraphDefinitionError(MediaGraphError):
    """The graph, a node's parameters or a link is invalid; raised before anything runs.

    ``location`` is ``FILE:LINE:COLUMN`` when the definition came from a file, else ``None``; ``node``,
    ``param`` and ``link`` say which part of the definition is wrong, so a loader can point at it.
    """

    def __init__(
        self,
        message: str,
        *,
        location: str | None = None,
        node: str | None = None,
        param: str | None = None,
        link: int | None = None,
    ) -> None:
        message = _bounded(message)
        super().__init__(f"{location}: error: {message}" if location else message)
        self.message = message
        self.location = location
        self.node = node
        self.param = param
        self.link = link


@final
class RegistryError(MediaGraphError):
    """A node, resource or schedule action type cannot be registered: another already has its name (or the
    name is reserved). Raised when the type is registered (at import of its module or plugin).
    """

    def __init__(self, kind: str, name: str, reason: str) -> None:
        super().__init__(f"{kind} {name!r} {reason}")
        self.kind = kind
        self.name = name


@final
class NodeFailedError(MediaGraphError):
    """A node raised while running; the original exception is ``__cause__``."""

    def __init__(self, node: str, cause: BaseException) -> None:
        super().__init__(f"node {node!r} failed: {type(cause).__name__}: {cause}")
        self.node = node


@final
class MailboxOverflowError(MediaGraphError):
    """A message arrived at a full inlet whose overflow policy is ``Overflow.FAIL``."""


@final
class ProviderError(MediaGraphError):
    """A device, library or remote service below a node reported an error."""
