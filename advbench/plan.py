"""One run of a sweep, as one value from the plan to the board: :class:`Run`.

The CLI plans a ``list[Run]``; executors run each one (here, on a pool, on Ray) and a failed one
gets a record through :func:`advbench.runner.failed_record`; resume skips a run whose ``key()``
already has an ok record; the leaderboard and the gate group records by :data:`GROUP`, the key
without seed and isolation. So the identity of a run is defined here and nowhere else.
Imports nothing heavy: ``advbench list`` and ``--help`` stay light.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# What makes runs comparable seeds of one group on a board (and in the gate).
GROUP = ("task", "task_version", "variant", "profile", "budget", "threads", "sealed", "method")


@dataclass(frozen=True)
class Run:
    """One (task version, variant, method, profile, budget, seed) with the settings that change its
    result or its standing: threads, sealing, isolation; and the caps it runs under."""

    task: str
    task_version: int
    variant: str
    method: str
    profile: str
    budget: str
    seed: int
    threads: int = 1
    sealed: bool = False
    isolation: str = "process"
    memory_cap: int | None = None
    max_processes: int | None = None
    needs_gpu: bool = False

    def group(self) -> tuple:
        return tuple(getattr(self, f) for f in GROUP)

    def key(self) -> tuple:
        """Two runs with equal keys are the same run: resume skips the second."""
        return (*self.group(), self.seed, self.isolation)

    def label(self) -> str:
        return f"{self.task}:{self.method} {self.variant} {self.profile} seed {self.seed}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> "Run":
        """The run a record is of (records of every schema: missing fields take their old defaults)."""
        threads = rec.get("threads") or ((rec.get("environment") or {}).get("hardware") or {}).get("threads") or 1
        isolation = rec.get("isolation") or ("in-process" if rec.get("schema_version") == 1 else "process")
        return cls(task=rec["task"], task_version=int(rec["task_version"]), variant=rec["variant"],
                   method=rec["method"], profile=rec["profile"], budget=rec["budget"], seed=int(rec["seed"]),
                   threads=int(threads), sealed=bool(rec.get("sealed")), isolation=isolation)
