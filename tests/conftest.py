from __future__ import annotations

import pytest

import toy
from advbench.registry import Registry

pytest_plugins = ["ci_never_skips"]

TOY_METHODS = ("estimate", "zero", "crash", "slow", "hang", "exit_3", "hard_exit", "segfault", "hog_memory",
               "nan", "wrong_type", "no_solution", "unpicklable", "train_while_scored")


@pytest.fixture
def toy_registry() -> Registry:
    """The installed registry plus the in-process toy task and its methods."""
    reg = Registry()
    reg.register_task(toy.SPEC)
    for name in TOY_METHODS:
        reg.register_method("toy", name.replace("_", "-"), f"toy_methods:{name}")
    return reg
