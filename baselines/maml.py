"""Model-agnostic meta-learning (Finn et al. 2017) for the ``maml`` task. One file, top to bottom.

MAML looks for initial weights θ from which one gradient step on a new task's few support points
already fits it. For each task i of a meta-batch it takes the inner step

    θ'_i = θ − α ∇_θ L_support_i(θ)

and moves θ to lower the **query** loss of the adapted weights, averaged over the meta-batch:

    θ ← θ − β ∇_θ (1/T) Σ_i L_query_i(θ'_i).

The meta-gradient goes *through* the inner step, so it contains the Hessian term
−α ∇²L_support · ∇L_query (second order). Here the inner step is a function of θ
(``torch.func.grad`` of a functional forward), the tasks of a meta-batch run together under
``torch.func.vmap`` and the outer gradient is one more ``torch.func.grad``: no Python loop over
tasks, no shared module whose state could leak from one task into the next.

Traps this file avoids (each is a test in ``tests/test_maml.py``):

* **deepcopy + optimizer.step() inner loop**: adapting a copy of the model in place cuts the graph
  from θ'_i back to θ; the "meta-gradient" is then the query gradient at θ'_i, i.e. first-order
  MAML at best, silently;
* **the outer loss is on the query set** (the support set is what the inner step has fitted);
* **average over tasks** (a sum makes the outer step size depend on the meta-batch size);
* **first-order** (``Config.first_order``) drops the Hessian term on purpose: a second method.

The floor, ``joint``, trains the same network on pooled points of many tasks (no inner loop) and is
scored with the same adaptation: it learns the average sinusoid, and one step cannot move it far.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch.func import grad, vmap

from advbench.tasks.maml.contract import MetaInitialisation, SinusoidFamily, adapt, init_parameters, mse


# ---------------------------------------------------------------------------------------------
# Hyperparameters (the paper's sinusoid settings unless said)
# ---------------------------------------------------------------------------------------------

@dataclass
class Config:
    meta_iterations: int = 70_000  # overridden by the budget
    meta_batch: int = 25  # tasks per outer step
    inner_lr: float = 0.01  # α: the harness adapts with this too
    inner_steps: int = 1  # inner steps during meta-training (the harness scores 1 and 10)
    outer_lr: float = 1e-3  # β, Adam
    first_order: bool = False
    checkpoints: int = 10
    # The harness adapts for up to 10 steps of α. An initialisation meta-trained for one step can be
    # sharp enough that ten plain steps diverge on a rare task (support points bunched at one end of
    # [-5, 5]: about 1 task in 6000 at one full-budget seed, whose query MSE then reached 3e5 and the
    # mean over 600 tasks 562). Before it hands in α the method checks it on tasks of its own: the
    # largest α·backoff^j under which ten steps leave no support loss 10x above where it started.
    stability_tasks: int = 20_000
    stability_steps: int = 10
    backoff: float = 0.9


# ---------------------------------------------------------------------------------------------
# The meta-objective
# ---------------------------------------------------------------------------------------------

def adapted(params: dict[str, torch.Tensor], x_s: torch.Tensor, y_s: torch.Tensor, lr: float, steps: int,
            first_order: bool) -> dict[str, torch.Tensor]:
    """θ' after ``steps`` gradient steps on one task's support points (differentiable in θ)."""
    for _ in range(steps):
        g = grad(mse)(params, x_s, y_s)
        if first_order:  # treat the inner gradient as a constant: no Hessian term in the meta-gradient
            g = {k: v.detach() for k, v in g.items()}
        params = {k: p - lr * g[k] for k, p in params.items()}
    return params


def task_query_loss(params, x_s, y_s, x_q, y_q, lr: float, steps: int, first_order: bool) -> torch.Tensor:
    return mse(adapted(params, x_s, y_s, lr, steps, first_order), x_q, y_q)


def meta_loss(params, x_s, y_s, x_q, y_q, lr: float, steps: int, first_order: bool) -> torch.Tensor:
    """Mean over the meta-batch (tasks along dim 0 of the data) of the adapted query loss, under vmap."""
    per_task = vmap(task_query_loss, in_dims=(None, 0, 0, 0, 0, None, None, None))(
        params, x_s, y_s, x_q, y_q, lr, steps, first_order)
    return per_task.mean()


def meta_gradient(params, x_s, y_s, x_q, y_q, lr: float, steps: int = 1, first_order: bool = False):
    """∇_θ of :func:`meta_loss`, all tasks at once."""
    return grad(meta_loss)(params, x_s, y_s, x_q, y_q, lr, steps, first_order)


def meta_gradient_loop(params, x_s, y_s, x_q, y_q, lr: float, steps: int = 1, first_order: bool = False):
    """The same meta-gradient one task at a time with plain autograd (the reference in the tests and
    the per-task loop of the benchmark)."""
    theta = {k: v.detach().requires_grad_(True) for k, v in params.items()}
    total = {k: torch.zeros_like(v) for k, v in theta.items()}
    for i in range(len(x_s)):
        fast = theta
        for _ in range(steps):
            g = torch.autograd.grad(mse(fast, x_s[i], y_s[i]), list(fast.values()), create_graph=not first_order)
            fast = {k: p - lr * gi for (k, p), gi in zip(fast.items(), g)}
        g_out = torch.autograd.grad(mse(fast, x_q[i], y_q[i]) / len(x_s), list(theta.values()))
        for k, gi in zip(total, g_out):
            total[k] += gi
    return total


def stable_inner_lr(params: dict[str, torch.Tensor], x_s: torch.Tensor, y_s: torch.Tensor, cfg: Config) -> float:
    """The largest ``cfg.inner_lr * cfg.backoff**j`` under which ``cfg.stability_steps`` plain steps leave
    no support loss of the tasks ``x_s, y_s`` (the method's own) an order of magnitude above where it
    started: divergence, not the wobble of a task already fitted."""
    theta = {k: v.detach() for k, v in params.items()}

    def stable(lr: float) -> bool:
        for part in range(0, len(x_s), 2000):  # a few hundred MiB of adapted weights at a time
            xs, ys = x_s[part:part + 2000], y_s[part:part + 2000]
            path = adapt(theta, xs, ys, lr, cfg.stability_steps)
            with torch.no_grad():
                start, end = mse(path[0], xs, ys), mse(path[-1], xs, ys)
            if not (bool(torch.isfinite(end).all()) and bool((end <= 10 * start).all())):
                return False
        return True

    lr = cfg.inner_lr
    for _ in range(20):
        if stable(lr):
            break
        lr *= cfg.backoff
    return lr


def as_solution(params: dict[str, torch.Tensor], lr: float) -> MetaInitialisation:
    return MetaInitialisation({k: v.detach().cpu().numpy().copy() for k, v in params.items()}, lr)


# ---------------------------------------------------------------------------------------------
# Methods
# ---------------------------------------------------------------------------------------------

def joint_gradient(params, x_s, y_s, x_q, y_q):
    """The floor's gradient: the shared weights fitted to every point of every task, no inner loop."""
    x, y = torch.cat([x_s, x_q], dim=1), torch.cat([y_s, y_q], dim=1)
    return grad(lambda p: mse(p, x, y).mean())(params)


def _train(family: SinusoidFamily, ctx, objective: str) -> MetaInitialisation:
    """``objective``: ``second-order`` or ``first-order`` MAML, or ``joint`` pretraining (the floor)."""
    cfg = Config(meta_iterations=int(ctx.limits["meta_iterations"]), first_order=objective == "first-order")
    ctx.record_config(**asdict(cfg), k_shot=family.k_shot, objective=objective)
    torch.manual_seed(ctx.seed)
    rng = np.random.default_rng([ctx.seed, 7])  # the method's own training tasks
    # Its own tasks for the step-size check: a tenth of them at intermediate checkpoints, all at the end.
    check = family.sample(np.random.default_rng([ctx.seed, 8]), cfg.stability_tasks)
    check_x, check_y = torch.from_numpy(check.x_s).to(ctx.device), torch.from_numpy(check.y_s).to(ctx.device)
    # Initialised on the CPU (the seed's generator), then moved: a seed starts from the same weights on any device.
    params = {k: v.to(ctx.device).requires_grad_(True)
              for k, v in init_parameters(torch.Generator().manual_seed(ctx.seed)).items()}
    opt = torch.optim.Adam(params.values(), lr=cfg.outer_lr)
    every = max(1, cfg.meta_iterations // cfg.checkpoints)
    for it in range(1, cfg.meta_iterations + 1):
        # K support and K query points per task, as in the paper's meta-training.
        batch = family.sample(rng, cfg.meta_batch)
        data = [torch.from_numpy(a).to(ctx.device) for a in (batch.x_s, batch.y_s, batch.x_q, batch.y_q)]
        if objective == "joint":
            g = joint_gradient(params, *data)
        else:
            g = meta_gradient(params, *data, cfg.inner_lr, cfg.inner_steps, cfg.first_order)
        for k, p in params.items():
            p.grad = g[k]
        opt.step()
        ctx.count(cfg.meta_batch)
        if it % every == 0 or it == cfg.meta_iterations:
            ctx.progress(it, cfg.meta_iterations)
            n = len(check_x) if it == cfg.meta_iterations else len(check_x) // 10
            lr = stable_inner_lr(params, check_x[:n], check_y[:n], cfg)
            ctx.checkpoint(as_solution(params, lr), step=it)
    ctx.record_config(handed_in_inner_lr=lr)
    return as_solution(params, lr)


def maml(family: SinusoidFamily, ctx) -> MetaInitialisation:
    """Reference: second-order MAML, one inner step of α = 0.01, meta-batch 25, Adam 1e-3."""
    return _train(family, ctx, "second-order")


def first_order_maml(family: SinusoidFamily, ctx) -> MetaInitialisation:
    """First-order MAML: the same, without the Hessian term."""
    return _train(family, ctx, "first-order")


def joint(family: SinusoidFamily, ctx) -> MetaInitialisation:
    """Floor: one network fitted to pooled points of many tasks (no inner loop), adapted by the harness
    with the same inner learning rate."""
    return _train(family, ctx, "joint")
