"""The records where users already look: MLflow runs, and pandas frames.

``advbench export --to mlflow`` makes one MLflow run of each record under ``RESULTS/runs/`` (read
by the project's loader, :func:`advbench.records.iter_records`; ``private/`` folders are never
read):

* tags: task, task_id, task_version, variant, method, method_role, profile, budget, seed, threads,
  sealed, isolation, status (and error, first line), primary_metric, work_unit, and
  ``advbench.run_id``, the record's own run id;
* params: the method's recorded config (``config.method``), nested keys joined with ``.``, values
  cut to MLflow's length limit (the record artifact keeps them whole);
* metrics: the final metrics under their own names, and ``time_to_target_seconds``,
  ``train_seconds``, ``throughput``, ``peak_rss_bytes``, ``peak_cuda_bytes`` (``advbench/<name>``
  where a task has a metric of that name), at the run's final step; the learning curve as
  ``curve/<metric>`` (and ``curve/train_seconds``), one value per point, its step the task's work
  unit done by then (the ``work_unit`` tag: optimiser steps, CI tests, ...);
* artifacts: ``environment.json`` (the manifest), ``record.json`` (the record file itself), and
  the record's public artifacts (logs, figures) under ``artifacts/``.

Exporting again adds nothing: each record's run id is looked up by tag first. A run that an
interrupted export left without its last tag (``advbench.exported``) is deleted and made again.
The default store is ``sqlite:///<folder holding RESULTS>/mlflow.db`` with artifacts in
``mlartifacts/`` beside it, MLflow's own names: ``mlflow ui`` started in that folder shows them.

:func:`load_records` and :func:`leaderboard_frame` give the same records and the leaderboard's own
aggregation (:func:`advbench.leaderboard.frame` and :func:`~advbench.leaderboard.aggregate`) as
pandas DataFrames. This module imports nothing heavy at import time: the CLI imports it on start-up.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any, Iterable, Optional

import typer

from advbench.errors import UsageError, unknown

TARGETS = ("mlflow",)
INSTALL_HINT = "pip install 'advbench[mlflow]'"
DEFAULT_EXPERIMENT = "advbench"
RUN_ID_TAG = "advbench.run_id"
DONE_TAG = "advbench.exported"  # set last: a run without it was cut short and is made anew
# The harness's own measures, logged beside the task's metrics (record field -> metric name).
MEASURES = {"time_to_target": "time_to_target_seconds", "train_seconds": "train_seconds", "throughput": "throughput",
            "peak_rss": "peak_rss_bytes", "peak_cuda": "peak_cuda_bytes"}
_SAFE_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_BAD_KEY = re.compile(r"[^\w.\- /]")  # MLflow's key alphabet: word characters, . - space /


# ------------------------------------------------------------------ reading records
def _records(results: Path, problems: list[str]) -> list[dict[str, Any]]:
    """The valid records under ``results/runs`` through the project's loader, none from a
    ``private`` folder."""
    from advbench.records import iter_records

    root = Path(results) / "runs"
    return [r for r in iter_records(results, problems) if "private" not in Path(r["_path"]).relative_to(root).parts]


def _check_results(results: Path, option: str) -> None:
    """Fail before any work where ``results`` holds no readable runs/ folder, or is a private one."""
    from advbench.records import check_readable

    check_readable(results, option)
    where = Path(results).resolve()
    if any(p.name == "private" and (p == where or (p.parent / "runs").is_dir()) for p in (where, *where.parents)):
        raise UsageError(f"{option} {results} is a private folder (sealed runs' held-out artifacts); only public "
                         "records are read")
    runs = Path(results) / "runs"
    if not runs.is_dir():
        raise UsageError(f"{option} {results} holds no runs/ folder of advbench records")
    try:
        os.listdir(runs)
    except OSError as exc:
        raise UsageError(f"{option} {results}: cannot read {runs} ({exc.strerror or exc})") from exc


def _warn(problems: Iterable[str]) -> None:
    for p in problems:
        warnings.warn(p, stacklevel=3)


# ------------------------------------------------------------------ pandas
RECORD_COLUMNS = ["task", "task_id", "task_version", "variant", "method", "role", "profile", "budget", "seed",
                  "threads", "sealed", "isolation", "status", "error", "created", "run_id", "primary_metric",
                  "primary", *MEASURES, "throughput_unit", "commit", "config", "curve", "path"]


def _record_row(rec: dict[str, Any]) -> dict[str, Any]:
    from advbench.plan import Run

    run = Run.from_record(rec)
    throughput, memory = rec.get("throughput") or {}, rec.get("memory") or {}
    row = {k: getattr(run, k) for k in ("task", "task_version", "variant", "method", "profile", "budget", "seed",
                                        "threads", "sealed", "isolation")}
    row.update(task_id=rec.get("task_id") or f"{rec['task']}-v{rec['task_version']}", role=rec.get("method_role", ""),
               status=rec["status"], error=rec.get("error"), created=rec["created_utc"], run_id=rec.get("run_id"),
               primary_metric=rec["primary_metric"], primary=rec["metrics"].get(rec["primary_metric"]),
               time_to_target=rec.get("time_to_target_seconds"), train_seconds=rec["timings"].get("train_seconds"),
               throughput=throughput.get("value"), throughput_unit=throughput.get("unit", ""),
               peak_rss=memory.get("peak_rss_bytes"), peak_cuda=memory.get("peak_cuda_bytes"),
               commit=(rec.get("environment") or {}).get("commit"), config=rec.get("config") or {},
               curve=rec.get("curve") or [], path=rec["_path"])
    row.update({f"metric.{k}": v for k, v in rec["metrics"].items()})
    return row


def _select(df, filters: dict[str, Any]):
    """Rows whose column ``k`` is ``v`` (or one of ``v``, a list, tuple or set) for each filter;
    ``task`` also takes a task id (``pc-v2``)."""
    for key, value in filters.items():
        if key not in df.columns:
            valid = ", ".join(c for c in df.columns if not c.startswith("metric."))
            raise TypeError(f"unknown filter {key!r}; filters name a column: {valid}")
        values = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
        keep = df[key].isin(values)
        if key == "task":
            keep |= (df["task"] + "-v" + df["task_version"].astype(str)).isin(values)
        df = df[keep]
    return df.reset_index(drop=True)


def load_records(path: str | os.PathLike = "results", **filters: Any):
    """Every record under ``path/runs`` as a pandas DataFrame, one row per record.

    Columns: the run's identity (task, task_id, task_version, variant, method, role, profile,
    budget, seed, threads, sealed, isolation), status and error, created (UTC), run_id, the
    primary metric's name and value, the harness's measures (time_to_target, train_seconds,
    throughput, peak_rss, peak_cuda), commit, the record's file ``path``; each final metric as a
    column ``metric.<name>``; ``config`` and ``curve`` (the learning curve: a list of points, each
    with its step, work, train_seconds and metrics) as nested columns. Keyword filters keep the
    rows whose column equals the value or is one of a list of values:
    ``load_records("results", task="pc", method=["reference", "floor"], budget="full")``.
    Files that are not readable records are skipped with a warning.
    """
    import pandas as pd

    _check_results(Path(path), "path")
    problems: list[str] = []
    rows = [_record_row(r) for r in _records(Path(path), problems)]
    _warn(problems)
    df = pd.DataFrame(rows, columns=RECORD_COLUMNS + sorted({c for r in rows for c in r if c.startswith("metric.")}))
    df["created"] = pd.to_datetime(df["created"], utc=True, format="ISO8601")
    return _select(df, filters)


def leaderboard_frame(path: str | os.PathLike = "results", **filters: Any):
    """The leaderboard's rows as a pandas DataFrame: the numbers of ``advbench leaderboard`` (its
    Markdown board, and the rows of its CSV and JSON formats), one row per task version, variant,
    profile, budget, threads, sealing and method, ranked.

    The records are those the board counts (the latest of each seed; debugging runs left out),
    kept by the keyword filters (as :func:`load_records`'s: ``task``, ``profile``, ``budget``,
    ``method``, ...) before they are aggregated, as ``advbench leaderboard --task/--profile/--budget``
    does. Columns as the CSV board's: mean, ci95, iqm and its interval, seeds, replicates, failed,
    rank, time_to_target, train_seconds, throughput, peak_rss, ... and ``metric.<name>`` (means over
    seeds).
    """
    import pandas as pd

    from advbench import leaderboard as lb

    _check_results(Path(path), "path")
    problems: list[str] = []
    df = lb.frame(_records(Path(path), problems), problems)
    _warn(problems)
    if df.empty:
        return pd.DataFrame()
    df = _select(df, filters)
    specs = _specs(set(df["task"]))
    rows = lb.aggregate(df, {n: s.primary.higher_is_better for n, s in specs.items()},
                        {n: s.seeds_per_replicate for n, s in specs.items()})
    return pd.DataFrame(lb.flat(rows))


def _specs(names: Iterable[str]) -> dict[str, Any]:
    """The registered task specs of ``names`` (a task no longer registered is ranked with the defaults)."""
    from advbench.registry import default_registry

    reg, specs = default_registry(), {}
    for name in names:
        try:
            specs[name] = reg.spec(name)
        except UsageError:
            pass
    return specs


# ------------------------------------------------------------------ MLflow
def default_tracking_uri(results: Path) -> str:
    """``sqlite:///`` of ``mlflow.db`` in the folder that holds ``results``."""
    return f"sqlite:///{(Path(results).resolve().parent / 'mlflow.db').as_posix()}"


def _ms(when: _dt.datetime, seconds: float = 0.0) -> int:
    return int(round(when.timestamp() * 1000 + seconds * 1000))


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _key(name: str) -> str:
    from mlflow.utils.validation import MAX_ENTITY_KEY_LENGTH

    return _BAD_KEY.sub("_", str(name))[:MAX_ENTITY_KEY_LENGTH]


def record_key(rec: dict[str, Any]) -> str:
    """The record's own run id, which names its MLflow run (a hash of its identity and creation time
    for a record without a plain one)."""
    rid = rec.get("run_id")
    if isinstance(rid, str) and _SAFE_ID.fullmatch(rid):
        return rid
    import hashlib

    from advbench.plan import Run

    return hashlib.sha256(repr((Run.from_record(rec).key(), rec["created_utc"])).encode()).hexdigest()[:16]


def flat_params(config: Any, prefix: str = "") -> dict[str, str]:
    """A nested config as MLflow params: keys joined with ``.``, lists as JSON, values cut to MLflow's
    length limit."""
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    out: dict[str, str] = {}
    if isinstance(config, dict) and (config or not prefix):
        for k, v in config.items():
            out.update(flat_params(v, f"{prefix}{k}."))
        return out
    text = config if isinstance(config, str) else json.dumps(config, default=str)
    if len(text) > MAX_PARAM_VAL_LENGTH:
        text = text[:MAX_PARAM_VAL_LENGTH - 3] + "..."
    return {_key(prefix[:-1]): text}


def mlflow_tags(rec: dict[str, Any], results: Path) -> dict[str, str]:
    from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

    from advbench.plan import Run

    run = Run.from_record(rec)
    unit = str((rec.get("throughput") or {}).get("unit") or "")
    tags = {k: str(getattr(run, k)) for k in ("task", "task_version", "variant", "method", "profile", "budget",
                                               "seed", "threads", "isolation")}
    tags.update(sealed=str(run.sealed).lower(), status=rec["status"], primary_metric=rec["primary_metric"],
                task_id=str(rec.get("task_id") or f"{run.task}-v{run.task_version}"),
                method_role=str(rec.get("method_role", "")), work_unit=unit[:-2] if unit.endswith("/s") else unit)
    tags[RUN_ID_TAG] = record_key(rec)
    tags["advbench.record"] = Path(rec["_path"]).relative_to(Path(results)).as_posix()
    commit = (rec.get("environment") or {}).get("commit")
    if isinstance(commit, str) and commit:
        tags["mlflow.source.git.commit"] = commit
    lines = str(rec.get("error") or "").strip().splitlines()
    if lines:
        tags["error"] = lines[0][:MAX_TAG_VAL_LENGTH]
    return tags


def mlflow_metrics(rec: dict[str, Any]) -> list[tuple[str, float, int, int]]:
    """(key, value, timestamp in ms, step) of every metric the run logs: the final metrics and the
    harness's measures at the final step, the curve at the work done by each point."""
    row = _record_row(rec)
    end = _dt.datetime.fromisoformat(rec["created_utc"].replace("Z", "+00:00"))
    timings = rec["timings"]
    spent = [_number(timings.get(k)) or 0.0 for k in ("setup_seconds", "train_seconds", "eval_seconds")]
    start = _ms(end, -sum(spent))  # about when training began: the record is made at the end
    curve = rec.get("curve") or []
    work = _number((rec.get("throughput") or {}).get("work"))
    if work is None:
        work = _number(curve[-1].get("work")) if curve else None
    final_step, end_ms = int(round(work or 0)), _ms(end)
    out = [(_key(k), float(v), end_ms, final_step) for k, v in rec["metrics"].items() if _number(v) is not None]
    for field, name in MEASURES.items():
        value = _number(row[field])
        if value is not None:
            out.append((_key(name if name not in rec["metrics"] else f"advbench/{name}"), value, end_ms, final_step))
    ts = start
    for point in curve:
        step = int(round(_number(point.get("work")) or 0))
        seconds = _number(point.get("train_seconds"))
        # Each point a millisecond of its own at least: MLflow keeps one of two equal (step, time, value).
        ts = max(ts + 1, start + int(round((spent[0] + (seconds or 0.0)) * 1000)))
        values = dict(point.get("metrics") or {}, train_seconds=seconds)
        out += [(_key(f"curve/{k}"), float(v), ts, step) for k, v in values.items() if _number(v) is not None]
    return out


def _chunks(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def export_record(client, experiment_id: str, rec: dict[str, Any], results: Path) -> bool:
    """Make the MLflow run of ``rec`` in ``experiment_id`` unless a finished one exists; True if made."""
    from mlflow.entities import Metric, Param, ViewType
    from mlflow.utils.validation import MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH

    key = record_key(rec)
    found = client.search_runs([experiment_id], filter_string=f"tags.`{RUN_ID_TAG}` = '{key}'",
                               run_view_type=ViewType.ACTIVE_ONLY, max_results=10)
    if any(r.data.tags.get(DONE_TAG) for r in found):
        return False
    for cut_short in found:
        client.delete_run(cut_short.info.run_id)
    metrics = mlflow_metrics(rec)
    end = _dt.datetime.fromisoformat(rec["created_utc"].replace("Z", "+00:00"))
    start_ms = min([ts for _, _, ts, _ in metrics] + [_ms(end)])
    tags = mlflow_tags(rec, results)
    name = f"{tags['task_id']}:{rec['method']} {rec['variant']} {rec['profile']} {rec['budget']} seed {rec['seed']}"
    run_id = client.create_run(experiment_id, start_time=start_ms, tags=tags, run_name=name).info.run_id
    params = [Param(k, v) for k, v in flat_params((rec.get("config") or {}).get("method") or {}).items()]
    for chunk in _chunks(params, MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, params=chunk)
    for chunk in _chunks([Metric(k, v, ts, step) for k, v, ts, step in metrics], MAX_METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=chunk)
    record_file = Path(rec["_path"])
    client.log_dict(run_id, rec.get("environment") or {}, "environment.json")
    client.log_text(run_id, record_file.read_text(encoding="utf-8"), "record.json")
    for art in rec.get("artifacts") or []:  # the public files beside the record, never a path elsewhere
        path = record_file.with_name(str(art))
        if "/" not in str(art) and not str(art).startswith(".") and path.is_file():
            client.log_artifact(run_id, str(path), "artifacts")
    client.set_terminated(run_id, status="FINISHED" if rec["status"] == "ok" else "FAILED", end_time=_ms(end))
    client.set_tag(run_id, DONE_TAG, "true")
    return True


def _experiment(client, name: str, tracking_uri: str) -> str:
    """The experiment's id, made where missing (beside a local SQLite store, with its artifacts in
    ``mlartifacts/`` next to the database file rather than in the current folder)."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage != "active":
            raise UsageError(f"--experiment {name!r} is deleted in {tracking_uri}; restore it or name another")
        return exp.experiment_id
    location = None
    database = tracking_uri[len("sqlite:///"):].partition("?")[0] if tracking_uri.startswith("sqlite:///") else ""
    if database and database != ":memory:":
        location = (Path(database).resolve().parent / "mlartifacts").as_uri()
    return client.create_experiment(name, artifact_location=location)


def export_mlflow(results: Path, tracking_uri: str, experiment: str, records: list[dict[str, Any]]) -> tuple[int, int]:
    """Export ``records`` (read from ``results``); (made, already there)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        experiment_id = _experiment(client, experiment, tracking_uri)
    except UsageError:
        raise
    except Exception as exc:  # a URI MLflow cannot use: said in one line
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise UsageError(f"--tracking-uri {tracking_uri}: {first}") from exc
    made = sum(export_record(client, experiment_id, rec, results) for rec in records)
    return made, len(records) - made


def export_command(
    to: str = typer.Option(..., "--to", help="Where to: mlflow."),
    tracking_uri: Optional[str] = typer.Option(
        None, "--tracking-uri",
        help="MLflow tracking URI: a server (http://HOST:PORT) or a database. Default: sqlite:///mlflow.db in the "
             "folder that holds --results (artifacts in mlartifacts/ beside it)."),
    experiment: str = typer.Option(DEFAULT_EXPERIMENT, "--experiment", help="MLflow experiment (made if missing)."),
    results: Path = typer.Option(Path("results"), "--results", help="Results directory."),
) -> None:
    """Export the run records to MLflow: one MLflow run per record, exported once.

    Tags name the run (task, version, variant, method, profile, budget, seed, sealed, status); the
    method's config becomes params; final metrics, time to target, training time, throughput and
    peak memory become metrics, the learning curve step metrics (curve/...) over the task's work
    unit; the environment manifest and the record are artifacts. Exporting again adds nothing.
    """
    import importlib.util

    if to not in TARGETS:
        raise unknown("export target", to, TARGETS)
    _check_results(results, "--results")
    if not experiment.strip():
        raise UsageError("--experiment is empty")
    if importlib.util.find_spec("mlflow") is None:
        raise UsageError(f"--to mlflow needs mlflow, which is not installed: {INSTALL_HINT}")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # an export sends nothing anywhere else
    # A server that does not answer: a one-line error within about a minute, not after MLflow's
    # default seven retries with exponential back-off of two minutes each.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    uri = tracking_uri or default_tracking_uri(results)
    problems: list[str] = []
    records = _records(results, problems)
    for p in problems:
        typer.echo(f"warning: {p}", err=True)
    made, kept = export_mlflow(results, uri, experiment, records)
    typer.echo(f"exported {len(records)} record(s) of {results} to {uri} (experiment {experiment!r}): {made} new, "
               f"{kept} already there")
    if uri.startswith("sqlite:///"):
        typer.echo(f"view them: mlflow ui --backend-store-uri {uri}")
