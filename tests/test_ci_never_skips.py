"""With CI set, a peer check whose library is missing fails and names it; without CI it skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent


@pytest.mark.parametrize("where", ["module", "test"])
def test_missing_peer_library_fails_under_ci_and_skips_otherwise(tmp_path, where):
    line = 'pytest.importorskip("advbench_missing_peer_lib")'
    body = (f"import pytest\n{line}\n\ndef test_peer():\n    pass\n" if where == "module"
            else f"import pytest\n\ndef test_peer():\n    {line}\n")
    (tmp_path / "test_peer.py").write_text(body)
    base = {k: v for k, v in os.environ.items() if k != "CI"}
    cmd = [sys.executable, "-m", "pytest", "-p", "ci_never_skips", "-q", "-p", "no:cacheprovider",
           "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path)]
    env = {**base, "PYTHONPATH": str(TESTS)}
    quiet = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert quiet.returncode in (0, 5) and "1 skipped" in quiet.stdout, quiet.stdout  # 5: nothing collected
    ci = subprocess.run(cmd, capture_output=True, text=True, env={**env, "CI": "true"}, timeout=120)
    assert ci.returncode != 0, ci.stdout
    assert "advbench_missing_peer_lib" in ci.stdout and "CI is set" in ci.stdout
