"""nas: the controller's policy gradient against torch.distributions, the baseline's order, the cached
table, the oracle's budget (duplicates count, nothing past it, validation numbers only), the scores
read from the ask log, and the quick target through the runner."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from advbench.spec import Budget  # noqa: E402
from advbench.task import Seal  # noqa: E402
from advbench.tasks.nas import SPEC  # noqa: E402
from advbench.tasks.nas import contract as C  # noqa: E402
from advbench.tasks.nas import heldout as H  # noqa: E402

M = pytest.importorskip("advbench.baselines.nas")

ADVBENCH = [str(Path(sys.executable).with_name("advbench"))]


def problem(evaluations: int = 50):
    budget = Budget("test", 60, {"evaluations": evaluations}, ("glyphs-mlp",))
    return H.NASTask().build(variant="glyphs-mlp", seed=0, budget=budget, seal=Seal(0))


class _Handle:
    """What evaluate() gets, in process: the Choice's two calls."""

    def __init__(self, choice: C.Choice) -> None:
        self.choice = choice

    def architecture(self):
        return self.choice.architecture()

    def asks(self):
        return self.choice.asks()


# ---------------------------------------------------------------- the policy gradient
def categorical_reference(policy: "M.Controller", actions: list[int]):
    """Σ log π and Σ entropy of ``actions`` written with torch.distributions.Categorical."""
    x, state = policy.start, None
    logp, ent = torch.zeros(()), torch.zeros(())
    for t, a in enumerate(actions):
        state = policy.cell(x, state)
        dist = torch.distributions.Categorical(logits=policy.heads[t](state[0])[0])
        logp = logp + dist.log_prob(torch.tensor(a))
        ent = ent + dist.entropy()
        x = policy.embed[t](torch.tensor([a]))
    return logp, ent


def grads(policy, loss):
    return [g if g is not None else torch.zeros_like(p)
            for p, g in zip(policy.parameters(), torch.autograd.grad(loss, list(policy.parameters()), allow_unused=True))]


@pytest.mark.parametrize("advantage, beta", [(0.7, 0.0), (-1.3, 0.05)])
def test_policy_gradient_equals_the_one_categorical_gives(advantage, beta):
    torch.manual_seed(0)
    policy = M.Controller(C.N_CHOICES, 16)
    actions, logp, ent, _ = policy(torch.Generator().manual_seed(3))
    ours = grads(policy, M.reinforce_loss(logp, ent, advantage, beta))
    ref_logp, ref_ent = categorical_reference(policy, actions)
    theirs = grads(policy, -advantage * ref_logp - beta * ref_ent)
    assert logp.item() == pytest.approx(ref_logp.item(), abs=1e-6)
    assert ent.item() == pytest.approx(ref_ent.item(), abs=1e-6)
    for a, b in zip(ours, theirs):
        assert torch.allclose(a, b, atol=1e-6)


def test_the_sampled_actions_are_fed_back_and_every_decision_is_trained():
    torch.manual_seed(1)
    policy = M.Controller(C.N_CHOICES, 16)
    actions, logp, _, _ = policy(torch.Generator().manual_seed(5))
    _, replay, _, _ = policy(actions=actions)  # teacher-forced with the same choices: the same log-prob
    assert logp.item() == pytest.approx(replay.item(), abs=1e-6)
    g = dict(zip((n for n, _ in policy.named_parameters()), grads(policy, M.reinforce_loss(logp, logp * 0, 1.0, 0.0))))
    for t in range(len(C.N_CHOICES)):  # a sum over all four decisions: every head gets a gradient
        assert g[f"heads.{t}.weight"].abs().sum() > 0, t
    # the first choice's embedding is read by the second step: its row gets a gradient, the others none
    emb = g["embed.0.weight"]
    assert emb[actions[0]].abs().sum() > 0 and emb[[i for i in range(C.N_CHOICES[0]) if i != actions[0]]].abs().sum() == 0


def test_sampling_follows_the_policys_probabilities():
    policy = M.Controller(C.N_CHOICES, 8)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        firsts = [policy(gen)[0][0] for _ in range(4000)]
        _, _, _, logits = policy(actions=[0, 0, 0, 0])
    p = torch.softmax(logits[0], -1).numpy()
    freq = np.bincount(firsts, minlength=len(p)) / len(firsts)
    assert np.abs(freq - p).max() < 0.03, (freq, p)


def test_the_baseline_is_updated_after_the_advantage():
    b = M.MovingBaseline(0.5)
    assert b.advantage(1.0) == 0.0  # starts at the first reward
    assert b.advantage(3.0) == pytest.approx(2.0)  # 3 - 1, not 3 - (0.5 * 1 + 0.5 * 3)
    assert b.value == pytest.approx(2.0)


# ---------------------------------------------------------------- the table and its cache
def test_cache_path_carries_the_version_and_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ADVBENCH_CACHE", str(tmp_path / "c"))
    assert H.cache_path() == tmp_path / "c" / f"nas-glyphs-mlp-table-v{H.TABLE_VERSION}-public.npz"
    monkeypatch.delenv("ADVBENCH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert H.cache_path().parent == tmp_path / "x" / "advbench"


def test_a_missing_or_broken_cache_is_rebuilt_and_written_atomically(monkeypatch, tmp_path):
    monkeypatch.setenv("ADVBENCH_CACHE", str(tmp_path))
    fake = np.random.default_rng(0).uniform(size=(C.N_ARCHITECTURES, len(H.COLUMNS)))
    calls = []
    monkeypatch.setattr(H, "build_table", lambda *a, **k: calls.append(1) or fake.copy())
    H.cache_path().parent.mkdir(parents=True, exist_ok=True)
    H.cache_path().write_bytes(b"truncated")
    H._LOADED.clear()
    # The public table: the shipped copy, when it is the pinned table; nothing is built.
    assert H.load_table().sha256() == H.TABLE_SHA256 and calls == []
    # A shipped copy that is not the pinned table is never used: the table is built.
    H._LOADED.clear()
    other = tmp_path.parent / f"{tmp_path.name}-shipped" / H.PUBLIC_TABLE_FILE.name
    other.parent.mkdir()
    H._write_atomic(other, fake)
    monkeypatch.setattr(H, "PUBLIC_TABLE_FILE", other)
    table = H.load_table()
    assert calls == [1] and np.array_equal(table.test_accuracy, fake[:, 2])
    assert [p.name for p in tmp_path.iterdir()] == [H.cache_path().name]  # no temporary file left
    H._LOADED.clear()
    assert np.array_equal(H.load_table().validation_accuracy, fake[:, 0]) and calls == [1]  # read, not rebuilt


def test_the_table_is_the_pinned_one_and_a_rebuilt_slice_equals_its_rows():
    """Version 1's numbers changed under its name once (the split under it moved): a cache that is not
    the table this code pins, or a rebuild that differs from it, fails here, not on the board.

    On one machine a rebuild is bit for bit (two worker processes and this one agree). The shipped
    table was built on another CPU (an Intel Xeon; this one may be an AMD EPYC without AVX-512), and
    float32 sums round differently with other vector kernels: measured, groups 0 and 6 rebuilt on
    the EPYC against the Xeon's rows, 8 and 10 of 12 validation losses differ by at most 6e-4, and one
    architecture's accuracies by one prediction: 1/1350 (validation: 450 a fold; test: 450 images,
    the mean of three networks) and 1/2700 (train: 900 a fold). Up to three predictions in at most
    two rows pass here; a changed recipe or a tampered table moves far more."""
    table = H.load_table()  # the user's cache (built here first if missing: about 85 s)
    assert table.sha256() == H.TABLE_SHA256, "the table's numbers changed: bump TABLE_VERSION and re-pin"
    groups = [0, 6]  # depth 1 width 8, depth 2 width 16: 24 rows, a few seconds
    cached = np.stack([getattr(table, c) for c in H.COLUMNS], axis=1)
    two, one = H.build_table(groups, workers=2), H.build_table(groups[1:], workers=1)
    assert np.array_equal(two[12:], one)  # side by side in two worker processes, and in this one
    shipped = np.concatenate([cached[g * 12:(g + 1) * 12] for g in groups])
    accuracy = [0, 2, 3]  # validation, test and train accuracy: one prediction is 1/1350, 1/1350, 1/2700
    moved = np.abs(two[:, accuracy] - shipped[:, accuracy]).max(axis=0)
    assert (moved <= np.array([3 / 1350, 3 / 1350, 3 / 2700]) + 1e-12).all(), moved
    assert (two[:, accuracy] != shipped[:, accuracy]).any(axis=1).sum() <= 2  # rows whose accuracies moved
    assert np.allclose(two[:, 1], shipped[:, 1], rtol=0, atol=2e-3)  # validation loss


def test_each_key_has_its_own_table_of_its_own_glyphs(monkeypatch, tmp_path):
    """Sealed, the table is trained on glyphs made under the run's key (v2's was scikit-learn's public
    digits, which a method could train the same networks on); the same key gives the same rows."""
    key = b"k" * 32
    monkeypatch.setenv("ADVBENCH_CACHE", str(tmp_path))
    assert H.cache_path(key).name == f"nas-glyphs-mlp-table-v{H.TABLE_VERSION}-{H.key_name(key)}.npz"
    assert H.key_name(key).startswith("key-") and H.key_name(key)[4:] not in key.hex()
    public, sealed = H.table_folds(None), H.table_folds(key)
    assert not np.allclose(public[0][2].x, sealed[0][2].x)  # other test images
    rows = H.build_table([0], workers=1, key=key)  # depth 1, width 8: 12 rows, about a second
    assert np.array_equal(rows, H.build_table([0], workers=1, key=key))
    assert not np.array_equal(rows, H.build_table([0], workers=1))
    asked = []
    monkeypatch.setattr(H, "load_table", lambda *, key=None, device="cpu": asked.append((key, device)) or H._as_table(
        np.tile([0.9, 0.3, 0.9, 0.95], (C.N_ARCHITECTURES, 1))))
    H.NASTask().build(variant="glyphs-mlp", seed=3, budget=None, seal=Seal(3, key))
    prob = H.NASTask().build(variant="glyphs-mlp", seed=3, budget=None, seal=Seal(3), device="cuda")
    assert asked == [(key, "cpu"), (None, "cuda")] and prob.description["table_device"] == "cuda"


def test_on_cuda_the_table_is_trained_on_the_gpu_with_the_cpu_tables_draws(monkeypatch, tmp_path):
    """The ``cuda`` profile: the runner hands ``build`` the profile's device (``SPEC.harness_device``),
    the table is trained there and cached under a name of its own, and the shipped public table (the
    CPU's) is not used for it. Every random number is drawn on the CPU, so a GPU trains the same
    networks: its rows are the CPU's within float rounding (checked where torch sees a GPU; here the
    device plumbing runs on the CPU and must give the default path's rows bit for bit)."""
    import torch

    from advbench.runner import run

    assert "cuda" in SPEC.profiles and SPEC.harness_device
    monkeypatch.setenv("ADVBENCH_CACHE", str(tmp_path))
    assert H.cache_path(None, "cuda").name == f"nas-glyphs-mlp-table-v{H.TABLE_VERSION}-cuda-public.npz"
    assert H.cache_path(b"k" * 32, "cpu") == H.cache_path(b"k" * 32)  # the CPU's names are unchanged
    fake = np.random.default_rng(1).uniform(size=(C.N_ARCHITECTURES, len(H.COLUMNS)))
    built = []
    monkeypatch.setattr(H, "build_table", lambda *a, **k: built.append(k.get("device")) or fake.copy())
    H._LOADED.clear()
    try:
        assert np.array_equal(H.load_table(device="cuda").test_accuracy, fake[:, 2]) and built == ["cuda"]
        assert H.load_table().sha256() == H.TABLE_SHA256 and built == ["cuda"]  # the CPU: the shipped table
        assert [p.name for p in tmp_path.iterdir()] == [H.cache_path(None, "cuda").name]
    finally:
        H._LOADED.clear()
        monkeypatch.undo()
    # Through the runner on the cpu profile: build gets "cpu", and the record says so.
    seen = []
    original = H.NASTask.build
    monkeypatch.setattr(H.NASTask, "build", lambda self, **kw: seen.append(kw.get("device")) or original(self, **kw))
    rec = run("nas", "floor", budget="quick", seed=0, results_dir=None)
    assert rec["status"] == "ok" and seen == ["cpu"] and rec["config"]["data"]["table_device"] == "cpu", rec["error"]
    # The device path: the CPU through .to("cpu") is the default path; a GPU, where there is one, the
    # same draws with its own sums (a prediction or two, as another CPU's vector kernels).
    folds = H.table_folds(None)
    rows = H.train_group(6, 0, folds[0])
    assert np.array_equal(H.train_group(6, 0, folds[0], "cpu"), rows)
    if torch.cuda.is_available():
        gpu = H.train_group(6, 0, folds[0], "cuda")
        assert np.abs(gpu[:, [0, 2, 3]] - rows[:, [0, 2, 3]]).max() <= 3 / 450 + 1e-12
        assert np.allclose(gpu[:, 1], rows[:, 1], rtol=0, atol=5e-3)


def test_the_table_has_the_space_and_a_spread_of_accuracies():
    table = H.load_table()
    assert table.test_accuracy.shape == (240,) and np.isfinite(table.validation_loss).all()
    # v4: the best CV accuracy 0.965, the median 0.929; 6 networks (sigmoid, 4 layers deep) at chance
    assert table.validation_accuracy.max() > 0.96 and np.median(table.validation_accuracy) < 0.95
    assert np.corrcoef(table.validation_accuracy, table.test_accuracy)[0, 1] > 0.9
    assert C.index_of({"depth": 1, "width": 8, "activation": "relu", "dropout": 0.0}) == 0
    assert C.index_of([3, 4, 3, 2]) == 239 and C.architecture(C.choices_of(239))["activation"] == "sigmoid"
    assert all(C.index_of(C.architecture(C.choices_of(i))) == i for i in range(240))


# ---------------------------------------------------------------- the oracle
def test_answers_carry_validation_numbers_only():
    prob = problem()
    table = prob.heldout["table"]
    answer = prob.oracle({"depth": 2, "width": 64, "activation": "tanh", "dropout": 0.2})
    assert set(answer) == {"validation_accuracy", "validation_loss", "evaluations_left"}
    i = C.index_of([1, 3, 1, 1])
    assert answer["validation_accuracy"] == table.validation_accuracy[i] != table.test_accuracy[i]
    # the method's view holds no table: only the space and the budget
    blob = pickle.dumps(prob.train)
    assert isinstance(prob.train, C.SearchSpace) and prob.train.evaluations == 50
    for v in table.test_accuracy[:20]:
        assert np.float64(v).tobytes() not in blob


def test_duplicates_count_and_asking_past_the_budget_errors():
    prob = problem(evaluations=5)
    for k in range(5):
        assert prob.oracle([0, 0, 0, 0])["evaluations_left"] == 4 - k
    with pytest.raises(ValueError, match="budget of 5 evaluations is spent"):
        prob.oracle([1, 1, 1, 1])
    assert prob.heldout["log"] == [0] * 5
    m = H.NASTask().evaluate(_Handle(C.Choice([0, 0, 0, 0], 5)), prob, None)
    assert m["evaluations"] == 5 and m["distinct_evaluations"] == 1


@pytest.mark.parametrize("question, match", [
    ([0, 0, 0], "dict"), ([0, 0, 0, 3], "dropout"), ([True, 0, 0, 0], "depth"), ("relu", "dict"),
    ({"depth": 2, "width": 64, "activation": "relu"}, "keys"),
    ({"depth": 2, "width": 60, "activation": "relu", "dropout": 0.0}, "width=60"),
])
def test_malformed_questions_are_refused_and_not_counted(question, match):
    prob = problem()
    with pytest.raises(ValueError, match=match):
        prob.oracle(question)
    assert prob.heldout["log"] == []


def test_numpy_choice_indices_are_accepted():
    prob = problem()
    prob.oracle(np.array([1, 2, 3, 0]))
    prob.oracle([np.int64(1), np.int64(2), np.int64(3), np.int64(0)])
    assert prob.heldout["log"] == [C.index_of([1, 2, 3, 0])] * 2


# ---------------------------------------------------------------- the scores
def test_scores_follow_the_harness_pick_among_the_asked_architectures():
    prob = problem(evaluations=50)
    table = prob.heldout["table"]
    order = np.argsort(table.validation_accuracy)  # worst first: every ask improves the pick
    asked = [int(i) for i in order[-12:]]
    for i in asked:
        prob.oracle(list(C.choices_of(i)))
    m = H.NASTask().evaluate(_Handle(C.Choice(list(C.choices_of(asked[0])), 12)), prob, None)
    best = table.best_by_validation(asked)
    opt = table.test_accuracy[table.best_by_validation()]
    assert m["test_accuracy"] == table.test_accuracy[best]  # the harness's pick, not the method's
    assert m["regret"] == pytest.approx(opt - table.test_accuracy[best])
    assert m["regret_to_best_test"] == pytest.approx(table.test_accuracy.max() - table.test_accuracy[best])
    inc = H.incumbents(table, asked)
    curve = opt - table.test_accuracy[inc]
    assert m["regret_at_10"] == pytest.approx(curve[9])
    assert m["regret_at_25"] == pytest.approx(curve[-1]) and m["regret_at_50"] == pytest.approx(curve[-1])
    assert "regret_at_100" not in m
    assert m["regret_auc"] == pytest.approx((curve.sum() + 38 * curve[-1]) / 50)  # flat after the last ask
    assert prob.description["best_so_far"]["regret"] == pytest.approx(list(curve), abs=1e-6)


def test_every_declared_metric_is_reported_on_the_full_budget():
    prob = problem(evaluations=int(SPEC.budgets["full"].limits["evaluations"]))
    prob.oracle([0, 0, 0, 0])
    m = H.NASTask().evaluate(_Handle(C.Choice({"depth": 1, "width": 8, "activation": "relu", "dropout": 0.0}, 1)),
                             prob, None)
    assert {x.name for x in SPEC.metrics} <= set(m)
    assert len(prob.description["best_so_far"]["regret"]) == 1


def test_ties_go_to_the_lower_loss_then_the_earlier_ask():
    table = H.Table(np.array([0.9, 0.95, 0.95, 0.95]), np.array([0.3, 0.2, 0.1, 0.1]),
                    np.array([0.1, 0.2, 0.3, 0.4]), np.ones(4))
    assert H.incumbents(table, [0, 1, 3, 2]) == [0, 1, 3, 3]
    assert table.best_by_validation() == 2


def test_a_choice_never_asked_about_or_stale_is_refused():
    prob = problem()
    prob.oracle([0, 0, 0, 0])
    with pytest.raises(ValueError, match="never evaluated"):
        H.NASTask().evaluate(_Handle(C.Choice([1, 0, 0, 0], 1)), prob, None)
    with pytest.raises(ValueError, match="asks"):
        H.NASTask().evaluate(_Handle(C.Choice([0, 0, 0, 0], 0)), prob, None)
    with pytest.raises(ValueError, match="no architecture"):
        H.NASTask().evaluate(_Handle(C.Choice([0, 0, 0, 0], 0)), problem(), None)


def test_unknown_variant_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="glyphs-mlp"):
        H.NASTask().build(variant="cifar", seed=0, budget=None, seal=Seal(0))


def test_bad_variant_exits_2_with_the_valid_choices(tmp_path):
    res = subprocess.run([*ADVBENCH, "run", "--task", "nas", "--variant", "cifar", "--results", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "glyphs-mlp" in res.stderr and "Traceback" not in res.stderr


# ---------------------------------------------------------------- through the harness
@pytest.mark.slow
def test_quick_reinforce_meets_its_target_and_random_search_runs():
    from advbench.runner import run

    for seed in (0, 1, 2):
        ref = run("nas", "reference", budget="quick", seed=seed, results_dir=None)
        assert ref["status"] == "ok", ref["error"]
        assert ref["targets_met"], (seed, ref["metrics"])
        # A controller that collapses onto cached architectures may stop short (seed 0: 44 asks).
        assert ref["asks"] == ref["metrics"]["evaluations"] <= 50
        assert len(ref["config"]["data"]["best_so_far"]["regret"]) == ref["asks"]
        # Scored after the method has ended, each checkpoint as of the asks made when it came in.
        asked = [p["metrics"].get("evaluations") for p in ref["curve"]]
        assert len(asked) > 1 and not any("error" in p for p in ref["curve"]), ref["curve"]
        assert asked == sorted(asked) and len(set(asked)) == len(asked) and asked[-1] == ref["asks"]
    floor = run("nas", "floor", budget="quick", seed=0, results_dir=None)
    assert floor["status"] == "ok" and floor["metrics"]["distinct_evaluations"] == 50, floor["error"]


def test_a_method_may_not_import_the_table(tmp_path):
    """The table's code is in heldout.py, which a method's process refuses to import."""
    code = ("import sys; from advbench.sandbox import HeldoutImportBlocker as B; sys.meta_path.insert(0, B(set()))\n"
            "import advbench.tasks.nas.contract\n"
            "try:\n import advbench.tasks.nas.heldout\nexcept ImportError as e: print('refused', e)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "ADVBENCH_CACHE": str(tmp_path)})
    assert res.returncode == 0 and "refused" in res.stdout, res.stderr


def test_committed_full_runs_reinforce_has_lower_regret_auc_than_random_search_over_paired_seeds():
    from committed import committed

    ref, rnd = (committed(SPEC, method=m, variant="glyphs-mlp") for m in ("reference", "floor"))
    assert len(ref) >= 20 and [r["seed"] for r in ref] == [r["seed"] for r in rnd]  # paired by seed (TASKS.md: 20)
    assert all(r["targets_met"] for r in ref), [r["metrics"]["regret"] for r in ref]
    auc = np.array([[a["metrics"]["regret_auc"], b["metrics"]["regret_auc"]] for a, b in zip(ref, rnd)])
    # TASKS.md's full target: lower regret-AUC over 20 seeds. Only slightly, as NAS-Bench-201 found:
    # nas-v4's records 0.0039 against 0.0052, each lower on 10 of the 20 seeds (v3: 6 of 10).
    assert auc[:, 0].mean() < auc[:, 1].mean(), auc.mean(axis=0)
    # Where the controller does separate: it ends on its table's optimum far more often (17 against 9).
    found = np.array([[a["metrics"]["found_optimum"], b["metrics"]["found_optimum"]] for a, b in zip(ref, rnd)])
    assert found[:, 0].sum() >= found[:, 1].sum() + 5, found.sum(axis=0)
