"""darts: the finite-difference hypergradient against the exact unrolled one, deriving, the space's
checks, the harness's retraining, sealing, and the quick target."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

import torch.nn.functional as F  # noqa: E402
from torch.func import functional_call  # noqa: E402

from advbench.baselines import darts as bd  # noqa: E402
from advbench.task import Seal  # noqa: E402
from advbench.tasks.darts import SPEC  # noqa: E402
from advbench.tasks.darts import contract as dc  # noqa: E402
from advbench.tasks.darts.heldout import DARTSTask, score  # noqa: E402


@pytest.fixture(scope="module")
def data():
    problem = DARTSTask().build(variant="glyphs", seed=0, budget=SPEC.budgets["quick"], seal=Seal(0, None))
    return problem


def exact_hypergradient(net, opt, alpha, train_batch, val_batch, xi):
    """d/dα L_val(w'(α), α), w' = w − ξ (m·buf + ∇_w L_train(w, α) + λ w), by autograd through the step."""
    group = opt.param_groups[0]
    params = dict(net.named_parameters())
    buffers = {n: b.clone() for n, b in net.named_buffers()}
    a = alpha.detach().clone().requires_grad_(True)

    def loss_at(weights, x, y):
        return F.cross_entropy(functional_call(net, {**weights, **buffers}, (x, a)), y)

    w = {n: p.detach().clone().requires_grad_(True) for n, p in params.items()}
    grads = torch.autograd.grad(loss_at(w, *train_batch), list(w.values()), create_graph=True)
    w_prime = {}
    for (n, p), g in zip(w.items(), grads):
        buf = opt.state[params[n]]["momentum_buffer"]
        w_prime[n] = p - xi * (group["momentum"] * buf + g + group["weight_decay"] * p)
    return torch.autograd.grad(loss_at(w_prime, *val_batch), a)[0]


class SmoothMaxPool(torch.nn.Module):
    """A 3x3 log-sum-exp pool: max3's smooth stand-in for the exactness check."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__()

    def forward(self, x):
        patches = F.unfold(F.pad(x, (1, 1, 1, 1), value=-1e4), 3)  # [n, c*9, 64]
        n, c = x.shape[:2]
        return (5.0 * patches.view(n, c, 9, -1)).logsumexp(2).view_as(x) / 5.0


def hypergradient_errors(data, dtype, seed, epsilon=0.01):
    """Relative error of the finite-difference hypergradient against the exact one, and of the
    gradient at w' that leaves out the mixed term (first order at the virtual step)."""
    torch.manual_seed(seed)
    x, y = torch.as_tensor(data.train.x).to(dtype), torch.as_tensor(data.train.y)
    net = bd.Supernet(c=4).to(dtype)  # the supernet's shape, fewer channels: the double backward stays cheap
    alpha = 0.5 * torch.randn(dc.N_EDGES, len(dc.OPS), dtype=dtype)
    opt = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    for i in range(5):  # a few real steps, so the momentum buffer is not zero
        opt.zero_grad()
        bd.loss(net, alpha, x[i * 32:(i + 1) * 32], y[i * 32:(i + 1) * 32]).backward()
        opt.step()
    o = 40 * seed
    train_batch, val_batch = (x[400 + o:424 + o], y[400 + o:424 + o]), (x[800 + o:824 + o], y[800 + o:824 + o])
    before = [p.detach().clone() for p in net.parameters()]
    fd = bd.hypergradient(net, opt, alpha, train_batch, val_batch, xi=0.025, epsilon=epsilon)
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), before)), "the weights are left as found"
    exact = exact_hypergradient(net, opt, alpha, train_batch, val_batch, xi=0.025)
    a = alpha.detach().requires_grad_(True)
    w_prime = bd.virtual_step(net, opt, alpha, *train_batch, 0.025)
    with torch.no_grad():
        for p, w in zip(net.parameters(), w_prime):
            p.copy_(w)
    at_w_prime = torch.autograd.grad(bd.loss(net, a, *val_batch), a)[0]
    norm = exact.norm()
    return float((fd - exact).norm() / norm), float((at_w_prime - exact).norm() / norm)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_difference_hypergradient_equals_the_exact_unrolled_one_on_a_smooth_supernet(data, dtype, monkeypatch):
    # ReLU and max pooling made smooth, so that a central difference has a derivative to converge to
    monkeypatch.setattr(torch.nn, "ReLU", torch.nn.GELU)
    monkeypatch.setattr(dc, "MaxPool3", SmoothMaxPool)
    rel, without_mixed = hypergradient_errors(data, dtype, seed=0)
    assert rel < 1e-3, rel  # measured: under 1e-4 in float32 and float64
    assert rel < without_mixed / 4, (rel, without_mixed)  # the mixed term is there, and right


def test_finite_difference_hypergradient_is_a_local_average_on_the_real_relu_supernet(data):
    # With ReLU and max pooling, the gradient jumps wherever a unit crosses zero, and a step of the
    # paper's ε = 0.01/||v|| crosses some: the finite difference is a local average of the mixed
    # term, not its value at w. Measured over these six batches: 1.8% to 7.3%, median 4.8% (on the
    # smooth supernet above the same code is within 1e-4). The bound leaves room for BLAS rounding.
    errors = sorted(hypergradient_errors(data, torch.float32, seed)[0] for seed in range(6))
    assert (errors[2] + errors[3]) / 2 < 0.07 and errors[-1] < 0.15, errors


def test_virtual_step_is_the_step_sgd_takes_momentum_and_weight_decay_included(data):
    torch.manual_seed(1)
    x, y = torch.as_tensor(data.train.x[:128]), torch.as_tensor(data.train.y[:128])
    net, alpha = bd.Supernet(), torch.zeros(dc.N_EDGES, len(dc.OPS))
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=3e-4)
    for _ in range(2):
        opt.zero_grad()
        bd.loss(net, alpha, x[:64], y[:64]).backward()
        opt.step()
    predicted = bd.virtual_step(net, opt, alpha, x[64:], y[64:], xi=0.05)
    opt.zero_grad()
    bd.loss(net, alpha, x[64:], y[64:]).backward()
    opt.step()
    for p, q in zip(net.parameters(), predicted):
        torch.testing.assert_close(p.detach(), q, rtol=1e-5, atol=1e-6)


def test_alpha_is_not_a_weight_and_softmax_is_per_edge():
    net = bd.Supernet()
    assert all(p.shape != (dc.N_EDGES, len(dc.OPS)) for p in net.parameters())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) and m.affine for m in net.modules())
    # one edge's α moves only that edge's mixture: with every other edge fixed, a change in edge 0's
    # logits is invisible to a softmax over each row, but would leak under a softmax over the cell
    alpha = torch.zeros(dc.N_EDGES, len(dc.OPS))
    shifted = alpha.clone()
    shifted[0] += 3.0  # adding a constant to one row leaves its softmax unchanged
    x = torch.rand(4, 1, 8, 8)
    net.eval()
    torch.testing.assert_close(net(x, alpha), net(x, shifted))


def test_derive_drops_none_and_keeps_the_two_strongest_inputs_per_node():
    alpha = torch.zeros(dc.N_EDGES, len(dc.OPS))
    alpha[:, 0] = 10.0  # "none" dominates everywhere: it must still never be chosen
    e = dict(((node, inp), i) for i, (node, inp) in enumerate(dc.edges()))
    alpha[e[(0, 1)], dc.OPS.index("conv5")] = 5.0
    alpha[e[(0, 0)], dc.OPS.index("skip")] = 4.0
    alpha[e[(2, 3)], dc.OPS.index("dil3")] = 6.0
    alpha[e[(2, 1)], dc.OPS.index("max3")] = 5.5
    alpha[e[(2, 0)], dc.OPS.index("avg3")] = 1.0
    g = bd.derive(alpha).genotype()
    assert g[0] == (1, "conv5", 0, "skip")
    assert g[2] == (3, "dil3", 1, "max3")
    assert dc.check_genotype(g) == g and all(op != "none" for n in g for op in (n[1], n[3]))


@pytest.mark.parametrize("bad, words", [
    ((), "3 nodes"),
    (((0, "conv3", 0, "skip"), (0, "skip", 1, "skip"), (0, "skip", 1, "skip")), "two different inputs"),
    (((0, "conv3", 2, "skip"), (0, "skip", 1, "skip"), (0, "skip", 1, "skip")), "reads inputs 0..1"),
    (((0, "none", 1, "skip"), (0, "skip", 1, "skip"), (0, "skip", 1, "skip")), "choose from skip"),
    (((0, "conv7", 1, "skip"), (0, "skip", 1, "skip"), (0, "skip", 1, "skip")), "unknown or excluded"),
])
def test_a_malformed_genotype_is_refused_with_the_reason(bad, words):
    with pytest.raises(ValueError, match=words):
        dc.check_genotype(bad)


def test_random_cells_cover_the_space_and_are_valid():
    rng = np.random.default_rng(0)
    cells = [dc.random_genotype(rng) for _ in range(300)]
    assert all(dc.check_genotype(c) == c for c in cells)
    ops = {op for c in cells for n in c for op in (n[1], n[3])}
    assert ops == set(dc.CHOSEN_OPS)
    assert {n[0] for c in cells for n in c[2:]} == {0, 1, 2, 3}


def test_max_pooling_in_channels_last_trains_the_networks_nn_maxpool2d_trains(data, monkeypatch):
    """``max3`` pools in channels-last memory for speed: values and gradients equal to
    ``nn.MaxPool2d(3, 1, 1)``'s with many ties, and a retraining of a cell with max3 edges gives
    the same network bit for bit (the backward pass's order of sums included)."""
    g = torch.Generator().manual_seed(0)
    x = ((torch.randn(9, 16, 8, 8, generator=g) * 2).round() / 2).requires_grad_()  # ties everywhere
    x_ref = x.detach().clone().requires_grad_()
    y, y_ref = dc.MaxPool3()(x), torch.nn.MaxPool2d(3, stride=1, padding=1)(x_ref)
    w = torch.randn(y.shape, generator=g)
    (y * w).sum().backward()
    (y_ref * w).sum().backward()
    assert torch.equal(y, y_ref) and y.is_contiguous() and torch.equal(x.grad, x_ref.grad)

    cell = ((0, "max3", 1, "conv3"), (2, "max3", 0, "skip"), (3, "max3", 1, "avg3"))
    train = data.heldout["train"]
    recipe = dc.RetrainRecipe(epochs=2)
    ours = dc.retrain(cell, train.x[:256], train.y[:256], 3, recipe).state_dict()
    monkeypatch.setattr(dc, "MaxPool3", lambda: torch.nn.MaxPool2d(3, stride=1, padding=1))
    theirs = dc.retrain(cell, train.x[:256], train.y[:256], 3, recipe).state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_the_harness_retrains_from_its_own_sealed_seeds_and_repeats(data):
    sealed = DARTSTask().build(variant="glyphs", seed=0, budget=SPEC.budgets["quick"], seal=Seal(0, b"k" * 32))
    assert sealed.heldout["retrain_seeds"] != data.heldout["retrain_seeds"]
    assert not np.array_equal(sealed.heldout["test"].y, data.heldout["test"].y)
    assert len(data.train) + len(data.heldout["test"].y) == 1800
    cell = ((0, "conv3", 1, "skip"), (2, "avg3", 0, "conv3"), (3, "max3", 2, "conv5"))
    train = data.heldout["train"]
    quick = {**data.heldout, "retrain_seeds": data.heldout["retrain_seeds"][:1],
             "train": type(train)(train.x[:300], train.y[:300])}  # the same recipe on fewer images
    a, b = score(cell, quick), score(cell, quick)
    assert a["test_accuracy"] == b["test_accuracy"] > 0.8
    assert a["parameter_free_ops"] == 3 and a["parameters"] > 10_000


def test_quick_retrains_once_with_the_full_budgets_first_seed():
    quick, full = (DARTSTask().build(variant="glyphs", seed=2, budget=SPEC.budgets[b], seal=Seal(2, b"k" * 32))
                   for b in ("quick", "full"))
    assert len(full.heldout["retrain_seeds"]) == 3 == full.description["retrain"]["seeds"]
    assert quick.heldout["retrain_seeds"] == full.heldout["retrain_seeds"][:1]
    assert quick.description["retrain"]["seeds"] == 1


def test_bad_variant_is_a_usage_error_naming_the_choices(tmp_path):
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "advbench.cli", "run", "--task", "darts", "--variant", "cifar",
                          "--results", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "glyphs" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.slow
def test_quick_budget_meets_its_target_and_beats_nothing_by_search_alone(tmp_path):
    from advbench.runner import run

    rec = run("darts", "reference", budget="quick", seed=0, results_dir=None, threads=1)
    assert rec["status"] == "ok", rec["error"]
    assert rec["metrics"]["test_accuracy"] >= 0.97 and rec["targets_met"]
    genotype = rec["config"]["method"]["genotype"]
    assert dc.check_genotype([tuple(n) for n in genotype])
    assert rec["throughput"]["work"] == 4 * 630  # four epochs over the weight half (1260 search images)


def test_committed_full_runs_meet_the_target_and_search_picks_parametric_cells():
    from committed import committed

    ref, rnd = (committed(SPEC, method=m, variant="glyphs") for m in ("reference", "floor"))
    assert len(ref) >= 5 and len(rnd) >= 10
    assert all(r["targets_met"] for r in ref), [r["metrics"]["test_accuracy"] for r in ref]
    # What the board claims: DARTS's cells score what random cells score (within 0.3 points, under
    # two test images), and it picks convolutions where random draws pick pools and skips half the time.
    ref_acc = np.mean([r["metrics"]["test_accuracy"] for r in ref])
    assert ref_acc >= np.median([r["metrics"]["test_accuracy"] for r in rnd]) - 0.003
    assert np.mean([r["metrics"]["parameter_free_ops"] for r in ref]) < np.mean(
        [r["metrics"]["parameter_free_ops"] for r in rnd])
