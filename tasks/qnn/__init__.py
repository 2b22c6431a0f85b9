"""qnn — a variational quantum classifier trained and scored on simulated hardware (qiskit-aer).

Data: scikit-learn's bundled iris, two classes at a time: ``iris01`` (setosa vs versicolor, linearly
separable, easy) and ``iris12`` (versicolor vs virginica, overlapping, harder). 100 rows per variant;
a stratified split seeded by the run seed keeps 30 % (30 rows) as held-out test data. The four
features are scaled to [0, pi] by a min-max scaler fitted on the training rows only (test rows may
land slightly outside). Labels are 0/1: the first class of the pair is 0.

Sealing: in a ``--sealed`` run the split's ``random_state`` and the shot seeds of the evaluation
come from the run's ``Seal`` (unsealed: the run seed and ``default_rng([seed, 2])``, as before), so
a method cannot tell from ``ctx.seed`` which rows are held out. That is all it can do: iris is
public, so a method could still look its training rows up in scikit-learn's copy and infer the
other 30 rows of the pair and their labels. Scores on this task rest on the method playing fair.

The method gets :class:`~.contract.TrainData` (training rows only, and the simulator it should train
on through ``ctx.simulator``); the test rows stay in the harness (``heldout.Heldout``). The method
returns a :class:`~.contract.Classifier`: any object whose ``circuit_data()`` gives its model as
plain data (an ansatz and its weights, any circuit as QPY bytes and its weights, or a constant
label; ``contract.classifier_from_data``). That call is the only solution code the harness runs.
The harness rebuilds the classifier from the data and simulates it itself, in a clean scoring
process that never opened a solution (``contract.predict_on``, with an
:class:`~.contract.AerExecutor` for the run's profile), so held-out accuracy is measured on the
profile's simulator and a solution cannot swap it: exact expectations (``aer-statevector``), 1024
seeded shots (``aer-shots``), or 1024 shots on a density-matrix simulator with the noise model of
``GenericBackendV2(4, seed=NOISE_SEED)`` (``aer-noisy``). Only feature rows are sent; labels stay
in the harness. The reference solution, :class:`~.contract.CircuitClassifier`, is "a circuit with
parameters": the ansatz shape (qubits, layers) and the trained weight vector; the floor,
:class:`~.contract.ConstantClassifier`, always says the training majority class.

Ansatz (:func:`~.contract.ansatz`): per layer, angle encoding RY(x_q) on qubit q (data re-uploading: the
features go in again in every layer), then trainable RY, RZ on every qubit and a CX chain towards the
readout qubit, CX(3,2) CX(2,1) CX(1,0). Readout ⟨Z0⟩; label 1 when ⟨Z0⟩ < 0. (A chain the other
way, CX(0,1) CX(1,2) CX(2,3), leaves ⟨Z0⟩ a function of feature 0 alone, because Z on a control
commutes with CX: measured iris01 test 0.80-0.90 with it.)

Metrics: ``accuracy`` on the held-out rows (primary), ``train_accuracy`` on the training rows (both
measured on the profile's simulator). Throughput: circuit executions (one feature row bound to one
weight vector) per training second, as the method counts them.

Targets and budgets, measured with the reference (``baselines/qnn.py``: 2 layers, MSE on ⟨Z0⟩,
COBYLA) on ``aer-statevector``, held-out accuracy for seeds 0-9:

* quick, 150 evaluations, ``iris01`` >= 0.95: 1.00 1.00 .97 .97 1.00 .93 1.00 1.00 .97 .97 (~3-4 s).
  Seed 5 misses by one test row (28 of 30); 300 evaluations do not change that, so the quick budget
  stays at 150.
* full, 300 evaluations, ``iris12`` >= 0.90: .90 1.00 .93 .93 .97 .93 .90 .97 .90 .87 (mean 0.93,
  ~5 s); ``iris01`` >= 0.95: .97 1.00 .97 .97 1.00 .93 1.00 1.00 1.00 1.00.

With 30 test rows one row is 3.3 points, so the thresholds sit one row under the typical score; the
reference meets each on 9 of 10 seeds. Time caps (120 s quick, 600 s full) leave room for the slower
profiles: on 2 cores the full budget takes ~35 s on ``aer-shots`` and ~55-75 s on ``aer-noisy``.

Cross-profile bar, which no single run can check (a target is per run): on ``aer-noisy`` the
accuracy stays within 10 points of ``aer-statevector`` for the same variant, seed and budget
(seed 0, full: iris01 0.97 vs 0.97, iris12 0.93 vs 0.90). ``tests/test_qnn.py`` checks it on weights
trained on exact expectations and scored on both profiles.

Modules: ``contract`` (the data type a method gets, the ansatz, the executor, the solution types,
``classifier_from_data``, ``predict_on``; what a method imports) and ``heldout`` (the split and the scoring; harness only).
"""

from __future__ import annotations

from advbench.spec import Budget, Metric, Target, TaskSpec

SPEC = TaskSpec(
    name="qnn",
    version=1,
    title="Variational quantum classifier on simulated hardware",
    summary="4-qubit data re-uploading classifier on two iris classes, scored on exact, shot and noisy Aer.",
    variants={
        "iris01": "iris setosa vs versicolor (separable, easy)",
        "iris12": "iris versicolor vs virginica (overlapping, harder)",
    },
    metrics=(
        Metric("accuracy", "fraction", True, "share of held-out rows classified correctly, on the profile's simulator"),
        Metric("train_accuracy", "fraction", True, "share of training rows classified correctly"),
    ),
    primary_metric="accuracy",
    targets=(
        Target("accuracy", 0.95, "quick", "iris01"),
        Target("accuracy", 0.95, "full", "iris01"),
        Target("accuracy", 0.90, "full", "iris12"),
    ),
    budgets={
        "quick": Budget("quick", max_seconds=120, limits={"evaluations": 150}, variants=("iris01",)),
        "full": Budget("full", max_seconds=600, limits={"evaluations": 300}, variants=("iris01", "iris12")),
    },
    profiles=("aer-statevector", "aer-shots", "aer-noisy"),
    throughput_unit="circuits/s",
    entry_point="advbench.tasks.qnn.heldout:QNNTask",
    solution_data=("circuit_data",),
    solution="object with circuit_data() -> plain dict: an ansatz or QPY circuit and its weights, or a constant "
             "label (contract.classifier_from_data); the harness simulates it",
    data="sklearn load_iris, two classes; stratified 70/30 split seeded by the run; features min-max to [0, pi]",
    extras=("quantum",),
)
