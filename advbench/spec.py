"""The static description of a task: frozen dataclasses, importable without torch.

A :class:`TaskSpec` is to advbench what ``gymnasium.envs.registration.EnvSpec`` is to gymnasium:
everything the CLI needs to list, validate and describe a task, plus a string entry point to the
code that builds its data and scores a solution. Reading a spec never imports the heavy code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

BUDGETS = ("quick", "full")


@dataclass(frozen=True)
class Metric:
    """One number a task reports for a solution."""

    name: str
    unit: str
    higher_is_better: bool
    description: str = ""
    # The smallest change of the mean, in the metric's units, that the regression gate treats as
    # real (None: the gate's --tolerance, relative to the baseline's mean).
    min_effect: float | None = None

    def lower_is_better_form(self, value: float) -> float:
        """The value in the orientation asv gates on (asv flags *increases* as regressions)."""
        return value if not self.higher_is_better else -value

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b``."""
        return a > b if self.higher_is_better else a < b


@dataclass(frozen=True)
class Target:
    """A quality bar: ``metric`` of ``variant`` must reach ``threshold`` on ``budget``.

    The bar points the metric's own way unless ``at_most`` says otherwise: a negative control
    (accuracy that must stay near chance) is an upper bound on a higher-is-better metric.
    """

    metric: str
    threshold: float
    budget: str
    variant: str
    at_most: bool | None = None  # None: follow the metric's direction

    def upper_bound(self, metric: Metric) -> bool:
        return (not metric.higher_is_better) if self.at_most is None else self.at_most

    def met(self, value: float | None, metric: Metric) -> bool:
        """Whether ``value`` reaches the bar. A value that equals the bar up to floating-point
        rounding (1e-12 relative) reaches it: a mean of differences of exact fractions that lands
        on -0.30000000000000004 has reached "at least -0.3"; no real margin is that small."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        if math.isclose(value, self.threshold, rel_tol=1e-12, abs_tol=1e-15):
            return True
        return value <= self.threshold if self.upper_bound(metric) else value >= self.threshold

    def describe(self, metric: Metric, *, where: bool = True) -> str:
        op = "<=" if self.upper_bound(metric) else ">="
        text = f"{self.metric} {op} {self.threshold:g}"
        return f"{self.variant}: {text} ({self.budget})" if where else text


@dataclass(frozen=True)
class Budget:
    """What a method may spend on one variant of a task.

    ``limits`` holds the task's own units (optimiser steps, circuit evaluations...); methods read
    them from the run context. ``max_seconds`` is a wall-clock cap on training, enforced by the
    harness at every checkpoint. ``variants`` are the variants a run on this budget covers by
    default.
    """

    name: str
    max_seconds: float
    limits: Mapping[str, float]
    variants: tuple[str, ...]


EVAL_CPU_FREE = 3.0  # see TaskSpec.evaluation_cpu_seconds
EVAL_CPU_CAP = 50.0


@dataclass(frozen=True)
class TaskSpec:
    """Everything about a task that can be known without building its data."""

    name: str
    version: int
    title: str
    summary: str
    variants: Mapping[str, str]  # variant name -> one-line description
    metrics: tuple[Metric, ...]
    primary_metric: str
    targets: tuple[Target, ...]
    budgets: Mapping[str, Budget]
    profiles: tuple[str, ...]
    throughput_unit: str
    entry_point: str  # "module:attribute" of the Task implementation, resolved lazily
    reference_method: str = "reference"
    floor_method: str = "floor"
    # Methods that bound the board from above rather than compete (centralised training for
    # federated tasks, a scripted oracle, non-private training): shown, never ranked as entrants.
    ceiling_methods: tuple[str, ...] = ()
    solution: str = ""  # what a method must hand to ctx.checkpoint, in words
    # Tasks whose solution is data: the solution's methods (no arguments) that give it as plain data
    # (numbers, strings, bytes, numpy arrays). The *method's* process calls them at every checkpoint,
    # on the training clock, and sends only what they return: the harness scores that data and no
    # process that scores runs a line of the solution's code (and no work can hide in scoring).
    solution_data: tuple[str, ...] = ()
    # CPU seconds one evaluation of the reference's solution takes in the scoring process (its code
    # answering the task's questions: predicting held-out inputs), measured. A solution's code gets
    # EVAL_CPU_FREE times that free per evaluation; what it uses beyond is charged to its training
    # time (work it deferred to scoring is still work), and past EVAL_CPU_CAP times the evaluation is
    # refused. Unused by tasks whose solution is data (no solution code runs to score them). The
    # default covers a predictor's first evaluation (unpickling it imports torch: about 0.8 s).
    evaluation_cpu_seconds: float = 1.0
    data: str = ""  # where the data comes from, in words
    extras: tuple[str, ...] = field(default_factory=tuple)  # pip extras the task needs
    # Methods that need more than the task's extras: method -> (pip extra, top-level module it imports),
    # so that ``advbench list`` can say what to install without importing anything.
    method_extras: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # Seeds s with the same s // seeds_per_replicate are one replicate and not independent samples
    # (gnn: the 10 folds of one repeat of 10-fold CV share their training data). The leaderboard's
    # mean and 95% interval are then over replicate means.
    seeds_per_replicate: int = 1
    # How far `advbench reproduce` lets a re-run's metric differ from its record, relative to the
    # recorded value's magnitude (plus the same amount absolute). 1e-6: a seeded run on the same
    # machine and threads repeats itself; a task whose scores depend on timing says more.
    reproduce_tolerance: float = 1e-6
    # Whether the harness's side of the task (building its data, scoring) uses torch, so that the
    # harness imports and seeds it before the run. False (pc, qnn, automl) spares each run's harness
    # process torch's import (about 1 s here); a test checks that such a task's runs never import it.
    harness_uses_torch: bool = True
    # Whether the harness's own computing for the task runs on the profile's device: its ``build``
    # then takes ``device`` (``"cpu"`` or ``"cuda"``), as dp-fedavg's, whose mechanism trains every
    # client in the harness. Otherwise the harness's side runs on the CPU whatever the profile.
    harness_device: bool = False

    def __post_init__(self) -> None:
        if self.seeds_per_replicate < 1:
            raise ValueError(f"{self.name}: seeds_per_replicate must be at least 1")
        names = [m.name for m in self.metrics]
        if self.primary_metric not in names:
            raise ValueError(f"{self.name}: primary metric {self.primary_metric!r} not in {names}")
        for t in self.targets:
            if t.metric not in names:
                raise ValueError(f"{self.name}: target on unknown metric {t.metric!r}")
            if t.variant not in self.variants:
                raise ValueError(f"{self.name}: target on unknown variant {t.variant!r}")
            if t.budget not in BUDGETS:
                raise ValueError(f"{self.name}: target on unknown budget {t.budget!r}")
        for b in self.budgets.values():
            for v in b.variants:
                if v not in self.variants:
                    raise ValueError(f"{self.name}: budget {b.name} names unknown variant {v!r}")

    @property
    def id(self) -> str:
        """Versioned id, as gymnasium writes them: ``transformer-v1``."""
        return f"{self.name}-v{self.version}"

    def metric(self, name: str) -> Metric:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)

    @property
    def primary(self) -> Metric:
        return self.metric(self.primary_metric)

    def role(self, method: str, builtin: bool = False) -> str:
        """``reference``, ``floor``, ``ceiling``; any other method ``built-in`` when it ships with
        advbench (an alternative such as maddpg's ``iddpg``), else ``plugin`` (third-party code)."""
        if method == self.reference_method:
            return "reference"
        if method == self.floor_method:
            return "floor"
        if method in self.ceiling_methods:
            return "ceiling"
        return "built-in" if builtin else "plugin"

    def targets_for(self, budget: str, variant: str) -> list[Target]:
        return [t for t in self.targets if t.budget == budget and t.variant == variant]
