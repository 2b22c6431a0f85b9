"""The held-out side of the ``edge`` task: the split and the metrics (harness only)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from advbench.spec import Budget
from advbench.task import Problem, Seal
from advbench.tasks.edge.contract import LATENCY_BATCHES, MODELS, REPEATS, WARMUP_CALLS, Images

if TYPE_CHECKING:
    from advbench.profiles import Profile
    from advbench.solution import SolutionHandle

TEST_FRACTION = 0.25
MEASURE = "advbench.tasks.edge.contract:measure"


def load_split(seal: Seal, test_fraction: float = TEST_FRACTION) -> tuple[Images, Images]:
    """Stratified split of load_digits; ``random_state`` from the seal (the seed itself unsealed)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None, :, :]
    y = data.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, stratify=y,
                                              random_state=seal.random_state(seal.seed, "split"))
    return Images(x_tr, y_tr), Images(x_te, y_te)


def accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    """Share of correct predictions, computed as torch computes ``(pred == y).float().mean()``."""
    import torch

    return (torch.as_tensor(pred) == torch.as_tensor(y)).float().mean().item()


def _checked(m: Any, n: int, batches: tuple[int, ...]) -> dict[str, Any]:
    """What :func:`~.contract.measure` sent back, checked field by field."""
    def fail(what: str) -> ValueError:
        return ValueError(f"the edge measurement returned {what}")

    if not isinstance(m, dict) or not {"pred", "bytes", "latency", "prune_sparsity"} <= set(m):
        raise TypeError("the edge measurement did not return a dict with pred, bytes, latency and prune_sparsity")
    pred, size, latency = m["pred"], m["bytes"], m["latency"]
    if not (isinstance(pred, dict) and isinstance(size, dict) and isinstance(latency, dict)):
        raise TypeError("the edge measurement's pred, bytes and latency must be dicts")
    for k in MODELS:
        p = pred.get(k)
        if not isinstance(p, np.ndarray) or p.shape != (n,) or not np.issubdtype(p.dtype, np.integer):
            raise fail(f"predictions of the {k} model that are not {n} integers: "
                       f"{getattr(p, 'dtype', type(p).__name__)} {getattr(p, 'shape', '')}")
        b = size.get(k)
        if isinstance(b, bool) or not isinstance(b, int) or b <= 0:
            raise fail(f"a size of {b!r} bytes for the {k} model")
    for b in batches:
        t = latency.get(b)
        if (not isinstance(t, (tuple, list)) or len(t) != 3
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in t)
                or not all(math.isfinite(v) and v > 0 for v in t)):
            raise fail(f"latencies at batch {b} that are not three finite positive numbers: {t!r}")
    s = m["prune_sparsity"]
    if isinstance(s, bool) or not isinstance(s, (int, float)) or not (0.0 <= s <= 1.0):
        raise fail(f"a sparsity of {s!r} (expected a number in [0, 1])")
    return m


class EdgeTask:
    def build(self, *, variant: str, seed: int, budget: Budget, seal: Seal) -> Problem:
        if variant != "digits-cnn":
            raise ValueError(f"unknown variant {variant!r}")
        train, test = load_split(seal)
        return Problem(train=train, heldout=test,
                       description={"variant": variant, "train": len(train.y), "heldout": len(test.y),
                                    "latency": f"1 thread, {WARMUP_CALLS} warm-up calls, median of {REPEATS} paired repeats"})

    def evaluate(self, solution: "SolutionHandle", problem: Problem, profile: "Profile") -> dict[str, float]:
        test: Images = problem.heldout
        m = _checked(solution.apply(MEASURE, test.x.copy(), LATENCY_BATCHES), len(test.y), LATENCY_BATCHES)
        pred, size = m["pred"], m["bytes"]
        out = {"fp32_acc": accuracy(pred["fp32"], test.y), "int8_acc": accuracy(pred["int8"], test.y)}
        out["acc_drop"] = 100.0 * (out["fp32_acc"] - out["int8_acc"])
        out["size_ratio"] = size["fp32"] / size["int8"]
        for b in LATENCY_BATCHES:
            t_fp32, t_int8, speedup = m["latency"][b]
            out[f"latency_fp32_b{b}_ms"] = 1e3 * t_fp32
            out[f"latency_int8_b{b}_ms"] = 1e3 * t_int8
            out[f"speedup_b{b}"] = speedup
        out["prune_acc_drop"] = 100.0 * (out["fp32_acc"] - accuracy(pred["pruned"], test.y))
        out["prune_sparsity"] = float(m["prune_sparsity"])
        out["pruned_size_ratio"] = size["fp32"] / size["pruned"]
        return out
