"""The public contract of the ``dp-fedavg`` task: what a method receives, what it must return.

A method receives a :class:`PrivateFederatedData`:

* ``level``: ``"record"`` (each client protects each of its examples: record-level DP-SGD run by
  every client on its own data) or ``"user"`` (the server protects each client's whole
  contribution: user-level DP-FedAvg);
* ``epsilon`` (``math.inf`` for the non-private variants) and ``delta``: the privacy budget the
  run must stay within, as an accountant computes it;
* ``clients``: one :class:`ClientData` per client (``x``: ``float32[n_k, n_features]``,
  ``y``: ``int64[n_k]``), and the feature and class counts.

It returns a :class:`PrivateClassifier`: ``predict(x) -> int labels`` and ``privacy_ledger()``,
a :class:`PrivacyLedger` as a plain dict. The harness never takes a method's word for its ε: it
recomputes ε from the ledger's noise multiplier, sampling rate and step count with opacus'
accountants and refuses (status ``error``) a run whose ε exceeds the variant's budget, whose δ
is not the task's, or whose ledger describes another level of privacy than the variant's. The
ledger cannot prove that the noise it declares was added; the tests of the reference show that
it is (``tests/test_dp_fedavg.py``), and a plugin's ledger is its author's claim, recorded.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np

DELTA = 1e-5
EPSILONS = (1.0, 3.0, 8.0)
LEVELS = ("record", "user")
ACCOUNTANTS = ("rdp", "prv")


@dataclass(frozen=True)
class ClientData:
    x: np.ndarray  # float32[n_k, n_features]
    y: np.ndarray  # int64[n_k]

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class PrivateFederatedData:
    level: str  # "record" or "user"
    epsilon: float  # the budget; math.inf: no privacy asked (the non-private ceiling)
    delta: float
    clients: tuple[ClientData, ...]
    n_features: int
    n_classes: int

    @property
    def private(self) -> bool:
        return math.isfinite(self.epsilon)

    @property
    def sizes(self) -> np.ndarray:
        return np.array([len(c) for c in self.clients])


@dataclass(frozen=True)
class PrivacyLedger:
    """What the accountant needs, for one run: ``steps`` compositions of the subsampled Gaussian
    mechanism with noise multiplier ``noise_multiplier`` and Poisson sampling rate ``sample_rate``.

    Record level: a step is one DP-SGD step of one client, ``sample_rate`` = expected batch / n_k,
    ``steps`` = the DP-SGD steps each client took (clients hold disjoint records, so a record's ε
    is that of its own client; every client takes the same steps at the same rate).
    User level: a step is one round, ``sample_rate`` = the probability that a client takes part.
    ``noise_multiplier`` 0 with ``steps`` > 0 means no privacy (ε = ∞); ``steps`` = 0 means no data
    was touched (ε = 0).
    """

    level: str
    noise_multiplier: float
    sample_rate: float
    steps: int
    delta: float
    accountant: str  # "rdp" or "prv": the one the method calibrated its noise with
    clip: float  # clipping norm (per example at record level, per client update at user level)

    def as_dict(self) -> dict:
        return asdict(self)


class PrivateClassifier(Protocol):
    def predict(self, x: np.ndarray) -> np.ndarray: ...

    def privacy_ledger(self) -> dict: ...


def accountant_epsilon(ledger: dict, accountant: str) -> float:
    """ε of a ledger under opacus' ``rdp`` or ``prv`` accountant at the ledger's δ.

    This is the computation the harness scores with; a method may call it to calibrate.
    """
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"unknown accountant {accountant!r}; valid: {', '.join(ACCOUNTANTS)}")
    sigma, q, steps = float(ledger["noise_multiplier"]), float(ledger["sample_rate"]), int(ledger["steps"])
    if steps == 0 or q == 0.0:
        return 0.0
    if sigma == 0.0:
        return math.inf
    from opacus.accountants import PRVAccountant, RDPAccountant

    acc = RDPAccountant() if accountant == "rdp" else PRVAccountant()
    acc.history = [(sigma, q, steps)]
    return float(acc.get_epsilon(delta=float(ledger["delta"])))
