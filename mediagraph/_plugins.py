"""A user's own node types for one run, without packaging: ``plugins:`` in a graph file, ``--plugin`` on the
command line. Never implicit: only what is named is imported, and ``mediagraph check``/``draw`` import a graph
file's plugins only when asked (``--import-plugins``), as they do its plugin classes.

A plugin is a Python file (``my_nodes.py``, relative to the graph file's folder, or to the current directory
on the command line) or an importable module name (``my_package.nodes``). Importing it runs its
``@mediagraph.node_type`` (and ``register_resource_type``...) declarations. A file is imported once per process
under the module name ``mediagraph_plugin_<stem>``; the same file named twice is imported once.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType

from ._errors import GraphDefinitionError
from ._limits import quote
from ._node import node_types

__all__ = ["import_plugin"]


def import_plugin(name: str, base: Path, *, location: str | None = None) -> ModuleType:
    """Import the plugin ``name``: a ``.py`` file (relative to ``base``) or a module name.

    Raises:
        GraphDefinitionError: no such file or module, or importing it raised; the message says which and what
            it raised (with the plugin's own line), located at ``location``.
    """
    node_types()  # the installed types first: a plugin that reuses one of their names fails as it imports
    if name.endswith(".py"):
        path = (base / name).resolve()
        if not path.is_file():
            raise GraphDefinitionError(f"plugin {quote(name)}: no such file ({path})", location=location)
        stem = "".join(c if c.isalnum() else "_" for c in path.stem)
        module_name = f"mediagraph_plugin_{stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
        loaded = sys.modules.get(module_name)
        if loaded is not None and getattr(loaded, "__file__", None) == str(path):
            return loaded
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[module_name]
            raise _failed(name, exc, location, path) from exc
        return module
    if not all(part.isidentifier() for part in name.split(".")):
        raise GraphDefinitionError(
            f"plugin {quote(name)}: expected a .py file or a module name (my_nodes.py, my_package.nodes)",
            location=location,
        )
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):
            raise GraphDefinitionError(f"plugin {quote(name)}: no such module", location=location) from exc
        raise _failed(name, exc, location) from exc
    except Exception as exc:
        raise _failed(name, exc, location) from exc


def _failed(name: str, exc: Exception, location: str | None, path: Path | None = None) -> GraphDefinitionError:
    """The error of a plugin whose import raised, naming the plugin's own line (the innermost frame in its
    file; for a syntax error, the line that does not parse)."""
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f" at {Path(exc.filename).name}:{exc.lineno}"
    else:
        frames = traceback.extract_tb(exc.__traceback__)
        mine = [f for f in frames if path is None or Path(f.filename) == path] or frames
        where = f" at {Path(mine[-1].filename).name}:{mine[-1].lineno}" if mine else ""
    return GraphDefinitionError(
        f"plugin {quote(name)}: importing it raised {type(exc).__name__}: {exc}{where}", location=location
    )
