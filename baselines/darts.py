"""Differentiable architecture search (DARTS, Liu et al. 2019) for the ``darts`` task. One file, top to bottom.

DARTS relaxes the choice of an operation on each edge into a softmax-weighted sum of all of them
(a *mixed op*, weights ``softmax(α_edge)``), trains the network's weights ``w`` and the
architecture parameters ``α`` together, and finally keeps the strongest operations. It is a
bilevel problem: ``α`` should lower the *validation* loss of the weights that training on ``α``
gives,

    min_α L_val(w*(α), α)   with   w*(α) = argmin_w L_train(w, α),

solved by alternating one ``α`` step on a validation batch with one ``w`` step on a training batch.
First order pretends ``w*`` does not depend on ``α``. Second order looks one virtual step ahead,
``w' = w − ξ ∇_w L_train(w, α)``, and differentiates ``L_val(w', α)`` through it; the mixed second
derivative in that hypergradient is taken by central finite differences (the paper's eq. 8), so it
costs two more gradient evaluations instead of a Hessian (:func:`hypergradient`;
``tests/test_darts.py`` checks it against the exact unrolled gradient from ``torch.func``).

Traps this file avoids (tests in ``tests/test_darts.py``):

* **α in the weight optimiser**: the weights' SGD would then also move α on the *training* loss;
  α has its own Adam and only ever steps on validation batches;
* **α and w on the same data**: the two halves of the search data are disjoint;
* **softmax over the whole cell** instead of per edge;
* **deriving with ``none``**: ``none`` usually wins the softmax late in search (it lowers the
  scale of noisy edges) and says nothing about which op is best; it is dropped, then each node
  keeps its two strongest inputs;
* **learnable BatchNorm in the supernet** (``affine=False``): a learnt scale can undo α;
* **the virtual step ignores momentum and weight decay**: ``w'`` is the step SGD would take;
* **reporting the supernet's accuracy**: the harness retrains the derived cell from scratch.

``random_architecture`` (the floor) draws a cell uniformly from the same space: DARTS is only worth
its cost if it beats that (Li & Talwalkar 2019).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from advbench.tasks.darts.contract import (CHANNELS, CHOSEN_OPS, N_CELLS, N_CLASSES, N_EDGES, N_NODES, OPS, Genotype,
                                           Preprocess, SearchData, edges, make_op, random_genotype, stem)


# ---------------------------------------------------------------------------------------------
# Hyperparameters (the paper's CIFAR-10 search settings, scaled to 8x8 digits)
# ---------------------------------------------------------------------------------------------

@dataclass
class Config:
    epochs: int = 50  # overridden by the budget's search_epochs
    batch_size: int = 64
    w_lr: float = 0.025  # SGD, cosine to w_lr_min
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-4
    w_grad_clip: float = 5.0
    alpha_lr: float = 3e-3  # Adam, as the paper
    alpha_betas: tuple[float, float] = (0.5, 0.999)
    alpha_weight_decay: float = 1e-3
    second_order: bool = False
    fd_epsilon: float = 0.01  # the paper's finite-difference step, divided by ||∇_w' L_val||


# ---------------------------------------------------------------------------------------------
# The supernet: every edge holds every operation
# ---------------------------------------------------------------------------------------------

class MixedOp(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.ops = nn.ModuleList(make_op(name, c, affine=False) for name in OPS)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return sum(w * op(x) for w, op in zip(weights, self.ops))


class SearchCell(nn.Module):
    def __init__(self, c_prev_prev: int, c_prev: int, c: int) -> None:
        super().__init__()
        self.pre0 = Preprocess(c_prev_prev, c, affine=False)
        self.pre1 = Preprocess(c_prev, c, affine=False)
        self.edges = nn.ModuleList(MixedOp(c) for _ in range(N_EDGES))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        e = 0
        for node in range(N_NODES):
            total = 0
            for inp in range(2 + node):
                total = total + self.edges[e](states[inp], weights[e])
                e += 1
            states.append(total)
        return torch.cat(states[2:], dim=1)


class Supernet(nn.Module):
    """Weights are the module's parameters; α is passed in, so no optimiser can mix them up."""

    def __init__(self, c: int = CHANNELS) -> None:
        super().__init__()
        self.stem = stem(c, affine=False)
        cells, c_pp, c_p = [], c, c
        for _ in range(N_CELLS):
            cells.append(SearchCell(c_pp, c_p, c))
            c_pp, c_p = c_p, N_NODES * c
        self.cells = nn.ModuleList(cells)
        self.classifier = nn.Linear(c_p, N_CLASSES)

    def forward(self, x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        weights = F.softmax(alpha, dim=-1)  # per edge: one row of α is one edge's 7 operations
        s0 = s1 = self.stem(x)
        for cell in self.cells:  # one cell type: both cells share α
            s0, s1 = s1, cell(s0, s1, weights)
        return self.classifier(s1.mean(dim=(2, 3)))


def loss(net: Supernet, alpha: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(net(x, alpha), y)


# ---------------------------------------------------------------------------------------------
# The architecture gradient
# ---------------------------------------------------------------------------------------------

def virtual_step(net: Supernet, opt: torch.optim.SGD, alpha: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                 xi: float) -> list[torch.Tensor]:
    """w' = w − ξ (momentum · buffer + ∇_w L_train + weight_decay · w): the step SGD would take."""
    params = list(net.parameters())
    grads = torch.autograd.grad(loss(net, alpha, x, y), params)
    group = opt.param_groups[0]
    out = []
    for p, g in zip(params, grads):
        buf = opt.state.get(p, {}).get("momentum_buffer")
        step = g + group["weight_decay"] * p.detach()
        if buf is not None:
            step = step + group["momentum"] * buf
        out.append(p.detach() - xi * step)
    return out


def hypergradient(net: Supernet, opt: torch.optim.SGD, alpha: torch.Tensor, train_batch, val_batch, xi: float,
                  epsilon: float = 0.01) -> torch.Tensor:
    """∇_α L_val(w', α) − ξ ∇²_{α,w} L_train(w, α) · ∇_w' L_val(w', α), the mixed term by central
    differences at w ± ε v, ε = ``epsilon`` / ||v|| (the paper's eq. 7-8). Leaves the weights as found."""
    params = list(net.parameters())
    saved = [p.detach().clone() for p in params]
    w_prime = virtual_step(net, opt, alpha, *train_batch, xi)
    with torch.no_grad():
        for p, w in zip(params, w_prime):
            p.copy_(w)
    a = alpha.detach().requires_grad_(True)
    grads = torch.autograd.grad(loss(net, a, *val_batch), [a, *params])
    d_alpha, v = grads[0], grads[1:]
    eps = epsilon / torch.cat([g.flatten() for g in v]).norm().clamp_min(1e-12)

    def d_alpha_train(sign: float) -> torch.Tensor:
        with torch.no_grad():
            for p, w, g in zip(params, saved, v):
                p.copy_(w + sign * eps * g)
        return torch.autograd.grad(loss(net, a, *train_batch), a)[0]

    mixed = (d_alpha_train(+1.0) - d_alpha_train(-1.0)) / (2 * eps)
    with torch.no_grad():
        for p, w in zip(params, saved):
            p.copy_(w)
    return d_alpha - xi * mixed


def derive(alpha: torch.Tensor) -> Genotype:
    """Drop ``none``; per node keep the two inputs whose best remaining op is strongest, with that op."""
    weights = F.softmax(alpha.detach(), dim=-1)[:, 1:]  # column 0 is "none"
    nodes, e = [], 0
    for node in range(N_NODES):
        cand = []
        for inp in range(2 + node):
            best = int(weights[e].argmax())
            cand.append((float(weights[e, best]), inp, CHOSEN_OPS[best]))
            e += 1
        (_, a, op_a), (_, b, op_b) = sorted(cand, reverse=True)[:2]
        nodes.append((a, op_a, b, op_b))
    return Genotype(tuple(nodes))


# ---------------------------------------------------------------------------------------------
# Search
# ---------------------------------------------------------------------------------------------

def search(train: SearchData, ctx, cfg: Config) -> Genotype:
    torch.manual_seed(ctx.seed)
    rng = ctx.rng(1)
    order = rng.permutation(len(train))
    half = len(order) // 2  # weights learn on one half, α on the other: never the same images
    x, y = torch.as_tensor(train.x, device=ctx.device), torch.as_tensor(train.y, device=ctx.device)
    x_w, y_w, x_a, y_a = x[order[:half]], y[order[:half]], x[order[half:]], y[order[half:]]

    # Weights and α are drawn on the CPU, then moved: a seed starts from the same supernet on any device.
    net = Supernet().to(ctx.device)
    alpha = (1e-3 * torch.randn(N_EDGES, len(OPS))).to(ctx.device).requires_grad_(True)  # near-uniform start
    w_opt = torch.optim.SGD(net.parameters(), lr=cfg.w_lr, momentum=cfg.w_momentum, weight_decay=cfg.w_weight_decay)
    a_opt = torch.optim.Adam([alpha], lr=cfg.alpha_lr, betas=cfg.alpha_betas, weight_decay=cfg.alpha_weight_decay)
    steps = -(-half // cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, cfg.epochs * steps, eta_min=cfg.w_lr_min)
    gen = torch.Generator().manual_seed(ctx.seed)
    net.train()
    for epoch in range(cfg.epochs):
        w_batches = torch.randperm(half, generator=gen).to(ctx.device).split(cfg.batch_size)
        a_batches = torch.randperm(len(y_a), generator=gen).to(ctx.device).split(cfg.batch_size)
        for wb, ab in zip(w_batches, a_batches):
            # α step on a validation batch (first: it looks ahead from the current weights)
            a_opt.zero_grad(set_to_none=True)
            if cfg.second_order:
                alpha.grad = hypergradient(net, w_opt, alpha, (x_w[wb], y_w[wb]), (x_a[ab], y_a[ab]),
                                           xi=sched.get_last_lr()[0], epsilon=cfg.fd_epsilon)
            else:
                loss(net, alpha, x_a[ab], y_a[ab]).backward(inputs=[alpha])
            a_opt.step()
            # w step on a training batch; α is not among w_opt's parameters
            w_opt.zero_grad(set_to_none=True)
            loss(net, alpha.detach(), x_w[wb], y_w[wb]).backward()
            nn.utils.clip_grad_norm_(net.parameters(), cfg.w_grad_clip)
            w_opt.step()
            sched.step()
            ctx.count(len(wb))
        ctx.progress(epoch + 1, cfg.epochs)
    genotype = derive(alpha)
    ctx.record_config(**asdict(cfg), alpha=alpha.detach().tolist(), genotype=[list(n) for n in genotype.nodes])
    return genotype


def first_order(train: SearchData, ctx) -> Genotype:
    """DARTS, first order: α follows ∇_α L_val at the current weights (the reference)."""
    return search(train, ctx, Config(epochs=int(ctx.limits["search_epochs"])))


def second_order(train: SearchData, ctx) -> Genotype:
    """DARTS, second order: α follows the hypergradient through one virtual weight step."""
    return search(train, ctx, Config(epochs=int(ctx.limits["search_epochs"]), second_order=True))


def random_architecture(train: SearchData, ctx) -> Genotype:
    """The floor: a cell drawn uniformly from the space, no search."""
    nodes = random_genotype(ctx.rng(7))
    ctx.record_config(genotype=[list(n) for n in nodes])
    return Genotype(nodes)
