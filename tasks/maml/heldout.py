"""The held-out side of ``maml``: the 600 evaluation tasks, the adaptation the harness runs, the scores."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from advbench.task import Problem, Seal
from advbench.tasks.maml.contract import (PARAM_SHAPES, SCORED_STEPS, SinusoidFamily, adapt, mse,
                                          sample_sinusoids)

if TYPE_CHECKING:
    from advbench.solution import SolutionHandle

N_EVAL_TASKS = 600
N_QUERY = 100
SHOTS = {"k5": 5, "k10": 10}
MSE_CAP = 1e6


class MAMLTask:
    def build(self, *, variant: str, seed: int, budget: Any, seal: Seal) -> Problem:
        if variant not in SHOTS:
            raise ValueError(f"unknown variant {variant!r}; valid: {', '.join(SHOTS)}")
        k = SHOTS[variant]
        tasks = sample_sinusoids(seal.rng(1), N_EVAL_TASKS, k, N_QUERY)
        return Problem(
            train=SinusoidFamily(k_shot=k, n_query=N_QUERY),
            heldout={"tasks": tasks},
            description={"variant": variant, "k_shot": k, "eval_tasks": N_EVAL_TASKS, "query_points": N_QUERY,
                         "scored_steps": list(SCORED_STEPS)},
        )

    def evaluate(self, solution: "SolutionHandle", problem: Problem, profile: Any) -> dict[str, float]:
        params, lr = check_initialisation(solution.parameters(), solution.inner_lr())
        return score(params, lr, problem.heldout["tasks"])


def check_initialisation(params: Any, lr: Any) -> tuple[dict[str, np.ndarray], float | dict[str, np.ndarray]]:
    """The weights and inner learning rate as float32 arrays of the contract's shapes, or a ValueError."""
    if not isinstance(params, dict) or set(params) != set(PARAM_SHAPES):
        got = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise ValueError(f"parameters() must return a dict with keys {sorted(PARAM_SHAPES)}, got {got}")
    out = {}
    for name, shape in PARAM_SHAPES.items():
        a = np.asarray(params[name])
        if a.shape != shape or not np.issubdtype(a.dtype, np.floating) or not np.isfinite(a).all():
            raise ValueError(f"parameter {name!r} must be finite floats of shape {shape}, got {a.dtype} {a.shape}")
        out[name] = a.astype(np.float32)
    if isinstance(lr, dict):
        if set(lr) != set(PARAM_SHAPES):
            raise ValueError(f"inner_lr() as a dict needs one array per parameter {sorted(PARAM_SHAPES)}")
        lrs = {}
        for name, shape in PARAM_SHAPES.items():
            a = np.asarray(lr[name], dtype=np.float64)
            if a.shape not in (shape, ()) or not np.isfinite(a).all():
                raise ValueError(f"inner learning rate {name!r} must be finite, a scalar or of shape {shape}")
            lrs[name] = a.astype(np.float32)
        return out, lrs
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not np.isfinite(lr):
        raise ValueError(f"inner_lr() must return a finite float or a dict of arrays, got {lr!r}")
    return out, float(lr)


def score(params: dict[str, np.ndarray], lr: float | dict[str, np.ndarray], tasks: Any,
          chunk: int = 200) -> dict[str, float]:
    """Query MSE of every task after 0, 1 and 10 steps of :func:`~.contract.adapt`, mean and 95% CI half-width."""
    import torch
    from scipy import stats

    p = {k: torch.as_tensor(v) for k, v in params.items()}
    step_lr = {k: torch.as_tensor(v) for k, v in lr.items()} if isinstance(lr, dict) else lr
    per_task: dict[int, list[np.ndarray]] = {0: [], **{s: [] for s in SCORED_STEPS}}
    for start in range(0, len(tasks), chunk):
        sl = slice(start, start + chunk)
        xs, ys, xq, yq = (torch.as_tensor(a[sl]) for a in (tasks.x_s, tasks.y_s, tasks.x_q, tasks.y_q))
        path = adapt(p, xs, ys, step_lr, max(SCORED_STEPS))
        with torch.no_grad():
            for s in per_task:
                per_task[s].append(mse(path[s], xq, yq).double().numpy())
    out = {}
    for s, parts in per_task.items():
        errors = np.concatenate(parts)
        # A diverging adaptation is a very bad score, not a crash: errors are capped at 1e6.
        errors = np.minimum(np.nan_to_num(errors, nan=MSE_CAP, posinf=MSE_CAP), MSE_CAP)
        name = f"mse_{s}step"
        out[name] = float(errors.mean())
        if s:
            out[f"{name}_ci95"] = float(stats.sem(errors) * stats.t.ppf(0.975, len(errors) - 1))
    return out
