"""The held-out side of the ``qnn`` task: the seeded split and the scoring (harness only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from advbench.spec import Budget
from advbench.task import Problem, Seal
from advbench.tasks.qnn.contract import AER_THREADS, N_QUBITS, NOISE_SEED, VARIANTS, TrainData

if TYPE_CHECKING:
    from advbench.profiles import Profile
    from advbench.solution import SolutionHandle

TEST_FRACTION = 0.3
PREDICT_ON = "advbench.tasks.qnn.contract:predict_on"


@dataclass(frozen=True)
class Heldout:
    """What only the task sees."""

    X: np.ndarray
    y: np.ndarray
    seed: int  # seeds the shot sampling of every evaluation, so a solution always scores the same


class Split(NamedTuple):
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    index_train: np.ndarray  # row numbers in load_iris(), to check that the two parts are disjoint
    index_test: np.ndarray
    feature_names: tuple[str, ...]


def load_variant(variant: str, seed: int, test_fraction: float = TEST_FRACTION, seal: Seal | None = None) -> Split:
    """The variant's two classes, split (stratified, seeded) and scaled with the training rows only.

    The split's ``random_state`` is ``seal.random_state(seed, ...)``: ``seed`` itself unsealed (or
    without a seal), a keyed integer sealed.
    """
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import MinMaxScaler

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
    a, b = VARIANTS[variant]
    iris = load_iris()
    rows = np.flatnonzero(np.isin(iris.target, (a, b)))
    y = (iris.target[rows] == b).astype(np.int64)
    random_state = seed if seal is None else seal.random_state(seed, "qnn", "split", variant)
    idx_tr, idx_te = train_test_split(rows, test_size=test_fraction, stratify=y, random_state=random_state)
    scaler = MinMaxScaler(feature_range=(0.0, np.pi)).fit(iris.data[idx_tr])  # training rows only
    return Split(scaler.transform(iris.data[idx_tr]), (iris.target[idx_tr] == b).astype(np.int64),
                 scaler.transform(iris.data[idx_te]), (iris.target[idx_te] == b).astype(np.int64),
                 idx_tr, idx_te, tuple(iris.feature_names))


class QNNTask:
    def build(self, *, variant: str, seed: int, budget: Budget, seal: Seal) -> Problem:
        X_tr, y_tr, X_te, y_te, _, _, names = load_variant(variant, seed, seal=seal)
        a, b = VARIANTS[variant]
        return Problem(
            train=TrainData(X=X_tr, y=y_tr, classes=(a, b), feature_names=names),
            heldout=Heldout(X=X_te, y=y_te, seed=int(seal.rng(2).integers(2**31 - 1))),
            description={"variant": variant, "source": "sklearn.datasets.load_iris", "classes": [a, b],
                         "train": int(len(y_tr)), "test": int(len(y_te)),
                         "train_class_counts": np.bincount(y_tr, minlength=2).tolist(),
                         "test_class_counts": np.bincount(y_te, minlength=2).tolist(),
                         "feature_range": [0.0, float(np.pi)], "n_qubits": N_QUBITS,
                         "noise_backend": f"GenericBackendV2({N_QUBITS}, seed={NOISE_SEED})",
                         "aer_threads": AER_THREADS},
        )

    @staticmethod
    def _accuracy(solution: "SolutionHandle", data: Any, X: np.ndarray, y: np.ndarray, simulator: dict[str, Any],
                  seed: int) -> float:
        labels = solution.compute(PREDICT_ON, data, X.copy(), simulator, seed)
        if not isinstance(labels, np.ndarray):
            raise TypeError(f"predict returned {type(labels).__name__}; expected an array of labels")
        labels = labels.reshape(-1)
        if labels.shape != y.shape:
            raise ValueError(f"predict returned {labels.shape[0]} labels for {y.shape[0]} rows")
        if not (np.issubdtype(labels.dtype, np.number) or labels.dtype == np.bool_):
            raise TypeError(f"predict returned an array of {labels.dtype}; expected labels 0/1")
        if not np.isfinite(labels).all():
            raise ValueError("predict returned NaN or infinite labels")
        return float(np.mean(labels == y))

    def evaluate(self, solution: "SolutionHandle", problem: Problem, profile: "Profile") -> dict[str, float]:
        train, heldout = problem.train, problem.heldout
        simulator = dict(getattr(profile, "simulator", profile))
        # The solution's code is asked for its model as data, once; the harness simulates it in the
        # clean scoring process. Fixed seeds per evaluation: the same solution always scores the same.
        data = solution.circuit_data()
        return {
            "accuracy": self._accuracy(solution, data, heldout.X, heldout.y, simulator, heldout.seed),
            "train_accuracy": self._accuracy(solution, data, train.X, train.y, simulator, heldout.seed + 1),
        }
