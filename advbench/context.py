"""What a method receives besides its training data: seed, budget, profile, and ``checkpoint``."""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping

from advbench.errors import BudgetExhausted
from advbench.spec import Budget, TaskSpec


class RunContext:
    """Handed to a method as ``method(train_data, ctx)``.

    A method calls ``ctx.checkpoint(solution)`` whenever it has something worth scoring. The
    harness then pauses the training clock, scores the solution on held-out data the method never
    sees, and stores the result on the run's curve; nothing about that score is returned, so a
    method cannot select or stop on held-out data (use your own validation split for that).
    ``checkpoint`` raises :class:`BudgetExhausted` once the budget's wall-time cap is spent; the
    harness then scores the last checkpointed solution.
    """

    def __init__(self, *, spec: TaskSpec, variant: str, seed: int, budget: Budget, profile: Any,
                 evaluate: Callable[[Any], dict[str, float]],
                 on_progress: Callable[[float, float], None] | None = None) -> None:
        self.spec = spec
        self.variant = variant
        self.seed = seed
        self.budget = budget
        self.profile = profile
        self._evaluate = evaluate
        self._on_progress = on_progress
        self.curve: list[dict[str, Any]] = []
        self.config: dict[str, Any] = {}
        self.work = 0.0
        self.last_solution: Any = None  # what the last checkpoint scored (used if the cap stops the method)
        self.eval_seconds = 0.0
        self._start = time.perf_counter()
        self._paused = 0.0

    # ---- what the method reads ----
    @property
    def limits(self) -> Mapping[str, float]:
        """The budget in the task's own units, e.g. ``ctx.limits["steps"]``."""
        return self.budget.limits

    @property
    def device(self) -> str:
        """The torch device string of the profile (``"cpu"``, ``"cuda"``)."""
        return self.profile.torch_device

    @property
    def simulator(self) -> Mapping[str, Any]:
        """Simulator options of a quantum profile (method, shots, noise)."""
        return self.profile.simulator

    def rng(self, stream: int = 0):
        """A numpy Generator seeded from the run seed (``stream`` separates independent uses)."""
        import numpy as np

        return np.random.default_rng([self.seed, stream])

    def elapsed(self) -> float:
        """Training seconds so far (evaluation pauses excluded)."""
        return time.perf_counter() - self._start - self._paused

    def time_left(self) -> float:
        return self.budget.max_seconds - self.elapsed()

    # ---- what the method reports ----
    def record_config(self, **config: Any) -> None:
        """Hyperparameters as actually used; stored in the record."""
        self.config.update(config)

    def count(self, n: float) -> None:
        """Add ``n`` units of work (samples, env steps, circuit evaluations) for the throughput."""
        self.work += n

    def progress(self, done: float, total: float) -> None:
        if self._on_progress is not None:
            self._on_progress(done, total)

    def checkpoint(self, solution: Any, step: float | None = None) -> None:
        """Score ``solution`` on held-out data with the clock paused; enforce the time cap."""
        pause = time.perf_counter()
        train_seconds = pause - self._start - self._paused
        metrics = self._evaluate(solution)
        self.last_solution = solution
        self.curve.append({"step": step, "train_seconds": train_seconds, "work": self.work, "metrics": metrics})
        spent = time.perf_counter() - pause
        self._paused += spent
        self.eval_seconds += spent
        if train_seconds > self.budget.max_seconds:
            raise BudgetExhausted(f"{train_seconds:.1f} s > cap {self.budget.max_seconds:g} s")
