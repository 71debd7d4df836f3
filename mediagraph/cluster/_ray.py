"""The Ray engine (being written)."""

from __future__ import annotations

from typing import Any

from ._errors import PoolError

__all__ = ["RayEngine"]


def RayEngine(pool: Any, **options: Any) -> Any:
    raise PoolError("engine='ray' is not available yet")
