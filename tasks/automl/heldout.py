"""The held-out side of ``automl``: the data sets, the outer hold-out split, the scoring (harness only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from advbench.datasets import class_gaussian_rows
from advbench.task import Problem, Seal
from advbench.tasks.automl.contract import TuningData, check_config, cv_score

if TYPE_CHECKING:
    from advbench.solution import SolutionHandle

HOLDOUT_FRACTION = 0.25
N_FOLDS = 5


# Scored variants: every row generated under the seal. The public sets behind them stay as unscored
# development variants (no budget runs them; a run on one says so in its record's description).
SCORED = ("glyphs", "breast_cancer-like", "wine-like", "synthetic")
PUBLIC = ("digits", "breast_cancer", "wine")
_PUBLIC_LOADERS = {"digits": "load_digits", "breast_cancer": "load_breast_cancer", "wine": "load_wine"}


def class_gaussian_like(name: str, seal: Seal) -> tuple[np.ndarray, np.ndarray]:
    """A set in the shape of scikit-learn's ``name``: as many rows per class as the public set, each class a
    Gaussian with the public class's mean and covariance (public: the shape of the data), every row
    drawn under the seal. No row of the public set is among them, and a sealed run cannot redraw them."""
    from sklearn import datasets

    x_pub, y_pub = getattr(datasets, _PUBLIC_LOADERS[name])(return_X_y=True)
    rng = seal.rng(5, PUBLIC.index(name))
    classes = np.unique(y_pub)
    xs = class_gaussian_rows(x_pub, y_pub, classes, [int((y_pub == c).sum()) for c in classes], rng)
    ys = [np.full(len(part), cls) for cls, part in zip(classes, xs)]
    order = rng.permutation(len(y_pub))
    return np.concatenate(xs)[order], np.concatenate(ys)[order]


def load(variant: str, seal: Seal) -> tuple[np.ndarray, np.ndarray]:
    """The whole data set of a variant. ``glyphs`` are the sealed glyph digits (``advbench.glyphs``: 1800
    8x8 images of 10 classes, pixels in [0, 1]); ``breast_cancer-like`` and ``wine-like`` are
    :func:`class_gaussian_like` sets; ``synthetic``'s generator seed comes from the seal. The public
    sets (``digits``, ``breast_cancer``, ``wine``) are scikit-learn's copies: development only."""
    from sklearn import datasets

    if variant == "synthetic":
        x, y = datasets.make_classification(n_samples=5000, n_features=40, n_informative=10, flip_y=0.05,
                                            class_sep=0.8, random_state=seal.random_state(seal.seed, "synthetic"))
    elif variant == "glyphs":
        from advbench.glyphs import glyph_digits

        data = glyph_digits(seal)
        x, y = data.x, data.y
    elif variant.endswith("-like") and variant.removesuffix("-like") in PUBLIC:
        x, y = class_gaussian_like(variant.removesuffix("-like"), seal)
    elif variant in PUBLIC:
        x, y = getattr(datasets, _PUBLIC_LOADERS[variant])(return_X_y=True)
    else:
        raise ValueError(f"unknown variant {variant!r}; valid: {', '.join(SCORED + PUBLIC)}")
    return np.asarray(x, np.float64), np.asarray(y, np.int64)


class AutoMLTask:
    def build(self, *, variant: str, seed: int, budget: Any, seal: Seal) -> Problem:
        from sklearn.model_selection import StratifiedKFold, train_test_split

        x, y = load(variant, seal)
        x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=HOLDOUT_FRACTION, stratify=y,
                                                  random_state=seal.random_state(seed, "holdout"))
        c = np.ascontiguousarray
        x_tr, y_tr = c(x_tr), c(y_tr)
        # The folds are the method's training data: from the public seed, fixed for every trial.
        folds = tuple((c(a), c(b)) for a, b in
                      StratifiedKFold(N_FOLDS, shuffle=True, random_state=seed).split(x_tr, y_tr))
        scoring = "roc_auc" if len(np.unique(y)) == 2 else "accuracy"
        data = TuningData(variant, x_tr, y_tr, folds, scoring)
        return Problem(
            train=data,
            heldout={"x": c(x_te), "y": c(y_te)},
            description={"variant": variant, "scored": variant in SCORED,
                         "train": int(len(y_tr)), "holdout": int(len(y_te)),
                         "features": int(x.shape[1]), "classes": int(len(np.unique(y))), "scoring": scoring,
                         "folds": f"StratifiedKFold({N_FOLDS}, shuffle=True, random_state={seed}) on the training part"},
        )

    def evaluate(self, solution: "SolutionHandle", problem: Problem, profile: Any) -> dict[str, float]:
        from sklearn.metrics import roc_auc_score

        data: TuningData = problem.train
        x, y = problem.heldout["x"], problem.heldout["y"]
        config = check_config(solution.chosen_config())
        if data.scoring == "roc_auc":
            scores = np.asarray(solution.decision_function(x.copy()), np.float64)
            if scores.shape != y.shape or not np.isfinite(scores).all():
                raise ValueError(f"decision_function returned shape {scores.shape} or non-finite scores; "
                                 f"expected {y.shape} finite scores")
            holdout = float(roc_auc_score(y, scores))
        else:
            pred = np.asarray(solution.predict(x.copy()))
            if pred.shape != y.shape:
                raise ValueError(f"predict returned shape {pred.shape}, expected {y.shape}")
            holdout = float((pred == y).mean())
        # The CV score of the chosen configuration, recomputed here: a method's own report is not used.
        cv = cv_score(config, data)
        return {"holdout_score": holdout, "cv_score": cv, "generalisation_gap": cv - holdout}
