"""A gradient-masked solution for ``tests/test_adversarial.py``: the floor's MLP behind a rounding
layer, ``model(round(16 x) / 16)``.

Public digits are multiples of 1/16, so there the rounding changes no clean prediction (on the
glyph digits it costs a little clean accuracy); but its gradient is
zero almost everywhere, so every gradient attack stalls (PGD-20 does not move at all) while the
model is exactly as fragile as the floor. It lives in a module of its own, not in the test module,
because the method's process and the scoring process import it to unpickle the solution, and both
refuse to import the task's held-out code, which the test module imports.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from advbench.baselines import adversarial as ab


class Rounded(nn.Module):
    """``inner(round(16 x) / 16)``: snaps every pixel to the digits' own grey levels."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(16 * x) / 16)


class _FinalOnly:
    """The run context, minus the floor's intermediate checkpoints: only the returned (rounded)
    solution is scored, once."""

    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx

    def checkpoint(self, solution: Any, step: Any = None) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)


def rounded_floor(train, ctx) -> ab.Classifier:
    """The floor (standard training, the budget's epochs), handed in behind :class:`Rounded`."""
    return ab.Classifier(Rounded(ab.standard_training(train, _FinalOnly(ctx)).model))
