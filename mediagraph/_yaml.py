"""Graphs as YAML files: the loader, where its errors point, and the registries later features plug into.

Theory of operation. The file is *composed*, not loaded, with PyYAML's safe loader, so every key and value
is a node that keeps its line and column. Values are then constructed one at a time with the safe
constructor and the graph is built through the public :class:`Graph` API (``add``, ``link``,
``validate``). Every :class:`GraphDefinitionError` the core raises says which part is wrong (``node``,
``param``, ``link``); the loader raises it again with the ``FILE:LINE:COLUMN`` of that part.

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
import math
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import attrs
import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from . import _limits, _paths
from ._actions import ActionRequest, ScheduledAction, action_types
from ._configs import config_from_mapping
from ._dump import dump_graph, to_mapping
from ._errors import GraphDefinitionError
from ._graph import FailGraph, Graph, Isolate, PortRef, Restart, Supervision
from ._limits import closest, quote
from ._node import get_node_type, importing_code, resource_types

__all__ = [
    "GraphFile",
    "Override",
    "dump_graph",
    "load_graph",
    "parse_graph",
    "to_mapping",
]

SECTIONS: typing.Final = ("graph", "resources", "nodes", "links", "schedule")
#: Keys of a node entry that are not parameters.
NODE_KEYS: typing.Final = ("type", "supervision")


# --- the loaded file -------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Override:
    """A ``--set NODE.PARAM=VALUE`` from the command line; ``origin`` (the argument) locates its errors."""

    node: str
    param: str
    value: Any
    origin: str

    @classmethod
    def parse(cls, text: str) -> Override:
        """Parse ``NODE.PARAM=VALUE``; the value is a YAML scalar (``880``, ``true``, ``out/a.wav``).

        Raises:
            ValueError: not of that form; the message says why.
        """
        target, sep, raw = text.partition("=")
        node, dot, param = target.strip().partition(".")
        if not sep or not dot or not node.isidentifier() or not param.isidentifier():
            raise ValueError(f"expected NODE.PARAM=VALUE, got {quote(text)}")
        try:
            value = _limits.safe_load(raw, filename="--set") if raw.strip() else raw
        except GraphDefinitionError as exc:
            raise ValueError(f"{_limits.quote(text)}: {exc.message}") from None
        except yaml.YAMLError as exc:
            raise ValueError(
                f"{_limits.quote(text)}: the value is not valid YAML ({_limits.cut(str(exc), 300)})"
            ) from None
        return cls(node=node, param=param, value=value, origin=f"--set {text}")


@attrs.frozen(kw_only=True)
class GraphFile:
    """A graph file, loaded and validated.

    Args:
        path: the file (as given).
        graph: the graph, equal to the same graph built in Python.
        schedule: its actions, in time order.
        resources: resource name -> config.
        locations: node name -> ``FILE:LINE:COLUMN`` of its entry, to point at a node later on.
        paths: the files its nodes (and scheduled swaps) read and write.
        resource_locations: resource name -> ``FILE:LINE:COLUMN`` of its entry.
        secrets: the values of its parameters named like secrets, to keep out of what is printed.
    """

    path: Path
    graph: Graph
    schedule: tuple[ScheduledAction, ...]
    resources: Mapping[str, Any]
    locations: Mapping[str, str]
    paths: tuple[_paths.DeclaredPath, ...] = ()
    resource_locations: Mapping[str, str] = attrs.field(factory=dict)
    secrets: frozenset[str] = attrs.field(default=frozenset(), repr=False)


def load_graph(
    path: str | Path,
    *,
    overrides: Sequence[Override] = (),
    output_dirs: Sequence[Path] | None = None,
    import_code: bool = True,
) -> GraphFile:
    """Read a YAML graph file, build its graph and validate it; nothing runs.

    Args:
        path: the file. Relative paths inside it resolve against its folder.
        overrides: parameter values that replace the file's (``--set``).
        output_dirs: confine the files the graph writes to the folder each path is relative to and these
            (see ``mediagraph._paths``); ``None``: not confined. The command line always confines.
        import_code: whether configs may import code the file names (a plugin class); see
            :func:`mediagraph.may_import_code`. ``mediagraph check`` and ``draw`` say no unless asked.

    Raises:
        GraphDefinitionError: the file cannot be read, passes a limit (size, aliases, nesting, numbers),
            is not valid YAML, defines an invalid graph, or an output the policy refuses (one that is also an
            input or another output is refused even unconfined); its ``location`` is ``FILE:LINE:COLUMN`` of
            the offending key or value.
    """
    path = Path(path)
    text = _limits.read_text(path)
    loader = _Loader(text, str(path), path.parent.absolute(), output_dirs=output_dirs, inputs=(path,))
    loader.import_code = import_code
    return loader.load(path.stem, overrides)


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
    loader = _Loader(text, filename, Path(base_dir).absolute(), output_dirs=output_dirs)
    loader.import_code = import_code
    return loader.load(name, overrides)


# --- the loader ------------------------------------------------------------------------------------------

Entry = tuple[Node, Node]  # a mapping's key node and value node


@attrs.frozen
class _Param:
    value: Any
    key_at: str  # where the key is, for "unknown parameter"
    value_at: str  # where the value is, for "wrong type or range"
    base: Path  # what relative paths in it resolve against


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__} {quote(value)}"


class _Loader:
    def __init__(
        self,
        text: str,
        filename: str,
        base_dir: Path,
        *,
        output_dirs: Sequence[Path] | None = None,
        inputs: Sequence[Path] = (),
    ) -> None:
        self.text = text
        self.filename = filename
        self.base_dir = base_dir
        self.output_dirs = output_dirs
        self.inputs = inputs
        self.paths: list[_paths.DeclaredPath] = []
        self.secrets: frozenset[str] = frozenset()  # values of keys named like secrets, kept out of messages
        self.import_code = True
        self.resource_locations: dict[str, str] = {}
        self.constructor = SafeConstructor()
        self.graph = Graph()  # the graph being built, replaced by load()

    # -- locations and errors

    def at(self, node: Node) -> str:
        mark = node.start_mark
        return f"{self.filename}:{mark.line + 1}:{mark.column + 1}"

    def at_text(self, node: Node, part: str, start: int = 0) -> str:
        """The location of ``part`` inside a one-line scalar (``start``: search from this offset)."""
        first, last = node.start_mark, node.end_mark
        if first.line == last.line:
            offset = self.text[first.index : last.index].find(part, start)
            if offset >= 0:
                return f"{self.filename}:{first.line + 1}:{first.column + 1 + offset}"
        return self.at(node)

    def fail(self, where: Node | str, message: str) -> NoReturn:
        raise GraphDefinitionError(message, location=where if isinstance(where, str) else self.at(where))

    @staticmethod
    def relocate(exc: GraphDefinitionError, where: str, message: str | None = None) -> GraphDefinitionError:
        return GraphDefinitionError(
            message or exc.message, location=where, node=exc.node, param=exc.param, link=exc.link
        )

    # -- YAML

    def compose(self) -> Node | None:
        loader: _limits.BoundedLoader | None = None
        try:
            loader = _limits.BoundedLoader(self.text)
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            self.yaml_error(exc)
        except yaml.reader.ReaderError as exc:
            where = _limits.reader_error_location(exc, self.text, self.filename)
            char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
            self.fail(where, f"YAML syntax error: character {char} is not allowed ({exc.reason})")
        except yaml.YAMLError as exc:
            self.fail(self.filename, f"YAML syntax error: {_limits.cut(str(exc))}")
        finally:
            if loader is not None:
                loader.dispose()
        if root is not None:
            self.secrets |= _limits.check_tree(root, self.filename)
        return root

    def yaml_error(self, exc: yaml.MarkedYAMLError) -> NoReturn:
        mark = exc.problem_mark or exc.context_mark
        where = f"{self.filename}:{mark.line + 1}:{mark.column + 1}" if mark else self.filename
        context = ""
        if exc.context and exc.context_mark and exc.context_mark is not mark:
            context = f" ({exc.context} at line {exc.context_mark.line + 1})"
        kind = "" if isinstance(exc, _limits.LimitError) else "YAML syntax error: "
        self.fail(where, f"{kind}{exc.problem or exc.context}{context}")

    def value(self, node: Node) -> Any:
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            self.yaml_error(exc)

    def mapping(self, node: Node, what: str) -> dict[str, Entry]:
        """The entries of a YAML mapping by key; ``<<`` merges applied, duplicate keys refused."""
        if isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return {}
        if not isinstance(node, MappingNode):
            self.fail(node, f"{what} must be a mapping, got {_kind(self.value(node))}")
        if node.tag != "tag:yaml.org,2002:map":
            self.value(node)  # an explicit tag (`!!python/...`): the constructor refuses it with its location
        own: dict[str, Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.value(key_node)
            if not isinstance(key, str) or not isinstance(key_node, ScalarNode):
                self.fail(key_node, f"keys of {what} must be strings, got {_kind(key)}")
            if key in own:
                first = own[key].start_mark.line + 1
                self.fail(key_node, f"duplicate key {quote(key)} in {what} (first at line {first})")
            own[key] = key_node
        try:
            self.constructor.flatten_mapping(node)  # `<<: *anchor` merges; the mapping's own keys win
        except yaml.MarkedYAMLError as exc:
            self.yaml_error(exc)
        entries: dict[str, Entry] = {}
        for key_node, value_node in node.value:
            key = self.value(key_node)
            if not isinstance(key, str):
                self.fail(key_node, f"keys of {what} must be strings, got {_kind(key)}")
            entries[key] = (key_node, value_node)
        return entries

    def sequence(self, node: Node, what: str) -> list[Node]:
        if isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return []
        if not isinstance(node, SequenceNode):
            self.fail(node, f"{what} must be a list, got {_kind(self.value(node))}")
        if node.tag != "tag:yaml.org,2002:seq":
            self.value(node)
        return list(node.value)

    # -- the file

    def load(self, default_name: str, overrides: Sequence[Override]) -> GraphFile:
        self.secrets |= {o.value for o in overrides if isinstance(o.value, str) and _limits.is_secret(o.param)}
        try:
            with importing_code(self.import_code):
                return attrs.evolve(self.load_unmasked(default_name, overrides), secrets=self.secrets)
        except GraphDefinitionError as exc:  # a message built elsewhere (a validator, a plugin) may quote one
            masked = _limits.scrub(exc.message, self.secrets)
            where = _limits.scrub(exc.location, self.secrets) if exc.location else None
            if (masked, where) == (exc.message, exc.location):
                raise
            raise GraphDefinitionError(masked, location=where, node=exc.node, param=exc.param, link=exc.link) from None

    def load_unmasked(self, default_name: str, overrides: Sequence[Override]) -> GraphFile:
        root = self.compose()
        if root is None:
            self.fail(f"{self.filename}:1:1", "the file is empty; a graph file is a mapping with a 'nodes:' section")
        top = self.mapping(root, "a graph file")
        for key, (key_node, _) in top.items():
            if key not in SECTIONS:
                self.fail(key_node, f"unknown section {quote(key)}{closest(key, SECTIONS)}")
        name = default_name
        if "graph" in top:
            name = self.value(top["graph"][1])
            if not isinstance(name, str) or not name:
                self.fail(top["graph"][1], f"the graph's name must be a string, got {_kind(name)}")
        graph = self.graph = Graph(name)
        resources = self.resources(top["resources"][1], graph) if "resources" in top else {}
        if "nodes" not in top:
            self.fail(root, "no 'nodes:' section: a graph needs at least one node")
        locations = self.nodes(top["nodes"], graph, overrides)
        links = self.links(top["links"][1], graph) if "links" in top else []
        self.validate(graph, locations, links)
        schedule = self.schedule(top["schedule"][1], graph) if "schedule" in top else ()
        for item in schedule:  # a swap's new child may write files too
            at = functools.partial(lambda loc, _param: (loc, self.base_dir), item.location)
            self.paths += _paths.declared_paths(item.action, owner=f"{item.name} action", where=at)
        _paths.check_paths(self.paths, inputs=self.inputs, output_dirs=self.output_dirs)
        return GraphFile(
            path=Path(self.filename),
            graph=graph,
            schedule=schedule,
            resources=resources,
            locations=locations,
            paths=tuple(self.paths),
            resource_locations=self.resource_locations,
        )

    def params(self, entries: Mapping[str, Entry], reserved: Sequence[str] = ()) -> dict[str, _Param]:
        return {
            key: _Param(self.value(value_node), self.at(key_node), self.at(value_node), self.base_dir)
            for key, (key_node, value_node) in entries.items()
            if key not in reserved
        }

    def config(self, cls: type, params: Mapping[str, _Param], *, where: str, entry_at: str) -> Any:
        """The config ``cls`` built from ``params``, paths resolved; errors point at the parameter."""
        try:
            values = _paths.resolve_paths(cls, {key: (p.value, p.base) for key, p in params.items()})
            return config_from_mapping(cls, values, where=where, resources=self.graph.resources)
        except GraphDefinitionError as exc:
            param = params.get(exc.param) if exc.param else None
            at = entry_at
            if param is not None:
                at = param.value_at if exc.param in attrs.fields_dict(cls) else param.key_at
            raise self.relocate(exc, at) from exc

    def resources(self, node: Node, graph: Graph) -> dict[str, Any]:
        known = resource_types()
        out: dict[str, Any] = {}
        for name, (key_node, value_node) in self.mapping(node, "'resources'").items():
            if not name.isidentifier():
                self.fail(key_node, f"resource name {quote(name)} must be an identifier (letters, digits, _)")
            entries = self.mapping(value_node, f"resource {quote(name)}")
            type_name = self.type_name(entries, key_node, f"resource {quote(name)}")
            rt = known.get(type_name)
            if rt is None:
                hint = closest(type_name, known) or " (no resource types are installed)"
                self.fail(entries["type"][1], f"resource {quote(name)}: unknown resource type {quote(type_name)}{hint}")
            config = self.config(
                rt.config,
                self.params(entries, ("type",)),
                where=f"resource {quote(name)} ({rt.name})",
                entry_at=self.at(key_node),
            )
            try:
                graph.add_resource(name, rt.name, config=config)
            except GraphDefinitionError as exc:
                raise self.relocate(exc, self.at(key_node)) from exc
            out[name] = config
            self.resource_locations[name] = self.at(key_node)
        return out

    def type_name(self, entries: Mapping[str, Entry], key_node: Node, what: str) -> str:
        if "type" not in entries:
            self.fail(key_node, f"{what} has no 'type'")
        value_node = entries["type"][1]
        type_name = self.value(value_node)
        if not isinstance(type_name, str):
            self.fail(value_node, f"{what}: 'type' must be a type name, got {_kind(type_name)}")
        return type_name

    def nodes(self, section: Entry, graph: Graph, overrides: Sequence[Override]) -> dict[str, str]:
        nodes = self.mapping(section[1], "'nodes'")
        if not nodes:
            self.fail(section[0], "'nodes' is empty: a graph needs at least one node")
        for o in overrides:
            if o.node not in nodes:
                self.fail(o.origin, f"unknown node {quote(o.node)}{closest(o.node, nodes)}")
        locations: dict[str, str] = {}
        for name, (key_node, value_node) in nodes.items():
            self.node(graph, name, key_node, value_node, [o for o in overrides if o.node == name])
            locations[name] = self.at(key_node)
        return locations

    def node(self, graph: Graph, name: str, key_node: Node, value_node: Node, overrides: list[Override]) -> None:
        if isinstance(value_node, ScalarNode) and value_node.tag == "tag:yaml.org,2002:str":
            entries: dict[str, Entry] = {"type": (key_node, value_node)}  # shorthand: `sink: null_sink`
        else:
            entries = self.mapping(value_node, f"node {quote(name)}")
        type_name = self.type_name(entries, key_node, f"node {quote(name)}")
        try:
            nt = get_node_type(type_name)
        except GraphDefinitionError as exc:
            raise self.relocate(exc, self.at(entries["type"][1]), f"node {quote(name)}: {exc.message}") from exc
        supervision = self.supervision(entries["supervision"][1]) if "supervision" in entries else FailGraph()
        params = self.params(entries, NODE_KEYS)
        cwd = Path.cwd()
        for o in overrides:
            if o.param in NODE_KEYS:
                self.fail(o.origin, f"--set cannot change a node's {quote(o.param)}")
            params[o.param] = _Param(o.value, o.origin, o.origin, cwd)
        config = self.config(nt.config, params, where=f"node {quote(name)} ({nt.name})", entry_at=self.at(key_node))

        def where(param: str) -> tuple[str, Path]:  # a default path is relative to the current directory
            given = params.get(param)
            return (given.value_at, given.base) if given else (self.at(key_node), cwd)

        self.paths += _paths.declared_paths(config, owner=f"node {quote(name)}", where=where)
        try:
            graph.add(name, nt, config=config, supervision=supervision)
        except GraphDefinitionError as exc:
            raise self.relocate(exc, self.at(key_node)) from exc

    def supervision(self, node: Node) -> Supervision:
        usage = "supervision must be fail, isolate, restart or {restart: {max_restarts: N, backoff: SECONDS}}"
        if isinstance(node, ScalarNode):
            value = self.value(node)
            policies: dict[Any, Supervision] = {"fail": FailGraph(), "isolate": Isolate(), "restart": Restart()}
            if value in policies:
                return policies[value]
            self.fail(node, f"{usage}, got {_kind(value)}")
        entries = self.mapping(node, "supervision")
        if list(entries) != ["restart"]:
            self.fail(node, f"{usage}, got a mapping with keys {', '.join(entries) or 'none'}")
        key_node, value_node = entries["restart"]
        params = self.params(self.mapping(value_node, "restart"))
        restart: Restart = self.config(Restart, params, where="supervision restart", entry_at=self.at(key_node))
        return restart

    def links(self, node: Node, graph: Graph) -> list[Node]:
        items = self.sequence(node, "'links'")
        for item in items:
            text = self.value(item)
            if not isinstance(text, str):
                self.fail(item, f"a link must be a string 'node.port -> node.port', got {_kind(text)}")
            parts = text.split("->")
            if len(parts) != 2:
                self.fail(item, f"a link must be 'node.port -> node.port', got {quote(text)}")
            arrow = text.index("->")
            src_text, dst_text = parts[0].strip(), parts[1].strip()
            src_at = self.at_text(item, src_text)
            dst_at = self.at_text(item, dst_text, self.text_offset(item, arrow + 2))
            refs: list[PortRef] = []
            for part, at in ((src_text, src_at), (dst_text, dst_at)):
                try:
                    refs.append(PortRef.parse(part))
                except GraphDefinitionError as exc:
                    self.fail(at, f"link {quote(text)}: {exc.message}; a link is 'node.port -> node.port'")
            src, dst = refs
            try:
                graph.link(src, dst)
            except GraphDefinitionError as exc:
                src_node = graph.nodes.get(src.node)
                at = dst_at if src_node and src_node.ports.outlet(src.port) else src_at
                if exc.message.startswith("duplicate"):
                    at = self.at(item)
                raise self.relocate(exc, at, f"link {quote(text)}: {exc.message}") from exc
        return items

    def text_offset(self, node: Node, offset_in_value: int) -> int:
        """An offset in a scalar's value as an offset in its source text (quotes shift it by one)."""
        first = node.start_mark.index
        quoted = self.text[first : first + 1] in ("'", '"')
        return offset_in_value + (1 if quoted else 0)

    def validate(self, graph: Graph, locations: Mapping[str, str], links: Sequence[Node]) -> None:
        try:
            graph.validate()
        except GraphDefinitionError as exc:
            if exc.link is not None:
                at = self.at(links[exc.link])
            elif exc.node is not None and exc.node in locations:
                at = locations[exc.node]
            else:
                cycle = _cycle_link(graph)
                at = self.at(links[cycle]) if cycle is not None else f"{self.filename}:1:1"
            raise self.relocate(exc, at) from exc

    def schedule(self, node: Node, graph: Graph) -> tuple[ScheduledAction, ...]:
        known = action_types()
        out: list[ScheduledAction] = []
        previous: tuple[float, Node] | None = None
        for item in self.sequence(node, "'schedule'"):
            entries = self.mapping(item, "a schedule action")
            if "at" not in entries:
                self.fail(item, "a schedule action needs 'at: SECONDS' (graph time)")
            at_node = entries["at"][1]
            at = self.value(at_node)
            if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at):
                self.fail(at_node, f"'at' must be a number of seconds, got {_kind(at)}")
            if at < 0:
                self.fail(at_node, f"'at: {at}' is in the past: times are seconds of graph time since the start")
            if previous is not None and at < previous[0]:
                line = previous[1].start_mark.line + 1
                self.fail(
                    at_node, f"'at: {at}' comes before 'at: {previous[0]}' (line {line}): keep actions in time order"
                )
            previous = (at, at_node)
            names = [key for key in entries if key in known]
            if not names:
                other = [key for key in entries if key != "at"]
                if other:
                    key_node = entries[other[0]][0]
                    self.fail(key_node, f"unknown schedule action {quote(other[0])}{closest(other[0], known)}")
                self.fail(item, f"the schedule action at {at} says nothing to do (known: {', '.join(known)})")
            if len(names) > 1:
                self.fail(entries[names[1]][0], f"one action per schedule entry, got {' and '.join(names)}")
            name = names[0]
            action_type = known[name]
            params: dict[str, Any] = {}
            for key, (key_node, value_node) in entries.items():
                if key in ("at", name):
                    continue
                if key not in action_type.params:
                    self.fail(key_node, f"{name} action: unknown key {quote(key)}{closest(key, action_type.params)}")
                params[key] = self.value(value_node)
            request = ActionRequest(
                name=name,
                at=float(at),
                value=self.value(entries[name][1]),
                params=params,
                graph=graph,
                base_dir=self.base_dir,
            )
            try:
                action = action_type.parse(request)
            except GraphDefinitionError as exc:
                value_node = entries[exc.param][1] if exc.param in entries else entries[name][1]
                raise self.relocate(exc, self.at(value_node)) from exc
            out.append(ScheduledAction(at=float(at), name=name, action=action, location=self.at(item)))
        return tuple(out)


def _cycle_link(graph: Graph) -> int | None:
    """The index of the last link (in file order) that lies on a cycle of non-feedback links."""
    solid: list[int] = []
    edges: dict[str, set[str]] = {}
    for i, link in enumerate(graph.links):
        inlet = graph.nodes[link.dst.node].ports.inlet(link.dst.port)
        if inlet is not None and not inlet.feedback:
            solid.append(i)
            edges.setdefault(link.src.node, set()).add(link.dst.node)

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            name = todo.pop()
            if name == goal:
                return True
            if name not in seen:
                seen.add(name)
                todo.extend(edges.get(name, ()))
        return False

    for i in reversed(solid):
        link = graph.links[i]
        if reaches(link.dst.node, link.src.node):
            return i
    return None
