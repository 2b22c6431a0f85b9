"""The one code path that runs (task, method, profile, budget, seed) and returns a record.

The CLI, the asv suite and the tests all come through :func:`run`. The harness process builds the
problem and keeps its held-out part; the method runs in a fresh *method process* that receives
the training view only, and each solution it checkpoints is scored through a fresh *scoring
process* that never receives an answer (see :mod:`advbench.sandbox` and :mod:`advbench.solution`),
once the method's process has ended: nothing of scoring reaches a method, not even how long it took.
The harness owns the training clock and the caps: it kills a method that runs past the budget's
wall-time cap (``time_cap``) or the memory cap (``out_of_memory``), records one that dies
(``crashed``), raises or hands in something unscorable (``error``), and goes on with the next run.

``isolation="in-process"`` runs the method in this process instead, for debugging with a
debugger; its records say so, and the leaderboard does not rank them.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gc
import hashlib
import math
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from advbench import records
from advbench.context import PLAIN
from advbench.environment import manifest
from advbench.errors import BudgetExhausted, UsageError, unknown
from advbench.jail import (DEFAULT_MAX_PROCESSES, START_TIMEOUT, Child, JailSpec, MemoryWatch, PeakRSS, RunLimits,
                           describe_jail, hidden_paths, jail_on)
from advbench.plan import Run
from advbench.profiles import default_threads, get_profile, harness_threads, import_torch_lazies
from advbench.registry import MethodEntry, Registry, default_registry, load_object, module_specs
from advbench.solution import (DataSolution, RemoteSolution, SolutionError, SolutionHandle, await_reply, loads_plain,
                               local_handle, recv_plain)
from advbench.spec import BUDGETS, EVAL_CPU_CAP, EVAL_CPU_FREE, TaskSpec
from advbench.task import Problem, Seal

ISOLATIONS = ("process", "no-jail", "in-process")  # only "process" (jailed) runs are ranked
FAILED = ("time_cap", "out_of_memory", "crashed", "error")
SEAL_ENV = "ADVBENCH_SEAL_KEY"


def default_memory_cap() -> int:
    """Three quarters of this machine's memory: a method past it is stopped before the OS steps in."""
    import psutil

    return int(psutil.virtual_memory().total * 0.75)


_SEAL: dict[str, Any] = {}  # the key, once read (never in the environment of a child)


def seal_key(path: Path | None = None) -> bytes:
    """The key of sealed runs (at least 16 characters): from ``path`` (``--seal-key-file``) or
    ``ADVBENCH_SEAL_KEY``, read once. The variable is removed from this process's environment as it
    is read, so no process started later (a worker, Ray, a jail) inherits it; the key stays in this
    process's memory, and what leaves it is per-run material (:func:`seal_for_run`)."""
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--seal-key-file {path} cannot be read: {getattr(exc, 'strerror', None) or exc}") from exc
        source = f"--seal-key-file {path}"
    elif SEAL_ENV in os.environ:
        text, source = os.environ.pop(SEAL_ENV), SEAL_ENV
    elif "key" in _SEAL:
        return _SEAL["key"]
    else:
        text, source = "", SEAL_ENV
    if len(text) < 16:
        raise UsageError(f"--sealed needs a secret key of at least 16 characters in {source} "
                         f"(it has {len(text)}); e.g. export {SEAL_ENV}=$(python -c 'import secrets; print(secrets.token_hex(16))')")
    _SEAL["key"] = text.encode()
    if path is not None:
        _SEAL["file"] = str(Path(path).resolve())
    return _SEAL["key"]


def seal_key_file() -> str | None:
    """Where the key was read from, if a file: hidden from every jail's view."""
    return _SEAL.get("file")


def seal_for_run(key: bytes, task: str, variant: str, seed: int) -> tuple[bytes, str]:
    """What a run needs of the key: an HMAC of it for this (task, variant, seed), and the key's
    fingerprint for the record. A worker (local or Ray) gets this pair, never the key: it unlocks
    one run's held-out data and nothing else."""
    import hmac

    material = hmac.new(key, f"advbench-run\0{task}\0{variant}\0{seed}".encode(), hashlib.sha256).digest()
    return material, hashlib.sha256(key).hexdigest()


def check_jail() -> None:
    """Fail before any work where the jail cannot start (no bubblewrap, or it cannot make namespaces)."""
    from advbench.jail import JailUnavailable, bwrap_binary

    try:
        binary = bwrap_binary()
    except JailUnavailable as exc:
        raise UsageError(str(exc)) from exc
    probe = subprocess.run([binary, "--unshare-all", "--unshare-user", "--ro-bind", "/", "/", "--", "/bin/true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        why = (probe.stderr.strip().splitlines() or ["no reason given"])[-1]
        raise UsageError(f"the jail (bubblewrap) cannot start here: {why}; method code runs only in it "
                         "(advbench run --no-jail runs without it, for debugging: never ranked)")


# Entry-point groups that a library the harness imports loads, and runs, as it is imported: any
# installed distribution can name its own code there, which would then run in the harness, beside
# the key and the held-out data. torch's is switched off (advbench/__init__.py sets
# TORCH_DEVICE_BACKEND_AUTOLOAD=0) unless torch was imported before advbench; networkx (imported by
# pgmpy, for pc's networks, and by gnn) has no switch. The library's own entries are its own code.
LIBRARY_HOOK_GROUPS = {"torch.backends": "torch", "networkx.backends": "networkx",
                       "networkx.backend_info": "networkx"}


def check_startup_code() -> None:
    """A sealed run refuses to start where site-packages holds a ``.pth`` file with executable lines
    that is not advbench's own or setuptools': such lines run in every interpreter at start-up, this
    one included, where the seal key is. Nor where a distribution other than the library itself
    names code in an entry-point group the library runs when imported (:data:`LIBRARY_HOOK_GROUPS`)."""
    from importlib.metadata import entry_points

    for group, library in LIBRARY_HOOK_GROUPS.items():
        for ep in entry_points(group=group):
            dist = getattr(getattr(ep, "dist", None), "name", None) or "an unknown distribution"
            if dist.lower() != library:
                raise UsageError(f"a sealed run will not start beside code that {library} runs when it is imported: "
                                 f"{dist} names {ep.value} in the entry-point group {group!r}; uninstall {dist}")
    import re
    import site

    # Known start-up lines: advbench's own editable install, and setuptools' distutils shim.
    known = (re.compile(r"import __editable___advbench_[\w.]+_finder; __editable___advbench_[\w.]+_finder\.install\(\)"),
             re.compile(r"import os; var = 'SETUPTOOLS_USE_DISTUTILS'; enabled = os\.environ\.get\(var, 'local'\) == "
                        r"'local'; enabled and __import__\('_distutils_hack'\)\.add_shim\(\); ?"))
    dirs = [d for d in dict.fromkeys([*site.getsitepackages(), site.getusersitepackages(), *sys.path])
            if d and os.path.isdir(d)]
    found = []
    for d in dirs:
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for name in names:
            if not name.endswith(".pth"):
                continue
            with contextlib.suppress(OSError, UnicodeDecodeError):
                lines = Path(d, name).read_text(encoding="utf-8").splitlines()
                if any(line.startswith(("import ", "import\t")) and not any(k.fullmatch(line.strip()) for k in known)
                       for line in lines):
                    found.append(os.path.join(d, name))
    if found:
        raise UsageError(f"a sealed run will not start beside code that runs at interpreter start-up: {found[0]} has "
                         "executable lines (a package installed with a .pth hook, or in editable mode); install "
                         "plugins as wheels, or remove the file")


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
    """A method whose module cannot be found is the method's fault, said before any work. Found
    the way the import system finds it (``find_spec`` of each finder on ``sys.meta_path``), but
    without executing anything: importing ``pkg.mod`` runs ``pkg/__init__.py``, plugin code that has
    no business in the harness's process. Whether it imports is checked where it runs, in its jail."""
    module = entry.target.partition(":")[0]
    if not _locate(module):
        raise UsageError(f"method {entry.id!r} (registered by package {entry.source!r}) points at module "
                         f"{module!r}, which cannot be imported; reinstall or fix that package")


def _locate(module: str) -> bool:
    return module_specs(module) is not None


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
# Scoring
# ---------------------------------------------------------------------------------------------

@dataclass
class ScoringProcess:
    """One scoring process (``python -m advbench.sandbox solution``), started on demand and again
    after it died; its start-up is waited for once and counted in ``start_seconds``."""

    job: dict[str, Any]
    threads: int
    jail: JailSpec | None
    log_dir: Path | None
    logs: list[Path]  # every process's output, in order (shared with the Scorer)
    child: Child | None = None
    ready: bool = False
    start_seconds: float = 0.0
    _t0: float = 0.0

    def start(self) -> None:
        """Spawn it without waiting (it imports while the method does)."""
        if self.child is None or self.child.dead():
            self.reset()
            self._t0 = time.perf_counter()
            self.child, self.ready = Child("solution", self.job, self.threads, self.jail, self.log_dir), False
            self.logs.append(self.child.log_path)

    def host(self) -> Child:
        self.start()
        assert self.child is not None
        if not self.ready:
            self.child.wait_ready(START_TIMEOUT)
            self.ready = True
            self.start_seconds += time.perf_counter() - self._t0
        return self.child

    def reset(self) -> None:
        if self.child is not None:
            self.child.kill()
            self.child = None


class Scorer:
    """Scores solutions sent by ``ctx.checkpoint``; metrics are computed here by the task's ``evaluate``.

    A pickled solution goes, unopened, to the *solution* scoring process, which the task questions
    for outputs. A solution sent as plain data (``advbench.context.dump_solution``) is decoded here
    and opened by no process. ``handle.compute`` requests go to a *clean* scoring process that never
    opens a solution and refuses to import the method's module and advbench's baselines (a compute
    request that needed them, a task's bug, fails loudly instead of running them); it is started
    the first time a task asks for it.

    With ``fresh_each`` (sealed runs: the ones that are ranked) every evaluation gets scoring
    processes of its own, killed after it: nothing a solution's code did in one evaluation (patching
    functions, caching inputs) survives into the next checkpoint's, nor anything a file the clean
    process loaded did. The next ones are started at once, so they are ready when asked.
    """

    def __init__(self, task_impl: Any, problem: Problem, profile: Any, job: dict[str, Any], threads: int,
                 eval_timeout: float, jail: JailSpec | None, log_dir: Path | None, *, fresh_each: bool = False,
                 data: bool = False, method_package: str = "", evaluation_cpu: float = 1.0) -> None:
        self.task_impl, self.problem, self.profile, self.eval_timeout = task_impl, problem, profile, eval_timeout
        self.fresh_each = fresh_each
        self.data = data  # the task's solutions are data (TaskSpec.solution_data): no solution process
        self.evaluation_cpu = evaluation_cpu  # TaskSpec.evaluation_cpu_seconds
        self.logs: list[Path] = []
        blocked = [*job.get("blocked_packages", ()), "advbench.baselines", *filter(None, [method_package])]
        self.solution = ScoringProcess(job, threads, jail, log_dir, self.logs)
        self.clean = ScoringProcess({**job, "clean": True, "blocked_packages": blocked}, threads, jail, log_dir,
                                    self.logs)
        self.transfer_seconds, self.transfer_bytes, self.evaluations = 0.0, 0, 0
        self.solution_cpu_seconds = 0.0  # the solution's code in the scoring process, all evaluations
        self.solution_cpu_max = 0.0
        self.last_charge = 0.0  # seconds of the last evaluation charged to training time
        self.charged_seconds = 0.0

    @property
    def start_seconds(self) -> float:
        return self.solution.start_seconds + self.clean.start_seconds

    def start(self) -> None:
        if not self.data:
            self.solution.start()

    def ready(self) -> None:
        if not self.data:
            self.solution.host()

    def _compute(self, request: tuple, deadline: float) -> Any:
        try:
            host = self.clean.host()
        except SolutionError as exc:
            raise SolutionError(f"the clean scoring process could not start: {exc}") from exc
        host.conn.send(("request", request))
        return await_reply(host.conn, deadline, host.dead, "clean scoring process")

    def score(self, blob: bytes) -> dict[str, float]:
        """Metrics of the solution in ``blob``; raises SolutionError or ValueError."""
        self.last_charge = 0.0
        deadline = time.monotonic() + self.eval_timeout
        compute = lambda request: self._compute(request, deadline)  # noqa: E731
        host: Child | None = None
        t0 = time.perf_counter()
        if blob.startswith(PLAIN):
            try:
                handle: SolutionHandle = DataSolution(loads_plain(blob[len(PLAIN):]), compute)
            except Exception as exc:  # noqa: BLE001 - refused globals, truncated or malformed bytes
                raise SolutionError(f"the solution's data is not plain data: {exc}") from exc
        else:
            try:
                host = self.solution.host()
            except SolutionError as exc:
                raise SolutionError(f"the scoring process could not start: {exc}") from exc
            handle = RemoteSolution(host.conn, deadline, host.dead, compute)
            cpu0 = host.cpu_seconds()  # the solution's code from here on: unpickling, then every answer
            try:
                handle.load(blob)
            except SolutionError:
                self.solution.reset()
                raise
        self.transfer_seconds += time.perf_counter() - t0
        self.transfer_bytes += len(blob)
        self.evaluations += 1
        used_clean = self.clean.child is not None
        try:
            metrics = finite_metrics(self.task_impl.evaluate(handle, self.problem, self.profile))
            if host is not None:
                self._charge(host.cpu_seconds() - cpu0)
            return metrics
        except SolutionError:
            self.close()  # either may hang or be dead: fresh ones for the next checkpoint
            raise
        finally:
            used_clean = used_clean or self.clean.child is not None
            if self.fresh_each:
                for process, used in ((self.solution, host is not None), (self.clean, used_clean)):
                    if used:
                        process.reset()
                        process.start()
            elif host is not None and not host.dead():
                with contextlib.suppress(SolutionError, OSError):
                    handle.drop()  # type: ignore[attr-defined]

    def _charge(self, cpu: float) -> None:
        """The solution's CPU seconds in one evaluation: beyond EVAL_CPU_FREE times the reference's,
        charged to training time (``last_charge``); beyond EVAL_CPU_CAP times, refused."""
        self.solution_cpu_seconds += cpu
        self.solution_cpu_max = max(self.solution_cpu_max, cpu)
        self.last_charge = max(0.0, cpu - EVAL_CPU_FREE * self.evaluation_cpu)
        self.charged_seconds += self.last_charge
        if cpu > EVAL_CPU_CAP * self.evaluation_cpu:
            raise SolutionError(f"the solution's code took {cpu:.1f} s of CPU in one evaluation, over "
                                f"{EVAL_CPU_CAP:g} times what the task's reference needs ({self.evaluation_cpu:g} s): "
                                "work belongs in training, not in scoring")

    def close(self) -> None:
        self.solution.reset()
        self.clean.reset()


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
    eval_seconds: float = 0.0  # scoring the checkpoints, after the method has ended
    final_eval_seconds: float = 0.0
    peak_rss: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # isolation overheads
    asks: int = 0  # questions of the method's (ctx.ask) the task answered: work the harness counted
    asks_refused: int = 0  # questions the task refused (malformed, over the budget): not work
    run_peak: int | None = None  # the run's cgroup peak (method, scorer, children, tmpfs), where one held


def run(task: str, method: str | None = None, *, profile: str | None = None, budget: str = "quick",
        seed: int = 0, variant: str | None = None, results_dir: Path | None = Path("results"),
        registry: Registry | None = None, on_progress: Callable[..., None] | None = None,
        sealed: bool = False, isolation: str = "process", threads: int | None = None,
        memory_cap: int | None = None, max_processes: int | None = None, keep_artifacts: bool = False,
        seal: tuple[bytes, str] | None = None) -> dict[str, Any]:
    """Run one (task, variant, method, profile, budget, seed); write and return its record.

    ``results_dir=None`` keeps the record in memory only; with ``keep_artifacts`` the files the task
    made and the processes' logs ride along under ``"_artifacts"`` (and ``"_private_artifacts"``)
    for :func:`store` to write where the record lands (a worker of a pool or of a Ray cluster
    returns its record to the driver this way). ``seal`` is a sealed run's per-run material and
    key fingerprint (:func:`seal_for_run`), for workers that never hold the key; without it a
    sealed run derives them from :func:`seal_key`. ``on_progress(done, total)`` hears the method's
    progress, then, once it has ended, ``on_progress(i, n, phase)`` which checkpoint is being scored.
    """
    reg = registry or default_registry()
    spec, entry, prof = check_run_args(reg, task, method, profile, budget)
    variant = resolve_variants(spec, budget, [variant] if variant else None)[0]
    if isolation not in ISOLATIONS:
        raise unknown("isolation", isolation, ISOLATIONS)
    if isolation == "process" and not jail_on():
        isolation = "no-jail"
    if sealed and seal is None:
        seal = seal_for_run(seal_key(), spec.name, variant, seed)
    material, fingerprint = seal if sealed and seal is not None else (None, None)
    threads = default_threads() if threads is None else threads
    memory_cap = default_memory_cap() if memory_cap is None else memory_cap
    max_processes = DEFAULT_MAX_PROCESSES if max_processes is None else max_processes
    # The harness's own share of the run (building the task, scoring) on the run's threads too.
    with harness_threads(threads):
        bud = spec.budgets[budget]

        library_lines: list[str] = []  # warnings and log lines of the libraries the task uses here
        with library_output(library_lines):
            hardware = prof.activate(seed, threads=threads,
                                 import_torch=spec.harness_uses_torch or prof.torch_device != "cpu")
            t0 = time.perf_counter()
            try:
                task_impl = load_object(spec.entry_point)()
                on_device = {"device": prof.torch_device} if spec.harness_device else {}
                problem = task_impl.build(variant=variant, seed=seed, budget=bud, seal=Seal(seed, material),
                                          **on_device)
            except ModuleNotFoundError as exc:  # an extra that is not installed: say which
                extras = ",".join(spec.extras) or "all"
                raise UsageError(f"task {spec.name!r} needs the package {exc.name!r}, which is not installed: "
                                 f"pip install 'advbench[{extras}]'") from exc
        setup_seconds = time.perf_counter() - t0

        eval_timeout = max(120.0, bud.max_seconds)
        gc.collect()
        jail = None
        logs: dict[str, list[Path]] = {}
        log_dir = Path(tempfile.mkdtemp(prefix="advbench-logs-"))  # the harness's: no jail sees it
        if isolation == "process":
            hide = [str(results_dir)] if results_dir is not None else []
            hide += [f for f in (seal_key_file(),) if f]
            # The results folders a user keeps records in, whichever this run writes to: the working
            # folder's and the checkout's (on sys.path when run as `python -m` from the repository).
            checkout = Path(__file__).resolve().parents[1]
            hide += [str(p) for p in (Path.cwd() / "results", checkout / "results") if p.is_dir()]
            jail = JailSpec(RunLimits(memory_cap, max_processes, threads), hidden=hidden_paths(hide),
                            gpu=prof.torch_device == "cuda", fresh_scorer=sealed)
        try:
            with library_output(library_lines):
                outcome = _run(isolation, spec, entry, prof, bud, variant, seed, problem, task_impl, threads, memory_cap,
                               eval_timeout, on_progress, jail, log_dir, logs)
        except BaseException:  # Ctrl-C, or the harness's own error: no record, so nothing of the run stays in /tmp
            shutil.rmtree(log_dir, ignore_errors=True)
            raise
        finally:
            if jail is not None:
                run_peak = jail.limits.peak_bytes()
                jail.limits.close()
        if jail is not None:
            outcome.run_peak = run_peak
        return _finish(spec, entry, prof, budget, variant, seed, threads, fingerprint, isolation, outcome, setup_seconds,
                       problem, hardware, memory_cap, jail, sealed, logs, library_lines, log_dir, results_dir,
                       keep_artifacts)


def _run(isolation, spec, entry, prof, bud, variant, seed, problem, task_impl, threads, memory_cap, eval_timeout,
         on_progress, jail, log_dir, logs) -> Outcome:
    if isolation in ("process", "no-jail"):
        return _run_isolated(spec, entry, prof, bud, variant, seed, problem, task_impl, threads, memory_cap,
                             eval_timeout, on_progress, jail, log_dir, logs)
    return _run_in_process(spec, entry, prof, bud, variant, seed, problem, task_impl, on_progress)


def _finish(spec, entry, prof, budget, variant, seed, threads, fingerprint, isolation, outcome, setup_seconds,
            problem, hardware, memory_cap, jail, sealed, logs, library_lines, log_dir, results_dir,
            keep_artifacts) -> dict[str, Any]:
    """The record of a run that ended, and where what it left goes."""
    peak_cuda = None
    if prof.torch_device == "cuda" and isolation == "in-process":
        import torch

        peak_cuda = int(torch.cuda.max_memory_allocated())

    description = dict(getattr(problem, "description", {}))
    held = {k: description.pop(k) for k in sorted(problem.heldout_description) if k in description} if sealed else {}
    rec = _record(spec, entry, prof, budget, variant, seed, threads, fingerprint, isolation, outcome, setup_seconds,
                  description, hardware, memory_cap, peak_cuda, jail)
    # What a run leaves besides its record. The method's own output is the method's; everything the
    # task made of held-out data (renders, sample plots) and the scoring processes' output (solution
    # code that saw held-out inputs) is published only for unsealed runs: a sealed run's are kept
    # private (RESULTS/private/...), for the leaderboard's owner.
    made = dict(problem.artifacts) if rec["status"] == "ok" else {}
    made.update(_read_logs(logs.get("scorer", []), "scorer.log"))
    if library_lines:  # what the task's libraries said here (pgmpy, opacus, torch): not the terminal's business
        made["harness.log"] = ("\n".join(library_lines) + "\n").encode()
    public = _read_logs(logs.get("method", []), "method.log")
    private: dict[str, bytes] = {}
    (private if sealed else public).update(made)
    if held:
        import json

        private["heldout-description.json"] = json.dumps(_finite(held), indent=1, default=str).encode()
    shutil.rmtree(log_dir, ignore_errors=True)
    if results_dir is not None:
        store(rec, Path(results_dir), public, private)
    elif keep_artifacts:
        rec["_artifacts"], rec["_private_artifacts"] = public, private
    return rec


@contextlib.contextmanager
def library_output(lines: list[str]):
    """Warnings and log records that libraries emit in this process while the block runs go to
    ``lines`` (the run's ``harness.log``), not to the terminal: the first pc run printed 21 pgmpy
    warnings, opacus and torch their deprecation notices."""
    import logging
    import warnings

    class ToLines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            with contextlib.suppress(Exception):
                lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")

    ours = ToLines(logging.WARNING)
    root = logging.getLogger()
    # The root logger (where records of libraries without a handler of their own end up, printed by
    # logging's last resort otherwise) and every logger that prints itself.
    swapped: list[tuple[logging.Logger, list[logging.Handler], bool]] = [(root, root.handlers[:], root.propagate)]
    for lg in logging.Logger.manager.loggerDict.values():
        if isinstance(lg, logging.Logger) and any(isinstance(h, logging.StreamHandler) for h in lg.handlers):
            swapped.append((lg, lg.handlers[:], lg.propagate))
    for lg, _, _ in swapped:
        lg.handlers = [ours]
        if lg is not root:
            lg.propagate = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        try:
            yield
        finally:
            for lg, handlers, propagate in swapped:
                lg.handlers, lg.propagate = handlers, propagate
            lines.extend(f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught)


def _read_logs(paths: list[Path], name: str) -> dict[str, bytes]:
    """The processes' logs as one artifact (several scoring processes: one after another)."""
    parts = []
    for p in paths:
        with contextlib.suppress(OSError):
            data = Path(p).read_bytes()
            if data:
                parts.append(data)
    return {name: b"".join(parts)} if parts else {}


def store(rec: dict[str, Any], results_dir: Path, artifacts: dict[str, bytes] | None = None,
          private: dict[str, bytes] | None = None) -> dict[str, Any]:
    """Write ``rec`` (and its artifacts: given, or carried under ``"_artifacts"``) into ``results_dir``,
    atomically; private artifacts under ``results_dir/private/``. Sets ``rec["artifacts"]``,
    ``rec["private_artifacts"]`` and ``rec["path"]``."""
    carried = rec.get("_artifacts")
    carried_private = rec.get("_private_artifacts")
    artifacts = carried if artifacts is None else artifacts
    private = carried_private if private is None else private
    rec["artifacts"] = records.save_artifacts(Path(results_dir), rec, artifacts or {})
    rec["private_artifacts"] = records.save_artifacts(Path(results_dir) / "private", rec, private or {})
    rec.pop("_artifacts", None)
    rec.pop("_private_artifacts", None)
    rec["path"] = str(records.save(Path(results_dir), rec))
    return rec


def run_planned(planned: Run, **kwargs: Any) -> dict[str, Any]:
    """:func:`run` of a planned :class:`~advbench.plan.Run` (what executors run)."""
    return run(planned.task, planned.method, profile=planned.profile, budget=planned.budget, seed=planned.seed,
               variant=planned.variant, sealed=planned.sealed, isolation=planned.isolation, threads=planned.threads,
               memory_cap=planned.memory_cap, max_processes=planned.max_processes, **kwargs)


def failed_record(planned: Run, status: str, error: str, *, registry: Registry | None = None,
                  seal: tuple[bytes, str] | None = None) -> dict[str, Any]:
    """The record of a run that never reported back (its worker died, twice): the same fields as any
    record, with ``status`` and ``error`` saying why, and no metrics."""
    if status not in FAILED:
        raise ValueError(f"a failed record's status is one of {', '.join(FAILED)}, not {status!r}")
    reg = registry or default_registry()
    spec, entry, prof = check_run_args(reg, planned.task, planned.method, planned.profile, planned.budget)
    if planned.sealed and seal is None:
        seal = seal_for_run(seal_key(), spec.name, planned.variant, planned.seed)
    fingerprint = seal[1] if planned.sealed and seal is not None else None
    outcome = Outcome(status=status, error=error)
    memory_cap = default_memory_cap() if planned.memory_cap is None else planned.memory_cap
    return _record(spec, entry, prof, planned.budget, planned.variant, planned.seed, planned.threads, fingerprint,
                   planned.isolation, outcome, 0.0, {}, {"threads": planned.threads}, memory_cap, None, None)


def _record(spec: TaskSpec, entry: MethodEntry, prof: Any, budget: str, variant: str, seed: int, threads: int,
            fingerprint: str | None, isolation: str, outcome: Outcome, setup_seconds: float,
            description: dict[str, Any], hardware: dict[str, Any], memory_cap: int, peak_cuda: int | None,
            jail: JailSpec | None) -> dict[str, Any]:
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
        "method_role": spec.role(entry.name, builtin=entry.builtin),
        "profile": prof.name, "budget": budget, "seed": seed, "threads": threads,
        "sealed": fingerprint is not None,
        "seal_key_sha256": fingerprint,  # the key's fingerprint, never the key
        "isolation": isolation,
        # How method code was confined (the method's and the scoring processes' jails): sandbox, uid,
        # namespaces, view, and the limits over the whole run and what enforced them. None: no jail.
        "jail": describe_jail(jail),
        "status": status, "error": outcome.error,
        "primary_metric": spec.primary_metric,
        "metrics": metrics,
        "targets": targets,
        "targets_met": all(t["met"] for t in targets) if targets else None,  # None: no target applies
        "time_to_target_seconds": primary_targets[0]["time_to_target_seconds"] if primary_targets else None,
        "timings": {"setup_seconds": setup_seconds, "train_seconds": train_seconds,
                    "eval_seconds": outcome.final_eval_seconds, "checkpoint_eval_seconds": outcome.eval_seconds,
                    **outcome.timings},
        # Work the harness counted itself (the task's oracle answered every ask) where there is
        # any; else the method's own ctx.count, which the record and the boards say it is.
        "throughput": ({"value": outcome.asks / train_seconds if train_seconds > 0 else None,
                        "unit": spec.throughput_unit, "work": float(outcome.asks), "counted_by": "harness",
                        "method_count": outcome.work}
                       if outcome.asks else
                       {"value": (outcome.work / train_seconds) if train_seconds > 0 and outcome.work else None,
                        "unit": spec.throughput_unit, "work": outcome.work, "counted_by": "method"}),
        "asks": outcome.asks,
        "asks_refused": outcome.asks_refused,
        "memory": {"peak_rss_bytes": outcome.peak_rss, "peak_cuda_bytes": peak_cuda, "cap_bytes": memory_cap,
                   "run_peak_bytes": outcome.run_peak,
                   "measured": "harness process" if isolation == "in-process" else "method process and its children"},
        "curve": outcome.curve,
        "config": {"budget": {"name": bud.name, "max_seconds": bud.max_seconds, "limits": dict(bud.limits)},
                   "method": outcome.config, "data": description},
        "environment": manifest(hardware),
    }
    return _finite(rec)


def _job(spec: TaskSpec, prof: Any, seed: int, threads: int) -> dict[str, Any]:
    """What both kinds of child get: where to import from, what they may not import, the profile."""
    heldout_module = spec.entry_point.partition(":")[0]
    # Absolute: the jail's working folder is its own /tmp, so "" and relative entries mean nothing there.
    sys_path = [os.path.abspath(p or os.curdir) for p in sys.path]
    return {"sys_path": sys_path, "blocked_modules": [heldout_module], "profile": prof.name,
            "seed": seed, "threads": threads}


def _run_isolated(spec, entry, prof, bud, variant, seed, problem, task_impl, threads, memory_cap,
                  eval_timeout, on_progress, jail: JailSpec | None, log_dir: Path,
                  logs: dict[str, list[Path]]) -> Outcome:
    out = Outcome()
    base = _job(spec, prof, seed, threads)
    if not entry.builtin and not entry.source.startswith("<"):
        # an installed plugin (third-party code) gets task contracts only, not advbench's baselines;
        # methods registered in-process (tests, notebooks) are the user's own code
        base["blocked_packages"] = ["advbench.baselines"]
    try:
        train_blob = pickle.dumps(problem.train, protocol=5)
    except Exception as exc:  # the task's fault, not the method's
        raise RuntimeError(f"task {spec.name!r}: its training view cannot be pickled: {exc}") from exc
    scorer = Scorer(task_impl, problem, prof, base, threads, eval_timeout, jail, log_dir,
                    fresh_each=jail is not None and bool(jail.fresh_scorer), data=bool(spec.solution_data),
                    method_package=entry.target.split(":")[0], evaluation_cpu=spec.evaluation_cpu_seconds)
    logs["scorer"] = scorer.logs
    t0 = time.perf_counter()
    worker = Child("method", {**base, "method": entry.target, "train": train_blob, "spec": spec,
                              "budget": bud, "variant": variant}, threads, jail, log_dir)
    logs["method"] = [worker.log_path]
    scorer.start()
    handed = _Handed()
    said_done, returned = False, None  # the method's "done", and the solution it returned (bytes or None)
    try:
        with MemoryWatch(worker, memory_cap) as mem:
            try:
                out.timings["method_start_seconds"] = worker.wait_ready(START_TIMEOUT)
            except SolutionError as exc:
                out.status, out.error = ("crashed" if worker.dead() else "error"), f"the method could not start: {exc}"
                return out
            out.timings["method_spawn_seconds"] = time.perf_counter() - t0
            with contextlib.suppress(SolutionError):
                scorer.ready()  # ready before the clock starts; a failure shows at the first score
            clock = _Clock()
            worker.conn.send("go")
            hard_cap = bud.max_seconds + max(1.0, 0.05 * bud.max_seconds)
            done = False
            while not done:
                if not worker.conn.poll(0.02):
                    if mem.exceeded or worker.dead():
                        _ended(out, worker, mem, memory_cap, jail)
                        break
                    if clock.seconds() > hard_cap:
                        worker.kill()
                        if jail is not None and jail.limits.hit_memory_cap():
                            # its time ran out while the kernel held it at the memory cap (reclaiming
                            # before it kills): the memory, not the clock, stopped it
                            mem.exceeded = True
                            _ended(out, worker, mem, memory_cap, jail)
                            break
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
                    _ended(out, worker, mem, memory_cap, jail)
                    break
                except Exception as exc:  # noqa: BLE001 - a method process speaking out of turn
                    out.status, out.error = "error", f"the method's process broke the protocol: {_reason(exc)}"
                    break
                if kind == "checkpoint":
                    # Kept, not scored: the harness scores checkpoints once the method's process has
                    # ended, so that a method can never time its scoring (adversarial's attacks stop at
                    # the digits already broken, an episode ends at its goal: how long scoring takes
                    # tells how well a solution scored).
                    _, step, work, blob = msg
                    out.work = float(work)
                    point = {"step": step, "train_seconds": clock.seconds(), "work": float(work)}
                    refused = handed.add(point, blob, out.asks, _oracle_snapshot(problem))
                    with contextlib.suppress(OSError):
                        worker.conn.send(("refused", refused) if refused else
                                         ("ack", clock.seconds() > bud.max_seconds))
                elif kind == "ask":
                    reply = _answer(problem, msg[1] if len(msg) > 1 else None)
                    _count_ask(out, reply)
                    with contextlib.suppress(OSError):
                        worker.conn.send(reply)
                elif kind == "config":
                    if isinstance(msg[1], dict):
                        out.config.update(msg[1])
                elif kind == "progress":
                    if on_progress is not None:
                        on_progress(float(msg[1]), float(msg[2]))
                elif kind == "done":
                    _, work, blob = msg
                    out.work, out.train_seconds = float(work), clock.seconds()
                    said_done, returned, done = True, blob, True
                elif kind == "error":
                    out.status, out.error, out.work = "error", str(msg[1]), float(msg[2])
                    done = True
                else:
                    out.status, out.error = "error", f"the method's process sent an unknown message {kind!r}"
                    break
            if not out.train_seconds:
                out.train_seconds = clock.seconds()
        out.peak_rss = mem.peak
        worker.kill()  # before any scoring: nothing of it may reach the method
        last_metrics = _score_handed(out, scorer, problem, handed, said_done, returned, bud, on_progress)
    finally:
        worker.kill()
        scorer.close()
        handed.close()
    if out.status == "time_cap" and last_metrics is not None:
        out.metrics = dict(last_metrics)  # the last checkpoint is what the run is scored on
    elif out.status == "ok":
        out.metrics = dict(last_metrics or {})
    out.timings.update(scorer_start_seconds=scorer.start_seconds, transfer_seconds=scorer.transfer_seconds,
                       transfer_bytes=scorer.transfer_bytes, solution_cpu_seconds=scorer.solution_cpu_seconds,
                       solution_cpu_max_seconds=scorer.solution_cpu_max,
                       solution_cpu_charged_seconds=scorer.charged_seconds)
    return out


def _ended(out: Outcome, worker: Child, mem: MemoryWatch, memory_cap: int, jail: JailSpec | None) -> None:
    """The method's process is gone before it said "done": killed for memory, or it died."""
    if mem.exceeded or (jail is not None and jail.limits.oom_killed()):
        out.status = "out_of_memory"
        out.error = (f"the run's processes went over the cap of {memory_cap / 2**20:.0f} MiB of memory "
                     f"(method's resident peak {mem.peak / 2**20:.0f} MiB; temporary files count)")
    else:
        out.status, out.error = "crashed", f"the method's process died: {worker.dead() or 'it closed its socket'}"
        if jail is not None and jail.limits.pids_refused():
            out.error += f" (it hit the run's limit of {jail.limits.processes} processes and threads)"
        tail = worker.log_tail(3)
        if tail:
            out.error += f"; its last output: {tail}"


MAX_CHECKPOINTS = 1000  # checkpoints a run may hand in (fedavg's reference: 100, one a round)
MAX_CHECKPOINT_BYTES = 8 * 2**30  # what they may hold in all, kept on the harness's disk until scored


class _Handed:
    """The checkpoints a method handed in, kept until its process has ended: each one's curve point,
    the asks answered by then and the oracle's snapshot in memory, its bytes in a file of a folder
    only the harness can read (the jails have a /tmp of their own)."""

    def __init__(self) -> None:
        self.entries: list[tuple[dict[str, Any], Path, int, Any]] = []
        self.bytes = 0
        self._dir: Path | None = None

    def add(self, point: dict[str, Any], blob: bytes, asks: int, snapshot: Any) -> str | None:
        """Keep one; or the reason it is refused (too many, too large: the method's ValueError)."""
        if len(self.entries) >= MAX_CHECKPOINTS:
            return f"a run hands in at most {MAX_CHECKPOINTS} checkpoints"
        if self.bytes + len(blob) > MAX_CHECKPOINT_BYTES:
            return (f"a run's checkpoints hold at most {MAX_CHECKPOINT_BYTES / 2**30:g} GiB in all "
                    f"({self.bytes / 2**30:.2f} GiB so far, this one {len(blob) / 2**20:.1f} MiB)")
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="advbench-checkpoints-"))  # mode 0700, the harness's
        path = self._dir / f"{len(self.entries):05d}"
        path.write_bytes(blob)
        self.bytes += len(blob)
        self.entries.append((point, path, asks, snapshot))
        return None

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def _oracle_snapshot(problem: Problem) -> Any:
    snapshot = getattr(problem.oracle, "snapshot", None)
    return snapshot() if callable(snapshot) else None


def _as_of(problem: Problem, snapshot: Any) -> Any:
    """The problem as ``evaluate`` read it when the checkpoint was handed in (the oracle's state then)."""
    as_of = getattr(problem.oracle, "as_of", None)
    return as_of(snapshot) if callable(as_of) and snapshot is not None else contextlib.nullcontext()


def _score_handed(out: Outcome, scorer: Any, problem: Problem, handed: _Handed, said_done: bool,
                  returned: bytes | None, bud: Any,
                  on_progress: Callable[..., None] | None = None) -> dict[str, float] | None:
    """Score the checkpoints in the order they came, each as of the asks answered by then, then the
    solution the method returned (``said_done``; ``returned`` None: it returned none); the method
    has ended. ``scorer``: a :class:`Scorer`, or :class:`_LocalScorer` in-process. Work a solution deferred to its
    scoring is training time: each point's and the run's training seconds include what was charged
    up to it. Returns the metrics the run is scored on (the last scored), None if none was.
    ``on_progress(done, total, phase)`` hears which one is being scored."""
    last_blob: bytes | None = None
    last_metrics: dict[str, float] | None = None
    asks_scored, charged = 0, 0.0
    t0 = time.perf_counter()
    for i, (point, path, asks, snapshot) in enumerate(handed.entries):
        if on_progress is not None:
            on_progress(i, len(handed.entries), f"scoring checkpoint {i + 1}/{len(handed.entries)}")
        blob = path.read_bytes()
        asks_scored = asks
        try:
            with _as_of(problem, snapshot):
                point["metrics"] = last_metrics = scorer.score(blob)
            last_blob = blob
        except Exception as exc:  # noqa: BLE001 - the solution's fault: the next checkpoint is scored
            point["metrics"], point["error"] = {}, _reason(exc)
        charged += scorer.last_charge
        point["train_seconds"] += charged
        out.curve.append(point)
    out.eval_seconds = time.perf_counter() - t0
    out.train_seconds += charged
    if not said_done:  # error, crash, caps: its checkpoints are all there is
        return last_metrics
    blob = returned
    # The same solution as the last checkpoint is scored again when the task answered questions
    # since: what it scores (dp-fedavg's ε) may count them.
    if blob is not None and (blob != last_blob or out.asks != asks_scored):
        if on_progress is not None:
            on_progress(0, 1, "scoring the solution")
        t1 = time.perf_counter()
        try:
            last_metrics = scorer.score(blob)
            out.train_seconds += scorer.last_charge
            out.curve.append({"step": "final", "train_seconds": out.train_seconds, "work": out.work,
                              "metrics": last_metrics})
        except Exception as exc:  # noqa: BLE001
            out.status, out.error = "error", "evaluation failed: " + _reason(exc)
        out.final_eval_seconds = time.perf_counter() - t1
    elif last_blob is None:
        out.status = "error"
        failed = [p["error"] for p in out.curve if p.get("error")]
        out.error = (f"no checkpoint could be scored; the last: {failed[-1]}" if failed else
                     "the method returned no solution and never called ctx.checkpoint")
    elif out.train_seconds > bud.max_seconds:
        out.status = "time_cap"
    return last_metrics


class _Clock:
    """Training seconds as the harness measures them: wall time since "go" (nothing is scored while
    a method runs)."""

    def __init__(self) -> None:
        self._start = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self._start


class _LocalScorer:
    """In-process runs' scoring: the task's ``evaluate`` on a local handle, in this process."""

    last_charge = 0.0  # the solution's work is this process's: nothing to tell apart

    def __init__(self, task_impl: Any, problem: Problem, prof: Any, spec: TaskSpec) -> None:
        self.task_impl, self.problem, self.prof, self.spec = task_impl, problem, prof, spec

    def score(self, blob: bytes) -> dict[str, float]:
        return _score_local(self.task_impl, self.problem, self.prof, blob, self.spec)


def _run_in_process(spec, entry, prof, bud, variant, seed, problem, task_impl, on_progress) -> Outcome:
    """Debugging only: the method shares this process, and with it the held-out data. Its checkpoints
    are kept and scored after it has returned, as in a jailed run."""
    out = Outcome()
    method_fn = entry.load()
    import_torch_lazies()
    handed = _Handed()
    clock = _Clock()

    def submit(kind: str, payload: tuple) -> Any:
        if kind == "config":
            out.config.update(payload[0])
        elif kind == "progress" and on_progress is not None:
            on_progress(*payload)
        elif kind == "ask":
            reply = _answer(problem, payload[0])
            _count_ask(out, reply)
            return reply
        elif kind == "checkpoint":
            step, work, blob = payload
            refused = handed.add({"step": step, "train_seconds": clock.seconds(), "work": float(work)}, blob,
                                 out.asks, _oracle_snapshot(problem))
            if refused:
                raise ValueError(refused)
            return clock.seconds() > bud.max_seconds
        return None

    from advbench.context import RunContext, dump_solution

    said_done, returned = False, None
    try:
        with PeakRSS() as mem:
            ctx = RunContext(spec=spec, variant=variant, seed=seed, budget=bud, profile=prof, submit=submit)
            clock = _Clock()
            try:
                solution = method_fn(problem.train, ctx)
                out.train_seconds = clock.seconds()
                said_done, returned = True, None if solution is None else dump_solution(solution, spec)
            except BudgetExhausted:
                out.train_seconds, out.status = clock.seconds(), "time_cap"
            except Exception as exc:  # noqa: BLE001 - a method's bug must not take the harness down
                out.train_seconds = clock.seconds()
                out.status, out.error = "error", _reason(exc) + "\n" + traceback.format_exc(limit=-6)
            out.work = ctx.work
        out.peak_rss = mem.peak
        last_metrics = _score_handed(out, _LocalScorer(task_impl, problem, prof, spec), problem, handed, said_done,
                                     returned, bud, on_progress)
    finally:
        handed.close()
    if out.status in ("ok", "time_cap") and last_metrics is not None:
        out.metrics = dict(last_metrics)
    elif out.status == "time_cap":
        out.status, out.error = "error", "the time cap was reached before any checkpoint was scored"
    return out


def _count_ask(out: Outcome, reply: tuple[str, Any]) -> None:
    if reply[0] == "answer":
        out.asks += 1
    else:
        out.asks_refused += 1


def _answer(problem: Problem, question: Any) -> tuple[str, Any]:
    """The task's oracle on one ``ctx.ask``: ("answer", value), or ("refused", why) for the method."""
    if problem.oracle is None:
        return "refused", "this task answers no questions (its problem has no oracle)"
    try:
        return "answer", problem.oracle(question)
    except (ValueError, TypeError, KeyError, IndexError) as exc:  # a malformed or refused question
        return "refused", str(exc) or type(exc).__name__


def _score_local(task_impl: Any, problem: Problem, prof: Any, blob: bytes, spec: TaskSpec) -> dict[str, float]:
    return finite_metrics(task_impl.evaluate(local_handle(blob), problem, prof))


def _finite(obj: Any) -> Any:
    """JSON has no NaN/inf: store them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj
