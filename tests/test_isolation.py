"""Hostile methods: no route from a method's code to held-out answers or scores yields anything.

These are permanent regression tests. Each hostile method (tests/hostile_methods.py) tries one
route, dumps every float and array it could reach, and hands in its best guess; the test checks
that the answer is not among them and that the score shows it.
"""

from __future__ import annotations

import json

import pytest

from advbench.runner import run
from advbench.task import Seal

HOSTILE = ("toy_scan_everything", "toy_read_curve", "toy_rebuild_from_seed", "toy_scanning_solution",
           "toy_read_harness_memory", "toy_solution_reads_harness_memory", "toy_use_the_network",
           "toy_write_outside")
KEY = "correct-horse-battery-staple-0123"


def dump_file(tmp_path):
    """Where a hostile method writes what it found. Method code may write files only in its own
    TMPDIR, /dev/shm, /dev and /proc, so: /dev/shm, under a name of this test's own."""
    import uuid
    from pathlib import Path

    shm = Path("/dev/shm")
    return (shm if shm.is_dir() else tmp_path) / f"advbench-hostile-{uuid.uuid4().hex}.jsonl"


@pytest.fixture
def hostile(toy_registry, tmp_path, monkeypatch):
    for name in HOSTILE:
        toy_registry.register_method("toy", name, f"hostile_methods:{name}")
    dump = dump_file(tmp_path)
    monkeypatch.setenv("ADVBENCH_HOSTILE_DUMP", str(dump))
    monkeypatch.setenv("ADVBENCH_SEAL_KEY", KEY)

    def go(method: str, seed: int = 3, **kw):
        rec = run("toy", method, seed=seed, results_dir=None, registry=toy_registry, **kw)
        entries = [json.loads(line) for line in dump.read_text().splitlines()] if dump.exists() else []
        dump.unlink(missing_ok=True)
        return rec, entries

    yield go
    dump.unlink(missing_ok=True)


def answer(seed: int, key: bytes | None = None) -> float:
    from toy.heldout import ToyTask

    return ToyTask().build(variant="easy", seed=seed, budget=None, seal=Seal(seed, key)).heldout


def test_the_method_process_holds_no_held_out_answer(hostile):
    """Closures, frames, gc and the context's internals: every float the method can reach."""
    rec, (entry,) = hostile("toy_scan_everything")
    assert entry["route"] == "method:everything" and len(entry["floats"]) > 10  # it did look
    assert answer(3) not in entry["floats"]
    assert not {"Problem", "Scorer", "Seal"} & set(entry["kinds"])
    assert rec["metrics"]["abs_error"] == pytest.approx(abs(answer(3)))  # its guess, 0.0, scored as such


def test_a_method_cannot_read_its_held_out_score(hostile):
    rec, (entry,) = hostile("toy_read_curve")
    assert entry["floats"] == [] and entry["kinds"] == ["[None, None, None, None]"]
    assert rec["curve"][0]["metrics"]  # the harness did score the checkpoint, and kept it


def test_the_scoring_process_holds_no_held_out_answer(hostile):
    rec, (entry,) = hostile("toy_scanning_solution")
    assert entry["route"] == "solution:everything" and len(entry["floats"]) > 10
    assert answer(3) not in entry["floats"]
    assert not {"Problem", "Scorer"} & set(entry["kinds"])


def unconfined(hostile, monkeypatch, method: str):
    """The control: the same hostile code with ADVBENCH_CONFINEMENT=0 (no namespaces, no Landlock)."""
    from advbench.runner import namespace_prefix

    monkeypatch.setenv("ADVBENCH_CONFINEMENT", "0")
    namespace_prefix.cache_clear()
    try:
        return hostile(method)
    finally:
        monkeypatch.delenv("ADVBENCH_CONFINEMENT")
        namespace_prefix.cache_clear()


def _ptrace_unrestricted() -> bool:
    """Whether this kernel lets a process read the memory of any other process of its user (no Yama)."""
    from pathlib import Path

    scope = Path("/proc/sys/kernel/yama/ptrace_scope")
    return not scope.exists() or scope.read_text().strip() == "0"


@pytest.mark.parametrize("method", ["toy_read_harness_memory", "toy_solution_reads_harness_memory"])
def test_method_code_can_neither_read_the_harness_memory_nor_signal_it(hostile, monkeypatch, method):
    """Method code runs as the user who runs the harness, and a process may read the memory of
    another process of its user (/proc/PID/mem) and signal it. Here it is told the harness's PID and
    the answer's bytes, and looks for them in the harness's memory, from the method process and from
    the scoring process. In user and PID namespaces of their own, both are refused; without them
    (ADVBENCH_CONFINEMENT=0, where this kernel allows same-user reads) the same code finds the answer:
    the attack is real, and the namespaces are what stop it."""
    import os
    import struct

    from advbench.runner import namespace_prefix, namespaces

    monkeypatch.setenv("ADVBENCH_HOSTILE_HARNESS", str(os.getpid()))
    monkeypatch.setenv("ADVBENCH_HOSTILE_NEEDLE", struct.pack("<d", answer(3)).hex())
    namespace_prefix.cache_clear()
    if not namespaces():
        pytest.skip("this system cannot start processes in new user and PID namespaces (no `unshare`, or user "
                    "namespaces not allowed)")
    rec, (entry,) = hostile(method)
    # Its /proc is its PID namespace's, where the harness's PID is no process (and where it were, the
    # kernel would refuse its memory: PermissionError).
    assert entry["kinds"][0] == "answer not found" and entry["kinds"][2] == "signal: ProcessLookupError", entry
    assert entry["kinds"][1] in ("memory: FileNotFoundError", "memory: PermissionError"), entry
    assert rec["confinement"]["namespaces"] == ["user", "pid", "net"] and rec["metrics"]["abs_error"] == pytest.approx(abs(answer(3)))

    if _ptrace_unrestricted():
        rec, (entry,) = unconfined(hostile, monkeypatch, method)
        assert "answer found" in entry["kinds"] and "signal: allowed" in entry["kinds"], entry
        assert rec["confinement"]["namespaces"] == [] and rec["metrics"]["abs_error"] == 0.0


def test_method_code_has_loopback_and_no_other_network(hostile, monkeypatch):
    """Nothing to download, nowhere to send: in its network namespace a method sees ``lo`` alone,
    which works (Ray and other local servers need it), and has no route to this host's addresses."""
    import socket

    from advbench.runner import namespace_prefix, namespaces

    namespace_prefix.cache_clear()
    if not namespaces():
        pytest.skip("this system cannot start processes in new user, PID and network namespaces")
    ours = sorted(name for _, name in socket.if_nameindex())
    # 192.0.2.1 is a documentation address (TEST-NET-1): connecting a UDP socket only asks for a
    # route, it sends nothing. From here the route exists (when this host has one off loopback),
    # and its local end is this host's address; the method must have a route to neither.
    addresses = ["192.0.2.1"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
            addresses.append(probe.getsockname()[0])
        except OSError:
            pass  # no route off loopback here either: the method's view must still be lo alone
    monkeypatch.setenv("ADVBENCH_HOSTILE_ADDRESSES", ",".join(addresses))
    rec, (entry,) = hostile("toy_use_the_network")
    assert rec["status"] == "ok" and "net" in rec["confinement"]["namespaces"]
    assert sorted(entry["kinds"]) == sorted(["interfaces: lo", "loopback: works",
                                             *(f"route to {a}: OSError" for a in addresses)]), (entry, ours)

    rec, (entry,) = unconfined(hostile, monkeypatch, "toy_use_the_network")
    assert entry["kinds"][0] == "interfaces: " + ",".join(ours)
    assert len(addresses) == 1 or "route to 192.0.2.1: yes" in entry["kinds"], entry


def test_method_code_writes_files_only_in_its_own_temporary_folder(hostile, monkeypatch, tmp_path):
    """Same user, so without confinement a method could rewrite results/ or the installed code that
    later runs (and the harness) load. Landlock lets it write only beneath its TMPDIR, /dev/shm and
    /dev; the same code with ADVBENCH_CONFINEMENT=0 plants and appends where it likes."""
    targets = [tmp_path / "results", tmp_path / "site-packages"]
    for folder in targets:
        folder.mkdir()
        (folder / "victim.py").write_text("original\n")
    monkeypatch.setenv("ADVBENCH_HOSTILE_TARGETS", ",".join(map(str, targets)))
    rec, (entry,) = hostile("toy_write_outside")
    if not rec["confinement"]["writes_only_beneath"]:
        pytest.skip("no Landlock on this kernel: method processes may write wherever their user can")
    assert rec["confinement"]["writes_only_beneath"] == ["$TMPDIR", "/dev/shm", "/dev", "/proc"]
    assert sorted(entry["kinds"]) == ["append 0: PermissionError", "append 1: PermissionError",
                                      "plant 0: PermissionError", "plant 1: PermissionError", "tmpdir: done"]
    assert all((f / "victim.py").read_text() == "original\n" and not (f / "planted.txt").exists() for f in targets)

    rec, (entry,) = unconfined(hostile, monkeypatch, "toy_write_outside")
    assert rec["confinement"] == {"namespaces": [], "writes_only_beneath": []}
    assert "plant 0: done" in entry["kinds"] and (targets[0] / "victim.py").read_text() == "original\ntampered\n"


def test_rebuilding_the_data_from_the_seed_fails_when_sealed(hostile):
    rec, (entry,) = hostile("toy_rebuild_from_seed")  # unsealed: reproducible from the seed, by design
    assert entry["kinds"] == ["import blocked"] and rec["metrics"]["abs_error"] == 0.0
    rec, (entry,) = hostile("toy_rebuild_from_seed", sealed=True)
    assert entry["kinds"] == ["import blocked"]
    assert rec["sealed"] is True and rec["metrics"]["abs_error"] > 0.1
    assert rec["metrics"]["abs_error"] == pytest.approx(abs(answer(3) - answer(3, KEY.encode())))
    import hashlib

    assert rec["seal_key_sha256"] == hashlib.sha256(KEY.encode()).hexdigest()
    assert KEY not in json.dumps(rec)


def test_sealed_runs_need_a_real_key(toy_registry, monkeypatch):
    from advbench.errors import UsageError

    monkeypatch.setenv("ADVBENCH_SEAL_KEY", "short")
    with pytest.raises(UsageError, match="at least 16 characters"):
        run("toy", "estimate", results_dir=None, registry=toy_registry, sealed=True)


def test_the_seal_key_never_reaches_method_processes(toy_registry, monkeypatch, tmp_path):
    toy_registry.register_method("toy", "env", "hostile_methods:toy_scan_everything")
    monkeypatch.setenv("ADVBENCH_SEAL_KEY", KEY)
    import os

    from advbench.runner import Child

    child = Child("method", {"sys_path": [], "blocked_modules": [], "confine": True}, threads=1)
    try:
        environ = open(f"/proc/{child.pid}/environ", "rb").read().split(b"\0")
    finally:
        child.kill()
    assert not [e for e in environ if e.startswith(b"ADVBENCH_SEAL_KEY=")]
    assert b"OMP_NUM_THREADS=1" in environ and os.environ["ADVBENCH_SEAL_KEY"] == KEY


def test_unsealed_data_is_reproducible_and_sealed_data_is_not(hostile):
    assert answer(5) == answer(5) != answer(5, KEY.encode())
    assert answer(5, KEY.encode()) == answer(5, KEY.encode()) != answer(5, b"another-key-of-16-chars")


def test_only_plain_data_leaves_a_method_process():
    """The harness decodes what method code sends with an unpickler that builds nothing else."""
    import pickle

    import numpy as np

    from advbench.solution import dumps_plain, loads_plain

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with pytest.raises(pickle.UnpicklingError, match="refused to build builtins.print"):
        loads_plain(pickle.dumps(Evil()))
    with pytest.raises(TypeError, match="cannot leave the scoring process"):
        dumps_plain(Evil())
    value = {"a": np.arange(3), "b": (1.5, "x", None), "c": [np.float32(2.0)]}
    back = loads_plain(dumps_plain(value))
    assert back["a"].tolist() == [0, 1, 2] and back["b"] == (1.5, "x", None) and back["c"] == [2.0]


def test_pc_answers_are_out_of_reach_of_a_method(tmp_path, monkeypatch):
    """On a real task: the method scans its process for the CPDAG and hands in whatever it finds."""
    from advbench.registry import Registry

    reg = Registry()
    reg.register_method("pc", "scan", "hostile_methods:pc_scan_everything")
    dump = dump_file(tmp_path)
    monkeypatch.setenv("ADVBENCH_HOSTILE_DUMP", str(dump))
    rec = run("pc", "scan", variant="sachs", results_dir=None, registry=reg)
    (entry,) = [json.loads(line) for line in dump.read_text().splitlines()]
    dump.unlink()
    from advbench.tasks.pc.heldout import PCTask

    truth = PCTask().build(variant="sachs", seed=0, budget=reg.spec("pc").budgets["quick"], seal=Seal(0)).heldout
    found = [a for a in entry["arrays"] if len(a) == len(truth["cpdag"].nodes)]
    assert not any((truth["cpdag"].adj == a).all() or (truth["dag"].adj == a).all() for a in found)
    assert not {"Problem", "Scorer", "Seal"} & set(entry["kinds"])
    assert rec["status"] == "ok" and rec["metrics"]["shd"] >= 17  # no better than the empty graph
