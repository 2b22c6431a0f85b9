"""Records where users already look: `advbench export --to mlflow` (read back through MLflow's own
client, from a local SQLite store and from a real `mlflow server` on loopback) and the pandas API
(``advbench.load_records``, ``advbench.leaderboard_frame``) against the leaderboard's own numbers."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from advbench.cli import app
from advbench.errors import UsageError

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "results"
ADVBENCH = [sys.executable, "-m", "advbench.cli"]
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true"}  # MLflow sends nothing off this machine


@pytest.fixture(scope="module", autouse=True)
def _no_telemetry(tmp_path_factory):
    """MLflow quiet, and its lock files (``db_init_lock-<hash>`` per SQLite store, in the temporary
    folder, never removed) in this module's own folder instead of the machine's /tmp."""
    own_tmp = str(tmp_path_factory.mktemp("mlflow-tmp"))
    with pytest.MonkeyPatch.context() as mp:
        for k, v in QUIET.items():
            mp.setenv(k, v)
        mp.setenv("TMPDIR", own_tmp)  # the CLI's and the server's subprocesses
        mp.setattr(tempfile, "tempdir", own_tmp)  # this process's MLflow client
        yield


def _sample(dest: Path, per_folder: int = 1, tasks: int | None = None) -> Path:
    """A results folder with the first ``per_folder`` committed records of every task and method (of
    the first ``tasks`` task folders), with the artifacts beside them."""
    results = dest / "results"
    folders = sorted(p for p in (COMMITTED / "runs").glob("*/*") if p.is_dir())
    if tasks is not None:
        keep = sorted({f.parent.name for f in folders})[:tasks]
        folders = [f for f in folders if f.parent.name in keep]
    for folder in folders:
        for rec in sorted(folder.glob("*.json"))[:per_folder]:
            target = results / rec.relative_to(COMMITTED)
            target.parent.mkdir(parents=True, exist_ok=True)
            for f in folder.glob(rec.stem + ".*"):
                shutil.copy2(f, target.parent / f.name)
    return results


def _records(results: Path) -> list[dict]:
    from advbench.records import iter_records

    return list(iter_records(results))


def _runs(client, experiment="advbench"):
    exp = client.get_experiment_by_name(experiment)
    runs, token = [], None
    while True:
        page = client.search_runs([exp.experiment_id], max_results=1000, page_token=token)
        runs += page
        token = page.token
        if not token:
            return runs


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _check_runs(client, results: Path, experiment: str = "advbench", artifacts: bool = True) -> int:
    """Every record of ``results`` has exactly one MLflow run whose tags, params, metrics and curves
    are the record's; the number of runs."""
    from advbench.export import flat_params

    recs = _records(results)
    runs = _runs(client, experiment)
    by_id = {r.data.tags["advbench.run_id"]: r for r in runs}
    assert len(runs) == len(by_id) == len(recs)
    for rec in recs:
        run = by_id[rec["run_id"]]
        tags, where = run.data.tags, rec["_path"]
        for key in ("task", "variant", "method", "profile", "budget", "status"):
            assert tags[key] == rec[key], (where, key)
        assert (tags["task_version"], tags["seed"]) == (str(rec["task_version"]), str(rec["seed"]))
        assert tags["sealed"] == str(bool(rec.get("sealed"))).lower()
        # A run that ended otherwise (nerf-v2's hash grid at its time cap) is an MLflow run that FAILED.
        assert tags["advbench.exported"] == "true"
        assert run.info.status == ("FINISHED" if rec["status"] == "ok" else "FAILED"), (where, rec["status"])
        assert tags["work_unit"] == rec["throughput"]["unit"].removesuffix("/s")
        assert run.data.params == flat_params(rec["config"]["method"]), where
        for name, value in rec["config"]["method"].items():  # a plain value is the param, as text
            if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                assert run.data.params[name] == (value if isinstance(value, str) else json.dumps(value)), where
        for name, value in rec["metrics"].items():
            if value is not None:
                assert _same(run.data.metrics[name], value), (where, name)
        assert run.data.metrics.get("train_seconds") == rec["timings"]["train_seconds"]
        assert run.data.metrics.get("peak_rss_bytes") == rec["memory"]["peak_rss_bytes"]
        assert run.data.metrics.get("time_to_target_seconds") == rec["time_to_target_seconds"]
        assert run.data.metrics.get("throughput") == rec["throughput"]["value"]
        names = {k for p in rec["curve"] for k in p["metrics"]} | {"train_seconds"}
        for name in names:
            want = [(int(p["work"]), float(v)) for p in rec["curve"]
                    if (v := (p["train_seconds"] if name == "train_seconds" else p["metrics"].get(name))) is not None]
            got = [(m.step, m.value) for m in sorted(client.get_metric_history(run.info.run_id, f"curve/{name}"),
                                                     key=lambda m: m.timestamp)]
            assert len(got) == len(want) and all(g[0] == w[0] and _same(g[1], w[1]) for g, w in zip(got, want)), \
                (where, name, got, want)
        if artifacts:
            files = {a.path for a in client.list_artifacts(run.info.run_id)}
            assert {"environment.json", "record.json"} <= files
            listed = {f"artifacts/{a}" for a in rec.get("artifacts") or []}
            assert {a.path for a in client.list_artifacts(run.info.run_id, "artifacts")} == listed
    return len(runs)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One committed record of every task and method, exported by the CLI to its default store."""
    pytest.importorskip("mlflow")  # "could not import": fails under CI, where the test extra installs it
    results = _sample(tmp_path_factory.mktemp("export"))
    # A curve may end on a point equal to the one before (the final evaluation, at no further work):
    # MLflow keeps one of two equal (step, time, value) entries, so the export must tell them apart.
    doubled = sorted((results / "runs").rglob("*.json"))[0]
    rec = json.loads(doubled.read_text())
    rec["curve"].append(dict(rec["curve"][-1]))
    doubled.write_text(json.dumps(rec, indent=1, sort_keys=True) + "\n")
    started = time.perf_counter()
    res = CliRunner().invoke(app, ["export", "--to", "mlflow", "--results", str(results)], env=QUIET)
    assert res.exit_code == 0, res.output
    return results, res, time.perf_counter() - started


def test_export_makes_one_mlflow_run_per_record_equal_to_it(exported):
    from mlflow.tracking import MlflowClient

    results, res, seconds = exported
    store = results.parent / "mlflow.db"  # the default: beside the results folder
    assert store.is_file() and (results.parent / "mlartifacts").is_dir()
    client = MlflowClient(f"sqlite:///{store}")
    n = _check_runs(client, results)
    assert n == len(list((results / "runs").glob("*/*"))) >= 60  # every task and method once
    assert f"{n} new, 0 already there" in res.output
    print(f"exported {n} records in {seconds:.1f} s")

    rec = _records(results)[0]
    run = client.search_runs([client.get_experiment_by_name("advbench").experiment_id],
                             filter_string=f"tags.`advbench.run_id` = '{rec['run_id']}'")[0]
    here = Path(client.download_artifacts(run.info.run_id, "record.json", str(results.parent)))
    assert here.read_bytes() == Path(rec["_path"]).read_bytes()  # the record itself, byte for byte
    env = json.loads(Path(client.download_artifacts(run.info.run_id, "environment.json", str(results.parent)))
                     .read_text())
    assert env == rec["environment"]


def test_exporting_again_adds_nothing_and_remakes_a_run_cut_short(exported):
    from mlflow.tracking import MlflowClient

    results, _, _ = exported
    client = MlflowClient(f"sqlite:///{results.parent / 'mlflow.db'}")
    before = {r.info.run_id for r in _runs(client)}
    again = CliRunner().invoke(app, ["export", "--to", "mlflow", "--results", str(results)], env=QUIET)
    assert again.exit_code == 0, again.output
    assert f"0 new, {len(before)} already there" in again.output
    assert {r.info.run_id for r in _runs(client)} == before

    victim = sorted(before)[0]  # an export killed before its last step leaves a run without the done tag
    client.delete_tag(victim, "advbench.exported")
    third = CliRunner().invoke(app, ["export", "--to", "mlflow", "--results", str(results)], env=QUIET)
    assert third.exit_code == 0, third.output
    assert f"1 new, {len(before) - 1} already there" in third.output
    after = {r.info.run_id for r in _runs(client)}
    assert len(after) == len(before) and victim not in after
    _check_runs(client, results, artifacts=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    """A real `mlflow server` on 127.0.0.1 (a free port) with a SQLite store and proxied artifacts in
    tmp_path; killed at teardown."""
    pytest.importorskip("mlflow")
    port = _free_port()
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts")],
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **QUIET})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "mlflow server did not answer in 180 s"
            time.sleep(0.5)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def test_export_to_a_real_mlflow_server_on_loopback(mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient

    results = _sample(tmp_path / "sample", tasks=3)
    args = [*ADVBENCH, "export", "--to", "mlflow", "--tracking-uri", mlflow_server, "--experiment", "board",
            "--results", str(results)]
    env = {**os.environ, **QUIET}
    first = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    n = len(_records(results))
    assert f"{n} new, 0 already there" in first.stdout
    client = MlflowClient(mlflow_server)
    assert _check_runs(client, results, "board") == n  # through the server's REST API
    runs = _runs(client, "board")
    rec = _records(results)[0]
    run = next(r for r in runs if r.data.tags["advbench.run_id"] == rec["run_id"])
    assert run.data.metrics[rec["primary_metric"]] == rec["metrics"][rec["primary_metric"]]
    got = Path(client.download_artifacts(run.info.run_id, "record.json", str(tmp_path)))
    assert got.read_bytes() == Path(rec["_path"]).read_bytes()
    assert (tmp_path / "server-artifacts").is_dir()  # uploaded through the server, stored where it keeps them
    again = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0 and f"0 new, {n} already there" in again.stdout, again.stdout + again.stderr
    assert len(_runs(client, "board")) == n
    assert not (results.parent / "mlflow.db").exists()  # the server's store, not the default one


# ------------------------------------------------------------------ pandas
def _board_rows(results: Path):
    """The leaderboard's rows as `advbench leaderboard` computes them."""
    from advbench import leaderboard as lb
    from advbench.registry import default_registry

    reg, specs = default_registry(), {}
    df = lb.load(results)
    for name in set(df["task"]):
        with contextlib.suppress(UsageError):  # a task no longer registered: ranked with the defaults
            specs[name] = reg.spec(name)
    return lb.flat(lb.aggregate(df, {n: s.primary.higher_is_better for n, s in specs.items()},
                                {n: s.seeds_per_replicate for n, s in specs.items()}))


def _equal_rows(frame, rows) -> None:
    import pandas as pd

    got = frame.to_dict("records")
    assert len(got) == len(rows)
    for g, w in zip(got, rows):
        for key, value in w.items():
            other = g[key]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                assert other is None or pd.isna(other), key
            else:
                assert other == value, (key, other, value)


def test_leaderboard_frame_has_the_boards_numbers():
    import advbench

    board = _board_rows(COMMITTED)
    frame = advbench.leaderboard_frame(COMMITTED)
    _equal_rows(frame, board)
    shown = subprocess.run([*ADVBENCH, "leaderboard", "--format", "json", "--results", str(COMMITTED)],
                           capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr
    _equal_rows(frame, json.loads(shown.stdout))  # the CLI's board: the same rows, the same numbers

    pc = advbench.leaderboard_frame(COMMITTED, task="pc", budget="full")
    assert len(pc) and set(pc["task"]) == {"pc"} and set(pc["budget"]) == {"full"}
    _equal_rows(pc, [r for r in board if r["task"] == "pc" and r["budget"] == "full"])
    v2 = advbench.leaderboard_frame(COMMITTED, task="pc-v2", method=["reference", "floor"])
    assert set(v2["task_version"]) == {2} and set(v2["method"]) == {"reference", "floor"}


def test_load_records_has_one_row_per_record_with_metrics_and_curve():
    import advbench

    recs = {r["_path"]: r for r in _records(COMMITTED)}
    df = advbench.load_records(COMMITTED)
    assert len(df) == len(recs) and set(df["path"]) == set(recs)
    for row in df.sample(n=min(40, len(df)), random_state=0).to_dict("records"):
        rec = recs[row["path"]]
        assert row["curve"] == rec["curve"] and row["config"] == rec["config"]
        for name, value in rec["metrics"].items():
            assert _same(row[f"metric.{name}"], value), name
        assert row["primary"] == rec["metrics"][rec["primary_metric"]]
        assert (row["task"], row["seed"], row["run_id"]) == (rec["task"], rec["seed"], rec["run_id"])
    chosen = advbench.load_records(COMMITTED, task="pc-v2", method="floor", seed=[0, 1])
    assert len(chosen) and set(chosen["task_id"]) == {"pc-v2"} and set(chosen["seed"]) == {0, 1}
    assert len(chosen) == sum(1 for r in recs.values() if r["task_id"] == "pc-v2" and r["method"] == "floor"
                              and r["seed"] in (0, 1))
    means = df[df["status"] == "ok"].groupby(["task", "method"])["primary"].count()
    assert means.sum() == sum(1 for r in recs.values() if r["status"] == "ok")
    with pytest.raises(TypeError, match="unknown filter 'colour'"):
        advbench.load_records(COMMITTED, colour="red")


def test_import_advbench_and_the_cli_start_up_stay_light():
    code = ("import sys; sys.argv = ['advbench', *{!r}]\n"
            "import advbench\n"
            "from advbench.cli import app\n"
            "try:\n    app()\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'numpy', 'pandas', 'mlflow', 'scipy') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    for argv in (["list"], ["--help"], ["export", "--help"]):
        res = subprocess.run([sys.executable, "-c", code.format(argv)], capture_output=True, text=True, timeout=60)
        assert "HEAVY []" in res.stdout, (argv, res.stdout + res.stderr)
    lazy = subprocess.run([sys.executable, "-c", "import sys, advbench; assert 'pandas' not in sys.modules; "
                           "f = advbench.load_records; print(f.__module__, 'pandas' in sys.modules)"],
                          capture_output=True, text=True, timeout=60)
    assert lazy.stdout.split() == ["advbench.export", "False"], lazy.stdout + lazy.stderr


# ------------------------------------------------------------------ bad input
def _bad(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    no_runs = tmp_path / "empty"
    no_runs.mkdir()
    a_file = tmp_path / "file"
    a_file.write_text("")
    private = tmp_path / "res" / "private"
    (private / "runs").mkdir(parents=True)
    (tmp_path / "res" / "runs").mkdir()
    return {
        "unknown target": (["--to", "mlfow", "--results", str(tmp_path / "res")], "did you mean 'mlflow'?"),
        "no folder": (["--to", "mlflow", "--results", str(tmp_path / "nope")], "does not exist"),
        "a file": (["--to", "mlflow", "--results", str(a_file)], "is not a directory"),
        "no runs": (["--to", "mlflow", "--results", str(no_runs)], "holds no runs/ folder"),
        "private": (["--to", "mlflow", "--results", str(private)], "is a private folder"),
    }


@pytest.mark.parametrize("case", ["unknown target", "no folder", "a file", "no runs", "private"])
def test_bad_input_exits_2_with_one_line_before_any_work(case, tmp_path):
    args, message = _bad(tmp_path)[case]
    res = subprocess.run([*ADVBENCH, "export", *args], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={**os.environ, **QUIET})
    assert res.returncode == 2, res.stdout + res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and message in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and not res.stdout
    assert not list(tmp_path.rglob("mlflow.db"))  # nothing was made


def test_missing_mlflow_says_how_to_install_it(tmp_path):
    results = tmp_path / "results"
    (results / "runs").mkdir(parents=True)
    code = ("import sys; sys.modules['mlflow'] = None  # as if it were not installed\n"
            "sys.argv = ['advbench', 'export', '--to', 'mlflow', '--results', sys.argv[1]]\n"
            "from advbench.cli import main\nmain()")
    res = subprocess.run([sys.executable, "-c", code, str(results)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stdout + res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "pip install 'advbench[mlflow]'" in res.stderr
    assert not (tmp_path / "mlflow.db").exists()
