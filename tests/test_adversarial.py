"""adversarial: the task's PGD against torchattacks (bit-identical), the Jacobian oracle against autograd,
the classic PGD traps, data integrity and sealing, and the reference baseline's quick target through the harness."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
from torch import nn  # noqa: E402

from advbench.baselines import adversarial as ab  # noqa: E402
from advbench.solution import LocalSolution, SolutionError  # noqa: E402
from advbench.task import Problem, Seal  # noqa: E402
from advbench.tasks.adversarial import SPEC  # noqa: E402
from advbench.tasks.adversarial import contract as ac  # noqa: E402
from advbench.tasks.adversarial import heldout as ta  # noqa: E402

KEY = b"some-secret-key-123"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny matmuls: one thread is faster, and two contend on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    return ta.load_split(Seal(0))


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


@pytest.mark.parametrize("eps", ac.EPSILONS)
def test_pgd_bit_identical_to_torchattacks(trained, data, eps):
    torchattacks = pytest.importorskip("torchattacks")
    x, y = heldout_tensors(data)
    peer = torchattacks.PGD(trained, eps=eps, alpha=eps / 4, steps=ac.PGD_STEPS, random_start=False)
    expected = peer(x, y)
    got = ta.pgd(trained, x, y, eps, eps / 4, ac.PGD_STEPS)
    assert torch.equal(got, expected)
    assert torch.equal(ta.pgd(ta.LocalOracle(trained), x, y, eps, eps / 4, ac.PGD_STEPS), expected)  # the same oracle
    # The baseline's own PGD (used for training) is the same attack.
    assert torch.equal(ab.pgd_linf(trained, x, y, eps, eps / 4, ac.PGD_STEPS), expected)


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


def remote(model):
    """The oracle evaluate uses: the contract's logits_and_jacobian through a (here in-process) handle."""
    return ta.RemoteOracle(LocalSolution(ab.Classifier(model)))


def test_jacobian_is_autograds_jacobian(trained, data):
    x, _ = heldout_tensors(data, 20)
    grads = [None if p.grad is None else p.grad.clone() for p in trained.parameters()]  # left by training
    z, jac = ac.logits_and_jacobian(ab.Classifier(trained), x.numpy())
    expected = torch.autograd.functional.jacobian(trained, x)  # [B, C, B, D]: cross-example blocks are zero
    idx = torch.arange(len(x))
    torch.testing.assert_close(jac, expected[idx, :, idx], rtol=1e-5, atol=1e-6)
    assert torch.equal(z, trained(x)) and jac.shape == (20, 10, 64)
    assert all((g is None and p.grad is None) or torch.equal(g, p.grad) for g, p in zip(grads, trained.parameters()))
    with torch.no_grad():  # a caller's no_grad does not stop it
        assert torch.equal(ac.logits_and_jacobian(trained, x.numpy())[1], jac)


@pytest.mark.parametrize("loss", ["ce", "margin"])
def test_remote_oracle_gradient_matches_autograd(trained, data, loss):
    """J^T dL/dz equals autograd's gradient through the loss up to float rounding, with the same signs."""
    x, y = heldout_tensors(data)
    z_local, g_local = ta.LocalOracle(trained).loss_grad(x.clone(), y, loss)
    z_remote, g_remote = remote(trained).loss_grad(x.clone(), y, loss)
    assert torch.equal(z_local, z_remote)
    torch.testing.assert_close(g_remote, g_local, rtol=1e-4, atol=1e-5 * g_local.abs().max().item())
    assert torch.equal(g_remote.sign(), g_local.sign())


@pytest.mark.parametrize("loss", ["ce", "margin"])
@pytest.mark.parametrize("eps", ac.EPSILONS)
def test_pgd_through_the_scoring_process_equals_local_pgd(trained, data, eps, loss):
    """The attack evaluate runs (labels here, logits and Jacobians from the solution's side) gives
    exactly the adversarial examples of the local autograd attack: the two gradients differ in the
    last bits only, never in sign, on these digits."""
    x, y = heldout_tensors(data)
    local = ta.pgd(trained, x, y, eps, eps / 4, ac.PGD_STEPS, loss=loss)
    assert torch.equal(ta.pgd(remote(trained), x, y, eps, eps / 4, ac.PGD_STEPS, loss=loss), local)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    start = ta.pgd(trained, x, y, eps, eps / 10, 10, random_start=True, loss=loss, generator=g1)
    assert torch.equal(ta.pgd(remote(trained), x, y, eps, eps / 10, 10, random_start=True, loss=loss, generator=g2), start)


def test_strong_attack_through_the_scoring_process_equals_local(trained, data):
    x, y = heldout_tensors(data, 120)
    local = ta.strong_attack_correct(trained, x, y, ac.PRIMARY_EPS)
    assert torch.equal(ta.strong_attack_correct(remote(trained), x, y, ac.PRIMARY_EPS), local)
    assert local.float().mean() < (trained(x).argmax(1) == y).float().mean()  # it did break some digits


def test_margin_gradient_splits_ties_as_amax_does():
    """Two wrong classes tied for the best logit share the margin's gradient, as torch's amax backward does."""
    model = nn.Linear(4, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0]]))
    x, y = torch.tensor([[0.2, 0.5, 0.5, 0.3]]), torch.tensor([0])
    _, local = ta.LocalOracle(model).loss_grad(x.clone(), y, "margin")
    _, got = ta.RemoteOracle(LocalSolution(model), n_classes=3).loss_grad(x.clone(), y, "margin")
    torch.testing.assert_close(got, local)
    torch.testing.assert_close(got, torch.tensor([[-1.0, 0.5, 0.5, 0.0]]))


def test_evaluate_refuses_bad_logits(data):
    class Returns(LocalSolution):
        def __init__(self, reply):
            super().__init__(None)
            self.reply = reply

        def apply(self, fn, *args, **kwargs):
            return self.reply(fn)

    _, test = data
    problem = Problem(train=None, heldout=ta.Heldout(test))
    n = len(test.y)
    for reply, err in [(lambda fn: np.full((n, 10), np.nan, np.float32), ValueError),
                       (lambda fn: np.zeros((n, 9), np.float32), ValueError),
                       (lambda fn: np.zeros((n, 10), np.int64), TypeError),
                       (lambda fn: [[0.0] * 10] * n, TypeError)]:
        with pytest.raises(err):
            ta.AdversarialTask().evaluate(Returns(reply), problem, None)
    jac_nan = np.full((n, 10, 64), np.inf, np.float32)
    with pytest.raises(ValueError, match="Jacobian"):
        ta.AdversarialTask().evaluate(
            Returns(lambda fn: np.zeros((n, 10), np.float32) if fn.endswith(":logits")
                    else (np.zeros((n, 10), np.float32), jac_nan)), problem, None)


def test_split_is_a_stratified_partition_and_train_holds_no_test_rows():
    task = ta.AdversarialTask()
    problem = task.build(variant="digits-linf", seed=3, budget=SPEC.budgets["quick"], seal=Seal(3))
    train, test = problem.train, problem.heldout.test
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
    other = task.build(variant="digits-linf", seed=4, budget=SPEC.budgets["quick"], seal=Seal(4))
    assert not np.array_equal(other.heldout.test.y, test.y)


def test_unsealed_data_is_the_old_data_and_sealed_data_differs():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    task, seed = ta.AdversarialTask(), 3
    plain = task.build(variant="digits-linf", seed=seed, budget=None, seal=Seal(seed))
    d = load_digits()
    x_tr, x_te, y_tr, y_te = train_test_split((d.data / 16.0).astype(np.float32), d.target.astype(np.int64),
                                              test_size=0.25, stratify=d.target, random_state=seed)  # the old code
    assert np.array_equal(plain.heldout.test.x, x_te) and np.array_equal(plain.heldout.test.y, y_te)
    assert np.array_equal(plain.train.x, x_tr) and np.array_equal(plain.train.y, y_tr)
    assert plain.heldout.strong_seed == ta.STRONG_SEED == 1234  # the old fixed seed of the random starts
    sealed = task.build(variant="digits-linf", seed=seed, budget=None, seal=Seal(seed, key=KEY))
    assert not np.array_equal(sealed.heldout.test.x, x_te)
    assert np.array_equal(np.bincount(sealed.heldout.test.y), np.bincount(y_te))
    assert sealed.heldout.strong_seed != ta.STRONG_SEED


def test_evaluate_metrics_are_consistent(trained, data):
    _, test = data
    problem = Problem(train=None, heldout=ta.Heldout(test))
    trained.train()
    m = ta.AdversarialTask().evaluate(LocalSolution(ab.Classifier(trained)), problem, None)
    assert trained.training  # evaluate restores the solution's mode
    assert set(m) == {x.name for x in SPEC.metrics}
    assert m["clean_acc"] >= m["robust_acc_eps0.05"] >= m["robust_acc_eps0.1"] >= m["robust_acc_eps0.2"]
    assert m["strong_robust_acc_eps0.1"] <= m["robust_acc_eps0.1"]
    assert m["gap_strong_vs_pgd"] == pytest.approx(100 * (m["robust_acc_eps0.1"] - m["strong_robust_acc_eps0.1"]))
    # Deterministic: the strong attack's random starts come from a fixed seed.
    assert ta.AdversarialTask().evaluate(LocalSolution(trained), problem, None) == m
    # The same numbers as the old evaluation, which attacked the model in-process with autograd.
    x, y = torch.as_tensor(test.x), torch.as_tensor(test.y)
    with torch.no_grad():
        assert m["clean_acc"] == (trained.eval()(x).argmax(1) == y).float().mean().item()
        pgd01 = trained(ta.pgd(trained, x, y, 0.1, 0.025, ac.PGD_STEPS)).argmax(1) == y
    assert m["robust_acc_eps0.1"] == pgd01.float().mean().item()
    assert m["strong_robust_acc_eps0.1"] == ta.strong_attack_correct(trained, x, y, 0.1, pgd01).float().mean().item()
    # What is not a model fails next to the solution; the TypeError comes back as a SolutionError.
    with pytest.raises(SolutionError, match="TypeError: solution must be an nn.Module"):
        ta.AdversarialTask().evaluate(LocalSolution(object()), problem, None)


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
    adv = benchmark(ta.pgd, trained, x, y, 0.1, 0.025, ac.PGD_STEPS)
    assert (adv - x).abs().max().item() <= 0.1 + 1e-6
