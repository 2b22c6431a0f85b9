"""The regression gate: is a candidate's set of runs worse than the accepted baseline's?

For every group (task version, variant, profile, budget, threads, sealed, method) both sides ran:

* **Quality**, for every metric a target of that variant and budget names, and the primary metric:
  a one-sided test of "the candidate is worse by more than the metric's minimum effect" at level
  ``alpha``. Seeds both sides ran are paired (``scipy.stats.ttest_1samp`` on the per-seed
  differences); without common seeds the two samples are compared by Welch's test
  (``scipy.stats.ttest_ind(equal_var=False)``). The minimum effect comes from the task spec
  (``Metric.min_effect``, in the metric's units) or, where a metric declares none, is
  ``tolerance`` times the baseline mean's magnitude. With one seed, or differences without spread
  (a deterministic method), no test is possible and the mean difference is compared with the
  minimum effect directly.
* **Speed**, best **side by side**: ``speed_df`` holds runs of the baseline's *code* made in the same
  job as the candidate's, on the same machine, one after the other (``.ci/gate`` runs the reference
  commit from a git worktree right beside each task's candidate runs). Their training seconds are
  compared directly, seed for seed; the ratio of the candidate's median to theirs above
  ``speed_threshold`` is a regression. A shared machine's speed drifts by more than any threshold
  worth having within an hour (this project's CI machine: one quick run 1.73 s at one hour, 2.5 s
  and 5.0 s at others, same code), so seconds recorded at another time cannot say that a method
  got slower. Without ``speed_df`` (records from elsewhere), the fallback divides each side's
  training seconds by the calibration workload its run timed (``environment.calibration_seconds``);
  a rough normaliser, and records without one are not compared for speed (the verdict says so).
* A candidate run that failed (crashed, out of memory, time cap, error) in a group the baseline
  scored, and a baseline group missing from a task and method the candidate ran, are regressions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

ALPHA = 0.05
MIN_TIMED_SECONDS = 0.5  # shorter trainings are not timed: starting processes dominates a 0.1-second one


@dataclass
class Verdict:
    group: str
    check: str  # "quality:<metric>", "speed", "status" or "missing"
    baseline: float | None
    candidate: float | None
    detail: str
    regression: bool
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"group": self.group, "check": self.check, "baseline": self.baseline, "candidate": self.candidate,
                "detail": self.detail, "regression": self.regression, **self.extra}


def worse_by_more_than(base: dict[int, float], cand: dict[int, float], higher_is_better: bool, min_effect: float,
                       alpha: float = ALPHA) -> tuple[bool, str, float | None]:
    """Whether the candidate is significantly worse than the baseline by more than ``min_effect``.

    Returns (regression, how it was judged, p-value or None).
    """
    import numpy as np
    from scipy import stats

    sign = 1.0 if higher_is_better else -1.0
    common = sorted(set(base) & set(cand))
    if len(common) >= 2:
        d = sign * (np.array([cand[s] for s in common]) - np.array([base[s] for s in common]))  # > 0: better
        if float(np.std(d)) == 0.0:
            return bool(d.mean() < -min_effect), f"paired, {len(common)} seeds, no spread", None
        p = float(stats.ttest_1samp(d + min_effect, 0.0, alternative="less").pvalue)
        return p < alpha, f"paired t, {len(common)} seeds, p={p:.3g}", p
    b = sign * np.array(list(base.values()))
    c = sign * np.array(list(cand.values()))
    if len(b) >= 2 and len(c) >= 2 and (np.std(b) > 0 or np.std(c) > 0):
        p = float(stats.ttest_ind(c + min_effect, b, equal_var=False, alternative="less").pvalue)
        return p < alpha, f"Welch t, {len(c)} vs {len(b)} seeds, p={p:.3g}", p
    diff = float(c.mean() - b.mean())
    return diff < -min_effect, f"{len(c)} vs {len(b)} seeds, no test possible: mean difference", None


def judge(base_df, cand_df, specs: dict[str, Any], tolerance: float, speed_threshold: float,
          alpha: float = ALPHA, speed_df=None) -> list[Verdict]:
    """Verdicts for every group of ``cand_df`` that ``base_df`` also holds (see the module docstring);
    speed against ``speed_df``'s runs of the same group where given."""
    import numpy as np

    from advbench import leaderboard as lb

    verdicts: list[Verdict] = []
    base_groups = {k: g for k, g in base_df.groupby(lb.GROUP, sort=True)} if not base_df.empty else {}
    cand_groups = {k: g for k, g in cand_df.groupby(lb.GROUP, sort=True)}
    speed_groups = ({k: g for k, g in speed_df.groupby(lb.GROUP, sort=True)}
                    if speed_df is not None and not speed_df.empty else {})
    for key, cg in cand_groups.items():
        if key not in base_groups:
            continue
        name = "/".join(str(x) for x in key)
        bg = base_groups[key]
        bg_ok = bg[bg["status"] == "ok"]
        failed = cg[cg["status"] != "ok"]
        if len(failed):
            reasons = ", ".join(f"seed {r.seed}: {r.status}" for r in failed.itertuples())
            verdicts.append(Verdict(name, "status", None, None, f"candidate run(s) failed: {reasons}", True))
            continue
        if bg_ok.empty:
            continue
        spec = specs.get(key[0])
        variant, budget = key[2], key[4]
        names = [bg_ok["primary_metric"].iloc[0]]
        if spec is not None:
            names += [t.metric for t in spec.targets if t.budget == budget and t.variant in (None, variant)
                      and t.metric not in names]
        for metric in names:
            base = {int(r.seed): float(r.metrics[metric]) for r in bg_ok.itertuples() if metric in r.metrics}
            cand = {int(r.seed): float(r.metrics[metric]) for r in cg.itertuples() if metric in r.metrics}
            if not base or not cand:
                continue
            try:
                m = spec.metric(metric) if spec is not None else None
            except KeyError:
                m = None
            hib = m.higher_is_better if m is not None else True
            effect = getattr(m, "min_effect", None)
            if effect is None:
                effect = tolerance * max(abs(float(np.mean(list(base.values())))), 1e-12)
            bad, how, p = worse_by_more_than(base, cand, hib, effect, alpha)
            verdicts.append(Verdict(name, f"quality:{metric}", float(np.mean(list(base.values()))),
                                    float(np.mean(list(cand.values()))),
                                    f"{how}; minimum effect {effect:.3g} ({'higher' if hib else 'lower'} is better)",
                                    bad, {"p_value": p, "min_effect": effect}))
        if speed_df is not None:
            verdicts += _side_by_side_speed(name, speed_groups.get(key), cg, speed_threshold)
            continue
        b_time, b_cal = _times(bg_ok)
        c_time, c_cal = _times(cg)
        if b_time and c_time:
            if b_cal is None or c_cal is None:
                # Raw seconds from two machines (or two loads) say nothing about the method.
                verdicts.append(Verdict(name, "speed", b_time, c_time, "not compared: records without a "
                                        "calibration time (made before advbench recorded one)", False))
            else:
                b_norm, c_norm = b_time / b_cal, c_time / c_cal
                ratio = c_norm / b_norm if b_norm > 0 else math.inf
                verdicts.append(Verdict(name, "speed", b_norm, c_norm,
                                        f"median train time / calibration: ratio {ratio:.2f} "
                                        f"(threshold {speed_threshold:g})",
                                        ratio > speed_threshold, {"ratio": ratio}))
    return verdicts


def _side_by_side_speed(name: str, sg, cg, speed_threshold: float) -> list[Verdict]:
    """Speed of the candidate's runs against the baseline code's runs of the same job, on the seeds
    both made (the same work: the same seed is the same data, draws and steps)."""
    import numpy as np

    if sg is None or sg.empty or (sg["status"] != "ok").any():
        why = "no side-by-side run of the baseline's code" if sg is None or sg.empty else \
            "the baseline code's side-by-side run failed"
        return [Verdict(name, "speed", None, None, f"not compared: {why}", True)]
    common = sorted(set(int(s) for s in sg["seed"]) & set(int(s) for s in cg["seed"]))
    pick = lambda df: [float(df[df["seed"] == s]["train_seconds"].iloc[0]) for s in common]  # noqa: E731
    b, c = pick(sg), pick(cg)
    if not common or any(math.isnan(x) for x in b + c):
        return [Verdict(name, "speed", None, None, "not compared: no seed both sides ran with a training time", True)]
    b_med, c_med = float(np.median(b)), float(np.median(c))
    if b_med < MIN_TIMED_SECONDS:
        return [Verdict(name, "speed", b_med, c_med, f"not compared: under {MIN_TIMED_SECONDS:g} s of training",
                        False)]
    ratio = c_med / b_med
    commits = sorted({str(commit)[:10] for commit in sg.get("commit", [None] * len(sg))})
    return [Verdict(name, "speed", b_med, c_med,
                    f"train seconds side by side with the baseline's code ({', '.join(commits)}), "
                    f"seed{'s' if len(common) > 1 else ''} {', '.join(map(str, common))}: ratio {ratio:.2f} "
                    f"(threshold {speed_threshold:g})", ratio > speed_threshold, {"ratio": ratio})]


def _times(df) -> tuple[float | None, float | None]:
    """Median training seconds, and the median calibration time when every record has one."""
    import numpy as np

    t = [float(x) for x in df["train_seconds"] if x is not None and not math.isnan(float(x))]
    cal = [x for x in df.get("calibration_seconds", [None] * len(df))]
    have_cal = bool(cal) and all(c is not None and not math.isnan(float(c)) and float(c) > 0 for c in cal)
    if not t or float(np.median(t)) < MIN_TIMED_SECONDS:
        return None, None
    return float(np.median(t)), (float(np.median([float(c) for c in cal])) if have_cal else None)
