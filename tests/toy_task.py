"""A tiny task, registered in-process by the tests, to exercise the harness without torch.

Estimate the mean of a Gaussian from training draws; the held-out truth is the mean itself.
"""

from __future__ import annotations

import time

import numpy as np

from advbench.spec import Budget, Metric, Target, TaskSpec
from advbench.task import Problem

SPEC = TaskSpec(
    name="toy",
    version=3,
    title="Toy mean estimation",
    summary="Estimate a Gaussian mean from samples.",
    variants={"easy": "sigma 1", "hard": "sigma 10"},
    metrics=(Metric("abs_error", "units", False, "|estimate - mean|"), Metric("hit", "fraction", True)),
    primary_metric="abs_error",
    targets=(Target("abs_error", 0.1, "quick", "easy"), Target("abs_error", 0.01, "full", "easy")),
    budgets={"quick": Budget("quick", 1.0, {"samples": 2000}, ("easy",)),
             "full": Budget("full", 1.0, {"samples": 20000}, ("easy", "hard"))},
    profiles=("cpu",),
    throughput_unit="samples/s",
    entry_point="toy_task:ToyTask",
    reference_method="estimate",
    floor_method="zero",
)


class Sampler:
    def __init__(self, mean: float, sigma: float, seed: int) -> None:
        self._mean, self._sigma, self._rng = mean, sigma, np.random.default_rng([seed, 1])

    def draw(self, n: int) -> np.ndarray:
        return self._rng.normal(self._mean, self._sigma, size=n)


class ToyTask:
    def build(self, *, variant, seed, budget):
        mean = float(np.random.default_rng([seed, 2]).uniform(-5, 5))
        return Problem(train=Sampler(mean, 1.0 if variant == "easy" else 10.0, seed), heldout=mean,
                       description={"variant": variant})

    def evaluate(self, solution, problem, profile):
        err = abs(float(solution) - problem.heldout)
        return {"abs_error": err, "hit": float(err < 0.1)}


def estimate(train, ctx):
    """Running mean, checkpointed every 100 samples."""
    total, n = 0.0, 0
    for _ in range(int(ctx.limits["samples"]) // 100):
        x = train.draw(100)
        total, n = total + x.sum(), n + 100
        ctx.count(100)
        ctx.checkpoint(total / n, step=n)
    return total / n


def zero(train, ctx):
    return 0.0


def crash(train, ctx):
    raise RuntimeError("boom")


def slow(train, ctx):
    while True:
        time.sleep(0.2)
        ctx.checkpoint(float(train.draw(10).mean()))


def cheat(train, ctx):
    """Tries to reach the held-out answer through the training object: must find nothing."""
    return getattr(train, "heldout", 0.0)


def wrong_type(train, ctx):
    return "not a number"
