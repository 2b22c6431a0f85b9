"""The results store: one JSON file per run, written atomically, read back tolerantly.

Layout: ``<results>/runs/<task-id>/<method>/<variant>__<profile>__<budget>__seed<k>__<run-id>.json``.
A file is written to a temporary name in the same folder, flushed to disk and renamed over its
final name, so an interrupted run leaves either the whole record or nothing. Reading skips (and
reports) files that do not parse or are of another schema version; it never fails on them.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

SCHEMA_VERSION = 1
REQUIRED = ("schema_version", "task", "task_version", "variant", "method", "profile", "budget", "seed",
            "status", "metrics", "created_utc")


def record_path(results_dir: Path, rec: dict[str, Any]) -> Path:
    name = f"{rec['variant']}__{rec['profile']}__{rec['budget']}__seed{rec['seed']}__{rec['run_id']}.json"
    return Path(results_dir) / "runs" / rec["task_id"] / rec["method"] / name


def write_atomic(path: Path, data: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # leave nothing half-written behind
        raise


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


def iter_records(results_dir: Path, problems: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Every valid record under ``results_dir/runs``; unreadable files go to ``problems``."""
    root = Path(results_dir) / "runs"
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*.json")):
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            if problems is not None:
                problems.append(f"skipped {path}: {exc.__class__.__name__}: {exc}")
            continue
        if not isinstance(rec, dict) or any(k not in rec for k in REQUIRED):
            if problems is not None:
                problems.append(f"skipped {path}: not an advbench record")
            continue
        if rec["schema_version"] != SCHEMA_VERSION:
            if problems is not None:
                problems.append(f"skipped {path}: schema version {rec['schema_version']} (this advbench reads {SCHEMA_VERSION})")
            continue
        rec["_path"] = str(path)
        yield rec
