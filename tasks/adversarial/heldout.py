"""The held-out side of the ``adversarial`` task: the split, the surrogate, the attacks and the
scoring (harness only).

The attacks take an *oracle* instead of a model: an object with

* ``logits(x) -> [B, C]``: the model's logits (eval mode, no gradients); all the Square attack and
  the transfer attack need;
* ``loss_grad(x, y, loss) -> (logits [B, C], grad)``: the logits at ``x`` and the gradient with
  respect to ``x`` of the batch-mean loss (``"ce"``: cross-entropy; ``"margin"``:
  :func:`~.contract.margin_loss`); PGD-20 uses it;
* ``grad_while_correct(x, y, loss) -> (logits, grad)``: the same, except that rows where
  ``logits.argmax(1) != y`` may hold any gradient; the strong check uses it, since a digit
  misclassified once is broken whatever happens to it afterwards.

:class:`LocalOracle` answers with autograd on a model in this process (what the tests compare with
torchattacks, bit for bit). :class:`RemoteOracle` answers for a solution in the scoring process,
which never gets a label. For ``loss_grad`` it asks for the logits and their input Jacobian
(:func:`~.contract.logits_and_jacobian`) and builds the loss gradient here, ``J^T (softmax(z) -
onehot(y)) / B`` for cross-entropy and ``(J[j*] - J[y]) / B`` for the margin (``j*`` the best other
class): ten backward passes a step. For ``grad_while_correct`` it asks for the gradient of the loss
at the model's own prediction (:func:`~.contract.logits_and_grad_at_prediction`): one backward
pass, and where the prediction is the label, bit for bit autograd's row for the true label.

The Square attack needs logits only; it runs here, against ``logits``, with the margin computed
from the labels on this side. The transfer attack's examples are crafted at build time, in this
process, on a surrogate the task trains itself (:func:`train_surrogate`), and only forwarded through
the solution's model.

Evaluation time, the reference MLP (60 epochs of adversarial training) through a real scoring
process on one thread of the 2-core reference machine: v1 18.4 s, of which the strong check 15.2 s
(a Jacobian at each of its 1000 steps); v2 14.9 s: PGD-20 at three radii 1.1 s, the strong check
3.5-3.8 s on one backward a step (the same result, digit for digit), the Square attack 8.7 s
(every run at every radius in one batch: 1000 round trips; 12.0 s as five sequential runs, since a
forward pass of the still-robust digits is most of each query), the transfer attack one forward pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from advbench.spec import Budget
from advbench.task import Problem, Seal
from advbench.tasks.adversarial import _eps_name
from advbench.tasks.adversarial.contract import (EPSILONS, PGD_STEPS, PRIMARY_EPS, SQUARE_P_INIT, SQUARE_QUERIES,
                                                 SQUARE_RESTARTS, STRONG_RESTARTS, STRONG_STEPS, Digits,
                                                 margin_loss)

if TYPE_CHECKING:
    import torch

    from advbench.profiles import Profile
    from advbench.solution import SolutionHandle

__all__ = ["AdversarialTask", "Heldout", "load_split", "margin_loss", "LocalOracle", "RemoteOracle", "pgd",
           "strong_attack_correct", "square", "square_attack_correct",
           "square_attacks_correct", "square_runs", "train_surrogate", "transfer_examples"]

TEST_FRACTION = 0.25
STRONG_SEED = 1234  # the strong check's random starts, in an unsealed run
SQUARE_SEED = 4321  # the Square attack's draws, in an unsealed run
SURROGATE_STREAM = 31  # seal.rng stream of the surrogate's seed
SURROGATE_EPOCHS, SURROGATE_HIDDEN, SURROGATE_LR, SURROGATE_BATCH = 15, 256, 1e-3, 64


@dataclass
class Heldout:
    """What the task keeps: the held-out digits, the transfer attack's examples (crafted on the
    surrogate at build time) and the seeds of the strong check and the Square attack."""

    test: Digits
    transfer_x: np.ndarray  # float32, same shape as test.x, within PRIMARY_EPS of it, in [0, 1]
    strong_seed: int = STRONG_SEED
    square_seed: int = SQUARE_SEED


def load_split(seal: Seal, test_fraction: float = TEST_FRACTION) -> tuple[Digits, Digits]:
    """The glyph digits of ``advbench.glyphs``, made under the seal, split stratified (450 held out)."""
    from advbench.glyphs import glyph_split

    train, test = glyph_split(seal, test_fraction=test_fraction)
    return Digits(train.x, train.y), Digits(test.x, test.y)


# ---------------------------------------------------------------- oracles
class Oracle(Protocol):
    def logits(self, x: "torch.Tensor") -> "torch.Tensor": ...

    def loss_grad(self, x: "torch.Tensor", y: "torch.Tensor", loss: str) -> tuple["torch.Tensor", "torch.Tensor"]: ...

    def grad_while_correct(self, x: "torch.Tensor", y: "torch.Tensor",
                           loss: str) -> tuple["torch.Tensor", "torch.Tensor"]: ...


class LocalOracle:
    """Autograd through a model in this process, in eval mode for each call (its mode restored)."""

    def __init__(self, model) -> None:
        self.model = model

    def logits(self, x):
        import torch

        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                return self.model(x)
        finally:
            self.model.train(was_training)

    def loss_grad(self, x, y, loss: str):
        import torch
        import torch.nn.functional as F

        loss_fn = F.cross_entropy if loss == "ce" else margin_loss
        was_training = self.model.training
        self.model.eval()
        try:
            x.requires_grad_(True)
            with torch.enable_grad():  # callers may hold no_grad; the attack needs input gradients
                z = self.model(x)
                grad = torch.autograd.grad(loss_fn(z, y), x)[0]  # autograd.grad: nothing accumulates on the weights
        finally:
            self.model.train(was_training)
        return z.detach(), grad

    def grad_while_correct(self, x, y, loss: str):
        return self.loss_grad(x, y, loss)


def _array(value: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    """A float array of ``shape`` with finite values, or TypeError / ValueError."""
    a = value
    if not isinstance(a, np.ndarray) or not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"the scoring process returned {what} as {getattr(a, 'dtype', type(a).__name__)}; "
                        "expected a float array")
    if a.shape != shape:
        raise ValueError(f"the scoring process returned {what} of shape {a.shape}; expected {shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"the scoring process returned NaN or infinite {what}")
    return a


def _pair(reply: Any, what: str) -> tuple[Any, Any]:
    if not isinstance(reply, tuple) or len(reply) != 2:
        raise TypeError(f"{what} must return (logits, {what.split('_and_')[-1]})")
    return reply


class RemoteOracle:
    """A solution in the scoring process, asked about inputs only."""

    def __init__(self, solution: "SolutionHandle", n_classes: int = 10, device: str | None = None) -> None:
        self.solution, self.n_classes, self.device = solution, n_classes, device

    def logits(self, x):
        import torch

        z = self.solution.logits(x.detach().cpu().numpy(), self.device)
        return torch.as_tensor(_array(z, (len(x), self.n_classes), "logits"))

    def loss_grad(self, x, y, loss: str):
        import torch
        import torch.nn.functional as F

        reply = _pair(self.solution.logits_and_jacobian(x.detach().cpu().numpy(), self.device),
                      "logits_and_jacobian")
        b, c = len(x), self.n_classes
        z = torch.as_tensor(_array(reply[0], (b, c), "logits"))
        jac = torch.as_tensor(_array(reply[1], (b, c, x[0].numel()), "the Jacobian"))
        onehot = F.one_hot(y, c).to(z.dtype)
        if loss == "ce":  # d CE / d z = softmax(z) - onehot(y)
            w = torch.softmax(z, 1) - onehot
        else:  # d (max_{j != y} z_j - z_y) / d z; a tie shares the gradient, as amax's backward does
            other = z.masked_fill(onehot.bool(), float("-inf"))
            top = (other == other.amax(1, keepdim=True)).to(z.dtype)
            w = top / top.sum(1, keepdim=True) - onehot
        grad = torch.einsum("bc,bcd->bd", w / b, jac.to(z.dtype))  # the batch mean, as the losses take it
        return z, grad.reshape(x.shape).to(x.dtype)

    def grad_while_correct(self, x, y, loss: str):
        import torch

        reply = _pair(self.solution.logits_and_grad_at_prediction(x.detach().cpu().numpy(), loss, self.device),
                      "logits_and_grad_at_prediction")
        z = torch.as_tensor(_array(reply[0], (len(x), self.n_classes), "logits"))
        grad = torch.as_tensor(_array(reply[1], tuple(x.shape), "the gradient"))
        return z, grad.to(x.dtype)


def as_oracle(model_or_oracle: Any) -> Oracle:
    """An oracle as is; an ``nn.Module`` (or an object with a ``.model``) as a :class:`LocalOracle`."""
    if hasattr(model_or_oracle, "loss_grad") and hasattr(model_or_oracle, "logits"):
        return model_or_oracle
    from advbench.tasks.adversarial.contract import model_of

    return LocalOracle(model_of(model_or_oracle))


# ---------------------------------------------------------------- white-box attacks
def pgd(model, x, y, eps: float, alpha: float, steps: int, *, random_start: bool = False,
        loss: str = "ce", generator=None):
    """L-inf PGD (Madry et al.): ascend the loss by alpha * sign(grad), project onto the eps-ball
    around the ORIGINAL ``x`` (not the current iterate), clamp to [0, 1]. Returns the last iterate.

    ``model`` is a gradient oracle or a model (attacked through a :class:`LocalOracle`). The update
    is written exactly as ``torchattacks.PGD`` writes it, so that with a local oracle and
    ``random_start=False`` the two give bit-identical examples. The model is in eval mode for the
    attack and its previous mode restored.
    """
    import torch

    oracle = as_oracle(model)
    x = x.clone().detach()
    adv = x.clone().detach()
    if random_start:
        noise = torch.empty(x.shape, dtype=x.dtype).uniform_(-eps, eps, generator=generator).to(x.device)
        adv = torch.clamp(adv + noise, 0, 1).detach()
    for _ in range(steps):
        _, grad = oracle.loss_grad(adv, y, loss)
        adv = adv.detach() + alpha * grad.sign()
        delta = torch.clamp(adv - x, min=-eps, max=eps)
        adv = torch.clamp(x + delta, min=0, max=1).detach()
    return adv


def _strong_fooled(oracle: Oracle, x, y, eps: float, *, loss: str, generator) -> "Any":
    """One 100-step run with a step-size schedule; True where any iterate was misclassified.

    Once an iterate is misclassified the digit is broken, so its later steps do not matter: the
    oracle's gradient is only needed (and only correct, for a remote oracle) where the current
    iterate is still classified right."""
    import torch

    noise = torch.empty(x.shape, dtype=x.dtype).uniform_(-eps, eps, generator=generator).to(x.device)
    adv = torch.clamp(x + noise, 0, 1).detach()
    fooled = torch.zeros(len(y), dtype=torch.bool, device=x.device)
    for step in range(STRONG_STEPS):
        alpha = eps / 10 * (0.5 ** ((step >= STRONG_STEPS // 2) + (step >= 3 * STRONG_STEPS // 4)))
        logits, grad = oracle.grad_while_correct(adv, y, loss)
        fooled |= logits.argmax(1) != y  # any point on the path inside the ball counts
        adv = adv.detach() + alpha * grad.sign()
        adv = torch.clamp(x + torch.clamp(adv - x, -eps, eps), 0, 1).detach()
    fooled |= oracle.logits(adv).argmax(1) != y
    return fooled


def strong_attack_correct(model, x, y, eps: float, pgd_correct=None, *, seed: int = STRONG_SEED):
    """Per-sample robustness under the worst of PGD-20 and 2 x 5 restarts of PGD-100 (CE, margin).

    ``model`` is a gradient oracle or a model; ``pgd_correct`` (bool per sample) is the PGD-20
    result if the caller already has it; ``seed`` seeds the random starts.
    """
    import torch

    oracle = as_oracle(model)
    if pgd_correct is None:
        pgd_correct = oracle.logits(pgd(oracle, x, y, eps, eps / 4, PGD_STEPS)).argmax(1) == y
    correct = pgd_correct.clone() & (oracle.logits(x).argmax(1) == y)
    gen = torch.Generator().manual_seed(seed)
    for loss in ("ce", "margin"):
        for _ in range(STRONG_RESTARTS):
            # Only digits still standing need attacking again (same result, less work).
            alive = correct.nonzero().squeeze(1)
            if len(alive) == 0:
                return correct
            correct[alive] = ~_strong_fooled(oracle, x[alive], y[alive], eps, loss=loss, generator=gen)
    return correct


# ---------------------------------------------------------------- Square attack (gradient-free)
def p_selection(p_init: float, it: int, n_queries: int) -> float:
    """The Square attack's schedule: the share of pixels a square covers, halved at fixed fractions
    of the query budget (Andriushchenko et al. 2020, rescaled to the budget as in their code)."""
    it = int(it / n_queries * 10000)
    for bound, div in ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64), (6000, 128),
                       (8000, 256)):
        if it <= bound:
            return p_init / div
    return p_init / 512


def margins(logits, y):
    """Per example: true logit minus the best other logit (<= 0: not classified as ``y``)."""
    import torch

    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.masked_fill(torch.nn.functional.one_hot(y, logits.size(1)).bool(), float("-inf")).amax(1)
    return true - other


def square(model, x, y, eps, n_queries: int, *, p_init: float = SQUARE_P_INIT, generator=None,
           last_row: bool = True, trace: list | None = None):
    """The L-inf Square attack (Andriushchenko et al. 2020): random search over the vertices of the
    eps-ball, using logits only. Returns ``(fooled [B] bool, x_best [B, D], queries [B])``.

    ``x`` is ``[B, D]`` with ``D`` a square number (an image of side ``sqrt(D)``, one channel);
    ``eps`` a number or one per example (``[B]``).
    Start from vertical stripes (each column of the image at ``x - eps`` or ``x + eps``, clipped to
    [0, 1]); then, per query and per example still classified right, draw a window of side ``s``
    (from ``p_selection``: the whole image but one row at first, single pixels after a tenth of the
    budget) at a uniform position, and set it to one corner of the ball, ``+eps`` or ``-eps``; a
    sign that changes nothing is replaced by the other (the original draws again until the window
    changes, which with one channel is the other sign). Keep the candidate if it lowers the margin
    loss (true logit minus best other) or is misclassified; stop attacking an example once it is
    misclassified. An example costs one query for the start and one per step: at most
    ``n_queries`` in all. As in the authors' code (not AutoAttack's batched version), each example
    draws its own window and sign; unlike both, a window may also sit at the last row or column.

    ``last_row=False`` draws positions as the authors' code and torchattacks do,
    ``randint(0, side - s)``, which never puts a window on the last row or column: on 8x8 digits
    that freezes 15 of the 64 pixels at their starting stripe and leaves the floor's robust accuracy
    at 0.54 instead of 0.37 (1000 queries, mean of 5 seeds; torchattacks 0.54). The tests use it to
    compare with torchattacks; the task never does.

    ``model`` is an oracle (only its ``logits`` is used) or a model; the margin is computed here, so
    a remote model never sees a label. ``trace``, if given, gets one dict per step: the indices of
    the examples attacked (``alive``), the window's ``size``, each example's ``top``, ``left`` and
    sign (``up``: ``+eps``), whether it was kept (``accept``) and every example's best loss so far
    (``loss``, which never increases).
    """
    import torch

    oracle = as_oracle(model)
    gen = generator if generator is not None else torch.Generator().manual_seed(SQUARE_SEED)
    b, d = x.shape
    side = math.isqrt(d)
    if side * side != d:
        raise ValueError(f"the Square attack needs square images; got {d} features")
    radius = torch.as_tensor(eps, dtype=x.dtype).reshape(-1, 1)  # a number, or one per example
    lo = (x - radius).clamp(0, 1).reshape(b, side, side)  # the two corners of the ball per pixel
    hi = (x + radius).clamp(0, 1).reshape(b, side, side)
    stripes = torch.randint(0, 2, (b, 1, side), generator=gen).bool()
    best = torch.where(stripes, hi, lo)
    z = oracle.logits(best.reshape(b, d))
    loss = margins(z, y)
    fooled = z.argmax(1) != y
    queries = torch.ones(b, dtype=torch.long)
    grid = torch.arange(side)
    for i in range(n_queries - 1):
        alive = (~fooled).nonzero().squeeze(1)
        if len(alive) == 0:
            break
        n = len(alive)
        s = min(max(round(math.sqrt(p_selection(p_init, i, n_queries) * d)), 1), side - 1)
        top = torch.randint(0, side - s + last_row, (n, 1), generator=gen)
        left = torch.randint(0, side - s + last_row, (n, 1), generator=gen)
        up = torch.randint(0, 2, (n, 1, 1), generator=gen).bool()
        window = ((grid >= top) & (grid < top + s))[:, :, None] & ((grid >= left) & (grid < left + s))[:, None, :]
        current, l, h = best[alive], lo[alive], hi[alive]
        unchanged = (~window | (torch.where(up, h, l) == current)).flatten(1).all(1)
        up = up ^ unchanged[:, None, None]
        candidate = torch.where(window, torch.where(up, h, l), current)
        z = oracle.logits(candidate.reshape(n, d))
        m = margins(z, y[alive])
        wrong = z.argmax(1) != y[alive]
        accept = (m < loss[alive]) | wrong
        loss[alive] = torch.where(accept, m, loss[alive])
        best[alive] = torch.where(accept[:, None, None], candidate, current)
        fooled[alive] = wrong
        queries[alive] += 1
        if trace is not None:
            trace.append({"alive": alive, "size": s, "top": top.squeeze(1), "left": left.squeeze(1),
                          "up": up.flatten(), "accept": accept, "loss": loss.clone()})
    return fooled, best.reshape(b, d), queries


def square_attacks_correct(model, x, y, runs: dict[float, int], clean_correct=None, *, seed: int = SQUARE_SEED,
                           n_queries: int = SQUARE_QUERIES, p_init: float = SQUARE_P_INIT) -> dict[float, Any]:
    """Per-sample robustness at each eps of ``runs`` (eps -> number of runs) under that many
    independent runs of :func:`square` of ``n_queries`` each: a digit counts as robust at an eps if
    no run breaks it. ``clean_correct``: the clean result, if the caller has it (digits wrong on
    clean inputs are not attacked).

    All runs at all radii go through one call of :func:`square`, one row per (eps, run, digit): a
    thousand queries of a few thousand rows each instead of five thousand queries of a few hundred
    (one round trip to the scoring process per query, and the per-step overhead here, paid once).
    Runs in parallel are independent draws, as AutoAttack's restarts are; AutoAttack restarts only
    the digits still standing, which spends fewer queries on digits an earlier run broke, for the
    same result in distribution.
    """
    import torch

    oracle = as_oracle(model)
    if clean_correct is None:
        clean_correct = oracle.logits(x).argmax(1) == y
    alive = clean_correct.nonzero().squeeze(1)
    rows = [(eps, alive) for eps, n in runs.items() for _ in range(n)]
    correct = {eps: clean_correct.clone() for eps in runs}
    if len(alive) == 0 or not rows:
        return correct
    idx = torch.cat([a for _, a in rows])
    radius = torch.cat([torch.full((len(a),), eps, dtype=x.dtype) for eps, a in rows])
    fooled, _, _ = square(oracle, x[idx], y[idx], radius, n_queries, p_init=p_init,
                          generator=torch.Generator().manual_seed(seed))
    start = 0
    for eps, a in rows:
        correct[eps][a] &= ~fooled[start:start + len(a)]
        start += len(a)
    return correct


def square_attack_correct(model, x, y, eps: float, clean_correct=None, *, seed: int = SQUARE_SEED,
                          n_queries: int = SQUARE_QUERIES, restarts: int = SQUARE_RESTARTS,
                          p_init: float = SQUARE_P_INIT):
    """:func:`square_attacks_correct` at one radius: robust under ``restarts`` runs."""
    return square_attacks_correct(model, x, y, {eps: restarts}, clean_correct, seed=seed, n_queries=n_queries,
                                  p_init=p_init)[eps]


def square_runs() -> dict[float, int]:
    """Square runs per eps: ``SQUARE_RESTARTS`` at the primary eps, where the metric is; one at the
    others (a point or two on a side metric is not worth doubling the evaluation)."""
    return {eps: SQUARE_RESTARTS if eps == PRIMARY_EPS else 1 for eps in EPSILONS}


# ---------------------------------------------------------------- transfer attack
def _surrogate_seed(seal: Seal) -> int:
    return int(seal.rng(SURROGATE_STREAM).integers(2**31))


def train_surrogate(train: Digits, seed: int):
    """The transfer attack's surrogate: an MLP 64-256-256-10 trained on clean ``train`` digits
    (Adam, batch 64, ``SURROGATE_EPOCHS`` epochs) from ``seed`` alone, on one thread, without
    touching torch's global random state. The reference and floor MLPs' architecture: the closest
    a surrogate can be without the method's weights."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            d, h = train.x.shape[1], SURROGATE_HIDDEN
            model = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, train.n_classes))
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=SURROGATE_LR)
        x, y = torch.as_tensor(train.x), torch.as_tensor(train.y)
        for _ in range(SURROGATE_EPOCHS):
            order = torch.randperm(len(y), generator=gen)
            for i in range(0, len(y), SURROGATE_BATCH):
                idx = order[i:i + SURROGATE_BATCH]
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval().requires_grad_(False)


def transfer_examples(surrogate, test: Digits, eps: float = PRIMARY_EPS) -> np.ndarray:
    """PGD-20 (cross-entropy, alpha eps/4, no random start) against the surrogate, with the true
    labels: the adversarial digits every solution of this build is then shown."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x, y = torch.as_tensor(test.x), torch.as_tensor(test.y)
        return pgd(surrogate, x, y, eps, eps / 4, PGD_STEPS).numpy().astype(np.float32)
    finally:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------- the task
class AdversarialTask:
    def build(self, *, variant: str, seed: int, budget: Budget, seal: Seal) -> Problem:
        if variant != "glyphs-linf":
            raise ValueError(f"unknown variant {variant!r}")
        train, test = load_split(seal)
        transfer_x = transfer_examples(train_surrogate(train, _surrogate_seed(seal)), test)
        held = Heldout(test, transfer_x, strong_seed=seal.random_state(STRONG_SEED, "strong-starts"),
                       square_seed=seal.random_state(SQUARE_SEED, "square"))
        return Problem(train=train, heldout=held,
                       description={"variant": variant, "train": len(train.y), "heldout": len(test.y),
                                    "epsilons": list(EPSILONS), "pgd_steps": PGD_STEPS,
                                    "pgd_alpha": "eps/4", "pgd_random_start": False,
                                    "strong": f"PGD-20 + PGD-{STRONG_STEPS} x {STRONG_RESTARTS} restarts (CE, margin)",
                                    "square": {"norm": "Linf", "queries_per_run": SQUARE_QUERIES,
                                               "runs": {_eps_name(e): n for e, n in square_runs().items()},
                                               "queries_per_example": {_eps_name(e): SQUARE_QUERIES * n
                                                                       for e, n in square_runs().items()},
                                               "p_init": SQUARE_P_INIT, "loss": "margin",
                                               "windows": "per example, any position"},
                                    "transfer": {"surrogate": f"MLP 64-{SURROGATE_HIDDEN}-{SURROGATE_HIDDEN}-10, "
                                                              f"clean training, {SURROGATE_EPOCHS} epochs",
                                                 "attack": f"PGD-{PGD_STEPS} CE at eps {PRIMARY_EPS:g}, alpha eps/4"},
                                    "worst_case": {_eps_name(PRIMARY_EPS): ["pgd", "strong_pgd", "square", "transfer"],
                                                   **{_eps_name(e): ["pgd", "square"]
                                                      for e in EPSILONS if e != PRIMARY_EPS}}})

    def evaluate(self, solution: "SolutionHandle", problem: Problem, profile: "Profile") -> dict[str, float]:
        import torch

        held: Heldout = problem.heldout
        test = held.test
        oracle = RemoteOracle(solution, test.n_classes, getattr(profile, "torch_device", None))
        # The attack's own arithmetic runs here on CPU; the model's passes run in the scoring process.
        x, y = torch.as_tensor(test.x), torch.as_tensor(test.y)
        threads = torch.get_num_threads()
        # One thread: the attacks are thousands of small steps, where intra-op threading costs more
        # than it gains (measured 3 ms per pass on 1 thread, 30-70 ms on 2 busy cores).
        torch.set_num_threads(1)
        try:
            clean = oracle.logits(x).argmax(1) == y
            out = {"clean_acc": clean.float().mean().item()}
            pgd_correct = {eps: oracle.logits(pgd(oracle, x, y, eps, eps / 4, PGD_STEPS)).argmax(1) == y
                           for eps in EPSILONS}
            square_correct = square_attacks_correct(oracle, x, y, square_runs(), clean, seed=held.square_seed)
            strong = strong_attack_correct(oracle, x, y, PRIMARY_EPS, pgd_correct[PRIMARY_EPS], seed=held.strong_seed)
            transfer = clean & (oracle.logits(torch.as_tensor(held.transfer_x)).argmax(1) == y)
        finally:
            torch.set_num_threads(threads)
        for eps in EPSILONS:
            worst = clean & pgd_correct[eps] & square_correct[eps]
            if eps == PRIMARY_EPS:
                worst &= strong & transfer
            out[f"robust_acc_{_eps_name(eps)}"] = worst.float().mean().item()
        p = _eps_name(PRIMARY_EPS)
        out[f"pgd_acc_{p}"] = pgd_correct[PRIMARY_EPS].float().mean().item()
        out[f"strong_pgd_acc_{p}"] = strong.float().mean().item()
        out[f"square_acc_{p}"] = square_correct[PRIMARY_EPS].float().mean().item()
        out[f"transfer_acc_{p}"] = transfer.float().mean().item()
        out["gap_pgd_vs_worst"] = 100.0 * (out[f"pgd_acc_{p}"] - out[f"robust_acc_{p}"])
        return out
