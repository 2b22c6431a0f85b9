"""The ``advbench`` command line.

Start-up stays light: typer, rich and the registry (entry-point names and task specs). torch,
qiskit, pandas and the task and method modules are imported only by the commands that run them.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from advbench.errors import UsageError
from advbench.export import export_command

app = typer.Typer(
    name="advbench",
    help="Benchmark suite and leaderboard harness for advanced machine-learning techniques.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="markdown",  # a docstring's paragraph is rewrapped to the terminal, not cut mid-sentence
)
# Piped output gets wide lines rather than 80-column wrapping (rich's default off a terminal).
out = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


class BudgetName(str, Enum):
    quick = "quick"
    full = "full"


class Executor(str, Enum):
    local = "local"
    ray = "ray"


class Format(str, Enum):
    md = "md"
    csv = "csv"
    json = "json"
    html = "html"


def usage_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Bad input: one line on stderr, exit code 2, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UsageError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2)

    return wrapper


def _registry():
    from advbench.registry import default_registry

    reg = default_registry()
    for line in reg.refused:
        err.print(f"[yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)
    return reg


@app.command("list")
@usage_errors
def list_cmd() -> None:
    """Tasks, their methods and profiles, and which profiles are available here."""
    import importlib.util

    from advbench.profiles import PROFILES

    reg = _registry()
    table = Table(title="tasks", title_justify="left")
    for col in ("task", "variants", "primary metric", "methods", "profiles"):
        table.add_column(col)
    for name in reg.task_names():
        try:
            spec = reg.spec(name)
        except Exception as exc:  # a broken plugin must not hide the other tasks
            table.add_row(escape(name), "", "", "", f"[red]cannot load: {exc.__class__.__name__}: {escape(str(exc))}[/]")
            continue
        methods = []
        for m in reg.methods(name):
            role = spec.role(m)
            tag = "" if role == "plugin" else f" ({role})"  # a method that is none of the three: no tag
            extra = (getattr(spec, "method_extras", None) or {}).get(m)
            if extra and importlib.util.find_spec(extra[1]) is None:  # a top-level name: nothing is imported
                tag += f" [needs pip install 'advbench[{extra[0]}]']"
            methods.append(escape(m + tag))
        arrow = "↑" if spec.primary.higher_is_better else "↓"
        table.add_row(spec.id, ", ".join(spec.variants), f"{spec.primary_metric} {arrow}", "\n".join(methods),
                      ", ".join(spec.profiles))
    out.print(table)
    ptable = Table(title="hardware profiles", title_justify="left")
    for col in ("profile", "available here", "description"):
        ptable.add_column(col)
    for p in PROFILES.values():
        ok, why = p.available()
        ptable.add_row(p.name, "yes" if ok else f"no: {why}", p.description)
    out.print(ptable)


@app.command()
@usage_errors
def info(task: str = typer.Argument(..., help="Task name, e.g. transformer or transformer-v1")) -> None:
    """A task's data, metrics, targets, budgets, profiles and methods."""
    reg = _registry()
    spec = reg.spec(task)
    out.print(f"[bold]{escape(spec.id)}[/] — {escape(spec.title)}", highlight=False)
    out.print(spec.summary, highlight=False, markup=False)
    out.print(f"data: {spec.data}", highlight=False, markup=False)
    out.print(f"solution: {spec.solution}", highlight=False, markup=False)
    out.print(f"implementation: {spec.entry_point} (registered by {reg.source(spec.name)})", highlight=False, markup=False)
    t = Table(title="variants", title_justify="left")
    t.add_column("variant"), t.add_column("description")
    for v, d in spec.variants.items():
        t.add_row(v, d)
    out.print(t)
    t = Table(title="metrics", title_justify="left")
    for c in ("metric", "unit", "better", "description"):
        t.add_column(c)
    for m in spec.metrics:
        star = " (primary)" if m.name == spec.primary_metric else ""
        t.add_row(m.name + star, m.unit, "higher" if m.higher_is_better else "lower", m.description)
    out.print(t)
    t = Table(title="budgets and targets", title_justify="left")
    for c in ("budget", "variants", "limits", "time cap (s)", "targets"):
        t.add_column(c)
    for b in spec.budgets.values():
        targets = [tg.describe(spec.metric(tg.metric)) for tg in spec.targets if tg.budget == b.name]
        t.add_row(b.name, ", ".join(b.variants), ", ".join(f"{k}={v:g}" for k, v in b.limits.items()),
                  f"{b.max_seconds:g}", "\n".join(targets))
    out.print(t)
    out.print(f"profiles: {', '.join(spec.profiles)}; throughput unit: {spec.throughput_unit}", highlight=False, markup=False)
    methods = reg.methods(spec.name)
    out.print("methods: " + ", ".join(f"{m} ({e.source})" for m, e in methods.items()), highlight=False, markup=False)


MAX_SEEDS = 1000


@app.command()
@usage_errors
def run(
    task: Optional[List[str]] = typer.Option(None, "--task", "-t", help="Task to run (repeatable)."),
    all_tasks: bool = typer.Option(False, "--all", help="Run every registered task."),
    method: Optional[List[str]] = typer.Option(None, "--method", "-m",
                                               help="Method name (repeatable; default: the task's reference)."),
    all_methods: bool = typer.Option(False, "--all-methods", help="Run every registered method of each task."),
    profile: Optional[str] = typer.Option(None, "--profile", "-p", help="Hardware profile (default: the task's first)."),
    all_profiles: bool = typer.Option(False, "--all-profiles",
                                      help="Run on every profile of each task that is available here."),
    budget: BudgetName = typer.Option(BudgetName.quick, "--budget", "-b", help="quick (CI) or full (leaderboard)."),
    variant: Optional[List[str]] = typer.Option(None, "--variant", help="Variant(s) to run (default: the budget's)."),
    seeds: int = typer.Option(1, "--seeds", min=1, max=MAX_SEEDS, help="Number of seeds."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**31 - 1, help="First seed."),
    results: Path = typer.Option(Path("results"), "--results", help="Results directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the records as JSON on stdout."),
    check_targets: bool = typer.Option(False, "--check-targets", help="Exit 1 if any quality target is missed."),
    sealed: bool = typer.Option(False, "--sealed",
                                help="Derive held-out data from the seed and a secret key (ADVBENCH_SEAL_KEY or "
                                     "--seal-key-file)."),
    seal_key_file: Optional[Path] = typer.Option(None, "--seal-key-file",
                                                 help="With --sealed: read the key from this file (never in the "
                                                      "view of method code)."),
    force: bool = typer.Option(False, "--force", help="Run again even if an ok record of the same run exists."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, max=1024,
                                          help="Threads per run (default: ADVBENCH_THREADS, else 1)."),
    max_memory: Optional[float] = typer.Option(None, "--max-memory", min=0.05,
                                               help="Memory cap per run in GiB (default: 75% of this machine's)."),
    max_processes: Optional[int] = typer.Option(None, "--max-processes", min=8, max=1_000_000,
                                                help="Processes and threads per run, over all its jails "
                                                     "(default 512)."),
    no_jail: bool = typer.Option(False, "--no-jail",
                                 help="Debugging: method processes without the jail (bubblewrap); never ranked."),
    in_process: bool = typer.Option(False, "--in-process",
                                    help="Debugging: run methods in this process (no isolation; never ranked)."),
    asv: bool = typer.Option(False, "--asv", help="Run the selection under airspeed velocity (asv) instead."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, max=256,
                             help="Local executor: runs at a time, each in its own worker process."),
    executor: Executor = typer.Option(Executor.local, "--executor",
                                      help="local (this machine) or ray (a Ray cluster: --address, or a local one)."),
    address: Optional[str] = typer.Option(None, "--address", help="With --executor ray: the cluster, e.g. HOST:6379."),
) -> None:
    """Run methods on tasks and write one record per run under RESULTS/runs/.

    Each method runs in a fresh process in a jail of its own (bubblewrap) that never receives held-out
    data; a run that crashes, hangs or runs out of memory is recorded as such and the sweep goes on. Runs that already have an ok
    record are skipped (resume) unless --force. Exit code 1 if any run failed.
    """
    from advbench import records, runner
    from advbench.profiles import default_threads, get_profile

    reg = _registry()
    names = reg.task_names() if all_tasks else list(task or [])
    if not names:
        raise UsageError(f"name a task with --task or use --all. Valid tasks: {', '.join(reg.task_names())}")
    if all_tasks:  # a task that cannot be loaded is reported and left out, not a reason to run nothing
        loadable = []
        for name in names:
            try:
                reg.spec(name)
                loadable.append(name)
            except UsageError as exc:
                err.print(f"[yellow]warning:[/] {escape(str(exc))}; left out of --all", highlight=False, soft_wrap=True)
        names = loadable
    if all_methods and method:
        raise UsageError("give either --method or --all-methods, not both")
    if all_profiles and profile:
        raise UsageError("give either --profile or --all-profiles, not both")
    if asv and (sealed or in_process):
        raise UsageError("--asv runs the asv suite as configured; it takes neither --sealed nor --in-process")
    if address and executor is not Executor.ray:
        raise UsageError("--address goes with --executor ray")
    if executor is Executor.ray:
        if in_process or asv:
            raise UsageError("--executor ray runs each run in its own process on the cluster; it takes neither "
                             "--in-process nor --asv")
        if jobs != 1:
            raise UsageError("--jobs is the local executor's; on Ray, the cluster's CPUs decide how many runs go at once")
        from advbench.executors import check_ray_address, ray_available

        ray_available()
        if address:
            check_ray_address(address)
    if jobs > 1 and (in_process or asv):
        raise UsageError("--jobs runs each run in a worker process; it takes neither --in-process nor --asv")
    threads = default_threads() if threads is None else threads
    if seal_key_file is not None and not sealed:
        raise UsageError("--seal-key-file goes with --sealed")
    if no_jail and in_process:
        raise UsageError("give either --no-jail or --in-process, not both")
    if sealed:
        runner.seal_key(seal_key_file)  # read once, and gone from the environment; says how to set it
        runner.check_startup_code()  # no foreign code runs at interpreter start-up beside the key
    if not (no_jail or in_process or asv or os.environ.get("ADVBENCH_JAIL") == "0"):
        runner.check_jail()
    if not asv:
        records.check_writable(results)
    memory_cap = int(max_memory * 2**30) if max_memory is not None else None

    chosen = []
    for name in names:  # validate everything before running anything
        spec = reg.spec(name)
        methods = list(reg.methods(spec.name)) if all_methods else list(dict.fromkeys(method or [None]))
        profiles = ([p for p in spec.profiles if get_profile(p).available()[0]] if all_profiles else [profile])
        for m in methods:
            for p in profiles:
                spec, entry, prof = runner.check_run_args(reg, name, m, p, budget.value)
                for v in runner.resolve_variants(spec, budget.value, variant):
                    chosen.append((spec, entry, prof, v))
    if asv:
        _run_asv(sorted({p[0].name for p in chosen}), method, profile, budget.value, seeds, results)
        return
    from advbench.plan import Run

    done = set() if force else records.completed(results)
    from advbench.jail import jail_on

    isolation = "in-process" if in_process else ("no-jail" if no_jail or not jail_on() else "process")
    every = [Run(spec.name, spec.version, v, entry.name, prof.name, budget.value, s, threads=threads, sealed=sealed,
                 isolation=isolation, memory_cap=memory_cap, max_processes=max_processes,
                 needs_gpu=prof.torch_device == "cuda")
             for spec, entry, prof, v in chosen for s in range(seed, seed + seeds)]
    pending = [r for r in every if r.key() not in done]
    skipped = len(every) - len(pending)
    claims = records.Claims(results)
    mine = [r for r in pending if claims.claim(r.key())]
    if len(mine) < len(pending):
        err.print(f"{len(pending) - len(mine)} run(s) are being run by another sweep into {results}: left to it",
                  highlight=False, markup=False)
    # Claimed now, but another sweep may have finished some since the folder was read.
    done = set() if force else records.completed(results)
    pending = [r for r in mine if force or r.key() not in done]
    skipped += len(mine) - len(pending)
    recs: list[dict[str, Any]] = []
    try:
        _sweep(pending, executor, jobs, address, results, reg, as_json, recs)
    finally:
        claims.release()
    _report(recs, skipped, results, as_json, check_targets)


def _sweep(pending, executor, jobs, address, results, reg, as_json, recs) -> None:
    from advbench import runner

    if executor is Executor.ray or jobs > 1:
        from advbench import executors

        requests = pending
        where = (f"Ray ({address or 'a local instance of its own'})" if executor is Executor.ray
                 else f"{jobs} worker processes")
        err.print(f"{len(requests)} run(s) on {where}", highlight=False, markup=False)

        def on_record(rec: dict[str, Any]) -> None:
            _store(rec, results)
            recs.append(rec)
            err.print(_one_line(rec), highlight=False, markup=False, soft_wrap=True)

        if executor is Executor.ray:
            executors.run_ray(requests, on_record, address=address)
        else:
            executors.run_local_pool(requests, jobs, on_record)
    else:
        _run_here(pending, results, reg, as_json, recs)


RETRY_SECONDS = 5.0


def _store(rec: dict[str, Any], results: Path) -> dict[str, Any]:
    """Write a finished run's record; where it cannot be written (a full disk), say so in one line
    and try again every few seconds until it can: a finished run is never lost. Ctrl-C while
    waiting prints the record as JSON on stdout, then stops."""
    from advbench import runner

    said = False
    while True:
        try:
            return runner.store(dict(rec), results)
        except OSError as exc:
            if not said:
                err.print(f"error: cannot write the record of {rec['task']}:{rec['method']} {rec['variant']} seed "
                          f"{rec['seed']} under {results} ({exc.strerror or exc}); trying again every "
                          f"{RETRY_SECONDS:g} s until there is room (Ctrl-C prints it here instead)",
                          highlight=False, markup=False, soft_wrap=True)
                said = True
            try:
                time.sleep(RETRY_SECONDS)
            except KeyboardInterrupt:
                keep = {k: v for k, v in rec.items() if not k.startswith("_")}
                sys.stdout.write(json.dumps(keep, indent=1, default=str) + "\n")
                raise


def _one_line(rec: dict[str, Any]) -> str:
    """A finished run in one line: what it was, how it ended, its primary metric or its error."""
    prim = rec["metrics"].get(rec["primary_metric"])
    first = (rec["error"] or "").splitlines()[0] if rec["status"] != "ok" and rec["error"] else ""
    return (f"{rec['task']}:{rec['method']} {rec['variant']} {rec['profile']} seed {rec['seed']}: {rec['status']}"
            + (f" {rec['primary_metric']}={prim:.4g}" if prim is not None else "") + (f" {first}" if first else ""))


def _run_here(pending, results, reg, as_json, recs) -> None:
    """The runs one after another in this process: a live progress bar each on a terminal; off one
    (piped, under `| tee`, in CI), a line per finished run as it finishes."""
    from advbench import runner

    if not err.is_terminal:
        for planned in pending:
            rec = _store(runner.run_planned(planned, results_dir=None, keep_artifacts=True, registry=reg), results)
            recs.append(rec)
            err.print(_one_line(rec), highlight=False, markup=False, soft_wrap=True)
        return

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=err, transient=as_json) as progress:
        for planned in pending:
            label = escape(planned.label())
            bar = progress.add_task(label, total=1.0)

            def update(done: float, total: float, phase: str | None = None, bar=bar, label=label) -> None:
                if phase is None:  # the method's own progress
                    progress.update(bar, completed=done / max(total, 1))
                else:  # the method has ended; the harness scores what it handed in
                    progress.update(bar, completed=1.0, description=f"{label} [dim]({escape(phase)})[/]")

            rec = runner.run_planned(planned, results_dir=None, keep_artifacts=True, registry=reg, on_progress=update)
            rec = _store(rec, results)
            progress.update(bar, completed=1.0, description=label)
            recs.append(rec)
            if rec["status"] != "ok":
                first = (rec["error"] or "").splitlines()[0] if rec["error"] else ""
                err.print(f"[red]{escape(planned.label())}: {rec['status']}[/] {escape(first)}", highlight=False,
                          soft_wrap=True)


def _report(recs: list[dict[str, Any]], skipped: int, results: Path, as_json: bool, check_targets: bool) -> None:
    if skipped:
        err.print(f"skipped {skipped} run(s) that already have an ok record in {results} (--force to run them again)",
                  highlight=False, markup=False)
    if as_json:
        sys.stdout.write(json.dumps(recs, indent=1, default=str) + "\n")
    elif recs:
        _print_records(recs)
    failed = [r for r in recs if r["status"] != "ok"]
    if failed:
        err.print(f"[red]{len(failed)} of {len(recs)} run(s) failed:[/]", highlight=False)
        for r in failed:
            first = (r["error"] or "").splitlines()[0] if r["error"] else ""
            err.print(f"  {r['task']}:{r['method']} {r['variant']} {r['profile']} seed {r['seed']}: "
                      f"{r['status']}: {first}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1)
    if check_targets and not all(r["targets_met"] or not r["targets"] for r in recs):
        err.print("[red]a quality target was missed[/]")
        raise typer.Exit(1)


def _print_records(recs: list[dict[str, Any]]) -> None:
    """The runs as a table whose primary metric is never cut: on a narrow terminal the speed columns
    go (they are in the records and on the board), the metric stays whole."""
    wide = (out.width or 80) >= 120
    t = Table(title="runs", title_justify="left")
    t.add_column("run", overflow="fold")
    t.add_column("status")
    t.add_column("primary metric", no_wrap=True)
    t.add_column("targets")
    t.add_column("to target (s)", justify="right")
    t.add_column("train (s)", justify="right")
    if wide:
        t.add_column("throughput", justify="right")
        t.add_column("peak RSS", justify="right")
    for r in recs:
        prim = r["metrics"].get(r["primary_metric"])
        targets = "n/a" if not r["targets"] else ("met" if r["targets_met"] else "missed")
        ttt, thr, train = r["time_to_target_seconds"], r["throughput"]["value"], r["timings"]["train_seconds"]
        row = [escape(f"{r['task']}:{r['method']} {r['variant']} {r['profile']} {r['budget']} seed {r['seed']}"),
               r["status"], escape(f"{r['primary_metric']}={prim:.4g}") if prim is not None else "—", targets,
               f"{ttt:.1f}" if ttt is not None else "—", f"{train:.1f}" if train is not None else "—"]
        if wide:
            row += [escape(f"{thr:.4g} {r['throughput']['unit']}") if thr else "—",
                    f"{r['memory']['peak_rss_bytes'] / 2**20:.0f} MiB"]
        t.add_row(*row)
    out.print(t)
    if recs and recs[-1].get("path"):
        out.print(f"records written under {Path(recs[-1]['path']).parents[3]}/runs/", highlight=False, markup=False)


def _run_asv(tasks: list[str], methods: Optional[list[str]], profile: Optional[str], budget: str, seeds: int,
             results: Path) -> None:
    """Run the generated asv modules of ``tasks`` on the current environment and commit."""
    root = Path.cwd()
    if not (root / "asv.conf.json").exists():
        raise UsageError("--asv needs asv.conf.json in the current directory (run from the repository root)")
    env = dict(os.environ, ADVBENCH_ASV_BUDGET=budget, ADVBENCH_ASV_SEEDS=str(seeds))
    if profile:
        env["ADVBENCH_ASV_PROFILE"] = profile
    if methods:
        for method in methods:
            if method not in ("reference", "floor"):
                raise UsageError(f"--asv runs the asv suite, which tracks the reference and floor methods only, "
                                 f"not {method!r}. Valid methods with --asv: floor, reference")
        env["ADVBENCH_ASV_METHODS"] = ",".join(dict.fromkeys(methods))
    from advbench.asv_suite import machine_name

    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    bench = "|".join(f"^bench_{t.replace('-', '_')}\\." for t in tasks)
    machine = machine_name()  # per host and CPU: asv keys its history by this name
    cmd = [sys.executable, "-m", "asv", "run", "-E", f"existing:{sys.executable}", "--bench", bench,
           "--show-stderr", "--machine", machine]
    if commit:
        cmd += ["--set-commit-hash", commit]
    # asv asks about a new machine interactively; record its defaults under our name instead.
    subprocess.run([sys.executable, "-m", "asv", "machine", "--yes", "--machine", machine], env=env, check=False,
                   stdout=subprocess.DEVNULL)
    err.print("running: " + " ".join(cmd), highlight=False, markup=False, soft_wrap=True)
    code = subprocess.run(cmd, env=env).returncode
    raise typer.Exit(code)


@app.command()
@usage_errors
def leaderboard(
    task: Optional[str] = typer.Option(None, "--task", "-t", help="Only this task."),
    profile: Optional[str] = typer.Option(None, "--profile", "-p", help="Only this profile."),
    budget: Optional[BudgetName] = typer.Option(None, "--budget", "-b", help="Only this budget."),
    fmt: Format = typer.Option(Format.md, "--format", "-f", help="md (also written to RESULTS/LEADERBOARD.md), csv, json, "
                               "or html (a static site written to --out)."),
    results: Path = typer.Option(Path("results"), "--results", help="Results directory."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="With html: the site's folder (default RESULTS/site)."),
    write: bool = typer.Option(True, "--write/--no-write", help="With md: write RESULTS/LEADERBOARD.md."),
) -> None:
    """Rank methods per task and hardware profile from the stored records."""
    from advbench import leaderboard as lb
    from advbench.profiles import get_profile

    from advbench.records import check_readable

    reg = _registry()
    if task:
        task = reg.spec(task).name
    if profile:
        get_profile(profile)
    from advbench.records import iter_records

    check_readable(results)
    if out is not None and fmt is not Format.html:
        raise UsageError("--out goes with --format html")
    site = out if out is not None else Path(results) / "site"
    if fmt is Format.html:
        if site.exists() and not site.is_dir():
            raise UsageError(f"--out {site} is a file, not a folder")
        import importlib.util

        if importlib.util.find_spec("plotly") is None:
            raise UsageError("--format html draws its plots with plotly, which is not installed: "
                             "pip install 'advbench[site]'")
    problems: list[str] = []
    recs = list(iter_records(results, problems))
    df = lb.frame(recs, problems)
    for p in problems:
        err.print(f"[yellow]warning:[/] {escape(p)}", highlight=False, soft_wrap=True)
    if not df.empty:
        if task:
            df = df[df["task"] == task]
        if profile:
            df = df[df["profile"] == profile]
        if budget:
            df = df[df["budget"] == budget.value]
    specs = {}
    for name in (set(df["task"]) if not df.empty else set()):
        try:
            specs[name] = reg.spec(name)
        except UsageError:
            continue
    rows = lb.aggregate(df, {n: s.primary.higher_is_better for n, s in specs.items()},
                        {n: s.seeds_per_replicate for n, s in specs.items()})
    if fmt is Format.json:
        sys.stdout.write(json.dumps(lb.flat(rows), indent=1, default=str, allow_nan=False) + "\n")
        return
    if fmt is Format.csv:
        import pandas as pd

        sys.stdout.write(pd.DataFrame(lb.flat(rows)).to_csv(index=False))
        return
    targets = {(s.name, t.variant, t.budget): "; ".join(x.describe(s.metric(x.metric), where=False) for x in s.targets
                                                       if (x.variant, x.budget) == (t.variant, t.budget))
               for s in specs.values() for t in s.targets}
    if fmt is Format.html:
        from advbench import html_board

        try:
            pages = html_board.build(rows, {r["_path"]: r for r in recs}, specs, site, results_dir=results,
                                     targets=targets)
        except OSError as exc:
            raise UsageError(f"cannot write the site to {site}: {exc.strerror or exc}") from exc
        err.print(f"wrote {pages[0]} ({len(pages) - 1} task pages)", highlight=False, markup=False)
        return
    text = lb.to_markdown(rows, {n: s.title for n, s in specs.items()}, targets, results_dir=str(results),
                          specs=specs)
    if not write or task or profile or budget:  # a selection, or asked not to write: the Markdown itself
        sys.stdout.write(text + "\n")
        return
    from advbench.records import write_atomic

    path = Path(results) / "LEADERBOARD.md"
    try:
        write_atomic(path, text + "\n")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}; use --no-write to print only") from exc
    _summary(rows, specs, path)


def _summary(rows: list[dict[str, Any]], specs: dict[str, Any], path: Path) -> None:
    """One line per task, variant, profile and budget: the best method that is not a ceiling, with
    its primary metric and seeds."""
    best: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        if r.get("role") == "ceiling" or r.get("mean") is None or r["mean"] != r["mean"] or not r.get("seeds"):
            continue
        key = (r["task"], r["task_version"], r["variant"], r["profile"], r["budget"])
        spec = specs.get(r["task"])
        higher = spec.primary.higher_is_better if spec is not None else True
        kept = best.get(key)
        if kept is None or (r["mean"] > kept["mean"] if higher else r["mean"] < kept["mean"]):
            best[key] = r
    table = Table("task", "variant", "profile", "budget", "best method", "primary metric", "seeds",
                  title="leaderboard summary (ceilings left out)", title_justify="left")
    for _, r in sorted(best.items(), key=lambda kv: [str(x) for x in kv[0]]):
        table.add_row(escape(f"{r['task']}-v{r['task_version']}"), escape(str(r["variant"])), escape(r["profile"]),
                      escape(r["budget"]), escape(r["method"]), escape(f"{r['primary_metric']} {r['mean']:.4g}"),
                      str(r["seeds"]))
    out.print(table)
    out.print(f"wrote {path} (the whole board; --no-write prints it instead, --format html draws it)",
              highlight=False, markup=False)


@app.command()
@usage_errors
def gate(
    baseline: Path = typer.Option(..., "--baseline", help="Results directory with the accepted records."),
    candidate: Path = typer.Option(..., "--candidate", help="Results directory with the new records."),
    tolerance: float = typer.Option(0.02, "--tolerance", min=0.0,
                                    help="Minimum effect of a metric whose spec declares none, relative to the "
                                         "baseline's mean."),
    speed_threshold: float = typer.Option(1.5, "--speed-threshold", min=1.0,
                                          help="Largest allowed ratio of calibrated training time, candidate over "
                                               "baseline."),
    alpha: float = typer.Option(0.05, "--alpha", min=1e-6, max=0.5, help="Level of the one-sided tests."),
    as_json: bool = typer.Option(False, "--json", help="Print the verdicts as JSON."),
    method: Optional[str] = typer.Option(None, "--method", help="Only the candidate's runs of this method."),
    baseline_method: Optional[str] = typer.Option(
        None, "--baseline-method",
        help="Judge --method against this method of the baseline (a plugin against the reference, on the same "
             "seeds; both folders may be one)."),
    speed_baseline: Optional[Path] = typer.Option(
        None, "--speed-baseline",
        help="Results directory with runs of the baseline's code made in the same job as the candidate's (same "
             "machine, one after the other): speed is judged against these, seed for seed, in training seconds."),
) -> None:
    """Regression gate: exit 1 if the candidate's runs are worse than the baseline's.

    Every target metric and the primary metric are judged by a one-sided test (paired over the
    seeds both sides ran, Welch's otherwise) against the metric's minimum effect, so seed noise
    passes and a real drop fails; training time by its ratio to a calibration workload timed in the
    same job, or, with --speed-baseline, against runs of the baseline's code made side by side with
    the candidate's. A failed, missing or time-capped candidate run is a regression.
    """
    from advbench import gate as gate_mod
    from advbench import leaderboard as lb
    from advbench.records import check_readable

    reg = _registry()
    for d, option in ((baseline, "--baseline"), (candidate, "--candidate"),
                      *(((speed_baseline, "--speed-baseline"),) if speed_baseline is not None else ())):
        check_readable(d, option)
        if not (d / "runs").is_dir():
            raise UsageError(f"{d} holds no runs/ folder of advbench records")
    problems: list[str] = []
    if baseline_method and not method:
        raise UsageError("--baseline-method goes with --method (the candidate's method to judge against it)")
    base_df, cand_df = lb.load(baseline, problems), lb.load(candidate, problems)
    speed_df = lb.load(speed_baseline, problems) if speed_baseline is not None else None
    if method:
        if cand_df.empty or method not in set(cand_df["method"]):
            found = sorted(set(cand_df["method"])) if not cand_df.empty else []
            raise UsageError(f"{candidate} holds no runs of method {method!r}. Methods there: {', '.join(found) or 'none'}")
        cand_df = cand_df[cand_df["method"] == method].copy()
    if baseline_method:
        if base_df.empty or baseline_method not in set(base_df["method"]):
            found = sorted(set(base_df["method"])) if not base_df.empty else []
            raise UsageError(f"{baseline} holds no runs of method {baseline_method!r}. Methods there: "
                             f"{', '.join(found) or 'none'}")
        base_df = base_df[base_df["method"] == baseline_method].copy()
        cand_df["method"] = baseline_method  # paired with the baseline method's runs, group for group
    for p in problems:
        err.print(f"[yellow]warning:[/] {escape(p)}", highlight=False, soft_wrap=True)
    if cand_df.empty:
        out.print(f"[red]FAIL[/] {escape(str(candidate))} holds no candidate records", highlight=False)
        raise typer.Exit(1)
    specs = {}
    for name in set(cand_df["task"]):
        try:
            specs[name] = reg.spec(name)
        except UsageError:
            continue
    verdicts = gate_mod.judge(base_df, cand_df, specs, tolerance, speed_threshold, alpha, speed_df=speed_df)
    group_key = lambda k: (k[0], k[1], *k[3:])  # noqa: E731 - a group without its variant
    ran = {group_key(tuple(k)) for k, _ in cand_df.groupby(lb.GROUP)}
    cand_keys = {tuple(k) for k, _ in cand_df.groupby(lb.GROUP)}
    base_keys = {tuple(k) for k, _ in base_df.groupby(lb.GROUP)} if not base_df.empty else set()
    for key in sorted(base_keys - cand_keys, key=str):
        if group_key(key) in ran:
            verdicts.append(gate_mod.Verdict("/".join(str(x) for x in key), "missing", None, None,
                                             "missing from the candidate", True))
    regressions = [v for v in verdicts if v.regression]
    compared = len({v.group for v in verdicts})
    if as_json:
        sys.stdout.write(json.dumps({"compared_groups": compared, "regressions": len(regressions),
                                     "verdicts": [v.as_dict() for v in verdicts]}, indent=1, allow_nan=False,
                                    default=str) + "\n")
    else:
        from rich.table import Table

        table = Table("verdict", "group", "check", "baseline", "candidate", "how", title="regression gate")
        for v in verdicts:
            table.add_row("[red]FAIL[/]" if v.regression else "ok", v.group, v.check,
                          "—" if v.baseline is None else f"{v.baseline:.4g}",
                          "—" if v.candidate is None else f"{v.candidate:.4g}", v.detail)
        out.print(table)
        out.print(f"{compared} groups compared, {len(regressions)} regressions", highlight=False)
    if regressions:
        raise typer.Exit(1)
    if compared == 0:  # a gate that compared nothing passed nothing
        err.print(f"[red]FAIL[/] no group of {escape(str(candidate))} has a counterpart in {escape(str(baseline))} "
                  "(task version, variant, profile, budget, threads, sealing and method must match)", highlight=False)
        raise typer.Exit(1)


@app.command()
@usage_errors
def reproduce(
    record: Path = typer.Argument(..., help="A record file (results/runs/<task-id>/<method>/...json)."),
    results: Optional[Path] = typer.Option(None, "--results", help="Also write the new record here."),
) -> None:
    """Re-run a record from its manifest and compare every metric with the recorded one.

    Same task version, method, variant, profile, budget, seed and threads; exit 1 when a metric
    differs by more than the task's tolerance. Differences of environment (package versions,
    Python, commit) are printed as warnings: they may explain a difference.
    """
    import math

    from advbench import records as rec_mod
    from advbench.environment import manifest
    from advbench.runner import run as run_one

    if not record.is_file():
        raise UsageError(f"{record} is not a record file")
    try:
        old = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{record} is not readable JSON: {exc}") from exc
    why = rec_mod.problem_with(old)
    if why is not None:
        raise UsageError(f"{record}: {why}")
    reg = _registry()
    spec = reg.spec(old["task"])
    if spec.version != old["task_version"]:
        raise UsageError(f"{record} is {old['task']}-v{old['task_version']}; this advbench has {spec.id}, whose "
                         f"data, metric or budget differ: it cannot be reproduced here")
    if old.get("isolation") == "in-process":
        raise UsageError(f"{record} is an --in-process debugging run; only isolated runs are reproduced")
    if old.get("sealed"):
        import hashlib

        from advbench.runner import seal_key

        if hashlib.sha256(seal_key()).hexdigest() != old.get("seal_key_sha256"):
            raise UsageError(f"{record} was sealed with another key than the one in ADVBENCH_SEAL_KEY: its held-out "
                             f"data cannot be rebuilt")
    if results is not None:
        rec_mod.check_writable(results)
    now = manifest({})
    then = old.get("environment") or {}
    for key in ("python", "commit"):
        if then.get(key) != now.get(key):
            err.print(f"[yellow]warning:[/] {key} was {escape(str(then.get(key)))}, is {escape(str(now.get(key)))}", highlight=False)
    if then.get("dirty"):
        err.print("[yellow]warning:[/] the record was made from a checkout with uncommitted changes", highlight=False)
    for name, version in sorted((then.get("packages") or {}).items()):
        if (now.get("packages") or {}).get(name) != version:
            err.print(f"[yellow]warning:[/] {escape(str(name))} was {escape(str(version))}, is {escape(str((now.get('packages') or {}).get(name)))}",
                      highlight=False)
    new = run_one(old["task"], old["method"], profile=old["profile"], budget=old["budget"], seed=old["seed"],
                  variant=old["variant"], results_dir=results, registry=reg, sealed=bool(old.get("sealed")),
                  threads=int(old.get("threads") or 1))
    if new["status"] != "ok":
        out.print(f"[red]FAIL[/] the re-run ended {new['status']}: {escape(str(new.get('error')))}", highlight=False)
        raise typer.Exit(1)
    tol = spec.reproduce_tolerance
    table = Table("metric", "recorded", "reproduced", "difference", "within tolerance",
                  title=f"{spec.id} {old['method']} {old['variant']} seed {old['seed']} (tolerance {tol:g})")
    bad = 0
    for name in sorted(set(old["metrics"]) | set(new["metrics"])):
        a, b = old["metrics"].get(name), new["metrics"].get(name)
        ok = a is not None and b is not None and math.isclose(a, b, rel_tol=tol, abs_tol=tol)
        bad += not ok
        table.add_row(name, "—" if a is None else f"{a:.6g}", "—" if b is None else f"{b:.6g}",
                      "—" if a is None or b is None else f"{b - a:.3g}", "yes" if ok else "[red]no[/]")
    out.print(table)
    out.print(f"{bad} of {len(table.rows)} metrics outside the tolerance", highlight=False)
    if bad:
        raise typer.Exit(1)


@app.command("new-method")
@usage_errors
def new_method(
    task: str = typer.Argument(..., help="The task the method is for, e.g. pc."),
    name: str = typer.Argument(..., help="The method's name, e.g. my-search (lower case, digits, '-')."),
    directory: Path = typer.Option(Path("."), "--dir", help="Where to create the plugin's folder."),
) -> None:
    """Create an installable plugin with one method for TASK and its test (a scaffold to fill in).

    The plugin registers TASK:NAME under the advbench.methods entry points, imports the task's
    public contract only, and its test runs the method on the quick budget through the harness.
    See docs/plugins.md for the method contract and every ctx call.
    """
    from advbench.scaffold import new_method as scaffold

    reg = _registry()
    spec = reg.spec(task)
    if name in reg.methods(spec.name):
        raise UsageError(f"task {spec.name!r} has a method {name!r} already. Methods: {', '.join(reg.methods(spec.name))}")
    contract = spec.entry_point.partition(":")[0].rsplit(".", 1)[0] + ".contract"
    root = scaffold(spec.name, contract, name, directory)
    out.print(f"wrote {root}: pip install -e '{root}[test]', then pytest {root}", highlight=False, markup=False)


@app.command("asv-suite")
@usage_errors
def asv_suite(
    directory: Path = typer.Option(Path("benchmarks"), "--dir", help="asv benchmark_dir."),
    check: bool = typer.Option(False, "--check", help="Only check that the modules are up to date (exit 1 if not)."),
) -> None:
    """Generate one asv benchmark module per registered task."""
    from advbench.asv_suite import write_modules

    stale = write_modules(_registry(), directory, check=check)
    for path in stale:
        out.print(("stale: " if check else "wrote: ") + str(path), highlight=False, markup=False)
    if check and stale:
        raise typer.Exit(1)


@app.command("asv-publish")
@usage_errors
def asv_publish() -> None:
    """Publish asv's results as HTML (asv.conf.json's html_dir) that works offline: the JavaScript and
    CSS asv's pages load from CDNs are served from the pages' own vendor/ folder."""
    import json

    from advbench.asv_suite import make_offline

    conf = Path("asv.conf.json")
    if not conf.exists():
        raise UsageError("asv-publish needs asv.conf.json in the current directory (run from the repository root)")
    html_dir = Path(json.loads(conf.read_text())["html_dir"])
    code = subprocess.run([sys.executable, "-m", "asv", "publish", "--no-pull"]).returncode
    if code:
        raise typer.Exit(code)
    replaced = make_offline(html_dir)
    out.print(f"{html_dir / 'index.html'}: works offline ({len(replaced)} CDN files served from vendor/)",
              highlight=False, markup=False)


app.command("export")(usage_errors(export_command))


def main() -> None:
    """The console script. Bad input the parser catches (an unknown command or option, a value outside
    its choices) gets the harness's own form: one line on stderr naming the valid choices, exit code
    2, no box, no traceback."""
    import click

    if not sys.argv[1:]:
        app(prog_name="advbench")  # no arguments: the help, as typer shows it
        return
    try:
        code = app(prog_name="advbench", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError:
        app(prog_name="advbench")  # a group given no command: its help
        return
    except click.UsageError as e:
        message = " ".join(e.format_message().split())
        message = re.sub(r"(Did you mean [^?]*\?)(\s*\1)+", r"\1", message)  # click and typer each add one
        where = e.ctx.command_path if e.ctx is not None else "advbench"
        if isinstance(e, click.exceptions.NoSuchOption):
            message += f" See '{where} --help' for the options."
        elif e.ctx is not None and isinstance(e.ctx.command, click.Group) and "No such command" in message:
            message += f" Commands: {', '.join(e.ctx.command.list_commands(e.ctx))}."
        err.print(f"{where}: error: {message}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(2)
    except click.Abort:
        err.print("Aborted.", highlight=False, markup=False)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
