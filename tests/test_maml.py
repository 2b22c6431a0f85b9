"""maml: meta-gradients against an autograd loop and float64 finite differences, the deepcopy trap,
the harness's own adaptation, the sealed evaluation tasks, the quick target and the vmap benchmark."""

from __future__ import annotations

import copy
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from advbench.task import Seal  # noqa: E402
from committed import committed  # noqa: E402
from advbench.tasks.maml import SPEC  # noqa: E402
from advbench.tasks.maml import contract as C  # noqa: E402
from advbench.tasks.maml import heldout as H  # noqa: E402

M = pytest.importorskip("advbench.baselines.maml")


def batch(seed: int = 0, n: int = 6, k: int = 10, dtype=torch.float32):
    t = C.sample_sinusoids(np.random.default_rng(seed), n, k, k)
    return [torch.as_tensor(a, dtype=dtype) for a in (t.x_s, t.y_s, t.x_q, t.y_q)]


def params(seed: int = 0, dtype=torch.float32):
    return {k: v.to(dtype) for k, v in C.init_parameters(torch.Generator().manual_seed(seed)).items()}


def close(a: dict, b: dict, rtol=1e-4, atol=1e-6) -> bool:
    return all(torch.allclose(a[k], b[k], rtol=rtol, atol=atol) for k in a)


# ---------------------------------------------------------------- meta-gradients
@pytest.mark.parametrize("steps", [1, 2])
def test_vmapped_meta_gradient_equals_a_per_task_autograd_loop(steps):
    p, data = params(), batch()
    for first_order in (False, True):
        ours = M.meta_gradient(p, *data, 0.01, steps, first_order)
        loop = M.meta_gradient_loop(p, *data, 0.01, steps, first_order)
        assert close(ours, loop), first_order


def test_meta_gradient_equals_float64_finite_differences():
    p, data = params(dtype=torch.float64), batch(dtype=torch.float64)
    lr = 0.05  # a large step makes the second-order term large enough to matter
    g = M.meta_gradient(p, *data, lr, 1, False)
    rng = torch.Generator().manual_seed(1)
    for _ in range(3):
        v = {k: torch.randn(t.shape, generator=rng, dtype=torch.float64) for k, t in p.items()}
        eps = 1e-6
        plus = M.meta_loss({k: p[k] + eps * v[k] for k in p}, *data, lr, 1, False)
        minus = M.meta_loss({k: p[k] - eps * v[k] for k in p}, *data, lr, 1, False)
        numeric = float((plus - minus) / (2 * eps))
        analytic = float(sum((g[k] * v[k]).sum() for k in p))
        assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-9)


def test_first_order_drops_a_second_order_term_that_is_not_small():
    p, data = params(dtype=torch.float64), batch(dtype=torch.float64)
    second, first = (M.meta_gradient(p, *data, 0.05, 1, fo) for fo in (False, True))
    diff = torch.cat([(second[k] - first[k]).flatten() for k in p]).norm()
    size = torch.cat([second[k].flatten() for k in p]).norm()
    assert diff / size > 0.01, float(diff / size)


def deepcopy_step_meta_gradient(p: dict, x_s, y_s, x_q, y_q, lr: float) -> dict:
    """The seed's trap: adapt a deepcopy of a module with optimizer.step(), then backprop the query
    loss into the copy and hand its gradient to the original."""
    net = torch.nn.Sequential(torch.nn.Linear(1, 40), torch.nn.ReLU(), torch.nn.Linear(40, 40), torch.nn.ReLU(),
                              torch.nn.Linear(40, 1))
    names = ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    with torch.no_grad():
        for name, key in zip(names, C.PARAM_SHAPES):
            net.get_parameter(name).copy_(p[key])
    total = {k: torch.zeros_like(v) for k, v in p.items()}
    for i in range(len(x_s)):
        fast = copy.deepcopy(net)
        opt = torch.optim.SGD(fast.parameters(), lr=lr)
        opt.zero_grad()
        torch.nn.functional.mse_loss(fast(x_s[i]), y_s[i]).backward()
        opt.step()
        fast.zero_grad()
        (torch.nn.functional.mse_loss(fast(x_q[i]), y_q[i]) / len(x_s)).backward()
        for name, key in zip(names, C.PARAM_SHAPES):
            total[key] += fast.get_parameter(name).grad
    return total


def test_the_deepcopy_inner_loop_silently_gives_the_first_order_gradient():
    p32, data32 = params(), batch()
    trap = deepcopy_step_meta_gradient(p32, *data32, 0.05)
    first = M.meta_gradient(p32, *data32, 0.05, 1, True)
    second = M.meta_gradient(p32, *data32, 0.05, 1, False)
    assert close(trap, first)  # no error, no warning: just not MAML
    assert not close(trap, second, rtol=1e-2, atol=1e-4)


def test_meta_loss_is_a_mean_over_tasks_on_the_query_set():
    p, (xs, ys, xq, yq) = params(), batch()
    g = M.meta_gradient(p, xs, ys, xq, yq, 0.01)
    doubled = M.meta_gradient(p, *(torch.cat([a, a]) for a in (xs, ys, xq, yq)), 0.01)
    assert close(g, doubled)  # a sum would double
    swapped = M.meta_gradient(p, xs, ys, xs, ys, 0.01)  # scored on the support set instead
    assert not close(g, swapped, rtol=1e-2)


# ---------------------------------------------------------------- the harness's adaptation
def test_adapt_runs_each_task_on_its_own_copy_and_equals_manual_steps():
    p, (xs, ys, _, _) = params(), batch(n=3)
    path = C.adapt(p, xs, ys, 0.1, 3)
    assert len(path) == 4 and path[3]["w1"].shape == (3, 40, 40)
    for i in range(3):
        theta = {k: v.clone().requires_grad_(True) for k, v in p.items()}
        for _ in range(3):
            g = torch.autograd.grad(C.mse(theta, xs[i], ys[i]), list(theta.values()))
            theta = {k: (v - 0.1 * gi).detach().requires_grad_(True) for (k, v), gi in zip(theta.items(), g)}
        assert close({k: path[3][k][i] for k in p}, theta, rtol=1e-5)
    ys2 = ys.clone()
    ys2[0] += 1.0  # another task's data must not move task 1's weights
    assert close({k: C.adapt(p, xs, ys2, 0.1, 3)[3][k][1] for k in p}, {k: path[3][k][1] for k in p}, rtol=0, atol=0)


class _Init:
    def __init__(self, weights, lr):
        self.weights, self.lr = weights, lr

    def parameters(self):
        return self.weights

    def inner_lr(self):
        return self.lr


def test_evaluate_scores_exactly_one_and_ten_harness_steps():
    prob = H.MAMLTask().build(variant="k5", seed=0, budget=None, seal=Seal(0))
    p = params()
    m = H.MAMLTask().evaluate(_Init({k: v.numpy() for k, v in p.items()}, 0.01), prob, None)
    t = prob.heldout["tasks"]
    xs, ys, xq, yq = (torch.as_tensor(a) for a in (t.x_s, t.y_s, t.x_q, t.y_q))
    path = C.adapt(p, xs, ys, 0.01, 10)
    with torch.no_grad():
        for s in (0, 1, 10):
            assert m[f"mse_{s}step"] == pytest.approx(float(C.mse(path[s], xq, yq).double().mean()), rel=1e-5)
    assert 0 < m["mse_1step_ci95"] < m["mse_1step"]
    per_param = {k: np.full(v.shape, 0.01, np.float32) for k, v in p.items()}  # Meta-SGD style rates
    m2 = H.MAMLTask().evaluate(_Init({k: v.numpy() for k, v in p.items()}, per_param), prob, None)
    assert m2["mse_10step"] == pytest.approx(m["mse_10step"], rel=1e-5)


@pytest.mark.parametrize("mutate, match", [
    (lambda w: w.pop("b2"), "keys"),
    (lambda w: w.__setitem__("w1", np.zeros((40, 41), np.float32)), "w1"),
    (lambda w: w.__setitem__("w0", np.full((40, 1), np.nan, np.float32)), "w0"),
    (lambda w: w.__setitem__("b0", np.zeros(40, np.int64)), "b0"),
])
def test_malformed_weights_are_refused(mutate, match):
    w = {k: v.numpy() for k, v in params().items()}
    mutate(w)
    with pytest.raises(ValueError, match=match):
        H.check_initialisation(w, 0.01)


@pytest.mark.parametrize("lr", [float("nan"), "0.01", True, {"w0": 0.1}])
def test_malformed_learning_rates_are_refused(lr):
    with pytest.raises(ValueError, match="inner"):
        H.check_initialisation({k: v.numpy() for k, v in params().items()}, lr)


def test_a_diverging_adaptation_is_a_capped_score_not_a_crash():
    prob = H.MAMLTask().build(variant="k5", seed=0, budget=None, seal=Seal(0))
    m = H.MAMLTask().evaluate(_Init({k: v.numpy() for k, v in params().items()}, 1e6), prob, None)
    assert m["mse_10step"] <= H.MSE_CAP and m["mse_10step"] > 1e3


# ---------------------------------------------------------------- data
def test_evaluation_tasks_follow_the_papers_distribution_and_are_sealed():
    t = H.MAMLTask().build(variant="k10", seed=3, budget=None, seal=Seal(3)).heldout["tasks"]
    assert len(t) == 600 and t.x_s.shape == (600, 10, 1) and t.x_q.shape == (600, 100, 1)
    assert 0.1 <= t.amplitude.min() and t.amplitude.max() <= 5 and 0 <= t.phase.min() and t.phase.max() <= np.pi
    assert np.abs(t.x_q).max() <= 5
    assert np.allclose(t.y_q, t.amplitude[:, None, None] * np.sin(t.x_q - t.phase[:, None, None]), atol=1e-5)
    sealed = H.MAMLTask().build(variant="k10", seed=3, budget=None, seal=Seal(3, b"k" * 32)).heldout["tasks"]
    assert not np.array_equal(t.amplitude, sealed.amplitude)
    with pytest.raises(ValueError, match="k5, k10"):
        H.MAMLTask().build(variant="k20", seed=0, budget=None, seal=Seal(0))


# ---------------------------------------------------------------- through the harness
@pytest.mark.slow
def test_quick_maml_meets_its_target_and_beats_the_joint_floor():
    from advbench.runner import run

    ref = run("maml", "reference", budget="quick", seed=0, results_dir=None)
    floor = run("maml", "floor", budget="quick", seed=0, results_dir=None)
    assert ref["status"] == "ok" and floor["status"] == "ok", (ref["error"], floor["error"])
    assert ref["targets_met"], ref["metrics"]
    assert ref["metrics"]["mse_1step"] + ref["metrics"]["mse_1step_ci95"] < floor["metrics"]["mse_1step"]


def test_committed_full_runs_meet_the_target_on_every_seed():
    ref, floor = (committed(SPEC, method=m, variant="k10") for m in ("reference", "floor"))
    assert len(ref) >= 5 and len(floor) >= 5
    assert all(r["targets_met"] for r in ref), [r["metrics"]["mse_1step"] for r in ref]
    assert max(r["metrics"]["mse_1step"] for r in ref) < min(r["metrics"]["mse_1step"] for r in floor)


# ---------------------------------------------------------------- benchmark (off by default)
def test_bench_vmap_against_a_per_task_loop(benchmark):
    """Meta-batches per second of the vmapped meta-gradient and of the per-task autograd loop, one run."""
    if benchmark.disabled:
        pytest.skip("a 2-way speed benchmark; run with --benchmark-enable -k bench_vmap -s")
    torch.set_num_threads(1)
    p, data = params(), batch(n=25)
    rates = {}
    for name, fn in (("vmap", M.meta_gradient), ("loop", M.meta_gradient_loop)):
        fn(p, *data, 0.01)  # warm-up
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 3.0:
            fn(p, *data, 0.01)
            n += 1
        rates[name] = n / (time.perf_counter() - t0)
    print(f"\nmeta-batches/s (25 tasks, K=10, one thread): vmap {rates['vmap']:.0f}, loop {rates['loop']:.0f}, "
          f"ratio {rates['vmap'] / rates['loop']:.2f}")
    benchmark.extra_info.update(rates)
    benchmark.pedantic(lambda: M.meta_gradient(p, *data, 0.01), rounds=20, iterations=1)
