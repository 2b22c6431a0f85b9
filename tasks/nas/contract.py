"""The public contract of the ``nas`` task: the search space, how to ask about an architecture, what to return.

The search space (:data:`SPACE`) is four decisions, taken in this order: the number of hidden
layers (``depth``), their ``width``, the ``activation`` and the ``dropout`` rate of a plain MLP on
8x8 glyph digits made under the seal (``advbench.glyphs``); 4 x 5 x 4 x 3 = 240 architectures (:data:`N_ARCHITECTURES`). Every one
of them was trained once, with fixed seeds, into a table (a small NAS-Bench-201) that the harness
keeps: a method never trains anything.

A method receives a :class:`SearchSpace` and asks the harness about architectures with
``ctx.ask(architecture)``. An architecture is either a dict of the four values
(``{"depth": 2, "width": 64, "activation": "relu", "dropout": 0.0}``) or a sequence of four choice
indices into :data:`SPACE` (``[1, 3, 0, 0]``, what a controller samples). The answer is a dict::

    {"validation_accuracy": float, "validation_loss": float, "evaluations_left": int}

The validation accuracy is the table's 3-fold cross-validation accuracy (on 1350 images); test accuracies never leave the harness. Every ask
counts against ``ctx.limits["evaluations"]``, asking again for an architecture already asked about
included (keep your own cache: it is free); an ask past the budget, or about something that is not
an architecture, raises ``ValueError``.

The method returns (or checkpoints) a :class:`Choice`: the architecture it would pick, which must be
one it has asked about, and the number of asks it has made. The harness scores its *own* pick among the asked architectures: the
highest validation accuracy, ties broken by the lower validation loss, then by the earlier ask
(:func:`better`). So the score depends on which architectures a method evaluated, and in which
order, and on nothing else.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from itertools import product
from typing import Any, Mapping, Sequence

# The order of the decisions is the order a controller takes them in, and the order of a choice-index list.
SPACE: dict[str, tuple] = {
    "depth": (1, 2, 3, 4),  # hidden layers
    "width": (8, 16, 32, 64, 128),  # units per hidden layer
    "activation": ("relu", "tanh", "elu", "sigmoid"),
    "dropout": (0.0, 0.2, 0.5),  # after every hidden activation, during training
}
DECISIONS = tuple(SPACE)
N_CHOICES = tuple(len(v) for v in SPACE.values())
N_ARCHITECTURES = 240
assert N_ARCHITECTURES == N_CHOICES[0] * N_CHOICES[1] * N_CHOICES[2] * N_CHOICES[3]

# Table index <-> choice indices, row-major in SPACE's order (depth slowest, dropout fastest).
_ALL = tuple(product(*(range(n) for n in N_CHOICES)))
_INDEX = {c: i for i, c in enumerate(_ALL)}


def choices_of(index: int) -> tuple[int, int, int, int]:
    """The four choice indices of table row ``index``."""
    return _ALL[index]


def architecture(choices: Sequence[int]) -> dict[str, Any]:
    """The dict form of four choice indices: ``{"depth": 1, "width": 8, ...}``."""
    return {name: SPACE[name][int(c)] for name, c in zip(DECISIONS, choices)}


def index_of(arch: Any) -> int:
    """Table row of an architecture given as a dict of values or a sequence of choice indices; else ValueError."""
    if isinstance(arch, Mapping):
        if set(arch) != set(DECISIONS):
            raise ValueError(f"an architecture dict needs exactly the keys {list(DECISIONS)}, got {sorted(map(str, arch))}")
        choices = []
        for name in DECISIONS:
            value = arch[name]
            # bool is an int in Python: refuse it rather than read True as depth 1
            found = [i for i, v in enumerate(SPACE[name]) if type(value) is not bool and value == v]
            if not found:
                raise ValueError(f"{name}={value!r} is not in the search space; choices: {list(SPACE[name])}")
            choices.append(found[0])
        return _INDEX[tuple(choices)]
    if hasattr(arch, "__array__") and not isinstance(arch, (list, tuple)):
        arch = arch.tolist() if hasattr(arch, "tolist") else list(arch)  # a numpy vector of indices
    if isinstance(arch, (list, tuple)) and len(arch) == len(DECISIONS):
        for name, c, n in zip(DECISIONS, arch, N_CHOICES):
            if isinstance(c, bool) or not isinstance(c, numbers.Integral) or not 0 <= c < n:
                raise ValueError(f"choice index for {name} must be an int in 0..{n - 1}, got {c!r}")
        return _INDEX[tuple(int(c) for c in arch)]
    keys = ", ".join(f"{d!r}: ..." for d in DECISIONS)
    raise ValueError(f"an architecture is a dict {{{keys}}} or a list of {len(DECISIONS)} choice indices, "
                     f"got {type(arch).__name__}")


def better(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether the answer ``a`` = (validation accuracy, validation loss) beats ``b``: higher accuracy, then
    lower loss. Equal answers are not better (the earlier ask keeps the lead)."""
    return a[0] > b[0] or (a[0] == b[0] and a[1] < b[1])


@dataclass(frozen=True)
class SearchSpace:
    """What a method receives: the space, the budget in evaluations, and the answer's keys."""

    space: dict[str, tuple] = field(default_factory=lambda: dict(SPACE))
    evaluations: int = 0  # the same as ctx.limits["evaluations"]
    answer_keys: tuple[str, ...] = ("validation_accuracy", "validation_loss", "evaluations_left")


@dataclass(frozen=True)
class Choice:
    """What a method returns or checkpoints: the architecture it picked (a dict of values or choice
    indices) and ``asked``, how many of its ``ctx.ask`` calls had been answered when it picked it
    (refused ones, which raised ``ValueError``, do not count).

    The harness checks ``asked`` against its own count. That keeps a checkpoint's score in step with
    the search: a final ``Choice`` equal to the last checkpointed one would not be scored again, so
    after more asks it must differ (``asked`` makes it differ).
    """

    arch: Any
    asked: int

    def architecture(self) -> Any:
        return self.arch

    def asks(self) -> int:
        return self.asked
