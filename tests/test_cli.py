"""The command line: listing without torch, bad input (exit 2, one line, no traceback), runs, boards."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from advbench.cli import app

runner = CliRunner()
ADVBENCH = [sys.executable, "-m", "advbench.cli"]


def cli(*args: str):
    return runner.invoke(app, list(args))


def test_list_and_help_do_not_import_torch():
    code = ("import sys; sys.argv = ['advbench', '{}']\n"
            "from advbench.cli import app\n"
            "try:\n    app()\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'qiskit', 'qiskit_aer', 'pandas', 'sklearn', 'pgmpy') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    for cmd in ("list", "--help"):
        res = subprocess.run([sys.executable, "-c", code.format(cmd)], capture_output=True, text=True, timeout=60)
        assert "HEAVY []" in res.stdout, res.stdout + res.stderr


def test_list_shows_tasks_methods_and_profiles():
    res = cli("list")
    assert res.exit_code == 0, res.output
    for word in ("transformer-v1", "pc-v", "qnn-v", "reference", "floor", "aer-noisy", "cuda"):
        assert word in res.output


def test_info_describes_a_task():
    res = cli("info", "transformer")
    assert res.exit_code == 0
    for word in ("exact_match", "copy", "reverse", "sort", "quick", "full", "0.99"):
        assert word in res.output


@pytest.mark.parametrize("args, message", [
    (["run", "--task", "transfomer"], "did you mean 'transformer'?"),
    (["run", "--task", "transformer", "--method", "refrence"], "did you mean 'reference'?"),
    (["run", "--task", "transformer", "--profile", "gpu"], "Valid profiles: aer-noisy"),
    (["run", "--task", "transformer", "--profile", "aer-shots"], "does not support profile 'aer-shots'"),
    (["run", "--task", "transformer", "--profile", "cuda"], "not available here"),
    (["run", "--task", "transformer", "--variant", "rev"], "did you mean 'reverse'?"),
    (["run", "--task", "transformer-v9"], "not v9"),
    (["run"], "name a task with --task or use --all"),
    (["run", "--task", "pc", "--all-methods", "--method", "floor"], "not both"),
    (["info", "pcc"], "did you mean 'pc'?"),
    (["leaderboard", "--task", "nope"], "unknown task 'nope'"),
])
def test_bad_input_exits_2_with_one_clear_line(args, message, tmp_path):
    if "cuda" in args and Path("/proc/driver/nvidia").exists():
        pytest.skip("this machine has a GPU")
    res = subprocess.run([*ADVBENCH, *args, "--results", str(tmp_path)] if args[0] == "run" else [*ADVBENCH, *args],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr
    assert message in res.stderr.replace("\n", " ") or message in res.stderr
    assert "Traceback" not in res.stderr and not list(tmp_path.iterdir())  # nothing was written


def test_gate_fails_on_a_worse_candidate(tmp_path):
    base, cand = tmp_path / "base", tmp_path / "cand"
    res = subprocess.run([*ADVBENCH, "run", "--task", "pc", "--variant", "sachs", "--json", "--results", str(base)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    rec = json.loads(res.stdout)[0]
    rec["metrics"][rec["primary_metric"]] -= 0.5  # a much worse skeleton F1 (higher is better)
    rec["targets_met"] = False
    from advbench.records import save

    save(cand, rec)
    gate = cli("gate", "--baseline", str(base), "--candidate", str(cand))
    assert gate.exit_code == 1 and "FAIL" in gate.output and "1 regressions" in gate.output


def test_bad_budget_is_rejected_by_the_parser_with_choices():
    res = subprocess.run([*ADVBENCH, "run", "--task", "pc", "--budget", "huge"], capture_output=True, text=True)
    assert res.returncode == 2 and "quick" in res.stderr and "full" in res.stderr and "Traceback" not in res.stderr


def test_run_json_then_leaderboard_and_gate(tmp_path):
    res = subprocess.run([*ADVBENCH, "run", "--task", "pc", "--method", "floor", "--variant", "sachs",
                          "--seeds", "2", "--json", "--results", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    recs = json.loads(res.stdout)
    assert [r["seed"] for r in recs] == [0, 1] and all(r["method"] == "floor" for r in recs)
    assert len(list((tmp_path / "runs").rglob("*.json"))) == 2

    board = cli("leaderboard", "--results", str(tmp_path))
    assert board.exit_code == 0, board.output
    text = (tmp_path / "LEADERBOARD.md").read_text()
    assert "## pc-v" in text and "| 1 | floor |" in text and "Speed" in text

    rows = json.loads(cli("leaderboard", "--results", str(tmp_path), "--format", "json").stdout)
    assert rows[0]["seeds"] == 2 and rows[0]["method"] == "floor"
    csv = cli("leaderboard", "--results", str(tmp_path), "--format", "csv").stdout
    assert csv.splitlines()[0].startswith("task,")

    gate = cli("gate", "--baseline", str(tmp_path), "--candidate", str(tmp_path))
    assert gate.exit_code == 0 and "0 regressions" in gate.output


def test_leaderboard_survives_a_corrupt_record(tmp_path):
    folder = tmp_path / "runs" / "pc-v1" / "floor"
    folder.mkdir(parents=True)
    (folder / "broken.json").write_text("{not json")
    res = cli("leaderboard", "--results", str(tmp_path), "--no-write")
    assert res.exit_code == 0 and "skipped" in res.output
    assert (folder / "broken.json").read_text() == "{not json"  # reported, never touched


def test_asv_modules_are_in_step_with_the_registry():
    res = cli("asv-suite", "--check", "--dir", str(Path(__file__).parents[1] / "benchmarks"))
    assert res.exit_code == 0, res.output


def test_asv_check_passes():
    pytest.importorskip("asv")
    root = Path(__file__).parents[1]
    res = subprocess.run([sys.executable, "-m", "asv", "check", "-E", f"existing:{sys.executable}"], cwd=root,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "No problems found" in res.stdout, res.stdout + res.stderr


def test_pc_reproduces_the_committed_reference_leaderboard(tmp_path):
    """PC is deterministic per seed: a fresh full run must match the records in results/ exactly."""
    committed = Path(__file__).parents[1] / "results"
    if not list((committed / "runs").glob("pc-v*/reference/*__full__seed0__*.json")):
        pytest.skip("no committed full-budget pc records")
    res = subprocess.run([*ADVBENCH, "run", "--task", "pc", "--budget", "full", "--seed", "0",
                          "--results", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    gate = cli("gate", "--baseline", str(committed), "--candidate", str(tmp_path), "--tolerance", "0")
    assert gate.exit_code == 0 and "4 groups compared, 0 regressions" in gate.output, gate.output
