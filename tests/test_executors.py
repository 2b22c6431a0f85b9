"""Executors: a pool of local worker processes (--jobs) and a Ray cluster (--executor ray).

The Ray tests start a real cluster (a head and two worker nodes) inside a network namespace that
holds only loopback: Ray 2.60 binds its node to the host's address otherwise, and no test may send
traffic off loopback. Where no namespace can be made (no ``ip``, no privilege), they skip and say why.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from advbench import records

ROOT = Path(__file__).resolve().parents[1]


SEAL_KEY = "ray-must-never-log-this-key-0123456789"


def advbench(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "advbench.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def key(rec):
    return (rec["task"], rec["method"], rec["variant"], rec["seed"])


@pytest.fixture(scope="module")
def host_killer_site(tmp_path_factory) -> str:
    """A folder holding a plugin whose method SIGKILLs its parent, the process hosting its run."""
    target = tmp_path_factory.mktemp("site")
    target.chmod(0o755)  # installed code is world-readable, as in site-packages: the jail runs as uid 65534
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(target), str(ROOT / "tests" / "fixtures" / "host-killer-plugin")],
                   check=True, capture_output=True, timeout=300)
    return str(target)


@pytest.fixture(scope="module")
def host_killer_env(host_killer_site) -> dict[str, str]:
    """The host killer's environment, with method processes started outside the jail (ADVBENCH_JAIL=0,
    as ``--no-jail`` does): there it does kill its host, the way a lost node or the OS's OOM killer
    would, and that is the path these tests take."""
    return dict(os.environ, PYTHONPATH=host_killer_site, ADVBENCH_THREADS="1", ADVBENCH_JAIL="0")


def test_in_its_namespaces_a_method_cannot_kill_the_sweep(host_killer_site, tmp_path):
    """The default, one run after another in the driver's process: the host killer's parent is
    outside its jail's PID namespace, so its kill reaches nothing of the harness; the run is crashed
    and the sweep goes on."""
    res = advbench("run", "--task", "pc", "--all-methods", "--variant", "sachs-like", "--results", str(tmp_path),
                   env=dict(os.environ, PYTHONPATH=host_killer_site, ADVBENCH_THREADS="1"))
    assert res.returncode == 1, res.stderr  # a failed run, and the sweep went on
    by_method = {r["method"]: r for r in records.iter_records(tmp_path)}
    assert by_method["reference"]["status"] == by_method["floor"]["status"] == "ok"
    dead = by_method["kills-its-host"]
    # its parent in its PID namespace is the jail's init, which takes no signal from inside: refused
    assert dead["status"] == "error" and "PermissionError" in dead["error"], dead["error"]
    assert "pid" in dead["jail"]["namespaces"]


def test_a_pool_of_worker_processes_writes_the_records_a_sequential_sweep_writes(tmp_path):
    args = ["run", "--task", "pc", "--all-methods", "--seeds", "2", "--threads", "1"]
    seq = advbench(*args, "--results", str(tmp_path / "seq"))
    pool = advbench(*args, "--jobs", "2", "--results", str(tmp_path / "pool"))
    assert seq.returncode == 0 and pool.returncode == 0, pool.stderr
    a = {key(r): r for r in records.iter_records(tmp_path / "seq")}
    b = {key(r): r for r in records.iter_records(tmp_path / "pool")}
    assert set(a) == set(b) and len(a) == 8
    for k in a:
        assert a[k]["metrics"] == b[k]["metrics"] and a[k]["status"] == b[k]["status"] == "ok", k
        assert a[k]["config"] == b[k]["config"] and a[k]["curve"][-1]["metrics"] == b[k]["curve"][-1]["metrics"]
        # Each record says how many runs went at a time: seconds made two at a time on two cores are
        # not seconds made alone, and the speed board says which are which.
        assert (a[k]["environment"]["runs_at_once"], b[k]["environment"]["runs_at_once"]) == (1, 2), k
    again = advbench(*args, "--jobs", "2", "--results", str(tmp_path / "pool"))
    assert again.returncode == 0 and "skipped 8 run(s)" in again.stderr  # resume works on the pool too
    for where, note in (("seq", False), ("pool", True)):
        board = advbench("leaderboard", "--results", str(tmp_path / where), "--no-write")
        assert board.returncode == 0, board.stderr
        assert ("ran beside others (2 at a time)" in board.stdout) is note, board.stdout[-2000:]
    site = advbench("leaderboard", "--results", str(tmp_path / "pool"), "--format", "html", "--out", str(tmp_path / "site"))
    assert site.returncode == 0, site.stderr
    assert any("ran beside others (2 at a time)" in p.read_text() for p in (tmp_path / "site").rglob("*.html"))


def test_a_sealed_sweep_on_the_pool_writes_the_records_a_sequential_sealed_sweep_writes(tmp_path):
    """The workers get each run's sealed material from the driver (over the fork server's pipe), never
    the key: the same held-out data, the same metrics and the key's fingerprint as run in the driver."""
    import hashlib

    args = ["run", "--task", "pc", "--variant", "sachs-like", "--seeds", "2", "--sealed", "--threads", "1"]
    env = dict(os.environ, ADVBENCH_SEAL_KEY=SEAL_KEY)
    seq = advbench(*args, "--results", str(tmp_path / "seq"), env=env)
    pool = advbench(*args, "--jobs", "2", "--results", str(tmp_path / "pool"), env=env)
    assert seq.returncode == 0 and pool.returncode == 0, pool.stderr
    a = {key(r): r for r in records.iter_records(tmp_path / "seq")}
    b = {key(r): r for r in records.iter_records(tmp_path / "pool")}
    assert set(a) == set(b) and len(a) == 2
    fingerprint = hashlib.sha256(SEAL_KEY.encode()).hexdigest()
    for k in a:
        assert a[k]["sealed"] and b[k]["sealed"] and b[k]["status"] == "ok", k
        assert a[k]["seal_key_sha256"] == b[k]["seal_key_sha256"] == fingerprint, k
        assert a[k]["metrics"] == b[k]["metrics"], k
    assert SEAL_KEY not in "".join(p.read_text() for p in (tmp_path / "pool").rglob("*") if p.is_file())


def test_a_pool_worker_killed_by_its_method_is_retried_once_then_recorded_as_crashed(host_killer_env, tmp_path):
    scratch = tmp_path / "tmp"  # the killed worker's run cannot remove its folders: they go here
    scratch.mkdir()
    res = advbench("run", "--task", "pc", "--all-methods", "--variant", "sachs-like", "--jobs", "2", "--results",
                   str(tmp_path), env=dict(host_killer_env, TMPDIR=str(scratch)))
    assert res.returncode == 1, res.stderr  # a failed run, and the sweep went on
    by_method = {r["method"]: r for r in records.iter_records(tmp_path)}
    assert set(by_method) == {"reference", "floor", "kills-its-host"}, res.stderr[-3000:]
    assert by_method["reference"]["status"] == by_method["floor"]["status"] == "ok"
    dead = by_method["kills-its-host"]
    assert dead["status"] == "crashed" and "died, 2 times" in dead["error"] and dead["metrics"] == {}
    assert dead["environment"]["packages"] and dead["seed"] == 0  # a full record, as any other


@pytest.mark.parametrize("args, words", [
    (["--address", "127.0.0.1:6379"], "--address goes with --executor ray"),
    (["--executor", "ray", "--jobs", "2"], "--jobs is the local executor's"),
    (["--executor", "ray", "--in-process"], "takes neither --in-process nor --asv"),
    (["--jobs", "2", "--in-process"], "takes neither --in-process nor --asv"),
    (["--executor", "spark"], "spark"),
    (["--jobs", "0"], "0"),
])
def test_bad_executor_options_are_one_line_usage_errors_before_any_work(tmp_path, args, words):
    res = advbench("run", "--task", "pc", "--results", str(tmp_path), *args)
    assert res.returncode == 2 and words in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------------------------------
# Ray, on a loopback-only cluster
# ---------------------------------------------------------------------------------------------

def test_a_ray_sweep_on_a_loopback_cluster(loopback_namespace, host_killer_env, short_tmp, tmp_path):
    """One cluster (a head and two worker nodes), one results store, four steps:

    1. a sweep of pc and gnn (reference, 3 seeds) whose driver is killed after 4 records (gnn: a
       torch task, so the records compare torch training on Ray and locally; one of the cheaper ones,
       as this test is on CI's critical path);
    2. the same command again: it skips what the first wrote and finishes the rest;
    3. the floor of both tasks, 3 seeds: 2 tasks x 2 methods x 3 seeds in all (pc has 2 variants);
    4. pc on seed 3 with every method, one of which kills its Ray worker: retried, then crashed,
       the others ok;
    5. a sealed run (pc, seed 5): its key must appear nowhere in Ray's session folders (the run's
       material travels as the task's argument, never through runtime_env).
    Then every record is checked against a local run of the same seed.
    """
    import json

    results = tmp_path / "ray"
    base = ["run", "--task", "pc", "--task", "gnn", "--seeds", "3", "--results", str(results)]
    steps = [{"args": base, "kill_driver_after": 4, "results": str(results)}, {"args": base},
             {"args": [*base, "--method", "floor"]},
             {"args": ["run", "--task", "pc", "--all-methods", "--variant", "sachs-like", "--seed", "3",
                       "--results", str(results)]},
             {"args": ["run", "--task", "pc", "--variant", "sachs-like", "--seed", "5", "--sealed", "--results",
                       str(tmp_path / "sealed")], "env": {"ADVBENCH_SEAL_KEY": SEAL_KEY}}]
    (tmp_path / "steps.json").write_text(json.dumps(steps))
    res = subprocess.run([*loopback_namespace, sys.executable, str(ROOT / "tests" / "ray_cluster.py"), "2",
                          str(tmp_path / "steps.json")], capture_output=True, text=True, timeout=900, cwd=ROOT,
                         env=dict(host_killer_env, RAY_AUTH_MODE="disabled", TMPDIR=short_tmp))
    lines = res.stdout.splitlines()
    assert lines[0].startswith("step 0: killed after") and lines[1:] == ["step 1: exit 0", "step 2: exit 0",
                                                                         "step 3: exit 1", "step 4: exit 0"], \
        res.stdout + res.stderr
    (sealed,) = records.iter_records(tmp_path / "sealed")
    assert sealed["sealed"] and sealed["status"] == "ok"
    searched = 0
    # Ray's sessions, and what the killed driver's runs left, are under the cluster's TMPDIR.
    for session in (Path(short_tmp) / "ray").glob("session_*"):
        if session.is_symlink():
            continue
        for path in session.rglob("*"):
            if path.is_file() and not path.is_symlink():
                with contextlib.suppress(OSError):
                    assert SEAL_KEY.encode() not in path.read_bytes(), path
                    searched += 1
    assert searched > 10  # Ray's logs of this cluster were there, and none holds the key
    assert "already have an ok record" in res.stderr and "run(s) on Ray (127.0.0.1:" in res.stderr

    recs = list(records.iter_records(results))
    counts = Counter(key(r) for r in recs)
    assert set(counts.values()) == {1}, "every run written once: none lost to the kill, none twice"
    assert not list(results.rglob("*.tmp"))
    sweep = [r for r in recs if r["seed"] < 3]
    assert len(sweep) == 18 and all(r["status"] == "ok" for r in sweep)
    last = {r["method"]: r for r in recs if r["seed"] == 3}
    assert last["reference"]["status"] == last["floor"]["status"] == "ok"
    dead = last["kills-its-host"]
    assert dead["status"] == "crashed" and "Ray worker running this run died, 2 times" in dead["error"], dead["error"]

    local = advbench("run", "--task", "pc", "--task", "gnn", "--all-methods", "--seed", "1", "--threads", "1",
                     "--results", str(tmp_path / "local"), env=dict(os.environ, ADVBENCH_THREADS="1"))
    assert local.returncode == 0, local.stderr
    on_ray = {key(r): r for r in sweep}
    for rec in records.iter_records(tmp_path / "local"):
        theirs = on_ray[key(rec)]
        assert theirs["metrics"] == rec["metrics"] and theirs["config"] == rec["config"], key(rec)
        assert theirs["threads"] == rec["threads"] == 1 and theirs["curve"][-1]["metrics"] == rec["curve"][-1]["metrics"]


@pytest.mark.parametrize("address, words", [
    ("127.0.0.1:1", "no Ray cluster answers at --address 127.0.0.1:1"),
    ("not an address", "is not HOST:PORT"),
    ("10.255.255.1:6379x", "is not HOST:PORT"),
])
def test_an_unreachable_or_malformed_ray_address_is_a_one_line_error_within_seconds(tmp_path, address, words):
    pytest.importorskip("ray")
    import time

    t0 = time.perf_counter()
    res = advbench("run", "--task", "pc", "--executor", "ray", "--address", address, "--results", str(tmp_path),
                   timeout=60)
    assert res.returncode == 2 and words in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert time.perf_counter() - t0 < 30 and not (tmp_path / "runs").exists()


def test_ctrl_c_stops_a_pool_sweep_at_once_and_a_rerun_resumes(tmp_path):
    """Ctrl-C cancels queued runs and kills running workers within seconds; nothing half-done is
    recorded, no worker and no temporary folder is left behind, and the same command again finishes
    the rest."""
    import signal
    import time

    import psutil

    cmd = [sys.executable, "-m", "advbench.cli", "run", "--task", "pc", "--variant", "sachs-like", "--seeds", "8",
           "--jobs", "2", "--results", str(tmp_path)]
    # As from a terminal: SIGINT neither blocked nor ignored in the driver. A child inherits both from
    # its parent, and a test process that has hosted hundreds of tests (libraries that block or ignore
    # signals in their threads) once passed SIGINT on blocked: the driver then never saw the Ctrl-C.
    inherited = {k: v for k, v in (line.split(":\t") for line in Path("/proc/self/status").read_text().splitlines()
                                   if line.startswith(("SigBlk", "SigIgn")))}

    def as_from_a_terminal() -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    temporary = tmp_path / "tmp"  # the driver's temporary folder: what the sweep leaves there is seen
    temporary.mkdir()
    driver = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, ADVBENCH_THREADS="1", TMPDIR=str(temporary)),
                              preexec_fn=as_from_a_terminal)
    deadline = time.monotonic() + 240
    while driver.poll() is None and not list((tmp_path / "runs").rglob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = [p for p in psutil.Process(driver.pid).children(recursive=True)]
    driver.send_signal(signal.SIGINT)
    t0 = time.perf_counter()
    driver.wait(timeout=60)
    assert time.perf_counter() - t0 < 15 and driver.returncode in (1, 130), (driver.stderr.read(), inherited)
    done = list(records.iter_records(tmp_path))
    assert 1 <= len(done) < 8 and all(r["status"] == "ok" for r in done)
    time.sleep(1)

    def alive(p: psutil.Process) -> bool:
        with contextlib.suppress(psutil.Error):
            return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        return False

    assert not [p.cmdline() for p in workers if alive(p)]
    assert not list(temporary.iterdir())  # no run's logs or scratch folders left behind by the killed workers
    again = advbench(*cmd[3:], env=dict(os.environ, ADVBENCH_THREADS="1"))
    assert again.returncode == 0 and f"skipped {len(done)} run(s)" in again.stderr, again.stderr
    assert len(list(records.iter_records(tmp_path))) == 8


KILL_A_WORKER_MID_RUN = """
import json, os, sys, threading, time
from pathlib import Path
from advbench.executors import _fork_server, _in_worker_process, kill_worker
from advbench.plan import Run

tmp = Path(sys.argv[1])
_fork_server()
live, lock, done = set(), threading.Lock(), []
request = Run("transformer", 1, "copy", "reference", "cpu", "quick", 0)  # a run long enough to kill mid-way
worker = threading.Thread(target=lambda: done.append(_in_worker_process(request, live, lock)))
worker.start()
deadline = time.monotonic() + 120
while time.monotonic() < deadline and not list(tmp.rglob("advbench-method-*")):
    time.sleep(0.1)
time.sleep(2)  # the method is training
with lock:
    for proc in live:
        kill_worker(proc)
worker.join(timeout=60)
print(json.dumps(done))
"""


def test_a_worker_killed_mid_run_leaves_nothing_in_the_temporary_folder(tmp_path):
    """Ctrl-C kills running workers (SIGKILL to each one's process group): what the worker's run had
    made (its logs, the method's and the scorer's scratch folders) lies inside the folder the
    driver's thread removes, so nothing of it stays in /tmp; nor does the fork server's socket
    folder once the driver has exited. (A driver of its own: this test's process ends without
    running its exit handlers.)"""
    import json

    res = subprocess.run([sys.executable, "-c", KILL_A_WORKER_MID_RUN, str(tmp_path)], capture_output=True, text=True,
                         timeout=300, cwd=ROOT, env=dict(os.environ, TMPDIR=str(tmp_path)))
    assert res.returncode == 0, res.stderr
    done = json.loads(res.stdout.strip().splitlines()[-1])
    assert done and done[0][0] is None and "-9" in done[0][1], done
    assert not list(tmp_path.iterdir()), sorted(p.name for p in tmp_path.iterdir())


def test_a_killed_driver_takes_its_pool_workers_with_it(tmp_path, request):
    import shutil
    import signal
    import tempfile
    import time

    import psutil

    cmd = [sys.executable, "-m", "advbench.cli", "run", "--task", "pc", "--variant", "sachs-like", "--seeds", "4",
           "--jobs", "2", "--results", str(tmp_path)]
    # A driver killed with -9 cannot remove its workers' folders nor its fork server's socket folder:
    # they go to a folder of this test's own, removed after. A short one: under a temporary folder
    # too deep for a socket's path (this test's own, under pytest-xdist), the socket's would go to /tmp.
    scratch = Path(tempfile.mkdtemp(prefix="advbench-test-"))
    request.addfinalizer(lambda: shutil.rmtree(scratch, ignore_errors=True))
    driver = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=dict(os.environ, TMPDIR=str(scratch)))
    deadline = time.monotonic() + 120
    workers: list = []
    # The workers are forked by the pool's fork server, a child of the driver: every descendant counts.
    while time.monotonic() < deadline and len(workers) < 4:
        with contextlib.suppress(psutil.Error):
            workers = psutil.Process(driver.pid).children(recursive=True)
        time.sleep(0.1)
    assert any("forkserver" in " ".join(p.cmdline()) for p in workers), [p.cmdline() for p in workers]
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    gone, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive, [p.cmdline() for p in alive]
