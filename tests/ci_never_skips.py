"""pytest plugin: with ``CI`` set, a test that would skip for a missing library fails instead.

Peer checks (a baseline against its peer library on identical inputs) are only worth something if
they run; a CI job where a peer library did not install must go red, naming the library, not
quietly skip. Loaded by conftest.py.
"""

from __future__ import annotations

import os

import pytest

MISSING = "could not import"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def _message(text: str) -> str:
    return f"CI is set, so a missing library fails instead of skipping: {text}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if _in_ci() and report.skipped and call.excinfo is not None and MISSING in str(call.excinfo.value):
        report.outcome = "failed"
        report.longrepr = _message(str(call.excinfo.value))


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if _in_ci() and report.skipped and MISSING in str(report.longrepr):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = _message(reason)
