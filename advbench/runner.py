"""The one code path that runs (task, method, profile, budget, seed) and returns a record.

The CLI, the asv suite and the tests all come through :func:`run`.
"""

from __future__ import annotations

import datetime as _dt
import gc
import math
import os
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any, Callable

from advbench import records
from advbench.context import RunContext
from advbench.environment import manifest
from advbench.errors import BudgetExhausted, UsageError, unknown
from advbench.profiles import get_profile
from advbench.registry import Registry, default_registry, load_object
from advbench.spec import BUDGETS, TaskSpec


class PeakRSS:
    """Peak resident memory of this process while the block runs (sampled every 20 ms).

    ``ru_maxrss`` is the peak over the whole process lifetime, which would charge one run for the
    memory of an earlier one in the same process; sampling ``/proc/self/statm`` does not.
    """

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def _rss(self) -> int:
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * self._page
        except OSError:
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> "PeakRSS":
        self.peak = self._rss()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())


def resolve_variants(spec: TaskSpec, budget: str, variants: list[str] | None) -> list[str]:
    if not variants:
        return list(spec.budgets[budget].variants)
    for v in variants:
        if v not in spec.variants:
            raise unknown("variant", v, spec.variants, where=f" for task {spec.name!r}")
    return list(variants)


def check_run_args(reg: Registry, task: str, method: str | None, profile: str | None, budget: str):
    """Validate every name before anything heavy is imported; return (spec, method, profile)."""
    spec = reg.spec(task)
    if budget not in BUDGETS:
        raise unknown("budget", budget, BUDGETS)
    entry = reg.method(spec.name, method or spec.reference_method)
    prof = get_profile(profile or spec.profiles[0])
    if prof.name not in spec.profiles:
        raise UsageError(f"task {spec.name!r} does not support profile {prof.name!r}. Valid profiles: {', '.join(spec.profiles)}")
    ok, why = prof.available()
    if not ok:
        raise UsageError(f"profile {prof.name!r} is not available here: {why}. "
                         f"Valid profiles for {spec.name!r}: {', '.join(spec.profiles)}")
    return spec, entry, prof


def time_to_target(curve: list[dict[str, Any]], metric: str, target: Any, m: Any) -> float | None:
    """MLPerf's time-to-train: training seconds at the first evaluation that meets the target."""
    for point in curve:
        if target.met(point["metrics"].get(metric), m):
            return point["train_seconds"]
    return None


def run(task: str, method: str | None = None, *, profile: str | None = None, budget: str = "quick",
        seed: int = 0, variant: str | None = None, results_dir: Path | None = Path("results"),
        registry: Registry | None = None,
        on_progress: Callable[[float, float], None] | None = None) -> dict[str, Any]:
    """Run one (task, variant, method, profile, budget, seed); write and return its record.

    ``results_dir=None`` keeps the record in memory only.
    """
    reg = registry or default_registry()
    spec, entry, prof = check_run_args(reg, task, method, profile, budget)
    variant = resolve_variants(spec, budget, [variant] if variant else None)[0]
    bud = spec.budgets[budget]

    hardware = prof.activate(seed)
    t0 = time.perf_counter()
    try:
        task_impl = load_object(spec.entry_point)()
        method_fn = entry.load()
        problem = task_impl.build(variant=variant, seed=seed, budget=bud)
    except ModuleNotFoundError as exc:  # an extra that is not installed: say which
        extras = ",".join(spec.extras) or "all"
        raise UsageError(f"task {spec.name!r} needs the package {exc.name!r}, which is not installed: "
                         f"pip install 'advbench[{extras}]'") from exc
    setup_seconds = time.perf_counter() - t0

    def evaluate(solution: Any) -> dict[str, float]:
        return {k: float(v) for k, v in task_impl.evaluate(solution, problem, prof).items()}

    status, error, solution = "ok", None, None
    gc.collect()
    with PeakRSS() as mem:
        # The training clock starts here, when the context is made: set-up is excluded (MLPerf).
        ctx = RunContext(spec=spec, variant=variant, seed=seed, budget=bud, profile=prof, evaluate=evaluate,
                         on_progress=on_progress)
        try:
            solution = method_fn(problem.train, ctx)
            train_seconds = ctx.elapsed()
        except BudgetExhausted:
            train_seconds = ctx.elapsed()
            status = "time_cap"
            solution = ctx.last_solution
        except Exception as exc:  # a method's bug must not take the harness (or other seeds) down
            train_seconds = ctx.elapsed()
            status, error = "error", "".join(traceback.format_exception_only(type(exc), exc)).strip()
            error += "\n" + traceback.format_exc(limit=-6)
        metrics: dict[str, float] = {}
        eval_seconds = 0.0
        if status != "error":
            if solution is None:  # a method may just checkpoint and return nothing
                solution = ctx.last_solution
            if solution is None:
                status, error = "error", "method returned no solution and never called ctx.checkpoint"
            else:
                t1 = time.perf_counter()
                try:
                    metrics = evaluate(solution)
                except Exception as exc:  # e.g. a plugin's solution of the wrong type
                    status = "error"
                    error = "evaluation failed: " + "".join(traceback.format_exception_only(type(exc), exc)).strip()
                eval_seconds = time.perf_counter() - t1
            if status != "error":
                last = ctx.curve[-1] if ctx.curve else None
                if last is None or last["metrics"] != metrics or last["work"] != ctx.work:
                    ctx.curve.append({"step": "final", "train_seconds": train_seconds, "work": ctx.work,
                                      "metrics": metrics})
    peak_cuda = None
    if prof.torch_device == "cuda":
        import torch

        peak_cuda = int(torch.cuda.max_memory_allocated())

    targets = []
    for t in spec.targets_for(budget, variant):
        m = spec.metric(t.metric)
        value = metrics.get(t.metric)
        targets.append({"metric": t.metric, "threshold": t.threshold,
                        "direction": "at most" if t.upper_bound(m) else "at least",
                        "value": value, "met": bool(status != "error" and t.met(value, m)),
                        "time_to_target_seconds": time_to_target(ctx.curve, t.metric, t, m)})
    primary_targets = [t for t in targets if t["metric"] == spec.primary_metric]
    rec: dict[str, Any] = {
        "schema_version": records.SCHEMA_VERSION,
        "run_id": uuid.uuid4().hex[:12],
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "task": spec.name, "task_version": spec.version, "task_id": spec.id, "variant": variant,
        "method": entry.name, "method_source": entry.source,
        "method_role": ("reference" if entry.name == spec.reference_method
                        else "floor" if entry.name == spec.floor_method else "plugin"),
        "profile": prof.name, "budget": budget, "seed": seed,
        "status": status, "error": error,
        "primary_metric": spec.primary_metric,
        "metrics": metrics,
        "targets": targets,
        "targets_met": all(t["met"] for t in targets) if targets else None,  # None: no target applies
        "time_to_target_seconds": primary_targets[0]["time_to_target_seconds"] if primary_targets else None,
        "timings": {"setup_seconds": setup_seconds, "train_seconds": train_seconds,
                    "eval_seconds": eval_seconds, "checkpoint_eval_seconds": ctx.eval_seconds},
        "throughput": {"value": (ctx.work / train_seconds) if train_seconds > 0 and ctx.work else None,
                       "unit": spec.throughput_unit, "work": ctx.work},
        "memory": {"peak_rss_bytes": mem.peak, "peak_cuda_bytes": peak_cuda},
        "curve": ctx.curve,
        "config": {"budget": {"name": bud.name, "max_seconds": bud.max_seconds, "limits": dict(bud.limits)},
                   "method": ctx.config, "data": getattr(problem, "description", {})},
        "environment": manifest(hardware),
    }
    rec = _finite(rec)
    if results_dir is not None:
        rec["path"] = str(records.save(Path(results_dir), rec))
    return rec


def _finite(obj: Any) -> Any:
    """JSON has no NaN/inf: store them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj
