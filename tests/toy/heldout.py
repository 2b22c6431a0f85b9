"""The toy task's held-out side: draws the mean, scores estimates."""

from __future__ import annotations

from advbench.task import Problem
from toy.contract import Sampler


class ToyTask:
    def build(self, *, variant, seed, budget, seal):
        import numpy as np

        mean = float(seal.rng(2).uniform(-5, 5))
        draws = np.random.default_rng([seed, 1]).normal(mean, 1.0 if variant == "easy" else 10.0, size=20000)
        asked = []

        def above(x):
            """Is the held-out mean above ``x``? At most 64 questions a run (for ctx.ask's tests)."""
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                raise ValueError(f"ask a number, not {type(x).__name__}")
            if len(asked) >= 64:
                raise ValueError("no more than 64 questions")
            asked.append(x)
            return mean > x

        return Problem(train=Sampler(draws), heldout=mean, oracle=above,
                       description={"variant": variant})

    def evaluate(self, solution, problem, profile):
        from advbench.solution import SolutionError

        try:  # a number is plain data; anything else is asked for its estimate()
            value = solution.fetch()
        except SolutionError:
            value = solution.estimate()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"a toy solution is a number or has estimate() -> float, got {type(value).__name__}")
        err = abs(float(value) - problem.heldout)
        return {"abs_error": err, "hit": float(err < 0.1)}
