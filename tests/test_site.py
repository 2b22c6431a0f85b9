"""The HTML leaderboard, opened in a real browser: headless Chromium (Debian's), driven by playwright.

The site is generated from the committed reference records, as a user would generate it. The test
walks from the index to every task page, checks each board against the rows the records give,
checks that every plot was drawn with data, that no page logs a console error, and saves
screenshots. With ``CI`` set a missing Chromium fails the test; elsewhere it skips with the reason.
``ADVBENCH_UPDATE_SCREENSHOTS=1`` also writes the screenshots the README links (docs/).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from advbench import leaderboard as lb
from advbench import records

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
# Without these, Chromium tries Google's hosts at start and during the run; none may be reached here.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-default-apps"]


def chromium_or_skip() -> str:
    path = os.environ.get("ADVBENCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    why = ("no Chromium here: install Debian's (apt-get install chromium) or point ADVBENCH_CHROMIUM at one; "
           "a browser cannot be downloaded at test time")
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail("CI is set, so the browser test never skips: " + why)
    pytest.skip(why)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    res = subprocess.run([sys.executable, "-m", "advbench.cli", "leaderboard", "--format", "html", "--results",
                          "results", "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    return out


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")  # "could not import": fails in CI, skips elsewhere
    executable = chromium_or_skip()
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield b
        b.close()


# What each task page shows, read in the browser once per page (the pages draw dozens of Plotly
# figures each: three walks over every page took 69 s here, one walk about 30).
BOARDS_JS = """() => Array.from(document.querySelectorAll('section.board')).map(s => [s.dataset.board,
    Array.from(s.querySelectorAll('table.accuracy tbody tr')).map(r => r.dataset.method),
    Array.from(s.querySelectorAll('table.speed tbody tr')).map(r => r.dataset.method)])"""
PLOTS_JS = """() => Array.from(document.querySelectorAll('div.plot')).map(d => [d.dataset.kind,
    d.classList.contains('js-plotly-plot') && Array.isArray(d.data)
    && d.data.some(t => (t.x || []).length > 0 && (t.y || []).length > 0),
    d.querySelectorAll('svg.main-svg').length])"""
IMAGES_JS = """() => [Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length,
    document.images.length]"""
BUTTONS_JS = """() => Array.from(document.querySelectorAll('div.plot[data-kind=learning-curve]'))
    .filter(d => d.querySelector('.updatemenu-button')).map(d => {
      const r = e => { const b = e.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; };
      return {title: r(d.querySelector('.gtitle')), plot: r(d.querySelector('.nsewdrag')), div: r(d),
              buttons: Array.from(d.querySelectorAll('.updatemenu-button')).map(r), layout: d.layout}; })"""
INTERVAL_CELLS_JS = """() => Array.from(document.querySelectorAll('table.accuracy tbody tr td:nth-child(4)'))
    .map(e => e.innerText)"""
ERROR_BARS_JS = """() => Array.from(document.querySelectorAll('div.plot[data-kind=speed-quality]'))
    .flatMap(d => d.data.filter(t => t.error_y).map(t => [t.y, t.error_y.array, t.error_y.arrayminus]))"""


@pytest.fixture(scope="module")
def task_pages(site, browser) -> dict:
    """Each task page, opened once in a 1300 x 900 window: what the JS above reads on it, and the
    console errors and requests of the whole walk (``"errors"``, ``"requests"``)."""
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(f"{page.url}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
    page.on("request", lambda r: requests.append(r.url))
    seen: dict = {}
    for html_file in sorted(site.glob("task-*.html")):
        page.goto(html_file.as_uri())
        seen[html_file.name] = {"boards": page.evaluate(BOARDS_JS), "plots": page.evaluate(PLOTS_JS),
                                "images": page.evaluate(IMAGES_JS), "buttons": page.evaluate(BUTTONS_JS),
                                "interval_cells": page.evaluate(INTERVAL_CELLS_JS),
                                "error_bars": page.evaluate(ERROR_BARS_JS)}
    page.close()
    return {"pages": seen, "errors": errors, "requests": requests}


def expected_boards() -> dict[str, dict[str, set[str]]]:
    """Page file -> board label -> the methods the records give that board (what the site must show)."""
    rows = lb.aggregate(lb.load(RESULTS))
    from advbench.html_board import page_name

    out: dict[str, dict[str, set[str]]] = {}
    for r in rows:
        where = (f"{r['variant']} · {r['budget']} · {r['threads']} thread{'s' if r['threads'] != 1 else ''}"
                 + (" · sealed" if r["sealed"] else ""))
        out.setdefault(page_name(r["task"], r["task_version"], r["profile"]), {}).setdefault(where, set()).add(r["method"])
    return out


def test_the_site_renders_in_chromium_every_page_reachable_every_board_and_plot_filled(site, browser, task_pages,
                                                                                      tmp_path):
    expected = expected_boards()
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"{page.url}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))

    page.goto((site / "index.html").as_uri())
    links = page.eval_on_selector_all("table.index a", "els => els.map(e => e.getAttribute('href'))")
    assert sorted(set(links)) == sorted(expected), "every task page, and only those, is linked from the index"
    page.screenshot(path=str(tmp_path / "index.png"), full_page=True)

    plots_seen = {"speed-quality": 0, "learning-curve": 0, "privacy-utility": 0}
    images = 0
    for link in links:
        seen = task_pages["pages"][link]
        got = {where: set(acc) for where, acc, _ in seen["boards"]}
        assert got == expected[link], link
        for where, acc, speed in seen["boards"]:
            assert sorted(acc) == sorted(speed), (link, where)
        assert seen["plots"], f"{link} has no plot"
        for kind, has_data, svgs in seen["plots"]:
            assert has_data and svgs > 0, (link, kind)
            plots_seen[kind] += 1
        loaded, present = seen["images"]
        assert loaded == present, link
        images += loaded
    errors += task_pages["errors"]
    requests += task_pages["requests"]
    assert not errors, errors
    assert all(u.startswith(("file:", "data:", "about:")) for u in requests), "the site must not touch the network"
    assert plots_seen["speed-quality"] >= len(links) and plots_seen["learning-curve"] > 0
    assert plots_seen["privacy-utility"] > 0, "dp-fedavg's privacy-utility curve"
    assert images > 0, "wgan-gp's scatter plots"

    # Search tasks read better against their own work unit: the button swaps every curve's x to it.
    page.goto((site / "task-automl-v1-cpu.html").as_uri())
    curve = "document.querySelector('div.plot[data-kind=learning-curve]')"
    before = page.evaluate(f"() => {curve}.data[0].x")
    page.locator("div.plot[data-kind=learning-curve] .updatemenu-button").nth(1).click()
    page.wait_for_timeout(300)
    after = page.evaluate(f"() => {curve}.data[0].x")
    title = page.evaluate(f"() => {curve}.layout.xaxis.title.text")
    assert after != before and all(float(x).is_integer() for x in after) and title == "model fits", (after, title)

    task_page = site / "task-dp-fedavg-v1-cpu.html"
    page.goto(task_page.as_uri())
    page.screenshot(path=str(tmp_path / "task.png"), full_page=False)
    if os.environ.get("ADVBENCH_UPDATE_SCREENSHOTS") == "1":
        docs = ROOT / "docs"
        docs.mkdir(exist_ok=True)
        page.goto((site / "index.html").as_uri())
        page.screenshot(path=str(docs / "leaderboard-index.png"), full_page=True)
        page.goto((site / "task-wgan-gp-v2-cpu.html").as_uri())
        page.screenshot(path=str(docs / "leaderboard-task-wgan-gp.png"), full_page=False)
        page.goto(task_page.as_uri())
        page.evaluate("() => document.querySelector('section.privacy').scrollIntoView()")
        page.screenshot(path=str(docs / "leaderboard-task-dp-fedavg.png"), full_page=False)
    page.close()


def test_bad_site_options_are_one_line_usage_errors(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    for args, words in ((["--format", "md", "--out", str(tmp_path / "s")], "--out goes with --format html"),
                        (["--format", "html", "--out", str(blocker)], "is a file, not a folder")):
        res = subprocess.run([sys.executable, "-m", "advbench.cli", "leaderboard", "--results", str(RESULTS), *args],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 2 and words in res.stderr and "Traceback" not in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr


# ------------------------------------------------------------------ the review's defects, one test each
@functools.cache
def specs() -> dict:
    from advbench import registry

    reg = registry.default_registry()
    return {name: reg.spec(name) for name in {r["task"] for r in records.iter_records(RESULTS)}}


@functools.cache
def aggregated() -> list[dict]:
    """The rows the CLI aggregates: each task's direction and replicates, as ``advbench leaderboard`` passes them."""
    sp = specs()
    return lb.aggregate(lb.load(RESULTS), {n: s.primary.higher_is_better for n, s in sp.items()},
                        {n: s.seeds_per_replicate for n, s in sp.items()})


def index_rows(page) -> list[dict]:
    return page.eval_on_selector_all("table.index tbody tr", """els => els.map(tr => ({...tr.dataset,
        cls: tr.className, first: tr.cells[0].innerText,
        cell: Object.fromEntries(Array.from(tr.cells).filter(c => c.className)
                                          .map(c => [c.className, c.innerText]))}))""")


def board_of(rows: list[dict], ix: dict) -> list[dict]:
    """The aggregated rows of the board an index row summarises, in rank order."""
    key = lambda r: (r["task"], str(r["task_version"]), r["profile"], r["variant"], r["budget"],  # noqa: E731
                     str(r["threads"]), str(int(bool(r["sealed"]))))
    return [r for r in rows if key(r) == (ix["task"], ix["version"], ix["profile"], ix["variant"], ix["budget"],
                                          ix["threads"], ix["sealed"])]


def is_ceiling(r: dict, spec) -> bool:
    return r["role"] == "ceiling" or r["method"] in spec.ceiling_methods


def test_index_gives_unit_direction_seeds_targets_and_where_the_records_come_from(site, browser):
    rows, sp = aggregated(), specs()
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    page.goto((site / "index.html").as_uri())
    line = page.inner_text("p.provenance")
    behind = {p for r in rows for p in r["paths"]}
    recs = sorted((r for r in records.iter_records(RESULTS) if r["_path"] in behind), key=lambda r: r["created_utc"])
    assert recs
    for cpu in {r["environment"]["hardware"]["cpu"] for r in recs}:
        assert cpu in line, (cpu, line)
    threads = {r.get("threads") or r["environment"]["hardware"]["threads"] for r in recs}
    assert "core" in line and all(str(t) in line for t in threads) and " thread" in line, line
    assert recs[0]["created_utc"][:10] in line and recs[-1]["created_utc"][:10] in line, line
    assert recs[0]["environment"]["commit"][:10] in line and recs[-1]["environment"]["commit"][:10] in line, line
    shown = index_rows(page)
    assert shown
    for ix in shown:
        spec = sp[ix["task"]]
        assert ix["cell"]["unit"] == spec.primary.unit, ix
        assert ("higher is better" if spec.primary.higher_is_better else "lower is better") in ix["cell"]["direction"], ix
        best = next(r for r in board_of(rows, ix) if r["method"] == ix["best"])
        assert ix["cell"]["seeds"].split()[0] == str(best["seeds"]), (ix, best["seeds"])
        runs, met = best["seeds"] + best["failed"], best["targets_met"]
        word = ("no target" if met is None else "all seeds" if met == runs else "none" if met == 0 else "some seeds")
        assert ix["cell"]["targets"].startswith(word) and (met is None or f"{met}/{runs}" in ix["cell"]["targets"]), ix
    assert any(ix["cell"]["targets"].startswith("some seeds") for ix in shown), "no best method met only some seeds"
    page.close()


def test_index_best_method_is_the_best_entrant_and_ceilings_are_shown_apart(site, browser):
    rows, sp = aggregated(), specs()
    page = browser.new_page()
    page.goto((site / "index.html").as_uri())
    beaten_by_ceiling = 0
    for ix in index_rows(page):
        spec, board = sp[ix["task"]], board_of(rows, ix)
        entrants = [r for r in board if r["mean"] is not None and not is_ceiling(r, spec)]
        ceilings = [r for r in board if r["mean"] is not None and is_ceiling(r, spec)]
        assert ix["best"] == entrants[0]["method"], (ix, [r["method"] for r in board])
        assert ix["cell"]["best"].startswith(entrants[0]["method"]), ix
        for c in ceilings:
            assert c["method"] in ix["cell"]["ceiling"], ix
        beaten_by_ceiling += bool(ceilings) and board[0]["method"] in {c["method"] for c in ceilings}
    assert beaten_by_ceiling >= 2, "maddpg's oracle and fedavg's centralised training top their boards"
    page.close()


def test_superseded_versions_are_marked_de_emphasised_and_listed_after_the_current_one(site, browser):
    sp = specs()
    page = browser.new_page()
    page.goto((site / "index.html").as_uri())
    shown = index_rows(page)
    colour = page.evaluate("() => Object.fromEntries(['current', 'superseded'].map(c => "
                           "[c, getComputedStyle(document.querySelector(`table.index tr.${c} td`)).color]))")
    assert colour["current"] != colour["superseded"], colour
    seen: dict[str, list[tuple[bool, int]]] = {}
    for ix in shown:
        current, version = sp[ix["task"]].version, int(ix["version"])
        old = version < current
        assert (ix["cls"] == "superseded") == old and (f"superseded by v{current}" in ix["first"]) == old, ix
        seen.setdefault(ix["task"], []).append((old, -version))
    for task, order in seen.items():
        assert order == sorted(order), (task, order)  # current first, then older versions, newest first
    dp_now = sp["dp-fedavg"].version
    assert seen["dp-fedavg"][0] == (False, -dp_now) and seen["dp-fedavg"][-1] == (True, -1)
    assert sum(old for order in seen.values() for old, _ in order) >= 5  # pc-v1, adversarial v1-2, edge v1-2, ...
    for name, superseded in (("task-dp-fedavg-v1-cpu.html", True), (f"task-dp-fedavg-v{dp_now}-cpu.html", False)):
        page.goto((site / name).as_uri())
        notes = page.eval_on_selector_all("p.superseded-note", "els => els.map(e => e.innerText)")
        if superseded:
            assert len(notes) == 1 and f"Superseded by v{dp_now}" in notes[0], notes
            # At the top: before the summary and the first board.
            assert page.evaluate("() => document.querySelector('p.superseded-note').compareDocumentPosition("
                                 "document.querySelector('section.board')) & Node.DOCUMENT_POSITION_FOLLOWING")
            assert page.evaluate("() => document.querySelector('h1').nextElementSibling.className") == "superseded-note"
        else:
            assert notes == [], notes
    page.close()


def test_learning_curve_buttons_do_not_overlap_the_title(task_pages):
    checked = 0
    for name, seen in task_pages["pages"].items():
        for b in seen["buttons"]:
            t = b["title"]
            for l, top, r, bottom in b["buttons"]:
                overlap = min(r, t[2]) > max(l, t[0]) and min(bottom, t[3]) > max(top, t[1])
                assert not overlap, (name, b["title"], b["buttons"])
                # Above the plot, inside the figure.
                assert top >= b["div"][1] and bottom <= b["plot"][1] + 1, (name, b)
            menu = b["layout"]["updatemenus"][0]
            assert menu["yanchor"] == "bottom" and menu["y"] <= 1.05 and b["layout"]["margin"]["t"] >= 80, menu
            checked += 1
    assert checked >= 1, "automl's learning curves have the x-axis buttons"


def test_wide_tables_scroll_inside_the_page_instead_of_being_cut_off(site, browser):
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    for name in ("task-dp-fedavg-v2-cpu.html", "index.html"):
        page.goto((site / name).as_uri())
        assert page.evaluate("() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"), name
        tables = page.evaluate("""() => Array.from(document.querySelectorAll('table')).map(t => {
            const w = t.parentElement, s = getComputedStyle(w);
            return [w.className, s.overflowX, w.getBoundingClientRect().right, w.scrollWidth > w.clientWidth]; })""")
        assert tables and all(cls == "table-scroll" and ov == "auto" and right <= 1300
                              for cls, ov, right, _ in tables), tables
    page.goto((site / "task-dp-fedavg-v2-cpu.html").as_uri())
    # The widest board scrolls, and scrolled to its end it shows its last column whole.
    last = page.evaluate("""() => { const w = Array.from(document.querySelectorAll('.table-scroll'))
            .sort((a, b) => b.scrollWidth - a.scrollWidth)[0];
        const wide = w.scrollWidth > w.clientWidth; w.scrollLeft = w.scrollWidth;
        const th = w.querySelector('thead th:last-child').getBoundingClientRect();
        return [wide, th.right <= w.getBoundingClientRect().right + 1]; }""")
    assert last == [True, True], "dp-fedavg's accuracy board is wider than the page: it scrolls"
    page.close()


def test_numbers_print_as_integers_where_integral_else_to_significant_digits(site, browser):
    from advbench.leaderboard import COUNT_UNITS, _num

    assert [_num(100.0), _num(100), _num(17.0, True), _num(0.0), _num(-0.0)] == ["100", "100", "17", "0", "0"]
    assert [_num(0.851234), _num(28.8217), _num(-1223.097), _num(123456.7)] == ["0.8512", "28.82", "-1223", "123457"]
    assert [_num(12.4, True), _num(float("nan")), _num(None), _num(float("inf"))] == ["12.4", "—", "—", "∞"]
    rows, sp = aggregated(), specs()
    page = browser.new_page()
    checked = 0
    for name, task, version in (("task-dp-fedavg-v2-cpu.html", "dp-fedavg", 2), ("task-pc-v1-cpu.html", "pc", 1)):
        page.goto((site / name).as_uri())
        boards = page.evaluate("""() => Array.from(document.querySelectorAll('section.board')).map(s => {
            const t = s.querySelector('table.accuracy');
            return [s.dataset.board, Array.from(t.querySelectorAll('thead th')).map(h => h.innerText),
                    Array.from(t.querySelectorAll('tbody tr')).map(r => [r.dataset.method,
                        Array.from(r.cells).map(c => c.innerText)])]; })""")
        for where, head, body in boards:
            for method, cells in body:
                r = next(r for r in rows if (r["task"], r["task_version"], r["method"]) == (task, version, method)
                         and where.startswith(f"{r['variant']} · {r['budget']} · {r['threads']} thread"))
                for col, text in zip(head, cells):
                    metric = col.split(" (")[0]
                    value = r["metrics"].get(metric) if metric in r["metrics"] and metric != r["primary_metric"] else None
                    if value is None:
                        continue
                    assert not text.endswith(".000"), (name, where, col, text)
                    if abs(value - round(value)) < 1e-9:
                        assert text == str(round(value)), (name, where, col, text)
                        checked += 1
                    elif sp[task].metric(metric).unit in COUNT_UNITS:
                        assert text == f"{value:.1f}", (name, where, col, text)
    assert checked > 10, "dp-fedavg's steps and calls, pc's SHD"
    page.close()


def test_confidence_intervals_are_clipped_to_the_metric_range_in_tables_and_figures(task_pages):
    from advbench.leaderboard import _bounds, _interval

    sp = specs()
    assert _bounds(sp["pc"].metric("skeleton_f1")) == (0.0, 1.0) and _bounds(sp["ewc"].metric("bwt")) == (-1.0, 1.0)
    assert _bounds(sp["nerf"].metric("psnr")) is None
    assert _interval(0.98, 0.05, (0.0, 1.0)) == (0.98 - 0.05, 1.0)
    unit_interval = {n for n, s in sp.items() if s.primary.unit in ("fraction", "accuracy")}
    clipped = bars = 0
    for name, seen in task_pages["pages"].items():
        task = name.removeprefix("task-").rsplit("-v", 1)[0]
        if task not in unit_interval:
            continue
        for text in seen["interval_cells"]:
            if "[" in text:
                lo, hi = (float(x) for x in text.split("[")[1].rstrip("]").split(","))
                assert 0 <= lo <= hi <= 1, (name, text)
                clipped += 1
            elif "±" in text:
                m, h = (float(x) for x in text.split("±"))
                assert m + h <= 1 + 1e-3 and m - h >= -1e-3, (name, text)
        for ys, up, down in seen["error_bars"]:
            for y, u, d in zip(ys, up, down or up):
                assert y + u <= 1 + 1e-9 and y - d >= -1e-9, (name, y, u, d)
                bars += 1
    assert clipped > 0, "pc's skeleton F1, lora's and multimodal's accuracy reach past 1 unclipped"
    assert bars > 0


def html_accuracy_tables(page: Path) -> dict[str, list[list[str]]]:
    """A site page's accuracy tables by board label: head and body cells as text, the environment column left out."""
    from html.parser import HTMLParser

    class Tables(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tables: dict[str, list[list[str]]] = {}
            self.board, self.table, self.row, self.cell, self.depth = None, None, None, None, 0

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "section" and "board" in (a.get("class") or "").split():
                self.board = a["data-board"]
            elif tag == "table" and "accuracy" in (a.get("class") or "").split():
                self.table = self.tables.setdefault(self.board, [])
            elif self.table is not None and tag == "tr":
                self.row = []
            elif self.row is not None and tag in ("td", "th") and self.cell is None:
                self.cell, self.depth = [], 0
            elif self.cell is not None and tag in ("td", "th"):
                self.depth += 1

        def handle_endtag(self, tag):
            if self.cell is not None and tag in ("td", "th"):
                if self.depth:
                    self.depth -= 1
                else:
                    self.row.append("".join(self.cell))
                    self.cell = None
            elif self.row is not None and tag == "tr":
                self.table.append(self.row)
                self.row = None
            elif tag == "table":
                self.table = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell.append(data)

    parser = Tables()
    parser.feed(page.read_text(encoding="utf-8"))
    out = {}
    for board, table in parser.tables.items():
        cut = -1 if table[0][-1] == "environment" else None
        out[board] = [line[:cut] for line in table]
    return out


def markdown_accuracy_tables(text: str) -> dict[tuple[str, str], list[list[str]]]:
    """The Markdown board's accuracy tables by (site page, board label), cells as text."""
    from advbench.html_board import page_name

    out: dict[tuple[str, str], list[list[str]]] = {}
    lines = text.splitlines()
    task = version = key = None
    for i, line in enumerate(lines):
        if m := re.fullmatch(r"## (.+)-v(\d+)(?: — .*)?", line):
            task, version = m[1], int(m[2])
        elif m := re.fullmatch(r"### (.+?) · (.+?) · (.+?) · (.+)", line):
            variant, profile, budget, where = m.groups()
            key = (page_name(task, version, profile), f"{variant} · {budget} · {where}")
        elif line == "Accuracy":
            table = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                table.append(row[2:-2].split(" | "))
            out[key] = [table[0], *table[2:]]  # less the |---| line
    return out


def test_markdown_and_html_accuracy_tables_are_cell_for_cell_the_same(site):
    """One accuracy table serves both boards: the Markdown ``advbench leaderboard`` writes carries the
    site's units, number formats and clipped intervals."""
    res = subprocess.run([sys.executable, "-m", "advbench.cli", "leaderboard", "--results", "results", "--no-write"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    markdown = markdown_accuracy_tables(res.stdout)
    html_boards = {(page.name, board): table for page in sorted(site.glob("task-*.html"))
                   for board, table in html_accuracy_tables(page).items()}
    assert markdown and sorted(markdown) == sorted(html_boards)
    for key, table in markdown.items():
        assert table == html_boards[key], key
    heads = [table[0][3] for table in markdown.values()]
    assert any("(accuracy; mean ± 95% CI)" in h for h in heads), "the spec's units are in the Markdown heads"
    cells = [line[3] for table in markdown.values() for line in table[1:]]
    assert any(re.fullmatch(r"\S+ \[\S+, \S+\]", c) for c in cells), "an interval clipped to its metric's range"


def test_environment_is_a_readable_list_with_the_raw_json_collapsed(site, browser):
    import json

    by_run = {r["run_id"]: r for r in records.iter_records(RESULTS)}
    page = browser.new_page()
    page.goto((site / "task-pc-v1-cpu.html").as_uri())
    envs = page.evaluate("""() => Array.from(document.querySelectorAll('table.accuracy details.env')).map(d => ({
        open: d.open, rawOpen: d.querySelector('details.raw').open,
        bare: d.querySelectorAll(':scope > pre').length,
        fields: Object.fromEntries(Array.from(d.querySelectorAll('dl.env dd'))
                                     .map(e => [e.dataset.field, e.textContent])),
        labels: Array.from(d.querySelectorAll('dl.env dt')).map(e => e.textContent),
        raw: d.querySelector('details.raw pre').textContent}))""")
    assert envs
    for env in envs:
        assert not env["open"] and not env["rawOpen"] and env["bare"] == 0, env
        assert {"CPU", "cores", "threads", "profile", "Python", "commit", "dirty", "sealed", "seal key SHA-256",
                "packages"} <= set(env["labels"]), env["labels"]
        raw = json.loads(env["raw"])
        rec = by_run[raw["run_id"]]
        e = rec["environment"]
        assert env["fields"]["CPU"] == e["hardware"]["cpu"] and env["fields"]["commit"] == e["commit"], env
        assert env["fields"]["dirty"] == ("yes" if e["dirty"] else "no")
        assert env["fields"]["threads"] == str(rec.get("threads") or e["hardware"]["threads"])
        assert env["fields"]["Python"].startswith(e["python"]) and env["fields"]["profile"] == rec["profile"]
        assert env["fields"]["sealed"] == {True: "yes", False: "no", None: "not recorded"}[rec["sealed"]]
        assert f"numpy {e['packages']['numpy']}" in env["fields"]["packages"], env["fields"]["packages"]
    page.close()
