"""The held-out side of the ``transformer`` task: the held-out sequences and the scoring (harness only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from advbench.spec import Budget
from advbench.task import Problem, Seal
from advbench.tasks.transformer.contract import (FIRST_SYMBOL, N_HELDOUT, N_SYMBOLS, SEQ_LEN, VOCAB_SIZE,
                                                 SequenceSampler, make_target)

if TYPE_CHECKING:
    from advbench.profiles import Profile
    from advbench.solution import SolutionHandle


def heldout_sources(seal: Seal) -> np.ndarray:
    """The held-out sources: stream 2 of the seal (``default_rng([seed, 2])`` unsealed)."""
    return seal.rng(2).integers(FIRST_SYMBOL, VOCAB_SIZE, size=(N_HELDOUT, SEQ_LEN), dtype=np.int64)


class TransformerTask:
    def build(self, *, variant: str, seed: int, budget: Budget, seal: Seal) -> Problem:
        src = heldout_sources(seal)
        return Problem(
            train=SequenceSampler(variant, seed),
            heldout={"src": src, "tgt": make_target(src, variant)},
            description={"variant": variant, "seq_len": SEQ_LEN, "symbols": N_SYMBOLS, "heldout": N_HELDOUT},
        )

    def evaluate(self, solution: "SolutionHandle", problem: Problem, profile: "Profile") -> dict[str, float]:
        src, tgt = problem.heldout["src"], problem.heldout["tgt"]
        out = np.asarray(solution.translate(src.copy()))
        if out.shape != tgt.shape:
            raise ValueError(f"translate returned shape {out.shape}, expected {tgt.shape}")
        if not (np.issubdtype(out.dtype, np.number) or out.dtype == np.bool_):
            raise TypeError(f"translate returned an array of {out.dtype}; expected integer token ids")
        if not np.isfinite(out).all():
            raise ValueError("translate returned NaN or infinite values; expected integer token ids")
        correct = out == tgt
        return {"exact_match": float(correct.all(axis=1).mean()), "token_accuracy": float(correct.mean())}
