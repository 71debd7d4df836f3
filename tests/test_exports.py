"""The public door: everything the node library needs is public, and nothing private leaks."""

import ast
import pathlib
import types

import mediagraph as mg

ROOT = pathlib.Path(__file__).resolve().parent.parent


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


def test_builtin_nodes_are_found_through_the_entry_point() -> None:
    assert {"tone_source", "identity", "null_sink"} <= set(mg.node_types())


#: The trio-free cores: events and time in, decisions out. Hypothesis tests them hardest.
CORES = [
    "mediagraph/_contract.py",
    "mediagraph/_errors.py",
    "mediagraph/_frames.py",
    "mediagraph/_graph.py",
    "mediagraph/_ports.py",
    "mediagraph/_segments.py",
    "mediagraph/_slot_core.py",
    "nodes/_agent_gate.py",
    "nodes/_conversation.py",
    "nodes/_playout.py",
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
    assert order.index("_frames") < order.index("_contract") < order.index("_dataplane") < order.index("_runtime")
