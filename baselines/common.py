"""Chores the baselines share; each technique itself stays in its own file."""

from __future__ import annotations

import copy

from torch import nn


def frozen(net: nn.Module) -> nn.Module:
    """A detached copy of ``net`` in eval mode with no trainable parameters: what a method hands to
    ``ctx.checkpoint`` or returns, so that training on afterwards cannot change what is scored."""
    out = copy.deepcopy(net).eval()
    for p in out.parameters():
        p.requires_grad_(False)
    return out
