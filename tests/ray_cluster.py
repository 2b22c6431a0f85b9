"""Run inside a loopback-only network namespace (tests/test_executors.py starts it with
``ip netns exec``): start a Ray head and worker nodes on 127.0.0.1, run advbench commands against
them one after another, shut the cluster down.

    python tests/ray_cluster.py WORKERS STEPS.json

``STEPS.json`` is a list of ``{"args": [...], "kill_driver_after": N, "results": DIR, "env": {...}}``: each step
runs ``advbench ARGS --executor ray --address <head>``; with ``kill_driver_after`` the driver is
killed (SIGKILL) as soon as DIR holds N records, as a sweep killed midway. Prints one line per
step: ``step I: exit CODE`` or ``step I: killed after K records``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def main() -> None:
    from ray.cluster_utils import Cluster

    workers, steps = int(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
    # The head schedules nothing (0 CPUs): every run goes to a worker node, as on a real cluster.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    for _ in range(workers):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        for i, step in enumerate(steps):
            cmd = [sys.executable, "-m", "advbench.cli", *step["args"], "--executor", "ray", "--address",
                   cluster.address]
            if step.get("kill_driver_after"):
                results = Path(step["results"])
                driver = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                while driver.poll() is None and len(list(results.rglob("*.json"))) < step["kill_driver_after"]:
                    time.sleep(0.05)
                driver.send_signal(signal.SIGKILL)
                driver.wait()
                print(f"step {i}: killed after {len(list(results.rglob('*.json')))} records", flush=True)
                continue
            t0 = time.perf_counter()
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                                 env={**os.environ, **step.get("env", {})})
            seconds = time.perf_counter() - t0
            sys.stderr.write(f"--- step {i} ({seconds:.1f} s)\n{res.stderr}")
            print(f"step {i}: exit {res.returncode}", flush=True)
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main()
