"""The public contract of the ``simclr`` task: what a method receives and must return.

A method receives ``train``: the training images, a ``float32`` numpy array of shape
``(N, 1, 8, 8)`` in [0, 1] (70 % of ``load_digits``), and no labels.

It returns an :class:`Encoder`: ``encode(images)`` maps ``float32 (N, 1, 8, 8)`` images to a
``(N, d)`` array of finite features. The harness calls it in the scoring process on the training
and the test images (never their labels) and fits the linear and k-NN probes itself.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

LABELS_PER_CLASS = 10  # labels per class of the few-label probe
TEST_FRACTION = 0.3
IMAGE_SHAPE = (1, 8, 8)


class Encoder(Protocol):
    def encode(self, images: np.ndarray) -> np.ndarray: ...
