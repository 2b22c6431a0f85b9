"""Hostile methods: no route from a method's code to held-out answers or scores yields anything.

These are permanent regression tests. Each hostile method (tests/hostile_methods.py) tries one
route, dumps every float and array it could reach, and hands in its best guess; the test checks
that the answer is not among them and that the score shows it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from advbench.runner import run
from advbench.task import Seal

KEY = "correct-horse-battery-staple-0123"


def hostile_entries(rec) -> list[dict]:
    """What the hostile code reported: its ``ADVBENCH-HOSTILE`` lines in the run's logs (the method's
    and the scoring processes', public or private)."""
    out = []
    for logs in (rec.get("_artifacts") or {}, rec.get("_private_artifacts") or {}):
        for name in ("method.log", "scorer.log"):
            for line in logs.get(name, b"").decode(errors="replace").splitlines():
                if line.startswith("ADVBENCH-HOSTILE "):
                    out.append(json.loads(line.partition(" ")[2]))
    return out


@pytest.fixture
def hostile_inputs(tmp_path, monkeypatch):
    """Tell hostile code something: a ``hostile_inputs.json`` in a folder on ``sys.path`` (which the
    jail's read-only view holds); returns the dict to fill in before the run."""
    folder = tmp_path / "hostile-inputs"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    given: dict = {}

    def write() -> None:
        (folder / "hostile_inputs.json").write_text(json.dumps(given))

    given["_write"] = write
    return given


@pytest.fixture
def hostile(toy_registry, hostile_inputs, monkeypatch):
    import hostile_methods

    for name in [n for n in dir(hostile_methods) if n.startswith("toy_")]:
        toy_registry.register_method("toy", name, f"hostile_methods:{name}")
    monkeypatch.setenv("ADVBENCH_SEAL_KEY", KEY)

    def go(method: str, seed: int = 3, **kw):
        write = hostile_inputs.pop("_write")
        write()
        hostile_inputs["_write"] = write
        kw.setdefault("results_dir", None)
        rec = run("toy", method, seed=seed, registry=toy_registry, keep_artifacts=True, **kw)
        if "_artifacts" not in rec:  # written to a results folder: read the logs back from there
            rec["_artifacts"] = {n.split(".", 1)[1]: (Path(rec["path"]).parent / n).read_bytes()
                                 for n in rec["artifacts"]}
        return rec, hostile_entries(rec)

    go.inputs = hostile_inputs
    yield go


def answer(seed: int, key: bytes | None = None) -> float:
    """The toy task's held-out mean, unsealed or sealed with ``key`` (through the run's material)."""
    from advbench.runner import seal_for_run
    from toy.heldout import ToyTask

    material = None if key is None else seal_for_run(key, "toy", "easy", seed)[0]
    return ToyTask().build(variant="easy", seed=seed, budget=None, seal=Seal(seed, material)).heldout


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


def test_a_method_cannot_time_its_scoring(hostile):
    """Scoring that takes longer for a better solution (adversarial's attacks stop at the digits already
    broken; an episode ends at its goal) told the method its held-out score while it waited for each
    checkpoint to be scored. Checkpoints are scored once its process has ended: each hand-in returns
    at once, and every point of the curve is still scored."""
    rec, (entry,) = hostile("toy_time_the_scoring")
    assert rec["status"] == "ok", rec["error"]
    assert len(entry["floats"]) == 2 and max(entry["floats"]) < 0.5, entry  # 1.5 s or more each, scored meanwhile
    assert [p["metrics"]["abs_error"] for p in rec["curve"]] == [abs(answer(3) - 0.5), abs(answer(3) - 1.5)]
    assert rec["timings"]["checkpoint_eval_seconds"] >= 3.0  # they were scored: after the method
    assert rec["timings"]["train_seconds"] < 3.0


def test_work_at_a_method_modules_import_is_training_time(toy_registry):
    """A method module's top-level code ran before the training clock started: two seconds of work
    there (with the training view in reach, in the importing frames) were recorded as process start,
    not training. Now the libraries it imports load before the clock and its own module on it."""
    toy_registry.register_method("toy", "trained-at-import", "hostile_import_time:toy_trained_at_import")
    rec = run("toy", "trained-at-import", seed=3, results_dir=None, registry=toy_registry)
    assert rec["status"] == "ok", rec["error"]
    assert rec["timings"]["train_seconds"] >= 2.0, rec["timings"]
    assert rec["timings"]["method_start_seconds"] < 2.0, rec["timings"]


def test_the_scoring_process_holds_no_held_out_answer(hostile):
    rec, (entry,) = hostile("toy_scanning_solution")
    assert entry["route"] == "solution:everything" and len(entry["floats"]) > 10
    assert answer(3) not in entry["floats"]
    assert not {"Problem", "Scorer"} & set(entry["kinds"])


def unjailed(hostile, method: str):
    """The control: the same hostile code with the jail off (``--no-jail``, as root here: the host's root)."""
    return hostile(method, isolation="no-jail")


def _ptrace_unrestricted() -> bool:
    """Whether this kernel lets a process read the memory of any other process of its user (no Yama)."""
    scope = Path("/proc/sys/kernel/yama/ptrace_scope")
    return not scope.exists() or scope.read_text().strip() == "0"


@pytest.mark.parametrize("method", ["toy_read_harness_memory", "toy_solution_reads_harness_memory"])
def test_method_code_can_neither_read_the_harness_memory_nor_signal_it(hostile, toy_registry, method):
    """Told the harness's PID and the answer's bytes, method code looks for them in the harness's
    memory, from the method process and from the scoring process. In its jail (PID namespace of its
    own, uid 65534) both are refused; without the jail the same code finds the answer: the attack is
    real, and the jail is what stops it."""
    import dataclasses
    import struct

    # A harness that has run hundreds of tests holds gigabytes to scan: the toy's one-second caps
    # would stop the control's attack before it finds the answer. Room for it, jailed or not.
    spec = toy_registry._specs["toy"]
    toy_registry._specs["toy"] = dataclasses.replace(
        spec, evaluation_cpu_seconds=2.0,
        budgets={k: dataclasses.replace(b, max_seconds=120.0) for k, b in spec.budgets.items()})
    hostile.inputs.update(harness_pid=os.getpid(), needle=struct.pack("<d", answer(3)).hex())
    rec, (entry,) = hostile(method)
    # Its /proc is its PID namespace's, where the harness's PID is no process (and where it were, the
    # kernel would refuse its memory: PermissionError).
    assert entry["kinds"][0] == "answer not found" and entry["kinds"][2] == "signal: ProcessLookupError", entry
    assert entry["kinds"][1] in ("memory: FileNotFoundError", "memory: PermissionError"), entry
    assert "pid" in rec["jail"]["namespaces"] and rec["metrics"]["abs_error"] == pytest.approx(abs(answer(3)))

    if _ptrace_unrestricted():
        rec, (entry,) = unjailed(hostile, method)
        assert "answer found" in entry["kinds"] and "signal: allowed" in entry["kinds"], entry
        assert rec["jail"] is None and rec["metrics"]["abs_error"] == 0.0


def test_method_code_has_loopback_and_no_other_network(hostile):
    """Nothing to download, nowhere to send: in its network namespace a method sees ``lo`` alone,
    which works (Ray and other local servers need it), and has no route to this host's addresses."""
    import socket

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
    hostile.inputs["addresses"] = addresses
    rec, (entry,) = hostile("toy_use_the_network")
    assert rec["status"] == "ok" and "net" in rec["jail"]["namespaces"]
    assert sorted(entry["kinds"]) == sorted(["interfaces: lo", "loopback: works",
                                             *(f"route to {a}: OSError" for a in addresses)]), (entry, ours)

    rec, (entry,) = unjailed(hostile, "toy_use_the_network")
    assert entry["kinds"][0] == "interfaces: " + ",".join(ours)
    assert len(addresses) == 1 or "route to 192.0.2.1: yes" in entry["kinds"], entry


def test_method_code_writes_files_only_in_its_own_temporary_folder(hostile, tmp_path):
    """Without the jail a method could rewrite results/ or the installed code that later runs (and
    the harness) load. In the jail everything it sees is read-only but its own /tmp and /dev/shm;
    the same code without the jail plants and appends where it likes."""
    targets = [tmp_path / "results", tmp_path / "site-packages"]
    for folder in targets:
        folder.mkdir()
        (folder / "victim.py").write_text("original\n")
    hostile.inputs["targets"] = [str(t) for t in targets]
    import sys

    sys.path.append(str(targets[1]))  # in the view (read-only), as installed code is
    try:
        rec, (entry,) = hostile("toy_write_outside")
    finally:
        sys.path.remove(str(targets[1]))
    assert rec["jail"]["filesystem"] == "read-only view; private /tmp and /dev/shm"
    # results/ is not in its view at all; the installed code is, read-only
    kinds = dict(k.split(": ") for k in entry["kinds"])
    assert kinds["plant 0"] == kinds["append 0"] == "FileNotFoundError" and kinds["tmpdir"] == "done", entry
    assert kinds["plant 1"] in ("PermissionError", "OSError") and kinds["append 1"] in ("PermissionError", "OSError")
    assert all((f / "victim.py").read_text() == "original\n" and not (f / "planted.txt").exists() for f in targets)

    rec, (entry,) = unjailed(hostile, "toy_write_outside")
    assert rec["jail"] is None
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
    assert KEY not in json.dumps({k: v for k, v in rec.items() if not k.startswith("_")})


def test_sealed_runs_need_a_real_key(toy_registry, monkeypatch):
    from advbench.errors import UsageError

    monkeypatch.setenv("ADVBENCH_SEAL_KEY", "short")
    with pytest.raises(UsageError, match="at least 16 characters"):
        run("toy", "estimate", results_dir=None, registry=toy_registry, sealed=True)


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


def test_pc_answers_are_out_of_reach_of_a_method():
    """On a real task: the method scans its process for the CPDAG and hands in whatever it finds."""
    from advbench.registry import Registry

    reg = Registry()
    reg.register_method("pc", "scan", "hostile_methods:pc_scan_everything")
    rec = run("pc", "scan", variant="sachs-like", results_dir=None, registry=reg, keep_artifacts=True)
    (entry,) = hostile_entries(rec)
    from advbench.tasks.pc.heldout import PCTask

    truth = PCTask().build(variant="sachs-like", seed=0, budget=reg.spec("pc").budgets["quick"], seal=Seal(0)).heldout
    found = [a for a in entry["arrays"] if len(a) == len(truth["cpdag"].nodes)]
    assert not any((truth["cpdag"].adj == a).all() or (truth["dag"].adj == a).all() for a in found)
    assert not {"Problem", "Scorer", "Seal"} & set(entry["kinds"])
    assert rec["status"] == "ok" and rec["metrics"]["shd"] >= 17  # no better than the empty graph
