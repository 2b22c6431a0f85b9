"""qnn — a variational quantum classifier trained and scored on simulated hardware (qiskit-aer).

Data: scikit-learn's bundled iris, two classes at a time: ``iris01`` (setosa vs versicolor, linearly
separable, easy) and ``iris12`` (versicolor vs virginica, overlapping, harder). 100 rows per variant;
a stratified split seeded by the run seed keeps 30 % (30 rows) as held-out test data. The four
features are scaled to [0, pi] by a min-max scaler fitted on the training rows only (test rows may
land slightly outside). Labels are 0/1: the first class of the pair is 0.

The method gets :class:`TrainData` (training rows only, and the simulator it should train on through
``ctx.simulator``); the test rows stay in :class:`Heldout`. The method returns a :class:`Classifier`:
any object with ``predict(X, executor) -> labels``. The *task* hands it an :class:`AerExecutor` for
the run's profile, so held-out accuracy is measured on the profile's simulator: exact expectations
(``aer-statevector``), 1024 seeded shots (``aer-shots``), or 1024 shots on a density-matrix
simulator with the noise model of ``GenericBackendV2(4, seed=NOISE_SEED)`` (``aer-noisy``). The
reference solution, :class:`CircuitClassifier`, is "a circuit with parameters": the ansatz shape
(qubits, layers) and the trained weight vector; the floor, :class:`ConstantClassifier`, always says
the training majority class.

Ansatz (:func:`ansatz`): per layer, angle encoding RY(x_q) on qubit q (data re-uploading: the
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
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping, NamedTuple, Protocol, runtime_checkable

import numpy as np

from advbench.spec import Budget, Metric, Target, TaskSpec
from advbench.task import Problem

N_QUBITS = 4
TEST_FRACTION = 0.3
NOISE_SEED = 1234  # the "device" of aer-noisy: fixed, so every run and seed sees the same hardware
# Aer's OpenMP parallelism costs more than it saves on 4-qubit circuits: measured on 2 cores, a batch
# of 70 noisy 1024-shot circuits takes 0.12 s on one thread and 0.6 s on two.
AER_THREADS = 1
VARIANTS = {"iris01": (0, 1), "iris12": (1, 2)}

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
    entry_point="advbench.tasks.qnn:QNNTask",
    solution="object with predict(X: float[n, 4], executor: AerExecutor) -> int[n] labels in {0, 1}",
    data="sklearn load_iris, two classes; stratified 70/30 split seeded by the run; features min-max to [0, pi]",
    extras=("quantum",),
)


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class TrainData:
    """What the method sees: training rows only."""

    X: np.ndarray  # float[n, 4], scaled to [0, pi] with a scaler fitted on these rows
    y: np.ndarray  # int[n], 0/1
    classes: tuple[int, int]  # the iris class ids behind labels 0 and 1
    feature_names: tuple[str, ...]
    n_qubits: int = N_QUBITS


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


def load_variant(variant: str, seed: int, test_fraction: float = TEST_FRACTION) -> Split:
    """The variant's two classes, split (stratified, seeded) and scaled with the training rows only."""
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import MinMaxScaler

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
    a, b = VARIANTS[variant]
    iris = load_iris()
    rows = np.flatnonzero(np.isin(iris.target, (a, b)))
    y = (iris.target[rows] == b).astype(np.int64)
    idx_tr, idx_te = train_test_split(rows, test_size=test_fraction, stratify=y, random_state=seed)
    scaler = MinMaxScaler(feature_range=(0.0, np.pi)).fit(iris.data[idx_tr])  # training rows only
    return Split(scaler.transform(iris.data[idx_tr]), (iris.target[idx_tr] == b).astype(np.int64),
                 scaler.transform(iris.data[idx_te]), (iris.target[idx_te] == b).astype(np.int64),
                 idx_tr, idx_te, tuple(iris.feature_names))


# ---------------------------------------------------------------- the simulator of a profile


@lru_cache(maxsize=None)
def _backend(method: str, noise: str | None, n_qubits: int, threads: int):
    """``(AerSimulator, pass manager)`` for one profile; built once per process (noisy: ~0.4 s)."""
    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit_aer import AerSimulator

    if noise is None:
        sim = AerSimulator(method=method, max_parallel_threads=threads)
    elif noise == "GenericBackendV2":
        from qiskit.providers.fake_provider import GenericBackendV2

        device = GenericBackendV2(num_qubits=n_qubits, seed=NOISE_SEED)
        sim = AerSimulator.from_backend(device, method=method, max_parallel_threads=threads)
    else:
        raise ValueError(f"unknown noise model {noise!r}")
    # One transpilation per circuit shape, never per sample: the parameters stay free in the ISA
    # circuit and every batch binds a 2-D array of values to it.
    pm = generate_preset_pass_manager(optimization_level=1, backend=sim, seed_transpiler=0)
    return sim, pm


class AerExecutor:
    """Runs batches of bindings of one parametrised circuit on a profile's Aer simulator.

    ``expect_z(circuit, values, qubit)`` returns ⟨Z_qubit⟩ for every row of ``values`` (one row per
    circuit execution, columns in ``circuit.parameters`` order). The circuit is transpiled once for
    the simulator (cached by object identity) and every call is a single Aer job:

    * ``shots is None`` (``aer-statevector``): qiskit-aer's ``EstimatorV2`` at precision 0, i.e. the
      exact expectation from the statevector (its ``precision`` option adds Gaussian noise to that
      exact value; it is not shot sampling, so the shot profiles do not use it);
    * otherwise: qubit ``qubit`` is measured ``shots`` times per row and ⟨Z⟩ = (n0 - n1) / shots.
      With a noise model this includes gate and readout errors.

    Shot seeds come from a generator seeded by ``seed``: two executors with the same seed give the
    same values for the same sequence of calls, and successive calls draw fresh shots.
    ``circuits`` counts the executions run so far.
    """

    def __init__(self, simulator: Mapping[str, Any], *, seed: int = 0, n_qubits: int = N_QUBITS,
                 threads: int = AER_THREADS) -> None:
        self.simulator = dict(simulator)
        self.method = self.simulator.get("method", "statevector")
        self.shots = self.simulator.get("shots")
        self.noise = self.simulator.get("noise")
        self.n_qubits = n_qubits
        self.threads = threads
        self.seed = seed
        self.circuits = 0
        self._rng = np.random.default_rng(seed)
        self._compiled: dict[tuple[int, int], tuple[Any, ...]] = {}
        self._estimator = None

    @property
    def exact(self) -> bool:
        return self.shots is None and self.noise is None

    def fork(self, seed: int) -> "AerExecutor":
        """Same simulator and compiled circuits, fresh shot seeds from ``seed``."""
        twin = object.__new__(AerExecutor)
        twin.__dict__.update(self.__dict__)
        twin.seed, twin.circuits, twin._rng = seed, 0, np.random.default_rng(seed)
        return twin

    def _compile(self, circuit, qubit: int):
        key = (id(circuit), qubit)
        if key not in self._compiled:
            from qiskit import ClassicalRegister
            from qiskit.quantum_info import SparsePauliOp

            _, pm = _backend(self.method, self.noise, self.n_qubits, self.threads)
            if self.exact:
                isa = pm.run(circuit)
                obs = SparsePauliOp.from_sparse_list([("Z", [qubit], 1.0)], circuit.num_qubits)
                obs = obs.apply_layout(isa.layout)
            else:
                measured = circuit.copy()
                creg = ClassicalRegister(1, "readout")
                measured.add_register(creg)
                measured.measure(qubit, creg[0])
                isa, obs = pm.run(measured), None
            # Columns of the caller's values (circuit.parameters order) for each ISA parameter.
            position = {p.name: i for i, p in enumerate(circuit.parameters)}
            order = np.array([position[p.name] for p in isa.parameters], dtype=np.int64)
            # Keep ``circuit`` alive so that its id is not reused by another object.
            self._compiled[key] = (circuit, isa, obs, order)
        return self._compiled[key][1:]

    def expect_z(self, circuit, values: np.ndarray, qubit: int = 0) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        if values.ndim == 1:
            values = values[None, :]
        if values.shape[1] != circuit.num_parameters:
            raise ValueError(f"values has {values.shape[1]} columns, the circuit {circuit.num_parameters} parameters")
        n = values.shape[0]
        isa, obs, order = self._compile(circuit, qubit)
        self.circuits += n
        if n == 0:
            return np.zeros(0)
        bound = values[:, order]
        if self.exact:
            if self._estimator is None:
                from qiskit_aer.primitives import EstimatorV2

                self._estimator = EstimatorV2(
                    options={"backend_options": {"method": self.method, "max_parallel_threads": self.threads}})
            return np.asarray(self._estimator.run([(isa, obs, bound)]).result()[0].data.evs, dtype=float).reshape(n)
        sim, _ = _backend(self.method, self.noise, self.n_qubits, self.threads)
        seed = int(self._rng.integers(2**31 - 1))
        if isa.num_parameters:
            binds = [{p: bound[:, j] for j, p in enumerate(isa.parameters)}]
            result = sim.run(isa, parameter_binds=binds, shots=self.shots, seed_simulator=seed).result()
        else:
            result = sim.run([isa] * n, shots=self.shots, seed_simulator=seed).result()
        out = np.empty(n)
        for i in range(n):
            counts = result.get_counts(i)
            out[i] = (counts.get("0", 0) - counts.get("1", 0)) / self.shots
        return out


def executor_for(simulator: Mapping[str, Any] | Any, seed: int = 0, n_qubits: int = N_QUBITS) -> AerExecutor:
    """An executor for a profile (or its ``simulator`` dict, e.g. ``ctx.simulator``)."""
    if hasattr(simulator, "simulator"):
        simulator = simulator.simulator
    return AerExecutor(simulator, seed=seed, n_qubits=n_qubits)


# ---------------------------------------------------------------- the circuit and the solutions


@lru_cache(maxsize=None)
def ansatz(n_qubits: int = N_QUBITS, layers: int = 2):
    """The data re-uploading circuit: parameters ``x[0..n_qubits)`` (features) and ``w[...]``.

    Layer l: RY(x[q]) on every qubit q, then RY(w[2k]) RZ(w[2k+1]) on qubit q with
    k = l * n_qubits + q, then the CX chain CX(n-1,n-2) ... CX(2,1) CX(1,0). Cached: the same object for the same
    shape, so an executor transpiles it once.
    """
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector

    x = ParameterVector("x", n_qubits)
    w = ParameterVector("w", 2 * layers * n_qubits)
    qc = QuantumCircuit(n_qubits, name=f"reupload_{n_qubits}q{layers}l")
    for layer in range(layers):
        for q in range(n_qubits):
            qc.ry(x[q], q)
        for q in range(n_qubits):
            k = layer * n_qubits + q
            qc.ry(w[2 * k], q)
            qc.rz(w[2 * k + 1], q)
        # The chain runs *towards* the readout qubit: CX(3,2) CX(2,1) CX(1,0). Run the other way
        # (CX(0,1) CX(1,2) ...) it never changes ⟨Z0⟩, because Z on a control commutes with CX, and
        # the classifier would see feature 0 only (measured: iris01 test 0.80-0.90).
        for q in reversed(range(n_qubits - 1)):
            qc.cx(q + 1, q)
    return qc


def parameter_values(circuit, X: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """One row per sample, columns in ``circuit.parameters`` order (features ``x``, weights ``w``)."""
    X = np.atleast_2d(np.asarray(X, dtype=float))
    weights = np.asarray(weights, dtype=float).reshape(-1)
    values = np.empty((X.shape[0], circuit.num_parameters))
    for j, p in enumerate(circuit.parameters):
        vector, index = p.vector.name, p.index
        values[:, j] = X[:, index] if vector == "x" else weights[index]
    return values


@runtime_checkable
class Classifier(Protocol):
    """What a method returns: labels (0/1) for feature rows, computed on the executor it is handed.

    The executor is the task's, for the run's profile; a quantum model should run its circuits on
    it so that the profile (exact, shots, noise) decides what the model can achieve.
    """

    def predict(self, X: np.ndarray, executor: AerExecutor) -> np.ndarray: ...


@dataclass(frozen=True)
class CircuitClassifier:
    """A trained :func:`ansatz`: label 1 when ⟨Z_readout⟩ < threshold."""

    n_qubits: int
    layers: int
    weights: tuple[float, ...]
    threshold: float = 0.0
    readout: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "weights", tuple(float(v) for v in np.asarray(self.weights).reshape(-1)))
        expected = 2 * self.layers * self.n_qubits
        if len(self.weights) != expected:
            raise ValueError(f"{len(self.weights)} weights for {self.layers} layers on {self.n_qubits} qubits, expected {expected}")

    def circuit(self):
        return ansatz(self.n_qubits, self.layers)

    def expectations(self, X: np.ndarray, executor: AerExecutor) -> np.ndarray:
        qc = self.circuit()
        return executor.expect_z(qc, parameter_values(qc, X, np.asarray(self.weights)), qubit=self.readout)

    def predict(self, X: np.ndarray, executor: AerExecutor) -> np.ndarray:
        return (self.expectations(X, executor) < self.threshold).astype(np.int64)


@dataclass(frozen=True)
class ConstantClassifier:
    """Always the same label (the floor: the training majority class)."""

    label: int

    def predict(self, X: np.ndarray, executor: Any = None) -> np.ndarray:
        return np.full(len(X), self.label, dtype=np.int64)


# ---------------------------------------------------------------- the task


class QNNTask:
    def __init__(self) -> None:
        self._executors: dict[tuple[str, Any], AerExecutor] = {}

    def build(self, *, variant: str, seed: int, budget: Budget) -> Problem:
        X_tr, y_tr, X_te, y_te, _, _, names = load_variant(variant, seed)
        a, b = VARIANTS[variant]
        return Problem(
            train=TrainData(X=X_tr, y=y_tr, classes=(a, b), feature_names=names),
            heldout=Heldout(X=X_te, y=y_te, seed=int(np.random.default_rng([seed, 2]).integers(2**31 - 1))),
            description={"variant": variant, "source": "sklearn.datasets.load_iris", "classes": [a, b],
                         "train": int(len(y_tr)), "test": int(len(y_te)),
                         "train_class_counts": np.bincount(y_tr, minlength=2).tolist(),
                         "test_class_counts": np.bincount(y_te, minlength=2).tolist(),
                         "feature_range": [0.0, float(np.pi)], "n_qubits": N_QUBITS,
                         "noise_backend": f"GenericBackendV2({N_QUBITS}, seed={NOISE_SEED})",
                         "aer_threads": AER_THREADS},
        )

    def _executor(self, profile: Any) -> AerExecutor:
        sim = getattr(profile, "simulator", profile)
        key = (getattr(profile, "name", None), tuple(sorted(dict(sim).items())))
        if key not in self._executors:
            self._executors[key] = executor_for(sim)
        return self._executors[key]

    def _accuracy(self, solution: Any, X: np.ndarray, y: np.ndarray, executor: AerExecutor) -> float:
        labels = np.asarray(solution.predict(X.copy(), executor)).reshape(-1)
        if labels.shape != y.shape:
            raise ValueError(f"predict returned {labels.shape[0]} labels for {y.shape[0]} rows")
        return float(np.mean(labels == y))

    def evaluate(self, solution: Any, problem: Problem, profile: Any) -> dict[str, float]:
        if not callable(getattr(solution, "predict", None)):
            raise TypeError(f"a qnn solution needs predict(X, executor); got {type(solution).__name__}")
        train, heldout = problem.train, problem.heldout
        base = self._executor(profile)
        # Fixed seeds per evaluation: the same solution always gets the same score on a profile.
        return {
            "accuracy": self._accuracy(solution, heldout.X, heldout.y, base.fork(heldout.seed)),
            "train_accuracy": self._accuracy(solution, train.X, train.y, base.fork(heldout.seed + 1)),
        }
