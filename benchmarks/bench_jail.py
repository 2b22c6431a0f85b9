"""asv benchmarks of the jail's overhead (written by hand; the task modules are generated).

Each method and scoring process starts in bubblewrap (advbench/jail.py). What that costs, side by
side with the same process started without the jail (``--no-jail``) in one run:

* ``time_process_start``: one scoring process from spawn to ready (the interpreter, the site, the
  profile's thread settings; no method imported). Goal: the jail adds under 0.3 s.
* ``time_quick_run``: a whole quick run of pc's reference on sachs (two jails: method and scorer,
  build and scoring included), the shortest real run: the jail's share of a run.
"""

import tempfile
from pathlib import Path


def _job():
    import sys

    return {"sys_path": list(sys.path), "blocked_modules": [], "profile": "cpu", "seed": 0, "threads": 1}


class JailOverhead:
    params = ["jail", "no-jail"]
    param_names = ["isolation"]
    timeout = 300
    repeat = (5, 10, 120.0)
    number = 1

    def setup(self, isolation):
        from advbench.jail import JailSpec, RunLimits, hidden_paths

        self.limits = RunLimits(2 * 2**30, 512, 1) if isolation == "jail" else None
        self.spec = JailSpec(self.limits, hidden=hidden_paths([])) if isolation == "jail" else None
        self.logs = Path(tempfile.mkdtemp(prefix="advbench-bench-jail-"))

    def teardown(self, isolation):
        import shutil

        if self.limits is not None:
            self.limits.close()
        shutil.rmtree(self.logs, ignore_errors=True)

    def time_process_start(self, isolation):
        from advbench.jail import Child

        child = Child("solution", _job(), 1, self.spec, self.logs)
        try:
            child.wait_ready(120)
        finally:
            child.kill()

    def time_quick_run(self, isolation):
        from advbench.runner import run

        rec = run("pc", "reference", variant="sachs-like", results_dir=None,
                  isolation="process" if isolation == "jail" else "no-jail")
        assert rec["status"] == "ok", rec["error"]
