"""Methods written as a hostile plugin author would: each tries one route to the held-out answer.

Each collects every candidate it can reach, writes them to the JSON file named by
``ADVBENCH_HOSTILE_DUMP`` (the test reads it) and hands in its best guess. The toy task's answer
is a float (the Gaussian's mean); pc's is a CPDAG.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import sys
import time
import types
from pathlib import Path
from typing import Any, Iterable

import numpy as np

# ---------------------------------------------------------------------------------------------
# Collecting: every float and every array reachable from a set of roots
# ---------------------------------------------------------------------------------------------


def _walk(roots: Iterable[Any], limit: int = 200_000) -> tuple[set[float], list[np.ndarray], list[str]]:
    floats: set[float] = set()
    arrays: list[np.ndarray] = []
    kinds: list[str] = []
    seen: set[int] = set()
    stack = list(roots)
    while stack and len(seen) < limit:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        name = type(obj).__name__
        try:
            if name in ("Problem", "Scorer", "Seal") or "heldout" in getattr(obj, "__dict__", {}):
                kinds.append(name)
        except Exception:  # noqa: BLE001 - odd objects (ctypes libraries...) answer oddly
            pass
        if isinstance(obj, float):
            floats.add(obj)
        elif isinstance(obj, np.ndarray):
            if obj.dtype != object and obj.size < 10_000:
                arrays.append(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif isinstance(obj, types.FunctionType) and obj.__closure__:
            stack.extend(c.cell_contents for c in obj.__closure__ if _has_contents(c))
        elif isinstance(obj, types.MethodType):
            stack.append(obj.__func__)
            stack.append(obj.__self__)
        if hasattr(obj, "__dict__") and not isinstance(obj, type) and type(obj).__module__ != "builtins":
            try:
                stack.extend(vars(obj).values())
            except TypeError:
                pass
    return floats, arrays, kinds


def _has_contents(cell: Any) -> bool:
    try:
        cell.cell_contents
        return True
    except ValueError:
        return False


def _dump(route: str, floats: set[float], arrays: list[np.ndarray], kinds: list[str]) -> None:
    """Report what was found: one line on stderr, which the harness keeps in the run's log (the
    method's, or the scoring process's), where the test reads it. Method code can write no file
    the test could read, and its environment holds nothing the test put there."""
    entry = {"route": route, "pid": os.getpid(), "floats": sorted(f for f in floats if np.isfinite(f)),
             "arrays": [a.tolist() for a in arrays if a.ndim == 2 and a.shape[0] == a.shape[1] and a.shape[0] > 5],
             "kinds": sorted(set(kinds)) if route != "method:jail" else list(kinds)}
    sys.stderr.write("ADVBENCH-HOSTILE " + json.dumps(entry) + "\n")
    sys.stderr.flush()


def inputs() -> dict[str, Any]:
    """What the test tells the hostile code (the harness's PID, paths to try): ``hostile_inputs.json``
    in a folder the test put on ``sys.path``, which the jail's read-only view holds."""
    for folder in sys.path:
        path = Path(folder or ".") / "hostile_inputs.json"
        if path.is_file():
            return json.loads(path.read_text())
    return {}


def _frames() -> list[Any]:
    out, frame = [], sys._getframe(1)
    while frame is not None:
        out.append(frame.f_locals)
        out.append(frame.f_globals)
        frame = frame.f_back
    return out


def _ctx_internals(ctx: Any) -> list[Any]:
    roots = [vars(ctx)]
    for name in dir(ctx):
        try:
            roots.append(getattr(ctx, name))
        except Exception:  # noqa: BLE001
            pass
    for attr in ("curve", "_evaluate", "last_solution", "_RunContext__submit", "scores"):
        roots.append(getattr(ctx, attr, None))
    return roots


def _everything(ctx: Any | None) -> tuple[set[float], list[np.ndarray], list[str]]:
    roots: list[Any] = [*_frames(), *gc.get_objects()]
    if ctx is not None:
        roots += _ctx_internals(ctx)
    return _walk(roots)


# ---------------------------------------------------------------------------------------------
# toy: routes inside the method's process
# ---------------------------------------------------------------------------------------------


def toy_scan_everything(train, ctx):
    """Closures, frames, gc and ctx internals, before and after a checkpoint."""
    ctx.checkpoint(0.0)
    floats, arrays, kinds = _everything(ctx)
    _dump("method:everything", floats, arrays, kinds)
    return 0.0


def toy_read_curve(train, ctx):
    """A method that wants its held-out score after a checkpoint."""
    ctx.checkpoint(1.234)
    found = [getattr(ctx, name, None) for name in ("curve", "scores", "last_metrics", "metrics")]
    _dump("method:curve", {float(x) for x in found if isinstance(x, float)}, [], [repr(found)])
    return 0.0


def toy_rebuild_from_seed(train, ctx):
    """Load the task's held-out module from its file (the import is refused) and rebuild the answer."""
    from advbench.task import Seal

    try:
        import toy.heldout  # noqa: F401
        blocked = False
    except ImportError:
        blocked = True
    toy_dir = Path(importlib.util.find_spec("toy").origin).parent
    spec = importlib.util.spec_from_file_location("stolen_heldout", toy_dir / "heldout.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    problem = module.ToyTask().build(variant=ctx.variant, seed=ctx.seed, budget=ctx.budget, seal=Seal(ctx.seed))
    _dump("method:rebuild", {problem.heldout}, [], ["import blocked" if blocked else "import allowed"])
    return problem.heldout


class ScanningEstimate:
    """A solution whose code scans the scoring process when the task asks it for its estimate."""

    def estimate(self) -> float:
        floats, arrays, kinds = _everything(None)
        _dump("solution:everything", floats, arrays, kinds)
        return 0.0


def toy_scanning_solution(train, ctx):
    return ScanningEstimate()


class SlowToScore:
    """A solution whose scoring takes 1.5 s, as adversarial's attacks take longer the more digits
    stand, or an episode the longer its goal is not reached: how long scoring took would be a score."""

    def __init__(self, value: float) -> None:
        self.value = value

    def estimate(self) -> float:
        time.sleep(1.5)
        return self.value


def toy_time_the_scoring(train, ctx):
    """Hands in two checkpoints and times each hand-in: were it scored meanwhile, the time would tell."""
    waited = []
    for value in (0.5, 1.5):
        t0 = time.perf_counter()
        ctx.checkpoint(SlowToScore(value))
        waited.append(time.perf_counter() - t0)
    _dump("method:scoring-time", set(waited), [], ["waited"])
    return SlowToScore(1.5)


# ---------------------------------------------------------------------------------------------
# pc: the same routes on a real task (the answer is the CPDAG)
# ---------------------------------------------------------------------------------------------


def pc_scan_everything(train, ctx):
    from advbench.tasks.pc.contract import Graph

    empty = Graph.empty(train.nodes)
    ctx.checkpoint(empty)
    floats, arrays, kinds = _everything(ctx)
    _dump("method:everything", floats, arrays, kinds)
    p = len(train.nodes)
    for a in arrays:  # hand in anything that looks like an adjacency matrix of the right size
        if a.shape == (p, p) and np.isin(a, (0, 1)).all() and a.any() and not np.diagonal(a).any():
            return Graph(train.nodes, a)
    return empty


# ---------------------------------------------------------------------------------------------
# Beyond the process: the harness's memory and its PID
# ---------------------------------------------------------------------------------------------


def _read_harness_memory() -> tuple[float | None, list[str]]:
    """Read the anonymous memory of the harness (its PID, as an attacker scanning /proc would find
    it) for the answer's bytes (an attacker who knows what the answer looks like), and try to signal
    the harness."""
    import struct

    pid = int(inputs()["harness_pid"])
    needle = bytes.fromhex(inputs()["needle"])
    found, read, notes = None, 0, []
    try:
        os.kill(pid, 0)
        notes.append("signal: allowed")
    except OSError as exc:
        notes.append(f"signal: {type(exc).__name__}")
    try:
        regions = [line.split() for line in Path(f"/proc/{pid}/maps").read_text().splitlines()]
        with open(f"/proc/{pid}/mem", "rb", 0) as mem:
            for fields in regions:
                if not fields[1].startswith("rw") or (len(fields) > 5 and not fields[5].startswith("[heap")):
                    continue  # anonymous writable memory: where Python keeps its objects
                start, end = (int(x, 16) for x in fields[0].split("-"))
                if end - start > 1 << 28:
                    continue
                try:
                    mem.seek(start)
                    chunk = mem.read(end - start)
                except OSError:
                    continue
                read += len(chunk)
                if needle in chunk:  # stop at the first hit: a scoring process's CPU is counted
                    found = struct.unpack("<d", needle)[0]
                    break
        notes.append(f"memory: read {'some' if read else 'nothing'}")
    except OSError as exc:
        notes.append(f"memory: {type(exc).__name__}")
    notes.append("answer found" if found is not None else "answer not found")
    return found, notes


def toy_read_harness_memory(train, ctx):
    found, notes = _read_harness_memory()
    _dump("method:harness-memory", set() if found is None else {found}, [], notes)
    return 0.0 if found is None else found


class HarnessReadingEstimate:
    """A solution whose code, in the scoring process, reads the harness's memory for the answer."""

    def estimate(self) -> float:
        found, notes = _read_harness_memory()
        _dump("solution:harness-memory", set() if found is None else {found}, [], notes)
        return 0.0 if found is None else found


def toy_solution_reads_harness_memory(train, ctx):
    return HarnessReadingEstimate()


def toy_use_the_network(train, ctx):
    """Which network interfaces can it see, does loopback work, and can it reach out (to the
    harness's own addresses, which exist on this host: ``inputs()["addresses"]``)?"""
    import socket

    notes = ["interfaces: " + ",".join(sorted(name for _, name in socket.if_nameindex()))]
    with socket.create_server(("127.0.0.1", 0)) as server:
        with socket.create_connection(server.getsockname(), timeout=5):
            notes.append("loopback: works")
    for address in inputs().get("addresses", []):
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect((address, 9))  # a route to it, or not
            notes.append(f"route to {address}: yes")
        except OSError as exc:
            notes.append(f"route to {address}: {type(exc).__name__}")
    _dump("method:network", set(), [], notes)
    return 0.0


def toy_write_outside(train, ctx):
    """Plant a file in, and append to a file of, folders outside its /tmp (``inputs()["targets"]``: a
    stand-in for results/ and for installed code that later runs load), and write in its /tmp."""
    import tempfile

    notes = []
    for i, folder in enumerate(inputs()["targets"]):
        for what, path, mode in (("plant", Path(folder) / "planted.txt", "w"), ("append", Path(folder) / "victim.py", "a")):
            try:
                with open(path, mode) as f:
                    f.write("tampered\n")
                notes.append(f"{what} {i}: done")
            except OSError as exc:
                notes.append(f"{what} {i}: {type(exc).__name__}")
    with open(Path(tempfile.gettempdir()) / "mine.txt", "w") as f:
        f.write("scratch\n")
    notes.append("tmpdir: done")
    _dump("method:write-outside", set(), [], notes)
    return 0.0


# ---------------------------------------------------------------------------------------------
# Beyond the process: the host (the jail's routes). Each tries, notes "done" or the error's type.
# ---------------------------------------------------------------------------------------------


def _try(notes: list[str], what: str, action) -> None:
    try:
        action()
        notes.append(f"{what}: done")
    except Exception as exc:  # noqa: BLE001 - the type of the refusal is the finding
        notes.append(f"{what}: {type(exc).__name__}")


def _write_back(path: str) -> None:
    """Write a file's own content back to it: an open route that changes nothing."""
    with open(path) as f:
        value = f.read()
    with open(path, "w") as f:
        f.write(value)


def _open_a_block_device() -> None:
    import stat

    for name in sorted(os.listdir("/dev")):
        try:
            block = stat.S_ISBLK(os.stat(f"/dev/{name}").st_mode)
        except OSError:
            continue
        if block:  # opened for writing and closed again: nothing is written
            os.close(os.open(f"/dev/{name}", os.O_RDWR))
            return
    raise FileNotFoundError("no block device in view")


def _host_routes() -> list[str]:
    """Route 1 and 4 of the jail issue: the host's root powers, and files the user can read."""
    import stat

    given = inputs()
    notes = [f"uid {os.getuid()}", f"euid {os.geteuid()}"]
    _try(notes, "write /proc/sys", lambda: _write_back("/proc/sys/kernel/core_pattern"))
    _try(notes, "open a block device", _open_a_block_device)
    _try(notes, "mknod a block device", lambda: os.mknod(f"/dev/{given['dev_name']}-blk", 0o600 | stat.S_IFBLK,
                                                        os.makedev(7, 0)))
    _try(notes, "create in /dev", lambda: open(f"/dev/{given['dev_name']}", "w").close())
    _try(notes, "chmod outside", lambda: os.chmod(given["chmod_target"], 0o777))
    _try(notes, "utime outside", lambda: os.utime(given["chmod_target"], (0, 0)))
    for i, path in enumerate(given["secrets"]):
        _try(notes, f"read secret {i}", lambda path=path: Path(path).read_bytes())
    return notes


def toy_escape_to_the_host(train, ctx):
    _dump("method:jail", set(), [], _host_routes())
    return 0.0


class EscapingEstimate:
    def estimate(self) -> float:
        _dump("solution:jail", set(), [], _host_routes())
        return 0.0


def toy_solution_escapes_to_the_host(train, ctx):
    return EscapingEstimate()


def toy_look_for_the_key(train, ctx):
    """Route 3: the seal key in the environment, in any process's environment or command line, in
    any file it can list under /tmp, /dev/shm, /etc, /proc/self and the working folder."""
    found: list[str] = [f"{k}={v}" for k, v in os.environ.items()]
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            for name in ("environ", "cmdline"):
                try:
                    found.append(Path(f"/proc/{pid}/{name}").read_bytes().decode(errors="replace"))
                except OSError:
                    pass
    import time

    deadline = time.monotonic() + 0.5  # the toy budget is 1 s: installed code under /tmp can be large
    for root in ("/dev/shm", "/etc", os.getcwd(), "/tmp"):
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d not in ("site-packages", ".git", "__pycache__")]
            if time.monotonic() > deadline:
                break
            for name in files:
                try:
                    path = Path(folder, name)
                    if path.stat().st_size < 1 << 20:
                        found.append(path.read_bytes().decode(errors="replace"))
                except OSError:
                    pass
    _dump("method:key", set(), [], [f"looked at {len(found)} places", *found])
    return 0.0


class SharedMemoryEstimate:
    """Route 5: solution code (which sees held-out inputs) leaves a note in /dev/shm and /tmp."""

    def estimate(self) -> float:
        for folder in ("/dev/shm", "/tmp"):
            Path(folder, "advbench-handoff.txt").write_text("held-out inputs would go here")
        return 0.0


def toy_shared_memory_handoff(train, ctx):
    ctx.checkpoint(SharedMemoryEstimate())  # scored now: the note is written, if it can be
    notes = [f"{folder}: {'found' if Path(folder, 'advbench-handoff.txt').exists() else 'nothing'}"
             for folder in ("/dev/shm", "/tmp")]
    _dump("method:handoff", set(), [], notes)
    return 0.0


def toy_memory_in_tmpfs(train, ctx):
    """Route 6: memory the harness's RSS watch does not see: files in /dev/shm."""
    block = b"\1" * (1 << 20)
    with open("/dev/shm/advbench-hoard", "wb") as f:
        for _ in range(int(inputs().get("tmpfs_mib", 1536))):
            f.write(block)
            f.flush()
    return 0.0


class HoardingEstimate:
    """Route 6 in the scoring process, which nothing used to watch."""

    def estimate(self) -> float:
        hoard = [bytearray(1 << 20) for _ in range(int(inputs().get("scorer_mib", 2048)))]
        return float(len(hoard))


def toy_solution_hoards_memory(train, ctx):
    return HoardingEstimate()


def toy_many_processes(train, ctx):
    """Route 6: more processes than the run may have (a fork bomb, bounded for the test's sake)."""
    import subprocess

    started, why = [], "all started"
    try:
        for _ in range(int(inputs().get("processes", 200))):
            started.append(subprocess.Popen(["sleep", "30"]))
    except OSError as exc:
        why = type(exc).__name__
    _dump("method:processes", set(), [], [f"started {len(started)}", why])
    for p in started:
        p.kill()
    return 0.0


def toy_flood_the_output(train, ctx):
    """Route 7: 30 MB on stdout and stderr, then an attempt to truncate what they point at."""
    line = ("x" * 999 + "\n").encode()
    for _ in range(15_000):
        os.write(1, line)
        os.write(2, line)
    notes = []
    for fd in (1, 2):
        _try(notes, f"truncate fd {fd}", lambda fd=fd: os.ftruncate(fd, 0))
    _dump("method:flood", set(), [], notes)
    return 0.0


def toy_plugin_package(train, ctx):
    """Route 2: a method in a plugin package whose ``__init__`` notes where it runs (evil_plugin)."""
    return 0.0


class PatchingEstimate:
    """Solution code that patches the task's contract in its scoring process and looks, at the next
    evaluation, whether its patch is still there (a forged count that outlives its checkpoint)."""

    def estimate(self) -> float:
        import toy.contract

        _dump("solution:patch", set(), [], ["patched before" if getattr(toy.contract, "_forged", False) else "clean"])
        toy.contract._forged = True
        return 0.0


def toy_patch_the_scorer(train, ctx):
    ctx.checkpoint(PatchingEstimate())
    ctx.checkpoint(PatchingEstimate())
    return PatchingEstimate()


def lora_patches_the_counting(data, ctx):
    """lora: every encoder weight moved (as full fine-tuning moves them), then the contract's
    counting and scoring functions replaced in this process, as v1's solution replaced them in the
    scoring process (a trainable fraction of 1e-9 recorded for full fine-tuning)."""
    import numpy as np
    import torch

    from advbench.tasks.lora import contract

    model, _ = contract.load_base_model()
    weights = {k: (v + 1e-3).numpy() for k, v in model.state_dict().items() if torch.is_floating_point(v)}
    weights.update({"head.weight": np.zeros((2, 384), np.float32), "head.bias": np.zeros(2, np.float32)})
    contract.count_adapter = lambda data: {"changed": 1, "total": 10**9}
    contract.score_adapter = lambda data, texts, batch=256: {"pred": np.zeros(len(texts), np.int64), "changed": 1,
                                                             "total": 10**9}
    solution = _PatchesWhereItIsOpened(r=1, lora_alpha=1.0, weights=weights)
    ctx.checkpoint(solution, step=1)
    return solution


_PATCH = ("import numpy as np\nfrom advbench.tasks.lora import contract as c\n"
          "c.count_adapter = lambda data: {'changed': 1, 'total': 10**9}\n")


def _patched(r, lora_alpha, weights):
    exec(_PATCH)  # noqa: S102 - the point of the test
    from advbench.tasks.lora.contract import AdaptedClassifier

    return AdaptedClassifier(r=r, lora_alpha=lora_alpha, weights=weights)


class _PatchesWhereItIsOpened:
    """Its pickle replaces the contract's counting wherever it is opened (v1's scoring process)."""

    def __init__(self, r, lora_alpha, weights):
        self.r, self.lora_alpha, self.weights = r, lora_alpha, weights

    def __reduce__(self):
        return _patched, (self.r, self.lora_alpha, self.weights)

    def adapter(self):
        exec(_PATCH)  # noqa: S102
        return {"r": self.r, "lora_alpha": self.lora_alpha, "weights": self.weights}


# ---------------------------------------------------------------- public lookups (the sealed-data issue)
def adversarial_public_lookup(data, ctx):
    """adversarial: the nearest public digit's label, robust to any attack within eps 0.2 on public
    held-out digits (adversarial-v2 recorded 0.956 robust at eps 0.1)."""
    from public_lookup import NearestPublicDigit

    from advbench.tasks.adversarial.contract import Classifier

    solution = Classifier(NearestPublicDigit())
    ctx.checkpoint(solution, step=1)
    return solution


def edge_public_lookup(data, ctx):
    """edge: the int8 "model" is a TorchScript table of the public digits (edge-v2: int8 accuracy 1.0)."""
    import torch
    from public_lookup import NearestPublicDigit

    from advbench.tasks.edge.contract import EdgeSolution

    solution = EdgeSolution(int8=torch.jit.script(NearestPublicDigit()), quant_path="lookup")
    ctx.checkpoint(solution, step=1)
    return solution


def fedavg_public_lookup(data, ctx):
    """fedavg: no federated training at all, the nearest public digit's label (fedavg-v1 scored on
    public digits: this lookup gets every held-out row right there)."""
    from public_lookup import PredictsPublicLabels

    solution = PredictsPublicLabels()
    ctx.checkpoint(solution, step=1)
    return solution


def simclr_public_lookup(images, ctx):
    """simclr: no self-supervision, features that are the nearest public digit's label (simclr-v1
    scored on public digits, where a probe on them is right on every test image)."""
    from public_lookup import EncodesAsPublicLabels

    solution = EncodesAsPublicLabels()
    ctx.checkpoint(solution, step=1)
    return solution
