"""The public contract of the ``automl`` task: the data a tuner receives, the search space, the CV score.

A method receives a :class:`TuningData`: the training part of one data set (``x``, ``y``), the
fixed cross-validation folds every trial must use (``folds``: five stratified (train, validation)
index pairs, the same for every trial and every method of a run), and the ``scoring`` of the data
set (``"accuracy"``, or ``"roc_auc"`` for a binary one). The outer hold-out never reaches the method.

The search space (:data:`SEARCH_SPACE`) is an RBF support-vector classifier behind an optional
standard scaler: ``C`` and ``gamma`` on log scales (sampling them linearly would spend almost every
trial in the top decade), ``scaler`` in {standard, none}. :func:`make_model` builds the pipeline of
a configuration; :func:`cv_score` is THE score of a configuration: the mean over the fixed folds of
the data set's scorer, one process, one thread (equal to scikit-learn's ``cross_val_score`` on the
same folds: tested). :data:`DEFAULTS` is scikit-learn's default SVC behind a standard scaler, the
floor.

What a method returns: a :class:`TunedModel`, a configuration and the pipeline refit on the whole
training part. The harness scores the pipeline on the outer hold-out and recomputes the
configuration's CV score itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

SEARCH_SPACE = {
    "C": ("log-uniform", 1e-2, 1e3),
    "gamma": ("log-uniform", 1e-5, 1e1),
    "scaler": ("categorical", "standard", "none"),
}
DEFAULTS = {"C": 1.0, "gamma": "scale", "scaler": "standard"}  # sklearn's SVC() defaults


@dataclass(frozen=True)
class TuningData:
    name: str
    x: np.ndarray  # float64[n, d]
    y: np.ndarray  # int64[n]
    folds: tuple[tuple[np.ndarray, np.ndarray], ...]  # fixed (train, validation) indices into x
    scoring: str  # "accuracy" or "roc_auc"


def check_config(config: dict[str, Any]) -> dict[str, Any]:
    """The configuration as the space allows it, or a ValueError naming what is outside."""
    if set(config) != set(SEARCH_SPACE):
        raise ValueError(f"a configuration has the keys {sorted(SEARCH_SPACE)}, got {sorted(config)}")
    out = dict(config)
    for key in ("C", "gamma"):
        v = config[key]
        if key == "gamma" and v == "scale":
            continue
        _, low, high = SEARCH_SPACE[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (low <= float(v) <= high):
            raise ValueError(f"{key}={v!r} is outside the search space [{low:g}, {high:g}]")
        out[key] = float(v)
    if config["scaler"] not in SEARCH_SPACE["scaler"][1:]:
        raise ValueError(f"scaler={config['scaler']!r}; valid: {', '.join(SEARCH_SPACE['scaler'][1:])}")
    return out


def make_model(config: dict[str, Any]):
    """The scikit-learn pipeline of a configuration (probability off: the scorer uses decision_function)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    c = check_config(config)
    svc = SVC(C=c["C"], gamma=c["gamma"], kernel="rbf")
    return make_pipeline(StandardScaler(), svc) if c["scaler"] == "standard" else make_pipeline(svc)


def cv_score(config: dict[str, Any], data: TuningData) -> float:
    """Mean score of ``config`` over the fixed folds (what ``cross_val_score`` gives on the same folds)."""
    from sklearn.base import clone
    from sklearn.metrics import get_scorer

    scorer = get_scorer(data.scoring)
    model = make_model(config)
    scores = []
    for train, val in data.folds:
        fitted = clone(model).fit(data.x[train], data.y[train])
        scores.append(scorer(fitted, data.x[val], data.y[val]))
    return float(np.mean(scores))


@dataclass
class TunedModel:
    """The solution: the chosen configuration and the pipeline refit on all training data."""

    config: dict[str, Any]
    model: Any

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(x)

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        return self.model.decision_function(x)

    def chosen_config(self) -> dict[str, Any]:
        return {k: (v if isinstance(v, str) else float(v)) for k, v in self.config.items()}

