"""Where a sweep's runs execute: one after another, on a pool of local worker processes, or on Ray.

Every executor runs the same :func:`advbench.runner.run` (method and scoring in their own
processes, held-out data only in the process that builds and scores the task) and hands the
record back to the driver, which alone writes the results store, atomically
(:func:`advbench.runner.store`). So a record is the same whichever executor made it, two workers
never write the same file, and resuming (the driver skips runs that already have an ok record)
works across executors.

* ``local`` with ``jobs=1``: in the driver's process, with live progress (the default).
* ``local`` with ``jobs=N``: N worker processes at a time, each running one run and returning its
  record through a file. Each worker is forked from a fork server (``multiprocessing``'s) that has
  imported what every run's harness imports (torch, numpy, the runner, the registry) once, before
  any run: a worker starts with nothing of another run in it, without paying for those imports.
* ``ray``: each run is a Ray task that declares its resources (``num_cpus`` = the run's threads, a
  GPU for the ``cuda`` profile, the memory cap) on an existing cluster (``address``) or a local one.

A worker that dies before it reports (killed, out of memory at the node, its node lost) is retried
once; if the retry dies too, the driver writes a ``crashed`` record for the run and the sweep goes on.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterable

from advbench.environment import RUNS_AT_ONCE_VARIABLE
from advbench.errors import UsageError
from advbench.plan import Run

EXECUTORS = ("local", "ray")
RETRIES = 1  # a run whose worker dies is retried once, then recorded as crashed


def seal_of(run: Run) -> tuple[bytes, str] | None:
    """A sealed run's per-run material and the key's fingerprint (the key stays with the driver)."""
    if not run.sealed:
        return None
    from advbench.runner import seal_for_run, seal_key

    return seal_for_run(seal_key(), run.task, run.variant, run.seed)


def execute(request: Run, seal: tuple[bytes, str] | None = None, *, keep_artifacts: bool = True,
            **kwargs: Any) -> dict[str, Any]:
    """Run one planned run here and return its record (artifacts carried along, nothing written).
    ``seal``: the run's sealed material (:func:`seal_of`), as a worker receives it."""
    from advbench.runner import run_planned

    return run_planned(request, results_dir=None, keep_artifacts=keep_artifacts, seal=seal, **kwargs)


def failed(request: Run, status: str, why: str) -> dict[str, Any]:
    """The record of a run whose worker never reported back."""
    from advbench.runner import failed_record

    return failed_record(request, status, why, seal=seal_of(request))


# ---------------------------------------------------------------------------------------------
# Local: a pool of worker processes
# ---------------------------------------------------------------------------------------------

def run_local_pool(requests: Iterable[Run], jobs: int, on_record: Callable[[dict[str, Any]], None]) -> None:
    """Each run in a fresh worker process (forked from the pool's fork server), ``jobs`` at a time.

    Called from a script of one's own, that script needs multiprocessing's ``if __name__ ==
    "__main__":`` guard: a worker imports the driver's main module, as every multiprocessing child
    does (the ``advbench`` command's is only ``from advbench.cli import main``).

    Workers run in sessions of their own (Ctrl-C reaches the driver only). When the driver is
    interrupted (Ctrl-C, or any error), queued runs are cancelled and running workers killed at once,
    and the interruption goes on up: nothing half-done is recorded, and a rerun resumes. A worker
    whose driver dies (kill -9) is killed by the kernel (PR_SET_PDEATHSIG), and its jails with it.
    """
    lock = threading.Lock()
    stopping = threading.Event()
    live: set[Any] = set()

    def one(request: Run) -> None:
        for _ in range(RETRIES + 1):
            if stopping.is_set():
                return
            rec, why = _in_worker_process(request, live, lock, runs_at_once=at_once)
            if rec is not None or stopping.is_set():
                break
        else:
            rec = failed(request, "crashed", f"the worker process running this run died, {RETRIES + 1} times: {why}")
        if rec is None:
            return
        with lock:  # the driver alone writes the store, one record at a time
            if not stopping.is_set():
                on_record(rec)

    requests = list(requests)
    _fork_server()  # settled here, before the pool's threads use the temporary folder
    at_once = min(jobs, len(requests))  # what each record says ran at a time: the pool's width, at most
    pool = ThreadPoolExecutor(max_workers=jobs)
    futures = [pool.submit(one, r) for r in requests]
    try:
        for future in futures:
            future.result()
    except BaseException:
        stopping.set()
        pool.shutdown(wait=False, cancel_futures=True)
        with lock:
            for proc in list(live):
                kill_worker(proc)
        pool.shutdown(wait=True)
        raise
    pool.shutdown(wait=True)


# What the fork server imports once, before any run (it imports only what is installed here).
PRELOAD = ("advbench.pool_preload",)


SOCKET_PATH_MAX = 107  # bytes in a Unix socket's path (Linux's sun_path, less its terminating NUL)
_fork_server_lock = threading.Lock()
_fork_server_context: Any = None


def _fork_server():
    """``multiprocessing``'s fork server, preloading :data:`PRELOAD`. It is started by the first
    worker, serves every later one of this process, and exits with this process (its pipe to it
    closes); a worker dies with it (PR_SET_PDEATHSIG), so a driver killed with -9 takes its workers
    along. Call it once before starting threads: the first call settles where its socket lives,
    later calls only return it."""
    global _fork_server_context
    import multiprocessing
    from multiprocessing import util

    with _fork_server_lock:
        if _fork_server_context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(list(PRELOAD))
            # The server listens on a socket in a folder multiprocessing makes under the temporary
            # folder (pymp-XXXXXXXX/listener-XXXXXXXX, removed when this process exits). Under a TMPDIR
            # too deep for a socket's path, that folder goes to /tmp instead of failing every run.
            saved = tempfile.tempdir
            if len(os.path.join(tempfile.gettempdir(), "pymp-12345678", "listener-12345678")) > SOCKET_PATH_MAX:
                tempfile.tempdir = "/tmp"
            try:
                util.get_temp_dir()
            finally:
                tempfile.tempdir = saved
            _fork_server_context = context
        return _fork_server_context


def _in_worker_process(request: Run, live: set | None = None, lock: threading.Lock | None = None, *,
                       runs_at_once: int = 1) -> tuple[dict[str, Any] | None, str]:
    seal = seal_of(request)
    with tempfile.TemporaryDirectory(prefix="advbench-worker-") as tmp:
        job, out, log = Path(tmp) / "request.json", Path(tmp) / "record.pickle", Path(tmp) / "worker.log"
        job.write_text(json.dumps(asdict(request)))
        # A sealed run's material goes to the worker over the fork server's pipe: never a file, never
        # the environment.
        material = None if seal is None else [seal[0].hex(), seal[1]]
        # The worker's temporary files (its run's logs and scratch folders) go inside this folder, which
        # this thread removes: a worker killed mid-run (Ctrl-C kills running workers) leaves nothing in /tmp.
        worker_tmp = Path(tmp) / "tmp"
        worker_tmp.mkdir()
        proc = _fork_server().Process(target=_worker_main, name=f"advbench-worker-{request.task}",
                                      args=(str(job), str(out), str(log), str(worker_tmp), runs_at_once, material))
        proc.start()
        if live is not None and lock is not None:
            with lock:
                live.add(proc)
        try:
            proc.join()
        finally:
            if live is not None and lock is not None:
                with lock:
                    live.discard(proc)
        code = proc.exitcode
        proc.close()
        if out.exists():
            return pickle.loads(out.read_bytes()), ""  # written by our own worker, never by method code
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
        return None, f"exit code {code} {(tail or [''])[0]}".strip()


def kill_worker(proc: Any) -> None:
    """SIGKILL to a worker's process group (the worker and whatever of the harness's it started),
    or to the worker itself if it has not made its group yet."""
    for kill in (os.killpg, os.kill):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            kill(proc.pid, signal.SIGKILL)


def _worker_main(job: str, out: str, log: str, tmp: str, runs_at_once: int, material: list[str] | None) -> None:
    """One run in a worker forked from the fork server; its record goes to ``out``."""
    from advbench.jail import die_with_parent
    from advbench.records import write_atomic

    os.setsid()  # a group of its own: Ctrl-C reaches the driver only, and the driver kills the group
    die_with_parent()  # a worker whose fork server is gone (its driver killed) stops, and its jails with it
    if os.getppid() == 1:
        os._exit(1)
    # Its output to its own log (the driver reports the last line if it fails); nothing from the terminal.
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(fd, 2)
    os.environ["TMPDIR"] = tmp
    os.environ[RUNS_AT_ONCE_VARIABLE] = str(runs_at_once)
    tempfile.tempdir = None  # gettempdir() reads TMPDIR again
    request = Run(**json.loads(Path(job).read_text()))
    seal = None if material is None else (bytes.fromhex(material[0]), material[1])
    write_atomic(Path(out), pickle.dumps(execute(request, seal), protocol=5))


# ---------------------------------------------------------------------------------------------
# Ray
# ---------------------------------------------------------------------------------------------

def ray_available() -> None:
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise UsageError("--executor ray needs Ray, which is not installed: pip install 'advbench[ray]'")


def check_ray_address(address: str, timeout: float = 5.0) -> None:
    """A cluster address that is malformed or that nothing answers at is a one-line usage error,
    said within ``timeout`` seconds (Ray itself would wait minutes, printing only its warnings)."""
    import socket

    if address in ("local", "auto"):
        return
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = rest.rstrip("/").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--address {address!r} is not HOST:PORT (e.g. 127.0.0.1:6379, or ray://HOST:10001)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise UsageError(f"no Ray cluster answers at --address {address} ({exc.strerror or type(exc).__name__} "
                         f"within {timeout:g} s); start one with `ray start --head`, or leave --address out for a "
                         "local one of this run's own") from exc


def run_ray(requests: Iterable[Run], on_record: Callable[[dict[str, Any]], None], *,
            address: str | None = None) -> None:
    """Each request as a Ray task on the cluster at ``address`` (None: start a local one). A sealed
    run's per-run material (an HMAC of the key for that run, :func:`seal_of`) travels as the
    task's argument; the key itself never leaves the driver, and nothing goes through ``runtime_env``
    (which Ray writes into its logs)."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # ray 2.60 turns token auth on by default
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address or "local", include_dashboard=False, log_to_driver=False, configure_logging=False)
    remote = ray.remote(max_retries=RETRIES, retry_exceptions=False)(_ray_execute)
    pending: dict[Any, Run] = {}
    try:
        for request in requests:
            options: dict[str, Any] = {"num_cpus": request.threads, "num_gpus": 1 if request.needs_gpu else 0}
            if request.memory_cap:
                options["memory"] = int(request.memory_cap)
            seal = seal_of(request)
            material = None if seal is None else [seal[0].hex(), seal[1]]
            pending[remote.options(**options).remote(asdict(request), material)] = request
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            request = pending.pop(ref)
            try:
                rec = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:  # the harness raised in the worker: not a lost worker
                rec = failed(request, "error", f"the run raised in its Ray worker: {str(exc).strip().splitlines()[-1]}")
            except ray.exceptions.RayError as exc:  # worker or node died, and so did the retry
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                rec = failed(request, "crashed", f"the Ray worker running this run died, {RETRIES + 1} times: "
                                                 f"{type(exc).__name__}: {first}")
            on_record(rec)
    except BaseException:  # Ctrl-C or an error: cancel what is queued, stop what runs, then go on up
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        raise
    finally:
        if started_here:
            ray.shutdown()


def _ray_execute(request: dict[str, Any], material: list[str] | None = None) -> dict[str, Any]:
    os.environ[RUNS_AT_ONCE_VARIABLE] = "0"  # the record says the cluster decided what ran beside it
    return execute(Run(**request), None if material is None else (bytes.fromhex(material[0]), material[1]))

