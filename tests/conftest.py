from __future__ import annotations

import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    # The README's test command runs one test process per core (pytest -n auto): each then gets one
    # thread for the libraries it loads itself (torch, BLAS), or two processes of two threads each
    # would fight over two cores. Runs started through the harness take ADVBENCH_THREADS (default 1).
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

import toy
from advbench.registry import Registry

pytest_plugins = ["ci_never_skips"]

TOY_METHODS = ("estimate", "zero", "crash", "slow", "hang", "exit_3", "hard_exit", "segfault", "hog_memory",
               "nan", "wrong_type", "no_solution", "unpicklable", "temp_files_then_hang")


DURATIONS = Path(__file__).with_name("durations.json")


def pytest_collection_modifyitems(config, items):
    """The longest test files first. The README's test command hands whole files to its workers
    (``--dist loadfile --no-loadscope-reorder``) in this order, so a long file never starts last while
    the other worker has nothing left to do. ``durations.json`` holds each file's seconds from one full
    run (``pytest -n auto --dist loadfile --durations=0``, summed per file); a stale or missing
    entry changes only the order, never what runs."""
    try:
        seconds = json.loads(DURATIONS.read_text())
    except (OSError, ValueError):
        return
    first_seen = {f: i for i, f in enumerate(dict.fromkeys(item.nodeid.split("::")[0] for item in items))}
    items.sort(key=lambda item: (-float(seconds.get(item.nodeid.split("::")[0], 0.0)),
                                 first_seen[item.nodeid.split("::")[0]]))


@pytest.fixture
def toy_registry() -> Registry:
    """The installed registry plus the in-process toy task and its methods."""
    reg = Registry()
    reg.register_task(toy.SPEC)
    for name in TOY_METHODS:
        reg.register_method("toy", name.replace("_", "-"), f"toy_methods:{name}")
    return reg


@pytest.fixture(scope="module")
def loopback_namespace():
    """``ip netns exec NAME``: a network namespace with only ``lo``, up. Ray 2.60 binds its node to the
    host's address otherwise, and no test may send traffic off loopback; where no namespace can be
    made (no ``ip``, no privilege) the test skips and says why."""
    pytest.importorskip("ray")  # "could not import": fails under CI, where the test extra installs it
    ip = shutil.which("ip")
    if ip is None:
        pytest.skip("no `ip` command, so no loopback-only network namespace: a Ray cluster started here would "
                    "bind the host's address")
    name = f"advbench-ray-{uuid.uuid4().hex[:8]}"  # one per module, even two modules in one process
    made = subprocess.run([ip, "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make a network namespace ({made.stderr.strip()}; it needs CAP_SYS_ADMIN): a Ray "
                    "cluster started here would bind the host's address")
    try:
        prefix = [ip, "netns", "exec", name]
        subprocess.run([*prefix, ip, "link", "set", "lo", "up"], check=True, capture_output=True)
        links = subprocess.run([*prefix, ip, "-o", "link"], check=True, capture_output=True, text=True).stdout
        assert [line.split(":")[1].strip() for line in links.splitlines()] == ["lo"], links
        yield prefix
    finally:
        subprocess.run([ip, "netns", "del", name], capture_output=True)


@pytest.fixture
def short_tmp():
    """A short TMPDIR, removed afterwards with whatever was left in it: Ray puts its session and
    sockets under it (e.g. the harness's advbench-method-XXXXXXXX/ray/session_<date>_<time>_<us>_<pid>/
    sockets/plasma_store), and a socket's path has at most 107 bytes."""
    path = tempfile.mkdtemp(prefix="", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)
