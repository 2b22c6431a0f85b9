"""Plugins as a user installs them: the worked example under examples/, and a shadowing one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def pip_install_to(target: Path, project: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(project)], check=True, capture_output=True, timeout=300)


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict[str, str]:
    """An environment whose sys.path also holds the example plugin and the shadowing plugin."""
    target = tmp_path_factory.mktemp("site")
    target.chmod(0o755)  # installed code is world-readable, as in site-packages: the jail runs as uid 65534
    pip_install_to(target, ROOT / "examples" / "advbench-example-plugin")
    pip_install_to(target, ROOT / "tests" / "fixtures" / "shadow-plugin")
    pip_install_to(target, ROOT / "tests" / "fixtures" / "faulty-plugin")
    return dict(os.environ, PYTHONPATH=str(target))


def advbench(env, *args):
    return subprocess.run([sys.executable, "-m", "advbench.cli", *args], env=env, capture_output=True,
                          text=True, timeout=300)


def test_example_plugin_is_listed_and_runs(plugin_env, tmp_path):
    listed = advbench(plugin_env, "list")
    assert listed.returncode == 0 and "chow-liu" in listed.stdout
    res = advbench(plugin_env, "run", "--task", "pc", "--method", "chow-liu", "--variant", "sachs-like", "--json",
                   "--results", str(tmp_path))
    assert res.returncode == 0, res.stderr
    (rec,) = json.loads(res.stdout)
    assert rec["method"] == "chow-liu" and rec["method_source"] == "advbench-example-plugin"
    assert rec["method_role"] == "plugin" and rec["status"] == "ok"
    # A tree on 11 nodes has 10 edges; SACHS has 17: recall can't pass 10/17, precision is real.
    assert 0.3 < rec["metrics"]["skeleton_recall"] <= 10 / 17 + 1e-9
    assert rec["metrics"]["skeleton_precision"] > 0.5


def test_shadowing_plugin_is_refused_loudly(plugin_env, tmp_path):
    listed = advbench(plugin_env, "list")
    assert "refused method 'pc:reference' from package 'advbench-shadow-plugin': it is built into advbench" in \
        listed.stderr.replace("\n", " ")
    res = advbench(plugin_env, "run", "--task", "pc", "--variant", "sachs-like", "--json", "--results", str(tmp_path))
    assert res.returncode == 0, res.stderr  # the built-in ran, not the impostor
    assert json.loads(res.stdout)[0]["method_source"] == "advbench"


def test_a_sweep_records_every_failure_and_goes_on(plugin_env, tmp_path):
    """Every method of pc, the faulty plugin's included: each failure is a record, the good ones run."""
    res = advbench(plugin_env, "run", "--task", "pc", "--all-methods", "--variant", "sachs-like", "--max-memory", "0.5",
                   "--json", "--results", str(tmp_path))
    assert res.returncode == 1, res.stderr  # some runs failed
    recs = {r["method"]: r for r in json.loads(res.stdout)}
    expected = {"raises": ("error", "RuntimeError: plugin bug"), "exits": ("error", "sys.exit(3)"),
                "dies": ("crashed", "exit code 1"), "segfaults": ("crashed", "SIGSEGV"),
                "nan-graph": ("error", "NaN"), "hogs-memory": ("out_of_memory", "over the cap")}
    for method, (status, message) in expected.items():
        assert recs[method]["status"] == status and message in recs[method]["error"], recs[method]
    for good in ("reference", "floor", "chow-liu"):
        assert recs[good]["status"] == "ok"
    assert len(list((tmp_path / "runs").rglob("*.json"))) == len(recs) == 9
    assert "6 of 9 run(s) failed" in res.stderr.replace("\n", " ")


@pytest.fixture(scope="module")
def hook_env(tmp_path_factory) -> tuple[dict[str, str], Path]:
    """The library-hook plugin installed, and the file its hook writes a line to wherever it runs."""
    target = tmp_path_factory.mktemp("hook-site")
    target.chmod(0o755)
    pip_install_to(target, ROOT / "tests" / "fixtures" / "library-hook-plugin")
    marker = target / "hook-ran.txt"
    env = dict(os.environ, PYTHONPATH=str(target), LIBRARY_HOOK_MARKER=str(marker))
    env.pop("TORCH_DEVICE_BACKEND_AUTOLOAD", None)  # set in this process by its own `import advbench`
    return env, marker


def test_a_plugins_hooks_in_libraries_never_run_in_the_harness(hook_env, tmp_path):
    """A distribution can name its code in entry-point groups that torch and networkx run when they
    are imported: in the harness, that code would sit beside the key and the held-out data. advbench
    switches torch's off for itself and every process it starts; networkx has no switch, so a sealed
    run refuses to start beside such a hook, in one line, before any work."""
    env, marker = hook_env
    subprocess.run([sys.executable, "-c", "import torch"], env=env, check=True, timeout=300)
    assert marker.read_text().count("\n") == 1  # the hook is live: torch on its own runs it
    marker.unlink()
    subprocess.run([sys.executable, "-c", "import advbench.runner, torch"], env=env, check=True, timeout=300)
    assert not marker.exists()
    results = tmp_path / "results"
    res = advbench({**env, "ADVBENCH_SEAL_KEY": "correct-horse-battery-staple-0123"}, "run", "--task", "pc",
                   "--sealed", "--variant", "sachs-like", "--results", str(results))
    assert res.returncode == 2, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "advbench-library-hook-plugin names" in res.stderr
    assert "entry-point group" in res.stderr and "Traceback" not in res.stderr
    assert not marker.exists() and not results.exists()
