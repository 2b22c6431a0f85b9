"""simclr — contrastive self-supervised representation learning, scored by a linear probe.

Data: scikit-learn's bundled ``load_digits`` (1797 images of 8×8 pixels, scaled to [0, 1]), split
70/30 stratified by the run seed. The method receives the training *images only*, with no labels:
whatever it learns is self-supervised. The task keeps the training labels and the test split.

Solution: any object with ``encode(images) -> features``, images as ``float32 (N, 1, 8, 8)``. The
task freezes it and scores the representation three ways, all on the test split:

* ``probe_acc``: multinomial logistic regression on the features with every training label;
* ``probe_acc_10_per_class``: the same probe with 10 labels per class (a seeded subset) — the few-label
  regime where a representation has to earn its keep: raw pixels reach 0.97 with every label but
  only about 0.91 with ten per class;
* ``knn_acc``: 5-nearest-neighbour accuracy in cosine distance with every training label.

Floors: a randomly initialised encoder (probe 0.96 / 0.87) and the raw pixels themselves
(method ``raw-pixels``), which SimCLR must beat in the few-label regime.

Targets: quick probe >= 0.96 with all labels and >= 0.92 with 10 per class; full >= 0.96 and >= 0.93.
The task list proposed 0.93 / 0.90 for quick, but measured here the *random* encoder already
reaches 0.98 / 0.90 on seed 0 (raw pixels 0.97 / 0.89), so those bars said nothing; the reference
reaches 0.99 / 0.95 after the quick budget's 40 epochs.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from advbench.spec import Budget, Metric, Target, TaskSpec
from advbench.task import Problem

LABELS_PER_CLASS = 10
TEST_FRACTION = 0.3

SPEC = TaskSpec(
    name="simclr",
    version=1,
    title="SimCLR contrastive pre-training (NT-Xent)",
    summary="Self-supervised encoder on digits; linear-probe accuracy with all labels and with 10 per class.",
    variants={"digits": "load_digits 8×8, 70/30 stratified split; the method sees training images only"},
    metrics=(
        Metric("probe_acc_10_per_class", "fraction", True, "linear probe trained on 10 labels per class"),
        Metric("probe_acc", "fraction", True, "linear probe trained on every training label"),
        Metric("knn_acc", "fraction", True, "5-NN accuracy, cosine distance, every training label"),
    ),
    primary_metric="probe_acc_10_per_class",
    targets=(
        Target("probe_acc", 0.96, "quick", "digits"),
        Target("probe_acc_10_per_class", 0.92, "quick", "digits"),
        Target("probe_acc", 0.96, "full", "digits"),
        Target("probe_acc_10_per_class", 0.93, "full", "digits"),
    ),
    budgets={
        "quick": Budget("quick", max_seconds=240, limits={"epochs": 40}, variants=("digits",)),
        "full": Budget("full", max_seconds=600, limits={"epochs": 200}, variants=("digits",)),
    },
    profiles=("cpu", "cuda"),
    throughput_unit="images/s",
    entry_point="advbench.tasks.simclr:SimCLRTask",
    solution="object with encode(images: float32[N, 1, 8, 8]) -> float array [N, d] (frozen features)",
    data="scikit-learn's bundled load_digits; the method gets unlabelled training images",
    extras=("vision",),
)


class Encoder(Protocol):
    def encode(self, images: np.ndarray) -> np.ndarray: ...


class SimCLRTask:
    def build(self, *, variant: str, seed: int, budget: Budget) -> Problem:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        images = (digits.images / 16.0).astype(np.float32)[:, None]
        x_tr, x_te, y_tr, y_te = train_test_split(images, digits.target, test_size=TEST_FRACTION,
                                                  stratify=digits.target, random_state=seed)
        rng = np.random.default_rng([seed, 3])
        few = np.concatenate([rng.choice(np.flatnonzero(y_tr == c), LABELS_PER_CLASS, replace=False)
                              for c in range(10)])
        return Problem(
            train=x_tr.copy(),  # images only: no labels reach the method
            heldout={"x_train": x_tr, "y_train": y_tr, "few": few, "x_test": x_te, "y_test": y_te},
            description={"train_images": len(x_tr), "test_images": len(x_te), "labels_per_class_few": LABELS_PER_CLASS},
        )

    def evaluate(self, solution: Encoder, problem: Problem, profile: Any) -> dict[str, float]:
        from sklearn.linear_model import LogisticRegression
        from sklearn.neighbors import KNeighborsClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        h = problem.heldout
        f_tr = np.asarray(solution.encode(h["x_train"].copy()), dtype=np.float64)
        f_te = np.asarray(solution.encode(h["x_test"].copy()), dtype=np.float64)

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
