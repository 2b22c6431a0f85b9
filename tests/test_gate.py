"""The regression gate: seed noise passes, a real drop fails, a crash fails, a 2x slowdown fails."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from advbench import gate as G
from advbench.cli import app
from advbench.records import save

SEEDS = range(10)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """One real record of a fast run (pc's floor on sachs), the shape every synthetic record copies."""
    from advbench.runner import run

    return run("pc", "floor", variant="sachs-like", budget="quick", seed=0, results_dir=None)


def write(results, template, f1, seconds=20.0, calibration=0.1, status="ok", seeds=SEEDS, tag="x"):
    """Records of seeds ``seeds``: skeleton F1 ``f1[i]``, ``seconds`` of training each, the machine's
    calibration time; ``status`` for every run."""
    for i, seed in enumerate(seeds):
        rec = copy.deepcopy(template)
        rec.update(seed=seed, status=status, run_id=f"{tag}{seed:04d}", error=None if status == "ok" else "boom")
        rec["metrics"] = {**rec["metrics"], "skeleton_f1": float(f1[i])} if status == "ok" else {}
        rec["timings"] = {**rec["timings"], "train_seconds": seconds}
        rec["environment"] = {**rec["environment"], "calibration_seconds": calibration}
        save(results, rec)


def gate(base, cand, *extra):
    res = CliRunner().invoke(app, ["gate", "--baseline", str(base), "--candidate", str(cand), "--json", *extra])
    return res.exit_code, json.loads(res.stdout) if res.stdout.startswith("{") else res.output


def noise(seed, sd=0.02):
    return np.random.default_rng(seed).normal(0, sd, len(SEEDS))


BASE = 0.70 + noise(0)


def test_seed_noise_sized_changes_pass(tmp_path, template):
    write(tmp_path / "base", template, BASE)
    write(tmp_path / "cand", template, BASE + noise(1), seconds=21.0)  # another draw of the same noise
    code, out = gate(tmp_path / "base", tmp_path / "cand")
    assert code == 0, out
    checks = {v["check"]: v for v in out["verdicts"]}
    assert not checks["quality:skeleton_f1"]["regression"] and checks["quality:skeleton_f1"]["p_value"] > 0.05
    assert not checks["speed"]["regression"]


def test_a_real_drop_fails(tmp_path, template):
    write(tmp_path / "base", template, BASE)
    write(tmp_path / "cand", template, BASE - 0.06 + noise(1, 0.005))
    code, out = gate(tmp_path / "base", tmp_path / "cand")
    assert code == 1 and out["regressions"] == 1
    (bad,) = [v for v in out["verdicts"] if v["regression"]]
    assert bad["check"] == "quality:skeleton_f1" and bad["p_value"] < 0.05


def test_a_drop_within_the_minimum_effect_passes_even_when_significant(tmp_path, template):
    write(tmp_path / "base", template, BASE)
    write(tmp_path / "cand", template, BASE - 0.005)  # consistent, but below 2% of 0.70
    assert gate(tmp_path / "base", tmp_path / "cand")[0] == 0


def test_a_crash_fails(tmp_path, template):
    write(tmp_path / "base", template, BASE)
    write(tmp_path / "cand", template, BASE, seeds=range(9))
    write(tmp_path / "cand", template, BASE, status="crashed", seeds=[9], tag="c")
    code, out = gate(tmp_path / "base", tmp_path / "cand")
    assert code == 1 and any(v["check"] == "status" and "crashed" in v["detail"] for v in out["verdicts"])


def test_a_2x_slowdown_fails_but_a_2x_slower_machine_does_not(tmp_path, template):
    write(tmp_path / "base", template, BASE, seconds=20.0, calibration=0.1)
    write(tmp_path / "slow", template, BASE, seconds=40.0, calibration=0.1)
    code, out = gate(tmp_path / "base", tmp_path / "slow")
    assert code == 1 and [v["check"] for v in out["verdicts"] if v["regression"]] == ["speed"]
    write(tmp_path / "slow-machine", template, BASE, seconds=40.0, calibration=0.2)
    assert gate(tmp_path / "base", tmp_path / "slow-machine")[0] == 0


def test_side_by_side_speed_times_the_code_not_the_hour(tmp_path, template):
    """With runs of the baseline's code made in the same job (--speed-baseline), speed is judged on
    them, seed for seed: an hour at which the machine runs everything twice as slowly is no
    regression, the same machine and minute with a 2x slower candidate is."""
    write(tmp_path / "base", template, BASE, seconds=20.0, calibration=0.1)  # recorded at a quick hour
    write(tmp_path / "beside", template, BASE[:1], seconds=40.0, seeds=[0], calibration=0.1)
    write(tmp_path / "slow-hour", template, BASE, seconds=41.0, calibration=0.1)
    code, out = gate(tmp_path / "base", tmp_path / "slow-hour")
    assert code == 1 and [v["check"] for v in out["verdicts"] if v["regression"]] == ["speed"]  # the calibration misses it
    code, out = gate(tmp_path / "base", tmp_path / "slow-hour", "--speed-baseline", str(tmp_path / "beside"))
    assert code == 0, out
    (speed,) = [v for v in out["verdicts"] if v["check"] == "speed"]
    assert speed["ratio"] == pytest.approx(41.0 / 40.0) and "seed 0" in speed["detail"]
    write(tmp_path / "slower-code", template, BASE, seconds=85.0, calibration=0.1)
    code, out = gate(tmp_path / "base", tmp_path / "slower-code", "--speed-baseline", str(tmp_path / "beside"))
    assert code == 1 and [v["check"] for v in out["verdicts"] if v["regression"]] == ["speed"]


def test_side_by_side_speed_without_the_baselines_run_is_a_regression(tmp_path, template):
    write(tmp_path / "base", template, BASE)
    write(tmp_path / "cand", template, BASE)
    write(tmp_path / "beside", template, BASE[:1], seeds=[0], status="error")
    code, out = gate(tmp_path / "base", tmp_path / "cand", "--speed-baseline", str(tmp_path / "beside"))
    assert code == 1 and "failed" in [v for v in out["verdicts"] if v["regression"]][0]["detail"]
    (tmp_path / "empty" / "runs").mkdir(parents=True)
    code, out = gate(tmp_path / "base", tmp_path / "cand", "--speed-baseline", str(tmp_path / "empty"))
    assert code == 1 and "no side-by-side run" in [v for v in out["verdicts"] if v["regression"]][0]["detail"]


def test_unpaired_seeds_use_welch(tmp_path, template):
    write(tmp_path / "base", template, BASE, seeds=range(10))
    write(tmp_path / "cand", template, BASE - 0.1, seeds=range(10, 20))
    code, out = gate(tmp_path / "base", tmp_path / "cand")
    assert code == 1 and "Welch" in [v for v in out["verdicts"] if v["regression"]][0]["detail"]


def test_the_one_sided_test_matches_scipy_on_paired_differences():
    from scipy import stats

    base = {s: 0.7 + 0.01 * s for s in range(6)}
    cand = {s: v - 0.03 + 0.004 * (-1) ** s for s, v in base.items()}
    bad, how, p = G.worse_by_more_than(base, cand, True, 0.01)
    d = np.array([cand[s] - base[s] for s in range(6)])
    assert p == pytest.approx(stats.ttest_1samp(d + 0.01, 0, alternative="less").pvalue) and bad
    # Lower is better: the same numbers are an improvement.
    assert not G.worse_by_more_than(base, cand, False, 0.01)[0]


def test_the_ci_gate_reference_holds_every_run_of_its_subset():
    """`.ci/gate` runs a fixed subset; its committed reference must hold 3 ok, calibrated seeds of each,
    all made by one clean commit."""
    import re
    from pathlib import Path

    from advbench.registry import Registry

    root = Path(__file__).resolve().parents[1]
    script = (root / ".ci" / "gate").read_text()
    (listed,) = re.findall(r"^TASKS=\((.*)\)$", script, flags=re.M)
    tasks = listed.split()
    reg = Registry()
    assert len(tasks) >= 5 and set(tasks) <= set(reg.task_names())
    commits = set()
    for name in tasks:
        spec = reg.spec(name)
        folder = root / "results" / "ci-reference" / "runs" / spec.id / spec.reference_method
        for variant in spec.budgets["quick"].variants:
            recs = [json.loads(p.read_text()) for p in folder.glob(f"{variant}__*__quick__seed*.json")]
            assert sorted(r["seed"] for r in recs) == [0, 1, 2], (name, variant)
            assert all(r["status"] == "ok" and r["threads"] == 1 for r in recs), (name, variant)
            assert all(r["environment"].get("calibration_seconds") for r in recs), (name, variant)
            commits.update((r["environment"].get("commit"), r["environment"].get("dirty")) for r in recs)
    # One clean commit: the code the gate runs side by side with the candidate to judge speed.
    assert len(commits) == 1 and next(iter(commits))[1] is False, commits
