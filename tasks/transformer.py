"""transformer — an encoder-decoder trained from scratch on generated sequence-to-sequence problems.

Data (as in the Annotated Transformer): source sequences of length 10 over 10 symbols; the target is
the source copied, reversed or sorted. Token ids: 0 = padding, 1 = start-of-sequence, 2..11 = the
symbols. Training batches are drawn fresh from a seeded sampler; the held-out set is 1000 sequences
drawn from a separate seed stream and never handed to the method (the chance that a held-out
sequence also appears in training is below 1e-4 at the full budget: 10^10 possible sequences).

Solution: any object with ``translate(src) -> out`` taking and returning ``int64`` arrays of shape
``(batch, 10)`` (greedy decoding, no start token in the output). Metrics: exact-sequence match
(primary) and token accuracy on the held-out set.

Targets: quick copy >= 0.99; full reverse >= 0.99 and sort >= 0.99 (measured with PyTorch's own
``nn.Transformer`` at d_model 64, 4 heads, 2+2 layers: copy 0.99 after 800 steps, reverse 1.00
after 600, sort 1.00 after 200).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from advbench.spec import Budget, Metric, Target, TaskSpec
from advbench.task import Problem

PAD, BOS, FIRST_SYMBOL = 0, 1, 2
N_SYMBOLS, SEQ_LEN = 10, 10
VOCAB_SIZE = FIRST_SYMBOL + N_SYMBOLS
N_HELDOUT = 1000

SPEC = TaskSpec(
    name="transformer",
    version=1,
    title="Encoder-decoder transformer from scratch",
    summary="Greedy-decoded exact match on generated copy / reverse / sort problems (length 10, 10 symbols).",
    variants={
        "copy": "target = source",
        "reverse": "target = source reversed",
        "sort": "target = source sorted ascending",
    },
    metrics=(
        Metric("exact_match", "fraction", True, "share of held-out sequences decoded exactly"),
        Metric("token_accuracy", "fraction", True, "share of held-out target tokens decoded correctly"),
    ),
    primary_metric="exact_match",
    targets=(
        Target("exact_match", 0.99, "quick", "copy"),
        Target("exact_match", 0.99, "full", "reverse"),
        Target("exact_match", 0.99, "full", "sort"),
    ),
    budgets={
        "quick": Budget("quick", max_seconds=240, limits={"steps": 600, "batch_size": 128}, variants=("copy",)),
        "full": Budget("full", max_seconds=600, limits={"steps": 1500, "batch_size": 128},
                       variants=("copy", "reverse", "sort")),
    },
    profiles=("cpu", "cuda"),
    throughput_unit="sequences/s",
    entry_point="advbench.tasks.transformer:TransformerTask",
    solution="object with translate(src: int64[B, 10]) -> int64[B, 10] (greedy decoding)",
    data="generated from the seed: 10 symbols, length 10; 1000 held-out sequences from a separate stream",
    extras=("torch",),
)


class Translator(Protocol):
    def translate(self, src: np.ndarray) -> np.ndarray: ...


def make_target(src: np.ndarray, variant: str) -> np.ndarray:
    if variant == "copy":
        return src.copy()
    if variant == "reverse":
        return src[:, ::-1].copy()
    if variant == "sort":
        return np.sort(src, axis=1)
    raise ValueError(f"unknown variant {variant!r}")


class SequenceSampler:
    """What the method gets: fresh (source, target) batches from its own seeded stream."""

    def __init__(self, variant: str, seed: int) -> None:
        self.variant = variant
        self.seq_len = SEQ_LEN
        self.vocab_size = VOCAB_SIZE
        self.pad, self.bos = PAD, BOS
        self._rng = np.random.default_rng([seed, 1])  # stream 1: training; stream 2 is held out

    def sample(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        src = self._rng.integers(FIRST_SYMBOL, VOCAB_SIZE, size=(batch_size, SEQ_LEN), dtype=np.int64)
        return src, make_target(src, self.variant)


class TransformerTask:
    def build(self, *, variant: str, seed: int, budget: Budget) -> Problem:
        heldout_rng = np.random.default_rng([seed, 2])
        src = heldout_rng.integers(FIRST_SYMBOL, VOCAB_SIZE, size=(N_HELDOUT, SEQ_LEN), dtype=np.int64)
        return Problem(
            train=SequenceSampler(variant, seed),
            heldout={"src": src, "tgt": make_target(src, variant)},
            description={"variant": variant, "seq_len": SEQ_LEN, "symbols": N_SYMBOLS, "heldout": N_HELDOUT},
        )

    def evaluate(self, solution: Translator, problem: Problem, profile: Any) -> dict[str, float]:
        src, tgt = problem.heldout["src"], problem.heldout["tgt"]
        out = np.asarray(solution.translate(src.copy()))
        if out.shape != tgt.shape:
            raise ValueError(f"translate returned shape {out.shape}, expected {tgt.shape}")
        correct = out == tgt
        return {"exact_match": float(correct.all(axis=1).mean()), "token_accuracy": float(correct.mean())}
