from __future__ import annotations

import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    # The README's test command runs one test process per core (pytest -n auto): each then gets one
    # thread for the libraries it loads itself (torch, BLAS), or two processes of two threads each
    # would fight over two cores. Runs started through the harness take ADVBENCH_THREADS (default 1).
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import pytest  # noqa: E402

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
