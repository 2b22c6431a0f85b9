"""The public contract of the ``fedavg`` task: what a method receives and must return.

A method receives a :class:`FederatedData`: ``clients``, one :class:`ClientData` per client
(``x``: ``float32[n_k, 64]`` pixels in [0, 1]; ``y``: ``int64[n_k]`` labels), and the feature and
class counts. It returns a :class:`Classifier`; the harness calls ``predict`` in the scoring process
on held-out images only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

N_CLIENTS = 10
N_FEATURES = 64
N_CLASSES = 10


@dataclass(frozen=True)
class ClientData:
    x: np.ndarray  # float32[n_k, 64]
    y: np.ndarray  # int64[n_k]

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class FederatedData:
    clients: tuple[ClientData, ...]
    n_features: int = N_FEATURES
    n_classes: int = N_CLASSES

    @property
    def sizes(self) -> np.ndarray:
        """Examples per client, ``n_k``: FedAvg weighs client k by ``n_k / n``."""
        return np.array([len(c) for c in self.clients])


class Classifier(Protocol):
    def predict(self, x: np.ndarray) -> np.ndarray: ...
