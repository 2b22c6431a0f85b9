"""The one code path that runs (task, method, profile, budget, seed) and returns a record.

The CLI, the asv suite and the tests all come through :func:`run`. The harness process builds the
problem and keeps its held-out part; the method runs in a fresh *method process* that receives
the training view only, and each solution it checkpoints is scored through a fresh *scoring
process* that never receives an answer (see :mod:`advbench.sandbox` and :mod:`advbench.solution`).
The harness owns the training clock and the caps: it kills a method that runs past the budget's
wall-time cap (``time_cap``) or the memory cap (``out_of_memory``), records one that dies
(``crashed``), raises or hands in something unscorable (``error``), and goes on with the next run.

``isolation="in-process"`` runs the method in this process instead, for debugging with a
debugger; its records say so, and the leaderboard does not rank them.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import gc
import hashlib
import math
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from advbench import records
from advbench.environment import manifest
from advbench.errors import BudgetExhausted, UsageError, unknown
from advbench.profiles import default_threads, get_profile, thread_env
from advbench.registry import MethodEntry, Registry, default_registry, load_object
from advbench.solution import LocalSolution, RemoteSolution, SolutionError, recv_plain
from advbench.spec import BUDGETS, TaskSpec
from advbench.task import Problem, Seal

ISOLATIONS = ("process", "in-process")
FAILED = ("time_cap", "out_of_memory", "crashed", "error")
SEAL_ENV = "ADVBENCH_SEAL_KEY"
START_TIMEOUT = 300.0  # seconds a fresh process may take to import its libraries and the method
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def default_memory_cap() -> int:
    """Three quarters of this machine's memory: a method past it is stopped before the OS steps in."""
    import psutil

    return int(psutil.virtual_memory().total * 0.75)


def seal_key() -> bytes:
    """The key of sealed runs, from ``ADVBENCH_SEAL_KEY`` (at least 16 characters)."""
    key = os.environ.get(SEAL_ENV, "")
    if len(key) < 16:
        raise UsageError(f"--sealed needs a secret key of at least 16 characters in {SEAL_ENV} "
                         f"(it has {len(key)}); e.g. export {SEAL_ENV}=$(python -c 'import secrets; print(secrets.token_hex(16))')")
    return key.encode()


def resolve_variants(spec: TaskSpec, budget: str, variants: list[str] | None) -> list[str]:
    if not variants:
        return list(spec.budgets[budget].variants)
    for v in variants:
        if v not in spec.variants:
            raise unknown("variant", v, spec.variants, where=f" for task {spec.name!r}")
    return list(variants)


def check_run_args(reg: Registry, task: str, method: str | None, profile: str | None, budget: str):
    """Validate every name before anything heavy is imported; return (spec, method, profile)."""
    spec = reg.spec(task)
    if budget not in BUDGETS:
        raise unknown("budget", budget, BUDGETS)
    entry = reg.method(spec.name, method or spec.reference_method)
    _check_importable(entry)
    prof = get_profile(profile or spec.profiles[0])
    if prof.name not in spec.profiles:
        raise UsageError(f"task {spec.name!r} does not support profile {prof.name!r}. Valid profiles: {', '.join(spec.profiles)}")
    ok, why = prof.available()
    if not ok:
        raise UsageError(f"profile {prof.name!r} is not available here: {why}. "
                         f"Valid profiles for {spec.name!r}: {', '.join(spec.profiles)}")
    return spec, entry, prof


def _check_importable(entry: MethodEntry) -> None:
    """A method whose module cannot be found is the method's fault, said before any work."""
    import importlib.util

    module = entry.target.partition(":")[0]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise UsageError(f"method {entry.id!r} (registered by package {entry.source!r}) points at module "
                         f"{module!r}, which cannot be imported; reinstall or fix that package")


def first_meeting(curve: list[dict[str, Any]], metric: str, target: Any, m: Any) -> dict[str, Any] | None:
    """The first evaluation that meets the target (MLPerf's time-to-train reads its seconds)."""
    for point in curve:
        if target.met(point["metrics"].get(metric), m):
            return point
    return None


def time_to_target(curve: list[dict[str, Any]], metric: str, target: Any, m: Any) -> float | None:
    point = first_meeting(curve, metric, target, m)
    return None if point is None else point["train_seconds"]


# ---------------------------------------------------------------------------------------------
# Processes that run method code
# ---------------------------------------------------------------------------------------------

CONFINEMENT_ENV = "ADVBENCH_CONFINEMENT"  # "0": method and scoring processes without namespaces or Landlock


def confinement_on() -> bool:
    """Whether method and scoring processes are confined (namespaces, Landlock) where the system allows."""
    return os.environ.get(CONFINEMENT_ENV, "1") != "0"


@functools.lru_cache(maxsize=1)
def namespace_prefix() -> tuple[str, ...]:
    """``unshare ...``: the command that starts a process in new user, PID and network namespaces, or ``()``.

    Method code (a method, or a solution in the scoring process) runs as the user who runs the
    harness, and a process of the same user may read another's memory (``/proc/PID/mem``: where
    held-out answers are) and signal it (kill the sweep). In a user namespace of its own it holds no
    capability over the harness, so the kernel refuses both even to root; in a PID namespace of its
    own the harness's PID names nothing, and when the process ends, everything it started ends
    with it (a ``setsid`` daemon included). In a network namespace of its own it has loopback
    only (the sandbox brings ``lo`` up): nothing to download, nowhere to send. Needs util-linux's
    ``unshare`` and user namespaces (root, or unprivileged ones allowed); where either is missing,
    or with ADVBENCH_CONFINEMENT=0, processes start without them and each record's
    ``confinement`` says so.
    """
    if not confinement_on():
        return ()
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    for mapping in ("--map-current-user", "--map-root-user"):  # the first needs util-linux 2.38
        # --mount-proc: a /proc of its PID namespace (with the host's, /proc/self names nothing and
        # CUDA cannot start), which also hides every process but its own.
        cmd = (unshare, "--user", mapping, "--pid", "--net", "--fork", "--mount-proc", "--kill-child")
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            if subprocess.run([*cmd, "true"], capture_output=True, timeout=10).returncode == 0:
                return cmd
    return ()


def namespaces() -> list[str]:
    """The namespaces method processes start in here (the record's ``namespaces``)."""
    return ["user", "pid", "net"] if namespace_prefix() else []


class Child:
    """A fresh ``python -m advbench.sandbox ROLE`` process in its own session, and its socket.

    It starts in user, PID and network namespaces of its own where the system allows
    (:func:`namespace_prefix`) and writes files only beneath its TMPDIR where Landlock does (the
    sandbox confines itself when the job says ``confine``). Its ``TMPDIR`` is a folder of its own,
    removed with it: what a method leaves in temporary files (a Ray instance's session, compiler
    caches) is gone even when the method was killed.
    """

    def __init__(self, role: str, job: dict[str, Any], threads: int) -> None:
        from multiprocessing.connection import Connection

        ours, theirs = socket.socketpair()
        self.scratch = tempfile.mkdtemp(prefix=f"advbench-{role}-")
        env = {k: v for k, v in os.environ.items() if k != SEAL_ENV}  # the key never leaves the harness
        env.update(thread_env(threads), TMPDIR=self.scratch)
        self.proc = subprocess.Popen(
            [*namespace_prefix(), sys.executable, "-m", "advbench.sandbox", role, str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), env=env, start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=2,  # a method's prints go to stderr, never into --json output
        )
        theirs.close()
        self.conn = Connection(ours.detach())
        self.conn.send(job)
        self.pid = self.proc.pid

    def dead(self) -> str | None:
        """None while running, else how it ended ("exit code 1", "killed by signal SIGSEGV")."""
        code = self.proc.poll()
        if code is None:
            return None
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"killed by signal {signal.Signals(-code).name}"
            return f"killed by signal {-code}"
        return f"exit code {code}"

    def tree(self) -> list[Any]:
        import psutil

        try:
            parent = psutil.Process(self.pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.Error:
            return []

    def rss(self) -> int:
        """Resident bytes of the process and its children. Reads ``/proc/PID/statm`` (microseconds);
        the list of children, which needs a scan of every process, is refreshed twice a second."""
        now = time.monotonic()
        if now - getattr(self, "_tree_at", -1.0) > 0.5:
            self._pids = [p.pid for p in self.tree()] or [self.pid]
            self._tree_at = now
        total = 0
        for pid in self._pids:
            try:
                with open(f"/proc/{pid}/statm", "rb") as f:
                    total += int(f.read().split()[1]) * PAGE
            except (OSError, ValueError, IndexError):
                continue
        return total

    def cpu_seconds(self) -> float:
        import psutil

        total = 0.0
        for p in self.tree():
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self.conn.close()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def wait_ready(self, timeout: float) -> float:
        """Seconds the process spent starting (as it reports), or raises with how it failed."""
        deadline = time.monotonic() + timeout
        while not self.conn.poll(0.05):
            dead = self.dead()
            if dead:
                raise SolutionError(dead)
            if time.monotonic() > deadline:
                raise SolutionError(f"not ready after {timeout:g} s")
        msg = recv_plain(self.conn)
        if msg[0] == "error":
            raise SolutionError(str(msg[1]))
        self.writable = [str(p) for p in msg[2]]  # where it may write files ([]: anywhere)
        return float(msg[1])


class MemoryWatch:
    """Samples a process tree's resident memory every 20 ms; kills it past ``cap`` bytes."""

    def __init__(self, child: Child, cap: int, interval: float = 0.02) -> None:
        self.child, self.cap, self.interval = child, cap, interval
        self.peak, self.exceeded = 0, False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            rss = self.child.rss()
            self.peak = max(self.peak, rss)
            if rss > self.cap and not self.exceeded:
                self.exceeded = True
                self.child.kill()

    def __enter__(self) -> "MemoryWatch":
        self.peak = self.child.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


class PeakRSS:
    """Peak resident memory of this process while the block runs (in-process mode)."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval, self.peak = interval, 0
        self._stop = threading.Event()

    def _rss(self) -> int:
        import psutil

        return psutil.Process().memory_info().rss

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> "PeakRSS":
        self.peak = self._rss()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------

@dataclass
class Scorer:
    """Scores solution pickles through a scoring process, started on first use and again after a
    solution killed it; metrics are computed here by the task's ``evaluate``."""

    task_impl: Any
    problem: Problem
    profile: Any
    job: dict[str, Any]
    threads: int
    eval_timeout: float
    child: Child | None = None
    start_seconds: float = 0.0
    transfer_seconds: float = 0.0
    transfer_bytes: int = 0

    _ready: bool = False

    def start(self) -> None:
        """Spawn the scoring process without waiting for it (it imports while the method does)."""
        if self.child is None or self.child.dead():
            if self.child is not None:
                self.child.kill()
            self._t0 = time.perf_counter()
            self.child, self._ready = Child("solution", self.job, self.threads), False

    def _host(self) -> Child:
        self.start()
        assert self.child is not None
        if not self._ready:
            self.child.wait_ready(START_TIMEOUT)
            self._ready = True
            self.start_seconds += time.perf_counter() - self._t0
        return self.child

    def score(self, blob: bytes) -> dict[str, float]:
        """Metrics of the solution pickled in ``blob``; raises SolutionError or ValueError."""
        try:
            host = self._host()
        except SolutionError as exc:
            raise SolutionError(f"the scoring process could not start: {exc}") from exc
        handle = RemoteSolution(host.conn, time.monotonic() + self.eval_timeout, host.dead)
        t0 = time.perf_counter()
        try:
            handle.load(blob)
        except SolutionError:
            self._reset()
            raise
        self.transfer_seconds += time.perf_counter() - t0
        self.transfer_bytes += len(blob)
        try:
            return finite_metrics(self.task_impl.evaluate(handle, self.problem, self.profile))
        except SolutionError:
            self._reset()  # it may hang or be dead: a fresh one for the next checkpoint
            raise
        finally:
            if self.child is not None and not self.child.dead():
                with contextlib.suppress(SolutionError, OSError):
                    handle.drop()

    def _reset(self) -> None:
        if self.child is not None:
            self.child.kill()
            self.child = None

    def close(self) -> None:
        self._reset()


def finite_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        value = float(v)
        if not math.isfinite(value):
            raise ValueError(f"metric {k!r} is {value}: the solution's output could not be scored")
        out[k] = value
    return out


def _reason(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


# ---------------------------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    """What happened while the method trained, whichever way it ran."""

    status: str = "ok"
    error: str | None = None
    train_seconds: float = 0.0
    work: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    curve: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    eval_seconds: float = 0.0  # scoring at checkpoints, clock stopped
    final_eval_seconds: float = 0.0
    peak_rss: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # isolation overheads
    asks: int = 0  # questions the method asked the task (ctx.ask)
    writable: list[str] = field(default_factory=list)  # where the method process may write files ([]: anywhere)


def run(task: str, method: str | None = None, *, profile: str | None = None, budget: str = "quick",
        seed: int = 0, variant: str | None = None, results_dir: Path | None = Path("results"),
        registry: Registry | None = None, on_progress: Callable[[float, float], None] | None = None,
        sealed: bool = False, isolation: str = "process", threads: int | None = None,
        memory_cap: int | None = None, keep_artifacts: bool = False) -> dict[str, Any]:
    """Run one (task, variant, method, profile, budget, seed); write and return its record.

    ``results_dir=None`` keeps the record in memory only; with ``keep_artifacts`` the files the task
    made ride along under ``"_artifacts"`` for :func:`store` to write where the record lands (a
    worker of a pool or of a Ray cluster returns its record to the driver this way).
    """
    reg = registry or default_registry()
    spec, entry, prof = check_run_args(reg, task, method, profile, budget)
    variant = resolve_variants(spec, budget, [variant] if variant else None)[0]
    if isolation not in ISOLATIONS:
        raise unknown("isolation", isolation, ISOLATIONS)
    key = seal_key() if sealed else None
    threads = default_threads() if threads is None else threads
    memory_cap = default_memory_cap() if memory_cap is None else memory_cap
    bud = spec.budgets[budget]

    hardware = prof.activate(seed, threads=threads)
    t0 = time.perf_counter()
    try:
        task_impl = load_object(spec.entry_point)()
        problem = task_impl.build(variant=variant, seed=seed, budget=bud, seal=Seal(seed, key))
    except ModuleNotFoundError as exc:  # an extra that is not installed: say which
        extras = ",".join(spec.extras) or "all"
        raise UsageError(f"task {spec.name!r} needs the package {exc.name!r}, which is not installed: "
                         f"pip install 'advbench[{extras}]'") from exc
    setup_seconds = time.perf_counter() - t0

    eval_timeout = max(120.0, bud.max_seconds)
    gc.collect()
    if isolation == "process":
        outcome = _run_isolated(spec, entry, prof, bud, variant, seed, problem, task_impl, threads,
                                memory_cap, eval_timeout, on_progress)
    else:
        outcome = _run_in_process(spec, entry, prof, bud, variant, seed, problem, task_impl, on_progress)

    peak_cuda = None
    if prof.torch_device == "cuda" and isolation == "in-process":
        import torch

        peak_cuda = int(torch.cuda.max_memory_allocated())

    rec = _record(spec, entry, prof, budget, variant, seed, threads, key, isolation, outcome, setup_seconds,
                  getattr(problem, "description", {}), hardware, memory_cap, peak_cuda)
    if results_dir is not None:
        store(rec, Path(results_dir), problem.artifacts if rec["status"] == "ok" else {})
    elif keep_artifacts:
        rec["_artifacts"] = dict(problem.artifacts) if rec["status"] == "ok" else {}
    return rec


def store(rec: dict[str, Any], results_dir: Path, artifacts: dict[str, bytes] | None = None) -> dict[str, Any]:
    """Write ``rec`` (and its artifacts: given, or carried under ``"_artifacts"``) into ``results_dir``,
    atomically; sets ``rec["artifacts"]`` and ``rec["path"]``."""
    carried = rec.pop("_artifacts", None)
    artifacts = carried if artifacts is None else artifacts
    rec["artifacts"] = records.save_artifacts(Path(results_dir), rec, artifacts or {})
    rec["path"] = str(records.save(Path(results_dir), rec))
    return rec


def failed_record(task: str, method: str | None, *, profile: str | None, budget: str, seed: int,
                  variant: str | None, status: str, error: str, sealed: bool = False, isolation: str = "process",
                  threads: int | None = None, memory_cap: int | None = None,
                  registry: Registry | None = None) -> dict[str, Any]:
    """The record of a run that never reported back (its worker died, twice): the same fields as any
    record, with ``status`` and ``error`` saying why, and no metrics."""
    if status not in FAILED:
        raise ValueError(f"a failed record's status is one of {', '.join(FAILED)}, not {status!r}")
    reg = registry or default_registry()
    spec, entry, prof = check_run_args(reg, task, method, profile, budget)
    variant = resolve_variants(spec, budget, [variant] if variant else None)[0]
    key = seal_key() if sealed else None
    threads = default_threads() if threads is None else threads
    outcome = Outcome(status=status, error=error)
    return _record(spec, entry, prof, budget, variant, seed, threads, key, isolation, outcome, 0.0, {},
                   {"threads": threads}, default_memory_cap() if memory_cap is None else memory_cap, None)


def _record(spec: TaskSpec, entry: MethodEntry, prof: Any, budget: str, variant: str, seed: int, threads: int,
            key: bytes | None, isolation: str, outcome: Outcome, setup_seconds: float, description: dict[str, Any],
            hardware: dict[str, Any], memory_cap: int, peak_cuda: int | None) -> dict[str, Any]:
    bud = spec.budgets[budget]
    metrics, status = outcome.metrics, outcome.status
    targets = []
    for t in spec.targets_for(budget, variant):
        m = spec.metric(t.metric)
        value = metrics.get(t.metric)
        first = first_meeting(outcome.curve, t.metric, t, m)
        targets.append({"metric": t.metric, "threshold": t.threshold,
                        "direction": "at most" if t.upper_bound(m) else "at least",
                        "value": value, "met": bool(status in ("ok", "time_cap") and t.met(value, m)),
                        # MLPerf's time to train, and the same point in the method's own steps and
                        # in work units (rounds, env steps: what the task counts)
                        "time_to_target_seconds": None if first is None else first["train_seconds"],
                        "step_to_target": None if first is None else first["step"],
                        "work_to_target": None if first is None else first["work"]})
    primary_targets = [t for t in targets if t["metric"] == spec.primary_metric]
    train_seconds = outcome.train_seconds
    rec: dict[str, Any] = {
        "schema_version": records.SCHEMA_VERSION,
        "run_id": uuid.uuid4().hex[:12],
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds"),
        "task": spec.name, "task_version": spec.version, "task_id": spec.id, "variant": variant,
        "method": entry.name, "method_source": entry.source,
        "method_role": spec.role(entry.name),
        "profile": prof.name, "budget": budget, "seed": seed, "threads": threads,
        "sealed": key is not None,
        "seal_key_sha256": hashlib.sha256(key).hexdigest() if key is not None else None,
        "isolation": isolation,
        # How method code was confined (the same for the method and the scoring process): namespaces,
        # and the only folders it could write files in ([]: anywhere its user can).
        "confinement": ({"namespaces": namespaces(), "writes_only_beneath": outcome.writable}
                        if isolation == "process" else None),
        "status": status, "error": outcome.error,
        "primary_metric": spec.primary_metric,
        "metrics": metrics,
        "targets": targets,
        "targets_met": all(t["met"] for t in targets) if targets else None,  # None: no target applies
        "time_to_target_seconds": primary_targets[0]["time_to_target_seconds"] if primary_targets else None,
        "timings": {"setup_seconds": setup_seconds, "train_seconds": train_seconds,
                    "eval_seconds": outcome.final_eval_seconds, "checkpoint_eval_seconds": outcome.eval_seconds,
                    **outcome.timings},
        "throughput": {"value": (outcome.work / train_seconds) if train_seconds > 0 and outcome.work else None,
                       "unit": spec.throughput_unit, "work": outcome.work},
        "asks": outcome.asks,
        "memory": {"peak_rss_bytes": outcome.peak_rss, "peak_cuda_bytes": peak_cuda, "cap_bytes": memory_cap,
                   "measured": "method process and its children" if isolation == "process" else "harness process"},
        "curve": outcome.curve,
        "config": {"budget": {"name": bud.name, "max_seconds": bud.max_seconds, "limits": dict(bud.limits)},
                   "method": outcome.config, "data": description},
        "environment": manifest(hardware),
    }
    return _finite(rec)


def _job(spec: TaskSpec, prof: Any, seed: int, threads: int) -> dict[str, Any]:
    """What both kinds of child get: where to import from, what they may not import, the profile."""
    heldout_module = spec.entry_point.partition(":")[0]
    return {"sys_path": list(sys.path), "blocked_modules": [heldout_module], "profile": prof.name,
            "seed": seed, "threads": threads, "confine": confinement_on()}


def _run_isolated(spec, entry, prof, bud, variant, seed, problem, task_impl, threads, memory_cap,
                  eval_timeout, on_progress) -> Outcome:
    out = Outcome()
    base = _job(spec, prof, seed, threads)
    try:
        train_blob = pickle.dumps(problem.train, protocol=5)
    except Exception as exc:  # the task's fault, not the method's
        raise RuntimeError(f"task {spec.name!r}: its training view cannot be pickled: {exc}") from exc
    scorer = Scorer(task_impl, problem, prof, base, threads, eval_timeout)
    t0 = time.perf_counter()
    worker = Child("method", {**base, "method": entry.target, "train": train_blob, "spec": spec,
                              "budget": bud, "variant": variant}, threads)
    scorer.start()
    last_blob: bytes | None = None
    last_metrics: dict[str, float] | None = None
    try:
        with MemoryWatch(worker, memory_cap) as mem:
            try:
                out.timings["method_start_seconds"] = worker.wait_ready(START_TIMEOUT)
                out.writable = worker.writable
            except SolutionError as exc:
                out.status, out.error = ("crashed" if worker.dead() else "error"), f"the method could not start: {exc}"
                return out
            out.timings["method_spawn_seconds"] = time.perf_counter() - t0
            with contextlib.suppress(SolutionError):
                scorer._host()  # ready before the clock starts; a failure shows at the first score
            clock = _Clock()
            worker.conn.send("go")
            hard_cap = bud.max_seconds + max(1.0, 0.05 * bud.max_seconds)
            done = False
            while not done:
                if not worker.conn.poll(0.02):
                    if mem.exceeded or worker.dead():
                        _ended(out, worker, mem, memory_cap)
                        break
                    if clock.seconds() > hard_cap:
                        worker.kill()
                        out.status = "time_cap"
                        out.error = f"killed after {clock.seconds():.1f} s of training (cap {bud.max_seconds:g} s)"
                        break
                    continue
                try:
                    msg = recv_plain(worker.conn)
                    kind = msg[0]
                except (EOFError, OSError):
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        worker.proc.wait(timeout=5)
                    _ended(out, worker, mem, memory_cap)
                    break
                except Exception as exc:  # noqa: BLE001 - a method process speaking out of turn
                    out.status, out.error = "error", f"the method's process broke the protocol: {_reason(exc)}"
                    break
                if kind == "checkpoint":
                    _, step, work, blob = msg
                    now = clock.seconds()
                    cpu0 = worker.cpu_seconds()
                    pause0 = time.perf_counter()
                    point: dict[str, Any] = {"step": step, "train_seconds": now, "work": float(work)}
                    try:
                        point["metrics"] = last_metrics = scorer.score(blob)
                        last_blob = blob
                    except Exception as exc:  # noqa: BLE001 - the solution's fault: keep training
                        point["metrics"], point["error"] = {}, _reason(exc)
                    out.curve.append(point)
                    spent = time.perf_counter() - pause0
                    out.eval_seconds += spent
                    # Scoring time is not training time, unless the method kept computing meanwhile.
                    clock.pause(max(0.0, spent - (worker.cpu_seconds() - cpu0)))
                    out.work = float(work)
                    with contextlib.suppress(OSError):
                        worker.conn.send(("ack", clock.seconds() > bud.max_seconds))
                elif kind == "ask":
                    out.asks += 1
                    with contextlib.suppress(OSError):
                        worker.conn.send(_answer(problem, msg[1] if len(msg) > 1 else None))
                elif kind == "config":
                    if isinstance(msg[1], dict):
                        out.config.update(msg[1])
                elif kind == "progress":
                    if on_progress is not None:
                        on_progress(float(msg[1]), float(msg[2]))
                elif kind == "done":
                    _, work, blob = msg
                    out.work, out.train_seconds = float(work), clock.seconds()
                    if blob is not None and blob != last_blob:
                        t1 = time.perf_counter()
                        try:
                            last_metrics = scorer.score(blob)
                            out.curve.append({"step": "final", "train_seconds": out.train_seconds,
                                              "work": out.work, "metrics": last_metrics})
                        except Exception as exc:  # noqa: BLE001
                            out.status, out.error = "error", "evaluation failed: " + _reason(exc)
                        out.final_eval_seconds = time.perf_counter() - t1
                    elif last_blob is None:
                        out.status = "error"
                        out.error = "the method returned no solution and never called ctx.checkpoint"
                    elif clock.seconds() > bud.max_seconds:
                        out.status = "time_cap"
                    done = True
                elif kind == "error":
                    out.status, out.error, out.work = "error", str(msg[1]), float(msg[2])
                    done = True
                else:
                    out.status, out.error = "error", f"the method's process sent an unknown message {kind!r}"
                    break
            if not out.train_seconds:
                out.train_seconds = clock.seconds()
        out.peak_rss = mem.peak
    finally:
        worker.kill()
        scorer.close()
    if out.status == "time_cap" and last_metrics is not None:
        out.metrics = dict(last_metrics)  # the last checkpoint is what the run is scored on
    elif out.status == "ok":
        out.metrics = dict(last_metrics or {})
    out.timings.update(scorer_start_seconds=scorer.start_seconds, transfer_seconds=scorer.transfer_seconds,
                       transfer_bytes=scorer.transfer_bytes)
    return out


def _ended(out: Outcome, worker: Child, mem: MemoryWatch, memory_cap: int) -> None:
    """The method's process is gone before it said "done": killed for memory, or it died."""
    if mem.exceeded:
        out.status = "out_of_memory"
        out.error = (f"the method's processes used {mem.peak / 2**20:.0f} MiB, over the cap of "
                     f"{memory_cap / 2**20:.0f} MiB")
    else:
        out.status, out.error = "crashed", f"the method's process died: {worker.dead() or 'it closed its socket'}"


class _Clock:
    """Training seconds as the harness measures them: wall time since "go", minus scoring pauses."""

    def __init__(self) -> None:
        self._start, self._paused = time.perf_counter(), 0.0

    def pause(self, seconds: float) -> None:
        self._paused += seconds

    def seconds(self) -> float:
        return time.perf_counter() - self._start - self._paused


def _run_in_process(spec, entry, prof, bud, variant, seed, problem, task_impl, on_progress) -> Outcome:
    """Debugging only: the method shares this process, and with it the held-out data."""
    out = Outcome()
    method_fn = entry.load()
    clock = _Clock()
    last: dict[str, Any] = {}

    def submit(kind: str, payload: tuple) -> Any:
        if kind == "config":
            out.config.update(payload[0])
        elif kind == "progress" and on_progress is not None:
            on_progress(*payload)
        elif kind == "ask":
            out.asks += 1
            return _answer(problem, payload[0])
        elif kind == "checkpoint":
            step, work, blob = payload
            point: dict[str, Any] = {"step": step, "train_seconds": clock.seconds(), "work": float(work)}
            t1 = time.perf_counter()
            try:
                point["metrics"] = last["metrics"] = _score_local(task_impl, problem, prof, blob)
                last["blob"] = blob
            except Exception as exc:  # noqa: BLE001
                point["metrics"], point["error"] = {}, _reason(exc)
            out.curve.append(point)
            spent = time.perf_counter() - t1
            out.eval_seconds += spent
            clock.pause(spent)
            return clock.seconds() > bud.max_seconds
        return None

    from advbench.context import RunContext, dump_solution

    with PeakRSS() as mem:
        ctx = RunContext(spec=spec, variant=variant, seed=seed, budget=bud, profile=prof, submit=submit)
        clock = _Clock()
        try:
            solution = method_fn(problem.train, ctx)
            out.train_seconds = clock.seconds()
            blob = None if solution is None else dump_solution(solution)
            if blob is not None and blob != last.get("blob"):
                t1 = time.perf_counter()
                try:
                    last["metrics"] = _score_local(task_impl, problem, prof, blob)
                    out.curve.append({"step": "final", "train_seconds": out.train_seconds, "work": ctx.work,
                                      "metrics": last["metrics"]})
                except Exception as exc:  # noqa: BLE001
                    out.status, out.error = "error", "evaluation failed: " + _reason(exc)
                out.final_eval_seconds = time.perf_counter() - t1
            elif "metrics" not in last:
                out.status, out.error = "error", "the method returned no solution and never called ctx.checkpoint"
        except BudgetExhausted:
            out.train_seconds, out.status = clock.seconds(), "time_cap"
        except Exception as exc:  # noqa: BLE001 - a method's bug must not take the harness down
            out.train_seconds = clock.seconds()
            out.status, out.error = "error", _reason(exc) + "\n" + traceback.format_exc(limit=-6)
        out.work = ctx.work
    out.peak_rss = mem.peak
    if out.status in ("ok", "time_cap") and "metrics" in last:
        out.metrics = dict(last["metrics"])
    elif out.status == "time_cap":
        out.status, out.error = "error", "the time cap was reached before any checkpoint was scored"
    return out


def _answer(problem: Problem, question: Any) -> tuple[str, Any]:
    """The task's oracle on one ``ctx.ask``: ("answer", value), or ("refused", why) for the method."""
    if problem.oracle is None:
        return "refused", "this task answers no questions (its problem has no oracle)"
    try:
        return "answer", problem.oracle(question)
    except (ValueError, TypeError, KeyError, IndexError) as exc:  # a malformed or refused question
        return "refused", str(exc) or type(exc).__name__


def _score_local(task_impl: Any, problem: Problem, prof: Any, blob: bytes) -> dict[str, float]:
    return finite_metrics(task_impl.evaluate(LocalSolution(pickle.loads(blob)), problem, prof))


def _finite(obj: Any) -> Any:
    """JSON has no NaN/inf: store them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj
