"""The contract between the harness and a task implementation.

A task module (``tasks/<name>.py``) exports a :class:`~advbench.spec.TaskSpec` and a class that
implements :class:`Task`. ``build`` makes the data for one variant and seed and splits it into what
the method may see (``Problem.train``) and what only the task keeps (``Problem.heldout``);
``evaluate`` scores a solution against the held-out part.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from advbench.spec import Budget


@dataclass
class Problem:
    train: Any  # handed to the method: training (and validation) data, or an environment factory
    heldout: Any  # never handed to the method
    description: dict[str, Any] = field(default_factory=dict)  # sizes, sources: stored in the record


class Task(Protocol):
    def build(self, *, variant: str, seed: int, budget: Budget) -> Problem: ...

    def evaluate(self, solution: Any, problem: Problem, profile: Any) -> dict[str, float]: ...
