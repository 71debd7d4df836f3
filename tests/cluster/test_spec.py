"""The pool's public door and its data: exact exports, no Ray unless asked for, specs checked when built."""

from __future__ import annotations

import pickle
import subprocess
import sys
import types
from pathlib import Path

import pytest

import mediagraph.cluster as cluster
from mediagraph import GraphDefinitionError
from mediagraph.cluster import RestartPolicy, SessionFailed, SessionSpec, WorkerLost

ROOT = Path(__file__).resolve().parents[2]


def test_all_is_exact() -> None:
    public = {
        n for n in dir(cluster) if not n.startswith("_") and not isinstance(getattr(cluster, n), types.ModuleType)
    }
    assert public == set(cluster.__all__)


def test_importing_the_pool_imports_no_ray() -> None:
    code = "import sys, mediagraph.cluster; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"


def test_a_spec_checks_its_overrides_and_reads_its_file() -> None:
    spec = SessionSpec.from_file(ROOT / "graphs" / "tone_demo.yaml", sets="tone.duration=2", output_dirs=["/tmp"])
    assert spec.name == "tone_demo" and spec.sets == ("tone.duration=2",) and spec.output_dirs == ("/tmp",)
    assert spec.base_dir == str((ROOT / "graphs").absolute())
    assert pickle.loads(pickle.dumps(spec)) == spec
    with pytest.raises(GraphDefinitionError, match=r"--set expected NODE.PARAM=VALUE") as caught:
        SessionSpec(graph_text="", base_dir=".", sets=["tone=1"])
    assert caught.value.param == "sets"
    with pytest.raises(GraphDefinitionError, match="cannot read the graph file"):
        SessionSpec.from_file(ROOT / "no_such.yaml")


def test_restart_policies() -> None:
    assert not RestartPolicy().allows(0)
    with pytest.raises(ValueError, match="when"):
        RestartPolicy(when="always")  # type: ignore[arg-type]


def test_errors_pickle_whole() -> None:
    for error in (
        SessionFailed("s3", "node 'mic' (file_source) failed: OSError: x", node="mic", node_type="file_source"),
        WorkerLost("s3", "ray node abc removed while running it", ray_node="abc"),
    ):
        again = pickle.loads(pickle.dumps(error))
        assert str(again) == str(error) and vars(again) == vars(error)
