"""The public door: everything the node library needs is public, and nothing private leaks."""

import ast
import enum
import importlib
import inspect
import itertools
import pathlib
import subprocess
import sys
import types

import mediagraph as mg

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_all_is_exact() -> None:
    assert sorted(mg.__all__) == sorted(set(mg.__all__))
    for name in mg.__all__:
        assert hasattr(mg, name), name
    public = {n for n in dir(mg) if not n.startswith("_") and not isinstance(getattr(mg, n), types.ModuleType)}
    assert public - set(mg.__all__) == set()


def test_node_library_imports_only_the_public_api() -> None:
    for path in (ROOT / "nodes").rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mediagraph"):
                assert not any(part.startswith("_") for part in node.module.split(".")), (path, node.module)
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("mediagraph"):
                        assert not any(p.startswith("_") for p in alias.name.split(".")), (path, alias.name)


def test_core_never_imports_a_node() -> None:
    for path in (ROOT / "mediagraph").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.startswith("mediagraph.nodes") for n in names), path


def test_importing_mediagraph_loads_no_node_module() -> None:
    """Node modules (and what they bring: PyAV, PortAudio, livekit) load when a graph first asks for node types."""
    code = "import sys, mediagraph; print(sorted(m for m in sys.modules if m.startswith(('mediagraph.nodes', 'av'))))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_builtin_nodes_are_found_through_the_entry_point() -> None:
    assert {"tone_source", "identity", "null_sink"} <= set(mg.node_types())


#: The trio-free cores: events and time in, decisions out. Hypothesis tests them hardest.
CORES = [
    "mediagraph/cluster/_batch_plan.py",
    "mediagraph/cluster/_core.py",
    "mediagraph/cluster/_errors.py",
    "mediagraph/cluster/_messages.py",
    "mediagraph/cluster/_spec.py",
    "mediagraph/_contract.py",
    "mediagraph/_errors.py",
    "mediagraph/_frames.py",
    "mediagraph/_graph.py",
    "mediagraph/_ports.py",
    "mediagraph/_segments.py",
    "mediagraph/_slot_core.py",
    "mediagraph/testing/_probes.py",
    "mediagraph/testing/_sonic_rules.py",
    "nodes/_agent_gate.py",
    "nodes/_audio_sent.py",
    "nodes/_av_core.py",
    "nodes/_avatar.py",
    "nodes/_conversation.py",
    "nodes/_livekit_playout.py",
    "nodes/_pattern.py",
    "nodes/_playout.py",
    "nodes/_processors.py",
    "nodes/_sonic_core.py",
    "nodes/_sonic_output.py",
    "nodes/_sonic_protocol.py",
    "nodes/_speech_core.py",
    "nodes/_stream_metadata.py",
    "nodes/_subtitles.py",
    "nodes/_transcript_core.py",
]


def test_cores_never_import_trio() -> None:
    for name in CORES:
        tree = ast.parse((ROOT / name).read_text(), name)
        for node in ast.walk(tree):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            assert not any(m == "trio" or m.startswith("trio.") for m in modules), (name, modules)


def _runtime_imports(path: pathlib.Path) -> set[str]:
    """The package's own modules ``path`` imports when it runs (not those under ``if TYPE_CHECKING:``)."""
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and id(node) not in typing_only:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return found


def test_the_core_has_no_import_circle() -> None:
    core = ROOT / "mediagraph"
    graph = {p.stem: _runtime_imports(p) & {q.stem for q in core.glob("*.py")} for p in core.glob("*.py")}
    order: list[str] = []
    visiting: list[str] = []

    def visit(module: str) -> None:
        if module in order:
            return
        assert module not in visiting, f"import circle: {' -> '.join([*visiting, module])}"
        visiting.append(module)
        for dep in sorted(graph[module]):
            visit(dep)
        visiting.pop()
        order.append(module)

    for module in sorted(graph):
        visit(module)

    # The layers of a running graph, each built on the one before: frames and their contract, the data plane,
    # one node's life, its supervision, the graph.
    def imports(module: str) -> set[str]:
        found = set(graph[module])
        for dep in graph[module]:
            found |= imports(dep)
        return found

    layers = ["_frames", "_contract", "_dataplane", "_noderun", "_supervisor", "_runtime"]
    for lower, upper in itertools.pairwise(layers):
        assert lower in imports(upper), (lower, upper)
    assert "_runtime" not in graph["_node"] and "_runtime" not in graph["_dataplane"]
    # the loader: YAML with positions and the graph-file model below the sections, the sections below the file
    assert {"_yamltext", "_graphfile"} <= imports("_sections") and "_sections" in imports("_yaml")
    # the command line: inspecting types and showing a run are modules of their own below it
    assert {"_inspect", "_display"} <= imports("_cli")


#: ``livekit.rtc.FrameProcessor``'s own interface names its methods with a leading underscore, and its audio
#: processing module has no ``close()`` but its FFI handle: third-party names, not ours to rename.
THIRD_PARTY_PRIVATE = {
    "_process",
    "_close",
    "_on_stream_info_updated",
    "_on_stream_info_cleared",
    "_on_credentials_updated",
    "_on_credentials_cleared",
    "_ffi_handle",
}
#: The standard library's public names that start with an underscore.
STDLIB_PUBLIC = {"os._exit"}


def _own_private_names(tree: ast.Module) -> set[str]:
    """The private names a module's own classes define (methods, class attributes, ``self._x`` fields)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
            names.add(node.attr)
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(item.name)
                targets = item.targets if isinstance(item, ast.Assign) else [getattr(item, "target", None)]
                names.update(t.id for t in targets if isinstance(t, ast.Name))
    return {name for name in names if name.startswith("_")}


def test_no_code_touches_another_modules_private_attributes() -> None:
    """``obj._x`` only on ``self``, ``cls``, ``super()``, or where ``_x`` is a name the module's own classes
    define: no class reads or mutates the private state of a class from another module."""
    found = []
    for path in sorted((ROOT / "mediagraph").rglob("*.py")) + sorted((ROOT / "nodes").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        own = _own_private_names(tree) | (THIRD_PARTY_PRIVATE if path.parent.name == "nodes" else set())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") or node.attr.startswith("__"):
                continue
            value = node.value
            if isinstance(value, ast.Name) and value.id in ("self", "cls"):
                continue
            if isinstance(value, ast.Call) and ast.unparse(value.func) == "super":
                continue
            if node.attr not in own and ast.unparse(node) not in STDLIB_PUBLIC:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert found == []


def _classes() -> dict[str, type]:
    """Every class defined at the top of a module of the package, its testing kit and the node library."""
    found: dict[str, type] = {}
    paths = sorted((ROOT / "mediagraph").rglob("*.py")) + sorted((ROOT / "nodes").glob("*.py"))
    for path in paths:
        if path.name == "__main__.py":
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts  # nodes/ installs as mediagraph.nodes
        parts = ("mediagraph", *parts) if parts[0] == "nodes" else parts
        module = importlib.import_module(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
        for obj in vars(module).values():
            if inspect.isclass(obj) and obj.__module__ == module.__name__:
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return found


def test_concrete_classes_are_final() -> None:
    """A class is either an extension point (abstract, a protocol, or a base the package itself extends) or
    ``@typing.final``; enums and named tuples are final by construction."""
    classes = _classes()
    bases = {base for cls in classes.values() for base in cls.__mro__[1:]}
    open_classes = [
        name
        for name, cls in classes.items()
        if not getattr(cls, "__final__", False)
        and not inspect.isabstract(cls)
        and not getattr(cls, "_is_protocol", False)
        and not issubclass(cls, enum.Enum | tuple)
        and cls not in bases
    ]
    assert open_classes == []
