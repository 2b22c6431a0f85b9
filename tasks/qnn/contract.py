"""The public contract of the ``qnn`` task: what a method receives and must return.

A method receives :class:`TrainData` as ``train`` (the training rows of one iris pair, features
scaled to [0, pi], labels 0/1) and the profile's simulator options as ``ctx.simulator``. It may
build an :class:`AerExecutor` for them with :func:`executor_for` and run :func:`ansatz` circuits on
it.

It returns a :class:`Classifier`: any object whose ``circuit_data()`` returns the trained model as
plain data (see :func:`classifier_from_data`): an :func:`ansatz` with its weights, any circuit as
QPY bytes with its weights, or a constant label. The solution's code is asked for that and nothing
else. The harness rebuilds the classifier from the data and simulates it itself, in a clean
scoring process that never opened a solution (:func:`predict_on`), on the run's profile and with
the evaluation's shot seed: the profile (exact, shots, noise) decides what the model can achieve,
and a solution cannot swap the simulator. :class:`CircuitClassifier` (a trained ansatz) and
:class:`ConstantClassifier` are the reference's and the floor's solutions; their ``predict(X,
executor)`` is for a method's own use while training.
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
FEATURE_NAMES = ("sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)")  # iris's


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
    """What a method returns: the trained model as plain data (:func:`classifier_from_data` says
    which forms), so that the harness, not the solution, runs it on the profile's simulator."""

    def circuit_data(self) -> dict[str, Any]: ...


MAX_LAYERS = 32  # an ansatz deeper than this is refused (the reference uses 2)
MAX_QPY_BYTES = 1 << 20

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

    def circuit_data(self) -> dict[str, Any]:
        return {"kind": "ansatz", "n_qubits": self.n_qubits, "layers": self.layers,
                "weights": np.asarray(self.weights, dtype=float), "threshold": float(self.threshold),
                "readout": int(self.readout)}


@dataclass(frozen=True)
class QpyClassifier:
    """Any parametrised circuit (QPY bytes, ``qiskit.qpy.dump``) whose parameters are the features
    ``x[0..n_qubits)`` and weights ``w[...]`` (``ParameterVector("x")``, ``ParameterVector("w")``):
    label 1 when ⟨Z_readout⟩ < threshold."""

    qpy: bytes
    weights: tuple[float, ...]
    threshold: float = 0.0
    readout: int = 0

    def circuit(self):
        import io

        from qiskit import qpy

        if not isinstance(self.qpy, bytes) or len(self.qpy) > MAX_QPY_BYTES:
            raise ValueError(f"qnn: qpy must be at most {MAX_QPY_BYTES} bytes")
        circuits = qpy.load(io.BytesIO(self.qpy))
        if len(circuits) != 1:
            raise ValueError(f"qnn: the QPY data holds {len(circuits)} circuits, expected one")
        qc = circuits[0]
        if qc.num_qubits > N_QUBITS or qc.num_clbits:
            raise ValueError(f"qnn: a circuit must use at most {N_QUBITS} qubits and no classical bits")
        n_w = 0
        for p in qc.parameters:
            vector = getattr(p, "vector", None)
            if vector is None or vector.name not in ("x", "w") or (vector.name == "x" and p.index >= N_QUBITS):
                raise ValueError(f"qnn: circuit parameter {p.name!r} is not x[0..{N_QUBITS - 1}] or w[...]")
            if vector.name == "w":
                n_w = max(n_w, p.index + 1)
        if n_w > len(self.weights):
            raise ValueError(f"qnn: the circuit needs {n_w} weights, the data has {len(self.weights)}")
        return qc

    def predict(self, X: np.ndarray, executor: AerExecutor) -> np.ndarray:
        qc = self.circuit()
        values = parameter_values(qc, X, np.asarray(self.weights))
        return (executor.expect_z(qc, values, qubit=self.readout) < self.threshold).astype(np.int64)

    def circuit_data(self) -> dict[str, Any]:
        return {"kind": "qpy", "qpy": self.qpy, "weights": np.asarray(self.weights, dtype=float),
                "threshold": float(self.threshold), "readout": int(self.readout)}


@dataclass(frozen=True)
class ConstantClassifier:
    """Always the same label (the floor: the training majority class)."""

    label: int

    def predict(self, X: np.ndarray, executor: Any = None) -> np.ndarray:
        return np.full(len(X), self.label, dtype=np.int64)

    def circuit_data(self) -> dict[str, Any]:
        return {"kind": "constant", "label": int(self.label)}


# ---------------------------------------------------------------- scoring, in a clean scoring process


def _number(data: Mapping[str, Any], key: str, kind: type = float) -> Any:
    value = data.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"qnn: circuit_data()[{key!r}] must be a number, got {type(value).__name__}")
    if kind is int and value != int(value):
        raise ValueError(f"qnn: circuit_data()[{key!r}] must be an integer, got {value!r}")
    if not np.isfinite(value):
        raise ValueError(f"qnn: circuit_data()[{key!r}] is not finite")
    return kind(value)


def _weights(data: Mapping[str, Any]) -> tuple[float, ...]:
    w = np.asarray(data.get("weights", ()))
    if w.dtype.kind not in "iuf" or w.ndim > 1 or not np.isfinite(w).all():
        raise ValueError("qnn: circuit_data()['weights'] must be a finite 1-d array of numbers")
    return tuple(float(v) for v in w.reshape(-1))


def classifier_from_data(data: Any) -> "CircuitClassifier | QpyClassifier | ConstantClassifier":
    """The classifier a solution's ``circuit_data()`` describes, checked. The forms:

    * ``{"kind": "ansatz", "n_qubits": 4, "layers": L, "weights": float[2 L n_qubits],
      "threshold": t, "readout": q}``: :func:`ansatz` (``L`` ≤ ``MAX_LAYERS``);
    * ``{"kind": "qpy", "qpy": bytes, "weights": float[...], "threshold": t, "readout": q}``: any
      circuit of at most ``N_QUBITS`` qubits over ``x[i]`` and ``w[j]`` (:class:`QpyClassifier`);
    * ``{"kind": "constant", "label": 0 or 1}``.
    """
    if not isinstance(data, dict) or data.get("kind") not in ("ansatz", "qpy", "constant"):
        raise TypeError("qnn: circuit_data() must return a dict with kind 'ansatz', 'qpy' or 'constant'")
    if data["kind"] == "constant":
        label = _number(data, "label", int)
        if label not in (0, 1):
            raise ValueError(f"qnn: a constant label must be 0 or 1, got {label}")
        return ConstantClassifier(label)
    readout, threshold = _number(data, "readout", int), _number(data, "threshold")
    if not 0 <= readout < N_QUBITS:
        raise ValueError(f"qnn: readout qubit {readout} is not in 0..{N_QUBITS - 1}")
    if data["kind"] == "qpy":
        return QpyClassifier(data.get("qpy"), _weights(data), threshold, readout)
    n_qubits, layers = _number(data, "n_qubits", int), _number(data, "layers", int)
    if n_qubits != N_QUBITS or not 1 <= layers <= MAX_LAYERS:
        raise ValueError(f"qnn: an ansatz needs n_qubits {N_QUBITS} and 1..{MAX_LAYERS} layers")
    return CircuitClassifier(n_qubits, layers, _weights(data), threshold, readout)


_EXECUTORS: dict[tuple[tuple[str, Any], ...], AerExecutor] = {}


def _executor(simulator: Mapping[str, Any]) -> AerExecutor:
    """One executor per process and simulator options: compiled circuits are reused across calls."""
    key = tuple(sorted(dict(simulator).items()))
    if key not in _EXECUTORS:
        _EXECUTORS[key] = executor_for(dict(simulator))
    return _EXECUTORS[key]


def predict_on(data: Any, X: np.ndarray, simulator: Mapping[str, Any], seed: int) -> np.ndarray:
    """Labels of ``X`` by the classifier ``data`` describes, on the profile's simulator, its shot
    seeds from ``seed``: what the harness scores. Run in the clean scoring process
    (``handle.compute``): the executor for ``simulator`` is built there once and forked with
    ``seed`` for each call, so the same solution always gets the same labels."""
    model = classifier_from_data(data)
    executor = _executor(simulator).fork(int(seed))
    return np.asarray(model.predict(np.array(X, dtype=float), executor), dtype=np.int64)
