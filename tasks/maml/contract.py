"""The public contract of the ``maml`` task: the task family a method meta-trains on, and what it returns.

A method receives a :class:`SinusoidFamily`: the paper's distribution of regression tasks
(``y = A sin(x - φ)``, ``A ~ U[0.1, 5]``, ``φ ~ U[0, π]``, ``x ~ U[-5, 5]``), the number of shots
``k_shot`` it will be scored with, and :meth:`SinusoidFamily.sample`, which draws as many training
tasks as the method likes from its own generator. The 600 evaluation tasks are the harness's:
drawn from the seal, so a sealed run's method cannot rebuild them from ``ctx.seed``.

It returns a :class:`MetaInitialisation` (or anything with the same two methods): the initial
weights of the fixed network :data:`LAYERS` (1-40-40-1, ReLU: the paper's) and the inner-loop
learning rate, a float or one array per weight (Meta-SGD's per-parameter rates fit too). The
**harness** adapts those weights to each evaluation task with :func:`adapt` (plain gradient steps on
the mean squared error of the ``k_shot`` support points) and scores the mean squared error on the
task's query points after 1 and after 10 steps. The number of steps is therefore exact: a solution
cannot take more steps than it is scored for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    import torch

AMPLITUDE = (0.1, 5.0)
PHASE = (0.0, float(np.pi))
X_RANGE = (-5.0, 5.0)
LAYERS = (1, 40, 40, 1)  # the network every method adapts: Linear-ReLU-Linear-ReLU-Linear
PARAM_SHAPES = {"w0": (40, 1), "b0": (40,), "w1": (40, 40), "b1": (40,), "w2": (1, 40), "b2": (1,)}
SCORED_STEPS = (1, 10)


@dataclass(frozen=True)
class Tasks:
    """A batch of sinusoid tasks: support ``x_s, y_s: float32[T, K, 1]``, query ``x_q, y_q: float32[T, Q, 1]``."""

    x_s: np.ndarray
    y_s: np.ndarray
    x_q: np.ndarray
    y_q: np.ndarray
    amplitude: np.ndarray  # float64[T]
    phase: np.ndarray  # float64[T]

    def __len__(self) -> int:
        return len(self.amplitude)


def sample_sinusoids(rng: np.random.Generator, n_tasks: int, k_shot: int, n_query: int) -> Tasks:
    """``n_tasks`` tasks of the paper's distribution, support and query points drawn independently."""
    amp = rng.uniform(*AMPLITUDE, size=n_tasks)
    phase = rng.uniform(*PHASE, size=n_tasks)
    x = rng.uniform(*X_RANGE, size=(n_tasks, k_shot + n_query, 1))
    y = amp[:, None, None] * np.sin(x - phase[:, None, None])
    x, y = x.astype(np.float32), y.astype(np.float32)
    return Tasks(x[:, :k_shot], y[:, :k_shot], x[:, k_shot:], y[:, k_shot:], amp, phase)


@dataclass(frozen=True)
class SinusoidFamily:
    k_shot: int  # support points per task, at meta-training (a method's choice) and at evaluation
    n_query: int  # query points per evaluation task

    def sample(self, rng: np.random.Generator, n_tasks: int, k_shot: int | None = None,
               n_query: int | None = None) -> Tasks:
        """Training tasks from the method's own generator (``np.random.default_rng(...)``)."""
        return sample_sinusoids(rng, n_tasks, self.k_shot if k_shot is None else k_shot,
                                self.k_shot if n_query is None else n_query)


class AdaptableInitialisation(Protocol):
    def parameters(self) -> dict[str, np.ndarray]: ...

    def inner_lr(self) -> float | dict[str, np.ndarray]: ...


@dataclass
class MetaInitialisation:
    """Plain weights and an inner learning rate: what a method returns."""

    weights: dict[str, np.ndarray]
    lr: float | dict[str, np.ndarray]

    def parameters(self) -> dict[str, np.ndarray]:
        return self.weights

    def inner_lr(self) -> float | dict[str, np.ndarray]:
        return self.lr


def init_parameters(generator: "torch.Generator | None" = None) -> dict[str, "torch.Tensor"]:
    """PyTorch's default ``nn.Linear`` initialisation of :data:`LAYERS` (uniform ±1/sqrt(fan_in))."""
    import torch

    out = {}
    for name, shape in PARAM_SHAPES.items():
        fan_in = shape[1] if name.startswith("w") else PARAM_SHAPES["w" + name[1:]][1]
        bound = 1.0 / fan_in ** 0.5
        out[name] = (torch.rand(shape, generator=generator) * 2 - 1) * bound
    return out


def forward(params: dict[str, "torch.Tensor"], x: "torch.Tensor") -> "torch.Tensor":
    """The network on ``x: [..., N, 1]``. Weights are ``[out, in]`` or, batched over tasks, ``[T, out, in]``
    (biases ``[out]`` or ``[T, out]``), broadcast against ``x``'s leading dimension."""
    h = x
    for i in range(3):
        w, b = params[f"w{i}"], params[f"b{i}"]
        h = h @ w.transpose(-1, -2) + b.unsqueeze(-2)
        if i < 2:
            h = h.relu()
    return h


def mse(params: dict[str, "torch.Tensor"], x: "torch.Tensor", y: "torch.Tensor") -> "torch.Tensor":
    """Mean squared error over the points of each task: ``[T]`` for batched weights, ``[]`` otherwise."""
    return (forward(params, x) - y).pow(2).mean(dim=(-2, -1))


def adapt(params: dict[str, "torch.Tensor"], x_s: "torch.Tensor", y_s: "torch.Tensor",
          lr: "float | dict[str, torch.Tensor]", steps: int, *, create_graph: bool = False
          ) -> list[dict[str, "torch.Tensor"]]:
    """Plain gradient steps on each task's support MSE, from the shared ``params``.

    ``x_s, y_s: [T, K, 1]``. Returns the weights after 0, 1, ..., ``steps`` steps, each ``[T, ...]``
    (one copy per task: tasks never share adapted state). ``create_graph=True`` keeps the steps
    differentiable (second-order MAML); the harness scores with ``create_graph=False``.
    """
    import torch

    n_tasks = x_s.shape[0]
    theta = {k: v.unsqueeze(0).expand(n_tasks, *v.shape) for k, v in params.items()}
    if not create_graph:
        theta = {k: v.detach().clone().requires_grad_(True) for k, v in theta.items()}
    out = [theta]
    for _ in range(steps):
        # Summing the per-task losses gives each task's own gradient in its own slice of theta.
        loss = mse(theta, x_s, y_s).sum()
        grads = torch.autograd.grad(loss, list(theta.values()), create_graph=create_graph)
        theta = {k: v - (lr[k] if isinstance(lr, dict) else lr) * g for (k, v), g in zip(theta.items(), grads)}
        if not create_graph:
            theta = {k: v.detach().requires_grad_(True) for k, v in theta.items()}
        out.append(theta)
    return out
