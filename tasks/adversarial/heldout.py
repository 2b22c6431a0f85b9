"""The held-out side of the ``adversarial`` task: the split, the attacks and the scoring (harness only).

The attacks take a *gradient oracle* instead of a model: an object with

* ``logits(x) -> [B, C]``: the model's logits (eval mode, no gradients), and
* ``loss_grad(x, y, loss) -> (logits [B, C], grad)``: the logits at ``x`` and the gradient with
  respect to ``x`` of the batch-mean loss (``"ce"``: cross-entropy; ``"margin"``: :func:`margin_loss`).

:class:`LocalOracle` answers with autograd on a model in this process (what the tests compare with
torchattacks, bit for bit). :class:`RemoteOracle` answers for a solution in the scoring process,
which never gets a label: it asks for the logits and their input Jacobian
(:func:`~.contract.logits_and_jacobian`) and builds the loss gradient here, ``J^T (softmax(z) -
onehot(y)) / B`` for cross-entropy and ``(J[j*] - J[y]) / B`` for the margin (``j*`` the best other
class). Each attack step then costs one forward and ten backward passes instead of one and one:
an evaluation of the reference MLP takes 15-20 s instead of 3 s on one CPU thread (the Jacobian
is about 15 ms of a 450-digit step against 3 ms for autograd through the loss; moving it through
the pipe costs well under a millisecond).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from advbench.spec import Budget
from advbench.task import Problem, Seal
from advbench.tasks.adversarial import _eps_name
from advbench.tasks.adversarial.contract import (EPSILONS, PGD_STEPS, PRIMARY_EPS, STRONG_RESTARTS, STRONG_STEPS,
                                                 Digits)

if TYPE_CHECKING:
    import torch

    from advbench.profiles import Profile
    from advbench.solution import SolutionHandle

TEST_FRACTION = 0.25
STRONG_SEED = 1234  # the random starts' seed in an unsealed run
LOGITS = "advbench.tasks.adversarial.contract:logits"
LOGITS_AND_JACOBIAN = "advbench.tasks.adversarial.contract:logits_and_jacobian"


@dataclass
class Heldout:
    """What the task keeps: the held-out digits and the seed of the strong attack's random starts."""

    test: Digits
    strong_seed: int = STRONG_SEED


def load_split(seal: Seal, test_fraction: float = TEST_FRACTION) -> tuple[Digits, Digits]:
    """Stratified split of load_digits; ``random_state`` from the seal (the seed itself unsealed)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, stratify=y,
                                              random_state=seal.random_state(seal.seed, "split"))
    return Digits(x_tr, y_tr), Digits(x_te, y_te)


# ---------------------------------------------------------------- gradient oracles
def margin_loss(logits, y):
    """Carlini-Wagner margin: best wrong logit minus true logit (> 0 means misclassified); mean."""
    import torch

    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.masked_fill(torch.nn.functional.one_hot(y, logits.size(1)).bool(), float("-inf")).amax(1)
    return (other - true).mean()


class Oracle(Protocol):
    def logits(self, x: "torch.Tensor") -> "torch.Tensor": ...

    def loss_grad(self, x: "torch.Tensor", y: "torch.Tensor", loss: str) -> tuple["torch.Tensor", "torch.Tensor"]: ...


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


class RemoteOracle:
    """A solution in the scoring process, asked for logits and Jacobians of inputs only."""

    def __init__(self, solution: "SolutionHandle", n_classes: int = 10, device: str | None = None) -> None:
        self.solution, self.n_classes, self.device = solution, n_classes, device

    def logits(self, x):
        import torch

        z = self.solution.apply(LOGITS, x.detach().cpu().numpy(), self.device)
        return torch.as_tensor(_array(z, (len(x), self.n_classes), "logits"))

    def loss_grad(self, x, y, loss: str):
        import torch
        import torch.nn.functional as F

        reply = self.solution.apply(LOGITS_AND_JACOBIAN, x.detach().cpu().numpy(), self.device)
        if not isinstance(reply, tuple) or len(reply) != 2:
            raise TypeError("logits_and_jacobian must return (logits, jacobian)")
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


def as_oracle(model_or_oracle: Any) -> Oracle:
    """An oracle as is; an ``nn.Module`` (or an object with a ``.model``) as a :class:`LocalOracle`."""
    if hasattr(model_or_oracle, "loss_grad") and hasattr(model_or_oracle, "logits"):
        return model_or_oracle
    from advbench.tasks.adversarial.contract import model_of

    return LocalOracle(model_of(model_or_oracle))


# ---------------------------------------------------------------- attacks
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
    """One 100-step run with a step-size schedule; True where any iterate was misclassified."""
    import torch

    noise = torch.empty(x.shape, dtype=x.dtype).uniform_(-eps, eps, generator=generator).to(x.device)
    adv = torch.clamp(x + noise, 0, 1).detach()
    fooled = torch.zeros(len(y), dtype=torch.bool, device=x.device)
    for step in range(STRONG_STEPS):
        alpha = eps / 10 * (0.5 ** ((step >= STRONG_STEPS // 2) + (step >= 3 * STRONG_STEPS // 4)))
        logits, grad = oracle.loss_grad(adv, y, loss)
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


class AdversarialTask:
    def build(self, *, variant: str, seed: int, budget: Budget, seal: Seal) -> Problem:
        if variant != "digits-linf":
            raise ValueError(f"unknown variant {variant!r}")
        train, test = load_split(seal)
        return Problem(train=train, heldout=Heldout(test, seal.random_state(STRONG_SEED, "strong-starts")),
                       description={"variant": variant, "train": len(train.y), "heldout": len(test.y),
                                    "epsilons": list(EPSILONS), "pgd_steps": PGD_STEPS,
                                    "pgd_alpha": "eps/4", "pgd_random_start": False,
                                    "strong": f"PGD-20 + PGD-{STRONG_STEPS} x {STRONG_RESTARTS} restarts (CE, margin)"})

    def evaluate(self, solution: "SolutionHandle", problem: Problem, profile: "Profile") -> dict[str, float]:
        import torch

        held: Heldout = problem.heldout
        test = held.test
        oracle = RemoteOracle(solution, test.n_classes, getattr(profile, "torch_device", None))
        # The attack's own arithmetic runs here on CPU; the model's passes run in the scoring process.
        x, y = torch.as_tensor(test.x), torch.as_tensor(test.y)
        threads = torch.get_num_threads()
        # One thread: the attacks are ~1000 small steps, where intra-op threading costs more than it
        # gains (measured 3 ms per pass on 1 thread, 30-70 ms on 2 busy cores).
        torch.set_num_threads(1)
        try:
            out = {"clean_acc": (oracle.logits(x).argmax(1) == y).float().mean().item()}
            pgd_correct = {}
            for eps in EPSILONS:
                adv = pgd(oracle, x, y, eps, eps / 4, PGD_STEPS)
                pgd_correct[eps] = oracle.logits(adv).argmax(1) == y
                out[f"robust_acc_{_eps_name(eps)}"] = pgd_correct[eps].float().mean().item()
            strong = strong_attack_correct(oracle, x, y, PRIMARY_EPS, pgd_correct[PRIMARY_EPS],
                                           seed=held.strong_seed).float().mean().item()
        finally:
            torch.set_num_threads(threads)
        out["strong_robust_acc_eps0.1"] = strong
        out["gap_strong_vs_pgd"] = 100.0 * (out["robust_acc_eps0.1"] - strong)
        return out
