"""asv as the README runs it: per-machine names, user results kept apart from the committed history,
and published pages that work with no network."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from advbench.asv_suite import machine_name, make_offline

ROOT = Path(__file__).resolve().parents[1]


def test_the_machine_name_carries_the_host_the_cpu_model_and_the_core_count():
    import platform

    from advbench.profiles import cpu_model

    name = machine_name()
    assert name.startswith(platform.node()) and name.endswith(f"-{os.cpu_count()}cpu")
    slug = re.sub(r"[^a-z0-9]+", "-", cpu_model().lower()).strip("-")[:40]
    assert slug and slug in name


def test_user_results_and_pages_go_to_ignored_folders_not_the_committed_history():
    conf = json.loads((ROOT / "asv.conf.json").read_text())
    assert conf["results_dir"] == ".asv/results" and conf["html_dir"] == ".asv/html"
    assert ".asv/" in (ROOT / ".gitignore").read_text().split()
    assert (ROOT / "results" / "asv" / "benchmarks.json").exists()  # the reference history stays where it was


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """asv publish of the committed results, made offline, in a scratch folder."""
    tmp = tmp_path_factory.mktemp("asv")
    conf = json.loads((ROOT / "asv.conf.json").read_text())
    conf.update(results_dir=str(ROOT / "results" / "asv"), html_dir=str(tmp / "html"), repo=str(ROOT))
    (tmp / "asv.conf.json").write_text(json.dumps(conf))
    res = subprocess.run([sys.executable, "-m", "asv", "publish", "--no-pull", "--config", str(tmp / "asv.conf.json")],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    html = tmp / "html"
    before = (html / "index.html").read_text()
    assert "https://code.jquery.com/" in before  # asv's own page loads its libraries from CDNs
    assert len(make_offline(html)) == 10
    return html


def test_published_pages_load_nothing_from_the_network(published):
    page = (published / "index.html").read_text()
    assert not re.findall(r'<(?:script|link)\b[^>]*\b(?:src|href)="https?://', page)
    for name in ("jquery.min.js", "jquery.flot.js", "css/bootstrap.min.css", "fonts/glyphicons-halflings-regular.woff"):
        assert (published / "vendor" / name).stat().st_size > 1000, name


def test_a_page_that_still_needs_the_network_is_an_error(tmp_path):
    (tmp_path / "index.html").write_text('<script src="https://cdn.example.org/other.js"></script>')
    with pytest.raises(ValueError, match="other.js"):
        make_offline(tmp_path)


def test_the_published_pages_work_in_a_browser_with_no_network(published):
    """Every request that is not a local file is refused; asv's page must still load its libraries
    (it shows "external dependencies failed to load" when they do not)."""
    from test_site import CHROMIUM_ARGS, chromium_or_skip

    sync_api = pytest.importorskip("playwright.sync_api")
    executable = chromium_or_skip()
    refused: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()

            def route(r):
                if r.request.url.startswith("file://"):
                    return r.continue_()
                refused.append(r.request.url)
                return r.abort()

            page.route("**/*", route)
            page.goto((published / "index.html").as_uri())
            page.wait_for_timeout(1500)
            loaded = page.evaluate("() => [typeof window.jQuery, typeof (window.jQuery && jQuery.plot), "
                                   "typeof window.md5, typeof (window.jQuery && jQuery.fn.stupidtable)]")
            body = page.inner_text("body")
        finally:
            browser.close()
    assert loaded == ["function"] * 4, loaded
    assert "failed to load" not in body
    assert not refused, refused
