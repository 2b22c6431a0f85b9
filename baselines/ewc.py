"""Elastic weight consolidation (Kirkpatrick et al. 2017) for the ``ewc`` task. One file, top to bottom.

A multilayer perceptron learns five digit tasks one after the other. Plain fine-tuning (the floor)
forgets: the weights that solved task 0 are overwritten by task 1's gradients. EWC keeps, at the
end of each task ``k``, a copy ``θ*_k`` of the weights and a diagonal Fisher information ``F_k``
(how sharply task ``k``'s log-likelihood curves along each weight), and trains later tasks on

    loss_t(θ) + Σ_{k<t} λ/2 · Σ_i F_k,i (θ_i − θ*_k,i)²

(one quadratic penalty per earlier task, as in the paper): weights that mattered for an earlier
task are held near their old values, the others stay free. ``λ`` = 5000, Adam at 1e-3.

The Fisher is the **empirical per-sample** one: the mean over task ``k``'s training images of the
*squared* gradient of each image's own log-likelihood at its true label, computed for all images
at once with ``torch.func.vmap(grad(...))``. Traps this file avoids (each is a test in
``tests/test_ewc.py``):

* **per-sample, not batch-mean**: squaring the gradient of a *minibatch's* mean loss gives
  ``E[(mean g)²]``, which at a trained optimum (where the mean gradient is near zero) is about
  ``E[g²] / B``: smaller by about the batch size ``B``, so a λ tuned for one does not transfer
  to the other;
* **empirical, not true, Fisher**: we use the observed label; the "true" Fisher samples ``y``
  from the model's own prediction. The two differ (the empirical one is the common EWC choice and
  the one TASKS.md calibrates); :func:`fisher` computes either, ``Config.fisher_labels`` picks;
* **θ* detached**: the anchor is a detached clone, so it does not move with training and the
  penalty's gradient flows into θ only;
* **the ½ factor**: the penalty is λ/2 · Σ F (θ − θ*)², zero at θ*;
* **SGD and a large λ**: the penalty's curvature along weight ``i`` is ``λ·F_i``; plain SGD is
  stable only while ``lr · λ · F_i < 2`` for every ``i``, and momentum narrows that further. At
  lr 0.05, λ = 100 held (ACC 0.63 and 0.70 on seeds 0 and 1 of v1's 8x8 digits), λ = 300 diverged
  to chance (0.10). Adam's per-weight step sizes keep the stiff directions stable at any λ we tried
  (100 to 30 000), so the reference uses Adam (lr 1e-3).
* **λ depends on the input size**: on v1's 64 pixels the best λ was 300 (5000 stopped later tasks
  from being learnt); on v2's 784 pixels, 300 gave ACC 0.78 (seed 0), 1000 0.83, 3000 0.90, 5000
  0.91 and 30 000 0.90 (the last task then learnt 0.93 instead of 0.96): λ is tuned per data set,
  never carried over.

The ceiling, ``joint``, at each stage trains the same network on every task seen so far (the
union of their training data, shuffled together) for the same number of epochs per stage, so the
accuracy matrix is defined for it too. ``split-task`` gives the task id at test time: every
method then masks the logits of the other tasks' classes (a multi-head output) in training, in
the Fisher and in ``predict``; the other settings use one 10-way head.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from advbench.baselines.common import frozen
from advbench.tasks.ewc.contract import NO_TASK_ID, ContinualData


# ---------------------------------------------------------------------------------------------
# Hyperparameters
# ---------------------------------------------------------------------------------------------

@dataclass
class Config:
    epochs_per_task: int = 20  # overridden by the budget's epochs_per_task
    hidden: int = 256  # two hidden layers of 256 ReLU units: room for five permuted tasks
    optimizer: str = "adam"  # "adam" or "sgd": see the docstring on SGD and large lambda
    lr: float = 1e-3
    momentum: float = 0.0  # SGD only
    batch: int = 32
    ewc_lambda: float = 5000.0  # for the per-sample empirical Fisher (it does not transfer to a batch-mean one)
    fisher_labels: str = "empirical"  # "empirical": observed y; "true": y sampled from the model
    fisher_chunk: int = 512  # images per vmap call when computing the Fisher


# ---------------------------------------------------------------------------------------------
# Model and solution
# ---------------------------------------------------------------------------------------------

def mlp(n_features: int, n_classes: int, hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, n_classes))


def class_mask(classes: tuple[int, ...] | None, n_classes: int) -> torch.Tensor:
    """Additive logit mask: 0 on ``classes``, -inf elsewhere (all zeros when ``classes`` is None)."""
    mask = torch.zeros(n_classes)
    if classes is not None:
        mask.fill_(float("-inf"))
        mask[list(classes)] = 0.0
    return mask


class Snapshots:
    """The solution: one frozen copy of the network per stage learnt.

    ``predict(x, stage, task_id)`` classifies with the copy taken after task ``stage``; given a task
    id (``split-task``) it answers among that task's classes only.
    """

    def __init__(self, task_classes: tuple[tuple[int, ...], ...], n_classes: int, use_task_id: bool) -> None:
        self.nets: list[nn.Module] = []
        self.task_classes, self.n_classes, self.use_task_id = task_classes, n_classes, use_task_id

    def add(self, net: nn.Module) -> "Snapshots":
        out = copy.copy(self)
        out.nets = [*self.nets, frozen(net).cpu()]  # scored on the CPU, wherever it trained
        return out

    def stages(self) -> int:
        return len(self.nets)

    @torch.no_grad()
    def predict(self, x: np.ndarray, stage: int, task_id: int) -> np.ndarray:
        logits = self.nets[int(stage)](torch.as_tensor(x, dtype=torch.float32))
        if self.use_task_id and task_id != NO_TASK_ID:
            logits = logits + class_mask(self.task_classes[int(task_id)], self.n_classes)
        return logits.argmax(1).numpy()


# ---------------------------------------------------------------------------------------------
# Fisher information
# ---------------------------------------------------------------------------------------------

def _sample_loss(net: nn.Module):
    """-log p(y | x) of one image (x: [d], y: [], mask: [C]) as a function of the parameters."""
    def loss(params, x, y, mask):
        logits = functional_call(net, params, (x[None],))[0] + mask
        return F.cross_entropy(logits[None], y[None])
    return loss


def per_sample_grads(net: nn.Module, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each image's own loss gradient, ``[n, *param.shape]`` per parameter, through ``torch.func.vmap``."""
    params = {k: v.detach() for k, v in net.named_parameters()}
    return vmap(grad(_sample_loss(net)), in_dims=(None, 0, 0, 0))(params, x, y, mask)


def fisher(net: nn.Module, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, *, chunk: int = 512,
           labels: str = "empirical", generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Diagonal Fisher: the mean over images of each image's squared log-likelihood gradient.

    ``labels="empirical"`` differentiates at the observed label; ``"true"`` at a label sampled
    from the model's predictive distribution (one draw per image).
    """
    if labels == "true":
        with torch.no_grad():
            probs = F.softmax(net(x) + mask, dim=1)
        # Drawn on the CPU with the run's generator, so a seed draws the same labels on any device.
        y = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(x.device)
    elif labels != "empirical":
        raise ValueError(f"fisher labels must be 'empirical' or 'true', got {labels!r}")
    total = {k: torch.zeros_like(v) for k, v in net.named_parameters()}
    for start in range(0, len(y), chunk):
        sl = slice(start, start + chunk)
        g = per_sample_grads(net, x[sl], y[sl], mask[sl])
        for k in total:
            total[k] += g[k].pow(2).sum(0)
    return {k: v / len(y) for k, v in total.items()}


def fisher_loop(net: nn.Module, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """The same empirical Fisher, one image at a time with autograd (the explicit reference)."""
    total = {k: torch.zeros_like(v) for k, v in net.named_parameters()}
    for i in range(len(y)):
        net.zero_grad(set_to_none=True)
        F.cross_entropy((net(x[i: i + 1]) + mask[i: i + 1]), y[i: i + 1]).backward()
        for k, p in net.named_parameters():
            total[k] += p.grad.detach().pow(2)
    net.zero_grad(set_to_none=True)
    return {k: v / len(y) for k, v in total.items()}


def fisher_batch_mean(net: nn.Module, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor,
                      batch: int) -> dict[str, torch.Tensor]:
    """The trap: squared gradient of each *minibatch's mean* loss, averaged over minibatches.

    About ``batch`` times smaller than :func:`fisher` near an optimum; shown in the tests, never
    used for training.
    """
    total = {k: torch.zeros_like(v) for k, v in net.named_parameters()}
    n_batches = 0
    for start in range(0, len(y) - batch + 1, batch):
        sl = slice(start, start + batch)
        net.zero_grad(set_to_none=True)
        F.cross_entropy(net(x[sl]) + mask[sl], y[sl]).backward()
        for k, p in net.named_parameters():
            total[k] += p.grad.detach().pow(2)
        n_batches += 1
    net.zero_grad(set_to_none=True)
    return {k: v / n_batches for k, v in total.items()}


@dataclass
class Anchor:
    """What EWC keeps of one finished task: its Fisher and the weights θ* (detached clones)."""

    fisher: dict[str, torch.Tensor]
    theta: dict[str, torch.Tensor]

    @staticmethod
    def of(net: nn.Module, fisher_diag: dict[str, torch.Tensor]) -> "Anchor":
        return Anchor({k: v.detach().clone() for k, v in fisher_diag.items()},
                      {k: v.detach().clone() for k, v in net.named_parameters()})


def ewc_penalty(net: nn.Module, anchors: list[Anchor], lam: float) -> torch.Tensor:
    """Σ_k λ/2 · Σ_i F_k,i (θ_i − θ*_k,i)²."""
    total = torch.zeros((), device=next(net.parameters()).device)
    for a in anchors:
        for k, p in net.named_parameters():
            total = total + (a.fisher[k] * (p - a.theta[k]).pow(2)).sum()
    return 0.5 * lam * total


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------

def _task_tensors(data: ContinualData, t: int, masked: bool, device: str = "cpu"
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    task = data.tasks[t]
    x = torch.as_tensor(task.x, dtype=torch.float32, device=device)
    y = torch.as_tensor(task.y, dtype=torch.int64, device=device)
    mask = class_mask(task.classes if masked else None, data.n_classes).to(device).expand(len(y), -1)
    return x, y, mask


def learn_sequence(data: ContinualData, ctx, method: str) -> Snapshots:
    """Learn ``data.tasks`` in order; ``method``: ``finetune``, ``ewc`` or ``joint``."""
    cfg = Config(epochs_per_task=int(ctx.limits["epochs_per_task"]))
    ctx.record_config(**asdict(cfg), method=method)
    torch.manual_seed(ctx.seed)
    gen = torch.Generator().manual_seed(ctx.seed)
    masked = data.task_id_at_test  # task-incremental: a multi-head (masked) output
    net = mlp(data.n_features, data.n_classes, cfg.hidden).to(ctx.device)
    solution = Snapshots(data.task_classes, data.n_classes, masked)
    anchors: list[Anchor] = []
    n_tasks = len(data.tasks)
    for t in range(n_tasks):
        seen = range(t + 1) if method == "joint" else [t]  # joint: every task so far, together
        parts = [_task_tensors(data, s, masked, ctx.device) for s in seen]
        x, y, mask = (torch.cat([p[i] for p in parts]) for i in range(3))
        if t == 0:  # one optimiser for the whole sequence: resetting Adam's moments per task forgot more
            opt = (torch.optim.Adam(net.parameters(), lr=cfg.lr) if cfg.optimizer == "adam"
                   else torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum))
        for _ in range(cfg.epochs_per_task):
            order = torch.randperm(len(y), generator=gen).to(ctx.device)  # drawn on the CPU: the same on any device
            for start in range(0, len(y), cfg.batch):
                idx = order[start: start + cfg.batch]
                loss = F.cross_entropy(net(x[idx]) + mask[idx], y[idx])
                if method == "ewc" and anchors:
                    loss = loss + ewc_penalty(net, anchors, cfg.ewc_lambda)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                ctx.count(len(idx))
        if method == "ewc" and t < n_tasks - 1:  # the last task's Fisher would never be used
            xt, yt, mt = _task_tensors(data, t, masked, ctx.device)
            anchors.append(Anchor.of(net, fisher(net, xt, yt, mt, chunk=cfg.fisher_chunk,
                                                 labels=cfg.fisher_labels, generator=gen)))
        solution = solution.add(net)
        ctx.progress(t + 1, n_tasks)
        ctx.checkpoint(solution, step=t + 1)
    return solution


# ---------------------------------------------------------------------------------------------
# Methods
# ---------------------------------------------------------------------------------------------

def ewc(data: ContinualData, ctx) -> Snapshots:
    """Reference: EWC with the per-sample empirical Fisher, λ = 300, Adam."""
    return learn_sequence(data, ctx, "ewc")


def fine_tune(data: ContinualData, ctx) -> Snapshots:
    """Floor: the same network and optimiser, no penalty."""
    return learn_sequence(data, ctx, "finetune")


def joint(data: ContinualData, ctx) -> Snapshots:
    """Ceiling: at stage t, train on tasks 0..t together."""
    return learn_sequence(data, ctx, "joint")
