"""dp-fedavg: ε against opacus' accountants, noise really added, the user-level aggregate, the ledger check."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
opacus = pytest.importorskip("opacus")

from advbench.task import Seal  # noqa: E402
from advbench.tasks.dp_fedavg import SPEC  # noqa: E402
from advbench.tasks.dp_fedavg import heldout as H  # noqa: E402
from advbench.tasks.dp_fedavg.contract import DELTA, accountant_epsilon  # noqa: E402

B = pytest.importorskip("advbench.baselines.dp_fedavg")

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class _Ctx:
    def __init__(self, seed: int = 0, **limits) -> None:
        self.seed, self.limits, self.device = seed, limits, "cpu"
        self.counts: list[float] = []
        self.config: dict = {}

    def record_config(self, **config):
        self.config.update(config)

    def count(self, n):
        self.counts.append(n)

    def progress(self, *args):
        pass

    def checkpoint(self, solution, step=None):
        pass


def _opacus_epsilon(sigma: float, q: float, steps: int, accountant: str) -> float:
    from opacus.accountants import PRVAccountant, RDPAccountant

    acc = RDPAccountant() if accountant == "rdp" else PRVAccountant()
    for _ in range(steps):  # one step at a time, as a DPOptimizer's hook records them
        acc.step(noise_multiplier=sigma, sample_rate=q)
    return acc.get_epsilon(delta=DELTA)


# ---------------------------------------------------------------- accounting
@pytest.mark.slow
def test_record_in_a_run_carries_the_accountants_epsilon_and_meets_the_quick_target():
    from advbench.runner import run

    rec = run("dp-fedavg", "reference", budget="quick", seed=0, results_dir=None)
    assert rec["status"] == "ok", rec["error"]
    m = rec["metrics"]
    assert rec["targets_met"], m
    sigma, q, steps = m["noise_multiplier"], m["sample_rate"], int(m["steps"])
    assert sigma > 0 and 0 < q < 1 and steps == rec["config"]["method"]["steps"]
    assert m["epsilon_rdp"] == pytest.approx(_opacus_epsilon(sigma, q, steps, "rdp"), rel=1e-9)
    assert m["epsilon_prv"] == pytest.approx(_opacus_epsilon(sigma, q, steps, "prv"), rel=1e-3)
    assert m["epsilon"] == m["epsilon_rdp"] <= 8.0
    assert m["epsilon_prv"] < m["epsilon_rdp"]  # PRV is the tighter accountant
    assert rec["config"]["method"]["noise_multiplier"] == sigma


@pytest.mark.parametrize("epsilon", [1.0, 3.0, 8.0])
def test_noise_multiplier_is_what_opacus_make_private_with_epsilon_picks(epsilon):
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    n, batch, epochs = 135, 27, 20
    loader = DataLoader(TensorDataset(torch.zeros(n, 4), torch.zeros(n, dtype=torch.long)), batch_size=batch)
    net = torch.nn.Linear(4, 2)
    _, opt, _ = PrivacyEngine(accountant="rdp").make_private_with_epsilon(
        module=net, optimizer=torch.optim.SGD(net.parameters(), lr=1.0), data_loader=loader, target_epsilon=epsilon,
        target_delta=DELTA, epochs=epochs, max_grad_norm=1.0)
    ours = B.noise_multiplier(epsilon, DELTA, 1 / len(loader), epochs * len(loader), "rdp")
    assert ours == pytest.approx(opt.noise_multiplier, rel=1e-12)
    assert accountant_epsilon({"noise_multiplier": ours, "sample_rate": 1 / len(loader), "steps": epochs * len(loader),
                               "delta": DELTA}, "rdp") <= epsilon


def test_ledger_over_budget_or_of_the_wrong_kind_is_refused():
    good = {"level": "user", "noise_multiplier": 1.0, "sample_rate": 0.1, "steps": 100, "delta": DELTA,
            "accountant": "rdp", "clip": 1.0}
    eps = H.check_ledger(good, "user", 8.0)["epsilon"]
    assert 0 < eps < 8.0
    with pytest.raises(ValueError, match="privacy budget exceeded"):
        H.check_ledger(good, "user", eps / 2)
    with pytest.raises(ValueError, match="record'-level"):
        H.check_ledger(good, "record", 8.0)
    with pytest.raises(ValueError, match="delta"):
        H.check_ledger({**good, "delta": 1e-3}, "user", 8.0)
    with pytest.raises(ValueError, match="lacks steps"):
        H.check_ledger({k: v for k, v in good.items() if k != "steps"}, "user", 8.0)
    with pytest.raises(ValueError, match="out of range"):
        H.check_ledger({**good, "sample_rate": 1.5}, "user", 8.0)
    with pytest.raises(ValueError, match="privacy budget exceeded"):  # no noise is infinite ε
        H.check_ledger({**good, "noise_multiplier": 0.0}, "user", 8.0)
    nonprivate = H.check_ledger({**good, "noise_multiplier": 0.0}, "user", math.inf)
    assert "epsilon" not in nonprivate and nonprivate["steps"] == 100
    assert H.check_ledger({**good, "steps": 0}, "user", 1.0)["epsilon"] == 0.0  # no data touched


# ---------------------------------------------------------------- record level: noise really is added
def _client(sigma: float, seed: int = 0):
    prob = H.DPFedAvgTask().build(variant="record-eps3", seed=0, budget=None, seal=Seal(0))
    c = prob.train.clients[0]
    cfg = B.RecordConfig()
    net = B.model(prob.train.n_features, prob.train.n_classes, cfg.hidden)
    client = B.DPSGDClient(c.x, c.y, net, cfg, sigma, torch.Generator().manual_seed(seed), private=True)
    return client, cfg, c


def _clipped_mean_gradient(client, cfg, xb, yb) -> torch.Tensor:
    """The noiseless DP-SGD gradient: per-example gradients (torch.func) clipped, summed, / expected batch."""
    from torch.func import functional_call, grad, vmap

    module = B.model(64, 10, cfg.hidden)  # a plain copy: opacus' hooks stay out of torch.func
    with torch.no_grad():
        for mine, theirs in zip(module.parameters(), client.parameters()):
            mine.copy_(theirs)
    params = {k: v.detach() for k, v in module.named_parameters()}

    def loss(p, x, y):
        return torch.nn.functional.cross_entropy(functional_call(module, p, (x[None],)), y[None])

    g = vmap(grad(loss), in_dims=(None, 0, 0))(params, xb, yb)
    flat = torch.cat([g[k].reshape(len(yb), -1) for k in params], dim=1)
    flat = flat * torch.clamp(cfg.clip / (flat.norm(dim=1, keepdim=True) + 1e-6), max=1.0)
    return flat.sum(0) / (client.loader.sample_rate * client.n)


@pytest.mark.parametrize("sigma", [0.0, 2.0])
def test_each_dp_sgd_step_adds_gaussian_noise_of_std_sigma_clip_over_expected_batch(sigma):
    client, cfg, data = _client(sigma)
    xb, yb = torch.as_tensor(data.x[:30]), torch.as_tensor(data.y[:30])
    start = [p.detach().clone() for p in client.parameters()]
    expected = _clipped_mean_gradient(client, cfg, xb, yb)
    client.batches = iter([(xb, yb)])
    client.train(start, steps=1)
    step = torch.cat([(s - p.detach()).reshape(-1) for s, p in zip(start, client.parameters())]) / cfg.lr
    residual = step - expected
    noise_std = sigma * cfg.clip / (client.loader.sample_rate * client.n)
    if sigma == 0:
        assert residual.abs().max() < 1e-5  # the same clipped mean gradient, and nothing else
    else:
        assert residual.std().item() == pytest.approx(noise_std, rel=0.15)  # 650 draws
        assert abs(residual.mean().item()) < 4 * noise_std / math.sqrt(residual.numel())
    assert client.spent() == (sigma, client.loader.sample_rate, 1)


def test_a_record_level_run_counts_every_clients_steps_and_reports_the_largest():
    prob = H.DPFedAvgTask().build(variant="record-eps8", seed=0, budget=None, seal=Seal(0))
    ctx = _Ctx(record_rounds=2)
    sol = B.train(prob.train, ctx)
    ledger = sol.privacy_ledger()
    assert ledger["steps"] == 2 * B.RecordConfig().local_steps == ctx.config["steps"]
    assert ledger["noise_multiplier"] == ctx.config["noise_multiplier"] > 0
    assert ledger["sample_rate"] == pytest.approx(B.RecordConfig().expected_batch / 135, rel=0.01)


# ---------------------------------------------------------------- user level
def test_private_mean_clips_whole_updates_and_divides_by_the_expected_count():
    gen = torch.Generator().manual_seed(0)
    updates = torch.randn(7, 50, generator=gen) * torch.tensor([0.1, 1, 3, 10, 0.5, 2, 30])[:, None]
    clipped = B.clip_updates(updates, 1.0)
    norms = clipped.norm(dim=1)
    assert torch.all(norms <= 1.0 + 1e-6)
    small = updates.norm(dim=1) <= 1.0
    assert torch.allclose(clipped[small], updates[small])  # within the bound: untouched
    cos = torch.nn.functional.cosine_similarity(clipped, updates, dim=1)
    assert torch.allclose(cos, torch.ones(7), atol=1e-6)  # direction kept
    explicit = sum(u * min(1.0, 1.0 / float(u.norm())) for u in updates) / 10.0
    assert torch.allclose(B.private_mean(updates, 1.0, 0.0, 10.0, gen, 50), explicit, atol=1e-6)


def test_private_mean_noise_has_std_sigma_clip_over_qn_and_empty_rounds_release_noise():
    gen = torch.Generator().manual_seed(1)
    dim, sigma, clip, expected = 20_000, 1.5, 0.7, 100.0
    updates = torch.zeros(3, dim)
    out = B.private_mean(updates, clip, sigma, expected, gen, dim)
    assert out.std().item() == pytest.approx(sigma * clip / expected, rel=0.03)
    empty = B.private_mean(torch.zeros(0, dim), clip, sigma, expected, gen, dim)
    assert empty.shape == (dim,) and empty.std().item() == pytest.approx(sigma * clip / expected, rel=0.03)


def test_user_level_samples_clients_by_poisson_not_a_fixed_number():
    prob = H.DPFedAvgTask().build(variant="user-nonprivate", seed=0, budget=None, seal=Seal(0))
    ctx = _Ctx(user_rounds=40)
    sol = B.train(prob.train, ctx)
    counts = np.array(ctx.counts)
    assert len(set(counts.tolist())) > 5  # a fixed K would give one value
    assert counts.mean() == pytest.approx(B.UserConfig().sample_rate * 1000, rel=0.1)
    acc = float((sol.predict(prob.heldout["x"]) == prob.heldout["y"]).mean())
    assert acc > 0.5  # learns (10 classes: chance is 0.1)


# ---------------------------------------------------------------- data
def test_sealed_synthetic_data_cannot_be_regenerated_from_the_public_seed():
    from sklearn.datasets import make_classification

    sealed = H.synthetic(Seal(3, b"k" * 32))
    public = H.synthetic(Seal(3))
    x_pub, _ = make_classification(n_samples=70_000, n_features=64, n_informative=20, n_redundant=2, n_classes=10,
                                   class_sep=1.5, random_state=3)
    pub_rows = {r.tobytes() for r in x_pub.astype(np.float32)}
    assert all(r.tobytes() in pub_rows for r in public[2][:50])  # unsealed: reproducible from the seed
    assert not any(r.tobytes() in pub_rows for r in sealed[2][:50])


def test_clients_have_equal_sizes_so_every_client_has_the_same_epsilon():
    prob = H.DPFedAvgTask().build(variant="record-eps1", seed=2, budget=None, seal=Seal(2))
    sizes = prob.train.sizes
    assert len(sizes) == 10 and sizes.max() - sizes.min() <= 1
    assert all(len(np.unique(c.y)) == 10 for c in prob.train.clients)  # IID: every digit at every client
    user = H.DPFedAvgTask().build(variant="user-eps3", seed=2, budget=None, seal=Seal(2))
    assert len(user.train.clients) == 1000 and set(user.train.sizes) == {60}
    assert len(user.heldout["y"]) == 10_000


def test_every_variant_parses_and_the_budgets_cover_them():
    for v in SPEC.variants:
        level, eps = H.parse_variant(v)
        assert level in ("record", "user") and (eps in (1.0, 3.0, 8.0) or math.isinf(eps))
    assert set(SPEC.budgets["full"].variants) == set(SPEC.variants)


# ---------------------------------------------------------------- through the harness and the CLI
def test_floor_reads_no_data_and_spends_no_epsilon():
    from advbench.runner import run

    rec = run("dp-fedavg", "floor", budget="quick", seed=0, results_dir=None)
    assert rec["status"] == "ok", rec["error"]
    assert rec["metrics"]["epsilon"] == 0.0 and 0.05 < rec["metrics"]["accuracy"] < 0.15


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
    RDP and PRV accountants (step by step, as DPOptimizer records them), never above the variant's."""
    from committed import committed

    recs = committed(SPEC, ok_only=False)
    assert recs, f"no committed full-budget records of {SPEC.id}"
    private = [r for r in recs if r["status"] == "ok" and "epsilon" in r["metrics"] and r["metrics"]["steps"] > 0]
    assert {r["variant"] for r in private} == {v for v in SPEC.variants if "nonprivate" not in v}
    for r in private:
        m = r["metrics"]
        _, budget = H.parse_variant(r["variant"])
        sigma, q, steps = m["noise_multiplier"], m["sample_rate"], int(m["steps"])
        assert m["epsilon_rdp"] == pytest.approx(_opacus_epsilon(sigma, q, steps, "rdp"), rel=1e-9), r["run_id"]
        assert m["epsilon_prv"] == pytest.approx(_opacus_epsilon(sigma, q, steps, "prv"), rel=1e-3), r["run_id"]
        assert m["epsilon"] <= budget and sigma > 0, r["run_id"]
    for r in recs:
        if "nonprivate" in r["variant"] and r["method"] == "reference":
            assert "epsilon" not in r["metrics"] and r["metrics"]["noise_multiplier"] == 0.0
