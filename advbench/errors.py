"""Errors the CLI turns into a one-line message and exit code 2 (never a traceback)."""

from __future__ import annotations

import difflib
from typing import Iterable


class UsageError(Exception):
    """Bad input from the user: unknown name, unavailable profile, bad option."""


def unknown(kind: str, name: str, choices: Iterable[str], where: str = "") -> UsageError:
    """``unknown task 'transfomer'; did you mean 'transformer'? valid: ...``"""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    valid = ", ".join(choices) if choices else "(none)"
    return UsageError(f"unknown {kind} {name!r}{where}{hint} Valid {kind}s: {valid}")


class BudgetExhausted(Exception):
    """Raised inside a method by ``ctx.checkpoint`` once the budget's wall-time cap is spent."""
