"""simclr — contrastive self-supervised representation learning, scored by a linear probe.

Data: scikit-learn's bundled ``load_digits`` (1797 images of 8×8 pixels, scaled to [0, 1]), split
70/30 stratified by the run seed. The method receives the training *images only*, with no labels:
whatever it learns is self-supervised. The task keeps the training labels and the test split.

Solution: any object with ``encode(images) -> features``, images as ``float32 (N, 1, 8, 8)``. It
runs in the scoring process, which gets the training and test *images* only; the task freezes it,
fits the probes here, where the labels are, and scores the representation three ways, all on the
test split:

* ``probe_acc``: multinomial logistic regression on the features with every training label;
* ``probe_acc_10_per_class``: the same probe with 10 labels per class (a seeded subset) — the few-label
  regime where a representation has to earn its keep: raw pixels reach 0.97 with every label but
  only about 0.91 with ten per class;
* ``knn_acc``: 5-nearest-neighbour accuracy in cosine distance with every training label.

Scoring: the solution is code, asked only for ``encode(images)``. It runs in the jailed scoring
process, fresh for each evaluation of a sealed run, on the training and test images; the harness
fits the probes and computes the three accuracies from the plain features it returns. Its CPU in
one evaluation beyond 3x ``evaluation_cpu_seconds`` (1.0 s) is charged to training time; past 50x
the evaluation is refused. Throughput (images/s) is the method's own ``ctx.count``.

Floors: a randomly initialised encoder (probe 0.96 / 0.87) and the raw pixels themselves
(method ``raw-pixels``), which SimCLR must beat in the few-label regime.

Sealing: in a ``--sealed`` run the train/test split (scikit-learn's ``random_state``) and the
10-per-class probe subset (stream 3) come from the run's ``Seal``, so a method cannot recompute
them from ``ctx.seed``. It cannot hide the test images: digits is a public data set and the method
holds its training images, so the test images are the rest of scikit-learn's copy, and an encoder
could look any image (and so its label) up there whatever the seal.

Targets: quick probe >= 0.96 with all labels and >= 0.92 with 10 per class; full >= 0.96 and >= 0.93.
The task list proposed 0.93 / 0.90 for quick, but measured here the *random* encoder already
reaches 0.98 / 0.90 on seed 0 (raw pixels 0.97 / 0.89), so those bars said nothing; the reference
reaches 0.99 / 0.95 after the quick budget's 40 epochs.

Modules: ``contract`` (what a method imports: the ``Encoder`` protocol and the split constants) and
``heldout`` (the split, the labels and the probes; harness only).
"""

from __future__ import annotations

from advbench.spec import Budget, Metric, Target, TaskSpec

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
    entry_point="advbench.tasks.simclr.heldout:SimCLRTask",
    solution="object with encode(images: float32[N, 1, 8, 8]) -> float array [N, d] (frozen features)",
    data="scikit-learn's bundled load_digits; the method gets unlabelled training images",
    extras=("vision",),
)
