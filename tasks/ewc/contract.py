"""The public contract of the ``ewc`` task: what a method receives, what it must return.

A method receives a :class:`ContinualData`: the ``setting`` (``permuted``, ``split-task`` or
``split-class``) and ``tasks``, a sequence of :class:`TaskData` (images ``x``: ``float32[n, 784]``,
28x28 glyph digits flattened, labels ``y``: ``int64[n]`` in 0-9, the task's ``classes``). The method must learn them **in
order**: at stage ``i`` it may train on task ``i``'s data and on what it kept of earlier stages,
never on a later task's data. The harness cannot enforce this (the whole sequence is in one
object); it is the protocol, on the method's honour, and the board shows joint training (every
task seen so far at each stage) as a ceiling. The test data is held out either way.

It returns a :class:`ContinualSolution` that keeps one snapshot of its model per stage:
``stages()`` is how many stages it holds (``1`` to ``N_TASKS``) and
``predict(x, stage, task_id)`` classifies ``x`` with the model as it was after training on task
``stage``. ``task_id`` is the id of the task ``x`` comes from in ``split-task`` (task-incremental:
the task is known at test time, so the solution may restrict its answer to that task's two
classes) and :data:`NO_TASK_ID` (``-1``) in ``permuted`` and ``split-class``, where the test
inputs carry no task id. Labels are digit labels 0-9 in every setting.

The harness then fills the accuracy matrix ``R[i, j]``: the accuracy of snapshot ``i`` on task
``j``'s held-out test images, and scores ``ACC = mean_j R[T-1, j]`` and
``BWT = mean_{j < T-1} (R[T-1, j] - R[j, j])`` (Lopez-Paz & Ranzato 2017), with
:func:`continual_metrics`. A method should call ``ctx.checkpoint(solution)`` after each task, with
the snapshots so far: each checkpoint scores its last snapshot on all ``N_TASKS`` tasks, seen or
not, so the learning curve cannot reach the target before every task has been learnt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

SETTINGS = ("permuted", "split-task", "split-class")
N_TASKS = 5
IMAGE_SIDE = 28  # the glyph digits at MNIST's size: permuted pixels need room to keep five tasks apart
N_FEATURES = IMAGE_SIDE * IMAGE_SIDE
N_CLASSES = 10
NO_TASK_ID = -1
PERMUTATION_STREAM = 2  # np.random.default_rng([seed, 2]) draws the pixel permutations (public)


@dataclass(frozen=True)
class TaskData:
    task_id: int
    x: np.ndarray  # float32[n, 784] in [0, 1], a 28x28 glyph digit (pixels permuted in the permuted setting)
    y: np.ndarray  # int64[n], labels 0-9
    classes: tuple[int, ...]  # the labels this task holds

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class ContinualData:
    setting: str  # "permuted", "split-task" or "split-class"
    tasks: tuple[TaskData, ...]  # learn in this order
    n_features: int
    n_classes: int

    @property
    def task_id_at_test(self) -> bool:
        """Whether ``predict`` is told which task its inputs come from (task-incremental)."""
        return self.setting == "split-task"

    @property
    def task_classes(self) -> tuple[tuple[int, ...], ...]:
        return tuple(t.classes for t in self.tasks)


class ContinualSolution(Protocol):
    def stages(self) -> int: ...

    def predict(self, x: np.ndarray, stage: int, task_id: int) -> np.ndarray: ...


def permutations(seed: int, n_tasks: int = N_TASKS, n_features: int = N_FEATURES) -> np.ndarray:
    """``int64[n_tasks, n_features]``: task ``t`` shows pixel ``perm[t][k]`` at position ``k``
    (``x_t = x[:, perm[t]]``). Task 0 is the identity (the images as drawn). Public: drawn from
    ``default_rng([seed, 2])``; they are part of the task's definition, not held-out data."""
    rng = np.random.default_rng([seed, PERMUTATION_STREAM])
    out = [np.arange(n_features)] + [rng.permutation(n_features) for _ in range(n_tasks - 1)]
    return np.stack(out).astype(np.int64)


def split_classes(n_tasks: int = N_TASKS, n_classes: int = N_CLASSES) -> tuple[tuple[int, ...], ...]:
    """``((0, 1), (2, 3), ..., (8, 9))``: the split setting's tasks."""
    per = n_classes // n_tasks
    return tuple(tuple(range(t * per, (t + 1) * per)) for t in range(n_tasks))


def acc_bwt(R: np.ndarray, stages: int | None = None) -> tuple[float, float | None]:
    """ACC and BWT of an accuracy matrix ``R[i, j]`` (rows: stages, columns: tasks).

    With ``s`` stages learnt (``R``'s first ``s`` rows), ACC is the mean over *all* tasks of row
    ``s - 1`` (unseen tasks included: a partial run is not scored on the tasks it has seen only),
    BWT the mean over ``j < s - 1`` of ``R[s-1, j] - R[j, j]`` (``None`` after one stage).
    """
    R = np.asarray(R, dtype=np.float64)
    s = R.shape[0] if stages is None else int(stages)
    if not 1 <= s <= R.shape[0] or R.ndim != 2:
        raise ValueError(f"need 1 <= stages <= {R.shape[0]} rows of a 2-d matrix, got stages={s}, shape {R.shape}")
    last = s - 1
    acc = float(R[last].mean())
    bwt = float(np.mean([R[last, j] - R[j, j] for j in range(last)])) if last > 0 else None
    return acc, bwt


def continual_metrics(R: np.ndarray, stages: int | None = None) -> dict[str, float]:
    """``acc``, ``bwt`` (absent after one stage), ``stages`` and every learnt row of ``R`` as
    ``R_i_j`` (accuracy of the snapshot after task ``i`` on task ``j``): what the harness records."""
    R = np.asarray(R, dtype=np.float64)
    s = R.shape[0] if stages is None else int(stages)
    acc, bwt = acc_bwt(R, s)
    out = {"acc": acc}
    if bwt is not None:
        out["bwt"] = bwt
    out["stages"] = float(s)
    out.update({f"R_{i}_{j}": float(R[i, j]) for i in range(s) for j in range(R.shape[1])})
    return out
