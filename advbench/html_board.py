"""The leaderboard as a static site: ``advbench leaderboard --format html --out DIR``.

An index of tasks (reference, floor and best method per task and profile) and one page per task
version and profile, with the accuracy and speed boards of every (variant, budget, threads) group,
a speed-quality plot with the Pareto front marked, learning curves (the primary metric against
training seconds, target line and time to target), a privacy-utility curve where a task reports
``epsilon``, the images a task wrote beside its records, and each row's environment manifest on
demand. Plots are Plotly figures; ``plotly.min.js`` is written once into ``DIR`` and loaded by a
relative path, so the site works from ``file://`` with no network.

The boards are the Markdown board's: :mod:`advbench.leaderboard` aggregates the rows and writes the
accuracy and speed tables of both (integral values as integers, others to four significant digits,
a confidence interval clipped to its metric's possible range where the metric's unit gives one:
fractions and accuracies lie in [0, 1]). The index says where the records come from (CPU, threads,
dates, commits), marks versions of a task older than its current spec as superseded and lists them
after the current one, and names the best method among those that compete (ceilings apart).
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from advbench import leaderboard as lb
from advbench.leaderboard import _bounds, _finite, _interval, _mean_ci, _metric, _seeds_text

PLOTLY_JS = "plotly.min.js"
# Plotly's default qualitative palette: one colour per method, the same on every plot of a page.
COLOURS = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692", "#b6e880",
           "#ff97ff", "#fecb52")
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 76rem; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .9rem; }
th, td { border: 1px solid #ccc; padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
tr.floor td { color: #777; } tr.reference td:nth-child(2) { font-weight: 600; }
.table-scroll { overflow-x: auto; max-width: 100%; margin: .5rem 0 1rem; }
.table-scroll > table { margin: 0; }
tr.superseded td { color: #888; background: #fafafa; } tr.superseded a { color: #888; }
.superseded-by { font-size: .8rem; font-style: italic; white-space: nowrap; }
p.superseded-note { background: #fff4e5; border-left: 4px solid #f0a020; padding: .5rem .75rem; }
dl.env { display: grid; grid-template-columns: max-content auto; gap: .1rem .75rem; margin: .25rem 0; font-size: .8rem; }
dl.env dt { font-weight: 600; } dl.env dd { margin: 0; overflow-wrap: anywhere; }
section.board { border-top: 2px solid #ddd; margin-top: 2rem; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; } .plot { width: 36rem; height: 24rem; }
figure { display: inline-block; margin: .5rem; } figure img { max-width: 18rem; border: 1px solid #ddd; }
pre { max-height: 20rem; overflow: auto; font-size: .75rem; background: #fafafa; }
.note { color: #555; }
"""


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _slug(*parts: Any) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(str(p) for p in parts))


def page_name(task: str, version: int, profile: str) -> str:
    return f"task-{_slug(task, f'v{version}', profile)}.html"


def _error_y(means: list[float], halves: list[Any], metric: Any) -> dict[str, Any]:
    """Plotly error bars of mean ± half, clipped to the metric's range (so asymmetric where clipped)."""
    up, down = [], []
    for m, h in zip(means, halves):
        ends = _interval(m, h, _bounds(metric)) or (m, m)
        up.append(max(0.0, ends[1] - m))
        down.append(max(0.0, m - ends[0]))
    return {"type": "data", "symmetric": False, "array": up, "arrayminus": down, "visible": True}


class _Page:
    """One HTML page: its body parts and its plots (Plotly figures as plain dicts)."""

    def __init__(self, title: str) -> None:
        self.title, self.parts, self.n_plots = title, [], 0

    def add(self, text: str) -> None:
        self.parts.append(text)

    def plot(self, kind: str, data: list[dict[str, Any]], layout: dict[str, Any]) -> str:
        self.n_plots += 1
        div = f"plot-{self.n_plots}"
        layout = {"margin": {"l": 60, "r": 20, "t": 40, "b": 50}, **layout}
        spec = json.dumps({"data": data, "layout": layout}, allow_nan=False, default=str)
        return (f'<div class="plot" id="{div}" data-kind="{_esc(kind)}"></div>'
                f'<script>(function(){{var f={spec};Plotly.newPlot("{div}",f.data,f.layout,'
                '{displaylogo:false,responsive:true});})();</script>')

    def html(self) -> str:
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{_esc(self.title)}</title><style>{STYLE}</style>"
                f'<script src="{PLOTLY_JS}"></script></head><body>\n' + "\n".join(self.parts) + "\n</body></html>\n")


def _table(table: list[list[str]], cls: str, rows: list[dict[str, Any]], extra: list[str] | None = None) -> str:
    head, *body = table
    cells = "".join(f"<th>{_esc(h)}</th>" for h in head) + ("<th>environment</th>" if extra else "")
    out = [f'<div class="table-scroll"><table class="{cls}" data-rows="{len(body)}">'
           f"<thead><tr>{cells}</tr></thead><tbody>"]
    for i, (line, r) in enumerate(zip(body, rows)):
        tds = "".join(f"<td>{_esc(c)}</td>" for c in line) + (f"<td>{extra[i]}</td>" if extra else "")
        out.append(f'<tr class="{_esc(r["role"])}" data-method="{_esc(r["method"])}">{tds}</tr>')
    out.append("</tbody></table></div>")
    return "".join(out)


def _yes_no(v: Any) -> str:
    return "not recorded" if v is None else ("yes" if v else "no")


def _env_items(rec: dict[str, Any]) -> list[tuple[str, str]]:
    """A record's environment as (label, text) pairs, the ones a reader compares first."""
    env = rec.get("environment") or {}
    hw = env.get("hardware") or {}
    cores = hw.get("cores")  # older records do not have it
    items = [("CPU", hw.get("cpu") or "not recorded"), ("cores", "not recorded" if cores is None else str(cores)),
             ("threads", str(rec.get("threads") or hw.get("threads") or "not recorded")),
             ("profile", hw.get("profile") or rec.get("profile") or "—")]
    if hw.get("gpu"):
        items.append(("GPU", f"{hw['gpu']}" + (f" (CUDA {hw['cuda']}, driver {hw['driver']})" if hw.get("cuda") else "")))
    known = {"cpu", "cores", "threads", "profile", "gpu", "cuda", "driver", "gpu_memory_bytes"}
    items += [(k, json.dumps(v, default=str) if isinstance(v, (dict, list)) else str(v))
              for k, v in hw.items() if k not in known]
    python, calibration = env.get("python"), _finite(env.get("calibration_seconds"))
    items += [("Python", f"{python} ({env.get('implementation', '?')})" if python else "not recorded"),
              ("platform", env.get("platform") or "—"),
              ("commit", env.get("commit") or "not recorded"), ("dirty", _yes_no(env.get("dirty"))),
              ("sealed", _yes_no(rec.get("sealed"))),
              ("seal key SHA-256", (rec.get("seal_key_sha256") or "—")[:16]),
              ("calibration", "—" if calibration is None else f"{calibration:.3f} s"),
              ("run", f"{rec.get('run_id', '?')} · seed {rec.get('seed')} · {rec.get('created_utc', '?')}")]
    packages = env.get("packages") or {}
    items.append(("packages", ", ".join(f"{k} {v}" for k, v in sorted(packages.items())) or "—"))
    return items


def _manifest(recs: list[dict[str, Any]]) -> str:
    """The latest record's environment as a definition list; its raw JSON in a collapsed block within."""
    if not recs:
        return "—"
    latest = max(recs, key=lambda r: r["created_utc"])
    env = {"seed": latest["seed"], "threads": latest.get("threads"), "sealed": latest.get("sealed"),
           "seal_key_sha256": latest.get("seal_key_sha256"), "run_id": latest["run_id"],
           **(latest.get("environment") or {})}
    items = "".join(f'<dt>{_esc(k)}</dt><dd data-field="{_esc(k)}">{_esc(v)}</dd>' for k, v in _env_items(latest))
    return (f'<details class="env"><summary>seed {latest["seed"]}</summary><dl class="env">{items}</dl>'
            f'<details class="raw"><summary>raw JSON</summary><pre>{_esc(json.dumps(env, indent=1, default=str))}'
            "</pre></details></details>")


def _pareto(points: list[tuple[float, float, str]], higher_is_better: bool) -> list[tuple[float, float, str]]:
    """The points no other point beats on both training time (lower) and quality."""
    sign = 1 if higher_is_better else -1
    front, best = [], -math.inf
    for x, y, name in sorted(points, key=lambda p: (p[0], -sign * p[1])):
        if sign * y > best:
            front.append((x, y, name))
            best = sign * y
    return front


def _speed_quality(page: _Page, g: list[dict[str, Any]], colour: dict[str, str], primary: str, hib: bool,
                   metric: Any = None) -> str:
    pts = [(r["train_seconds"], r["mean"], r["method"]) for r in g
           if _finite(r["train_seconds"]) is not None and _finite(r["mean"]) is not None]
    if not pts:
        return ""
    data = [{"type": "scatter", "mode": "markers", "name": r["method"], "x": [r["train_seconds"]], "y": [r["mean"]],
             "error_y": _error_y([r["mean"]], [r["ci95"]], metric),
             "marker": {"size": 11, "color": colour[r["method"]]}}
            for r in g if _finite(r["train_seconds"]) is not None and _finite(r["mean"]) is not None]
    front = _pareto(pts, hib)
    data.append({"type": "scatter", "mode": "lines+markers", "name": "Pareto front", "x": [p[0] for p in front],
                 "y": [p[1] for p in front], "line": {"dash": "dot", "color": "#444"},
                 "marker": {"symbol": "star-open", "size": 16, "color": "#444"}})
    layout = {"title": {"text": "speed and quality"}, "xaxis": {"title": {"text": "training time (s)"}, "type": "log"},
              "yaxis": {"title": {"text": f"{primary} (mean ± 95% CI)"}}}
    return page.plot("speed-quality", data, layout)


def _learning_curves(page: _Page, g: list[dict[str, Any]], recs: dict[str, dict[str, Any]], colour: dict[str, str],
                     primary: str, threshold: float | None) -> str:
    """Every seed's curve against training seconds, or (a button) against the task's work unit:
    trials, evaluations, env steps. × marks each run's first checkpoint that met the target."""
    data, by_seconds, by_work, longest = [], [], [], 0
    unit = (g[0].get("throughput_unit") or "").removesuffix("/s").strip() or "work"
    for r in g:
        shown = False
        for path in r["paths"]:
            rec = recs.get(path)
            if rec is None or rec["status"] != "ok":
                continue
            pts = [(p.get("train_seconds"), p.get("work"), (p.get("metrics") or {}).get(primary))
                   for p in rec.get("curve") or []]
            pts = [(x, w, y) for x, w, y in pts if _finite(x) is not None and _finite(y) is not None]
            longest = max(longest, len(pts))
            if not pts:
                continue
            data.append({"type": "scatter", "mode": "lines+markers", "name": r["method"], "legendgroup": r["method"],
                         "showlegend": not shown, "x": [p[0] for p in pts], "y": [p[2] for p in pts],
                         "line": {"color": colour[r["method"]], "width": 1}, "marker": {"size": 4},
                         "hovertext": f"{r['method']} seed {rec['seed']}"})
            by_seconds.append([p[0] for p in pts])
            by_work.append([_finite(p[1]) for p in pts])
            shown = True
            hit = next((t for t in rec.get("targets") or [] if t.get("metric") == primary), None)
            ttt = _finite(rec.get("time_to_target_seconds"))
            if ttt is not None and threshold is not None:
                data.append({"type": "scatter", "mode": "markers", "legendgroup": r["method"], "showlegend": False,
                             "x": [ttt], "y": [threshold], "hovertext": f"{r['method']} seed {rec['seed']}: target at {ttt:.1f} s",
                             "marker": {"symbol": "x", "size": 10, "color": colour[r["method"]]}})
                by_seconds.append([ttt])
                by_work.append([_finite((hit or {}).get("work_to_target"))])
    if longest < 2:  # one point per run is not a curve
        return ""
    layout: dict[str, Any] = {"title": {"text": "learning curves (× marks time to target)"},
                              "xaxis": {"title": {"text": "training seconds"}}, "yaxis": {"title": {"text": primary}}}
    if any(w is not None for ws in by_work for w in ws):
        # The title at the top of the figure, the buttons in a band of their own between it and the plot.
        layout["title"].update({"yref": "container", "y": 1, "yanchor": "top", "pad": {"t": 8}})
        layout["margin"] = {"l": 60, "r": 20, "t": 90, "b": 50}
        layout["updatemenus"] = [{"type": "buttons", "direction": "right", "x": 0, "xanchor": "left",
                                  "y": 1, "yanchor": "bottom", "pad": {"b": 6, "t": 0},
                                  "buttons": [
                                      {"label": "x: seconds", "method": "update",
                                       "args": [{"x": by_seconds}, {"xaxis.title.text": "training seconds"}]},
                                      {"label": f"x: {unit}", "method": "update",
                                       "args": [{"x": by_work}, {"xaxis.title.text": unit}]}]}]
    if threshold is not None:
        layout["shapes"] = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": threshold, "y1": threshold,
                             "line": {"dash": "dash", "color": "#888"}}]
        layout["annotations"] = [{"xref": "paper", "x": 1, "y": threshold, "text": f"target {threshold:g}",
                                  "showarrow": False, "xanchor": "right", "yanchor": "bottom"}]
    return page.plot("learning-curve", data, layout)


def _privacy_utility(page: _Page, rows: list[dict[str, Any]], colour: dict[str, str], primary: str,
                     metric: Any = None) -> str:
    """Accuracy against the recorded epsilon, per variant family (the prefix before the first '-'),
    method, budget; rows without a finite epsilon (the non-private variants) as dashed lines."""
    out = []
    for (family, budget), fam in lb._groupby(rows, lambda r: (r["variant"].split("-")[0], r["budget"])):
        data, shapes = [], []
        for method, mr in lb._groupby(fam, lambda r: r["method"]):
            pts = sorted((_finite(r["metrics"].get("epsilon")), r["mean"], r["ci95"]) for r in mr
                         if _finite(r["metrics"].get("epsilon")) and _finite(r["mean"]) is not None)
            if pts:
                data.append({"type": "scatter", "mode": "lines+markers", "name": method, "x": [p[0] for p in pts],
                             "y": [p[1] for p in pts], "line": {"color": colour[method]},
                             "error_y": _error_y([p[1] for p in pts], [p[2] for p in pts], metric)})
            for r in mr:
                eps = r["metrics"].get("epsilon")
                if (eps is None or (isinstance(eps, float) and math.isinf(eps))) and _finite(r["mean"]) is not None:
                    shapes.append({"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": r["mean"], "y1": r["mean"],
                                   "line": {"dash": "dash", "color": colour[method]}})
        if data:
            layout = {"title": {"text": f"privacy-utility: {family} ({budget}); dashed: ε = ∞"},
                      "xaxis": {"title": {"text": "ε (the harness's accountant)"}, "type": "log"},
                      "yaxis": {"title": {"text": primary}}, "shapes": shapes}
            out.append(page.plot("privacy-utility", data, layout))
    return "".join(out)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg")


def _images(g: list[dict[str, Any]], recs: dict[str, dict[str, Any]], out_dir: Path) -> str:
    figs = []
    for r in g:
        for path in r["paths"]:
            rec = recs.get(path)
            for name in (rec or {}).get("artifacts") or []:
                src = Path(path).parent / name
                if not src.is_file() or src.suffix.lower() not in IMAGE_SUFFIXES:  # logs are artifacts too
                    continue
                rel = Path("img") / rec["task_id"] / r["method"] / name
                (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, out_dir / rel)
                figs.append(f'<figure><img src="{_esc(rel.as_posix())}" alt="{_esc(name)}">'
                            f"<figcaption>{_esc(r['method'])}, seed {rec['seed']}</figcaption></figure>")
    return ('<h4>images the task wrote (left or top: the method; the real data beside it)</h4><div class="images">'
            + "".join(figs) + "</div>") if figs else ""


def _headline(rows: list[dict[str, Any]], spec: Any) -> list[dict[str, Any]]:
    """The board an index row summarises: full budget before quick, then the spec's variant order."""
    order = list(getattr(spec, "variants", {}) or {})
    boards = lb._groupby(rows, lambda r: (r["variant"], r["budget"], r["threads"], r["sealed"]))
    key = lambda kv: (kv[0][1] != "full", order.index(kv[0][0]) if kv[0][0] in order else len(order),  # noqa: E731
                      kv[0][3], kv[0][2])
    return sorted(boards, key=key)[0][1]


def _cell(r: dict[str, Any] | None, metric: Any = None) -> str:
    if r is None:
        return "—"
    return _mean_ci(r["mean"], r["ci95"], r["replicates"], metric)


def _is_ceiling(r: dict[str, Any], spec: Any) -> bool:
    """A method that bounds the board from above (oracle, joint or centralised training): never the best entrant."""
    return r["role"] == "ceiling" or r["method"] in (getattr(spec, "ceiling_methods", ()) or ())


def _targets_text(r: dict[str, Any]) -> str:
    """Whether a row's runs met their targets: all seeds, some, none (of the runs, failed ones included)."""
    runs = r["seeds"] + r["failed"]
    met = r["targets_met"]
    if met is None:
        return "no target"
    word = "all seeds" if met == runs and runs else ("none" if met == 0 else "some seeds")
    return f"{word} ({met}/{runs})"


def _span(values: list[str]) -> str:
    values = sorted(values)
    return values[0] if values[0] == values[-1] else f"{values[0]} to {values[-1]}"


def _provenance(recs: list[dict[str, Any]]) -> str:
    """One line on where the records come from: CPU models and cores, threads, dates, commits."""
    if not recs:
        return ""
    hws = [((r.get("environment") or {}).get("hardware") or {}) for r in recs]
    # The vector instruction set beside the model: one seed's float32 numbers differ between them.
    cpus = Counter(str(hw.get("cpu") or "CPU not recorded") + (f", {hw['vector_isa']}" if hw.get("vector_isa") else "")
                   for hw in hws)
    cpu_text = "; ".join(f"{c} ({n} record{'s' if n != 1 else ''})" for c, n in cpus.most_common())
    cores = sorted({str(hw["cores"]) for hw in hws if hw.get("cores") is not None})
    threads = sorted({int(t) for r, hw in zip(recs, hws) if (t := r.get("threads") or hw.get("threads"))})
    dated = sorted(recs, key=lambda r: r["created_utc"])
    commits = [c for r in dated if (c := (r.get("environment") or {}).get("commit"))]
    dirty = sum(bool((r.get("environment") or {}).get("dirty")) for r in recs)
    commit_text = "commit not recorded"
    if commits:
        commit_text = (f"commit {commits[0][:10]}" if len(set(commits)) == 1 else
                       f"commits {commits[0][:10]} (earliest record) to {commits[-1][:10]} (latest), "
                       f"{len(set(commits))} distinct")
        if dirty:
            commit_text += f", {dirty} record{'s' if dirty != 1 else ''} from a tree with uncommitted changes"
    return (f'<p class="provenance">Records: {len(recs)} runs on {_esc(cpu_text)}; '
            f"{_esc(', '.join(cores) + ' cores' if cores else 'core count not recorded')}; "
            f"{_esc(', '.join(map(str, threads)) or '?')} thread{'s' if threads != [1] else ''} per run; "
            f"dated {_esc(_span([r['created_utc'][:10] for r in dated]))}; {_esc(commit_text)}.</p>")


def _index_row(task: str, version: int, profile: str, name: str, page_rows: list[dict[str, Any]], spec: Any,
               n_boards: int) -> str:
    """An index row: the headline board's reference, floor, best entrant (ceilings apart) and its seeds and targets."""
    head = _headline(page_rows, spec)
    primary = head[0]["primary_metric"]
    pm = _metric(spec, primary)
    hib = pm.higher_is_better if pm is not None else True
    by_role = {r["role"]: r for r in head}
    best = next((r for r in head if r["mean"] is not None and not _is_ceiling(r, spec)), None)
    ceilings = [r for r in head if _is_ceiling(r, spec) and r["mean"] is not None]
    current = spec.version if spec is not None else version
    superseded = version < current
    best_text, seeds, met = "—", "—", "—"
    if best is not None:
        role = f" ({best['role']})" if best["role"] == "floor" else ""
        best_text = f"{_esc(best['method'])}{role}: {_cell(best, pm)}"
        seeds = _seeds_text(best)
        met = _targets_text(best)
    ceiling_text = "; ".join(f"{_esc(r['method'])}: {_cell(r, pm)}" for r in ceilings) or "—"
    label = f'<a href="{_esc(name)}">{_esc(task)}-v{version}</a>'
    if superseded:
        label += f' <span class="superseded-by">superseded by v{current}</span>'
    b = head[0]
    attrs = (f'data-task="{_esc(task)}" data-version="{version}" data-current-version="{current}" '
             f'data-profile="{_esc(profile)}" data-variant="{_esc(b["variant"])}" data-budget="{_esc(b["budget"])}" '
             f'data-threads="{_esc(b["threads"])}" data-sealed="{int(bool(b["sealed"]))}" '
             f'data-best="{_esc(best["method"] if best else "")}"')
    unit = pm.unit if pm is not None and pm.unit else "—"
    direction = "↑ higher is better" if hib else "↓ lower is better"
    return (f'<tr class="{"superseded" if superseded else "current"}" {attrs}><td>{label}</td><td>{_esc(profile)}</td>'
            f"<td>{_esc(b['variant'])} · {_esc(b['budget'])}</td><td>{_esc(primary)}</td>"
            f'<td class="unit">{_esc(unit)}</td><td class="direction">{direction}</td>'
            f"<td>{_cell(by_role.get('reference'), pm)}</td><td>{_cell(by_role.get('floor'), pm)}</td>"
            f'<td class="best">{best_text}</td><td class="seeds">{seeds}</td><td class="targets">{_esc(met)}</td>'
            f'<td class="ceiling">{ceiling_text}</td><td>{n_boards}</td></tr>')


def build(rows: list[dict[str, Any]], recs: dict[str, dict[str, Any]], specs: dict[str, Any], out_dir: Path,
          *, results_dir: Path, targets: dict[tuple[str, str, str], str] | None = None) -> list[Path]:
    """Write the site for the aggregated ``rows`` (``leaderboard.aggregate``) into ``out_dir``.

    ``recs`` maps a record's path to the record (for curves, images and manifests). Returns the
    pages written, the index first.
    """
    from plotly.offline import get_plotlyjs

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    js = out_dir / PLOTLY_JS
    if not js.exists():
        js.write_text(get_plotlyjs(), encoding="utf-8")
    targets = targets or {}
    index = _Page("advbench leaderboard")
    index.add("<h1>advbench leaderboard</h1>"
              f'<p class="note">Generated by <code>advbench leaderboard --format html</code> from the run records '
              f"under <code>{_esc(Path(results_dir).as_posix())}/runs/</code>: mean ± 95% CI over seeds of each task's "
              "primary metric (an interval clipped to the metric's range is written [low, high]); the headline board "
              "of each task and profile (full budget where it exists). The best method is the best entrant: ceilings "
              "(an oracle, joint or centralised training) are listed apart. Versions older than a task's current one "
              "are marked superseded and listed after it. Each task page holds every board, the speed boards and "
              "the plots.</p>")
    index.add(_provenance([recs[p] for p in dict.fromkeys(p for r in rows for p in r["paths"]) if p in recs]))
    index.add('<div class="table-scroll"><table class="index"><thead><tr><th>task</th><th>profile</th><th>board</th>'
              "<th>primary metric</th><th>unit</th><th>direction</th><th>reference</th><th>floor</th>"
              "<th>best method</th><th>seeds (best)</th><th>targets met (best)</th><th>ceiling</th><th>boards</th>"
              "</tr></thead><tbody>")
    pages, index_rows = [], []
    by_page = sorted(lb._groupby(rows, lambda r: (r["task"], r["task_version"], r["profile"])), key=lambda kv: kv[0])
    names = {key: page_name(*key) for key, _ in by_page}
    for (task, version, profile), page_rows in by_page:
        spec = specs.get(task)
        every_version = [r for r in rows if r["task"] == task]  # an older version's board hides what the current one does
        hib = spec.primary.higher_is_better if spec is not None else True
        methods = sorted({r["method"] for r in page_rows}, key=lambda m: (m not in ("reference", "floor"), m))
        colour = {m: COLOURS[i % len(COLOURS)] for i, m in enumerate(methods)}
        name = names[(task, version, profile)]
        title = f"{task}-v{version} · {profile}" + (f" — {spec.title}" if spec is not None else "")
        page = _Page(title)
        page.add(f'<p><a href="index.html">← all tasks</a></p><h1>{_esc(title)}</h1>')
        if spec is not None and version < spec.version:
            current = names.get((task, spec.version, profile))
            link = f' (<a href="{_esc(current)}">{_esc(task)}-v{spec.version} · {_esc(profile)}</a>)' if current else ""
            page.add(f'<p class="superseded-note"><strong>Superseded by v{spec.version}.</strong> '
                     f"{_esc(task)}-v{spec.version} is the task's current version{link}; these records were scored by "
                     f"v{version}, and their numbers do not compare with the current version's.</p>")
        if spec is not None:
            page.add(f"<p>{_esc(spec.summary)}</p>")
        page.add('<p class="note">Mean ± 95% CI over seeds; an interval written [low, high] is that interval clipped '
                 "to the metric's possible range (fractions and accuracies lie in [0, 1]), as are the error bars.</p>")
        boards = lb._groupby(page_rows, lambda r: (r["variant"], r["budget"], r["threads"], r["sealed"]))
        for (variant, budget, threads, sealed), g in boards:
            where = f"{variant} · {budget} · {threads} thread{'s' if threads != 1 else ''}" + (" · sealed" if sealed else "")
            primary = g[0]["primary_metric"]
            pm = _metric(spec, primary)
            page.add(f'<section class="board" data-board="{_esc(where)}"><h2>{_esc(where)}</h2>')
            target_text = targets.get((task, variant, budget))
            if target_text:
                page.add(f"<p>Target: {_esc(target_text)}</p>")
            threshold = None
            if spec is not None:
                threshold = next((t.threshold for t in spec.targets
                                  if (t.metric, t.variant, t.budget) == (primary, variant, budget)), None)
            group_recs = [[recs[p] for p in r["paths"] if p in recs] for r in g]
            page.add("<h3>accuracy</h3>" + _table(lb.accuracy_table(g, lb.declared_metrics(spec, version, every_version), spec),
                                                  "board accuracy", g, [_manifest(rs) for rs in group_recs]))
            beside = "".join(f"<p>{_esc(line)}</p>" for line in lb.beside_note(g) if line)
            page.add("<h3>speed</h3>" + beside + _table(lb.speed_table(g), "board speed", g))
            page.add('<div class="plots">' + _speed_quality(page, g, colour, primary, hib, pm)
                     + _learning_curves(page, g, recs, colour, primary, threshold) + "</div>")
            page.add(_images(g, recs, out_dir) + "</section>")
        if spec is not None and any(m.name == "epsilon" for m in spec.metrics):
            plots = _privacy_utility(page, page_rows, colour, spec.primary_metric, spec.primary)
            if plots:
                page.add('<section class="privacy"><h2>privacy-utility</h2><div class="plots">' + plots + "</div></section>")
        path = out_dir / name
        path.write_text(page.html(), encoding="utf-8")
        pages.append(path)
        superseded = spec is not None and version < spec.version
        row = _index_row(task, version, profile, name, page_rows, spec, len(boards))
        index_rows.append(((task, superseded, -version, profile), row))  # current version first
    index.add("".join(text for _, text in sorted(index_rows, key=lambda kv: kv[0])))
    index.add("</tbody></table></div>")
    history = _asv_links(Path(results_dir), out_dir)
    if history:
        index.add(history)
    (out_dir / "index.html").write_text(index.html(), encoding="utf-8")
    return [out_dir / "index.html", *pages]


def _asv_links(results_dir: Path, out_dir: Path) -> str:
    """Links to asv's history of the benchmark suite, where ``advbench run --asv`` and ``asv publish`` left it."""
    links = []
    for folder, text in (("asv-html", "asv's published history (asv publish)"),
                         ("asv", "raw asv results (advbench run --asv)")):
        target = results_dir / folder
        if target.exists():
            page = target / "index.html" if (target / "index.html").exists() else target
            rel = os.path.relpath(page.resolve(), out_dir.resolve())
            links.append(f'<li><a href="{_esc(Path(rel).as_posix())}">{_esc(text)}</a></li>')
    return "<h2>history</h2><ul>" + "".join(links) + "</ul>" if links else ""
