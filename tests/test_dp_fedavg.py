"""dp-fedavg v2: the harness's private mechanism against opacus (per-sample clipping, σ, ε), its noise,
sampling and call limit, ε counted from the calls made, hostile methods, the reference on target.

The methods this file registers with the harness (``hostile_*``, ``frugal``) run in the method's
jail, which imports this module and refuses the task's held-out code: so ``heldout`` is imported
inside the tests (:func:`_h`), never at the top.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
opacus = pytest.importorskip("opacus")

from advbench.tasks.dp_fedavg import SPEC  # noqa: E402
from advbench.tasks.dp_fedavg import contract as C  # noqa: E402
from advbench.tasks.dp_fedavg.contract import DELTA  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

KEY = "dp-fedavg-test-key-0123456789"


def _h():
    from advbench.tasks.dp_fedavg import heldout

    return heldout


def _problem(variant: str, seed: int = 0, budget: str = "full", key: bytes | None = None):
    from advbench.task import Seal

    return _h().DPFedAvgTask().build(variant=variant, seed=seed, budget=SPEC.budgets[budget], seal=Seal(seed, key))


def _mechanism(level: str, sigma: float, q: float, clip: float = 1.0, calls: int = 1000, seed: int = 0):
    """A harness mechanism over the variant's real clients with the parameters given."""
    H = _h()
    prob = _problem(f"{level}-eps3", seed)
    m = prob.heldout["mechanism"]
    public = C.Mechanism(sample_rate=q, clip=clip, noise_multiplier=sigma, max_calls=calls)
    return H.PrivateMechanism(level, [x.numpy() for x in m.xs], [y.numpy() for y in m.ys], public, m.n_features,
                              m.n_classes, np.random.default_rng([seed, 99])), prob.train


def _params(view, seed: int = 0) -> dict[str, np.ndarray]:
    return C.init_params(view.level, view.n_features, view.n_classes, np.random.default_rng(seed))


def _flat(d: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([v.reshape(-1) for v in d.values()])


def _opacus_epsilon(sigma: float, q: float, steps: int, accountant: str) -> float:
    from opacus.accountants import PRVAccountant, RDPAccountant

    acc = RDPAccountant() if accountant == "rdp" else PRVAccountant()
    for _ in range(steps):  # one step at a time, as a DPOptimizer's hook records them
        acc.step(noise_multiplier=sigma, sample_rate=q)
    return acc.get_epsilon(delta=DELTA)


# ---------------------------------------------------------------- peers: opacus
def _opacus_module(level: str, params: dict[str, np.ndarray]) -> "torch.nn.Module":
    """The contract architecture as an ``nn.Module`` with the contract's parameter names."""
    from collections import OrderedDict

    layers: OrderedDict = OrderedDict()
    if "hidden.weight" in params:
        layers["hidden"] = torch.nn.Linear(*params["hidden.weight"].shape[::-1])
        layers["relu"] = torch.nn.ReLU()
    layers["out"] = torch.nn.Linear(*params["out.weight"].shape[::-1])
    net = torch.nn.Sequential(layers)
    net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in params.items()})
    return net


@pytest.mark.parametrize("level", ["record", "user"])
def test_per_sample_clipping_equals_opacus_on_identical_inputs(level):
    """The harness's clipped per-record gradient sum over the expected batch is the gradient opacus'
    DPOptimizer (GradSampleModule's per-sample gradients, clipped, noise 0) leaves before its step."""
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    H = _h()
    prob = _problem(f"{level}-eps3")
    view, mech = prob.train, prob.heldout["mechanism"]
    params = _params(view, 1)
    x, y = mech.xs[0][:40].clone(), mech.ys[0][:40].clone()
    x[:10] *= 30  # some records far outside the clip, some within it
    # the unscaled records' gradients have norms of about 2.5-3.5 (record), 11-22 (user)
    clip, expected = (3.0 if level == "record" else 15.0), 27.0
    net = GradSampleModule(_opacus_module(level, params))
    opt = DPOptimizer(torch.optim.SGD(net.parameters(), lr=1.0), noise_multiplier=0.0, max_grad_norm=clip,
                      expected_batch_size=int(expected))
    opt.zero_grad()
    torch.nn.functional.cross_entropy(net(x), y).backward()
    opt.pre_step()  # clip, add (no) noise, scale by the expected batch
    theirs = {k.removeprefix("_module."): p.grad.detach().numpy() for k, p in net.named_parameters()}
    norms = torch.stack([p.grad_sample.reshape(len(y), -1).norm(dim=1) for p in net.parameters()]).norm(dim=0)
    assert (norms > clip).sum() >= 5 and (norms < clip).sum() >= 5, norms
    ours = H.clipped_gradient_sum(params, x, y, clip) / expected
    assert np.allclose(ours, _flat({k: theirs[k] for k in params}), atol=2e-6, rtol=1e-4)


@pytest.mark.parametrize("epsilon", [1.0, 3.0, 8.0])
def test_sigma_is_what_opacus_make_private_with_epsilon_picks(epsilon):
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    n, batch, epochs = 135, 27, 20
    loader = DataLoader(TensorDataset(torch.zeros(n, 4), torch.zeros(n, dtype=torch.long)), batch_size=batch)
    net = torch.nn.Linear(4, 2)
    _, opt, _ = PrivacyEngine(accountant="rdp").make_private_with_epsilon(
        module=net, optimizer=torch.optim.SGD(net.parameters(), lr=1.0), data_loader=loader, target_epsilon=epsilon,
        target_delta=DELTA, epochs=epochs, max_grad_norm=1.0)
    ours = _h().calibrate(epsilon, 1 / len(loader), epochs * len(loader))
    assert ours == pytest.approx(opt.noise_multiplier, rel=1e-12)
    assert C.accountant_epsilon(ours, 1 / len(loader), epochs * len(loader)) <= epsilon
    prob = _problem("record-eps3")  # and the harness gives methods exactly that σ for the budget's calls
    mech = prob.train.mechanism
    assert mech.noise_multiplier == _h().calibrate(3.0, mech.sample_rate, mech.max_calls)
    assert _opacus_epsilon(mech.noise_multiplier, mech.sample_rate, mech.max_calls, "rdp") <= 3.0


def test_recorded_epsilon_is_opacus_accountants_on_the_calls_made():
    prob = _problem("record-eps8")
    mech, view = prob.heldout["mechanism"], prob.train
    params = _params(view)
    for _ in range(7):
        prob.oracle(C.record_question(2, params))
    prob.oracle(C.record_question(5, params))
    m = mech.metrics()
    sigma, q = view.mechanism.noise_multiplier, view.mechanism.sample_rate
    assert m["steps"] == 7 and m["calls"] == 8  # a record's ε is its own client's: the most steps of any
    assert m["epsilon"] == pytest.approx(_opacus_epsilon(sigma, q, 7, "rdp"), rel=1e-9)
    assert m["epsilon_prv"] == pytest.approx(_opacus_epsilon(sigma, q, 7, "prv"), rel=1e-3)
    assert m["epsilon_prv"] < m["epsilon"] < 8.0
    assert (m["noise_multiplier"], m["sample_rate"], m["clip"]) == (sigma, q, 1.0)


# ---------------------------------------------------------------- the mechanism
def test_record_level_noise_has_std_sigma_clip_over_the_expected_batch():
    """Replaying the mechanism's own Poisson draw gives the noiseless clipped sum; what is left is
    Gaussian noise of std σC/(q n_k), mean 0."""
    H = _h()
    sigma, q, clip = 2.0, 0.2, 0.7
    mech, view = _mechanism("record", sigma, q, clip)
    params = _params(view)
    residuals = []
    for k in range(view.n_clients):
        n = len(mech.ys[k])
        replay = copy.deepcopy(mech.rng)
        take = torch.from_numpy(np.flatnonzero(replay.random(n) < q))
        expected = H.clipped_gradient_sum(params, mech.xs[k][take], mech.ys[k][take], clip) / (q * n)
        got = _flat(mech(C.record_question(k, params))["gradient"])
        residuals.append((got - expected) * (q * n))  # in units of the sum
    r = np.concatenate(residuals)  # 6500 draws
    assert r.std() == pytest.approx(sigma * clip, rel=0.05)
    assert abs(r.mean()) < 4 * sigma * clip / math.sqrt(r.size)
    # and with σ = 0 nothing but the clipped sum over the expected batch comes back
    mech0, _ = _mechanism("record", 0.0, q, clip)
    replay = copy.deepcopy(mech0.rng)
    take = torch.from_numpy(np.flatnonzero(replay.random(len(mech0.ys[0])) < q))
    want = H.clipped_gradient_sum(params, mech0.xs[0][take], mech0.ys[0][take], clip) / (q * len(mech0.ys[0]))
    assert np.allclose(_flat(mech0(C.record_question(0, params))["gradient"]), want, atol=1e-7)


def test_user_level_noise_std_and_empty_rounds_release_noise():
    sigma, clip = 1.5, 0.7
    mech, view = _mechanism("user", sigma, q=1e-9, clip=clip)  # nobody is ever sampled
    params = _params(view)
    out = _flat(mech(C.user_question(params, 1, 20, 0.1))["update"])
    assert mech.batch_sizes == [0] and mech.rounds == 1  # an empty round counts
    expected_count = 1e-9 * view.n_clients
    assert out.size > 19_000 and out.std() == pytest.approx(sigma * clip / expected_count, rel=0.03)


def test_user_level_clips_whole_updates_and_divides_by_the_expected_count():
    """σ = 0, q = 1: every client trains; the answer is Σ clip(update_k) / (qN), each update clipped as
    one vector (replayed here with the mechanism's own shuffles)."""
    H = _h()
    clip, q = 0.05, 1.0
    mech, view = _mechanism("user", 0.0, q, clip)
    params = _params(view)
    gen = torch.Generator()
    gen.set_state(mech.torch_gen.get_state())
    start = {k: torch.from_numpy(v) for k, v in params.items()}
    local = H.local_training(start, mech.x_all, mech.y_all, 1, 30, 0.5, gen)
    updates = torch.cat([(local[k] - start[k]).reshape(len(mech.ys), -1) for k in params], dim=1)
    norms = updates.norm(dim=1)
    assert (norms > clip).all()  # every update is clipped: the bound is what the answer is made of
    want = (updates * (clip / (norms + 1e-6))[:, None]).sum(0).numpy() / (q * len(mech.ys))
    got = _flat(mech(C.user_question(params, 1, 30, 0.5))["update"])
    assert np.allclose(got, want, atol=1e-6)
    assert np.linalg.norm(got) <= clip * 1.0001  # a mean of vectors of norm clip


@pytest.mark.parametrize("level", ["record", "user"])
def test_sampling_is_poisson_not_a_fixed_number(level):
    q = 0.2 if level == "record" else 0.1
    mech, view = _mechanism(level, 1.0, q, calls=400)
    params = _params(view)
    for i in range(300 if level == "record" else 60):
        if level == "record":
            mech(C.record_question(0, params))
        else:
            mech(C.user_question(params, 1, 60, 0.01))
    sizes = np.array(mech.batch_sizes)
    n = len(mech.ys[0]) if level == "record" else view.n_clients
    assert len(set(sizes.tolist())) > 5  # a fixed K would give one value
    assert sizes.mean() == pytest.approx(q * n, rel=0.1)
    assert sizes.var() == pytest.approx(q * (1 - q) * n, rel=0.5)  # binomial, as Poisson sampling gives


def test_the_call_limit_is_enforced_per_client_and_per_round():
    mech, view = _mechanism("record", 1.0, 0.2, calls=3)
    params = _params(view)
    for i in range(3):
        assert mech(C.record_question(4, params))["steps_left"] == 2 - i
    with pytest.raises(ValueError, match="client 4's budget of 3 DP-SGD steps is spent"):
        mech(C.record_question(4, params))
    assert mech.client_steps[4] == 3 and mech.steps == 3  # a refused ask is not counted
    assert mech(C.record_question(5, params))["steps_left"] == 2  # other clients keep their own budgets
    umech, uview = _mechanism("user", 1.0, 0.1, calls=2)
    uparams = _params(uview)
    umech(C.user_question(uparams, 1, 20, 0.1))
    umech(C.user_question(uparams, 1, 20, 0.1))
    with pytest.raises(ValueError, match="budget of 2 rounds is spent"):
        umech(C.user_question(uparams, 1, 20, 0.1))
    assert umech.rounds == 2


def test_malformed_questions_are_refused_and_not_counted():
    mech, view = _mechanism("record", 1.0, 0.2)
    good = _params(view)
    bad = [None, {"client": 0}, {"client": 10, "params": good}, {"client": True, "params": good},
           {"client": 0, "params": {**good, "out.bias": np.zeros(3, np.float32)}},
           {"client": 0, "params": {**good, "out.bias": np.full(10, np.nan, np.float32)}},
           {"client": 0, "params": {"out.weight": good["out.weight"]}},
           {"client": 0, "params": good, "lr": 0.1}]
    for q in bad:
        with pytest.raises((ValueError, TypeError)):
            mech(q)
    umech, uview = _mechanism("user", 1.0, 0.1)
    up = _params(uview)
    for q in [C.user_question(up, 0, 20, 0.1), C.user_question(up, 11, 20, 0.1), C.user_question(up, 1, 61, 0.1),
              C.user_question(up, 1, 20, 0.0), C.user_question(up, 1, 20, 100.0), {"params": up}]:
        with pytest.raises((ValueError, TypeError)):
            umech(q)
    assert mech.calls == 0 and umech.calls == 0


def test_the_runner_builds_the_mechanism_on_the_profiles_device(monkeypatch):
    """dp-fedavg's arithmetic is the harness's: the runner hands ``build`` the profile's device
    (``SPEC.harness_device``), which the mechanism's records and computing go to; a task without
    the flag is built as before, without a device."""
    from advbench.registry import default_registry
    from advbench.runner import run

    assert SPEC.harness_device and "cuda" in SPEC.profiles
    # the other such task is nas, whose table is the harness's to train (tests/test_nas.py)
    assert {n for n in default_registry().task_names() if default_registry().spec(n).harness_device} == {
        "dp-fedavg", "nas"}
    H = _h()
    built = []
    original = H.DPFedAvgTask.build

    def spy(self, **kwargs):
        problem = original(self, **kwargs)
        built.append((kwargs.get("device"), problem.oracle.device.type, problem.oracle.xs[0].device.type))
        return problem

    monkeypatch.setattr(H.DPFedAvgTask, "build", spy)
    rec = run("dp-fedavg", "floor", budget="quick", seed=0, results_dir=None)
    assert rec["status"] == "ok", rec["error"]
    assert built == [("cpu", "cpu", "cpu")]


def test_the_training_view_holds_no_records():
    """What a method receives: public facts and the mechanism's parameters, no array, nothing of the data."""
    import dataclasses
    import pickle

    for variant in ("record-eps3", "user-nonprivate"):
        prob = _problem(variant)
        view = prob.train
        assert len(pickle.dumps(view)) < 1000
        fields = dataclasses.asdict(view)
        assert not any(isinstance(v, (np.ndarray, list, tuple)) for v in fields.values())
        assert not any(isinstance(v, (np.ndarray, list, tuple)) for v in fields["mechanism"].values())
        assert not hasattr(view, "clients")


def test_records_are_rotated_by_a_sealed_rotation():
    """The glyph digits the mechanism holds are R (x - 0.3), R orthogonal and from the seal: norms
    are kept."""
    H = _h()
    from advbench.glyphs import glyph_split
    from advbench.task import Seal

    pub = _problem("record-eps3", 1)
    sealed = _problem("record-eps3", 1, key=b"k" * 32)
    r_pub, r_sealed = H.rotation(Seal(1), 64), H.rotation(Seal(1, b"k" * 32), 64)
    assert np.allclose(r_pub @ r_pub.T, np.eye(64), atol=1e-5)
    assert not np.allclose(r_pub, r_sealed, atol=0.1)
    _, test = glyph_split(Seal(1))
    assert np.allclose(np.linalg.norm(pub.heldout["x"], axis=1), np.linalg.norm(test.x - 0.3, axis=1), rtol=1e-5)
    assert np.allclose(pub.heldout["x"], (test.x - 0.3) @ r_pub.T, atol=1e-5)
    assert sealed.heldout["x"].shape == pub.heldout["x"].shape


# ---------------------------------------------------------------- methods run through the harness
def frugal(view, ctx):
    """Spends 30 of each client's steps (or 30 rounds), then stops: a smaller ε, recorded."""
    params = C.init_params(view.level, view.n_features, view.n_classes, ctx.rng(0))
    for _ in range(30):
        grads = [ctx.ask(C.record_question(k, params))["gradient"] for k in range(view.n_clients)]
        for n in params:
            params[n] = params[n] - np.mean([g[n] for g in grads], axis=0, dtype=np.float32)
    return params


def hostile_looks_for_records(view, ctx):
    """Walks the training view for anything like data; reports what it found, hands in the floor."""
    found = []

    def walk(obj, path, depth=0):
        if depth > 6:
            return
        if isinstance(obj, np.ndarray) or (isinstance(obj, (list, tuple)) and len(obj) > 8):
            found.append(path)
        for name in dir(obj):
            if name.startswith("__"):
                continue
            try:
                value = getattr(obj, name)
            except Exception:  # noqa: BLE001
                continue
            if not callable(value) and not isinstance(value, (int, float, str, bool, type(None))):
                walk(value, f"{path}.{name}", depth + 1)

    walk(view, "view")
    ctx.record_config(found=found)
    return {n: np.zeros(s, np.float32) for n, s in C.param_shapes(view.level, view.n_features,
                                                                   view.n_classes).items()}


def hostile_trains_on_public_digits(view, ctx):
    """Trains logistic regression on scikit-learn's own copy of the digits (test images included),
    never touching the mechanism, and hands that model in."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = torch.as_tensor(d.data / 16.0 - 0.3, dtype=torch.float32), torch.as_tensor(d.target)
    net = torch.nn.Linear(64, 10)
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return {"out.weight": net.weight.detach().numpy().copy(), "out.bias": net.bias.detach().numpy().copy()}


def hostile_asks_too_often(view, ctx):
    """Asks client 0 five times past its limit; records how many asks were refused and why."""
    params = C.init_params(view.level, view.n_features, view.n_classes, ctx.rng(0))
    refused = []
    for _ in range(view.mechanism.max_calls + 5):
        try:
            g = ctx.ask(C.record_question(0, params))["gradient"]
            params = {n: params[n] - g[n] for n in params}
        except ValueError as exc:
            refused.append(str(exc))
    ctx.record_config(refused=len(refused), reason=refused[0] if refused else None)
    return params


def hostile_wrong_shape(view, ctx):
    return {"out.weight": np.zeros((10, 63), np.float32), "out.bias": np.zeros(10, np.float32)}


def hostile_nan(view, ctx):
    return {"out.weight": np.full((10, 64), np.nan, np.float32), "out.bias": np.zeros(10, np.float32)}


def hostile_a_module(view, ctx):
    return torch.nn.Linear(64, 10)  # code, not parameters


def hostile_extra_names(view, ctx):
    return {"out.weight": np.zeros((10, 64), np.float32), "out.bias": np.zeros(10, np.float32),
            "labels": np.zeros(450, np.int64)}


HOSTILE = ("frugal", "hostile_looks_for_records", "hostile_trains_on_public_digits", "hostile_asks_too_often",
           "hostile_wrong_shape", "hostile_nan", "hostile_a_module", "hostile_extra_names")


@pytest.fixture
def methods():
    from advbench.registry import Registry

    reg = Registry()
    for name in HOSTILE:
        reg.register_method("dp-fedavg", name.replace("_", "-"), f"test_dp_fedavg:{name}")
    return reg


def _run(reg, method: str, **kw):
    from advbench.runner import run

    kw.setdefault("budget", "quick")
    return run("dp-fedavg", method, seed=0, results_dir=None, registry=reg, threads=1, **kw)


def test_a_method_that_asks_less_gets_a_smaller_epsilon_recorded(methods):
    rec = _run(methods, "frugal")
    assert rec["status"] == "ok", rec["error"]
    m = rec["metrics"]
    assert m["steps"] == 30 and m["calls"] == 300 and rec["asks"] == 300
    assert m["epsilon"] == pytest.approx(_opacus_epsilon(m["noise_multiplier"], m["sample_rate"], 30, "rdp"))
    assert m["epsilon"] < 8.0 * 0.75  # 30 of the 100 steps the budget allows
    assert rec["throughput"]["counted_by"] == "harness" and rec["throughput"]["work"] == 300


def test_hostile_a_method_finds_no_records_in_its_view(methods):
    rec = _run(methods, "hostile-looks-for-records")
    assert rec["status"] == "ok", rec["error"]
    assert rec["config"]["method"]["found"] == []
    assert rec["metrics"]["accuracy"] < 0.2 and rec["metrics"]["epsilon"] == 0.0


def test_hostile_parameters_trained_without_the_mechanism_score_at_floor_level(methods, monkeypatch):
    """v2 held scikit-learn's digits (rotated under the seal); v3 holds the sealed glyph digits, so a
    model of the public copy (which holds v2's test images: above 0.95 on them) is worth nothing."""
    from sklearn.datasets import load_digits

    d = load_digits()
    params = hostile_trains_on_public_digits(None, None)
    assert (C.predict(params, d.data / 16.0 - 0.3) == d.target).mean() > 0.95  # what it would be worth
    monkeypatch.setenv("ADVBENCH_SEAL_KEY", KEY)
    rec = _run(methods, "hostile-trains-on-public-digits", sealed=True)
    assert rec["status"] == "ok", rec["error"]
    assert rec["metrics"]["accuracy"] < 0.3 and rec["metrics"]["epsilon"] == 0.0
    assert rec["targets_met"] is False


def test_hostile_asks_past_the_limit_are_refused(methods):
    rec = _run(methods, "hostile-asks-too-often")
    assert rec["status"] == "ok", rec["error"]
    cfg, m = rec["config"]["method"], rec["metrics"]
    assert cfg["refused"] == 5 and "budget of 100 DP-SGD steps is spent" in cfg["reason"]
    assert m["steps"] == 100 and m["calls"] == 100 and rec["asks"] == 100 and rec["asks_refused"] == 5
    assert m["epsilon"] <= 8.0


@pytest.mark.parametrize("method", ["hostile-wrong-shape", "hostile-nan", "hostile-a-module", "hostile-extra-names"])
def test_hostile_malformed_parameters_are_an_error_never_a_score(methods, method):
    rec = _run(methods, method)
    assert rec["status"] == "error" and not rec["metrics"], rec["metrics"]
    assert "evaluation failed" in rec["error"]


# ---------------------------------------------------------------- the reference and the floor
@pytest.mark.slow
def test_quick_reference_meets_its_target_with_the_harness_epsilon():
    from advbench.runner import run

    rec = run("dp-fedavg", "reference", budget="quick", seed=0, results_dir=None, threads=1)
    assert rec["status"] == "ok", rec["error"]
    m = rec["metrics"]
    assert rec["targets_met"], m
    sigma, q, steps = m["noise_multiplier"], m["sample_rate"], int(m["steps"])
    assert sigma > 0 and q == 0.2 and steps == 100 and m["calls"] == 1000
    assert m["epsilon"] == pytest.approx(_opacus_epsilon(sigma, q, steps, "rdp"), rel=1e-9) and m["epsilon"] <= 8.0
    assert m["epsilon_prv"] == pytest.approx(_opacus_epsilon(sigma, q, steps, "prv"), rel=1e-3)
    assert rec["throughput"]["counted_by"] == "harness" and rec["throughput"]["work"] == 1000 == rec["asks"]
    assert [p["metrics"]["steps"] for p in rec["curve"]] == [20, 40, 60, 80, 100]  # ε spent so far, per checkpoint


def test_floor_asks_nothing_and_spends_no_epsilon():
    from advbench.runner import run

    rec = run("dp-fedavg", "floor", budget="quick", seed=0, results_dir=None, threads=1)
    assert rec["status"] == "ok", rec["error"]
    m = rec["metrics"]
    assert m["epsilon"] == 0.0 and m["steps"] == 0 and rec["asks"] == 0 and 0.05 < m["accuracy"] < 0.15


def test_the_nonprivate_ceiling_uses_the_mechanism_without_noise_or_clipping():
    prob = _problem("user-nonprivate")
    mech = prob.train.mechanism
    assert mech.noise_multiplier == 0 and math.isinf(mech.clip) and mech.max_calls == 300
    params = _params(prob.train)
    prob.oracle(C.user_question(params, 1, 20, 0.1))
    m = prob.heldout["mechanism"].metrics()
    assert "epsilon" not in m and "clip" not in m and m["steps"] == 1  # ε = ∞ is not a number in a record


# ---------------------------------------------------------------- data
def test_sealed_synthetic_data_cannot_be_regenerated_from_the_public_seed():
    from sklearn.datasets import make_classification

    from advbench.task import Seal

    H = _h()
    sealed = H.synthetic(Seal(3, b"k" * 32))
    public = H.synthetic(Seal(3))
    x_pub, _ = make_classification(n_samples=70_000, n_features=64, n_informative=20, n_redundant=2, n_classes=10,
                                   class_sep=1.5, random_state=3)
    pub_rows = {r.tobytes() for r in x_pub.astype(np.float32)}
    assert all(r.tobytes() in pub_rows for r in public[2][:50])  # unsealed: reproducible from the seed
    assert not any(r.tobytes() in pub_rows for r in sealed[2][:50])


def test_clients_have_equal_sizes_so_every_client_has_the_same_epsilon():
    prob = _problem("record-eps1", 2)
    mech = prob.heldout["mechanism"]
    sizes = np.array([len(y) for y in mech.ys])
    assert len(sizes) == 10 == prob.train.n_clients and sizes.max() - sizes.min() <= 1
    assert all(len(np.unique(y.numpy())) == 10 for y in mech.ys)  # IID: every digit at every client
    user = _problem("user-eps3", 2)
    assert user.train.n_clients == 1000 and set(len(y) for y in user.heldout["mechanism"].ys) == {60}
    assert len(user.heldout["y"]) == 10_000


def test_every_variant_parses_and_the_budgets_cover_them():
    H = _h()
    for v in SPEC.variants:
        level, eps = H.parse_variant(v)
        assert level in ("record", "user") and (eps in (1.0, 3.0, 8.0) or math.isinf(eps))
    assert set(SPEC.budgets["full"].variants) == set(SPEC.variants)
    assert SPEC.id == "dp-fedavg-v3"


def test_an_epsilon_not_in_the_list_exits_2_with_the_valid_variants(tmp_path):
    from typer.testing import CliRunner

    from advbench.cli import app

    res = CliRunner().invoke(app, ["run", "--task", "dp-fedavg", "--variant", "record-eps5", "--results",
                                   str(tmp_path)])
    assert res.exit_code == 2
    out = res.output
    assert "record-eps5" in out and "record-eps3" in out and "user-nonprivate" in out
    assert not (tmp_path / "runs").exists()


def test_every_committed_record_carries_the_accountants_epsilon_within_its_variants_budget():
    """The reference leaderboard's ε: recomputed here from each record's σ, q and steps with opacus'
    RDP and PRV accountants (step by step, as DPOptimizer records them), never above the variant's;
    every ask counted by the harness."""
    from committed import committed

    recs = committed(SPEC, ok_only=False)
    assert recs, f"no committed full-budget records of {SPEC.id}"
    assert all(r["status"] == "ok" for r in recs)
    private = [r for r in recs if r["method"] == "reference" and "nonprivate" not in r["variant"]]
    assert {r["variant"] for r in private} == {v for v in SPEC.variants if "nonprivate" not in v}
    for r in private:
        m = r["metrics"]
        _, budget = _h().parse_variant(r["variant"])
        sigma, q, steps = m["noise_multiplier"], m["sample_rate"], int(m["steps"])
        assert m["epsilon"] == pytest.approx(_opacus_epsilon(sigma, q, steps, "rdp"), rel=1e-9), r["run_id"]
        assert m["epsilon_prv"] == pytest.approx(_opacus_epsilon(sigma, q, steps, "prv"), rel=1e-3), r["run_id"]
        assert m["epsilon"] <= budget and sigma > 0, r["run_id"]
        assert r["throughput"]["counted_by"] == "harness" and r["asks"] == m["calls"], r["run_id"]
    for r in recs:
        if "nonprivate" in r["variant"] and r["method"] == "reference":
            assert "epsilon" not in r["metrics"] and r["metrics"]["noise_multiplier"] == 0.0
        if r["method"] == "floor":
            assert r["metrics"]["epsilon"] == 0.0 and r["asks"] == 0
