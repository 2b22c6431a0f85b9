"""Scores the harness computes itself: no process that scores runs a method's code.

* Every task, run through the jailed harness with its floor: the harness process never imports
  the method's module (nor any of advbench's baselines), and a task whose solution is data
  (``TaskSpec.solution_data``) starts no process that opens a solution at all.
* The scoring processes' protocol: the clean one never opens a solution and runs only
  ``compute``; the one that holds a solution refuses ``compute``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from multiprocessing import Pipe
from pathlib import Path

import pytest

from advbench.registry import default_registry
from advbench.solution import dumps_plain, loads_plain, serve

TASKS = sorted(default_registry().task_names())

PROBE = r'''
import dataclasses, json, sys
from advbench.registry import default_registry
from advbench.runner import run

# What the harness imports does not depend on how long a floor trains: the floors that train for
# their whole quick budget train for a sliver of it here (the fixture: 140 s instead of about 230).
SHORTER = {"adversarial": {"epochs": 1}, "multimodal": {"epochs": 1}, "lora": {"steps": 10},
           "maml": {"meta_iterations": 100}, "ewc": {"epochs_per_task": 1}}
# Nor on how much the harness scores or retrains: darts's retraining (three seeds of 30 epochs, 35 s)
# runs one epoch per seed here, and lora's frozen-encoder floor embeds and scores a tenth of the
# sentences (24 s -> about 4).
import functools
import advbench.tasks.darts.heldout as darts_heldout
import advbench.tasks.lora.heldout as lora_heldout
darts_heldout.retrain = functools.partial(darts_heldout.retrain,
                                          recipe=dataclasses.replace(darts_heldout.RETRAIN, epochs=1))
lora_heldout.N_TRAIN, lora_heldout.N_TEST = 200, 100
reg = default_registry()
out = {}
for task in sys.argv[1:]:
    spec = reg.spec(task)
    if task in SHORTER:
        quick = spec.budgets["quick"]
        quick = dataclasses.replace(quick, limits={**quick.limits, **SHORTER[task]})
        reg._specs[task] = spec = dataclasses.replace(spec, budgets={**spec.budgets, "quick": quick})
    package = reg.method(task, spec.floor_method).target.split(":")[0]
    rec = run(task, spec.floor_method, budget="quick", seed=0, results_dir=None, threads=1)
    out[task] = {"status": rec["status"], "error": rec.get("error"),
                 "method_modules": sorted(m for m in sys.modules
                                          if m == package or m.startswith("advbench.baselines")),
                 "solution_cpu_seconds": rec["timings"].get("solution_cpu_seconds"),
                 "data": bool(spec.solution_data)}
print("PROBE " + json.dumps(out))
'''


@pytest.fixture(scope="module")
def floors(tmp_path_factory):
    """Every task's floor, quick budget, through the jailed harness in a fresh interpreter (so that
    nothing this test process imported counts): what the harness process imported by the end."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("ADVBENCH_SEAL_KEY", None)
    proc = subprocess.run([sys.executable, "-c", PROBE, *TASKS], capture_output=True, text=True, env=env,
                          cwd=tmp_path_factory.mktemp("probe"), timeout=900)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("PROBE ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("PROBE "):])


@pytest.mark.parametrize("task", TASKS)
def test_the_harness_never_imports_method_code(floors, task):
    got = floors[task]
    assert got["status"] == "ok", got["error"]
    assert got["method_modules"] == [], got
    if got["data"]:  # no process opened the solution: nothing of its code ran to score it
        assert got["solution_cpu_seconds"] == 0.0, got


def _serving(clean: bool):
    ours, theirs = Pipe()
    thread = threading.Thread(target=serve, args=(theirs,), kwargs={"clean": clean}, daemon=True)
    thread.start()

    def ask(msg):
        ours.send(msg)
        return loads_plain(ours.recv_bytes())

    return ask, thread


def test_the_clean_scoring_process_never_opens_a_solution_and_only_computes():
    ask, thread = _serving(clean=True)
    import pickle

    assert ask(("load", pickle.dumps(3.0)))[0] == "error"
    assert ask(("request", ("call", "predict", (), {})))[0] == "error"
    assert ask(("request", ("fetch",)))[0] == "error"
    assert ask(("request", ("compute", "math:sqrt", (16.0,), {}))) == ("ok", 4.0)


def test_a_scoring_process_that_holds_a_solution_refuses_compute():
    import pickle

    ask, _ = _serving(clean=False)
    assert ask(("load", pickle.dumps(3.0)))[0] == "ok"
    reply = ask(("request", ("compute", "math:sqrt", (16.0,), {})))
    assert reply[0] == "error" and "clean scoring process" in reply[1]
    assert ask(("request", ("fetch",))) == ("ok", 3.0)


def test_plain_data_round_trips_and_nothing_else_does():
    assert loads_plain(dumps_plain({"a": [1, 2.5, "x"]})) == {"a": [1, 2.5, "x"]}
    with pytest.raises(TypeError):
        dumps_plain(Path("/"))
