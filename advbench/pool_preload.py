"""Imported once by the local pool's fork server (:mod:`advbench.executors`), before any run.

Every worker is forked from that server, so what is imported here is imported once per sweep instead
of once per run: torch (about 1.3 s a process here), numpy, the runner and the registry of installed
tasks and methods (which reads every distribution's metadata). Only harness code and libraries are
loaded: no task is built and nothing of a run exists when the server forks a worker, so each worker
starts as a fresh harness process would, without the wait.
"""

from __future__ import annotations

import importlib.util

for _name in ("numpy", "torch"):
    if importlib.util.find_spec(_name) is not None:
        importlib.import_module(_name)

import advbench.cli  # noqa: E402,F401 - the driver's own module: a worker re-imports its main script
import advbench.runner  # noqa: E402,F401
from advbench.registry import default_registry  # noqa: E402

default_registry()
