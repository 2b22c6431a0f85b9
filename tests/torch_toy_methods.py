"""A method for the toy task that imports torch, as every torch method does, at the top of its module."""

from __future__ import annotations

import sys
import time

import torch


def first_optimiser(train, ctx):
    """Builds an optimiser first thing and records what torch had imported when its clock started and
    how long that first optimiser took."""
    compiler_imported = "torch._dynamo" in sys.modules
    t0 = time.perf_counter()
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    ctx.record_config(compiler_imported_before_the_clock=compiler_imported,
                      first_optimiser_seconds=time.perf_counter() - t0)
    return float(train.draw(100).mean())
