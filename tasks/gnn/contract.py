"""The public contract of the ``gnn`` task: what a method receives and must return.

A method receives a :class:`GraphDataset` as ``train``: the graphs of its nine training folds
(:class:`GraphSample`: one-hot degree features ``x``, both directions of every edge in
``edge_index``, and the label ``y``), ``num_features`` and ``num_classes``. The run seed decides
which nine (:func:`fold_of_seed`): repeat ``seed // 10`` of stratified 10-fold CV, with fold
``seed % 10`` held out.

It returns a :class:`GraphClassifier`: any object with ``predict(graphs) -> int array`` of class
labels. The harness calls it in the scoring process on graphs whose ``y`` is -1 (unknown).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

N_FOLDS = 10
MAX_DEGREE = 10  # one-hot degree features: 0..9 and "10 or more"


@dataclass(frozen=True)
class GraphSample:
    """One graph: node features ``x`` (n, 11), ``edge_index`` (2, 2m) both directions, label ``y``."""

    x: np.ndarray
    edge_index: np.ndarray
    y: int = -1

    @property
    def num_nodes(self) -> int:
        return int(self.x.shape[0])


class GraphClassifier(Protocol):
    def predict(self, graphs: Sequence[GraphSample]) -> np.ndarray: ...


@dataclass(frozen=True)
class GraphDataset:
    """What the method gets: its nine training folds, and the feature and class counts."""

    graphs: tuple[GraphSample, ...]
    num_features: int
    num_classes: int

    @property
    def labels(self) -> np.ndarray:
        return np.array([g.y for g in self.graphs])


def fold_of_seed(seed: int) -> tuple[int, int]:
    """``(repeat, fold)`` of a run seed: repeat ``seed // 10`` of 10-fold CV, test fold ``seed % 10``.

    Seeds 0-9 are the ten folds of repeat 0 (the partition of ``gnn-v1``), seeds 10-19 the ten folds
    of repeat 1 (a fresh stratified shuffle of the same graphs), and so on. The folds of one repeat
    share their training graphs, so their scores are not independent: a confidence interval over
    seeds must be taken over repeats (the mean of each complete repeat's ten folds), not over folds.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"a gnn seed is a non-negative integer, got {seed!r}")
    return int(seed) // N_FOLDS, int(seed) % N_FOLDS


def degree_features(edge_index: np.ndarray, n: int) -> np.ndarray:
    deg = np.bincount(edge_index[0], minlength=n) if edge_index.size else np.zeros(n, int)
    x = np.zeros((n, MAX_DEGREE + 1), np.float32)
    x[np.arange(n), np.minimum(deg, MAX_DEGREE)] = 1.0
    return x
