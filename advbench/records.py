"""The results store: one JSON file per run, written atomically, read back tolerantly.

Layout: ``<results>/runs/<task-id>/<method>/<variant>__<profile>__<budget>__seed<k>__<run-id>.json``.
A file is written to a temporary name in the same folder, flushed to disk and renamed over its
final name, so an interrupted run (even ``kill -9``) leaves either the whole record or nothing.
Reading skips (and reports) files that do not parse, are of another schema version, or lack the
fields a record must have; it never fails on them.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from advbench.errors import UsageError

SCHEMA_VERSION = 2
READABLE_SCHEMAS = (1, 2)  # 1: before sealed runs (method in the harness process)
REQUIRED = {"schema_version": int, "task": str, "task_version": int, "variant": str, "method": str,
            "profile": str, "budget": str, "seed": int, "status": str, "metrics": dict, "created_utc": str,
            "timings": dict, "primary_metric": str}


def record_path(results_dir: Path, rec: dict[str, Any]) -> Path:
    name = f"{rec['variant']}__{rec['profile']}__{rec['budget']}__seed{rec['seed']}__{rec['run_id']}.json"
    return Path(results_dir) / "runs" / rec["task_id"] / rec["method"] / name


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with (os.fdopen(fd, "wb") if isinstance(data, bytes) else os.fdopen(fd, "w", encoding="utf-8")) as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~_umask())  # mkstemp makes 0600; a record is no secret
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # leave nothing half-written behind
        raise


def save_artifacts(results_dir: Path, rec: dict[str, Any], artifacts: dict[str, bytes]) -> list[str]:
    """Write a run's artifacts beside its record (``<record stem>.<name>``); their file names."""
    stem = record_path(results_dir, rec).with_suffix("")
    names = []
    for name, data in sorted(artifacts.items()):
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"artifact name {name!r} is not a plain file name")
        path = stem.with_name(f"{stem.name}.{name}")
        write_atomic(path, data)
        names.append(path.name)
    return names


def save(results_dir: Path, rec: dict[str, Any]) -> Path:
    path = record_path(results_dir, rec)
    write_atomic(path, json.dumps(rec, indent=1, sort_keys=True, default=_jsonable) + "\n")
    return path


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


def check_writable(results_dir: Path) -> None:
    """Fail before any work if records could not be written under ``results_dir``."""
    path = Path(results_dir)
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise UsageError(f"--results {path} is not a directory ({probe} is a file)")
    try:  # os.access says yes to root everywhere; a real file says what the kernel allows
        with tempfile.TemporaryFile(dir=probe, prefix=".advbench-probe-"):
            pass
    except OSError as exc:
        raise UsageError(f"--results {path} is not writable (a file cannot be made in {probe}: "
                         f"{exc.strerror or exc})") from exc


def check_readable(results_dir: Path, option: str = "--results") -> None:
    """Fail clearly if ``results_dir`` (given as ``option``) is not an existing directory (never create it)."""
    path = Path(results_dir)
    if not path.exists():
        raise UsageError(f"{option} {path} does not exist")
    if not path.is_dir():
        raise UsageError(f"{option} {path} is not a directory")


def problem_with(rec: Any) -> str | None:
    """Why ``rec`` is not a record this advbench can read, or None."""
    if not isinstance(rec, dict):
        return "not an advbench record"
    for key, kind in REQUIRED.items():
        if key not in rec:
            return f"not an advbench record (no {key!r})"
        if not isinstance(rec[key], kind) or (kind is int and isinstance(rec[key], bool)):
            return f"field {key!r} is a {type(rec[key]).__name__}, not a {kind.__name__}"
    if rec["schema_version"] not in READABLE_SCHEMAS:
        return f"schema version {rec['schema_version']} (this advbench reads {', '.join(map(str, READABLE_SCHEMAS))})"
    if not isinstance(rec["timings"].get("train_seconds", 0.0), (int, float, type(None))):
        return "timings.train_seconds is not a number"
    for name, value in rec["metrics"].items():
        if not isinstance(value, (int, float, type(None))) or isinstance(value, bool):
            return f"metric {name!r} is not a number"
    for key in ("throughput", "memory", "environment"):
        if key in rec and not isinstance(rec[key], (dict, type(None))):
            return f"field {key!r} is not an object"
    if "targets" in rec and not isinstance(rec["targets"], list):
        return "field 'targets' is not a list"
    return None


def iter_records(results_dir: Path, problems: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Every valid record under ``results_dir/runs``; unreadable files go to ``problems``."""
    root = Path(results_dir) / "runs"
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*.json")):
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            if problems is not None:
                problems.append(f"skipped {path}: {exc.__class__.__name__}: {exc}")
            continue
        why = problem_with(rec)
        if why is not None:
            if problems is not None:
                problems.append(f"skipped {path}: {why}")
            continue
        rec.setdefault("sealed", False)
        rec.setdefault("isolation", "in-process" if rec["schema_version"] == 1 else "process")
        rec["_path"] = str(path)
        yield rec


def run_key(rec: dict[str, Any]) -> tuple:
    """What makes two runs the same run, for resuming a sweep: :meth:`advbench.plan.Run.key`."""
    from advbench.plan import Run

    return Run.from_record(rec).key()


def completed(results_dir: Path) -> set[tuple]:
    """Keys of the runs that already have an ``ok`` record (see :func:`run_key`) made under the
    budget their task defines today (:class:`BudgetCheck`): a run whose record ran under other
    limits is run again."""
    check = BudgetCheck()
    return {run_key(r) for r in iter_records(results_dir) if r["status"] == "ok" and check.why(r) is None}


class BudgetCheck:
    """Whether a record ran under the budget its task defines now.

    A budget's limits can change without a new task version (a quick budget cut to what its target
    needs): a record made before says so in ``config.budget.limits``. Such a record is not a run of
    today's budget, so boards and the gate leave it out (saying so) and resume runs it again; its
    file stays where it is. Only records of the installed task version are judged: a task unknown
    here, another version, or a record without limits (older schemas) passes.
    """

    def __init__(self, registry: Any = None) -> None:
        self.registry = registry
        self._limits: dict[tuple[str, int, str], dict[str, float] | None] = {}

    def _current(self, task: str, version: int, budget: str) -> dict[str, float] | None:
        key = (task, version, budget)
        if key not in self._limits:
            from advbench.registry import default_registry

            self.registry = self.registry or default_registry()
            try:
                spec = self.registry.spec(task)
            except UsageError:
                spec = None
            b = spec.budgets.get(budget) if spec is not None and spec.version == version else None
            self._limits[key] = None if b is None else {k: float(v) for k, v in b.limits.items()}
        return self._limits[key]

    def why(self, rec: dict[str, Any]) -> str | None:
        """None where ``rec`` ran under today's budget (or cannot be judged); else a short reason."""
        ran = ((rec.get("config") or {}).get("budget") or {}).get("limits")
        if not isinstance(ran, dict):
            return None
        now = self._current(str(rec.get("task")), int(rec.get("task_version") or 0), str(rec.get("budget")))
        if now is None:
            return None
        which = f"{rec.get('task')}-v{rec.get('task_version')} {rec.get('budget')}"
        try:
            then = {k: float(v) for k, v in ran.items()}
        except (TypeError, ValueError):
            return f"{which}: limits {ran} (now {now})"
        if then == now:
            return None

        def value(limits: dict[str, float], k: str) -> str:
            return f"{limits[k]:g}" if k in limits else "none"

        changed = ", ".join(f"{k} {value(then, k)} (now {value(now, k)})"
                            for k in sorted(set(then) | set(now)) if then.get(k) != now.get(k))
        return f"{which}: {changed}"


class Claims:
    """Runs this sweep has claimed in a results folder, so that two sweeps into one folder run each
    run once: a lock file per run key under ``RESULTS/.claims/``, locked (``flock``) for as long as
    this process lives. A run whose lock another live process holds is that sweep's; a lock whose
    holder died is free again (the kernel drops it), so a killed sweep's runs are claimed anew."""

    def __init__(self, results_dir: Path) -> None:
        self.folder = Path(results_dir) / ".claims"
        self._held: dict[tuple, int] = {}

    def claim(self, key: tuple) -> bool:
        import fcntl
        import hashlib

        self.folder.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(repr(key).encode()).hexdigest()[:32] + ".lock"
        fd = os.open(self.folder / name, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._held[key] = fd
        return True

    def release(self) -> None:
        for fd in self._held.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._held.clear()
