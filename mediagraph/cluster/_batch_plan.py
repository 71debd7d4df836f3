"""A batch's plan: one graph run once per input file (``mediagraph batch``); trio-free.

Theory of operation. :func:`plan_batch` it expands the inputs (globs, sorted, files only), makes
each input's ``--set`` overrides from templates (``{file}``, ``{stem}``, ``{name}``, ``{dir}``, ``{index}``
in a value become that input's; the value is then a string), and loads every input's graph in this process,
as ``mediagraph run`` would, before anything runs: an input whose graph does not load (a corrupt file that
its source probes, a bad override) is failed there and then, and two inputs that would write the same output
file are refused together (name outputs per input: ``--set rec.path=out/{stem}.ogg``), so no run overwrites
another's result. :func:`~._batch.run_batch` then runs the plan on a session pool.
"""

from __future__ import annotations

import glob
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Final, final

import attrs

from .._errors import GraphDefinitionError, MediaGraphError
from .._graphfile import Override
from .._yaml import load_graph
from ._spec import RestartPolicy, SessionResult, SessionSpec

__all__ = ["MAX_INPUTS", "PLACEHOLDERS", "BatchItem", "BatchPlan", "expand_inputs", "plan_batch", "substitute"]

#: What a ``--set`` value may name of its input.
PLACEHOLDERS: Final = ("file", "stem", "name", "dir", "index")
#: The most inputs one batch takes (a glob of a whole disk is a mistake, not a batch).
MAX_INPUTS: Final = 100_000


def substitute(template: str, path: Path, index: int) -> str:
    """One ``--set NODE.PARAM=VALUE`` with its input's values in VALUE; a value with a placeholder becomes a
    (YAML double-quoted) string, so a path with ``: `` or ``#`` in it stays a path.

    Raises:
        GraphDefinitionError: a placeholder other than those of :data:`PLACEHOLDERS`, or unbalanced braces.
    """
    key, sep, value = template.partition("=")
    if not sep or "{" not in value:
        return template
    values = {
        "file": str(path.absolute()),
        "stem": path.stem,
        "name": path.name,
        "dir": str(path.absolute().parent),
        "index": str(index),
    }
    try:
        filled = value.format_map(values)
    except KeyError as exc:
        known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
        raise GraphDefinitionError(
            f"--set {template}: unknown placeholder {{{exc.args[0]}}} (known: {known})"
        ) from None
    except (ValueError, IndexError) as exc:
        raise GraphDefinitionError(f"--set {template}: {exc} (write a literal brace as {{{{ or }}}})") from None
    return f"{key}={json.dumps(filled)}"


def _reason(exc: Exception) -> str:
    """Why an input's graph did not load; an override's own text is left out (the input is named beside it)."""
    if isinstance(exc, GraphDefinitionError) and (exc.location or "").startswith("--set "):
        return exc.message
    return str(exc)


@final
@attrs.define
class BatchItem:
    """One input of a batch and what became of it: ``state`` is ``pending``, ``running``, ``ok``, ``failed`` or
    ``skipped`` (not run: ``fail_fast`` after another failed); ``error`` says why it failed (naming the node)."""

    index: int
    path: Path
    spec: SessionSpec | None  # None: refused before running (``error`` says why)
    outputs: tuple[Path, ...] = ()
    state: str = "pending"
    session: str | None = None
    seconds: float = 0.0
    error: str | None = None
    result: SessionResult | None = None

    @property
    def done(self) -> bool:
        return self.state in ("ok", "failed", "skipped")


@final
@attrs.frozen
class BatchPlan:
    """The items of a batch, in input order."""

    items: tuple[BatchItem, ...]

    def count(self, state: str) -> int:
        return sum(1 for item in self.items if item.state == state)


def expand_inputs(patterns: Sequence[str]) -> list[Path]:
    """The files the patterns name (globs with ``**``, in natural order: ``call2`` before ``call10``; each file
    once, in the order first named).

    Raises:
        GraphDefinitionError: a pattern names no file, or there are more than :data:`MAX_INPUTS`.
    """
    found: dict[Path, None] = {}
    for pattern in patterns:
        matches = sorted((Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file()), key=_natural)
        if not matches:
            raise GraphDefinitionError(f"--over {pattern}: no file matches")
        found.update(dict.fromkeys(matches))
        if len(found) > MAX_INPUTS:
            raise GraphDefinitionError(f"--over: more than {MAX_INPUTS} files; split the batch")
    return list(found)


def _natural(path: Path) -> list[tuple[int, int | str]]:
    """A sort key reading runs of digits as numbers."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", str(path)) if part]


def plan_batch(
    graph: Path,
    inputs: Sequence[Path],
    sets: Sequence[str],
    *,
    duration: float | None = None,
    restart: RestartPolicy | None = None,
    output_dirs: Sequence[Path] | None = None,
) -> BatchPlan:
    """Each input's session, its graph loaded here first (see the module doc).

    Raises:
        GraphDefinitionError: a template is invalid, or two inputs would write the same output file (both
            named, and the file).
    """
    items: list[BatchItem] = []
    writers: dict[Path, Path] = {}  # output -> the input writing it
    for index, path in enumerate(inputs):
        mine = tuple(substitute(text, path, index) for text in sets)
        try:
            gf = load_graph(graph, overrides=[Override.parse(text) for text in mine], output_dirs=output_dirs)
        except (MediaGraphError, ValueError) as exc:
            items.append(BatchItem(index=index, path=path, spec=None, state="failed", error=_reason(exc)))
            continue
        outputs = tuple(p.path for p in gf.paths if p.role == "output")
        for output in outputs:
            other = writers.setdefault(output, path)
            if other != path:
                raise GraphDefinitionError(
                    f"inputs {str(other)!r} and {str(path)!r} would both write {str(output)!r}: name the outputs "
                    "per input with a placeholder (--set NODE.path=out/{stem}.ogg)"
                )
        spec = SessionSpec.from_file(graph, sets=mine, duration=duration, restart=restart, output_dirs=output_dirs)
        items.append(BatchItem(index=index, path=path, spec=spec, outputs=outputs))
    return BatchPlan(items=tuple(items))
