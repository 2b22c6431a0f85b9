"""The public contract of the ``dp-fedavg`` task (v2): what a method receives, how it asks for private
updates, what it returns.

The harness owns the private mechanism. A method never sees a client's records: it receives a
:class:`PrivateFederatedTask`, which holds only what is public:

* ``level``: ``"record"`` (every client protects each of its records: one DP-SGD step of one client
  per call) or ``"user"`` (the server protects each client's whole contribution: one DP-FedAvg
  round per call);
* ``epsilon`` (``math.inf`` for the non-private variants), ``delta``, ``n_features``, ``n_classes``
  and ``n_clients``;
* ``mechanism``: the :class:`Mechanism`'s fixed parameters, calibrated by the harness: Poisson
  sampling rate ``sample_rate``, clipping norm ``clip``, noise multiplier ``noise_multiplier`` and
  ``max_calls``, the calls the budget allows (per client at record level, rounds at user level);
  composing exactly that many calls gives ε ≤ the variant's ε under opacus' RDP accountant at
  ``DELTA``. The non-private variants use the same mechanism with ``noise_multiplier`` 0 and no
  clipping (``clip`` is ``math.inf``), under the same call limit: the ceiling.

A method asks for private updates with ``ctx.ask(question)``, each question plain data (build them
with :func:`record_question` and :func:`user_question`):

* record level, ``{"client": k, "params": P}``: the harness Poisson-samples client ``k``'s records
  at ``sample_rate``, computes each sampled record's gradient of the cross-entropy at ``P``, clips
  each to ``clip``, sums them, adds ``N(0, (noise_multiplier·clip)²)`` to every coordinate and
  divides by the expected batch ``sample_rate·n_k``. Answer: ``{"gradient": G, "steps_left": s}``
  (``G`` a parameter dict, ``s`` the DP-SGD steps client ``k`` has left). Taking a step (and what
  learning rate, what to do with the clients' models) is the method's business.
* user level, ``{"params": P, "local_epochs": e, "local_batch": b, "local_lr": lr}``: the harness
  samples every client with probability ``sample_rate`` (Poisson), runs ``e`` epochs of minibatch
  SGD (batch ``b``, learning rate ``lr``, each client its own shuffle) from ``P`` on each sampled
  client's records, clips each client's update (its weights minus ``P``, as one vector) to
  ``clip``, sums them, adds ``N(0, (noise_multiplier·clip)²)`` and divides by the expected number of
  clients ``sample_rate·n_clients``. Answer: ``{"update": U, "rounds_left": r}``. A round in which
  nobody is sampled still releases noise and still counts.

Every answered ask is one call of the mechanism, counted by the harness; once ``max_calls`` are
spent (for that client, at record level), an ask raises ``ValueError`` in the method with the
reason, and so does a malformed question (not counted). The noise and the sampling come from the
run's seal: a method cannot predict them in a sealed run.

The model is this contract's architecture (:func:`param_shapes`, :func:`logits`): a linear
classifier at record level, an MLP with one hidden layer of :data:`HIDDEN` ``["user"]`` ReLU units
at user level. The solution is plain data: the parameters, a ``dict`` of float32 numpy arrays with
exactly the names and shapes of :func:`param_shapes`. The harness checks them and predicts the
held-out rows itself; no code of the method's is needed to score. ε, σ, q, steps and clip in the
record are the harness's, from what its mechanism did (``steps``: the most calls any client took at
record level, the rounds at user level), with opacus' RDP (``epsilon``) and PRV (``epsilon_prv``)
accountants.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

DELTA = 1e-5
EPSILONS = (1.0, 3.0, 8.0)
LEVELS = ("record", "user")
ACCOUNTANTS = ("rdp", "prv")
HIDDEN = {"record": 0, "user": 256}  # 0: multinomial logistic regression
LOCAL_EPOCHS_MAX = 10  # user level: bounds on the local training a question may ask for
LOCAL_LR_MAX = 10.0


@dataclass(frozen=True)
class Mechanism:
    """The harness's private mechanism, as a method sees it (fixed for the run)."""

    sample_rate: float  # q: of a record in a client's batch (record level), of a client in a round (user level)
    clip: float  # C: per-record gradient norm bound, or per-client update norm bound; inf: no clipping
    noise_multiplier: float  # sigma: the noise std is sigma * C; 0 for the non-private variants
    max_calls: int  # record level: DP-SGD steps per client; user level: rounds


@dataclass(frozen=True)
class PrivateFederatedTask:
    """The training view: nothing but public facts and the mechanism's parameters."""

    level: str  # "record" or "user"
    epsilon: float  # the budget; math.inf: no privacy asked (the non-private ceiling)
    delta: float
    n_features: int
    n_classes: int
    n_clients: int
    mechanism: Mechanism
    local_batch_max: int  # user level: the largest local batch (every client holds this many rows)

    @property
    def private(self) -> bool:
        return math.isfinite(self.epsilon)


def param_shapes(level: str, n_features: int, n_classes: int) -> dict[str, tuple[int, ...]]:
    """The contract architecture's parameter names and shapes (``nn.Linear``'s layout: ``[out, in]``)."""
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; valid: {', '.join(LEVELS)}")
    hidden = HIDDEN[level]
    if hidden == 0:
        return {"out.weight": (n_classes, n_features), "out.bias": (n_classes,)}
    return {"hidden.weight": (hidden, n_features), "hidden.bias": (hidden,),
            "out.weight": (n_classes, hidden), "out.bias": (n_classes,)}


def init_params(level: str, n_features: int, n_classes: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Parameters as ``nn.Linear`` initialises them: uniform within ±1/sqrt(fan_in)."""
    out = {}
    for name, shape in param_shapes(level, n_features, n_classes).items():
        fan_in = param_shapes(level, n_features, n_classes)[name.replace("bias", "weight")][1]
        bound = 1.0 / math.sqrt(fan_in)
        out[name] = rng.uniform(-bound, bound, size=shape).astype(np.float32)
    return out


def logits(params: dict[str, Any], x: Any) -> Any:
    """The contract architecture's logits; numpy arrays or torch tensors alike (``torch.func`` too)."""
    h = x
    if "hidden.weight" in params:
        h = h @ params["hidden.weight"].T + params["hidden.bias"]
        h = h * (h > 0)  # ReLU, written so that numpy and torch both take it
    return h @ params["out.weight"].T + params["out.bias"]


def predict(params: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    return np.asarray(logits(params, np.asarray(x, dtype=np.float32))).argmax(1).astype(np.int64)


def check_params(params: Any, level: str, n_features: int, n_classes: int) -> dict[str, np.ndarray]:
    """``params`` as the contract's float32 arrays, or ``TypeError``/``ValueError`` saying what is wrong:
    a dict with exactly the names of :func:`param_shapes`, each a real floating array of its shape
    (cast to float32), every value finite."""
    shapes = param_shapes(level, n_features, n_classes)
    if not isinstance(params, dict):
        raise TypeError(f"parameters must be a dict of numpy arrays, got {type(params).__name__}")
    if set(params) != set(shapes):
        missing, extra = sorted(set(shapes) - set(params), key=str), sorted(set(params) - set(shapes), key=str)
        raise ValueError(f"parameters must be named exactly {', '.join(shapes)}"
                         + (f"; missing {', '.join(map(str, missing))}" if missing else "")
                         + (f"; unexpected {', '.join(map(str, extra))}" if extra else ""))
    out = {}
    for name, shape in shapes.items():
        a = params[name]
        if not isinstance(a, np.ndarray):
            raise TypeError(f"parameter {name!r} must be a numpy array, got {type(a).__name__}")
        if not np.issubdtype(a.dtype, np.floating):
            raise TypeError(f"parameter {name!r} is an array of {a.dtype}; expected float32")
        if a.shape != shape:
            raise ValueError(f"parameter {name!r} has shape {a.shape}, expected {shape}")
        a = np.ascontiguousarray(a, dtype=np.float32)
        if not np.isfinite(a).all():
            raise ValueError(f"parameter {name!r} holds NaN or infinite values")
        out[name] = a
    return out


def record_question(client: int, params: dict[str, np.ndarray]) -> dict[str, Any]:
    """One DP-SGD step of ``client`` at ``params`` (record level)."""
    return {"client": int(client), "params": {k: np.asarray(v, dtype=np.float32) for k, v in params.items()}}


def user_question(params: dict[str, np.ndarray], local_epochs: int, local_batch: int,
                  local_lr: float) -> dict[str, Any]:
    """One DP-FedAvg round from ``params`` (user level)."""
    return {"params": {k: np.asarray(v, dtype=np.float32) for k, v in params.items()},
            "local_epochs": int(local_epochs), "local_batch": int(local_batch), "local_lr": float(local_lr)}


def accountant_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float = DELTA,
                       accountant: str = "rdp") -> float:
    """ε after ``steps`` compositions of the Poisson-subsampled Gaussian mechanism, under opacus'
    ``rdp`` or ``prv`` accountant at ``delta``: the computation the harness records."""
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"unknown accountant {accountant!r}; valid: {', '.join(ACCOUNTANTS)}")
    if steps == 0 or sample_rate == 0.0:
        return 0.0
    if noise_multiplier == 0.0:
        return math.inf
    from opacus.accountants import PRVAccountant, RDPAccountant

    acc = RDPAccountant() if accountant == "rdp" else PRVAccountant()
    acc.history = [(float(noise_multiplier), float(sample_rate), int(steps))]
    return float(acc.get_epsilon(delta=float(delta)))
