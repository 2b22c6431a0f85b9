"""Differentially private federated learning, two ways, for the ``dp-fedavg`` task. One file, top to bottom.

**Record level** (digits over 10 clients): every client protects each of its examples. Each round
the server sends the global model; every client runs ``local_steps`` steps of DP-SGD (Abadi et al.
2016) on its own data with opacus 1.6: Poisson-sampled batches, every per-example gradient clipped
to norm ``clip``, Gaussian noise of std ``sigma * clip`` added to the sum, divided by the *expected*
batch size; the server averages the clients' models. A record belongs to one client, so its ε is
its client's: the composition of every DP-SGD step that client took over all rounds (the server's
average is post-processing). Opacus' accountant counts the steps; ``sigma`` is calibrated up front
with ``opacus.accountants.utils.get_noise_multiplier`` for the steps the budget allows.

**User level** (1000 synthetic clients): the server protects each client's whole contribution
(DP-FedAvg, McMahan et al. 2018). Each round every client takes part independently with
probability ``q`` (Poisson sampling: the accountant's subsampled Gaussian assumes exactly this; a
fixed number of clients per round would need another analysis). A sampled client trains locally
and sends its update (new weights minus global), clipped as one flattened vector to norm ``clip``;
the server adds noise of std ``sigma * clip`` to the sum and divides by the *expected* number of
clients ``q * N``, never by the realised count (which would leak how many took part) and never by
example counts (which would let one client's weight exceed its clip). A round where nobody is
sampled still releases noise and still counts. Sampled clients train together through
``torch.func.vmap`` (one model shape, stacked weights).

The non-private variants (ε = ∞) run the same loops without clipping or noise: the ceiling the
private runs are measured against. The floor predicts one constant class without reading any
data (ε = 0); both data sets are class-balanced, so it scores what majority class would.
``tests/test_dp_fedavg.py`` checks the ε against opacus' RDP and PRV accountants, shows that
noise is added each step, and checks the user-level aggregate.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from advbench.baselines.common import frozen
from advbench.tasks.dp_fedavg.contract import PrivacyLedger, PrivateFederatedData


# ---------------------------------------------------------------------------------------------
# Hyperparameters
# ---------------------------------------------------------------------------------------------

@dataclass
class RecordConfig:
    rounds: int = 20  # overridden by the budget's record_rounds
    local_steps: int = 5  # DP-SGD steps per client per round (one expected pass over its data)
    expected_batch: int = 27  # Poisson rate q = 27 / 135 = 0.2 per client
    clip: float = 1.0  # per-example gradient norm bound C
    lr: float = 1.0
    hidden: int = 0  # 0: multinomial logistic regression (fewer parameters, less noise per signal)
    accountant: str = "rdp"
    optimizer: str = "sgd"
    momentum: float = 0.0


@dataclass
class UserConfig:
    rounds: int = 300  # overridden by the budget's user_rounds
    sample_rate: float = 0.1  # q: each of the 1000 clients takes part with probability 0.1
    local_epochs: int = 5
    local_batch: int = 20
    local_lr: float = 0.2
    clip: float = 1.0  # bound on the L2 norm of a client's whole update
    server_lr: float = 1.0
    server_momentum: float = 0.9  # post-processing of the noised average: free, privacy-wise
    hidden: int = 256  # at epsilon 3, seeds 0-1: 64 units 0.69, 128 0.75, 256 0.76-0.77
    accountant: str = "rdp"


class Shift(nn.Module):
    def __init__(self, shift: float, scale: float) -> None:
        super().__init__()
        self.shift, self.scale = shift, scale

    def forward(self, x):
        return (x - self.shift) * self.scale


SHIFT = (0.3, 1.0)


def model(n_features: int, n_classes: int, hidden: int) -> nn.Module:
    if hidden == 0:
        return nn.Sequential(Shift(*SHIFT), nn.Linear(n_features, n_classes))
    return nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))


def noise_multiplier(epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str) -> float:
    """The smallest σ (to opacus' tolerance) whose ε after ``steps`` steps at rate ``q`` is ≤ ``epsilon``."""
    if not math.isfinite(epsilon):
        return 0.0
    from opacus.accountants.utils import get_noise_multiplier

    return float(get_noise_multiplier(target_epsilon=epsilon, target_delta=delta, sample_rate=sample_rate,
                                      steps=steps, accountant=accountant))


class PrivateModel:
    """The solution: a trained model and the ledger an accountant turns into ε."""

    def __init__(self, net: nn.Module, ledger: PrivacyLedger) -> None:
        self.net, self.ledger = net, ledger

    @torch.no_grad()
    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.net(torch.as_tensor(x, dtype=torch.float32)).argmax(1).numpy()

    def privacy_ledger(self) -> dict:
        return self.ledger.as_dict()


# ---------------------------------------------------------------------------------------------
# Record level: DP-SGD per client (opacus), models averaged by the server
# ---------------------------------------------------------------------------------------------

class DPSGDClient:
    """One client: its own copy of the model, wrapped by opacus, with its own Poisson loader and accountant."""

    def __init__(self, x: np.ndarray, y: np.ndarray, net: nn.Module, cfg: RecordConfig, sigma: float,
                 generator: torch.Generator, private: bool) -> None:
        from torch.utils.data import DataLoader, TensorDataset

        self.n = len(y)
        dataset = TensorDataset(torch.as_tensor(x), torch.as_tensor(y))
        # opacus sets the Poisson rate to 1 / len(loader): batch_size is chosen so that this is
        # expected_batch / n for every client (see RecordConfig).
        loader = DataLoader(dataset, batch_size=cfg.expected_batch, generator=generator, shuffle=not private)
        optimizer = (torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum) if cfg.optimizer == "sgd"
                     else torch.optim.Adam(net.parameters(), lr=cfg.lr))
        self.engine = None
        if private:
            from opacus import PrivacyEngine

            self.engine = PrivacyEngine(accountant=cfg.accountant)
            net, optimizer, loader = self.engine.make_private(
                module=net, optimizer=optimizer, data_loader=loader, noise_multiplier=sigma,
                max_grad_norm=cfg.clip, poisson_sampling=True, noise_generator=generator)
        self.net, self.optimizer, self.loader = net, optimizer, loader
        self.batches = iter(self.loader)

    def parameters(self) -> list[torch.Tensor]:
        return list(self.net.parameters())

    def train(self, global_params: list[torch.Tensor], steps: int) -> None:
        with torch.no_grad():
            for p, g in zip(self.parameters(), global_params):
                p.copy_(g)
        for _ in range(steps):
            try:
                xb, yb = next(self.batches)
            except StopIteration:  # a Poisson "epoch" is 1/q draws; start the next one
                self.batches = iter(self.loader)
                xb, yb = next(self.batches)
            self.optimizer.zero_grad(set_to_none=True)
            # An empty Poisson batch still makes a step: opacus' optimiser then releases noise alone.
            F.cross_entropy(self.net(xb), yb).backward() if len(yb) else _zero_step(self.net, xb)
            self.optimizer.step()

    def spent(self) -> tuple[float, float, int]:
        """(σ, q, steps) from the client's accountant history (one entry: σ and q never change)."""
        if self.engine is None:
            return 0.0, 0.0, 0
        history = self.engine.accountant.history
        steps = sum(h[2] for h in history)
        return (float(history[0][0]), float(history[0][1]), int(steps)) if history else (0.0, 0.0, 0)


def _zero_step(net: nn.Module, xb: torch.Tensor) -> None:
    # The forward pass on zero rows lets opacus record (empty) per-sample gradients.
    (net(xb).sum() * 0.0).backward()


def record_level(data: PrivateFederatedData, ctx) -> PrivateModel:
    cfg = RecordConfig(rounds=int(ctx.limits["record_rounds"]))
    torch.manual_seed(ctx.seed)
    generator = torch.Generator().manual_seed(ctx.seed)
    sizes = data.sizes
    # q as opacus will set it: 1 / number of batches of the largest client (every client gets the
    # same number of batches, see digits_clients: sizes differ by at most one).
    q = 1.0 / math.ceil(int(sizes.max()) / cfg.expected_batch)
    total_steps = cfg.rounds * cfg.local_steps
    sigma = noise_multiplier(data.epsilon, data.delta, q, total_steps, cfg.accountant)
    ctx.record_config(**asdict(cfg), level="record", noise_multiplier=sigma, sample_rate=q, steps=total_steps,
                      delta=data.delta)
    global_net = model(data.n_features, data.n_classes, cfg.hidden)
    clients = [DPSGDClient(c.x, c.y, model(data.n_features, data.n_classes, cfg.hidden), cfg, sigma, generator,
                           data.private) for c in data.clients]
    weights = torch.as_tensor(sizes / sizes.sum(), dtype=torch.float32)

    def ledger() -> PrivacyLedger:
        spent = [c.spent() for c in clients]
        if data.private:
            assert len({s[:2] for s in spent}) == 1, "every client must run at the same σ and q"
            s, rate, steps = max(spent, key=lambda t: t[2])
        else:
            s, rate, steps = 0.0, q, rounds_done * cfg.local_steps
        return PrivacyLedger("record", s, rate, int(steps), data.delta, cfg.accountant,
                             cfg.clip if data.private else math.inf)

    rounds_done = 0
    for r in range(cfg.rounds):
        global_params = [p.detach().clone() for p in global_net.parameters()]
        for client in clients:
            client.train(global_params, cfg.local_steps)
        with torch.no_grad():
            for i, p in enumerate(global_net.parameters()):
                p.copy_(sum(w * c.parameters()[i] for w, c in zip(weights, clients)))
        rounds_done = r + 1
        ctx.count(len(clients))
        ctx.progress(rounds_done, cfg.rounds)
        if rounds_done % 5 == 0 or rounds_done == cfg.rounds:
            ctx.checkpoint(PrivateModel(frozen(global_net), ledger()), step=rounds_done)
    return PrivateModel(frozen(global_net), ledger())


# ---------------------------------------------------------------------------------------------
# User level: DP-FedAvg with Poisson client sampling, clients trained together through vmap
# ---------------------------------------------------------------------------------------------

def clip_updates(updates: torch.Tensor, clip: float) -> torch.Tensor:
    """Scale each row (one client's whole flattened update) to norm at most ``clip``."""
    norms = updates.norm(dim=1, keepdim=True)
    return updates * torch.clamp(clip / (norms + 1e-12), max=1.0)


def private_mean(updates: torch.Tensor, clip: float, sigma: float, expected_clients: float,
                 generator: torch.Generator, dim: int) -> torch.Tensor:
    """(Σ clipped updates + N(0, (σ·clip)² I)) / (q·N). ``updates`` may have zero rows."""
    total = clip_updates(updates, clip).sum(0) if len(updates) else torch.zeros(dim)
    if sigma > 0:
        total = total + sigma * clip * torch.randn(dim, generator=generator)
    return total / expected_clients


def local_training(net: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                   cfg: UserConfig, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """``local_epochs`` of minibatch SGD for every sampled client at once.

    ``x[m, n, d]``, ``y[m, n]``: the m sampled clients' data (all clients hold n = 60 examples).
    Returns their final weights, stacked ``[m, ...]``.
    """
    m, n = y.shape
    stacked = {k: v.unsqueeze(0).expand(m, *v.shape).clone() for k, v in params.items()}

    def loss(p, xb, yb):
        return F.cross_entropy(functional_call(net, p, (xb,)), yb)

    step = vmap(grad(loss))
    for _ in range(cfg.local_epochs):
        order = torch.argsort(torch.rand(m, n, generator=generator), dim=1)  # each client its own shuffle
        for start in range(0, n, cfg.local_batch):
            idx = order[:, start: start + cfg.local_batch]
            xb = torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
            yb = torch.gather(y, 1, idx)
            grads = step(stacked, xb, yb)
            stacked = {k: stacked[k] - cfg.local_lr * grads[k] for k in stacked}
    return stacked


def user_level(data: PrivateFederatedData, ctx) -> PrivateModel:
    cfg = UserConfig(rounds=int(ctx.limits["user_rounds"]))
    torch.manual_seed(ctx.seed)
    generator = torch.Generator().manual_seed(ctx.seed)
    n_clients = len(data.clients)
    sigma = noise_multiplier(data.epsilon, data.delta, cfg.sample_rate, cfg.rounds, cfg.accountant)
    clip = cfg.clip if data.private else math.inf
    ctx.record_config(**asdict(cfg), level="user", noise_multiplier=sigma, steps=cfg.rounds, delta=data.delta)
    net = model(data.n_features, data.n_classes, cfg.hidden)
    names = [k for k, _ in net.named_parameters()]
    shapes = [p.shape for p in net.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    velocity = torch.zeros_like(flat)
    x_all = torch.as_tensor(np.stack([c.x for c in data.clients]))  # [N, 60, d]
    y_all = torch.as_tensor(np.stack([c.y for c in data.clients]))

    def unflatten(v: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(zip(names, (t.reshape(s) for t, s in zip(torch.split(v, [math.prod(s) for s in shapes]), shapes))))

    def solution(rounds: int) -> PrivateModel:
        out = model(data.n_features, data.n_classes, cfg.hidden)
        out.load_state_dict(unflatten(flat.clone()))
        return PrivateModel(frozen(out), PrivacyLedger("user", sigma, cfg.sample_rate, rounds, data.delta,
                                                       cfg.accountant, clip))

    for r in range(cfg.rounds):
        sampled = torch.nonzero(torch.rand(n_clients, generator=generator) < cfg.sample_rate).squeeze(1)
        if len(sampled):
            local = local_training(net, unflatten(flat), x_all[sampled], y_all[sampled], cfg, generator)
            updates = torch.cat([local[k].reshape(len(sampled), -1) for k in names], dim=1) - flat
        else:
            updates = torch.zeros(0, flat.numel())
        if data.private:
            mean = private_mean(updates, cfg.clip, sigma, cfg.sample_rate * n_clients, generator, flat.numel())
        else:  # the non-private ceiling: the plain average of the sampled clients' updates
            mean = updates.mean(0) if len(updates) else torch.zeros_like(flat)
        velocity = cfg.server_momentum * velocity + mean
        flat = flat + cfg.server_lr * velocity
        ctx.count(len(sampled))
        ctx.progress(r + 1, cfg.rounds)
        if (r + 1) % 25 == 0 or r + 1 == cfg.rounds:
            ctx.checkpoint(solution(r + 1), step=r + 1)
    return solution(cfg.rounds)


# ---------------------------------------------------------------------------------------------
# Methods
# ---------------------------------------------------------------------------------------------

def train(data: PrivateFederatedData, ctx) -> PrivateModel:
    """Reference: record-level DP-SGD per client, or user-level DP-FedAvg, as the variant asks."""
    return record_level(data, ctx) if data.level == "record" else user_level(data, ctx)


class ConstantClass:
    """Floor: one class for every input, chosen without reading any data (ε = 0)."""

    def __init__(self, level: str, delta: float, label: int = 0) -> None:
        self.level, self.delta, self.label = level, delta, label

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.full(len(x), self.label, dtype=np.int64)

    def privacy_ledger(self) -> dict:
        return PrivacyLedger(self.level, 0.0, 0.0, 0, self.delta, "rdp", 0.0).as_dict()


def constant_class(data: PrivateFederatedData, ctx) -> ConstantClass:
    return ConstantClass(data.level, data.delta)
