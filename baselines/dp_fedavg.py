"""Differentially private federated learning, two ways, for the ``dp-fedavg`` task (v2). One file, top to bottom.

The harness owns the private mechanism (``tasks/dp_fedavg/contract.py``): this method never sees a
record. It is the *server*: it holds the global model (the contract's architecture, as a dict of
numpy arrays), asks the harness for private updates with ``ctx.ask`` and decides what to do with
them. Everything it does with the answers is post-processing, which costs no privacy; the
harness counts ε from the calls it answered.

**Record level** (digits over 10 clients; Abadi et al. 2016 per client, federated SGD on
top). A call is one DP-SGD step of one client: the harness Poisson-samples that client's records,
clips every per-record gradient, sums, adds noise and divides by the expected batch. Each round
the server asks every client for one step at the global model and takes an SGD step on their mean
(FedSGD; equal weights: the clients hold 134-135 records each, and their sizes are not public),
and it keeps an exponential average of its iterates as the model it hands in.

**User level** (1000 synthetic clients; DP-FedAvg, McMahan et al. 2018). A call is one round:
the harness samples clients (Poisson), trains each sampled client locally with the settings asked
for, clips each client's update as one vector, adds noise to the sum and divides by the expected
number of clients. The server applies the noised mean update with momentum (server momentum is
post-processing: free, privacy-wise).

Both spend exactly the calls the mechanism allows (``view.mechanism.max_calls``), which is what the
harness calibrated σ for. The non-private variants (ε = ∞) run the same loops against the same
mechanism without noise or clipping: the ceiling. The floor returns a constant classifier
without asking anything (ε = 0); both data sets are class-balanced, so it scores what majority
class would.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from advbench.tasks.dp_fedavg.contract import (PrivateFederatedTask, init_params, param_shapes, record_question,
                                               user_question)


# ---------------------------------------------------------------------------------------------
# Hyperparameters
# ---------------------------------------------------------------------------------------------

@dataclass
class RecordConfig:
    lr: float = 2.0  # server SGD step on the clients' averaged noisy gradients. On the glyph digits
    # (dp-fedavg-v3) 1.0 under-trained in 100 steps: ε 3, seeds 0-1, 0.778 / 0.736 against 0.820 / 0.751
    # The server's model is an exponential average of its iterates (post-processing: free). Measured at
    # ε 3 over seeds 0-4: 0.894 with 0.8 (min 0.884), 0.890 without; ε 8 seed 2: 0.909 against 0.899.
    ema: float = 0.8
    checkpoint_every: int = 20  # rounds


@dataclass
class UserConfig:
    local_epochs: int = 5  # asked of the harness for every sampled client
    local_batch: int = 20
    local_lr: float = 0.2
    server_lr: float = 1.0
    server_momentum: float = 0.9  # averages the noise of ~10 rounds: free, privacy-wise
    checkpoint_every: int = 25  # rounds


Params = dict[str, np.ndarray]


# ---------------------------------------------------------------------------------------------
# Record level: FedAvg over DP-SGD steps the harness takes for each client
# ---------------------------------------------------------------------------------------------

def record_level(view: PrivateFederatedTask, ctx) -> Params:
    cfg = RecordConfig()
    rounds = view.mechanism.max_calls  # one step of every client per round: each spends its whole budget
    ctx.record_config(**asdict(cfg), rounds=rounds, level="record")
    params = init_params(view.level, view.n_features, view.n_classes, ctx.rng(0))
    average = {n: v.copy() for n, v in params.items()}
    for r in range(rounds):
        # Every client's noisy DP-SGD gradient at the global model; their mean has sqrt(10) times less
        # noise than one client's. (FedAvg with 5 local steps per round scored 0.879 at ε 3, min 0.851.)
        grads = [ctx.ask(record_question(k, params))["gradient"] for k in range(view.n_clients)]
        for n in params:
            params[n] = params[n] - cfg.lr * np.mean([g[n] for g in grads], axis=0, dtype=np.float32)
            average[n] = cfg.ema * average[n] + (1 - cfg.ema) * params[n]
        ctx.progress(r + 1, rounds)
        if (r + 1) % cfg.checkpoint_every == 0 or r + 1 == rounds:
            ctx.checkpoint(average, step=r + 1)
    return average


# ---------------------------------------------------------------------------------------------
# User level: DP-FedAvg rounds run by the harness, applied with server momentum
# ---------------------------------------------------------------------------------------------

def user_level(view: PrivateFederatedTask, ctx) -> Params:
    cfg = UserConfig()
    rounds = view.mechanism.max_calls
    ctx.record_config(**asdict(cfg), rounds=rounds, level="user")
    params = init_params(view.level, view.n_features, view.n_classes, ctx.rng(0))
    velocity = {n: np.zeros_like(v) for n, v in params.items()}
    for r in range(rounds):
        update = ctx.ask(user_question(params, cfg.local_epochs, cfg.local_batch, cfg.local_lr))["update"]
        for n in params:
            velocity[n] = cfg.server_momentum * velocity[n] + update[n]
            params[n] = params[n] + cfg.server_lr * velocity[n]
        ctx.progress(r + 1, rounds)
        if (r + 1) % cfg.checkpoint_every == 0 or r + 1 == rounds:
            ctx.checkpoint(params, step=r + 1)
    return params


# ---------------------------------------------------------------------------------------------
# Methods
# ---------------------------------------------------------------------------------------------

def train(view: PrivateFederatedTask, ctx) -> Params:
    """Reference: FedAvg over per-client DP-SGD steps, or DP-FedAvg with server momentum, as the variant asks."""
    return record_level(view, ctx) if view.level == "record" else user_level(view, ctx)


def constant_class(view: PrivateFederatedTask, ctx, label: int = 0) -> Params:
    """Floor: zero weights and a bias that picks one class, chosen without asking anything (ε = 0)."""
    params = {n: np.zeros(s, dtype=np.float32) for n, s in param_shapes(view.level, view.n_features,
                                                                         view.n_classes).items()}
    params["out.bias"][label] = 1.0
    return params
