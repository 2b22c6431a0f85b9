"""Chores the baselines share; each technique itself stays in its own file."""

from __future__ import annotations

import copy

from torch import nn


def by_budget(ctx, full: int, quick: int) -> int:
    """``quick`` on the quick budget (CI's and the README's main job), ``full`` otherwise: how many
    checkpoints a reference hands in (or how many steps apart), where the harness's scoring of one
    costs a second or more. The quick run's curve is coarser; its training and its target are the
    budget's either way."""
    return quick if ctx.budget.name == "quick" else full


def frozen(net: nn.Module) -> nn.Module:
    """A detached copy of ``net`` in eval mode with no trainable parameters: what a method hands to
    ``ctx.checkpoint`` or returns, so that training on afterwards cannot change what is scored."""
    out = copy.deepcopy(net).eval()
    for p in out.parameters():
        p.requires_grad_(False)
    return out
