"""The toy task's public contract: a sampler of training draws; a solution is a number, or an
object with ``estimate() -> float``."""

from __future__ import annotations

from typing import Any

import numpy as np


class Sampler:
    def __init__(self, mean: float, sigma: float, seed: int) -> None:
        self._mean, self._sigma, self._rng = mean, sigma, np.random.default_rng([seed, 1])

    def draw(self, n: int) -> np.ndarray:
        return self._rng.normal(self._mean, self._sigma, size=n)


def estimate_of(solution: Any) -> float:
    """Runs in the scoring process: the number a solution stands for."""
    if isinstance(solution, (int, float, np.floating)):
        return float(solution)
    return float(solution.estimate())
