"""qnn: the circuit against qiskit's own estimator, the shot profile against qiskit-aer's SamplerV2, the
noisy profile against its noise model run by hand on Aer's density-matrix simulator, the targets,
integrity."""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("qiskit_aer")
pytest.importorskip("sklearn")

from advbench.context import RunContext  # noqa: E402
from advbench.profiles import get_profile  # noqa: E402
from advbench.runner import run  # noqa: E402
from advbench.solution import LocalSolution, SolutionError, local_handle  # noqa: E402
from advbench.spec import Budget  # noqa: E402
from advbench.task import Seal  # noqa: E402
from advbench.tasks.qnn import SPEC  # noqa: E402
from advbench.tasks.qnn.contract import (  # noqa: E402
    CircuitClassifier,
    Classifier,
    ConstantClassifier,
    VARIANTS,
    TrainData,
    ansatz,
    executor_for,
    parameter_values,
    predict_on,
)
from advbench.tasks.qnn.heldout import Heldout, QNNTask, load_variant  # noqa: E402

EXACT = get_profile("aer-statevector")
SHOTS = get_profile("aer-shots")
NOISY = get_profile("aer-noisy")


def random_values(seed: int, rows: int, layers: int = 2):
    """Features in [0, pi] and one weight vector in [-pi, pi], as circuit.parameters-ordered rows."""
    rng = np.random.default_rng(seed)
    qc = ansatz(4, layers)
    X = rng.uniform(0, np.pi, (rows, 4))
    w = rng.uniform(-np.pi, np.pi, 2 * layers * 4)
    return qc, X, w, parameter_values(qc, X, w)


def test_spec_imports_no_qiskit_or_sklearn():
    code = ("import sys, advbench.tasks.qnn as m; assert m.SPEC.name == 'qnn'; "
            "heavy = [k for k in ('qiskit', 'qiskit_aer', 'sklearn', 'scipy') if k in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_parameter_values_follow_circuit_parameter_order():
    qc, X, w, values = random_values(0, 3)
    for j, p in enumerate(qc.parameters):
        expected = X[:, p.index] if p.vector.name == "x" else np.full(3, w[p.index])
        np.testing.assert_array_equal(values[:, j], expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_profile_matches_qiskit_statevector_estimator(seed):
    """The task's and baseline's exact expectations equal qiskit's reference estimator to 1e-9."""
    from qiskit.primitives import StatevectorEstimator
    from qiskit.quantum_info import SparsePauliOp

    qc, X, w, values = random_values(seed, 8)
    ours = CircuitClassifier(4, 2, tuple(w)).expectations(X, executor_for(EXACT))
    z0 = SparsePauliOp("IIIZ")  # qiskit is little-endian: the last letter is qubit 0
    peer = StatevectorEstimator().run([(qc, z0, values)]).result()[0].data.evs
    np.testing.assert_allclose(ours, peer, rtol=0, atol=1e-9)
    assert np.ptp(ours) > 0.1  # not trivially constant


def test_batched_equals_one_at_a_time():
    qc, X, w, values = random_values(3, 12)
    ex = executor_for(EXACT)
    batched = ex.expect_z(qc, values)
    single = np.array([ex.expect_z(qc, row)[0] for row in values])
    np.testing.assert_allclose(batched, single, rtol=0, atol=1e-12)
    assert ex.circuits == 24


def test_shots_within_sampling_error_and_reproducible():
    qc, X, w, values = random_values(4, 40)
    exact = executor_for(EXACT).expect_z(qc, values)
    a = executor_for(SHOTS, seed=7).expect_z(qc, values)
    b = executor_for(SHOTS, seed=7).expect_z(qc, values)
    c = executor_for(SHOTS, seed=8).expect_z(qc, values)
    np.testing.assert_array_equal(a, b)  # same seed, same shots
    assert not np.array_equal(a, c)
    shots = SHOTS.simulator["shots"]
    assert np.all(np.abs(a * shots - np.round(a * shots)) < 1e-9)  # multiples of 1/shots: real counts
    sigma = np.sqrt(np.maximum(1 - exact**2, 1e-3) / shots)  # std of the mean of +-1 outcomes
    assert np.all(np.abs(a - exact) < 5 * sigma + 1e-9)
    assert np.abs(a - exact).max() > 0  # it does sample
    # Successive calls draw fresh shots; a fork with the same seed replays them.
    ex = executor_for(SHOTS, seed=7)
    first, second = ex.expect_z(qc, values), ex.expect_z(qc, values)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(ex.fork(7).expect_z(qc, values), first)


def _measured(qc):
    """The circuit the shot profiles run: ``qc`` with its readout qubit 0 measured into one bit."""
    from qiskit import ClassicalRegister

    measured = qc.copy()
    creg = ClassicalRegister(1, "readout")
    measured.add_register(creg)
    measured.measure(0, creg[0])
    return measured


def _z_from_counts(counts: list[dict[str, int]], shots: int) -> np.ndarray:
    return np.array([(c.get("0", 0) - c.get("1", 0)) / shots for c in counts])


def _binomial_se(z: np.ndarray, shots: int) -> np.ndarray:
    """Standard error of a ``shots``-shot estimate of ⟨Z⟩ = z (the mean of +-1 outcomes)."""
    return np.sqrt(np.maximum(1 - z**2, 1e-3) / shots)


@pytest.mark.parametrize("seed", [7, 123])
def test_shot_profile_equals_qiskit_aer_sampler_v2_with_the_same_seed(seed):
    """Peer: qiskit-aer's SamplerV2 on the identical circuit (the ansatz, qubit 0 measured) and
    values, the profile's 1024 shots and method. The seeds can be matched: the executor takes the
    ``seed_simulator`` of its k-th call from the k-th draw of ``default_rng(seed).integers(2**31 -
    1)`` (its shot-seed stream), so the counts must be equal row for row, not only within sampling
    error. (Measured: equal on every row of both calls, for both seeds; a sampler one seed off
    differs, so the equality is not vacuous.)"""
    from qiskit_aer.primitives import SamplerV2

    assert SHOTS.simulator == {"method": "statevector", "shots": 1024, "noise": None}
    shots = SHOTS.simulator["shots"]
    qc, X, w, values = random_values(seed, 16)
    ex = executor_for(SHOTS, seed=seed)
    ours = [ex.expect_z(qc, values), ex.expect_z(qc, values)]  # two calls, two shot seeds
    assert not np.array_equal(ours[0], ours[1])
    measured = _measured(qc)

    def sampler_counts(aer_seed: int) -> list[dict[str, int]]:
        sampler = SamplerV2(seed=aer_seed, default_shots=shots, options={"backend_options": {
            "method": SHOTS.simulator["method"], "max_parallel_threads": 1}})
        bits = sampler.run([(measured, values)]).result()[0].data.readout
        return [bits.get_counts(i) for i in range(len(values))]

    stream = np.random.default_rng(seed)
    for call in ours:
        aer_seed = int(stream.integers(2**31 - 1))
        peer = sampler_counts(aer_seed)
        assert all(sum(c.values()) == shots for c in peer)
        # Counts of |0>, ours recovered from ⟨Z⟩ = (n0 - n1) / shots, and the peer's.
        np.testing.assert_array_equal(np.rint((1 + call) * shots / 2), [c.get("0", 0) for c in peer])
        np.testing.assert_array_equal(call, _z_from_counts(peer, shots))
    assert not np.array_equal(ours[0], _z_from_counts(sampler_counts(aer_seed + 1), shots))


@pytest.fixture(scope="module")
def noisy_peer():
    """The aer-noisy device rebuilt from qiskit-aer's public API alone: the noise model of
    ``GenericBackendV2(4, seed=NOISE_SEED)`` on ``AerSimulator(noise_model=..., method="density_matrix")``,
    and the circuit transpiled for that device by qiskit's own ``transpile``."""
    from qiskit import transpile
    from qiskit.providers.fake_provider import GenericBackendV2
    from qiskit_aer import AerSimulator
    from qiskit_aer.noise import NoiseModel

    from advbench.tasks.qnn.contract import NOISE_SEED

    assert NOISY.simulator == {"method": "density_matrix", "shots": 1024, "noise": "GenericBackendV2"}
    device = GenericBackendV2(4, seed=NOISE_SEED)
    noise_model = NoiseModel.from_backend(device)
    sim = AerSimulator(noise_model=noise_model, method="density_matrix", max_parallel_threads=1)
    qc, X, w, values = random_values(5, 20)
    isa = transpile(_measured(qc), backend=device, optimization_level=1, seed_transpiler=0)
    names = [p.name for p in qc.parameters]
    binds = [{p: values[:, names.index(p.name)] for p in isa.parameters}]
    return SimpleNamespace(noise_model=noise_model, sim=sim, qc=qc, values=values, isa=isa, binds=binds)


def test_noisy_profile_equals_aer_density_matrix_with_the_same_noise_model_and_seed(noisy_peer):
    """Peer, seeds matched (as for the shot profile): the same 1024-shot counts as the noise model
    of GenericBackendV2 run by hand on a density-matrix AerSimulator. (Measured: equal on all 20
    rows; the executor without its noise model differs on all 20, by up to 0.035.)"""
    peer = noisy_peer
    shots = NOISY.simulator["shots"]
    ours = executor_for(NOISY, seed=3).expect_z(peer.qc, peer.values)
    aer_seed = int(np.random.default_rng(3).integers(2**31 - 1))
    result = peer.sim.run(peer.isa, parameter_binds=peer.binds, shots=shots, seed_simulator=aer_seed).result()
    np.testing.assert_array_equal(ours, _z_from_counts([result.get_counts(i) for i in range(len(ours))], shots))


def test_noisy_profile_within_sampling_error_of_the_exact_noisy_expectation(noisy_peer):
    """Peer, no seeds shared: the exact ⟨Z0⟩ under the noise model, from the density matrix (no
    shots), then the readout error. The executor's 1024-shot values lie within 4 standard errors of
    it on every row, and so do 65536-shot values (same simulator, more shots), at which the noiseless
    expectation would fail the same check: the noise is there, and it is this noise model's.

    Measured on these 20 rows: 1024 shots at most 2.4 SE (0.071) off; 65536 shots at most 2.1 SE
    (0.008) off, where the noiseless value is up to 7.9 SE off on 3 rows (the noise moves ⟨Z0⟩ by up
    to 0.027, readout alone by 0.0035), and the executor without its noise model 8.6 SE."""
    peer = noisy_peer
    nm = peer.noise_model.to_dict()
    [qubit] = [peer.isa.find_bit(i.qubits[0]).index for i in peer.isa.data if i.operation.name == "measure"]
    # The noise model acts on the measurement through the readout error only (no quantum error on
    # "measure"), so the density matrix before it and the readout matrix give the exact outcome.
    assert not [e for e in nm["errors"] if e["type"] != "roerror" and "measure" in e["operations"]]
    [readout] = [e["probabilities"] for e in nm["errors"]
                 if e["type"] == "roerror" and [tuple(q) for q in e["gate_qubits"]] == [(qubit,)]]
    body = peer.isa.remove_final_measurements(inplace=False)
    body.save_probabilities([qubit])
    result = peer.sim.run(body, parameter_binds=peer.binds, shots=1).result()
    p1 = np.array([result.data(i)["probabilities"][1] for i in range(len(peer.values))])
    p1_read = (1 - p1) * readout[0][1] + p1 * readout[1][1]  # readout[true][read]
    exact_noisy = 1 - 2 * p1_read
    ideal = executor_for(EXACT).expect_z(peer.qc, peer.values)
    assert 0.01 < np.abs(exact_noisy - ideal).max() < 0.25

    for shots, seed in [(NOISY.simulator["shots"], 1), (65536, 2)]:
        ours = executor_for({**NOISY.simulator, "shots": shots}, seed=seed).expect_z(peer.qc, peer.values)
        se = _binomial_se(exact_noisy, shots)
        assert np.all(np.abs(ours - exact_noisy) < 4 * se), np.max(np.abs(ours - exact_noisy) / se)
    assert np.any(np.abs(ideal - exact_noisy) > 4 * se)  # the 65536-shot check would catch missing noise


def test_noisy_profile_stays_near_exact():
    qc, X, w, values = random_values(5, 20)
    exact = executor_for(EXACT).expect_z(qc, values)
    noisy = executor_for(NOISY, seed=1).expect_z(qc, values)
    assert np.abs(noisy - exact).max() < 0.25
    np.testing.assert_array_equal(noisy, executor_for(NOISY, seed=1).expect_z(qc, values))


def test_integrity_train_holds_no_test_rows():
    task = QNNTask()
    for variant in SPEC.variants:
        split = load_variant(variant, seed=3)
        assert len(split.X_train) == 70 and len(split.X_test) == 200
        assert not (split.X_test[:, None, :] == split.X_train[None, :, :]).all(-1).any()
        problem = task.build(variant=variant, seed=3, budget=SPEC.budgets["quick"], seal=Seal(3))
        train, held = problem.train, problem.heldout
        assert isinstance(train, TrainData) and isinstance(held, Heldout)
        np.testing.assert_array_equal(train.X, split.X_train)
        np.testing.assert_array_equal(held.X, split.X_test)
        # Nothing the method gets is (or holds) the held-out arrays.
        for f in dataclasses.fields(train):
            value = getattr(train, f.name)
            assert value is not held.X and value is not held.y
            if isinstance(value, np.ndarray) and value.ndim == 2:
                assert value.shape[0] == 70
        # Scaler fitted on training rows: exactly [0, pi] there, balanced labels.
        np.testing.assert_allclose(train.X.min(0), 0, atol=1e-12)
        np.testing.assert_allclose(train.X.max(0), np.pi, atol=1e-12)
        assert np.bincount(train.y).tolist() == [35, 35] and np.bincount(held.y).tolist() == [100, 100]


def test_rows_depend_on_seed():
    assert not np.array_equal(load_variant("iris12", 0).X_test, load_variant("iris12", 1).X_test)


def test_floor_accuracy_is_majority_share(tmp_path):
    rec = run("qnn", "floor", profile="aer-statevector", budget="quick", variant="iris12", seed=2,
              results_dir=tmp_path)
    assert rec["status"] == "ok", rec["error"]
    problem = QNNTask().build(variant="iris12", seed=2, budget=SPEC.budgets["quick"], seal=Seal(2))
    label = int(np.argmax(np.bincount(problem.train.y)))
    assert rec["metrics"]["accuracy"] == pytest.approx(np.mean(problem.heldout.y == label))
    assert rec["metrics"]["accuracy"] == pytest.approx(0.5)  # balanced: both classes have 100 test rows


def test_solutions_implement_the_protocol():
    assert isinstance(ConstantClassifier(1), Classifier)
    assert isinstance(CircuitClassifier(4, 2, (0.0,) * 16), Classifier)
    with pytest.raises(ValueError):
        CircuitClassifier(4, 2, (0.0,) * 15)
    task = QNNTask()
    problem = task.build(variant="iris01", seed=0, budget=SPEC.budgets["quick"], seal=Seal(0))
    # No circuit_data: the scoring process says so, and it reaches the harness as a SolutionError.
    with pytest.raises(SolutionError, match="TypeError"):
        task.evaluate(LocalSolution(object()), problem, EXACT)
    with pytest.raises(TypeError):
        predict_on({"kind": "magic"}, problem.heldout.X, EXACT.simulator, 0)


class _Returns:
    def __init__(self, data):
        self.data = data

    def circuit_data(self):
        return self.data


W16 = np.zeros(16)


@pytest.mark.parametrize("bad,error", [
    ({"kind": "ansatz", "n_qubits": 4, "layers": 2, "weights": np.zeros(15)}, ValueError),
    ({"kind": "ansatz", "n_qubits": 4, "layers": 2, "weights": np.full(16, np.nan)}, ValueError),
    ({"kind": "ansatz", "n_qubits": 5, "layers": 2, "weights": np.zeros(20)}, ValueError),
    ({"kind": "ansatz", "n_qubits": 4, "layers": 2, "weights": W16, "readout": 7}, ValueError),
    ({"kind": "ansatz", "n_qubits": 4, "layers": 2, "weights": W16, "threshold": "low"}, TypeError),
    ({"kind": "constant", "label": 2}, ValueError),
    ({"kind": "qpy", "qpy": b"not qpy", "weights": W16}, Exception),
    ([0, 1] * 15, TypeError)])
def test_evaluate_refuses_malformed_circuit_data(bad, error):
    task = QNNTask()
    problem = task.build(variant="iris01", seed=0, budget=SPEC.budgets["quick"], seal=Seal(0))
    with pytest.raises(SolutionError, match=error.__name__ if error is not Exception else None):
        task.evaluate(LocalSolution(_Returns(bad)), problem, EXACT)


def test_any_circuit_as_qpy_scores_like_the_same_ansatz():
    """The QPY form runs any circuit over x[i] and w[j]; the ansatz as QPY gives the ansatz's labels."""
    import io

    from qiskit import qpy

    task = QNNTask()
    problem = task.build(variant="iris01", seed=0, budget=SPEC.budgets["quick"], seal=Seal(0))
    w = np.random.default_rng(0).uniform(-1, 1, 16)
    buf = io.BytesIO()
    qpy.dump(ansatz(4, 2), buf)
    as_qpy = _Returns({"kind": "qpy", "qpy": buf.getvalue(), "weights": w, "threshold": 0.0, "readout": 0})
    for profile in (EXACT, get_profile("aer-noisy")):
        assert (task.evaluate(LocalSolution(as_qpy), problem, profile)
                == task.evaluate(LocalSolution(CircuitClassifier(4, 2, tuple(w))), problem, profile))


def test_two_keys_draw_other_rows_and_one_key_the_same_bit_for_bit():
    task, budget = QNNTask(), SPEC.budgets["full"]
    plain = task.build(variant="iris12", seed=6, budget=budget, seal=Seal(6))
    # Unsealed: the rows from default_rng([seed, 3]), the shot seed from default_rng([seed, 2]).
    np.testing.assert_array_equal(plain.heldout.X, load_variant("iris12", 6).X_test)
    assert plain.heldout.seed == int(np.random.default_rng([6, 2]).integers(2**31 - 1))
    key = b"some-secret-key-123"
    sealed = task.build(variant="iris12", seed=6, budget=budget, seal=Seal(6, key=key))
    again = task.build(variant="iris12", seed=6, budget=budget, seal=Seal(6, key=key))
    other = task.build(variant="iris12", seed=6, budget=budget, seal=Seal(6, key=b"another-secret-key-4"))
    np.testing.assert_array_equal(again.heldout.X, sealed.heldout.X)
    np.testing.assert_array_equal(again.train.X, sealed.train.X)
    assert again.heldout.seed == sealed.heldout.seed
    for a in (plain, other):
        assert not np.array_equal(a.heldout.X, sealed.heldout.X) and not np.array_equal(a.train.X, sealed.train.X)
        assert a.heldout.seed != sealed.heldout.seed
    assert np.bincount(sealed.heldout.y).tolist() == [100, 100] and len(sealed.train.y) == 70


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_no_row_is_public_and_version_1s_lookup_finds_nothing(variant):
    """v1's route: the 100 rows of a pair were scikit-learn's iris, so a method could find its 70 training
    rows in the public copy and read the other 30 and their labels. Now every row is drawn under the
    seal: undo the min-max scaling with the training rows' own range and no training or held-out row
    lies within 0.01 cm (a tenth of iris's measuring step) of any public iris row."""
    from sklearn.datasets import load_iris

    iris = load_iris().data
    lo, hi = iris.min(0), iris.max(0)

    def nearest_public(rows):  # rows in [0, pi] mapped onto each public feature's range, then matched
        cm = lo + rows / np.pi * (hi - lo)
        return np.abs(cm[:, None, :] - iris[None, :, :]).max(-1).min(1)

    # The control: iris rows scaled as version 1 did (here over the whole set) are all found.
    assert (nearest_public((iris - lo) / (hi - lo) * np.pi) < 1e-9).all()
    for seed in range(3):
        split = load_variant(variant, seed, seal=Seal(seed, key=b"a-key-for-this-test-only-0123"))
        nearest = nearest_public(np.concatenate([split.X_train, split.X_test]))
        assert (nearest > 0.01).all()


def test_evaluation_on_shots_is_deterministic():
    task = QNNTask()
    problem = task.build(variant="iris01", seed=0, budget=SPEC.budgets["quick"], seal=Seal(0))
    solution = LocalSolution(CircuitClassifier(4, 2, tuple(np.random.default_rng(0).uniform(-1, 1, 16))))
    assert task.evaluate(solution, problem, SHOTS) == task.evaluate(solution, problem, SHOTS)


def _train_directly(profile, variant: str, evaluations: int, seed: int = 0, checkpoint_every: int = 50):
    """The baseline on a RunContext with a small budget, without the runner."""
    from advbench.baselines.qnn import Config, train

    task = QNNTask()
    budget = Budget("tiny", max_seconds=120, limits={"evaluations": evaluations}, variants=(variant,))
    problem = task.build(variant=variant, seed=seed, budget=budget, seal=Seal(seed))
    # What the harness does with the context's messages, in a few lines: keep the configuration,
    # score each checkpoint's pickle, never stop on the time cap.
    config, curve = {}, []

    def submit(kind, payload):
        if kind == "config":
            config.update(payload[0])
        elif kind == "checkpoint":
            step, _, blob = payload
            curve.append({"step": step, "metrics": task.evaluate(local_handle(blob), problem, profile)})
            return False
        return None

    ctx = RunContext(spec=SPEC, variant=variant, seed=seed, budget=budget, profile=profile, submit=submit)
    solution = train(problem.train, ctx, Config(checkpoint_every=checkpoint_every))
    return task, problem, SimpleNamespace(work=ctx.work, curve=curve, config=config), solution


def test_noisy_runs_end_to_end_on_a_small_budget():
    task, problem, ctx, solution = _train_directly(NOISY, "iris01", evaluations=20, checkpoint_every=10)
    assert isinstance(solution, CircuitClassifier)
    assert ctx.work == 20 * len(problem.train.y)
    assert [p["step"] for p in ctx.curve] == [10, 20]
    metrics = task.evaluate(LocalSolution(solution), problem, NOISY)
    assert set(metrics) == {"accuracy", "train_accuracy"}
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert ctx.config["simulator"]["noise"] == "GenericBackendV2"


@pytest.mark.slow
def test_quick_target_via_harness(tmp_path):
    rec = run("qnn", "reference", profile="aer-statevector", budget="quick", variant="iris01", seed=0,
              results_dir=tmp_path)
    assert rec["status"] == "ok", rec["error"]
    assert rec["targets_met"], rec["targets"]
    assert rec["throughput"]["unit"] == "circuits/s" and rec["throughput"]["value"] > 0
    assert rec["throughput"]["work"] == 150 * 70
    assert [p["step"] for p in rec["curve"]][:3] == [50, 100, 150]


@pytest.mark.slow
def test_noisy_accuracy_within_10_points_of_exact():
    """The cross-profile bar: weights trained on exact expectations lose < 10 points on noisy Aer."""
    task, problem, _, solution = _train_directly(EXACT, "iris12", evaluations=300, seed=0)
    exact = task.evaluate(LocalSolution(solution), problem, EXACT)["accuracy"]
    noisy = task.evaluate(LocalSolution(solution), problem, NOISY)["accuracy"]
    assert exact >= 0.85
    assert abs(exact - noisy) <= 0.10, (exact, noisy)


# ---- micro-benchmarks (run once as tests under --benchmark-disable) ----


@pytest.fixture(scope="module")
def bench_batch():
    qc, X, w, values = random_values(6, 70)  # one objective evaluation of the baseline: 70 training rows
    ex = executor_for(EXACT)
    ex.expect_z(qc, values[:1])  # transpile outside the timing
    return ex, qc, values


def test_bench_batched_circuits(benchmark, bench_batch):
    ex, qc, values = bench_batch
    out = benchmark(ex.expect_z, qc, values)
    assert out.shape == (70,)


def test_bench_one_at_a_time(benchmark, bench_batch):
    ex, qc, values = bench_batch
    out = benchmark(lambda: np.array([ex.expect_z(qc, row)[0] for row in values]))
    assert out.shape == (70,)
