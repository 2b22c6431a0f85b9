"""The committed reference records (``results/runs/``) for the tests that check what the board claims.

Read through ``advbench.records.iter_records``, so a test sees exactly the records the leaderboard
reads (invalid ones left out), once per test session.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from advbench import records

RESULTS = Path(__file__).resolve().parents[1] / "results"


@functools.lru_cache(maxsize=1)
def _all() -> tuple[dict[str, Any], ...]:
    return tuple(records.iter_records(RESULTS))


def committed(spec: Any, *, method: str | None = None, variant: str | None = None, budget: str = "full",
              ok_only: bool = True) -> list[dict[str, Any]]:
    """Records of ``spec``'s current version (``spec.id``) on ``budget``, by method, variant and seed;
    only finished (``ok``) runs unless ``ok_only`` is False."""
    out = [r for r in _all() if r["task_id"] == spec.id and r["budget"] == budget
           and (method is None or r["method"] == method) and (variant is None or r["variant"] == variant)
           and (r["status"] == "ok" or not ok_only)]
    return sorted(out, key=lambda r: (r["method"], r["variant"], r["seed"]))
