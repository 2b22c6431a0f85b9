"""The held-out side of the ``qnn`` task: the sealed iris-like rows and the scoring (harness only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from advbench.datasets import class_gaussian_rows
from advbench.spec import Budget
from advbench.task import Problem, Seal
from advbench.tasks.qnn.contract import AER_THREADS, FEATURE_NAMES, N_QUBITS, NOISE_SEED, VARIANTS, TrainData

if TYPE_CHECKING:
    from advbench.profiles import Profile
    from advbench.solution import SolutionHandle

N_TRAIN_PER_CLASS = 35  # 70 training rows, as many as version 1's 70/30 split of 100 iris rows
N_TEST_PER_CLASS = 100  # 200 held-out rows: one row is half a point (version 1: 30 rows, 3.3 points)
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
    feature_names: tuple[str, ...]


def load_variant(variant: str, seed: int, seal: Seal | None = None) -> Split:
    """The variant's rows, drawn under the seal: per class, log-normal samples with the iris class's
    log-feature mean and covariance (every feature stays positive, as measured lengths are), 35
    training and 100 held-out rows; features scaled to [0, pi] by a min-max scaler fitted on the
    training rows only. Unsealed (or without a seal) the rows come from ``default_rng([seed, 3])``."""
    from sklearn.datasets import load_iris
    from sklearn.preprocessing import MinMaxScaler

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
    rng = (seal or Seal(seed)).rng(3)
    iris = load_iris()
    parts = class_gaussian_rows(iris.data, iris.target, VARIANTS[variant], [N_TRAIN_PER_CLASS + N_TEST_PER_CLASS] * 2,
                                rng, log=True)
    X_tr = np.concatenate([p[:N_TRAIN_PER_CLASS] for p in parts])
    X_te = np.concatenate([p[N_TRAIN_PER_CLASS:] for p in parts])
    y_tr = np.repeat([0, 1], N_TRAIN_PER_CLASS).astype(np.int64)
    y_te = np.repeat([0, 1], N_TEST_PER_CLASS).astype(np.int64)
    order_tr, order_te = rng.permutation(len(y_tr)), rng.permutation(len(y_te))
    scaler = MinMaxScaler(feature_range=(0.0, np.pi)).fit(X_tr)  # training rows only
    return Split(scaler.transform(X_tr[order_tr]), y_tr[order_tr], scaler.transform(X_te[order_te]), y_te[order_te],
                 FEATURE_NAMES)


class QNNTask:
    def build(self, *, variant: str, seed: int, budget: Budget, seal: Seal) -> Problem:
        X_tr, y_tr, X_te, y_te, names = load_variant(variant, seed, seal=seal)
        a, b = VARIANTS[variant]
        return Problem(
            train=TrainData(X=X_tr, y=y_tr, classes=(a, b), feature_names=names),
            heldout=Heldout(X=X_te, y=y_te, seed=int(seal.rng(2).integers(2**31 - 1))),
            description={"variant": variant, "source": "iris-like: log-normal rows with the log-feature mean and "
                                                        "covariance of each class of sklearn's iris, drawn under the seal",
                         "classes": [a, b],
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
