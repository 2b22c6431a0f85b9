"""The held-out side of ``dp-fedavg``: the data sets, the private mechanism that answers ``ctx.ask``,
its accounting, the scoring. Harness only: the clients' records never leave this module's objects."""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from advbench.glyphs import glyph_split
from advbench.task import Problem, Seal
from advbench.tasks.dp_fedavg.contract import (DELTA, LOCAL_EPOCHS_MAX, LOCAL_LR_MAX, Mechanism,
                                               PrivateFederatedTask, accountant_epsilon, check_params, logits,
                                               predict)

if TYPE_CHECKING:
    from advbench.solution import SolutionHandle

DIGITS_CLIENTS = 10
DIGITS_SHIFT = 0.3  # the digits' pixels (in [0, 1]) are centred by this before the sealed rotation
SYNTHETIC_CLIENTS = 1000
SYNTHETIC_PER_CLIENT = 60
SYNTHETIC_TEST = 10_000
SYNTHETIC_FEATURES = 64
N_CLASSES = 10

# The mechanism's fixed parameters (the budget sets the calls; the harness calibrates sigma).
RECORD_SAMPLE_RATE = 0.2  # expected batch 27 of a client's 134-135 records
RECORD_CLIP = 1.0
USER_SAMPLE_RATE = 0.1  # about 100 of the 1000 clients per round
USER_CLIP = 1.0
ACCOUNTANT = "rdp"  # sigma is calibrated with opacus' RDP accountant
STREAM_ROTATION, STREAM_MECHANISM = 3, 4  # seal streams (1: client partition, public; 2: synthetic split)


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


def rotation(seal: Seal, dim: int) -> np.ndarray:
    """A random orthogonal matrix (Haar, QR of a Gaussian with signs fixed) from the seal.

    scikit-learn ships the digits, test images included: a method could train on its copy without
    touching the mechanism. The harness hands the mechanism (and scores) ``R (x - 0.3)``, so a model
    of the public images means nothing in a sealed run. Norms are kept, so clipping and DP-SGD's
    noise act exactly as on the centred pixels (an isotropic mechanism is rotation-equivariant).
    """
    q, r = np.linalg.qr(seal.rng(STREAM_ROTATION).standard_normal((dim, dim)))
    return (q * np.sign(np.diag(r))).astype(np.float32)


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


def calibrate(epsilon: float, sample_rate: float, calls: int) -> float:
    """The smallest sigma (to opacus' tolerance) whose RDP ε after ``calls`` calls at rate ``sample_rate``
    is at most ``epsilon``; 0 for ε = ∞."""
    if not math.isfinite(epsilon):
        return 0.0
    from opacus.accountants.utils import get_noise_multiplier

    return float(get_noise_multiplier(target_epsilon=epsilon, target_delta=DELTA, sample_rate=sample_rate,
                                      steps=calls, accountant=ACCOUNTANT))


# ---------------------------------------------------------------------------------------------
# The mechanism: the only way a method reaches the clients' records
# ---------------------------------------------------------------------------------------------

class PrivateMechanism:
    """Answers ``ctx.ask`` in the harness process and counts every call.

    Record level: one call is one DP-SGD step of one client; every client has its own count (a
    record's ε is its own client's) and its own limit. User level: one call is one round.
    Noise and sampling are drawn from ``rng`` (the seal's); local shuffles from a torch generator
    seeded from it, on the CPU. The gradients and the clients' local training run on ``device``
    (the run's profile: ``cuda`` puts the records there); random numbers are drawn on the CPU and
    moved, so a seed draws the same samples, shuffles and noise on any device, and answers come
    back as CPU arrays.
    """

    def __init__(self, level: str, xs: list[np.ndarray], ys: list[np.ndarray], public: Mechanism,
                 n_features: int, n_classes: int, rng: np.random.Generator, device: str = "cpu") -> None:
        import torch

        self.level, self.public = level, public
        self.n_features, self.n_classes = n_features, n_classes
        self.rng = rng
        self.device = torch.device(device)
        self.torch_gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        self.xs = [torch.from_numpy(np.ascontiguousarray(x)).to(self.device) for x in xs]
        self.ys = [torch.from_numpy(np.ascontiguousarray(y)).to(self.device) for y in ys]
        if level == "user":
            self.x_all, self.y_all = torch.stack(self.xs), torch.stack(self.ys)  # [N, 60, d], [N, 60]
        self.client_steps = np.zeros(len(xs), dtype=np.int64)  # record level
        self.rounds = 0  # user level
        self.batch_sizes: list[int] = []  # realised Poisson counts (records, or clients), for tests only

    # ---- accounting ----
    @property
    def steps(self) -> int:
        """Compositions a record (record level: its client's steps, the largest) or a client went through."""
        return int(self.client_steps.max()) if self.level == "record" else self.rounds

    @property
    def calls(self) -> int:
        return int(self.client_steps.sum()) if self.level == "record" else self.rounds

    # The harness scores a checkpoint after the method has ended, as of the calls answered when it
    # was handed in: ``metrics`` reads the counts below.
    def snapshot(self) -> tuple[np.ndarray, int]:
        return self.client_steps.copy(), self.rounds

    @contextlib.contextmanager
    def as_of(self, snapshot: tuple[np.ndarray, int]) -> Iterator[None]:
        now = self.snapshot()
        self.client_steps, self.rounds = snapshot[0].copy(), snapshot[1]
        try:
            yield
        finally:
            self.client_steps, self.rounds = now

    def metrics(self) -> dict[str, float]:
        """What the mechanism did, as the record's privacy metrics (non-finite ones left out)."""
        p = self.public
        out = {"noise_multiplier": p.noise_multiplier, "sample_rate": p.sample_rate, "steps": float(self.steps),
               "clip": p.clip, "calls": float(self.calls),
               "epsilon": accountant_epsilon(p.noise_multiplier, p.sample_rate, self.steps, DELTA, "rdp"),
               "epsilon_prv": accountant_epsilon(p.noise_multiplier, p.sample_rate, self.steps, DELTA, "prv")}
        return {k: float(v) for k, v in out.items() if math.isfinite(v)}

    # ---- answering ----
    def __call__(self, question: Any) -> dict[str, Any]:
        if not isinstance(question, dict):
            raise TypeError(f"a question is a dict (contract.{self.level}_question), got {type(question).__name__}")
        params = check_params(question.get("params"), self.level, self.n_features, self.n_classes)
        if self.level == "record":
            return self._record(question, params)
        return self._user(question, params)

    def _record(self, question: dict[str, Any], params: dict[str, np.ndarray]) -> dict[str, Any]:
        extra = set(question) - {"client", "params"}
        if extra:
            raise ValueError(f"a record-level question has 'client' and 'params' only, not {sorted(map(str, extra))}")
        k = question.get("client")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k < len(self.xs):
            raise ValueError(f"'client' must be an integer in 0..{len(self.xs) - 1}, got {k!r}")
        k = int(k)
        if self.client_steps[k] >= self.public.max_calls:
            raise ValueError(f"client {k}'s budget of {self.public.max_calls} DP-SGD steps is spent (ε would exceed "
                             "the variant's)")
        self.client_steps[k] += 1  # counted before anything is released
        x, y = self.xs[k], self.ys[k]
        q, clip, sigma = self.public.sample_rate, self.public.clip, self.public.noise_multiplier
        take = np.flatnonzero(self.rng.random(len(y)) < q)  # Poisson: every record in with probability q
        self.batch_sizes.append(len(take))
        rows = torch_index(take, self.device)
        total = clipped_gradient_sum(params, x[rows], y[rows], clip)
        if sigma > 0:
            total = total + (sigma * clip) * self.rng.standard_normal(total.shape[0]).astype(np.float32)
        mean = total / np.float32(q * len(y))  # the expected batch, never the realised one
        return {"gradient": unflatten(mean, params), "steps_left": int(self.public.max_calls - self.client_steps[k])}

    def _user(self, question: dict[str, Any], params: dict[str, np.ndarray]) -> dict[str, Any]:
        extra = set(question) - {"params", "local_epochs", "local_batch", "local_lr"}
        if extra:
            raise ValueError(f"a user-level question has params, local_epochs, local_batch and local_lr only, "
                             f"not {sorted(map(str, extra))}")
        epochs, batch, lr = question.get("local_epochs"), question.get("local_batch"), question.get("local_lr")
        n = int(self.y_all.shape[1])
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or not 1 <= epochs <= LOCAL_EPOCHS_MAX:
            raise ValueError(f"'local_epochs' must be an integer in 1..{LOCAL_EPOCHS_MAX}, got {epochs!r}")
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or not 1 <= batch <= n:
            raise ValueError(f"'local_batch' must be an integer in 1..{n}, got {batch!r}")
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.number)) or not 0 < float(lr) <= LOCAL_LR_MAX:
            raise ValueError(f"'local_lr' must be a number in (0, {LOCAL_LR_MAX:g}], got {lr!r}")
        if self.rounds >= self.public.max_calls:
            raise ValueError(f"the budget of {self.public.max_calls} rounds is spent (ε would exceed the variant's)")
        self.rounds += 1
        import torch

        q, clip, sigma = self.public.sample_rate, self.public.clip, self.public.noise_multiplier
        n_clients = len(self.ys)
        sampled = np.flatnonzero(self.rng.random(n_clients) < q)  # Poisson client sampling
        self.batch_sizes.append(len(sampled))
        dim = sum(v.size for v in params.values())
        if len(sampled):
            idx = torch_index(sampled, self.device)
            start = {k: torch.from_numpy(v).to(self.device) for k, v in params.items()}
            local = local_training(start, self.x_all[idx], self.y_all[idx], int(epochs), int(batch), float(lr),
                                   self.torch_gen)
            updates = torch.cat([(local[k] - start[k]).reshape(len(sampled), -1) for k in params], dim=1)
            total = clip_rows(updates, clip).sum(0).cpu().numpy()  # each client's whole update as one vector
        else:
            total = np.zeros(dim, dtype=np.float32)  # nobody sampled: the noise alone is released
        if sigma > 0:
            total = total + (sigma * clip) * self.rng.standard_normal(dim).astype(np.float32)
        mean = total / np.float32(q * n_clients)  # the expected count qN, never the realised one
        return {"update": unflatten(mean, params), "rounds_left": int(self.public.max_calls - self.rounds)}


def torch_index(rows: np.ndarray, device: Any) -> Any:
    """NumPy row numbers as a torch index on ``device``."""
    import torch

    return torch.from_numpy(rows).to(device)


def clip_rows(rows: Any, clip: float) -> Any:
    """Scale each row of a torch matrix to L2 norm at most ``clip`` (opacus' factor); ``inf``: unchanged."""
    import torch

    if not math.isfinite(clip):
        return rows
    norms = rows.norm(dim=1, keepdim=True)
    return rows * torch.clamp(clip / (norms + 1e-6), max=1.0)


def clipped_gradient_sum(params: dict[str, np.ndarray], x: Any, y: Any, clip: float) -> np.ndarray:
    """Σ over the rows of (x, y) of each row's cross-entropy gradient at ``params``, clipped to ``clip``
    (flattened in ``params``' order, float32). Per-sample gradients through ``torch.func`` on the
    device of ``x``; with no clipping (``clip`` = inf) the summed loss's gradient, which is the same sum."""
    import torch
    import torch.nn.functional as F
    from torch.func import grad, vmap

    p = {k: torch.from_numpy(v).to(x.device) for k, v in params.items()}
    dim = sum(v.numel() for v in p.values())
    if len(y) == 0:
        return np.zeros(dim, dtype=np.float32)
    if not math.isfinite(clip):
        g = grad(lambda q: F.cross_entropy(logits(q, x), y, reduction="sum"))(p)
        return torch.cat([g[k].reshape(-1) for k in p]).cpu().numpy()

    def one(q, xi, yi):
        return F.cross_entropy(logits(q, xi[None]), yi[None])

    g = vmap(grad(one), in_dims=(None, 0, 0))(p, x, y)
    rows = torch.cat([g[k].reshape(len(y), -1) for k in p], dim=1)
    return clip_rows(rows, clip).sum(0).cpu().numpy()


def local_training(params: dict[str, Any], x: Any, y: Any, epochs: int, batch: int, lr: float, gen: Any) -> dict:
    """``epochs`` of minibatch SGD for every sampled client at once (``torch.func.vmap``).

    ``x[m, n, d]``, ``y[m, n]``: the m sampled clients' records. Returns their final weights, stacked ``[m, ...]``.
    """
    import torch
    import torch.nn.functional as F
    from torch.func import grad, vmap

    m, n = y.shape
    stacked = {k: v.unsqueeze(0).expand(m, *v.shape).clone() for k, v in params.items()}

    def loss(p, xb, yb):
        return F.cross_entropy(logits(p, xb), yb)

    step = vmap(grad(loss))
    for _ in range(epochs):
        # Each client its own shuffle, drawn on the CPU (``gen``'s device) and moved to the records'.
        order = torch.argsort(torch.rand(m, n, generator=gen), dim=1).to(x.device)
        for start in range(0, n, batch):
            idx = order[:, start: start + batch]
            xb = torch.gather(x, 1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
            yb = torch.gather(y, 1, idx)
            grads = step(stacked, xb, yb)
            stacked = {k: stacked[k] - lr * grads[k] for k in stacked}
    return stacked


def unflatten(flat: np.ndarray, like: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out, at = {}, 0
    for k, v in like.items():
        out[k] = np.ascontiguousarray(flat[at: at + v.size].reshape(v.shape), dtype=np.float32)
        at += v.size
    return out


# ---------------------------------------------------------------------------------------------
# The task
# ---------------------------------------------------------------------------------------------

def max_calls(level: str, budget: Any) -> int:
    """The calls a budget allows: DP-SGD steps per client, or rounds (the full budget's without one)."""
    from advbench.tasks.dp_fedavg import SPEC

    limits = budget.limits if budget is not None else SPEC.budgets["full"].limits
    return int(limits["record_steps" if level == "record" else "user_rounds"])


class DPFedAvgTask:
    def build(self, *, variant: str, seed: int, budget: Any, seal: Seal, device: str = "cpu") -> Problem:
        """``device``: where the mechanism computes (the run's profile; ``SPEC.harness_device``)."""
        level, epsilon = parse_variant(variant)
        if level == "record":
            train, test = glyph_split(seal)
            parts = digits_clients(train.y, seed)
            rot = rotation(seal, train.x.shape[1])
            x_tr = (train.x - np.float32(DIGITS_SHIFT)) @ rot.T
            x_te = np.ascontiguousarray((test.x - np.float32(DIGITS_SHIFT)) @ rot.T, dtype=np.float32)
            y_tr, y_te = train.y, test.y
            q, clip = RECORD_SAMPLE_RATE, RECORD_CLIP
        else:
            x_tr, y_tr, x_te, y_te = synthetic(seal)
            # Clients: 60 consecutive rows of a public shuffle each; the rows are already in a
            # random order, so clients are IID samples of the distribution.
            perm = np.random.default_rng([seed, 1]).permutation(len(y_tr))
            parts = np.split(perm, SYNTHETIC_CLIENTS)
            q, clip = USER_SAMPLE_RATE, USER_CLIP
        calls = max_calls(level, budget)
        private = math.isfinite(epsilon)
        public = Mechanism(sample_rate=q, clip=clip if private else math.inf,
                           noise_multiplier=calibrate(epsilon, q, calls), max_calls=calls)
        n_features = int(x_tr.shape[1])
        mechanism = PrivateMechanism(level, [x_tr[p] for p in parts], [y_tr[p] for p in parts], public, n_features,
                                     N_CLASSES, seal.rng(STREAM_MECHANISM), device)
        view = PrivateFederatedTask(level=level, epsilon=epsilon, delta=DELTA, n_features=n_features,
                                    n_classes=N_CLASSES, n_clients=len(parts), mechanism=public,
                                    local_batch_max=SYNTHETIC_PER_CLIENT if level == "user" else 0)
        sizes = sorted({len(p) for p in parts})
        return Problem(
            train=view,
            heldout={"x": x_te, "y": y_te, "level": level, "epsilon": epsilon, "mechanism": mechanism},
            oracle=mechanism,
            description={"variant": variant, "level": level, "epsilon": epsilon if private else "inf",
                         "delta": DELTA, "clients": len(parts), "train": int(len(y_tr)), "test": int(len(y_te)),
                         "client_sizes": sizes, "partition_seed": [seed, 1],
                         "mechanism": {"sample_rate": q, "clip": clip if private else "inf",
                                       "noise_multiplier": public.noise_multiplier, "max_calls": calls,
                                       "calls_are": "DP-SGD steps per client" if level == "record" else "rounds",
                                       "calibrated_with": ACCOUNTANT},
                         "input": "R (pixels/16 - 0.3), R a sealed random rotation" if level == "record" else "raw"},
        )

    def evaluate(self, solution: "SolutionHandle", problem: Problem, profile: Any) -> dict[str, float]:
        held = problem.heldout
        mech: PrivateMechanism = held["mechanism"]
        params = check_params(solution.fetch(), held["level"], mech.n_features, mech.n_classes)
        pred = predict(params, held["x"])
        metrics = {"accuracy": float((pred == held["y"]).mean())}
        metrics.update(mech.metrics())  # what the harness's mechanism did, up to this scoring
        return metrics
