"""adversarial: the task's PGD against torchattacks (bit-identical), its Square attack against torchattacks'
Square (same behaviour) and against a one-digit-at-a-time re-implementation (same trace), the gradient
oracles against autograd, the classic PGD traps, a gradient-masked model the v2 score sees through, data
integrity and sealing, and the reference baseline's quick target through the harness."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
from torch import nn  # noqa: E402

from adversarial_masked import Rounded  # noqa: E402
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


class _Ctx:
    """What the baselines' training loop asks of a run context, for fitting a model inside a test."""

    def __init__(self, seed: int, epochs: int) -> None:
        self.seed, self.limits, self.device = seed, {"epochs": epochs, "batch_size": 64}, "cpu"
        self.budget = SPEC.budgets["full"]  # its checkpoints (none are scored here)

    def record_config(self, **config):
        pass

    def count(self, n):
        pass

    def progress(self, done, total):
        pass

    def checkpoint(self, solution, step=None):
        pass


@pytest.fixture(scope="module")
def floor(data):
    """The floor as the full budget trains it (standard training, 60 epochs, seed 0; about 3 s)."""
    train, _ = data
    return ab.standard_training(train, _Ctx(0, 60)).model.eval()


@pytest.fixture(scope="module")
def public_data():
    """v2's split of scikit-learn's public digits: the attacks' peer checks and the numbers measured
    against torchattacks were made on it, and attack code does not care whose digits it attacks."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x_tr, x_te, y_tr, y_te = train_test_split((d.data / 16.0).astype(np.float32), d.target.astype(np.int64),
                                              test_size=0.25, stratify=d.target, random_state=0)
    return ac.Digits(x_tr, y_tr), ac.Digits(x_te, y_te)


@pytest.fixture(scope="module")
def public_floor(public_data):
    train, _ = public_data
    return ab.standard_training(train, _Ctx(0, 60)).model.eval()


@pytest.fixture(scope="module")
def built():
    """One unsealed build (seed 3): the split, the surrogate's transfer examples and the seeds."""
    return ta.AdversarialTask().build(variant="glyphs-linf", seed=3, budget=SPEC.budgets["quick"], seal=Seal(3))


def heldout_tensors(data, n=200):
    _, test = data
    return torch.as_tensor(test.x[:n]), torch.as_tensor(test.y[:n])


# ---------------------------------------------------------------- PGD
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


@pytest.mark.parametrize("attack", ["task", "baseline", "square"])
def test_perturbation_stays_within_eps_of_the_original_x(trained, data, attack):
    """Projecting around the current iterate instead of the original x lets delta drift to steps * alpha."""
    x, y = heldout_tensors(data)
    eps, steps = 0.05, 40  # 40 steps of eps/4 could walk 10 eps away if the projection were wrong
    if attack == "square":
        adv = ta.square(trained, x, y, eps, 300)[1]
    else:
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
    attacks = (lambda: ta.pgd(model, x, y, 0.1, 0.025, 5), lambda: ab.pgd_linf(model, x, y, 0.1, 0.025, 5),
               lambda: ta.square(model, x, y, 0.1, 20), lambda: ta.strong_attack_correct(remote(model), x, y, 0.1))
    for attack in attacks:
        modes.clear()
        model.train()
        attack()
        assert modes and not any(modes)  # every attack forward pass ran in eval mode
        assert model.training  # ... and the caller's train mode is back
    torch.testing.assert_close(model[1].running_mean, stats)  # batch-norm statistics untouched by the attack
    assert all(p.grad is None for p in model.parameters())  # no gradients leaked onto the weights


def test_attack_works_under_no_grad(trained, data):
    x, y = heldout_tensors(data, 50)
    with torch.no_grad():
        adv = ta.pgd(trained, x, y, 0.1, 0.025, 5)
        assert (adv != x).any()
        assert torch.equal(ta.strong_attack_correct(remote(trained), x, y, 0.1),
                           ta.strong_attack_correct(trained, x, y, 0.1))


# ---------------------------------------------------------------- the oracles of the scoring process
def remote(model):
    """The oracle evaluate uses: the contract's functions through a (here in-process) handle."""
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


def test_questions_come_to_the_model_on_its_own_device_whatever_the_profile_says(trained, data):
    """Under ``--profile cuda`` the harness passes ``device="cuda"``; a model its method moved to the
    CPU before handing it in is still asked on the CPU (here, with no GPU, "cuda" would raise)."""
    x, _ = heldout_tensors(data, 20)
    solution = ab.Classifier(trained)
    z = ac.logits(solution, x.numpy(), "cuda")
    z_j, jac = ac.logits_and_jacobian(solution, x.numpy(), "cuda")
    z_g, _ = ac.logits_and_grad_at_prediction(solution, x.numpy(), "ce", "cuda")
    assert torch.equal(z, trained(x)) and torch.equal(z_j, z) and torch.equal(z_g, z) and jac.shape == (20, 10, 64)


@pytest.mark.parametrize("loss", ["ce", "margin"])
def test_gradient_at_the_prediction_is_autograds_row_wherever_the_prediction_is_the_label(trained, data, loss):
    """The strong check's one-backward oracle: where argmax z == y, bit for bit autograd's gradient
    of the loss at the true label; it never sees y."""
    x, y = heldout_tensors(data, 450)
    z_local, g_local = ta.LocalOracle(trained).loss_grad(x.clone(), y, loss)
    z, g = ac.logits_and_grad_at_prediction(ab.Classifier(trained), x.numpy(), loss)
    right = z.argmax(1) == y
    assert torch.equal(z, z_local) and 0.5 < right.float().mean() < 1  # both kinds of rows are here
    assert torch.equal(g[right], g_local[right])
    assert not torch.equal(g[~right], g_local[~right])  # elsewhere it is another gradient, as documented
    z_r, g_r = remote(trained).grad_while_correct(x.clone(), y, loss)
    assert torch.equal(z_r, z) and torch.equal(g_r, g)
    with pytest.raises(ValueError, match="unknown loss"):
        ac.logits_and_grad_at_prediction(trained, x.numpy(), "hinge")


def test_oracles_give_zero_gradients_for_a_model_autograd_cannot_see_through(trained, data):
    """A rounding layer (zero gradient) or a graph cut inside the model: the white-box attacks get
    zeros and stall, which the gradient-free attacks are there for; nothing raises."""

    class NoGrad(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            with torch.no_grad():
                return self.inner(x)

    x, y = heldout_tensors(data, 30)
    for model in (Rounded(trained), NoGrad(trained)):
        z, jac = ac.logits_and_jacobian(model, x.numpy())
        assert torch.equal(z, trained(torch.round(16 * x) / 16) if isinstance(model, Rounded) else trained(x).detach())
        assert jac.shape == (30, 10, 64) and not jac.any()
        assert not ac.logits_and_grad_at_prediction(model, x.numpy(), "margin")[1].any()
        assert torch.equal(ta.pgd(remote(model), x, y, 0.1, 0.025, 5), x)  # sign(0) = 0: PGD does not move


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


class _JacobianEverywhere(ta.RemoteOracle):
    """The v1 strong check: the true-label gradient from the Jacobian at every step."""

    def grad_while_correct(self, x, y, loss):
        return self.loss_grad(x, y, loss)


def test_strong_attack_through_the_scoring_process_equals_local(trained, data):
    x, y = heldout_tensors(data, 120)
    local = ta.strong_attack_correct(trained, x, y, ac.PRIMARY_EPS)
    assert torch.equal(ta.strong_attack_correct(remote(trained), x, y, ac.PRIMARY_EPS), local)
    assert local.float().mean() < (trained(x).argmax(1) == y).float().mean()  # it did break some digits
    # One backward a step (v2) decides exactly as ten did (v1, the Jacobian at every step).
    v1 = ta.strong_attack_correct(_JacobianEverywhere(LocalSolution(ab.Classifier(trained))), x, y, ac.PRIMARY_EPS)
    assert torch.equal(v1, local)


def test_margin_gradient_splits_ties_as_amax_does():
    """Two wrong classes tied for the best logit share the margin's gradient, as torch's amax backward does."""
    model = nn.Linear(4, 3, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0]]))
    x, y = torch.tensor([[0.2, 0.5, 0.5, 0.3]]), torch.tensor([0])
    _, local = ta.LocalOracle(model).loss_grad(x.clone(), y, "margin")
    _, got = ta.RemoteOracle(LocalSolution(ab.Classifier(model)), n_classes=3).loss_grad(x.clone(), y, "margin")
    torch.testing.assert_close(got, local)
    torch.testing.assert_close(got, torch.tensor([[-1.0, 0.5, 0.5, 0.0]]))


# ---------------------------------------------------------------- Square
def reference_square(model, x, y, eps, n_queries, seed, last_row=True):
    """The Square attack as the paper's pseudocode reads, one digit at a time with slices, drawing
    the same random numbers in the same order as the task's batched version (stripes; then per step
    the windows' rows, columns and signs of the digits still standing)."""
    gen = torch.Generator().manual_seed(seed)
    b, side = len(x), 8
    img = x.reshape(b, side, side)
    lo, hi = (img - eps).clamp(0, 1), (img + eps).clamp(0, 1)
    stripes = torch.randint(0, 2, (b, 1, side), generator=gen).bool()
    best = torch.stack([torch.stack([hi[k, :, c] if stripes[k, 0, c] else lo[k, :, c] for c in range(side)], 1)
                        for k in range(b)])

    def margin(zk, yk):
        others = torch.cat([zk[:yk], zk[yk + 1:]])
        return (zk[yk] - others.max()).item()

    with torch.no_grad():
        z = model(best.reshape(b, -1))
    loss = [margin(z[k], y[k]) for k in range(b)]
    fooled = [bool(z[k].argmax() != y[k]) for k in range(b)]
    for i in range(n_queries - 1):
        alive = [k for k in range(b) if not fooled[k]]
        if not alive:
            break
        s = min(max(round((ta.p_selection(ac.SQUARE_P_INIT, i, n_queries) * side * side) ** 0.5), 1), side - 1)
        tops = torch.randint(0, side - s + last_row, (len(alive),), generator=gen).tolist()
        lefts = torch.randint(0, side - s + last_row, (len(alive),), generator=gen).tolist()
        ups = torch.randint(0, 2, (len(alive),), generator=gen).tolist()
        candidates = []
        for k, t, l, up in zip(alive, tops, lefts, ups):
            corner = (hi if up else lo)[k, t:t + s, l:l + s]
            if torch.equal(corner, best[k, t:t + s, l:l + s]):  # changes nothing: the other sign
                corner = (lo if up else hi)[k, t:t + s, l:l + s]
            cand = best[k].clone()
            cand[t:t + s, l:l + s] = corner
            candidates.append(cand)
        with torch.no_grad():
            z = model(torch.stack(candidates).reshape(len(alive), -1))
        for j, k in enumerate(alive):
            m, wrong = margin(z[j], y[k]), bool(z[j].argmax() != y[k])
            if m < loss[k] or wrong:
                best[k], loss[k] = candidates[j], m
            fooled[k] = wrong
    return torch.tensor(fooled), best.reshape(b, -1)


def test_square_equals_a_digit_at_a_time_reimplementation_and_its_trace_holds(floor, data):
    """Same random draws, same result; and the trace: the schedule of window sizes, the loss of each
    digit's best point never rising, every point a vertex of the eps-ball, and the first accepted
    windows of this seed (a regression pin, read off this implementation)."""
    x, y = heldout_tensors(data, 40)
    eps, n_queries = 0.1, 400
    trace = []
    fooled, best, queries = ta.square(floor, x, y, eps, n_queries, generator=torch.Generator().manual_seed(7),
                                      trace=trace)
    ref_fooled, ref_best = reference_square(floor, x, y, eps, n_queries, seed=7)
    assert torch.equal(fooled, ref_fooled) and torch.equal(best, ref_best)
    assert 0 < fooled.sum() < len(y)
    # Schedule (n_queries 400): p = 0.8 for the first 1% of the budget, halved at 0.5%, 2%, 5%, 10%,
    # 20%...: windows of 7, 5, 4, 3, 2, then single pixels.
    sizes = [step["size"] for step in trace]
    assert sizes[:1] == [7] and set(sizes[1:3]) == {5} and set(sizes[3:9]) == {4} and set(sizes[9:21]) == {3}
    assert set(sizes[21:41]) == {2} and set(sizes[41:]) == {1} and len(sizes) == n_queries - 1
    losses = torch.stack([step["loss"] for step in trace])
    assert (losses[1:] <= losses[:-1]).all()  # never rises, for any digit
    assert (losses[-1] < losses[0]).float().mean() > 0.9  # and falls for nearly all
    for before, step in zip(losses[:-1], trace[1:]):
        kept, taken = step["alive"][~step["accept"]], step["alive"][step["accept"]]
        assert torch.equal(step["loss"][kept], before[kept])  # a rejected window changes nothing
        assert (step["loss"][taken] < before[taken]).all()  # an accepted one lowered the loss (or fooled)
    lo, hi = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
    assert ((best == lo) | (best == hi)).all()  # a vertex of the ball (clipped to [0, 1]) in every pixel
    assert int(queries.max()) <= n_queries and (queries[~fooled] == n_queries).all()  # survivors used the budget
    # Pinned (seed 7): digit 0's first accepted windows as (step, top, left, +eps?), and the digits fooled.
    # The floor is trained here, and its float32 weights differ in the last bits from one CPU's vector
    # kernels to another's, so the later windows, taken or not on near-ties, differ too: read off an
    # Intel Xeon, then an AMD EPYC, the first five agree (the sixth: step 11 against 14), 39 digits
    # fooled on both, 314 windows accepted in all against 307.
    accepted = [(i, int(step["alive"][j]), int(step["top"][j]), int(step["left"][j]), bool(step["up"][j]))
                for i, step in enumerate(trace) for j in step["accept"].nonzero().flatten().tolist()]
    assert [(i, t, l, up) for i, k, t, l, up in accepted if k == 0][:5] == [
        (0, 1, 1, True), (1, 2, 1, False), (3, 1, 4, True), (5, 0, 2, False), (7, 2, 4, True)]
    assert int(fooled.sum()) == 39 and 290 <= len(accepted) <= 330


@pytest.fixture(scope="module")
def torchattacks_square():
    import torchattacks  # the peer check must run, never skip


    def run(model, x, y, eps, n_queries, seed):
        image_model = nn.Sequential(nn.Flatten(), model).eval()  # torchattacks wants (N, C, H, W) images
        with torch.random.fork_rng(devices=[]):  # it seeds torch's global generator itself
            peer = torchattacks.Square(image_model, norm="Linf", eps=eps, n_queries=n_queries, n_restarts=1,
                                       p_init=ac.SQUARE_P_INIT, loss="margin", seed=seed)
            return peer(x.reshape(-1, 1, 8, 8), y).reshape(len(x), -1)

    return run


def test_square_behaves_as_torchattacks_square(public_floor, public_data, torchattacks_square):
    """Same model, digits, eps (0.1), query budget (1000, one run), p_init (0.8) and loss (margin).

    torchattacks draws from torch's global generator in the order of its own loop (one window and
    sign for the whole batch per step, as AutoAttack's code), so the two cannot match draw for
    draw; they must behave alike. Measured on this floor over seeds 0-4 (robust accuracy on 450
    digits): torchattacks 0.538 (0.522-0.547); ours with torchattacks' window positions
    (``last_row=False``, which never reaches the last row or column) 0.537 (0.527-0.562); ours as
    the task runs it 0.372 (0.367-0.378). Rounded floor: 0.320, 0.311, 0.187. Seed 0 is compared
    here, within 4 points (the seeds' spread is about 2). On v2's public digits: their last row and
    column are mostly blank, which is what makes the window positions matter.
    """
    floor, (_, test) = public_floor, public_data
    x, y = torch.as_tensor(test.x), torch.as_tensor(test.y)
    eps, n_queries = 0.1, 1000
    pgd_rounded = (Rounded(floor)(ta.pgd(Rounded(floor), x, y, eps, eps / 4, ac.PGD_STEPS)).argmax(1) == y)
    assert pgd_rounded.float().mean() > 0.95  # the masked model: PGD-20 cannot touch it
    for model, peer_expected, ours_expected in ((floor, 0.547, 0.378), (Rounded(floor), 0.316, 0.189)):
        with torch.no_grad():
            clean = model(x).argmax(1) == y
            peer_adv = torchattacks_square(model, x, y, eps, n_queries, seed=0)
            peer = (model(peer_adv).argmax(1) == y).float().mean().item()
        acc = {}
        for last_row in (False, True):
            fooled, adv, _ = ta.square(model, x[clean], y[clean], eps, n_queries, last_row=last_row,
                                       generator=torch.Generator().manual_seed(0))
            acc[last_row] = (clean.sum() - fooled.sum()).item() / len(y)
            for a in (adv, peer_adv):  # both stay in the ball and in [0, 1]
                assert (a - (x[clean] if a is adv else x)).abs().max().item() <= eps + 1e-6
                assert a.min().item() >= 0 and a.max().item() <= 1
        assert abs(peer - peer_expected) < 0.05 and abs(acc[True] - ours_expected) < 0.05  # near what was measured
        assert abs(acc[False] - peer) <= 0.04  # the same attack, with the same window positions
        assert acc[True] <= peer - 0.10  # the last row and column are worth 13-17 points on 8x8 digits
    # Both defeat the rounding layer that PGD cannot get past (clean and PGD-20: 0.978).
    assert peer < 0.40 and acc[True] < 0.25


# ---------------------------------------------------------------- evaluate
def test_evaluate_refuses_bad_logits(built):
    class Returns(LocalSolution):
        def __init__(self, reply):
            super().__init__(None)
            self.reply = reply

        def _request(self, request):  # ("call", name, args, kwargs): a solution that answers `reply`
            return self.reply(request[1])

    test = built.heldout.test
    problem = Problem(train=None, heldout=built.heldout)
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
            Returns(lambda fn: np.zeros((n, 10), np.float32) if fn == "logits"
                    else (np.zeros((n, 10), np.float32), jac_nan)), problem, None)
    x, y = torch.as_tensor(test.x), torch.as_tensor(test.y)
    zeros = np.zeros((n, 10), np.float32)
    for reply, err, match in [((zeros, np.full((n, 64), np.nan, np.float32)), ValueError, "gradient"),
                              ((zeros, np.zeros((n, 63), np.float32)), ValueError, "gradient"),
                              (zeros, TypeError, "logits_and_grad_at_prediction")]:
        with pytest.raises(err, match=match):
            ta.RemoteOracle(Returns(lambda fn: reply)).grad_while_correct(x, y, "ce")


def test_split_is_a_stratified_partition_and_train_holds_no_test_rows(built):
    task = ta.AdversarialTask()
    problem = built
    train, test = problem.train, problem.heldout.test
    assert len(train.y) == 1350 and len(test.y) == 450
    assert train.x.dtype == np.float32 and train.x.min() >= 0 and train.x.max() <= 1
    assert not hasattr(train, "heldout") and not isinstance(train, tuple)
    # Train + held-out is exactly the seed's glyph set, row for row (a partition: no row in both).
    from advbench.glyphs import glyph_digits

    d = glyph_digits(Seal(3))
    full = np.column_stack([d.x, d.y])
    both = np.vstack([np.column_stack([train.x, train.y]), np.column_stack([test.x, test.y])])
    assert np.array_equal(np.sort(full, axis=0), np.sort(both, axis=0))
    # Stratified: every class gives a quarter of its 180 images to the held-out part.
    assert np.bincount(test.y).tolist() == [45] * 10
    # A different seed gives a different split.
    other = ta.load_split(Seal(4))[1]
    assert not np.array_equal(other.y, test.y)
    # The transfer attack's digits: one per held-out digit, inside the eps-ball and [0, 1], and moved.
    tx = problem.heldout.transfer_x
    assert tx.dtype == np.float32 and tx.shape == test.x.shape
    assert np.abs(tx - test.x).max() <= ac.PRIMARY_EPS + 1e-6 and tx.min() >= 0 and tx.max() <= 1
    assert (np.abs(tx - test.x) > ac.PRIMARY_EPS - 1e-6).mean() > 0.5
    assert "transfer" in problem.description
    assert problem.description["square"]["queries_per_example"] == {"eps0.05": 1000, "eps0.1": 3000, "eps0.2": 1000}
    del task


def test_transfer_examples_come_from_the_seal_alone(built):
    """The surrogate is trained from its seed alone (torch's global generator untouched), so a build
    is reproducible; its examples fool a clean-trained model but not the surrogate-free clean digits."""
    train, test = ta.load_split(Seal(3))
    before = torch.random.get_rng_state()
    again = ta.transfer_examples(ta.train_surrogate(train, ta._surrogate_seed(Seal(3))), test)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert np.array_equal(again, built.heldout.transfer_x)
    assert ta._surrogate_seed(Seal(3)) == int(np.random.default_rng([3, ta.SURROGATE_STREAM]).integers(2**31))


def test_unsealed_data_comes_from_the_seed_and_sealed_data_differs(built):
    from advbench.glyphs import glyph_split

    seed = 3
    plain = built
    train, test = glyph_split(Seal(seed))  # unsealed: the public seed alone decides the images
    assert np.array_equal(plain.heldout.test.x, test.x) and np.array_equal(plain.heldout.test.y, test.y)
    assert np.array_equal(plain.train.x, train.x) and np.array_equal(plain.train.y, train.y)
    assert plain.heldout.strong_seed == ta.STRONG_SEED == 1234  # the fixed seed of the random starts
    assert plain.heldout.square_seed == ta.SQUARE_SEED
    sealed = ta.AdversarialTask().build(variant="glyphs-linf", seed=seed, budget=None, seal=Seal(seed, key=KEY))
    assert not np.allclose(sealed.heldout.test.x, test.x) and not np.allclose(sealed.train.x, train.x)
    assert np.array_equal(np.bincount(sealed.heldout.test.y), np.bincount(test.y))
    assert sealed.heldout.strong_seed != ta.STRONG_SEED and sealed.heldout.square_seed != ta.SQUARE_SEED
    assert ta._surrogate_seed(Seal(seed, key=KEY)) != ta._surrogate_seed(Seal(seed))
    assert np.abs(sealed.heldout.transfer_x - sealed.heldout.test.x).max() <= ac.PRIMARY_EPS + 1e-6


def test_evaluate_metrics_are_consistent(trained, built):
    n = 150  # a third of the held-out digits: every relation below holds on any subset
    held = built.heldout
    test = ac.Digits(held.test.x[:n], held.test.y[:n])
    problem = Problem(train=None, heldout=ta.Heldout(test, held.transfer_x[:n], held.strong_seed, held.square_seed))
    trained.train()
    m = ta.AdversarialTask().evaluate(LocalSolution(ab.Classifier(trained)), problem, None)
    assert trained.training  # evaluate restores the solution's mode
    assert set(m) == {x.name for x in SPEC.metrics}
    for eps in ac.EPSILONS:
        assert m["clean_acc"] >= m[f"robust_acc_eps{eps:g}"]
    assert m["robust_acc_eps0.1"] <= min(m["strong_pgd_acc_eps0.1"], m["square_acc_eps0.1"], m["transfer_acc_eps0.1"])
    assert m["strong_pgd_acc_eps0.1"] <= m["pgd_acc_eps0.1"]
    assert m["gap_pgd_vs_worst"] == pytest.approx(100 * (m["pgd_acc_eps0.1"] - m["robust_acc_eps0.1"]))
    # Deterministic: the random starts and the Square attack's draws come from fixed seeds.
    assert ta.AdversarialTask().evaluate(LocalSolution(ab.Classifier(trained)), problem, None) == m
    # The same numbers as attacking the model in-process with autograd.
    x, y = torch.as_tensor(test.x), torch.as_tensor(test.y)
    with torch.no_grad():
        clean = trained.eval()(x).argmax(1) == y
        assert m["clean_acc"] == clean.float().mean().item()
        pgd = {eps: trained(ta.pgd(trained, x, y, eps, eps / 4, ac.PGD_STEPS)).argmax(1) == y for eps in ac.EPSILONS}
        transfer = clean & (trained(torch.as_tensor(held.transfer_x[:n])).argmax(1) == y)
    square = ta.square_attacks_correct(trained, x, y, {0.05: 1, 0.1: 3, 0.2: 1}, seed=ta.SQUARE_SEED)
    strong = ta.strong_attack_correct(trained, x, y, 0.1, pgd[0.1])
    assert m["pgd_acc_eps0.1"] == pgd[0.1].float().mean().item()
    assert m["strong_pgd_acc_eps0.1"] == strong.float().mean().item()
    assert m["square_acc_eps0.1"] == square[0.1].float().mean().item()
    assert m["transfer_acc_eps0.1"] == transfer.float().mean().item()
    assert m["robust_acc_eps0.1"] == (strong & square[0.1] & transfer).float().mean().item()
    for eps in (0.05, 0.2):
        assert m[f"robust_acc_eps{eps:g}"] == (clean & pgd[eps] & square[eps]).float().mean().item()
    # What is not a classifier cannot answer; the TypeError comes back as a SolutionError.
    with pytest.raises(SolutionError, match="TypeError: the solution .object. has no method .logits."):
        ta.AdversarialTask().evaluate(LocalSolution(object()), problem, None)


# ---------------------------------------------------------------- through the harness
@pytest.mark.slow
def test_a_rounding_layer_lifts_pgd_but_not_the_score(tmp_path):
    """Gradient masking, found by trying to game v1: the quick floor behind ``round(16 x) / 16``
    (tests/adversarial_masked.py), scored through the method and scoring processes. v1's attacks
    see 0.95 (PGD-20) and 0.93 (strong check) on public digits and v1's quick target was met; PGD
    through the floor without the rounding, scored on the rounded model (BPDA), gives 0.32. v2 gives
    0.30 (Square 0.30, transfer 0.40), about what BPDA gives. On v3's glyphs (not multiples of 1/16:
    the rounding costs a little clean accuracy, 0.931) PGD-20 still moves no digit and the strong
    check little (0.858), while the worst case is 0.087 (Square 0.089, transfer 0.149)."""
    from advbench.registry import Registry
    from advbench.runner import run

    reg = Registry()
    reg.register_method("adversarial", "rounded-floor", "adversarial_masked:rounded_floor")
    rec = run("adversarial", "rounded-floor", budget="quick", seed=0, results_dir=None, registry=reg)
    assert rec["status"] == "ok", rec["error"]
    m = rec["metrics"]
    assert m["pgd_acc_eps0.1"] >= 0.85 and m["strong_pgd_acc_eps0.1"] >= 0.8  # v1 would have scored it ~0.9
    assert m["clean_acc"] == m["pgd_acc_eps0.1"]  # PGD-20 did not move a single digit
    assert m["robust_acc_eps0.1"] <= 0.20 and m["square_acc_eps0.1"] <= 0.20
    assert m["gap_pgd_vs_worst"] >= 50
    assert rec["targets_met"] is False


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
