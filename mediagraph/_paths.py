"""Where a graph file may write: the output policy ``check`` and ``run`` apply before anything runs.

A config field declared with ``attrs.field(metadata={"path": "output"})`` is a file the node writes (the
recorder's ``path``); ``metadata={"path": "input"}`` one it reads (the file source's ``path``). Both are
resolved like any path parameter (against the graph file's folder; ``--set`` values against the current
directory). Then, comparing real paths (symbolic links resolved):

- an output must not be an input, the graph file itself, or another node's output;
- an existing symbolic link, or anything but a regular file, at an output path is refused;
- with a confinement (the command line always asks for one), an output must stay inside the folder its
  value is relative to — the graph file's folder, or the current directory for ``--set`` and defaults — or
  inside a folder the user allowed (``--output-dir DIR``). A ``..``, an absolute path, ``~`` or a symbolic
  link leading elsewhere all land outside, so a graph file from someone else cannot write elsewhere.

Graphs built in Python are not confined: the caller chose their paths.
"""

from __future__ import annotations

import os
import stat
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any, Literal, final

import attrs

from ._errors import GraphDefinitionError
from ._limits import quote
from ._node import node_types

__all__ = ["DeclaredPath", "check_paths", "declared_paths", "path_role", "resolve_paths"]

Role = Literal["input", "output"]


@final
@attrs.frozen(kw_only=True)
class DeclaredPath:
    """A file a node of a graph file reads or writes.

    Args:
        role: ``input`` or ``output``.
        owner: who declares it, for messages (``node 'rec'``, ``node 'out' (slot child)``).
        param: the parameter.
        path: the resolved path.
        base: the folder a relative value resolved against (where an output may stay).
        location: ``FILE:LINE:COLUMN`` of the value (or of the node's entry for a default).
    """

    role: Role
    owner: str
    param: str
    path: Path
    base: Path
    location: str

    def __str__(self) -> str:
        return f"{self.owner} parameter {self.param!r} ({quote(str(self.path))})"


def path_role(field: attrs.Attribute[Any]) -> Role | None:
    """``input`` or ``output`` for a field declared as such, else ``None``."""
    role = field.metadata.get("path")
    return role if role in ("input", "output") else None


def declared_paths(
    config: Any, *, owner: str, where: Callable[[str], tuple[str, Path]], depth: int = 0
) -> Iterator[DeclaredPath]:
    """The input and output paths of a config, those of configs nested in it (a slot's child) included.

    Args:
        owner: who declares them, for messages.
        where: a top-level parameter name -> (its location, the folder its value resolved against).
    """
    if depth > 8 or not attrs.has(type(config)):
        return
    for field in attrs.fields(type(config)):
        value = getattr(config, field.name, None)
        role = path_role(field)
        if role is not None and isinstance(value, str | os.PathLike) and str(value):
            location, base = where(field.name)
            path = Path(value)
            yield DeclaredPath(
                role=role,
                owner=owner,
                param=field.name,
                path=path if path.is_absolute() else base / path,
                base=base,
                location=location,
            )
        elif attrs.has(type(value)):
            nested = owner if depth else f"{owner} ({field.name})"
            at = where(field.name)  # nested values point at the parameter holding them

            def same(_: str, at: tuple[str, Path] = at) -> tuple[str, Path]:
                return at

            yield from declared_paths(value, owner=nested, where=same, depth=depth + 1)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_paths(
    paths: Sequence[DeclaredPath], *, inputs: Sequence[Path] = (), output_dirs: Sequence[Path] | None = None
) -> None:
    """Apply the output policy above.

    Args:
        paths: what the graph's nodes read and write.
        inputs: other files read (the graph file).
        output_dirs: folders outputs may be in besides their own base; ``None``: no confinement.

    Raises:
        GraphDefinitionError: the first breach, located at the output's value and naming its node and
            parameter.
    """
    allowed = None if output_dirs is None else [Path(os.path.realpath(d)) for d in output_dirs]
    # real path -> (what it is, whether it is written)
    taken: dict[Path, tuple[str, bool]] = {
        Path(os.path.realpath(p)): (f"the graph file {quote(str(p))}", False) for p in inputs
    }
    for p in paths:
        if p.role == "input":
            taken.setdefault(Path(os.path.realpath(p.path)), (f"the input of {p}", False))
    for p in paths:
        if p.role != "output":
            continue
        try:
            st: os.stat_result | None = os.lstat(p.path)
        except OSError:
            st = None
        if st is not None and stat.S_ISLNK(st.st_mode):
            _fail(p, "is a symbolic link; an output is never written through one")
        if st is not None and not stat.S_ISREG(st.st_mode):
            _fail(p, "exists and is not a regular file")
        real = Path(os.path.realpath(p.path))
        if allowed is not None:
            roots = [Path(os.path.realpath(p.base)), *allowed]
            if not any(_inside(real, root) for root in roots):
                _fail(
                    p,
                    f"leads outside {quote(str(p.base))}, the folder it is relative to (to {quote(str(real))}); "
                    "allow its folder with --output-dir DIR",
                )
        other = taken.get(real)
        if other is not None:
            what, written = other
            why = "two writers would corrupt it" if written else "writing it would destroy what is read"
            _fail(p, f"is also {what}: {why}")
        taken[real] = (f"the output of {p}", True)


def _fail(p: DeclaredPath, problem: str) -> None:
    raise GraphDefinitionError(
        f"{p.owner}: output path {quote(str(p.path))} (parameter {p.param!r}) {problem}",
        location=p.location,
        param=p.param,
    )


# --- resolving path parameters ----------------------------------------------------------------------------


def _path_type(tp: Any) -> bool:
    if isinstance(tp, type):
        return issubclass(tp, PurePath)
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return any(_path_type(arg) for arg in typing.get_args(tp))
    return False


def _registry_get(name: Any) -> Any:
    """The node type called ``name``, or ``None`` (also for a name that is not a string)."""
    return node_types().get(name) if isinstance(name, str) else None


def resolve_paths(cls: type, params: Mapping[str, tuple[Any, Path]]) -> dict[str, Any]:
    """Parameter values, with relative paths of path fields made absolute against their base folder."""
    attrs.resolve_types(cls)
    fields = attrs.fields_dict(cls)
    out: dict[str, Any] = {}
    for key, (value, base) in params.items():
        field = fields.get(key)
        nested = _registry_get(value.get("type")) if isinstance(value, Mapping) else None
        if nested is not None:  # a node given inline (a slot's child): its own path fields resolve too
            assert isinstance(value, Mapping)
            inner = {k: (v, base) for k, v in value.items() if k != "type"}
            value = {"type": value["type"], **resolve_paths(nested.config, inner)}
        elif field is not None and isinstance(value, str) and value:
            typed = _path_type(field.type)
            if typed or field.metadata.get("path"):
                path = Path(value).expanduser()
                resolved = path if path.is_absolute() else base / path
                value = resolved if typed else str(resolved)
        out[key] = value
    return out
