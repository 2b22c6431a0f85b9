"""The environment manifest stored with every record: versions, interpreter, machine, commit."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

KEY_PACKAGES = (
    "advbench", "numpy", "scipy", "torch", "scikit-learn", "pandas", "qiskit", "qiskit-aer",
    "causal-learn", "pgmpy", "networkx", "torch-geometric", "gymnasium", "mpe2", "pettingzoo", "opacus", "optuna",
)


def package_versions(names: tuple[str, ...] = KEY_PACKAGES) -> dict[str, str]:
    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


@lru_cache(maxsize=1)
def git_commit() -> dict[str, Any]:
    """The commit of the checkout advbench runs from (``ADVBENCH_COMMIT`` overrides, e.g. under asv)."""
    forced = os.environ.get("ADVBENCH_COMMIT") or os.environ.get("ASV_COMMIT")
    if forced:
        return {"commit": forced, "dirty": None}
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        # Dirty means changed code: records being written into results/ (the gate's --update
        # replaces results/ci-reference/ while it runs) change nothing a run does.
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--",
                                 ".", ":(exclude)results"], capture_output=True, text=True, timeout=5).stdout.strip()
        return {"commit": commit, "dirty": bool(status)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


@lru_cache(maxsize=1)
def calibration_seconds() -> float:
    """Seconds this machine takes for a fixed single-threaded workload (the fastest of three).

    Stored in every record so that the regression gate can compare training times across machines
    as multiples of it: a rough normaliser (a pure-Python loop measures one core's speed, not its
    vector units or memory bandwidth), enough to tell a 2x slower method from a 2x slower machine.
    """
    import time

    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        acc = 0
        for i in range(1_000_000):
            acc += (i * i) % 7
        best = min(best, time.perf_counter() - t0)
    return best


RUNS_AT_ONCE_VARIABLE = "ADVBENCH_RUNS_AT_ONCE"


def runs_at_once() -> int:
    """How many runs the executor ran at a time beside this one (itself included): 1 one after
    another, ``--jobs`` on the local pool, 0 on Ray (the cluster decides). A run's seconds count
    only beside runs with the same number: two at a time on two cores share memory bandwidth."""
    try:
        return max(0, int(os.environ.get(RUNS_AT_ONCE_VARIABLE, "1")))
    except ValueError:
        return 1


def manifest(hardware: dict[str, Any]) -> dict[str, Any]:
    return {
        "runs_at_once": runs_at_once(),
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": platform.platform(),
        "hardware": hardware,
        "packages": package_versions(),
        "calibration_seconds": calibration_seconds(),
        **git_commit(),
    }
