"""The public contract of the ``adversarial`` task: what a method receives and must return, and the
questions the harness asks the solution.

A method receives a :class:`Digits` as ``train``: ``x`` (``float32 (1350, 64)``, flattened 8x8
digits in [0, 1]), ``y`` (``int64`` labels), ``n_classes`` (10) and ``eps`` (the threat model's
radius at the primary metric, 0.1, in the input's scale).

It returns a :class:`Classifier` (``Classifier(model)``, ``model`` a ``torch.nn.Module`` mapping
``float32 (B, 64)`` inputs in [0, 1] to ``(B, 10)`` logits), or any object with the same three
methods. The harness attacks it without ever sending it a label: it asks the solution, in the
scoring process (fresh for each evaluation of a sealed run), only for these outputs, and computes
every loss, step and score itself:

* ``solution.logits`` (:func:`logits`) on clean, adversarial and transferred inputs, and on every query of the
  gradient-free Square attack;
* ``solution.logits_and_jacobian`` (:func:`logits_and_jacobian`) on PGD-20's iterates: the logits and their Jacobian with respect to
  the input, one plain autograd backward pass per class;
* ``solution.logits_and_grad_at_prediction`` (:func:`logits_and_grad_at_prediction`) on the strong check's iterates: the logits and the gradient
  of the loss taken at the model's *own* prediction ``argmax z``, one backward pass. Where the
  model is right this is the gradient of the loss at the true label, and the strong check only
  needs gradients where the model is still right (a digit it gets wrong once is broken for good);

and builds every loss from those on its own side. What a solution answers is its own output: a
gradient that lies only blunts the white-box attacks, as a masked gradient does, and the Square and
transfer attacks ask for logits alone. All three put the model in eval mode and run on
one thread for the call, restoring the model's mode and the thread count afterwards, and leave no
gradient on the parameters. A model need not be differentiable: a gradient that is zero or useless
only blunts the white-box attacks, and the Square and transfer attacks need none.

Why the Jacobian is a loop (measured, 450 digits, the reference MLP 64-256-256-10, one thread of
the 2-core reference machine): the loop of ten backward passes takes 14.1 ms, a single batched
backward (``autograd.grad(..., is_grads_batched=True)``) 15.4 ms, ``vmap(jacrev(model))`` 17.6 ms,
and one backward through ten stacked copies of the batch 26 ms, all bit-identical. The ten
backward passes are ten ``(450, 256) x (256, 256)`` products, about 60 GFLOP/s on one core, so
batching them has nothing left to save; what made the evaluation faster is asking for the Jacobian
less often (the strong check's 1000 steps take one backward each through
:func:`logits_and_grad_at_prediction`).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from advbench.tasks.adversarial import (EPSILONS, PGD_STEPS, PRIMARY_EPS, SQUARE_P_INIT, SQUARE_QUERIES,
                                        SQUARE_RESTARTS, STRONG_RESTARTS, STRONG_STEPS)

__all__ = ["EPSILONS", "PRIMARY_EPS", "PGD_STEPS", "STRONG_STEPS", "STRONG_RESTARTS", "SQUARE_QUERIES",
           "SQUARE_RESTARTS", "SQUARE_P_INIT", "Digits", "Classifier", "model_of", "margin_loss", "logits",
           "logits_and_jacobian", "logits_and_grad_at_prediction"]


@dataclass
class Digits:
    """What a method gets: flattened 8x8 digits in [0, 1] and their labels."""

    x: np.ndarray  # float32 (n, 64)
    y: np.ndarray  # int64 (n,)
    n_classes: int = 10
    eps: float = PRIMARY_EPS  # the threat model's radius at the primary metric (input scale)


@dataclass
class Classifier:
    """The solution: ``model`` and the three questions the harness asks about it."""

    model: Any  # torch.nn.Module

    def logits(self, x: np.ndarray, device: str | None = None):
        return logits(self, x, device)

    def logits_and_jacobian(self, x: np.ndarray, device: str | None = None):
        return logits_and_jacobian(self, x, device)

    def logits_and_grad_at_prediction(self, x: np.ndarray, loss: str = "ce", device: str | None = None):
        return logits_and_grad_at_prediction(self, x, loss, device)


def model_of(solution: Any):
    """The solution's ``nn.Module``: the solution itself, or its ``model`` attribute."""
    import torch

    model = solution if isinstance(solution, torch.nn.Module) else getattr(solution, "model", None)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"solution must be an nn.Module or have a .model nn.Module, got {type(solution).__name__}")
    return model


def margin_loss(logits, y):
    """Carlini-Wagner margin: best wrong logit minus true logit (> 0 means misclassified); mean."""
    import torch

    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.masked_fill(torch.nn.functional.one_hot(y, logits.size(1)).bool(), float("-inf")).amax(1)
    return (other - true).mean()


@contextmanager
def _scoring(model) -> Iterator[None]:
    """Eval mode and one thread for one call (tiny matmuls: intra-op threading costs more than it
    gains), both restored afterwards."""
    import torch

    was_training, threads = model.training, torch.get_num_threads()
    model.eval()
    if threads != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        model.train(was_training)
        if threads != 1:
            torch.set_num_threads(threads)


def _inputs(model, x: np.ndarray, device: str | None):
    """``x`` on the model's own device; ``device`` (the profile's) only for a model without parameters.
    A model the method moved to the CPU before handing it in is asked on the CPU under ``cuda`` too."""
    import torch

    param = next(model.parameters(), None)
    where = param.device if param is not None else (device or "cpu")
    return torch.as_tensor(np.asarray(x), device=where)


def _forward(model, xt):
    z = model(xt)
    if z.ndim != 2 or z.shape[0] != xt.shape[0]:
        raise ValueError(f"the model returned logits of shape {tuple(z.shape)} for {xt.shape[0]} inputs; "
                         f"expected ({xt.shape[0]}, n_classes)")
    return z


def logits(solution: Any, x: np.ndarray, device: str | None = None):
    """The model's logits on ``x`` (``[B, C]``), in eval mode, without gradients."""
    import torch

    model = model_of(solution)
    with _scoring(model), torch.no_grad():
        return model(_inputs(model, x, device))


def logits_and_jacobian(solution: Any, x: np.ndarray, device: str | None = None):
    """``(logits [B, C], jacobian [B, C, D])``: ``jacobian[b, c] = d logits[b, c] / d x[b]`` (``D``
    = the input's size per example), by plain autograd: one forward pass, then one backward pass per
    class of ``logits[:, c].sum()``, which is each example's own row as long as the examples do not
    interact (true of the usual models in eval mode, where batch-norm uses its running statistics).
    ``torch.autograd.grad`` leaves nothing on the weights. A model whose output does not depend on
    the input through autograd (a rounding layer, a detached branch) gets zeros there.
    """
    import torch

    model = model_of(solution)
    with _scoring(model), torch.enable_grad():
        xt = _inputs(model, x, device).clone().requires_grad_(True)
        z = _forward(model, xt)
        if not z.requires_grad:  # the model cut the graph (no_grad inside, a detached input)
            return z, torch.zeros(len(xt), z.shape[1], xt[0].numel(), dtype=xt.dtype, device=xt.device)
        rows = [torch.autograd.grad(z[:, c].sum(), xt, retain_graph=c + 1 < z.shape[1], allow_unused=True)[0]
                for c in range(z.shape[1])]
        rows = [torch.zeros_like(xt) if r is None else r for r in rows]
    return z.detach(), torch.stack([r.reshape(len(xt), -1) for r in rows], 1)


def logits_and_grad_at_prediction(solution: Any, x: np.ndarray, loss: str = "ce", device: str | None = None):
    """``(logits [B, C], grad [B, *x.shape[1:]])``: the gradient with respect to ``x`` of the
    batch-mean ``loss`` (``"ce"``: cross-entropy; ``"margin"``: :func:`margin_loss`) taken at the
    model's own prediction ``argmax logits``, which needs no label. One forward and one backward
    pass. Where the prediction is the true label, each example's row is bit for bit the row autograd
    gives for the loss at the true label (the examples do not interact, and every operation on the
    row is the same); elsewhere it is some other gradient, which a caller must not use.
    """
    import torch
    import torch.nn.functional as F

    if loss not in ("ce", "margin"):
        raise ValueError(f"unknown loss {loss!r}: 'ce' or 'margin'")
    model = model_of(solution)
    with _scoring(model), torch.enable_grad():
        xt = _inputs(model, x, device).clone().requires_grad_(True)
        z = _forward(model, xt)
        if not z.requires_grad:  # the model cut the graph: no gradient to give
            return z, torch.zeros_like(xt)
        own = z.detach().argmax(1)
        value = F.cross_entropy(z, own) if loss == "ce" else margin_loss(z, own)
        (grad,) = torch.autograd.grad(value, xt, allow_unused=True)
    return z.detach(), torch.zeros_like(xt) if grad is None else grad
