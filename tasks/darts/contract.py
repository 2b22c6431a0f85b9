"""The public contract of the ``darts`` task: the search space, the data a method searches on, what
it returns, and the network the harness retrains from what it returns.

A method receives a :class:`SearchData`: the 70% of the run's glyph digits (``advbench.glyphs``,
made under the seal) that is not held out, as ``x: float32[n, 1, 8, 8]`` in [0, 1] and
``y: int64[n]``. It may split it as it likes; DARTS searches with weights on one half and
architecture parameters on the other.

The space (Liu et al. 2019, shrunk to 8x8 digits): one cell type, used by both of the network's
:data:`N_CELLS` cells. A cell has two inputs (the outputs of the two cells before it; the stem for
the first) and :data:`N_NODES` intermediate nodes; node ``i`` may read the two inputs and every
earlier node (2, 3 and 4 candidate inputs: 9 edges), and each edge applies one operation of
:data:`OPS`. A **genotype** picks, for each node, two different inputs and one operation other than
``none`` on each; the cell's output is its nodes, concatenated.

A method returns a :class:`Genotype` (or anything with ``genotype()`` returning the same nested
tuples). The **harness** then builds :func:`build_network` of that genotype and trains it from
scratch on all the search data with one fixed recipe (:data:`RETRAIN`), three times with three
seeds of its own (once on the quick budget), and scores the test accuracy of each: so what is scored is the architecture,
not how well a method trained its weights, and no method can win by training longer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

OPS = ("none", "skip", "conv3", "conv5", "dil3", "max3", "avg3")
CHOSEN_OPS = OPS[1:]  # a genotype never picks "none": deriving drops it
N_CELLS = 2
N_NODES = 3
CHANNELS = 16  # C: every edge maps C channels to C channels at 8x8
N_CLASSES = 10


def edges() -> Iterator[tuple[int, int]]:
    """(node, input) of every edge in order: inputs 0 and 1 are the cell's, 2+ are earlier nodes."""
    for node in range(N_NODES):
        for inp in range(2 + node):
            yield node, inp


N_EDGES = sum(1 for _ in edges())  # 9


@dataclass(frozen=True)
class SearchData:
    x: np.ndarray  # float32[n, 1, 8, 8] in [0, 1]
    y: np.ndarray  # int64[n]

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Genotype:
    """One cell: for each node, ``(input_a, op_a, input_b, op_b)`` with ``input_a != input_b``."""

    nodes: tuple[tuple[int, str, int, str], ...]

    def genotype(self) -> tuple[tuple[int, str, int, str], ...]:
        return self.nodes


class ArchitectureSolution(Protocol):
    def genotype(self) -> tuple[tuple[int, str, int, str], ...]: ...


def check_genotype(nodes: object) -> tuple[tuple[int, str, int, str], ...]:
    """The genotype as plain tuples, or a ``ValueError`` that says what is wrong."""
    if not isinstance(nodes, (tuple, list)) or len(nodes) != N_NODES:
        raise ValueError(f"a genotype is {N_NODES} nodes of (input_a, op_a, input_b, op_b), got {nodes!r}")
    out = []
    for i, node in enumerate(nodes):
        if not isinstance(node, (tuple, list)) or len(node) != 4:
            raise ValueError(f"node {i} must be (input_a, op_a, input_b, op_b), got {node!r}")
        a, op_a, b, op_b = node
        for inp in (a, b):
            if isinstance(inp, bool) or not isinstance(inp, (int, np.integer)) or not 0 <= inp < 2 + i:
                raise ValueError(f"node {i} reads inputs 0..{1 + i}, got {inp!r}")
        if a == b:
            raise ValueError(f"node {i} must read two different inputs, got {a} twice")
        for op in (op_a, op_b):
            if op not in CHOSEN_OPS:
                raise ValueError(f"node {i}: unknown or excluded operation {op!r}; choose from {', '.join(CHOSEN_OPS)}")
        out.append((int(a), str(op_a), int(b), str(op_b)))
    return tuple(out)


def random_genotype(rng: np.random.Generator) -> tuple[tuple[int, str, int, str], ...]:
    """A uniform draw from the space: two different inputs and an operation each, per node
    (random search's sampler, Li & Talwalkar 2019)."""
    nodes = []
    for i in range(N_NODES):
        a, b = rng.choice(2 + i, size=2, replace=False)
        op_a, op_b = rng.choice(len(CHOSEN_OPS), size=2)
        nodes.append((int(a), CHOSEN_OPS[op_a], int(b), CHOSEN_OPS[op_b]))
    return tuple(nodes)


# ---------------------------------------------------------------------------------------------
# Operations and the network a genotype describes (shared by the search and the retraining)
# ---------------------------------------------------------------------------------------------

class Zero(nn.Module):
    """The ``none`` operation: the edge is absent (zeros of the input's shape)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.0


class _MaxPool3ChannelsLast(torch.autograd.Function):
    """``F.max_pool2d(x, 3, 1, 1)`` computed in channels-last memory, one node in the autograd graph
    as the pooling itself is (extra copy nodes would reorder the backward pass's sums)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x_cl = x.contiguous(memory_format=torch.channels_last)
        out, indices = torch.ops.aten.max_pool2d_with_indices(x_cl, [3, 3], [1, 1], [1, 1])
        ctx.save_for_backward(x_cl, indices)
        return out.contiguous()

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        x_cl, indices = ctx.saved_tensors
        grad_in = torch.ops.aten.max_pool2d_with_indices_backward(
            grad.contiguous(memory_format=torch.channels_last), x_cl, [3, 3], [1, 1], [1, 1], [1, 1], False, indices)
        return grad_in.contiguous()


class MaxPool3(nn.Module):
    """The ``max3`` operation: 3x3 max pooling, stride 1, padding 1, as ``nn.MaxPool2d(3, 1, 1)``.

    Pooled in channels-last memory and handed back contiguous: the same values and gradients, ties
    included, and the same trained networks bit for bit (tested), but torch's CPU kernel for
    contiguous inputs that need gradients took 1.7 ms on 64 x 16 x 8 x 8 against 0.3 ms."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled() or not x.requires_grad:
            return F.max_pool2d(x, 3, stride=1, padding=1)
        return _MaxPool3ChannelsLast.apply(x)


class Preprocess(nn.Sequential):
    """ReLU-1x1 conv-BN: brings a cell input to C channels."""

    def __init__(self, c_in: int, c: int, affine: bool = True) -> None:
        super().__init__(nn.ReLU(), nn.Conv2d(c_in, c, 1, bias=False), nn.BatchNorm2d(c, affine=affine))


def make_op(name: str, c: int, affine: bool = True) -> nn.Module:
    """One edge operation, C -> C channels, stride 1. ``affine=False`` is what a supernet wants:
    learnable BatchNorm scales would let weights rescale an op and mask its architecture weight."""

    def conv(k: int, dilation: int = 1) -> nn.Module:
        pad = dilation * (k - 1) // 2
        return nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, k, padding=pad, dilation=dilation, bias=False),
                             nn.BatchNorm2d(c, affine=affine))

    if name == "none":
        return Zero()
    if name == "skip":
        return nn.Identity()
    if name == "conv3":
        return conv(3)
    if name == "conv5":
        return conv(5)
    if name == "dil3":
        return conv(3, dilation=2)
    if name == "max3":
        return MaxPool3()
    if name == "avg3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown operation {name!r}; valid: {', '.join(OPS)}")


def stem(c: int, affine: bool = True) -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, c, 3, padding=1, bias=False), nn.BatchNorm2d(c, affine=affine))


def build_network(nodes: tuple[tuple[int, str, int, str], ...], c: int = CHANNELS) -> nn.Module:
    """The discrete network of a genotype: stem, :data:`N_CELLS` cells, global average pool, linear."""
    nodes = check_genotype(nodes)

    class Cell(nn.Module):
        def __init__(self, c_prev_prev: int, c_prev: int) -> None:
            super().__init__()
            self.pre0, self.pre1 = Preprocess(c_prev_prev, c), Preprocess(c_prev, c)
            self.ops = nn.ModuleList(make_op(op, c) for node in nodes for op in (node[1], node[3]))

        def forward(self, s0, s1):
            states = [self.pre0(s0), self.pre1(s1)]
            for i, (a, _, b, _) in enumerate(nodes):
                states.append(self.ops[2 * i](states[a]) + self.ops[2 * i + 1](states[b]))
            return torch.cat(states[2:], dim=1)

    class Network(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = stem(c)
            cells, c_pp, c_p = [], c, c
            for _ in range(N_CELLS):
                cells.append(Cell(c_pp, c_p))
                c_pp, c_p = c_p, N_NODES * c
            self.cells = nn.ModuleList(cells)
            self.classifier = nn.Linear(c_p, N_CLASSES)

        def forward(self, x):
            s0 = s1 = self.stem(x)
            for cell in self.cells:
                s0, s1 = s1, cell(s0, s1)
            return self.classifier(s1.mean(dim=(2, 3)))

    return Network()


@dataclass(frozen=True)
class RetrainRecipe:
    """How the harness trains a genotype from scratch (the same for every method)."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05  # SGD, cosine to zero
    momentum: float = 0.9
    weight_decay: float = 3e-4
    seeds: int = 3


RETRAIN = RetrainRecipe()


def retrain(nodes: tuple[tuple[int, str, int, str], ...], x: np.ndarray, y: np.ndarray, seed: int,
            recipe: RetrainRecipe = RETRAIN) -> nn.Module:
    """Train :func:`build_network` of ``nodes`` from scratch on (x, y) with ``recipe``; eval mode."""
    torch.manual_seed(seed)
    net = build_network(nodes)
    opt = torch.optim.SGD(net.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                          weight_decay=recipe.weight_decay)
    steps_per_epoch = -(-len(y) // recipe.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, recipe.epochs * steps_per_epoch)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    gen = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(recipe.epochs):
        for idx in torch.randperm(len(yt), generator=gen).split(recipe.batch_size):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
            sched.step()
    return net.eval()
