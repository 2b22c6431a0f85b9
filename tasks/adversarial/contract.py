"""The public contract of the ``adversarial`` task: what a method receives and must return, and the
two questions the harness asks the solution.

A method receives a :class:`Digits` as ``train``: ``x`` (``float32 (1347, 64)``, flattened 8x8
digits in [0, 1]), ``y`` (``int64`` labels), ``n_classes`` (10) and ``eps`` (the threat model's
radius at the primary metric, 0.1, in the input's scale).

It returns an object with a ``model`` attribute that is a ``torch.nn.Module`` (or an ``nn.Module``
itself) mapping ``float32 (B, 64)`` inputs in [0, 1] to ``(B, 10)`` logits, differentiable end to
end. The harness attacks it without ever sending it a label: in the scoring process it calls

* :func:`logits` on clean and adversarial inputs, and
* :func:`logits_and_jacobian` on the attack's iterates: the logits and their Jacobian with respect
  to the input, one plain autograd backward pass per class;

and builds every loss gradient from those on its own side. Both put the model in eval mode and run
on one thread for the call, restoring the model's mode and the thread count afterwards, and leave
no gradient on the parameters.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from advbench.tasks.adversarial import EPSILONS, PGD_STEPS, PRIMARY_EPS, STRONG_RESTARTS, STRONG_STEPS

__all__ = ["EPSILONS", "PRIMARY_EPS", "PGD_STEPS", "STRONG_STEPS", "STRONG_RESTARTS", "Digits", "model_of",
           "logits", "logits_and_jacobian"]


@dataclass
class Digits:
    """What a method gets: flattened 8x8 digits in [0, 1] and their labels."""

    x: np.ndarray  # float32 (n, 64)
    y: np.ndarray  # int64 (n,)
    n_classes: int = 10
    eps: float = PRIMARY_EPS  # the threat model's radius at the primary metric (input scale)


def model_of(solution: Any):
    """The solution's ``nn.Module``: the solution itself, or its ``model`` attribute."""
    import torch

    model = solution if isinstance(solution, torch.nn.Module) else getattr(solution, "model", None)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"solution must be an nn.Module or have a .model nn.Module, got {type(solution).__name__}")
    return model


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
    import torch

    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else "cpu"
    return torch.as_tensor(np.asarray(x), device=device)


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
    ``torch.autograd.grad`` leaves nothing on the weights.
    """
    import torch

    model = model_of(solution)
    with _scoring(model), torch.enable_grad():
        xt = _inputs(model, x, device).clone().requires_grad_(True)
        z = model(xt)
        if z.ndim != 2 or z.shape[0] != xt.shape[0]:
            raise ValueError(f"the model returned logits of shape {tuple(z.shape)} for {xt.shape[0]} inputs; "
                             f"expected ({xt.shape[0]}, n_classes)")
        rows = [torch.autograd.grad(z[:, c].sum(), xt, retain_graph=c + 1 < z.shape[1])[0].reshape(len(xt), -1)
                for c in range(z.shape[1])]
    return z.detach(), torch.stack(rows, 1)
