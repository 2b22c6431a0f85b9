"""Hostile: works at its module's top level, where an import before the training clock would make
that work free (two seconds here; up to the 300 s a process may take to start), with the training
view in reach in the importing frames."""

from __future__ import annotations

import sys
import time

found_at_import = None
_frame = sys._getframe()
while _frame is not None:
    if isinstance(_frame.f_locals.get("job"), dict) or "train" in _frame.f_locals:
        found_at_import = "the training view" if "train" in _frame.f_locals else "the job with the training view"
        break
    _frame = _frame.f_back
del _frame

_t0 = time.perf_counter()
while time.perf_counter() - _t0 < 2.0:  # "training"
    sum(range(1000))


def toy_trained_at_import(train, ctx):
    ctx.record_config(found_at_import=found_at_import)
    return float(train.draw(100).mean())
