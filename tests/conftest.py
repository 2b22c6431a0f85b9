from __future__ import annotations

import pytest

import toy_task
from advbench.registry import Registry


@pytest.fixture
def toy_registry() -> Registry:
    """The installed registry plus the in-process toy task and its methods."""
    reg = Registry()
    reg.register_task(toy_task.SPEC)
    for name in ("estimate", "zero", "crash", "slow", "cheat", "wrong_type"):
        reg.register_method("toy", name, f"toy_task:{name}")
    return reg
