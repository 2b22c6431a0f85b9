"""The held-out side of ``dp-fedavg``: the data sets, the test splits, the privacy check, the scoring."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from advbench.datasets import digits_split
from advbench.task import Problem, Seal
from advbench.tasks.dp_fedavg.contract import (ACCOUNTANTS, DELTA, ClientData, PrivateFederatedData,
                                               accountant_epsilon)

if TYPE_CHECKING:
    from advbench.solution import SolutionHandle

DIGITS_CLIENTS = 10
SYNTHETIC_CLIENTS = 1000
SYNTHETIC_PER_CLIENT = 60
SYNTHETIC_TEST = 10_000
SYNTHETIC_FEATURES = 64
N_CLASSES = 10


def parse_variant(variant: str) -> tuple[str, float]:
    """``record-eps3`` → ("record", 3.0); ``user-nonprivate`` → ("user", inf)."""
    level, _, budget = variant.partition("-")
    return level, (math.inf if budget == "nonprivate" else float(budget.removeprefix("eps")))


def digits_clients(train_y: np.ndarray, seed: int, n_clients: int = DIGITS_CLIENTS) -> list[np.ndarray]:
    """Record level: the digits training set dealt IID (stratified round-robin after a public
    shuffle) to ``n_clients`` clients of equal size (± 1), so that every client's sampling rate, and
    hence its ε, is the same."""
    rng = np.random.default_rng([seed, 1])
    order = np.concatenate([rng.permutation(np.flatnonzero(train_y == c)) for c in range(N_CLASSES)])
    return [np.sort(order[k::n_clients]) for k in range(n_clients)]


def synthetic(seal: Seal) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """User level: ``make_classification(70000, 64, n_informative=20, n_classes=10, class_sep=1.5)``;
    10 000 rows held out (chosen from the seal), the 60 000 others for the 1000 clients.

    Sealed, the generator's own ``random_state`` comes from the seal too: a method that reruns
    ``make_classification`` with the public seed gets other points and other class centres.
    """
    from sklearn.datasets import make_classification

    n_train = SYNTHETIC_CLIENTS * SYNTHETIC_PER_CLIENT
    x, y = make_classification(n_samples=n_train + SYNTHETIC_TEST, n_features=SYNTHETIC_FEATURES, n_informative=20,
                               n_redundant=2, n_classes=N_CLASSES, class_sep=1.5,
                               random_state=seal.random_state(seal.seed, "synthetic"))
    order = seal.rng(2).permutation(len(y))
    test, train = order[:SYNTHETIC_TEST], order[SYNTHETIC_TEST:]
    c = np.ascontiguousarray
    return c(x[train], dtype=np.float32), c(y[train], dtype=np.int64), c(x[test], dtype=np.float32), c(y[test],
                                                                                                      dtype=np.int64)


class DPFedAvgTask:
    def build(self, *, variant: str, seed: int, budget: Any, seal: Seal) -> Problem:
        level, epsilon = parse_variant(variant)
        if level == "record":
            train, test = digits_split(seal)
            parts = digits_clients(train.y, seed)
            x_tr, y_tr, x_te, y_te = train.x, train.y, test.x, test.y
        else:
            x_tr, y_tr, x_te, y_te = synthetic(seal)
            # Clients: 60 consecutive rows of a public shuffle each; the rows are already in a
            # random order, so clients are IID samples of the distribution.
            perm = np.random.default_rng([seed, 1]).permutation(len(y_tr))
            parts = np.split(perm, SYNTHETIC_CLIENTS)
        clients = tuple(ClientData(np.ascontiguousarray(x_tr[p]), np.ascontiguousarray(y_tr[p])) for p in parts)
        data = PrivateFederatedData(level=level, epsilon=epsilon, delta=DELTA, clients=clients,
                                    n_features=int(x_tr.shape[1]), n_classes=N_CLASSES)
        return Problem(
            train=data,
            heldout={"x": x_te, "y": y_te, "level": level, "epsilon": epsilon},
            description={"variant": variant, "level": level, "epsilon": epsilon if math.isfinite(epsilon) else "inf",
                         "delta": DELTA, "clients": len(clients), "train": int(len(y_tr)), "test": int(len(y_te)),
                         "client_sizes": sorted({len(c) for c in clients}), "partition_seed": [seed, 1]},
        )

    def evaluate(self, solution: "SolutionHandle", problem: Problem, profile: Any) -> dict[str, float]:
        held = problem.heldout
        ledger = check_ledger(solution.privacy_ledger(), held["level"], held["epsilon"])
        y = held["y"]
        pred = np.asarray(solution.predict(held["x"].copy()))
        if pred.shape != y.shape:
            raise ValueError(f"predict returned shape {pred.shape}, expected {y.shape}")
        if not np.issubdtype(pred.dtype, np.integer):
            if not (np.isfinite(pred).all() and (pred == np.round(pred)).all()):
                raise ValueError("predict must return integer class labels (got non-integer or non-finite values)")
            pred = pred.astype(np.int64)
        metrics = {"accuracy": float((pred == y).mean())}
        metrics.update(ledger)
        return metrics


def check_ledger(ledger: Any, level: str, epsilon: float) -> dict[str, float]:
    """The ledger's ε under both accountants, or an error if the run is not within the variant's budget.

    Returns the metrics the ledger contributes: ``epsilon`` (the accountant the method named),
    ``epsilon_rdp``, ``epsilon_prv``, ``noise_multiplier``, ``sample_rate``, ``steps`` (absent
    where infinite: a non-private run has no ε).
    """
    if not isinstance(ledger, dict):
        raise TypeError(f"privacy_ledger() must return a dict, got {type(ledger).__name__}")
    need = ("level", "noise_multiplier", "sample_rate", "steps", "delta", "accountant", "clip")
    missing = [k for k in need if k not in ledger]
    if missing:
        raise ValueError(f"privacy ledger lacks {', '.join(missing)}")
    if ledger["level"] != level:
        raise ValueError(f"privacy ledger is {ledger['level']!r}-level, the variant asks for {level!r}-level privacy")
    if ledger["accountant"] not in ACCOUNTANTS:
        raise ValueError(f"unknown accountant {ledger['accountant']!r}; valid: {', '.join(ACCOUNTANTS)}")
    sigma, q, steps = float(ledger["noise_multiplier"]), float(ledger["sample_rate"]), ledger["steps"]
    if not (math.isfinite(sigma) and sigma >= 0 and 0 <= q <= 1) or int(steps) != steps or steps < 0:
        raise ValueError(f"privacy ledger out of range: noise_multiplier {sigma}, sample_rate {q}, steps {steps}")
    if float(ledger["delta"]) != DELTA:
        raise ValueError(f"privacy ledger's delta is {ledger['delta']}, the task's is {DELTA}")
    eps = {a: accountant_epsilon(ledger, a) for a in ACCOUNTANTS}
    claimed = eps[ledger["accountant"]]
    if claimed > epsilon * (1 + 1e-6):
        raise ValueError(f"privacy budget exceeded: the {ledger['accountant']} accountant gives epsilon {claimed:.4g} "
                         f"for the ledger (sigma {sigma}, q {q}, {int(steps)} steps), above the variant's {epsilon:g}")
    out = {"noise_multiplier": sigma, "sample_rate": q, "steps": float(steps), "clip": float(ledger["clip"]),
           "epsilon": claimed, "epsilon_rdp": eps["rdp"], "epsilon_prv": eps["prv"]}
    return {k: v for k, v in out.items() if math.isfinite(v)}
