"""Leaderboards over the results store: per task, variant, hardware profile and budget.

Each (task version, variant, profile, budget, method) group aggregates the latest record of every
seed. The accuracy board ranks methods by the task's primary metric (mean and 95% confidence
interval over seeds, Student's t; with 10 or more seeds also the interquartile mean and its
bootstrap interval, rliable's conventions); the speed board shows time-to-target, training time,
throughput and peak memory for the same groups.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from advbench import plan, records

# Runs at different thread counts never share a row (their timings do not compare), nor do sealed
# and unsealed runs (their held-out data differ).
GROUP = list(plan.GROUP)  # one run's identity, less seed and isolation (advbench.plan.Run)
BOARD = GROUP[:-1]


def ci95(values: list[float]) -> float:
    """Half-width of the two-sided 95% Student-t confidence interval of the mean (NaN for one value),
    from ``scipy.stats``."""
    if len(values) < 2:
        return float("nan")
    from scipy import stats

    sem = stats.sem(values)
    return float(sem * stats.t.ppf(0.975, len(values) - 1)) if sem > 0 else 0.0


IQM_MIN_SEEDS = 10  # rliable's interquartile mean and bootstrap interval, where there are this many


def iqm_with_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Interquartile mean (the mean of the middle 50%, ``scipy.stats.trim_mean(x, 0.25)``) and its
    percentile bootstrap interval over runs (rliable's conventions, Agarwal et al. 2021); the
    resampling is seeded, so the board is reproducible."""
    import numpy as np
    from scipy import stats

    x = np.asarray(values, dtype=float)
    iqm = float(stats.trim_mean(x, 0.25))
    if np.ptp(x) == 0:
        return iqm, iqm, iqm
    res = stats.bootstrap((x,), lambda a, axis=-1: stats.trim_mean(a, 0.25, axis=axis), n_resamples=2000,
                          confidence_level=confidence, method="percentile", rng=np.random.default_rng(0))
    return iqm, float(res.confidence_interval.low), float(res.confidence_interval.high)


def load(results_dir: Path, problems: list[str] | None = None):
    """The latest record per (group, seed), failed runs included, as a pandas DataFrame.

    A failed re-run replaces an older success of the same seed: the board shows the failure
    instead of hiding it. Records of debugging runs (``--in-process``, ``--no-jail``) are left out and
    reported.
    """
    return frame(records.iter_records(Path(results_dir), problems), problems)


def frame(recs, problems: list[str] | None = None):
    """:func:`load` on records already read (``records.iter_records``)."""
    import pandas as pd

    rows, in_process = [], 0
    budget_check, other_budget = records.BudgetCheck(), {}
    for rec in recs:
        if rec.get("isolation") in ("in-process", "no-jail") and rec["schema_version"] > 1:
            in_process += 1
            continue
        why = budget_check.why(rec)
        if why is not None:
            other_budget[why] = other_budget.get(why, 0) + 1
            continue
        timings, throughput, memory = rec["timings"], rec.get("throughput") or {}, rec.get("memory") or {}
        run = plan.Run.from_record(rec)
        rows.append({
            "task": rec["task"], "task_version": rec["task_version"], "variant": rec["variant"],
            "profile": rec["profile"], "budget": rec["budget"], "method": rec["method"],
            "threads": run.threads, "sealed": run.sealed,
            "role": _role(rec), "seed": rec["seed"], "created": rec["created_utc"],
            "status": rec["status"], "error": rec.get("error"), "primary_metric": rec["primary_metric"],
            "primary": rec["metrics"].get(rec["primary_metric"]),
            "metrics": rec["metrics"], "targets": rec.get("targets") or [],
            "targets_met": rec.get("targets_met", False),
            "time_to_target": rec.get("time_to_target_seconds"),
            "train_seconds": timings.get("train_seconds"),
            "throughput": throughput.get("value"),
            "throughput_unit": throughput.get("unit", ""),
            "counted_by": throughput.get("counted_by", "method"),  # records before the field: the method's count
            "peak_rss": memory.get("peak_rss_bytes"),
            "peak_cuda": memory.get("peak_cuda_bytes"),
            "commit": (rec.get("environment") or {}).get("commit"),
            "calibration_seconds": (rec.get("environment") or {}).get("calibration_seconds"),
            "runs_at_once": (rec.get("environment") or {}).get("runs_at_once", 1),  # older records: one at a time
            "path": rec.get("_path"),
        })
    if in_process and problems is not None:
        problems.append(f"left out {in_process} record(s) of --in-process or --no-jail runs (debugging only, "
                        "never ranked)")
    if problems is not None:
        for why, n in sorted(other_budget.items()):
            problems.append(f"left out {n} record(s) made under a budget the task has since changed ({why}): "
                            "run them again (resume does) to put them on the board")
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df = df.sort_values("created").drop_duplicates(GROUP + ["seed"], keep="last")
    return df.reset_index(drop=True)


def _role(rec: dict[str, Any]) -> str:
    """The record's method role; records made before built-in alternatives had a role of their own
    called them ``plugin``, which their ``method_source`` (advbench's own distribution) corrects."""
    role = rec.get("method_role", "")
    return "built-in" if role == "plugin" and rec.get("method_source") == "advbench" else role


def _isnan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _mean(values) -> float | None:
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(vals) / len(vals) if vals else None


def replicate_means(seeds: list[int], values: list[float], per_replicate: int) -> list[float]:
    """Mean of each replicate (seeds s with the same s // per_replicate), in replicate order."""
    groups: dict[int, list[float]] = {}
    for s, v in zip(seeds, values):
        groups.setdefault(int(s) // per_replicate, []).append(v)
    return [sum(vs) / len(vs) for _, vs in sorted(groups.items())]


def aggregate(df, higher_is_better: dict[str, bool] | None = None,
              seeds_per_replicate: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """One row per group, ranked within (task, version, variant, profile, budget).

    The mean and interval are over seeds, or over replicate means where a task groups its seeds
    into replicates (``TaskSpec.seeds_per_replicate``: gnn's folds of one CV repeat).
    """
    if df.empty:
        return []
    rows = []
    for key, everything in df.groupby(GROUP, sort=True):
        g = everything[everything["status"] == "ok"]  # only finished runs are scored on the board
        failed = everything[everything["status"] != "ok"]
        scored = [(s, float(v)) for s, v in zip(g["seed"], g["primary"]) if v is not None and not _isnan(v)]
        per = (seeds_per_replicate or {}).get(key[0], 1)
        prim = replicate_means([s for s, _ in scored], [v for _, v in scored], per)
        names = sorted({k for m in g["metrics"] for k in m})
        reached = [v for v in g["time_to_target"] if v is not None and not _isnan(v)]
        commits = sorted({c[:10] for c in everything["commit"] if isinstance(c, str) and c})
        has_targets = any(len(t) for t in everything["targets"])
        iqm = iqm_with_interval(prim) if len(prim) >= IQM_MIN_SEEDS else (None, None, None)
        at_once = [int(n) for n in g["runs_at_once"].fillna(1)] if "runs_at_once" in g else []
        rows.append({
            **dict(zip(GROUP, key)),
            "iqm": iqm[0], "iqm_low": iqm[1], "iqm_high": iqm[2],
            "role": everything["role"].iloc[-1],
            "primary_metric": everything["primary_metric"].iloc[-1],
            "seeds": len(g),
            "replicates": len(prim),
            "failed": len(failed),
            "failures": [f"seed {s}: {st}" for s, st in zip(failed["seed"], failed["status"])],
            "mean": sum(prim) / len(prim) if prim else None,
            "ci95": ci95(prim),
            "metrics": {n: _mean(m.get(n) for m in g["metrics"]) for n in names},
            "targets_met": int(sum(bool(x) for x in g["targets_met"])) if has_targets else None,
            "time_to_target": (sum(reached) / len(reached)) if reached else None,
            "reached": len(reached),
            "train_seconds": _mean(g["train_seconds"]),
            "throughput": _mean(g["throughput"]),
            "throughput_unit": everything["throughput_unit"].iloc[-1],
            "counted_by": (everything["counted_by"].iloc[-1] if "counted_by" in everything else "method"),
            "peak_rss": max((int(v) for v in g["peak_rss"] if v is not None and not _isnan(v)), default=None),
            "peak_cuda": max((int(v) for v in g["peak_cuda"] if v is not None and not _isnan(v)), default=None),
            "commit": ",".join(commits),
            # runs made beside others (``--jobs``, Ray): their seconds include that load
            "runs_beside": sum(n != 1 for n in at_once),
            "runs_at_once": ",".join(str(n) for n in sorted(set(at_once) or {1})),
            "paths": [p for p in everything["path"] if p] if "path" in everything else [],  # the records behind the row (latest per seed)
        })
    higher_is_better = higher_is_better or {}
    board_key = lambda r: tuple(r[k] for k in BOARD)  # noqa: E731
    rows.sort(key=board_key)
    order = {"reference": 0, "floor": 2}  # among equal scores: the reference first, the floor last
    for _, group in _groupby(rows, board_key):
        hib = higher_is_better.get(group[0]["task"], True)
        # Ties by score are listed reference first, then by name (never plugin before reference by
        # chance), and share a rank: "1, 1, 3", as competition ranking does.
        group.sort(key=lambda r: (r["mean"] is None, -(r["mean"] or 0) if hib else (r["mean"] or 0),
                                  order.get(r["role"], 1), r["method"]))
        for i, r in enumerate(group, 1):
            prev = group[i - 2] if i > 1 else None
            tied = prev is not None and r["mean"] is not None and prev["mean"] == r["mean"]
            r["rank"] = prev["rank"] if tied else i
    rows.sort(key=lambda r: (board_key(r), r["rank"], order.get(r["role"], 1), r["method"]))
    return rows


def _groupby(rows, key):
    out: dict[Any, list] = {}
    for r in rows:
        out.setdefault(key(r), []).append(r)
    return out.items()


# ------------------------------------------------------------------ formatting
# One set of rules for the Markdown board and the HTML site (advbench.html_board): integral values
# print as integers, counts to one decimal, others to four significant digits (scientific below
# 0.001); a mean's interval is written to two significant digits of its half-width and, where the
# task spec gives the metric's unit, clipped to the values the metric can take.
def _finite(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


# Units that count things: their values (and means over seeds that land on whole numbers) print as
# integers, never "100.000".
COUNT_UNITS = frozenset({"count", "edges", "modes", "stages", "rounds", "tasks", "steps", "calls", "parameters",
                         "trials", "evaluations", "episodes", "nodes", "queries"})
# Units whose values lie in [0, 1]: confidence intervals are clipped to it.
UNIT_INTERVAL = frozenset({"fraction", "accuracy", "probability"})


def _metric(spec: Any, name: str | None) -> Any:
    """The spec's Metric called ``name``, or None (no spec, or a metric an older version reported)."""
    if spec is None or name is None:
        return None
    try:
        return spec.metric(name)
    except KeyError:
        return None


def _is_count(metric: Any) -> bool:
    return metric is not None and metric.unit in COUNT_UNITS


def _bounds(metric: Any) -> tuple[float, float] | None:
    """The values ``metric`` can take, where its unit says: fractions and accuracies in [0, 1] (a
    difference of two, as backward transfer or regret, in [-1, 1]), counts at least 0; else None."""
    if metric is None:
        return None
    if metric.unit in UNIT_INTERVAL:
        difference = " minus " in f" {metric.description} " or metric.name.startswith(("regret", "bwt"))
        return (-1.0 if difference else 0.0, 1.0)
    if metric.unit in COUNT_UNITS:
        return (0.0, math.inf)
    return None


def _num(x: Any, count: bool = False, decimals: int | None = None) -> str:
    """A number for a table: integral values as integers; else to ``decimals`` places where given;
    counts (a mean over seeds need not be whole) to one decimal; others to four significant digits,
    in scientific notation only below 0.001."""
    if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isinf(x):
        return "∞" if x > 0 else "−∞"
    v = _finite(x)
    if v is None:
        return "—"
    v += 0.0  # no "-0"
    if abs(v) < 1e15 and abs(v - round(v)) <= 1e-9 * max(1.0, abs(v)):
        return str(int(round(v)))
    a = abs(v)
    if decimals is not None:
        text = f"{v:.{decimals}f}"
    elif count:
        text = f"{v:.1f}"
    elif a >= 1e4:
        text = f"{v:.0f}"
    elif a < 1e-3:
        return f"{v:.2e}"
    else:
        text = f"{v:.{max(0, 3 - math.floor(math.log10(a)))}f}"
    return text[1:] if text.startswith("-") and text.strip("-0.") == "" else text  # no "-0.00"


def _clip(lo: float, hi: float, bounds: tuple[float, float] | None) -> tuple[float, float]:
    return (lo, hi) if bounds is None else (max(lo, bounds[0]), min(hi, bounds[1]))


def _interval(mean: Any, half: Any, bounds: tuple[float, float] | None) -> tuple[float, float] | None:
    """The ends of mean ± half, clipped to ``bounds``; None without a finite mean and half-width."""
    m, h = _finite(mean), _finite(half)
    return None if m is None or h is None else _clip(m - h, m + h, bounds)


def _ci_decimals(half: float) -> int | None:
    """Decimal places that give a half-width two significant digits (the mean is written to the same)."""
    if not 1e-6 <= half < 1e4:
        return None
    return max(0, 1 - math.floor(math.log10(half)))


def _mean_ci(mean: Any, half: Any, replicates: int, metric: Any) -> str:
    """``mean ± half``, or ``mean [low, high]`` where the interval was clipped to the metric's range."""
    count = _is_count(metric)
    ends = _interval(mean, half, _bounds(metric)) if replicates > 1 else None
    if ends is None:
        return _num(mean, count)
    m, h = float(mean), float(half)
    d = _ci_decimals(h)
    if ends == (m - h, m + h):
        return f"{_num(m, count, d)} ± {_num(h, count, d)}"
    return f"{_num(m, count, d)} [{_num(ends[0], count, d)}, {_num(ends[1], count, d)}]"


def _iqm_ci(r: dict[str, Any], metric: Any) -> str:
    """A row's interquartile mean and its bootstrap interval (clipped to the metric's range), "—" without one."""
    if r.get("iqm") is None:
        return "—"
    count = _is_count(metric)
    lo, hi = _clip(r["iqm_low"], r["iqm_high"], _bounds(metric))
    d = _ci_decimals(max(hi - r["iqm"], r["iqm"] - lo, 0.0) or math.nan)
    return f"{_num(r['iqm'], count, d)} [{_num(lo, count, d)}, {_num(hi, count, d)}]"


def _bytes(x: int | None) -> str:
    if x is None:
        return "—"
    return f"{x / 2**20:.0f} MiB"


def _met(r: dict[str, Any]) -> str:
    runs = r["seeds"] + r["failed"]
    return "n/a" if r["targets_met"] is None else f"{r['targets_met']}/{runs}"


def _seeds_text(r: dict[str, Any]) -> str:
    n = r["replicates"]
    return str(r["seeds"]) + (f" ({n} replicate{'s' if n != 1 else ''})" if n != r["seeds"] else "")


def declared_metrics(spec: Any, version: int, task_rows: list[dict[str, Any]] = ()) -> set[str] | None:
    """The metrics ``spec`` declares, for a board of its own version. For an older version (whose
    metrics the current spec may not list) every metric its rows hold, less the per-record data that
    the current version's rows among ``task_rows`` carry beside its declared metrics (ewc's
    accuracy matrix, which the JSON and CSV boards keep). None without a spec: every metric."""
    if spec is None:
        return None
    names = {m.name for m in spec.metrics}
    if spec.version == version:
        return names
    data = {n for r in task_rows if r["task_version"] == spec.version for n in r["metrics"]} - names
    return {n for r in task_rows if r["task_version"] == version for n in r["metrics"]} - data or None


def accuracy_table(rows: list[dict[str, Any]], declared: set[str] | None = None, spec: Any = None) -> list[list[str]]:
    """Ranked rows, the accuracy board of the Markdown board and the HTML site alike.

    The columns are the metrics the records hold, or, given ``declared`` (:func:`declared_metrics`),
    those of them only: a record may carry many more numbers (ewc's accuracy matrix) that the JSON
    and CSV boards keep. Given the task's ``spec``, the heads name each metric's unit, counts print
    as counts and intervals are clipped to their metric's range; without it the numbers follow the
    same rules, unclipped and with no units.
    """
    primary = rows[0]["primary_metric"]
    metric_names = sorted({n for r in rows for n in r["metrics"]} - {primary})
    if declared:
        metric_names = [n for n in metric_names if n in declared]
    pm = _metric(spec, primary)

    def unit(n: str) -> str:
        m = _metric(spec, n)
        return m.unit if m is not None and m.unit else ""

    iqm = any(r.get("iqm") is not None for r in rows)
    head = ["rank", "method", "role", f"{primary} ({unit(primary) + '; ' if unit(primary) else ''}mean ± 95% CI)",
            *(["IQM [95% bootstrap CI]"] if iqm else []),
            *(f"{n} ({unit(n)})" if unit(n) else n for n in metric_names), "targets met", "seeds", "failed"]
    body = [[str(r["rank"]), r["method"], r["role"], _mean_ci(r["mean"], r["ci95"], r["replicates"], pm),
             *([_iqm_ci(r, pm)] if iqm else []),
             *(_num(r["metrics"].get(n), _is_count(_metric(spec, n))) for n in metric_names), _met(r),
             _seeds_text(r), ", ".join(r["failures"]) if r["failed"] else "0"] for r in rows]
    return [head, *body]


def speed_table(rows: list[dict[str, Any]]) -> list[list[str]]:
    unit = rows[0]["throughput_unit"] if rows else ""
    # Throughput from work the harness counted (asks its oracle answered) is said plainly; from a
    # method's own ctx.count, the header says so: it is the method's word, not a measurement.
    own = any(r.get("counted_by", "method") == "method" for r in rows)
    label = f"throughput ({unit}, as counted by each method)" if own else f"throughput ({unit}, counted by the harness)"
    head = ["method", "time to target (s)", "train (s)", label, "peak RSS", "peak CUDA", "commit"]
    body = [[r["method"], f"{_num(r['time_to_target'])} ({r['reached']}/{r['seeds']} reached)"
             if r["targets_met"] is not None else "n/a", _num(r["train_seconds"]), _num(r["throughput"]),
             _bytes(r["peak_rss"]), _bytes(r["peak_cuda"]), r["commit"] or "—"] for r in rows]
    return [head, *body]


def profile_speedups(rows: list[dict[str, Any]], base: str = "cpu", accelerated: str = "cuda") -> list[dict[str, Any]]:
    """Where the same method ran the same variant and budget on ``base`` and on ``accelerated``: both
    mean training times and their ratio (``speedup`` = base / accelerated; above 1, the accelerator is
    faster), with the primary metric on each so a faster run that learnt less shows it. The thread
    counts are each profile's own and are kept in the row."""
    by_key: dict[tuple, dict[str, dict[str, Any]]] = {}
    for r in rows:
        if r["profile"] in (base, accelerated):
            key = (r["task"], r["task_version"], r["variant"], r["budget"], r["method"])
            by_key.setdefault(key, {})[r["profile"]] = r
    out = []
    for (task, version, variant, budget, method), pair in sorted(by_key.items()):
        if base not in pair or accelerated not in pair:
            continue
        b, a = pair[base], pair[accelerated]
        tb, ta = _finite(b["train_seconds"]), _finite(a["train_seconds"])
        out.append({"task": task, "task_version": version, "variant": variant, "budget": budget, "method": method,
                    f"{base}_train_seconds": tb, f"{accelerated}_train_seconds": ta,
                    "speedup": (tb / ta) if tb is not None and ta else None,
                    f"{base}_primary": b["mean"], f"{accelerated}_primary": a["mean"],
                    f"{base}_seeds": b["seeds"], f"{accelerated}_seeds": a["seeds"],
                    f"{base}_threads": b["threads"], f"{accelerated}_threads": a["threads"]})
    return out


def speedup_table(pairs: list[dict[str, Any]], base: str = "cpu", accelerated: str = "cuda") -> list[list[str]]:
    head = ["variant", "budget", "method", f"train on {base} (s)", f"train on {accelerated} (s)", "speed-up",
            f"primary on {base}", f"primary on {accelerated}", "seeds"]
    body = [[p["variant"], p["budget"], p["method"], _num(p[f"{base}_train_seconds"]),
             _num(p[f"{accelerated}_train_seconds"]), f"{p['speedup']:.2f}x" if p["speedup"] is not None else "—",
             _num(p[f"{base}_primary"]), _num(p[f"{accelerated}_primary"]),
             f"{p[f'{base}_seeds']} / {p[f'{accelerated}_seeds']}"] for p in pairs]
    return [head, *body]


def _md_cell(text: str) -> str:
    """A cell's text as GitHub Markdown reads it: a pipe escaped (it would end the cell), a line break
    a space (it would end the row)."""
    return " ".join(str(text).replace("|", "\\|").split("\n"))


def markdown_table(table: list[list[str]]) -> str:
    head, *body = table
    lines = ["| " + " | ".join(map(_md_cell, head)) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in body]
    return "\n".join(lines)


def to_markdown(rows: list[dict[str, Any]], titles: dict[str, str] | None = None,
                targets: dict[tuple[str, str, str], str] | None = None, results_dir: str = "results",
                specs: dict[str, Any] | None = None) -> str:
    """The Markdown board. ``specs`` (task name -> TaskSpec) choose the accuracy tables' columns and
    give them their units and intervals clipped to each metric's range, as on the HTML site."""
    titles, targets, specs = titles or {}, targets or {}, specs or {}
    out = ["# advbench leaderboard", "",
           f"Generated by `advbench leaderboard` from the run records under `{Path(results_dir).as_posix()}/runs/`. "
           "Per task, variant, hardware profile and budget: methods ranked by the task's primary metric "
           "(mean ± 95% CI over seeds, written [low, high] where the interval is clipped to the metric's possible range; "
           "with 10 or more seeds also the interquartile mean and its 95% percentile bootstrap "
           "interval, rliable's conventions), then the speed board for the same runs. Time to target is training "
           "time (evaluation excluded) until the first evaluation that met the primary target. Only runs that "
           "finished (`ok`) are scored; the latest run of each seed counts, and failed ones are listed.", ""]
    boards = _groupby(rows, lambda r: (r["task"], r["task_version"]))
    for (task, version), task_rows in boards:
        spec = specs.get(task)
        every_version = [r for r in rows if r["task"] == task]
        out += [f"## {task}-v{version}" + (f" — {titles[task]}" if task in titles else ""), ""]
        for (variant, profile, budget, threads, sealed), g in _groupby(
                task_rows, lambda r: (r["variant"], r["profile"], r["budget"], r["threads"], r["sealed"])):
            where = f"{threads} thread{'s' if threads != 1 else ''}" + (" · sealed" if sealed else "")
            out += [f"### {variant} · {profile} · {budget} · {where}", ""]
            if (task, variant, budget) in targets:
                out += [f"Target: {targets[(task, variant, budget)]}", ""]
            out += ["Accuracy", "", markdown_table(accuracy_table(g, declared_metrics(spec, version, every_version), spec)),
                    "", "Speed", "", *beside_note(g), markdown_table(speed_table(g)), ""]
        pairs = profile_speedups(task_rows)
        if pairs:
            out += ["### cpu and cuda", "", "Training time of the same method, variant and budget on each profile "
                    "(mean over seeds) and the speed-up, cpu time over cuda time; the thread counts are the "
                    "profiles' own.", "", markdown_table(speedup_table(pairs)), ""]
    return "\n".join(out)


def beside_note(rows: list[dict[str, Any]]) -> list[str]:
    """A line under "Speed" when some of its runs ran beside others (``--jobs``, Ray): their seconds
    include the contention (two runs at a time on two cores share memory bandwidth)."""
    beside, runs = sum(r.get("runs_beside", 0) for r in rows), sum(r.get("seeds", 0) for r in rows)
    if not beside:
        return []
    at_once = {int(n) for r in rows for n in str(r.get("runs_at_once", "1")).split(",")} - {1}
    how = ", ".join("on Ray" if n == 0 else f"{n} at a time" for n in sorted(at_once))
    return [f"{beside} of these {runs} runs ran beside others ({how}): their times include that load.", ""]


def flat(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for CSV/JSON: metrics spread into columns; a missing number (NaN) is None, which JSON
    writes as ``null`` (strict JSON parsers reject ``NaN``)."""
    out = []
    for r in rows:
        row = {k: v for k, v in r.items() if k not in ("metrics", "failures", "paths")}
        row["failures"] = "; ".join(r["failures"])
        row.update({f"metric.{k}": v for k, v in r["metrics"].items()})
        out.append({k: (None if _isnan(v) else v) for k, v in row.items()})
    return out
