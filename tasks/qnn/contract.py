"""The public contract of the ``qnn`` task: what a method receives and must return.

A method receives :class:`TrainData` as ``train`` (the training rows of one iris pair, features
scaled to [0, pi], labels 0/1) and the profile's simulator options as ``ctx.simulator``. It may
build an :class:`AerExecutor` for them with :func:`executor_for` and run :func:`ansatz` circuits on
it.

It returns a :class:`Classifier`: any object with ``predict(X, executor) -> int labels``. The
harness calls it in the scoring process through :func:`predict_on`, which builds the executor for
the run's profile next to the solution (cached per process and simulator options) and forks it
with the evaluation's shot seed, so the profile (exact, shots, noise) decides what the model can
achieve. :class:`CircuitClassifier` (a trained ansatz) and :class:`ConstantClassifier` are the
reference's and the floor's solutions.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping, Protocol, runtime_checkable

import numpy as np

N_QUBITS = 4
NOISE_SEED = 1234  # the "device" of aer-noisy: fixed, so every run and seed sees the same hardware
# Aer's OpenMP parallelism costs more than it saves on 4-qubit circuits: measured on 2 cores, a batch
# of 70 noisy 1024-shot circuits takes 0.12 s on one thread and 0.6 s on two.
AER_THREADS = 1
VARIANTS = {"iris01": (0, 1), "iris12": (1, 2)}  # variant -> the iris class ids behind labels 0 and 1


# ---------------------------------------------------------------- what the method gets


@dataclass(frozen=True)
class TrainData:
    """What the method sees: training rows only."""

    X: np.ndarray  # float[n, 4], scaled to [0, pi] with a scaler fitted on these rows
    y: np.ndarray  # int[n], 0/1
    classes: tuple[int, int]  # the iris class ids behind labels 0 and 1
    feature_names: tuple[str, ...]
    n_qubits: int = N_QUBITS


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

    Shot seeds come from a generator seeded by ``seed``: the k-th call runs with ``seed_simulator``
    the k-th draw of ``default_rng(seed).integers(2**31 - 1)``. Two executors with the same seed give
    the same values for the same sequence of calls, successive calls draw fresh shots, and qiskit-aer
    run by hand with that seed (``SamplerV2``, or ``AerSimulator`` with the noise model) gives the
    same counts (``tests/test_qnn.py`` checks both profiles so).
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


# ---------------------------------------------------------------- scoring, in the scoring process

_EXECUTORS: dict[tuple[tuple[str, Any], ...], AerExecutor] = {}


def _executor(simulator: Mapping[str, Any]) -> AerExecutor:
    """One executor per process and simulator options: compiled circuits are reused across calls."""
    key = tuple(sorted(dict(simulator).items()))
    if key not in _EXECUTORS:
        _EXECUTORS[key] = executor_for(dict(simulator))
    return _EXECUTORS[key]


def predict_on(solution: Any, X: np.ndarray, simulator: Mapping[str, Any], seed: int) -> np.ndarray:
    """``solution.predict(X, executor)`` on the profile's simulator, its shot seeds from ``seed``.

    Run by the harness in the scoring process (``handle.apply``), where the solution lives: the
    executor for ``simulator`` (the profile's options) is built there once and forked with ``seed``
    for each call, so the same solution always gets the same labels.
    """
    if not callable(getattr(solution, "predict", None)):
        raise TypeError(f"a qnn solution needs predict(X, executor); got {type(solution).__name__}")
    executor = _executor(simulator).fork(int(seed))
    return np.asarray(solution.predict(np.array(X, dtype=float), executor))
