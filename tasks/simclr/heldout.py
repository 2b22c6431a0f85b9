"""The held-out side of the ``simclr`` task: the split, the labels and the probes (harness only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from advbench.spec import Budget
from advbench.task import Problem, Seal
from advbench.tasks.simclr.contract import LABELS_PER_CLASS, TEST_FRACTION

if TYPE_CHECKING:
    from advbench.profiles import Profile
    from advbench.solution import SolutionHandle


def split(seal: Seal) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, x_test, y_train, y_test, few)``: the glyph digits made under the seal
    (``advbench.glyphs``), split stratified, and the few-label subset (stream 3 of the seal)."""
    from advbench.glyphs import glyph_split

    train, test = glyph_split(seal, test_fraction=TEST_FRACTION, images=True)
    rng = seal.rng(3)
    few = np.concatenate([rng.choice(np.flatnonzero(train.y == c), LABELS_PER_CLASS, replace=False)
                          for c in range(10)])
    return train.x, test.x, train.y, test.y, few


def _features(out: object, n: int, what: str) -> np.ndarray:
    """What ``encode`` sent back, checked: ``n`` rows of finite numbers, as float64."""
    f = np.asarray(out)
    if f.dtype == np.bool_ or not np.issubdtype(f.dtype, np.number) or np.issubdtype(f.dtype, np.complexfloating):
        raise TypeError(f"encode returned an array of {f.dtype} for the {what} images; expected real numbers")
    if f.ndim != 2 or f.shape[0] != n or f.shape[1] == 0:
        raise ValueError(f"encode returned shape {f.shape} for {n} {what} images; expected ({n}, d)")
    f = f.astype(np.float64)
    if not np.isfinite(f).all():
        raise ValueError(f"encode returned NaN or infinite features for the {what} images")
    return f


class SimCLRTask:
    def build(self, *, variant: str, seed: int, budget: Budget, seal: Seal) -> Problem:
        x_tr, x_te, y_tr, y_te, few = split(seal)
        return Problem(
            train=x_tr.copy(),  # images only: no labels reach the method
            heldout={"x_train": x_tr, "y_train": y_tr, "few": few, "x_test": x_te, "y_test": y_te},
            description={"train_images": len(x_tr), "test_images": len(x_te), "labels_per_class_few": LABELS_PER_CLASS},
        )

    def evaluate(self, solution: "SolutionHandle", problem: Problem, profile: "Profile") -> dict[str, float]:
        from sklearn.linear_model import LogisticRegression
        from sklearn.neighbors import KNeighborsClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        h = problem.heldout
        f_tr = _features(solution.encode(h["x_train"].copy()), len(h["x_train"]), "training")
        f_te = _features(solution.encode(h["x_test"].copy()), len(h["x_test"]), "test")
        if f_tr.shape[1] != f_te.shape[1]:
            raise ValueError(f"encode returned {f_tr.shape[1]} features for the training images "
                             f"but {f_te.shape[1]} for the test images")

        def probe(idx: np.ndarray) -> float:
            clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000, C=1.0))
            clf.fit(f_tr[idx], h["y_train"][idx])
            return float(clf.score(f_te, h["y_test"]))

        unit = lambda f: f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)  # noqa: E731
        knn = KNeighborsClassifier(n_neighbors=5).fit(unit(f_tr), h["y_train"])
        return {
            "probe_acc": probe(np.arange(len(f_tr))),
            "probe_acc_10_per_class": probe(h["few"]),
            "knn_acc": float(knn.score(unit(f_te), h["y_test"])),
        }
