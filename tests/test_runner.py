"""The runner: records, targets, time-to-target, caps and faults, determinism, the store."""

from __future__ import annotations

import json
import os
import platform
import stat

import pytest

from advbench import records
from advbench.errors import UsageError
from advbench.runner import run


def test_record_has_everything_a_leaderboard_needs(toy_registry, tmp_path):
    rec = run("toy", "estimate", budget="quick", seed=1, results_dir=tmp_path, registry=toy_registry)
    assert rec["status"] == "ok" and rec["task_id"] == "toy-v3" and rec["variant"] == "easy"
    assert rec["method_role"] == "reference" and rec["seed"] == 1
    assert rec["isolation"] == "process" and rec["sealed"] is False and rec["seal_key_sha256"] is None
    assert rec["threads"] == 1 == rec["environment"]["hardware"]["threads"]
    # The vector instruction set: float32 results of one seed differ from one to another.
    assert rec["environment"]["hardware"]["vector_isa"] in ("avx512", "avx2", "avx", "sse4_2", platform.machine())
    assert set(rec["metrics"]) == {"abs_error", "hit"}
    (target,) = rec["targets"]
    assert target["metric"] == "abs_error" and target["direction"] == "at most"
    assert target["met"] is (rec["metrics"]["abs_error"] <= 0.1) and rec["targets_met"] is target["met"]
    assert rec["throughput"]["unit"] == "samples/s" and rec["throughput"]["work"] == 2000
    assert rec["memory"]["peak_rss_bytes"] > 10 * 2**20 and rec["memory"]["cap_bytes"] > 0
    for key in ("method_start_seconds", "scorer_start_seconds", "transfer_seconds", "transfer_bytes"):
        assert rec["timings"][key] >= 0
    env = rec["environment"]
    assert env["python"] and "numpy" in env["packages"] and "advbench" in env["packages"]
    assert "commit" in env
    assert rec["config"]["budget"]["limits"] == {"samples": 2000}
    on_disk = json.loads(open(rec["path"]).read())
    assert on_disk["metrics"] == rec["metrics"] and on_disk["run_id"] == rec["run_id"]


def test_records_are_written_with_the_umask_not_0600(toy_registry, tmp_path):
    old = os.umask(0o022)
    try:
        rec = run("toy", "zero", seed=0, results_dir=tmp_path, registry=toy_registry)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(rec["path"]).st_mode) == 0o644


def test_torchs_compiler_stack_is_imported_before_the_training_clock(toy_registry):
    """The first optimiser a torch method builds makes torch import torch._dynamo and sympy (about
    1.2 s): a library's import, paid before the clock as the method module's own imports are, not
    inside every torch run's training. A method in a fresh jailed process sees it imported already."""
    toy_registry.register_method("toy", "first-optimiser", "torch_toy_methods:first_optimiser")
    rec = run("toy", "first-optimiser", seed=0, results_dir=None, registry=toy_registry)
    assert rec["status"] == "ok", rec["error"]
    assert rec["isolation"] in ("process", "no-jail")  # a fresh process of its own either way
    assert rec["config"]["method"]["compiler_imported_before_the_clock"] is True


def test_time_to_target_is_first_checkpoint_meeting_target(toy_registry):
    rec = run("toy", "estimate", budget="quick", seed=0, results_dir=None, registry=toy_registry)
    curve = rec["curve"]
    first = next(p for p in curve if p["metrics"]["abs_error"] <= 0.1)
    assert rec["time_to_target_seconds"] == first["train_seconds"]
    (target,) = rec["targets"]
    assert target["step_to_target"] == first["step"] and target["work_to_target"] == first["work"] == first["step"]
    assert [p["train_seconds"] for p in curve] == sorted(p["train_seconds"] for p in curve)


def test_seeded_runs_are_deterministic_and_match_in_process(toy_registry):
    a = run("toy", "estimate", budget="quick", seed=7, results_dir=None, registry=toy_registry)
    b = run("toy", "estimate", budget="quick", seed=7, results_dir=None, registry=toy_registry)
    c = run("toy", "estimate", budget="quick", seed=8, results_dir=None, registry=toy_registry)
    d = run("toy", "estimate", budget="quick", seed=7, results_dir=None, registry=toy_registry, isolation="in-process")
    assert a["metrics"] == b["metrics"] == d["metrics"] and a["metrics"] != c["metrics"]
    assert d["isolation"] == "in-process"


def test_time_cap_stops_a_checkpointing_method_and_scores_its_last_checkpoint(toy_registry):
    rec = run("toy", "slow", budget="quick", seed=0, results_dir=None, registry=toy_registry)
    assert rec["status"] == "time_cap"
    assert 1.0 < rec["timings"]["train_seconds"] < 3.0
    assert rec["metrics"]["abs_error"] == rec["curve"][-1]["metrics"]["abs_error"]


def test_a_method_that_hangs_without_checkpointing_is_killed_at_the_cap(toy_registry):
    rec = run("toy", "hang", budget="quick", seed=0, results_dir=None, registry=toy_registry)
    assert rec["status"] == "time_cap" and "killed after" in rec["error"]
    assert 1.0 < rec["timings"]["train_seconds"] < 4.0
    assert rec["metrics"] == rec["curve"][0]["metrics"]  # the one checkpoint it made is what counts


def test_a_killed_method_leaves_no_temporary_files(toy_registry):
    """Each method process gets a /tmp of its own (a tmpfs of its jail), gone with it, even when it is
    killed at the cap; without the jail, a TMPDIR of its own, removed with it."""
    import tempfile
    from pathlib import Path

    rec = run("toy", "temp-files-then-hang", budget="quick", seed=0, results_dir=None, registry=toy_registry)
    assert rec["status"] == "time_cap" and rec["jail"] is not None
    left = Path(rec["config"]["method"]["temp_file"])
    assert left.parent == Path("/tmp") and not left.exists()  # its /tmp was the jail's, not the host's

    rec = run("toy", "temp-files-then-hang", budget="quick", seed=0, results_dir=None, registry=toy_registry,
              isolation="no-jail")
    assert rec["status"] == "time_cap" and rec["jail"] is None and rec["isolation"] == "no-jail"
    left = Path(rec["config"]["method"]["temp_file"])
    assert left.parent.name.startswith("advbench-method-") and left.parent.parent == Path(tempfile.gettempdir())
    assert not left.parent.exists()


@pytest.mark.parametrize("method, status, message", [
    ("crash", "error", "RuntimeError: boom"),
    ("exit-3", "error", "the method called sys.exit(3)"),
    ("hard-exit", "crashed", "exit code 1"),
    ("segfault", "crashed", "SIGSEGV"),
    ("nan", "error", "metric 'abs_error' is nan"),
    ("wrong-type", "error", "evaluation failed"),
    ("no-solution", "error", "returned no solution"),
    ("unpicklable", "error", "cannot be pickled"),
])
def test_faults_are_contained_and_recorded(toy_registry, tmp_path, method, status, message):
    rec = run("toy", method, seed=0, results_dir=tmp_path, registry=toy_registry)
    assert rec["status"] == status and message in rec["error"], rec["error"]
    assert rec["metrics"] == {} and not rec["targets_met"] and rec["path"]


def test_a_method_past_the_memory_cap_is_stopped(toy_registry, tmp_path):
    # The hog takes 4 KiB pages: numpy's huge pages can fault in too slowly on a VM to reach 400 MiB
    # within the toy budget's 2 s (see the method)
    toy_registry.register_method("toy", "hog-memory-small-pages", "toy_methods:hog_memory_small_pages")
    cap = 400 * 2**20
    rec = run("toy", "hog-memory-small-pages", seed=0, results_dir=tmp_path, registry=toy_registry, memory_cap=cap)
    assert rec["status"] == "out_of_memory" and "over the cap" in rec["error"], (rec["error"], rec["memory"])
    assert rec["memory"]["cap_bytes"] == cap
    if rec["jail"]["limits"]["by"].startswith("cgroup"):  # the kernel stopped it, counting all it charged
        assert rec["memory"]["run_peak_bytes"] >= 0.95 * cap
    else:  # the harness's watch did, on resident memory
        assert rec["memory"]["peak_rss_bytes"] > cap


def test_checkpoints_past_the_cap_are_refused_and_the_rest_scored(toy_registry):
    """The harness keeps checkpoints until the method has ended (so that it cannot time their scoring):
    past 1000 a checkpoint is refused with a ValueError in the method, and the 1000 are all scored."""
    from advbench.runner import MAX_CHECKPOINTS

    toy_registry.register_method("toy", "checkpoint-flood", "toy_methods:checkpoint_flood")
    rec = run("toy", "checkpoint-flood", seed=0, results_dir=None, registry=toy_registry)
    assert rec["status"] == "ok", rec["error"]
    assert rec["config"]["method"]["handed"] == MAX_CHECKPOINTS == 1000
    assert "at most 1000 checkpoints" in rec["config"]["method"]["refused"]
    assert len(rec["curve"]) == MAX_CHECKPOINTS and all(p["metrics"] for p in rec["curve"])
    assert [p["step"] for p in rec["curve"]] == list(range(MAX_CHECKPOINTS))


def test_progress_names_each_checkpoint_as_it_is_scored_after_the_method(toy_registry):
    """The live bar's last phase: once the method has ended, which of its checkpoints is being scored."""
    heard = []
    rec = run("toy", "estimate", seed=0, results_dir=None, registry=toy_registry, on_progress=lambda *a: heard.append(a))
    n = len(rec["curve"])
    assert n > 1 and [a[2] for a in heard if len(a) == 3] == [f"scoring checkpoint {i}/{n}" for i in range(1, n + 1)]


def test_bad_names_are_usage_errors_with_suggestions(toy_registry):
    with pytest.raises(UsageError, match=r"did you mean 'estimate'"):
        run("toy", "estimat", results_dir=None, registry=toy_registry)
    with pytest.raises(UsageError, match=r"unknown variant 'medium'.*Valid variants: easy, hard"):
        run("toy", "estimate", variant="medium", results_dir=None, registry=toy_registry)
    with pytest.raises(UsageError, match=r"does not support profile 'cuda'"):
        run("toy", "estimate", profile="cuda", results_dir=None, registry=toy_registry)
    with pytest.raises(UsageError, match=r"unknown budget 'slow'"):
        run("toy", "estimate", budget="slow", results_dir=None, registry=toy_registry)
    with pytest.raises(UsageError, match=r"installed at version v3, not v2"):
        run("toy-v2", "estimate", results_dir=None, registry=toy_registry)


def test_a_method_whose_module_is_missing_is_blamed_not_the_task(toy_registry):
    toy_registry.register_method("toy", "ghost", "no_such_plugin_module:train", source="ghost-plugin")
    with pytest.raises(UsageError, match=r"method 'toy:ghost' \(registered by package 'ghost-plugin'\).*"
                                         r"'no_such_plugin_module', which cannot be imported"):
        run("toy", "ghost", results_dir=None, registry=toy_registry)


def test_versioned_id_is_accepted(toy_registry):
    rec = run("toy-v3", "zero", results_dir=None, registry=toy_registry)
    assert rec["task_version"] == 3 and rec["method_role"] == "floor"


def test_interrupted_write_leaves_old_record_intact(tmp_path, monkeypatch):
    path = tmp_path / "a.json"
    records.write_atomic(path, '{"old": true}')

    def broken_replace(src, dst):
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C at the worst moment

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(KeyboardInterrupt):
        records.write_atomic(path, '{"new": true}')
    assert json.loads(path.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temporary file left behind


def test_store_skips_unreadable_files_and_reports_them(toy_registry, tmp_path):
    rec = run("toy", "estimate", seed=0, results_dir=tmp_path, registry=toy_registry)
    folder = tmp_path / "runs" / "toy-v3" / "estimate"
    (folder / "truncated.json").write_text('{"schema_version": 1, "task": ')
    (folder / "foreign.json").write_text('{"hello": "world"}')
    (folder / "future.json").write_text(json.dumps({**rec, "schema_version": 99}))
    (folder / "no-timings.json").write_text(json.dumps({**rec, "timings": "soon"}))
    (folder / "metrics-list.json").write_text(json.dumps({**rec, "metrics": [1, 2]}))
    (folder / "text-metric.json").write_text(json.dumps({**rec, "metrics": {"abs_error": "low"}}))
    problems: list[str] = []
    found = list(records.iter_records(tmp_path, problems))
    assert [r["run_id"] for r in found] == [rec["run_id"]]
    assert len(problems) == 6 and any("schema version 99" in p for p in problems)


def test_no_target_on_a_variant_means_targets_met_is_none(toy_registry):
    rec = run("toy", "estimate", budget="full", variant="hard", results_dir=None, registry=toy_registry)
    assert rec["targets"] == [] and rec["targets_met"] is None


def test_missing_extra_is_a_clear_usage_error(toy_registry):
    import dataclasses

    import toy

    spec = dataclasses.replace(toy.SPEC, name="toyless", entry_point="advbench_no_such_module:Task",
                               extras=("quantum",))
    toy_registry.register_task(spec)
    toy_registry.register_method("toyless", "estimate", "toy_methods:estimate")
    with pytest.raises(UsageError, match=r"needs the package 'advbench_no_such_module'.*advbench\[quantum\]"):
        run("toyless", "estimate", results_dir=None, registry=toy_registry)


@pytest.mark.parametrize("isolation", ["process", "in-process"])
def test_a_task_answers_questions_from_the_harness_side_and_counts_them(toy_registry, isolation):
    for name in ("bisect", "ask_forever"):
        toy_registry.register_method("toy", name.replace("_", "-"), f"toy_methods:{name}")
    rec = run("toy", "bisect", budget="quick", seed=2, results_dir=None, registry=toy_registry, isolation=isolation)
    assert rec["status"] == "ok" and rec["asks"] == 40
    assert rec["metrics"]["abs_error"] < 1e-9  # found from the answers alone, never from the draws
    refused = run("toy", "ask-forever", budget="quick", seed=2, results_dir=None, registry=toy_registry,
                  isolation=isolation)
    assert refused["status"] == "error" and "no more than 64 questions" in refused["error"]
    assert refused["asks"] == 64 and refused["asks_refused"] == 1 and "ValueError" in refused["error"]


def test_library_warnings_and_log_lines_go_to_the_runs_log_not_the_terminal(capsys):
    import logging
    import warnings

    from advbench.runner import library_output

    lines: list[str] = []
    with library_output(lines):
        logging.getLogger("pgmpy").warning("Probability values don't exactly sum to 1")
        warnings.warn("torch.foo is deprecated", DeprecationWarning)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    assert "WARNING pgmpy: Probability values don't exactly sum to 1" in lines
    assert any(line.startswith("DeprecationWarning: torch.foo is deprecated") for line in lines)


def test_throughput_is_the_harness_count_where_the_harness_counts(toy_registry):
    """Where the task answers asks, the speed board's work is what the harness counted: a method that
    claims 1e12 units through ctx.count moves nothing (its claim stays in the record, named so)."""
    from advbench import leaderboard as lb

    toy_registry.register_method("toy", "bisect-and-boast", "toy_methods:bisect_and_boast")
    rec = run("toy", "bisect-and-boast", results_dir=None, registry=toy_registry)
    assert rec["status"] == "ok" and rec["asks"] > 5
    assert rec["throughput"]["counted_by"] == "harness" and rec["throughput"]["work"] == rec["asks"]
    assert rec["throughput"]["method_count"] >= 1e12
    plain = run("toy", "estimate", results_dir=None, registry=toy_registry)
    assert plain["throughput"]["counted_by"] == "method"
    (row,) = lb.aggregate(lb.frame([{**plain, "_path": "x"}]))
    assert "as counted by each method" in lb.speed_table([row])[0][3]


def test_work_a_solution_defers_to_scoring_is_charged_to_its_training_time(toy_registry):
    """A solution that trains when the scoring process first asks it (lazily) used to record about 0 s
    of training and of time to target. Its CPU in scoring beyond 3x the reference's evaluation cost
    (toy: 0.05 s) is now training time; past 50x the evaluation is refused."""
    for name in ("lazy_one_second", "lazy_five_seconds"):
        toy_registry.register_method("toy", name.replace("_", "-"), f"toy_methods:{name}")
    rec = run("toy", "lazy-one-second", budget="quick", seed=1, results_dir=None, registry=toy_registry)
    assert rec["status"] == "ok", rec["error"]
    charged = rec["timings"]["solution_cpu_charged_seconds"]
    assert 0.4 <= charged <= rec["timings"]["solution_cpu_seconds"] <= 1.2, rec["timings"]
    assert rec["timings"]["train_seconds"] >= charged
    assert rec["time_to_target_seconds"] is None or rec["time_to_target_seconds"] >= charged
    assert all(p["train_seconds"] >= charged for p in rec["curve"])
    honest = run("toy", "estimate", budget="quick", seed=1, results_dir=None, registry=toy_registry)
    assert honest["timings"]["solution_cpu_charged_seconds"] == 0.0  # a number costs nothing to score
    refused = run("toy", "lazy-five-seconds", budget="quick", seed=1, results_dir=None, registry=toy_registry)
    assert refused["status"] == "error" and "work belongs in training" in refused["error"]


def test_the_harness_scores_on_the_runs_threads_and_gives_its_own_back():
    """The task's ``evaluate`` runs in the harness process: its BLAS and OpenMP pools take the run's
    thread count, and afterwards the environment is what it was. In a fresh interpreter whose
    libraries start with 2 threads each (pools cannot grow past the count they started with, so
    this test's own process, started with 1, could not show it), a run with one thread."""
    import subprocess
    import sys
    from pathlib import Path

    code = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
from threadpoolctl import threadpool_info
import numpy
import toy, toy.heldout
from advbench.registry import Registry
from advbench.runner import run
reg = Registry()
reg.register_task(toy.SPEC)
reg.register_method("toy", "estimate", "toy_methods:estimate")
seen = []
scored = toy.heldout.ToyTask.evaluate
def evaluate(self, solution, problem, profile):
    seen.append([{p["internal_api"]: p["num_threads"] for p in threadpool_info()},
                 os.environ.get("OPENBLAS_NUM_THREADS"), os.environ.get("OMP_NUM_THREADS")])
    return scored(self, solution, problem, profile)
toy.heldout.ToyTask.evaluate = evaluate
before = {p["internal_api"]: p["num_threads"] for p in threadpool_info()}
rec = run("toy", "estimate", budget="quick", seed=0, results_dir=None, registry=reg, threads=1)
after = {p["internal_api"]: p["num_threads"] for p in threadpool_info()}
print(json.dumps([rec["status"], before, seen[-1] if seen else None, after,
                  os.environ.get("OPENBLAS_NUM_THREADS"), os.environ.get("OMP_NUM_THREADS")]))
"""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    res = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent)], capture_output=True, text=True,
                         env=env, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    status, before, (inside, blas, omp), after, blas_after, omp_after = json.loads(res.stdout.strip().splitlines()[-1])
    assert status == "ok" and before["openblas"] == 2, (status, before)
    assert set(inside.values()) == {1} and blas == omp == "1", inside
    assert after["openblas"] == 2 and blas_after == omp_after == "2", (after, blas_after, omp_after)


def test_tasks_whose_harness_side_needs_no_torch_run_without_importing_it():
    """``TaskSpec.harness_uses_torch=False`` spares the harness torch's import (about 1 s a run): then
    building such a task's data and scoring it must really need no torch. Each such task's floor,
    through the jailed harness, in a fresh interpreter."""
    import subprocess
    import sys

    from advbench.registry import default_registry

    reg = default_registry()
    tasks = [name for name in sorted(reg.task_names()) if not reg.spec(name).harness_uses_torch]
    assert tasks, "pc, qnn and automl at least"
    code = ("import sys; from advbench.registry import default_registry; from advbench.runner import run; "
            "reg = default_registry(); "
            "recs = [run(t, reg.spec(t).floor_method, budget='quick', seed=0, results_dir=None, threads=1) "
            "for t in sys.argv[1:]]; "
            "print([r['status'] for r in recs], 'torch' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code, *tasks], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().splitlines()[-1] == f"{['ok'] * len(tasks)} False", (tasks, res.stdout, res.stderr[-2000:])
