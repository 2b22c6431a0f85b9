"""scripts/gpu-board: the prepared command for the first machine with a GPU, tested on the CPU."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu-board"


def _board(*args: str, **env: str) -> subprocess.CompletedProcess:
    bin_dir = Path(sys.executable).parent
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "PYTHON": sys.executable, "ADVBENCH": str(bin_dir / "advbench"), **env})


def test_the_dry_run_covers_every_cuda_task_on_both_profiles():
    from advbench.registry import Registry

    registry = Registry()
    cuda_tasks = {n for n in registry.task_names() if "cuda" in registry.spec(n).profiles}
    out = _board("--dry-run", RESULTS="somewhere")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    runs = [shlex.split(line)[1:] for line in lines if line.startswith("advbench run ")]
    for profile in ("cuda", "cpu"):
        quick = {r[r.index("--task") + 1] for r in runs
                 if r[r.index("--profile") + 1] == profile and r[r.index("--budget") + 1] == "quick"}
        assert quick == cuda_tasks, profile
    assert all(r[r.index("--results") + 1] == "somewhere" for r in runs)
    assert lines[-1] == "advbench leaderboard --results somewhere"


def test_without_a_gpu_it_exits_2_in_one_line_before_any_run(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: the board would run")
    out = _board(RESULTS=str(tmp_path / "board"))
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "no CUDA device" in out.stderr
    assert not (tmp_path / "board").exists()
    bad = _board("--all")
    assert bad.returncode == 2 and "valid: --dry-run" in bad.stderr


@pytest.mark.slow
def test_a_cpu_line_of_the_board_runs_as_written(tmp_path):
    """The board's commands are real advbench commands: its cpu line for fedavg, one seed, runs."""
    out = _board("--dry-run", RESULTS=str(tmp_path), SEEDS="1", CPU_JOBS="1")
    [line] = [ln for ln in out.stdout.splitlines() if "--task fedavg" in ln and "--profile cpu" in ln]
    args = shlex.split(line)[1:]
    bin_dir = Path(sys.executable).parent
    ran = subprocess.run([str(bin_dir / "advbench"), *args], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert len(list((tmp_path / "runs").glob("fedavg-v*/*/*cpu__quick__seed0*.json"))) == 4  # 2 methods x 2 splits
