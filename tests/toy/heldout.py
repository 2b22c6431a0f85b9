"""The toy task's held-out side: draws the mean, scores estimates."""

from __future__ import annotations

from advbench.task import Problem
from toy.contract import Sampler


class ToyTask:
    def build(self, *, variant, seed, budget, seal):
        import numpy as np

        mean = float(seal.rng(2).uniform(-5, 5))
        draws = np.random.default_rng([seed, 1]).normal(mean, 1.0 if variant == "easy" else 10.0, size=20000)
        return Problem(train=Sampler(draws), heldout=mean,
                       description={"variant": variant})

    def evaluate(self, solution, problem, profile):
        err = abs(solution.apply("toy.contract:estimate_of") - problem.heldout)
        return {"abs_error": err, "hit": float(err < 0.1)}
