"""The HTML leaderboard, opened in a real browser: headless Chromium (Debian's), driven by playwright.

The site is generated from the committed reference records, as a user would generate it. The test
walks from the index to every task page, checks each board against the rows the records give,
checks that every plot was drawn with data, that no page logs a console error, and saves
screenshots. With ``CI`` set a missing Chromium fails the test; elsewhere it skips with the reason.
``ADVBENCH_UPDATE_SCREENSHOTS=1`` also writes the screenshots the README links (docs/).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from advbench import leaderboard as lb

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


def test_the_site_renders_in_chromium_every_page_reachable_every_board_and_plot_filled(site, browser, tmp_path):
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
        page.goto((site / link).as_uri())
        boards = page.eval_on_selector_all(
            "section.board", """els => els.map(s => [s.dataset.board,
                Array.from(s.querySelectorAll('table.accuracy tbody tr')).map(r => r.dataset.method),
                Array.from(s.querySelectorAll('table.speed tbody tr')).map(r => r.dataset.method)])""")
        got = {where: set(acc) for where, acc, _ in boards}
        assert got == expected[link], link
        for where, acc, speed in boards:
            assert sorted(acc) == sorted(speed), (link, where)
        plots = page.evaluate("""() => Array.from(document.querySelectorAll('div.plot')).map(d => [d.dataset.kind,
            d.classList.contains('js-plotly-plot') && Array.isArray(d.data)
            && d.data.some(t => (t.x || []).length > 0 && (t.y || []).length > 0),
            d.querySelectorAll('svg.main-svg').length])""")
        assert plots, f"{link} has no plot"
        for kind, has_data, svgs in plots:
            assert has_data and svgs > 0, (link, kind)
            plots_seen[kind] += 1
        images += page.evaluate("() => Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length")
        assert page.evaluate("() => Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"), link
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
        page.goto((site / "task-wgan-gp-v1-cpu.html").as_uri())
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
