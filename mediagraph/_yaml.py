"""Graphs as YAML files: the loader, where its errors point, and the registries later features plug into.

Theory of operation. The file is *composed*, not loaded, with PyYAML's safe loader, so every key and value
is a node that keeps its line and column (``mediagraph._yamltext``). Values are then constructed one at a
time with the safe constructor and the graph is built section by section (``mediagraph._sections``) through
the public :class:`Graph` API (``add``, ``link``, ``validate``). Every :class:`GraphDefinitionError` the core
raises says which part is wrong (``node``, ``param``, ``link``); the loader raises it again with the
``FILE:LINE:COLUMN`` of that part. This module reads the top level and puts the result together in a
:class:`GraphFile`.

The file::

    graph: demo                  # optional name (default: the file's stem)
    resources:                   # optional: name -> {type: ..., parameters}
      denoiser: {type: apm, noise_suppression: true}
    nodes:                       # name -> {type: ..., parameters}, or name -> type
      tone: {type: tone_source, frequency: 440, duration: 5}
      sink: null_sink
    links:                       # "node.port -> node.port"
      - tone.audio -> sink.audio
    schedule:                    # optional: actions at graph-clock seconds, in time order
      - {at: 4.0, stop: graceful}

Besides its parameters a node entry may hold ``supervision: fail | isolate | restart`` or
``supervision: {restart: {max_restarts: 5, backoff: 0.2}}``; ``type`` and ``supervision`` are reserved keys.

Relative paths resolve against the graph file's folder (``--set`` values against the current directory):
a config field whose type is a ``pathlib.Path`` (``Path | None`` included), or any field declared with
``attrs.field(metadata={"path": True})``, receives the resolved path (a ``str`` field gets a ``str``).
``metadata={"path": "output"}`` (or ``"input"``) also declares it a file the node writes (reads), which the
output policy of ``mediagraph._paths`` checks: outputs stay where the file may write, and no file is both.

Extension points, so later features need no change here:

- resource types: :func:`mediagraph.register_resource_type` (the ``resources:`` section);
- schedule actions: :func:`mediagraph.register_action_type` (the ``schedule:`` section, ``mediagraph._actions``).
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
from yaml.nodes import Node

from . import _limits, _paths
from ._configs import overriding_devices
from ._dump import dump_graph, to_mapping
from ._errors import GraphDefinitionError
from ._graph import Graph
from ._graphfile import GraphFile, Override
from ._limits import closest
from ._node import importing_code, may_import_code
from ._plugins import import_plugin
from ._sections import check_graph, parse_links, parse_nodes, parse_resources, parse_schedule
from ._yamltext import Entry, YamlText, kind

__all__ = [
    "GraphFile",
    "Override",
    "dump_graph",
    "load_graph",
    "parse_graph",
    "to_mapping",
]

SECTIONS: typing.Final = ("graph", "plugins", "resources", "nodes", "links", "schedule")


def load_graph(
    path: str | Path,
    *,
    overrides: Sequence[Override] = (),
    output_dirs: Sequence[Path] | None = None,
    import_code: bool = True,
    devices: Mapping[str, str | int] | None = None,
) -> GraphFile:
    """Read a YAML graph file, build its graph and validate it; nothing runs.

    Args:
        path: the file. Relative paths inside it resolve against its folder.
        overrides: parameter values that replace the file's (``--set``).
        output_dirs: confine the files the graph writes to the folder each path is relative to and these
            (see ``mediagraph._paths``); ``None``: not confined. The command line always confines.
        import_code: whether configs may import code the file names (a plugin class); see
            :func:`mediagraph.may_import_code`. ``mediagraph check`` and ``draw`` say no unless asked.
        devices: sound devices by direction (``{"output": "pulse"}``) that every device parameter of that
            direction takes, in every node, slot child and swap target (``--output-device``).

    Raises:
        GraphDefinitionError: the file cannot be read, passes a limit (size, aliases, nesting, numbers),
            is not valid YAML, defines an invalid graph, or an output the policy refuses (one that is also an
            input or another output is refused even unconfined); its ``location`` is ``FILE:LINE:COLUMN`` of
            the offending key or value.
    """
    path = Path(path)
    text = YamlText(_limits.read_text(path), str(path))
    return _load(
        text,
        path.parent.absolute(),
        default_name=path.stem,
        overrides=overrides,
        output_dirs=output_dirs,
        inputs=(path,),
        import_code=import_code,
        devices=devices or {},
    )


def parse_graph(
    text: str,
    *,
    filename: str = "<string>",
    base_dir: str | Path = ".",
    name: str = "graph",
    overrides: Sequence[Override] = (),
    output_dirs: Sequence[Path] | None = None,
    import_code: bool = True,
) -> GraphFile:
    """:func:`load_graph` for text already read.

    Args:
        filename: used in error locations.
        base_dir: the folder relative paths resolve against.
        name: the graph's name when the text has no ``graph:`` key.
    """
    return _load(
        YamlText(text, filename),
        Path(base_dir).absolute(),
        default_name=name,
        overrides=overrides,
        output_dirs=output_dirs,
        inputs=(),
        import_code=import_code,
    )


def _load(
    text: YamlText,
    base: Path,
    *,
    default_name: str,
    overrides: Sequence[Override],
    output_dirs: Sequence[Path] | None,
    inputs: Sequence[Path],
    import_code: bool,
    devices: Mapping[str, str | int] | None = None,
) -> GraphFile:
    """Load with every secret the file and the overrides name kept out of the error, if one is raised."""
    given = frozenset(s for o in overrides for s in _secret_strings(o.value, any(map(_limits.is_secret, o.keys))))
    try:
        with importing_code(import_code), overriding_devices(devices or {}):
            gf = _build(text, base, default_name=default_name, overrides=overrides)
            _paths.check_paths(gf.paths, inputs=inputs, output_dirs=output_dirs)
            return attrs.evolve(gf, secrets=text.secrets | given)
    except GraphDefinitionError as exc:  # a message built elsewhere (a validator, a plugin) may quote one
        secrets = text.secrets | given
        masked = _limits.scrub(exc.message, secrets)
        where = _limits.scrub(exc.location, secrets) if exc.location else None
        if (masked, where) == (exc.message, exc.location):
            raise
        raise GraphDefinitionError(masked, location=where, node=exc.node, param=exc.param, link=exc.link) from None


def _secret_strings(value: Any, secret: bool) -> list[str]:
    """The strings in a ``--set`` value that are secrets: under a secret-named key at any depth, or all of them
    when the dotted path itself names one."""
    if isinstance(value, str):
        return [value] if secret and value else []
    if isinstance(value, Mapping):
        return [s for k, v in value.items() for s in _secret_strings(v, secret or _limits.is_secret(k))]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _secret_strings(v, secret)]
    return []


def _build(text: YamlText, base: Path, *, default_name: str, overrides: Sequence[Override]) -> GraphFile:
    """The file's sections read, in order, into a graph; its paths declared but not yet checked."""
    root = text.compose()
    if root is None:
        text.fail(f"{text.filename}:1:1", "the file is empty; a graph file is a mapping with a 'nodes:' section")
    top = text.mapping(root, "a graph file")
    for key, (key_node, _) in top.items():
        if key not in SECTIONS:
            text.fail(key_node, f"unknown section {_limits.quote(key)}{closest(key, SECTIONS)}")
    name = default_name
    if "graph" in top:
        name = text.value(top["graph"][1])
        if not isinstance(name, str) or not name:
            text.fail(top["graph"][1], f"the graph's name must be a string, got {kind(name)}")
    graph = Graph(name)
    skipped = _plugins(text, top["plugins"][1], base) if "plugins" in top else []
    try:
        return _sections(text, top, root, graph, base, overrides)
    except GraphDefinitionError as exc:
        if not skipped:
            raise
        note = f" (the file's plugins, {', '.join(skipped)}, were not imported: --import-plugins imports them)"
        raise GraphDefinitionError(
            exc.message + note, location=exc.location, node=exc.node, param=exc.param, link=exc.link
        ) from exc


def _plugins(text: YamlText, node: Node, base: Path) -> list[str]:
    """Import the ``plugins:`` section's files and modules (if code may be imported); those not imported."""
    skipped: list[str] = []
    for item in text.sequence(node, "'plugins'"):
        name = text.value(item)
        if not isinstance(name, str) or not name:
            text.fail(item, f"a plugin is a .py file or a module name, got {kind(name)}")
        if may_import_code():
            import_plugin(name, base, location=text.at(item))
        else:
            skipped.append(name)
    return skipped


def _sections(
    text: YamlText, top: Mapping[str, Entry], root: Node, graph: Graph, base: Path, overrides: Sequence[Override]
) -> GraphFile:
    """The resources, nodes, links and schedule sections read into ``graph``."""
    section = top["resources"][1] if "resources" in top else None
    resources, resource_locations = parse_resources(text, section, graph, base, overrides)
    if "nodes" not in top:
        text.fail(root, "no 'nodes:' section: a graph needs at least one node")
    locations, paths = parse_nodes(text, top["nodes"], graph, overrides, base)
    links = parse_links(text, top["links"][1], graph) if "links" in top else []
    check_graph(text, graph, locations, links)
    schedule = parse_schedule(text, top["schedule"][1], graph, base) if "schedule" in top else ()
    for item in schedule:  # a swap's new child may write files too
        at = functools.partial(lambda loc, _param: (loc, base), item.location)
        paths += _paths.declared_paths(item.action, owner=f"{item.name} action", where=at)
    return GraphFile(
        path=Path(text.filename),
        graph=graph,
        schedule=schedule,
        resources=resources,
        locations=locations,
        paths=tuple(paths),
        resource_locations=resource_locations,
    )
