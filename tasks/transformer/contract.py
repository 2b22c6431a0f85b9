"""The public contract of the ``transformer`` task: what a method receives and must return.

A method receives a :class:`SequenceSampler` as ``train``: ``sample(batch_size)`` gives fresh
``(source, target)`` pairs of ``int64`` arrays of shape ``(batch_size, SEQ_LEN)`` from its own
stream (stream 1 of the public run seed), and it carries ``seq_len``, ``vocab_size``, ``pad`` and
``bos``. Token ids: ``PAD`` = 0, ``BOS`` = 1, symbols ``FIRST_SYMBOL`` .. ``VOCAB_SIZE - 1``.

It returns a :class:`Translator`: ``translate(src)`` maps ``int64[B, SEQ_LEN]`` sources to
``int64[B, SEQ_LEN]`` greedy decodings (no start token in the output). The harness calls it in the
scoring process with held-out sources only.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

PAD, BOS, FIRST_SYMBOL = 0, 1, 2
N_SYMBOLS, SEQ_LEN = 10, 10
VOCAB_SIZE = FIRST_SYMBOL + N_SYMBOLS
N_HELDOUT = 1000


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
        self._rng = np.random.default_rng([seed, 1])  # stream 1: training (public); stream 2 is held out

    def sample(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        src = self._rng.integers(FIRST_SYMBOL, VOCAB_SIZE, size=(batch_size, SEQ_LEN), dtype=np.int64)
        return src, make_target(src, self.variant)
