"""The held-out side of ``ewc``: the task sequences, their test splits, the accuracy matrix."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from advbench.glyphs import glyph_split
from advbench.task import Problem, Seal, check_labels
from advbench.tasks.ewc.contract import (IMAGE_SIDE, N_CLASSES, N_FEATURES, N_TASKS, NO_TASK_ID, SETTINGS,
                                         ContinualData, TaskData, continual_metrics, permutations, split_classes)

if TYPE_CHECKING:
    from advbench.solution import SolutionHandle


def task_sequence(setting: str, seed: int, x: np.ndarray, y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray,
                                                                                        tuple[int, ...]]]:
    """The ``N_TASKS`` (x, y, classes) of one setting, made from one split of glyph digits.

    ``permuted``: every task holds all images of the split, task ``t``'s pixels in the order of
    :func:`~.contract.permutations` (public, from the seed); ``split-*``: task ``t`` holds the images
    of digits ``2t`` and ``2t + 1``, unpermuted.
    """
    c = np.ascontiguousarray
    if setting == "permuted":
        perms = permutations(seed)
        return [(c(x[:, p]), c(y), tuple(range(N_CLASSES))) for p in perms]
    out = []
    for classes in split_classes():
        keep = np.isin(y, classes)
        out.append((c(x[keep]), c(y[keep]), classes))
    return out


class EWCTask:
    def build(self, *, variant: str, seed: int, budget: Any, seal: Seal) -> Problem:
        if variant not in SETTINGS:
            raise ValueError(f"unknown variant {variant!r}; valid: {', '.join(SETTINGS)}")
        train, test = glyph_split(seal, size=IMAGE_SIDE)
        tr = task_sequence(variant, seed, train.x, train.y)
        te = task_sequence(variant, seed, test.x, test.y)
        data = ContinualData(setting=variant, n_features=N_FEATURES, n_classes=N_CLASSES,
                             tasks=tuple(TaskData(t, x, y, classes) for t, (x, y, classes) in enumerate(tr)))
        task_id_at_test = data.task_id_at_test
        heldout = {"tasks": [{"x": x, "y": y, "task_id": t if task_id_at_test else NO_TASK_ID}
                             for t, (x, y, _) in enumerate(te)]}
        return Problem(
            train=data, heldout=heldout,
            description={"variant": variant, "tasks": N_TASKS, "classes": [list(c) for _, _, c in tr],
                         "train_per_task": [int(len(y)) for _, y, _ in tr],
                         "test_per_task": [int(len(y)) for _, y, _ in te],
                         "task_id_at_test": task_id_at_test,
                         "permutation_seed": [seed, 2] if variant == "permuted" else None},
        )

    def evaluate(self, solution: "SolutionHandle", problem: Problem, profile: Any) -> dict[str, float]:
        tasks = problem.heldout["tasks"]
        stages = solution.stages()
        if isinstance(stages, bool) or not isinstance(stages, (int, np.integer)) or not 1 <= stages <= len(tasks):
            raise ValueError(f"stages() must return an int from 1 to {len(tasks)} (snapshots held), got {stages!r}")
        R = np.zeros((int(stages), len(tasks)))
        for i in range(int(stages)):
            for j, t in enumerate(tasks):
                pred = check_labels(solution.predict(t["x"].copy(), i, t["task_id"]), len(t["y"]), N_CLASSES)
                R[i, j] = float((pred == t["y"]).mean())
        return continual_metrics(R)

