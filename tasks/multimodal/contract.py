"""The public contract of the ``multimodal`` task: what a method receives and must return.

A method receives ``train``: a dict of numpy arrays over ``N_TRAIN`` triples, ``image`` (``float32
(N, 8, 8)``, a glyph digit in [0, 1]), ``audio`` (``float32 (N, AUDIO_LEN)``, a noisy tone),
``text`` (``int64 (N, TEXT_LEN)``, one instruction token among filler tokens, ids below
``VOCAB_SIZE``) and ``label`` (``int64 (N,)``, in ``0 .. N_CLASSES - 1``). Nothing else: not the
per-modality classes behind a label.

It returns a :class:`Classifier`: ``predict(image, audio, text)`` maps arrays shaped as above to
``N`` integer labels. The harness calls it in the scoring process on the held-out triples' inputs
(never their labels) and computes accuracy and macro-F1 itself.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

N_TRAIN = 6000
N_TEST = 2000
N_CLASSES = 10
AUDIO_LEN = 64
TEXT_LEN = 8
# Token ids. 0 is left unused (free for padding); fillers carry no information.
TOKENS = {"IMG": 1, "AUD": 2, "SUM": 3}
N_FILLERS = 16
FILLER_START = 4
VOCAB_SIZE = FILLER_START + N_FILLERS
INPUT_KEYS = ("image", "audio", "text", "label")  # what ``train`` holds


class Classifier(Protocol):
    def predict(self, image: np.ndarray, audio: np.ndarray, text: np.ndarray) -> np.ndarray: ...
