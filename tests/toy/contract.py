"""The toy task's public contract: a sampler of training draws; a solution is a number, or an
object with ``estimate() -> float``."""

from __future__ import annotations

from typing import Any

import numpy as np


class Sampler:
    """Hands out draws made in advance by the harness: a sampler that kept the mean to draw from
    would carry the held-out answer into the method's process (the hostile tests caught that)."""

    def __init__(self, draws: np.ndarray) -> None:
        self._draws, self._next = draws, 0

    def draw(self, n: int) -> np.ndarray:
        if self._next + n > len(self._draws):
            self._next = 0  # past the budget: the same draws again, never new information
        out = self._draws[self._next: self._next + n]
        self._next += n
        return out
