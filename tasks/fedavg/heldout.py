"""The held-out side of ``fedavg``: the test split, the client partition, the scoring."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from advbench.glyphs import glyph_split
from advbench.task import Problem, Seal, check_labels
from advbench.tasks.fedavg.contract import N_CLASSES, N_CLIENTS, ClientData, FederatedData

if TYPE_CHECKING:
    from advbench.solution import SolutionHandle

SHARDS_PER_CLIENT = 2
DIRICHLET_ALPHA = 0.5
MIN_CLIENT_SIZE = 10


def pathological_partition(y: np.ndarray, rng: np.random.Generator, n_clients: int = N_CLIENTS,
                           shards_per_client: int = SHARDS_PER_CLIENT) -> list[np.ndarray]:
    """Sort by label, cut into ``n_clients * shards_per_client`` equal shards, deal them at random."""
    order = np.argsort(y, kind="stable")
    shards = np.array_split(order, n_clients * shards_per_client)
    dealt = rng.permutation(len(shards)).reshape(n_clients, shards_per_client)
    return [np.sort(np.concatenate([shards[s] for s in row])) for row in dealt]


def dirichlet_partition(y: np.ndarray, rng: np.random.Generator, n_clients: int = N_CLIENTS,
                        alpha: float = DIRICHLET_ALPHA, min_size: int = MIN_CLIENT_SIZE) -> list[np.ndarray]:
    """Per class, client shares ~ Dirichlet(alpha); redrawn until every client has ``min_size``."""
    for _ in range(1000):
        parts: list[list[int]] = [[] for _ in range(n_clients)]
        for c in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == c))
            cuts = (np.cumsum(rng.dirichlet(np.full(n_clients, alpha))) * len(idx)).astype(int)[:-1]
            for k, chunk in enumerate(np.split(idx, cuts)):
                parts[k].extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(np.array(p, dtype=np.int64)) for p in parts]
    raise RuntimeError(f"no Dirichlet({alpha}) partition with {min_size}+ examples per client in 1000 draws")


PARTITIONS = {"pathological": pathological_partition, "dirichlet": dirichlet_partition}


def partition(variant: str, y: np.ndarray, seed: int) -> list[np.ndarray]:
    """Client index sets for a run: training data, so from the public seed (stream 1)."""
    if variant not in PARTITIONS:
        raise ValueError(f"unknown variant {variant!r}")
    return PARTITIONS[variant](y, np.random.default_rng([seed, 1]))


class FedAvgTask:
    def build(self, *, variant: str, seed: int, budget: Any, seal: Seal) -> Problem:
        train, test = glyph_split(seal)
        parts = partition(variant, train.y, seed)
        clients = tuple(ClientData(np.ascontiguousarray(train.x[p]), np.ascontiguousarray(train.y[p])) for p in parts)
        return Problem(
            train=FederatedData(clients),
            heldout={"x": test.x, "y": test.y},
            description={"variant": variant, "clients": len(clients), "train": int(len(train.y)),
                         "test": int(len(test.y)), "client_sizes": [len(c) for c in clients],
                         "client_classes": [int(len(np.unique(c.y))) for c in clients],
                         "partition_seed": [seed, 1]},
        )

    def evaluate(self, solution: "SolutionHandle", problem: Problem, profile: Any) -> dict[str, float]:
        y = problem.heldout["y"]
        pred = check_labels(solution.predict(problem.heldout["x"].copy()), len(y))
        recalls = [float((pred[y == c] == c).mean()) for c in range(N_CLASSES)]
        return {"accuracy": float((pred == y).mean()), "min_class_recall": min(recalls)}
