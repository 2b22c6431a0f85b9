"""The command line: listing without torch, bad input (exit 2, one line, no traceback), runs, boards."""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

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
    (["run", "--task", "dp-fedavg", "--profile", "cuda"], "not available here"),
    (["run", "--task", "transformer", "--variant", "rev"], "did you mean 'reverse'?"),
    (["run", "--task", "transformer-v9"], "not v9"),
    (["run"], "name a task with --task or use --all"),
    (["run", "--task", "pc", "--all-methods", "--method", "floor"], "not both"),
    (["info", "pcc"], "did you mean 'pc'?"),
    (["leaderboard", "--task", "nope"], "unknown task 'nope'"),
    (["run", "--task", "pc[bold]"], "unknown task 'pc[bold]'"),  # odd text is printed as text
    (["run", "--task", "[/x]"], "unknown task '[/x]'"),
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
    res = subprocess.run([*ADVBENCH, "run", "--task", "pc", "--variant", "sachs-like", "--json", "--results", str(base)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    rec = json.loads(res.stdout)[0]
    rec["metrics"][rec["primary_metric"]] -= 0.5  # a much worse skeleton F1 (higher is better)
    rec["targets_met"] = False
    from advbench.records import save

    save(cand, rec)
    gate = cli("gate", "--baseline", str(base), "--candidate", str(cand))
    assert gate.exit_code == 1 and "FAIL" in gate.output and "1 regressions" in gate.output


@pytest.mark.parametrize("args,choices", [
    (["run", "--task", "pc", "--budget", "huge"], ["'quick'", "'full'"]),
    (["lst"], ["Did you mean 'list'?", "Commands: list, info, run"]),
    (["run", "--task", "pc", "--bogus"], ["No such option '--bogus'", "advbench run --help"]),
])
def test_bad_input_the_parser_catches_gets_one_line_with_the_choices(args, choices):
    """Errors click finds before any advbench code runs take the harness's form too: one line on stderr
    (no box), exit code 2, the valid choices, each suggestion once."""
    res = subprocess.run([*ADVBENCH, *args], capture_output=True, text=True)
    assert res.returncode == 2 and res.stdout == "", res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("advbench") and "error:" in lines[0], res.stderr
    assert all(c in lines[0] for c in choices) and lines[0].count("Did you mean") <= 1, lines[0]
    assert "Traceback" not in res.stderr and "╭" not in res.stderr


def test_run_json_then_leaderboard_and_gate(tmp_path):
    res = subprocess.run([*ADVBENCH, "run", "--task", "pc", "--method", "floor", "--variant", "sachs-like",
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
    # the terminal gets a summary and the file's path, not the board itself
    assert "leaderboard summary" in board.stdout and f"wrote {tmp_path / 'LEADERBOARD.md'}" in board.stdout
    assert "## pc-v" not in board.stdout and len(board.stdout.splitlines()) < 20

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


def test_pc_reproduces_the_committed_gate_reference(tmp_path):
    """PC is deterministic per seed: a fresh quick run must match the committed records of the CI
    gate's reference exactly (the leaderboard's pc records are sealed under a key CI does not hold)."""
    committed = Path(__file__).parents[1] / "results" / "ci-reference"
    assert list((committed / "runs").glob("pc-v*/reference/*__quick__seed0__*.json")), "no committed pc records"
    res = subprocess.run([*ADVBENCH, "run", "--task", "pc", "--seeds", "3", "--results", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    gate = cli("gate", "--baseline", str(committed), "--candidate", str(tmp_path), "--tolerance", "0")
    assert gate.exit_code == 0 and "2 groups compared, 0 regressions" in gate.output, gate.output


@pytest.mark.parametrize("args, env, message", [
    (["run", "--task", "pc", "--results", "/proc/advbench-results"], {}, "is not writable"),
    (["run", "--task", "pc", "--seeds", "100000000"], {}, "1000"),  # typer words the range its own way
    (["run", "--task", "pc"], {"ADVBENCH_THREADS": "abc"}, "ADVBENCH_THREADS='abc' is not a thread count"),
    (["run", "--task", "pc", "--sealed"], {"ADVBENCH_SEAL_KEY": ""}, "needs a secret key of at least 16"),
    (["leaderboard", "--results", "/nonexistent/advbench"], {}, "does not exist"),
    (["gate", "--baseline", "/nonexistent/a", "--candidate", "/nonexistent/b"], {}, "does not exist"),
])
def test_bad_setup_exits_2_before_any_work(args, env, message, tmp_path):
    import os

    res = subprocess.run([*ADVBENCH, *args], capture_output=True, text=True, timeout=120,
                         env={**os.environ, **env}, cwd=tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert message in res.stderr.replace("\n", " "), res.stderr
    assert "Traceback" not in res.stderr and not list(tmp_path.iterdir())
    assert not Path("/nonexistent").exists()


def test_results_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "results"
    target.write_text("not a directory")
    for args in (["run", "--task", "pc"], ["leaderboard"]):
        res = subprocess.run([*ADVBENCH, *args, "--results", str(target)], capture_output=True, text=True, timeout=120)
        assert res.returncode == 2 and "is not a directory" in res.stderr and "Traceback" not in res.stderr
    assert target.read_text() == "not a directory"


def test_sweeps_resume_and_force_runs_again(tmp_path):
    args = [*ADVBENCH, "run", "--task", "pc", "--method", "floor", "--variant", "sachs-like", "--seeds", "2",
            "--results", str(tmp_path)]
    assert subprocess.run(args, capture_output=True, text=True, timeout=300).returncode == 0
    again = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "skipped 2 run(s)" in again.stderr
    assert len(list((tmp_path / "runs").rglob("*.json"))) == 2
    forced = subprocess.run([*args, "--force"], capture_output=True, text=True, timeout=300)
    assert forced.returncode == 0 and len(list((tmp_path / "runs").rglob("*.json"))) == 4


def test_a_record_of_a_budget_since_changed_is_run_again_and_left_off_the_board(tmp_path):
    """A quick budget cut without a new task version (maml 2000 -> 1500 meta-iterations) leaves
    records of the old limits behind: they are no runs of today's budget, so resume runs them again
    and the board leaves them out, saying which and why; the old file stays."""
    args = [*ADVBENCH, "run", "--task", "pc", "--method", "floor", "--variant", "sachs-like", "--results", str(tmp_path)]
    assert subprocess.run(args, capture_output=True, text=True, timeout=300).returncode == 0
    (old,) = (tmp_path / "runs").rglob("*.json")
    rec = json.loads(old.read_text())
    assert rec["config"]["budget"]["limits"]["samples"] == 5000
    rec["config"]["budget"]["limits"]["samples"] = 4000  # as if made before the budget changed
    old.write_text(json.dumps(rec))
    board = subprocess.run([*ADVBENCH, "leaderboard", "--results", str(tmp_path), "--no-write"],
                           capture_output=True, text=True, timeout=300)
    assert "left out 1 record(s) made under a budget the task has since changed" in board.stderr.replace("\n", " ")
    assert "samples 4000 (now 5000)" in board.stderr.replace("\n", " ")
    again = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "skipped" not in again.stderr
    assert old.exists() and len(list((tmp_path / "runs").rglob("*.json"))) == 2
    board = subprocess.run([*ADVBENCH, "leaderboard", "--results", str(tmp_path), "--no-write", "--format", "json"],
                           capture_output=True, text=True, timeout=300)
    rows = json.loads(board.stdout)
    assert [(r["method"], r["seeds"]) for r in rows] == [("floor", 1)]


def test_kill_9_midway_then_rerun_leaves_every_seed_once(tmp_path):
    import signal
    import time

    import psutil

    results, scratch = tmp_path / "results", tmp_path / "tmp"
    scratch.mkdir()
    args = [*ADVBENCH, "run", "--task", "pc", "--method", "floor", "--variant", "sachs-like", "--seeds", "5",
            "--results", str(results)]
    # The killed harness cannot remove its run's folders: they go to a TMPDIR inside the test's own.
    env = dict(os.environ, TMPDIR=str(scratch))
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 240
    while len(list(results.rglob("*.json"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGKILL)  # at whatever moment the sweep is in
    proc.wait()
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive  # method and scoring processes die with the harness
    before = sorted(p.name for p in results.rglob("*.json"))
    assert 2 <= len(before) < 5
    for path in results.rglob("*.json"):
        json.loads(path.read_text())  # every record on disk is whole
    res = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    recs = [json.loads(p.read_text()) for p in results.rglob("*.json")]
    assert sorted(r["seed"] for r in recs) == [0, 1, 2, 3, 4]
    assert f"skipped {len(before)} run(s)" in res.stderr


def test_a_failed_run_exits_1_with_a_summary_and_the_gate_fails_it(tmp_path):
    from advbench.records import save

    base = tmp_path / "base"
    res = subprocess.run([*ADVBENCH, "run", "--task", "pc", "--variant", "sachs-like", "--json", "--results", str(base)],
                         capture_output=True, text=True, timeout=300)
    rec = json.loads(res.stdout)[0]
    crashed = {**rec, "status": "crashed", "error": "the method's process died: killed by signal SIGSEGV",
               "metrics": {}, "targets_met": False, "run_id": "crashed0001",
               "created_utc": "2099-01-01T00:00:00+00:00"}
    save(tmp_path / "cand", crashed)
    gate = cli("gate", "--baseline", str(base), "--candidate", str(tmp_path / "cand"))
    assert gate.exit_code == 1 and "candidate run(s) failed: seed 0: crashed" in gate.output, gate.output
    # A failed re-run is what the board shows for that seed, not the older success.
    save(base, crashed)
    rows = json.loads(cli("leaderboard", "--results", str(base), "--format", "json").stdout)
    (row,) = [r for r in rows if r["method"] == "reference"]
    assert row["seeds"] == 0 and row["failed"] == 1 and "seed 0: crashed" in row["failures"]


def test_leaderboard_skips_records_with_broken_nested_fields(tmp_path):
    from advbench.records import save

    res = subprocess.run([*ADVBENCH, "run", "--task", "pc", "--method", "floor", "--variant", "sachs-like", "--json",
                          "--results", str(tmp_path)], capture_output=True, text=True, timeout=300)
    rec = json.loads(res.stdout)[0]
    save(tmp_path, {**rec, "run_id": "broken00001", "timings": "soon"})
    save(tmp_path, {**rec, "run_id": "broken00002", "metrics": [0.5]})
    board = subprocess.run([*ADVBENCH, "leaderboard", "--results", str(tmp_path)], capture_output=True, text=True)
    assert board.returncode == 0 and board.stderr.count("skipped") == 2 and "Traceback" not in board.stderr
    import os
    import stat

    assert stat.S_IMODE(os.stat(tmp_path / "LEADERBOARD.md").st_mode) & 0o044  # readable by others (umask)


def test_interval_is_over_replicates_where_a_task_groups_its_seeds():
    import pandas as pd

    from advbench import leaderboard as lb

    base = {"task": "gnn", "task_version": 2, "variant": "family", "profile": "cpu", "budget": "full",
            "threads": 1, "sealed": False, "method": "reference", "role": "reference", "primary_metric": "accuracy",
            "status": "ok", "targets": [], "targets_met": None, "time_to_target": None, "train_seconds": 1.0,
            "throughput": None, "throughput_unit": "", "peak_rss": None, "peak_cuda": None, "commit": None}
    # Two repeats of 10 folds: fold scores vary a lot, repeat means hardly.
    scores = [0.8, 1.0] * 5 + [0.82, 0.98] * 5
    df = pd.DataFrame([{**base, "seed": s, "primary": v, "metrics": {"accuracy": v}} for s, v in enumerate(scores)])
    (by_seed,) = lb.aggregate(df)
    (by_repeat,) = lb.aggregate(df, seeds_per_replicate={"gnn": 10})
    assert by_seed["replicates"] == 20 and by_repeat["replicates"] == 2 and by_repeat["seeds"] == 20
    assert by_repeat["mean"] == pytest.approx(0.9) and by_seed["mean"] == pytest.approx(0.9)
    assert by_repeat["ci95"] == pytest.approx(0.0, abs=1e-9) and by_seed["ci95"] > 0.04


def test_info_prints_spec_text_and_method_sources_verbatim():
    res = cli("info", "pc")
    assert res.exit_code == 0
    assert "adj[i,j]=1" in res.output and "floor (advbench), reference (advbench)" in res.output


def test_confidence_interval_is_scipys_student_t_interval():
    from scipy import stats

    from advbench import leaderboard as lb

    for values in ([0.91, 0.93, 0.90], [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0], [0.5] * 12, list(range(40))):
        low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values)) \
            if np.std(values) > 0 else (np.mean(values), np.mean(values))
        assert lb.ci95(values) == pytest.approx((high - low) / 2, abs=1e-12)
    assert math.isnan(lb.ci95([0.7]))


def test_iqm_is_the_mean_of_the_middle_half_with_a_bootstrap_interval_that_covers_it():
    from advbench import leaderboard as lb

    values = [0.0, 100.0, *range(1, 9), -50.0, 7.5]  # 12 runs, two wild ones that the IQM ignores
    iqm, low, high = lb.iqm_with_interval(values)
    middle = sorted(values)[3:9]
    assert iqm == pytest.approx(sum(middle) / len(middle))
    assert low < iqm < high and high - low < 10  # the outliers do not blow the interval up
    assert lb.iqm_with_interval(values) == (iqm, low, high)  # seeded resampling: the board repeats
    assert lb.iqm_with_interval([0.5] * 10) == (0.5, 0.5, 0.5)


def test_leaderboard_json_is_strict_json_with_null_for_a_single_seeds_interval(tmp_path):
    res = subprocess.run([*ADVBENCH, "run", "--task", "pc", "--method", "floor", "--variant", "sachs-like", "--results",
                          str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    res = cli("leaderboard", "--results", str(tmp_path), "--format", "json")
    assert res.exit_code == 0, res.output

    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    rows = json.loads(res.stdout, parse_constant=refuse)
    assert rows and rows[0]["ci95"] is None


def test_reproduce_reruns_a_record_and_compares_every_metric(tmp_path):
    res = subprocess.run([*ADVBENCH, "run", "--task", "pc", "--method", "floor", "--variant", "sachs-like", "--results",
                          str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    (path,) = (tmp_path / "runs").rglob("*.json")
    same = cli("reproduce", str(path))
    assert same.exit_code == 0 and "0 of" in same.output and "outside the tolerance" in same.output, same.output

    rec = json.loads(path.read_text())
    rec["metrics"]["skeleton_f1"] += 0.1
    rec["environment"]["packages"]["numpy"] = "0.0.1"
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(rec))
    diff = subprocess.run([*ADVBENCH, "reproduce", str(tampered)], capture_output=True, text=True, timeout=300)
    assert diff.returncode == 1 and "1 of" in diff.stdout, diff.stdout
    assert "numpy was 0.0.1" in diff.stderr

    rec["task_version"] = 99
    tampered.write_text(json.dumps(rec))
    old = subprocess.run([*ADVBENCH, "reproduce", str(tampered)], capture_output=True, text=True, timeout=60)
    assert old.returncode == 2 and "cannot be reproduced here" in old.stderr and "Traceback" not in old.stderr
    missing = subprocess.run([*ADVBENCH, "reproduce", str(tmp_path / "nope.json")], capture_output=True, text=True)
    assert missing.returncode == 2 and "not a record file" in missing.stderr


def test_markdown_board_shows_the_specs_metrics_and_json_keeps_every_number():
    """ewc records hold the 25 entries of the accuracy matrix: data for JSON, clutter on the Markdown board."""
    committed = Path(__file__).parents[1] / "results"
    md = cli("leaderboard", "--results", str(committed), "--task", "ewc", "--no-write").stdout
    assert "| acc (accuracy; mean ± 95% CI) | bwt (accuracy) | stages (tasks) |" in md and "R_0_0" not in md
    rows = json.loads(cli("leaderboard", "--results", str(committed), "--task", "ewc", "--format", "json").stdout)
    assert rows and all("metric.R_4_0" in r for r in rows)


def board_rows(runs, **fields):
    """Aggregated rows of one board: ``runs`` are (method, role, [per-seed metric dicts]); the primary metric
    is the first key of each dict; ``fields`` override the records' other columns."""
    import pandas as pd

    from advbench import leaderboard as lb

    base = {"task": "nas", "task_version": 1, "variant": "v", "profile": "cpu", "budget": "full", "threads": 1,
            "sealed": False, "status": "ok", "targets": [], "targets_met": None, "time_to_target": None,
            "train_seconds": 1.0, "throughput": None, "throughput_unit": "", "peak_rss": None, "peak_cuda": None,
            "commit": None, **fields}
    df = pd.DataFrame([{**base, "method": m, "role": role, "seed": s, "primary_metric": next(iter(ms)),
                        "primary": next(iter(ms.values())), "metrics": ms}
                       for m, role, seeds in runs for s, ms in enumerate(seeds)])
    return lb.aggregate(df)


def spec_of(*metrics):
    """A stand-in for a TaskSpec: only ``metric(name)``, which the boards ask."""
    from types import SimpleNamespace

    by_name = {m.name: m for m in metrics}
    return SimpleNamespace(metric=lambda name: by_name[name])


def test_board_numbers_are_integers_where_whole_counts_to_a_decimal_else_four_significant_digits():
    from advbench import leaderboard as lb

    assert [lb._num(100.0), lb._num(100), lb._num(-0.0), lb._num(94.8, count=True), lb._num(94.8123, count=True)] \
        == ["100", "100", "0", "94.8", "94.8"]
    assert [lb._num(0.000123), lb._num(-0.000123), lb._num(0.001), lb._num(0.0012346)] \
        == ["1.23e-04", "-1.23e-04", "0.001000", "0.001235"]
    assert [lb._num(0.851234), lb._num(28.8217), lb._num(-1223.097), lb._num(24930.2)] \
        == ["0.8512", "28.82", "-1223", "24930"]
    assert [lb._num(None), lb._num(float("nan")), lb._num(float("inf")), lb._num(-0.0001, decimals=2)] \
        == ["—", "—", "∞", "0.00"]


def test_intervals_are_written_to_two_digits_of_the_half_width_and_clipped_to_the_metrics_range():
    from advbench import leaderboard as lb
    from advbench.spec import Metric

    regret = Metric("regret", "accuracy", False, "best test accuracy minus the chosen one's")
    acc, steps = Metric("acc", "accuracy", True), Metric("steps", "steps", False)
    psnr = Metric("psnr", "dB", True)
    assert lb._bounds(regret) == (-1.0, 1.0) and lb._bounds(acc) == (0.0, 1.0)
    assert lb._bounds(steps) == (0.0, float("inf")) and lb._bounds(psnr) is None and lb._bounds(None) is None
    assert lb._mean_ci(-0.95, 0.1, 3, regret) == "-0.95 [-1, -0.85]"
    assert lb._mean_ci(0.97, 0.05, 3, regret) == "0.970 [0.920, 1]"
    assert lb._mean_ci(0.5, 0.123, 3, regret) == "0.50 ± 0.12"
    assert lb._mean_ci(0.98, 0.05, 3, acc) == "0.980 [0.930, 1]"
    assert lb._mean_ci(0.98, 0.05, 3, None) == "0.980 ± 0.050"  # no spec: nothing to clip to
    assert lb._mean_ci(2.5, 4.0, 3, steps) == "2.5 [0, 6.5]"
    assert lb._mean_ci(94.8, float("nan"), 1, steps) == "94.8"  # one replicate: no interval
    assert lb._mean_ci(31.23456, 0.5, 3, psnr) == "31.23 ± 0.50"


def test_accuracy_table_carries_units_and_clipped_intervals_given_the_spec_and_works_without():
    from advbench import leaderboard as lb
    from advbench.spec import Metric

    rows = board_rows([("reference", "reference", [{"acc": 0.99, "steps": 94, "regret": 0.0},
                                                    {"acc": 1.0, "steps": 95, "regret": 0.002},
                                                    {"acc": 0.93, "steps": 95.4, "regret": 0.0001}])])
    spec = spec_of(Metric("acc", "accuracy", True), Metric("steps", "steps", False),
                   Metric("regret", "accuracy", False, "best minus chosen"))
    head, row = lb.accuracy_table(rows, spec=spec)
    assert head[3:6] == ["acc (accuracy; mean ± 95% CI)", "regret (accuracy)", "steps (steps)"]
    assert row[3:6] == ["0.973 [0.879, 1]", "7.00e-04", "94.8"]
    head, row = lb.accuracy_table(rows)  # no spec: no units, nothing clipped, the same number rules
    assert head[3:6] == ["acc (mean ± 95% CI)", "regret", "steps"] and row[3:6] == ["0.973 ± 0.094", "7.00e-04", "94.80"]
    assert lb.accuracy_table(rows, declared={"acc", "steps"}, spec=spec)[0][3:5] == ["acc (accuracy; mean ± 95% CI)",
                                                                                      "steps (steps)"]


def test_speed_table_numbers_follow_the_accuracy_tables_rules():
    from advbench import leaderboard as lb

    (row,) = board_rows([("reference", "reference", [{"acc": 0.9}, {"acc": 0.8}])], train_seconds=12.94,
                        throughput=24930.2, throughput_unit="steps/s", time_to_target=0.000123, targets=[[1]],
                        targets_met=True)
    assert lb.speed_table([row])[1][1:4] == ["1.23e-04 (2/2 reached)", "12.94", "24930"]


def test_odd_text_from_a_method_is_printed_as_text_and_the_sweep_goes_on(tmp_path, monkeypatch, toy_registry):
    """A method's error that looks like rich markup ("[/bold]") once crashed the harness; piped
    output (not a terminal) gets one line per finished run, as it finishes."""
    import advbench.registry

    toy_registry.register_method("toy", "markup-error", "toy_methods:markup_error")
    monkeypatch.setattr(advbench.registry, "default_registry", lambda: toy_registry)
    res = runner.invoke(app, ["run", "--task", "toy", "--method", "markup-error", "--method", "estimate",
                              "--results", str(tmp_path)])
    assert res.exit_code == 1 and res.exception is None or isinstance(res.exception, SystemExit), res.output
    out = res.output
    assert "unbalanced [/bold] and [link=file:///x]closing[/link] tags" in out, out
    assert "toy:estimate easy cpu seed 0: ok abs_error=" in out and "toy:markup-error easy cpu seed 0: error" in out
    assert "Traceback" not in out


def test_the_gate_fails_when_it_compares_nothing_and_names_the_missing_folder(tmp_path):
    from advbench.records import save

    base, cand = tmp_path / "base", tmp_path / "cand"
    res = subprocess.run([*ADVBENCH, "run", "--task", "pc", "--variant", "sachs-like", "--json", "--results", str(base)],
                         capture_output=True, text=True, timeout=300)
    rec = json.loads(res.stdout)[0]
    save(cand, {**rec, "budget": "full", "run_id": "otherbudget1"})  # nothing in base to compare it with
    gate = cli("gate", "--baseline", str(base), "--candidate", str(cand))
    assert gate.exit_code == 1 and "0 groups compared" in gate.output and "no group of" in gate.output, gate.output
    missing = cli("gate", "--baseline", str(base), "--candidate", str(tmp_path / "nope"))
    assert missing.exit_code == 2 and f"--candidate {tmp_path / 'nope'} does not exist" in missing.output


def test_two_sweeps_into_one_folder_run_each_run_once(tmp_path):
    """Runs are claimed under a lock per run: a second sweep started beside the first leaves the
    first's runs to it (and runs what is left), so 6 runs give 6 records, not 12."""
    cmd = [*ADVBENCH, "run", "--task", "pc", "--variant", "sachs-like", "--seeds", "6", "--results", str(tmp_path)]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    import time

    while not (tmp_path / ".claims").exists() and first.poll() is None:
        time.sleep(0.05)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    first.wait(timeout=600)
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    assert "being run by another sweep" in second.stderr or "skipped" in second.stderr, second.stderr
    from advbench.records import iter_records

    recs = list(iter_records(tmp_path))
    assert len(recs) == 6 and sorted(r["seed"] for r in recs) == list(range(6))


def test_the_runs_table_keeps_the_primary_metric_whole_at_80_columns(monkeypatch):
    import io

    from rich.console import Console

    import advbench.cli as cli_mod

    rec = {"task": "maddpg", "method": "reference", "variant": "spread", "profile": "cpu", "budget": "quick",
           "seed": 0, "status": "ok", "primary_metric": "team_return", "metrics": {"team_return": -60.61234},
           "targets": [{"met": True}], "targets_met": True, "time_to_target_seconds": 14.2,
           "throughput": {"value": 1036.0, "unit": "env steps/s"}, "timings": {"train_seconds": 19.3},
           "memory": {"peak_rss_bytes": 438 * 2**20}}
    buf = io.StringIO()
    monkeypatch.setattr(cli_mod, "out", Console(file=buf, width=80))
    cli_mod._print_records([rec])
    assert "team_return=-60.61" in buf.getvalue() and max(map(len, buf.getvalue().splitlines())) <= 80


def test_help_paragraphs_are_rewrapped_not_cut_mid_sentence():
    import os

    for cmd in ("run", "gate"):
        res = subprocess.run([*ADVBENCH, cmd, "--help"], capture_output=True, text=True, timeout=60,
                             env=dict(os.environ, COLUMNS="80", TERM="dumb"))
        head = res.stdout.split("Options")[0].splitlines()
        body = [line.strip() for line in head if line.strip() and not line.strip().startswith(("Usage", "╭"))]
        paragraphs, current = [], []
        for line in head:
            if line.strip():
                current.append(line.strip())
            elif current:
                paragraphs.append(current)
                current = []
        for para in paragraphs:
            for line in para[:-1]:  # every line but a paragraph's last fills the width
                assert len(line) > 55, (cmd, line, body)


def test_list_says_which_extra_a_method_needs_where_it_is_missing(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    res = runner.invoke(app, ["list"], env={"COLUMNS": "250"})
    assert res.exit_code == 0 and "tpe-ray-tune [needs pip install 'advbench[ray-tune]']" in res.output, res.output


def test_a_full_disk_is_one_clear_line_and_the_finished_run_is_written_once_there_is_room(tmp_path):
    """The results folder on a 1 MiB tmpfs, filled up: the run finishes, its record cannot be
    written, the harness says so in one line and tries again; room is made, the record lands."""
    import os
    import shutil
    import time

    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs for the results")
    disk = tmp_path / "small-disk"
    disk.mkdir()
    assert subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)]).returncode == 0
    try:
        results = disk / "results"
        results.mkdir()
        filler = disk / "filler"
        with open(filler, "wb") as f:
            with contextlib.suppress(OSError):
                f.write(b"\0" * (2 * 2**20))
        proc = subprocess.Popen([*ADVBENCH, "run", "--task", "pc", "--variant", "sachs-like", "--results", str(results)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        import threading

        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)
        reader.start()
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None and not any("cannot write" in x for x in lines):
            time.sleep(0.2)
        assert not list(results.rglob("*.json"))  # the run is done, its record is waiting for room
        filler.unlink()
        proc.wait(timeout=120)
        reader.join(10)
        errs = "".join(lines)
        assert proc.returncode == 0, errs
        assert "cannot write the record of pc:reference sachs-like seed 0" in errs and "Traceback" not in errs, errs
        assert len(list(results.rglob("*.json"))) == 1
    finally:
        subprocess.run(["umount", "-l", str(disk)])


def test_the_gate_judges_one_method_against_another_on_the_same_seeds(tmp_path):
    """A plugin author's gate: the method against the reference, from one results folder."""
    res = subprocess.run([*ADVBENCH, "run", "--task", "pc", "--variant", "sachs-like", "--all-methods", "--seeds", "2",
                          "--results", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    worse = cli("gate", "--baseline", str(tmp_path), "--candidate", str(tmp_path), "--baseline-method", "reference",
                "--method", "floor")
    assert worse.exit_code == 1 and "FAIL" in worse.output, worse.output  # the empty graph is worse
    same = cli("gate", "--baseline", str(tmp_path), "--candidate", str(tmp_path), "--baseline-method", "reference",
               "--method", "reference")
    assert same.exit_code == 0 and "0 regressions" in same.output, same.output
    bad = cli("gate", "--baseline", str(tmp_path), "--candidate", str(tmp_path), "--method", "nope")
    assert bad.exit_code == 2 and "no runs of method 'nope'" in bad.output


def test_new_method_writes_a_plugin_that_installs_and_registers(tmp_path):
    res = cli("new-method", "pc", "my-search", "--dir", str(tmp_path))
    assert res.exit_code == 0, res.output
    root = tmp_path / "advbench-pc-my-search"
    text = (root / "pyproject.toml").read_text()
    assert '"pc:my-search" = "advbench_pc_my_search.method:train"' in text
    method = (root / "src" / "advbench_pc_my_search" / "method.py").read_text()
    assert "import advbench.tasks.pc.contract as contract" in method and "baselines" not in method.split('"""')[2]
    compile(method, "method.py", "exec")
    compile((root / "tests" / "test_advbench_pc_my_search.py").read_text(), "test.py", "exec")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(site), str(root)], check=True, capture_output=True, timeout=300)
    import os

    listed = subprocess.run([*ADVBENCH, "list"], capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, PYTHONPATH=str(site), COLUMNS="200"))
    assert "my-search" in listed.stdout, listed.stdout
    again = cli("new-method", "pc", "my-search", "--dir", str(tmp_path))
    assert again.exit_code == 2 and "exists already" in again.output
    taken = cli("new-method", "pc", "reference", "--dir", str(tmp_path))
    assert taken.exit_code == 2 and "has a method 'reference' already" in taken.output


def test_a_plugin_may_not_import_advbench_baselines(tmp_path, toy_registry):
    """Plugins get task contracts only: advbench.baselines is refused in their jail."""
    from advbench.runner import run

    toy_registry.register_method("toy", "borrows", "toy_methods:borrows_a_baseline", source="some-plugin")
    rec = run("toy", "borrows", results_dir=None, registry=toy_registry)
    assert rec["status"] == "error" and "a plugin may import advbench's task contracts" in rec["error"], rec["error"]


def test_equal_scores_share_a_rank_and_the_reference_is_listed_first():
    import pandas as pd

    from advbench import leaderboard as lb

    base = {"task": "pc", "task_version": 1, "variant": "sachs", "profile": "cpu", "budget": "full",
            "threads": 1, "sealed": False, "primary_metric": "skeleton_f1", "status": "ok", "targets": [],
            "targets_met": None, "time_to_target": None, "train_seconds": 1.0, "throughput": None,
            "throughput_unit": "", "peak_rss": None, "peak_cuda": None, "commit": None}
    runs = [("aaa-plugin", "plugin", 1.0), ("reference", "reference", 1.0), ("floor", "floor", 0.0),
            ("zzz-plugin", "plugin", 0.5)]
    df = pd.DataFrame([{**base, "method": m, "role": role, "seed": s, "primary": v, "metrics": {"skeleton_f1": v}}
                       for m, role, v in runs for s in range(3)])
    rows = lb.aggregate(df)
    assert [(r["method"], r["rank"]) for r in rows] == [("reference", 1), ("aaa-plugin", 1), ("zzz-plugin", 3),
                                                         ("floor", 4)]


def test_a_pipe_or_line_break_in_a_cell_keeps_the_markdown_row_whole():
    from advbench.leaderboard import markdown_table

    text = markdown_table([["method", "failed"], ["mine", "seed 3: ValueError: a|b\nsecond line"]])
    head, rule, row = text.splitlines()
    assert row == r"| mine | seed 3: ValueError: a\|b second line |"
    # Unescaped pipes split a row into cells: the header's count, never more.
    assert len([c for c in row.replace(r"\|", "").split("|")]) == len(head.split("|"))


def test_the_board_puts_cpu_and_cuda_runs_side_by_side_with_a_speedup():
    """The GPU board: the same method, variant and budget on both profiles gives one row with both
    training times and their ratio; a method run on one profile only gives none."""
    pd = pytest.importorskip("pandas")
    from advbench import leaderboard as lb

    base = {"task": "nerf", "task_version": 2, "variant": "spheres", "budget": "quick", "sealed": False,
            "primary_metric": "psnr", "status": "ok", "targets": [], "targets_met": None, "time_to_target": None,
            "throughput": None, "throughput_unit": "", "peak_rss": None, "peak_cuda": None, "commit": None}
    runs = [("reference", "cpu", 1, 60.0, 25.0), ("reference", "cuda", 16, 4.0, 25.5),
            ("floor", "cpu", 1, 1.0, 10.0)]
    df = pd.DataFrame([{**base, "method": m, "role": m, "profile": p, "threads": t, "seed": s, "primary": v,
                        "train_seconds": secs, "metrics": {"psnr": v}}
                       for m, p, t, secs, v in runs for s in range(3)])
    rows = lb.aggregate(df)
    [pair] = lb.profile_speedups(rows)
    assert pair["method"] == "reference" and pair["speedup"] == pytest.approx(15.0)
    assert (pair["cpu_threads"], pair["cuda_threads"]) == (1, 16)
    board = lb.to_markdown(rows)
    assert "### cpu and cuda" in board
    assert "| spheres | quick | reference | 60 | 4 | 15.00x | 25 | 25.50 | 3 / 3 |" in board, board
    assert "### cpu and cuda" not in lb.to_markdown([r for r in rows if r["profile"] == "cpu"])


def test_methods_that_ship_with_advbench_are_built_in_not_plugins():
    """maddpg's iddpg or nerf's hash grid are advbench's own alternatives: the board calls them
    built-in, also in records made before the role existed (their source is advbench's)."""
    from advbench.leaderboard import _role
    from advbench.registry import Registry

    reg = Registry()
    spec = reg.spec("maddpg")
    assert spec.role("iddpg", builtin=reg.method("maddpg", "iddpg").builtin) == "built-in"
    assert spec.role("someone-elses") == "plugin" and spec.role("reference", builtin=True) == "reference"
    assert _role({"method_role": "plugin", "method_source": "advbench"}) == "built-in"
    assert _role({"method_role": "plugin", "method_source": "advbench-example-plugin"}) == "plugin"
    assert _role({"method_role": "floor", "method_source": "advbench"}) == "floor"
