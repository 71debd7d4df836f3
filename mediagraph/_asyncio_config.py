"""The ``asyncio`` resource type: its config, registered without importing asyncio (see :mod:`._asyncio_host`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, final

import attrs

from ._node import ResourceType, register_resource_type

if TYPE_CHECKING:
    from ._asyncio_host import AsyncioLoop

__all__ = ["AsyncioConfig"]


@final
@attrs.frozen(kw_only=True)
class AsyncioConfig:
    """``type: asyncio``: one asyncio loop thread shared by the nodes that name it.

    Args:
        cancel_timeout: real seconds a cancelled call, or a session's stragglers, may take to end.
    """

    cancel_timeout: float = attrs.field(default=1.0, validator=[attrs.validators.gt(0), attrs.validators.le(60)])

    def open(self) -> AsyncioLoop:
        from ._asyncio_host import AsyncioLoop

        return AsyncioLoop(cancel_timeout=self.cancel_timeout)


register_resource_type(
    ResourceType(
        name="asyncio",
        config=AsyncioConfig,
        open=AsyncioConfig.open,
        summary="an asyncio event loop in a thread of its own, for the nodes that host asyncio SDKs",
    )
)
