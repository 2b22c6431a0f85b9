"""adversarial: the task's PGD against torchattacks (bit-identical), the classic PGD traps, data integrity,
and the reference baseline's quick target through the harness."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
from torch import nn  # noqa: E402

from advbench.baselines import adversarial as ab  # noqa: E402
from advbench.tasks import adversarial as ta  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matmuls: one thread is faster, and two contend on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    return ta.load_split(0)


@pytest.fixture(scope="module")
def trained(data):
    """A briefly (clean-)trained MLP: gradients of a trained net are what the attack sees in practice."""
    train, _ = data
    torch.manual_seed(0)
    model = ab.MLP()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.as_tensor(train.x), torch.as_tensor(train.y)
    for _ in range(100):
        idx = torch.randint(0, len(y), (64,))
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def heldout_tensors(data, n=200):
    _, test = data
    return torch.as_tensor(test.x[:n]), torch.as_tensor(test.y[:n])


@pytest.mark.parametrize("eps", ta.EPSILONS)
def test_pgd_bit_identical_to_torchattacks(trained, data, eps):
    torchattacks = pytest.importorskip("torchattacks")
    x, y = heldout_tensors(data)
    peer = torchattacks.PGD(trained, eps=eps, alpha=eps / 4, steps=ta.PGD_STEPS, random_start=False)
    expected = peer(x, y)
    got = ta.pgd(trained, x, y, eps, eps / 4, ta.PGD_STEPS)
    assert torch.equal(got, expected)
    # The baseline's own PGD (used for training) is the same attack.
    assert torch.equal(ab.pgd_linf(trained, x, y, eps, eps / 4, ta.PGD_STEPS), expected)


@pytest.mark.parametrize("attack", ["task", "baseline"])
def test_perturbation_stays_within_eps_of_the_original_x(trained, data, attack):
    """Projecting around the current iterate instead of the original x lets delta drift to steps * alpha."""
    x, y = heldout_tensors(data)
    eps, steps = 0.05, 40  # 40 steps of eps/4 could walk 10 eps away if the projection were wrong
    fn = ta.pgd if attack == "task" else ab.pgd_linf
    adv = fn(trained, x, y, eps, eps / 4, steps)
    assert (adv - x).abs().max().item() <= eps + 1e-6
    assert adv.min().item() >= 0.0 and adv.max().item() <= 1.0
    # ... and the attack actually uses the ball: many pixels sit on its surface (or on the [0, 1] box).
    on_edge = ((adv - x).abs() > eps - 1e-6) | (adv == 0) | (adv == 1)
    assert on_edge.float().mean().item() > 0.5


def test_gradient_sign_on_a_linear_model():
    """Two-class linear model: CE of label 0 rises along +sign(w1 - w0), so PGD ends at x + eps * that sign."""
    torch.manual_seed(0)
    model = nn.Linear(64, 2, bias=False)
    x = torch.full((3, 64), 0.5)
    y = torch.zeros(3, dtype=torch.long)
    eps = 0.1
    adv = ta.pgd(model, x, y, eps, eps / 4, 8)
    direction = torch.sign(model.weight[1] - model.weight[0]).detach()
    torch.testing.assert_close(adv, (x + eps * direction).expand_as(x))
    # The margin loss agrees on a two-class problem.
    torch.testing.assert_close(ta.pgd(model, x, y, eps, eps / 4, 8, loss="margin"), adv)


def test_model_in_eval_mode_during_attack_and_mode_restored():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10))
    modes = []
    model[1].register_forward_hook(lambda m, i, o: modes.append(m.training))
    x, y = torch.rand(16, 64), torch.randint(0, 10, (16,))
    stats = model[1].running_mean.clone()
    for fn in (ta.pgd, ab.pgd_linf):
        modes.clear()
        model.train()
        fn(model, x, y, 0.1, 0.025, 5)
        assert modes and not any(modes)  # every attack forward pass ran in eval mode
        assert model.training  # ... and the caller's train mode is back
    torch.testing.assert_close(model[1].running_mean, stats)  # batch-norm statistics untouched by the attack
    assert all(p.grad is None for p in model.parameters())  # no gradients leaked onto the weights


def test_attack_works_under_no_grad(trained, data):
    x, y = heldout_tensors(data, 50)
    with torch.no_grad():
        adv = ta.pgd(trained, x, y, 0.1, 0.025, 5)
    assert (adv != x).any()


def test_split_is_a_stratified_partition_and_train_holds_no_test_rows():
    task = ta.AdversarialTask()
    problem = task.build(variant="digits-linf", seed=3, budget=ta.SPEC.budgets["quick"])
    train, test = problem.train, problem.heldout
    assert len(train.y) == 1347 and len(test.y) == 450
    assert train.x.dtype == np.float32 and train.x.min() >= 0 and train.x.max() <= 1
    assert not hasattr(train, "heldout") and not isinstance(train, tuple)
    # Train + held-out is exactly the dataset, row for row (a partition: no row in both).
    from sklearn.datasets import load_digits

    d = load_digits()
    full = np.column_stack([(d.data / 16).astype(np.float32), d.target])
    both = np.vstack([np.column_stack([train.x, train.y]), np.column_stack([test.x, test.y])])
    assert np.array_equal(np.unique(full, axis=0, return_counts=True)[1], np.unique(both, axis=0, return_counts=True)[1])
    assert np.array_equal(np.sort(full, axis=0), np.sort(both, axis=0))
    # Stratified: every class keeps its share in the held-out quarter (within one row).
    counts_full, counts_test = np.bincount(d.target), np.bincount(test.y)
    assert np.all(np.abs(counts_test - counts_full * 0.25) <= 1)
    # A different seed gives a different split.
    other = task.build(variant="digits-linf", seed=4, budget=ta.SPEC.budgets["quick"])
    assert not np.array_equal(other.heldout.y, test.y)


def test_evaluate_metrics_are_consistent(trained, data):
    _, test = data
    problem = ta.Problem(train=None, heldout=test)
    trained.train()
    m = ta.AdversarialTask().evaluate(ab.Classifier(trained), problem, None)
    assert trained.training  # evaluate restores the solution's mode
    assert set(m) == {x.name for x in ta.SPEC.metrics}
    assert m["clean_acc"] >= m["robust_acc_eps0.05"] >= m["robust_acc_eps0.1"] >= m["robust_acc_eps0.2"]
    assert m["strong_robust_acc_eps0.1"] <= m["robust_acc_eps0.1"]
    assert m["gap_strong_vs_pgd"] == pytest.approx(100 * (m["robust_acc_eps0.1"] - m["strong_robust_acc_eps0.1"]))
    # Deterministic: the strong attack's random starts come from a fixed seed.
    assert ta.AdversarialTask().evaluate(trained, problem, None) == m
    with pytest.raises(TypeError):
        ta.AdversarialTask().evaluate(object(), problem, None)


@pytest.mark.slow
def test_quick_target_reference(tmp_path):
    from advbench.runner import run

    rec = run("adversarial", "reference", budget="quick", seed=0, results_dir=tmp_path)
    assert rec["status"] == "ok", rec["error"]
    assert rec["targets_met"], rec["metrics"]
    assert rec["time_to_target_seconds"] is not None
    assert rec["config"]["method"]["eps"] == 0.1


# ---- pytest-benchmark micro-benchmark (disabled by default: `pytest --benchmark-enable -k bench`) ----
def test_bench_pgd(benchmark, trained, data):
    """One PGD-20 attack at eps 0.1 on 450 held-out digits (the per-eps unit of the task's evaluation)."""
    _, test = data
    x, y = torch.as_tensor(test.x), torch.as_tensor(test.y)
    benchmark.group = "PGD-20 L-inf, 450 x 64, MLP 64-256-256-10"
    adv = benchmark(ta.pgd, trained, x, y, 0.1, 0.025, ta.PGD_STEPS)
    assert (adv - x).abs().max().item() <= 0.1 + 1e-6
