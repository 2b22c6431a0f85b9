"""How the harness reaches a solution it must not run itself.

A solution is often code (a predictor, an encoder, a policy), and code run in the harness process
could read the held-out answers there. So a solution lives in a *scoring process*: spawned fresh
for each run (for each evaluation when the run is sealed), it receives the solution's pickle from
the method's process (through the harness, which never unpickles it), held-out *inputs* when the
task sends them, and never an answer. A task's ``evaluate`` talks to it through a
:class:`SolutionHandle`, and solution code is only ever asked for outputs:

* ``handle.predict(x)``: any method of the solution, called in the scoring process; what comes
  back is the solution's output and nothing else of the scoring process is used;
* ``handle.fetch()``: the solution itself, when it is plain data.

No task function ever runs in a process that has loaded a solution: once a solution's pickle is
opened there, its code may have replaced any function of the process. Work the harness does *on*
what a solution returned (loading exported weights or a TorchScript file and predicting with them,
counting changed weights, simulating a circuit) goes through

* ``handle.compute("advbench.tasks.edge.contract:measure_files", files, x)``: ``fn(*args)`` in a
  *clean* scoring process, jailed like the others, that has never opened a solution's pickle and
  never will: harness and contract code on plain data only.

What comes back is plain data only: numbers, strings, numpy arrays (torch tensors are turned into
them), and lists, tuples and dicts of those. The harness decodes it with an unpickler that can
build nothing else, so no code of the method's ever runs in the harness process.
"""

from __future__ import annotations

import io
import pickle
import time
import traceback
from typing import Any, Callable

PROTOCOL = 5


class SolutionError(Exception):
    """The solution failed in the scoring process (or the process itself died, or ran too long)."""


# ---------------------------------------------------------------------------------------------
# Plain data: what may leave the scoring process
# ---------------------------------------------------------------------------------------------

_SCALARS = (bool, int, float, complex, str, bytes, type(None))


def to_plain(obj: Any, _depth: int = 0) -> Any:
    """``obj`` as plain data (torch tensors and numpy scalars converted), or TypeError."""
    if _depth > 20:
        raise TypeError("a solution returned data nested more than 20 levels deep")
    if isinstance(obj, _SCALARS):
        return obj
    mod = type(obj).__module__
    if mod.startswith("torch") and hasattr(obj, "detach"):
        obj = obj.detach().cpu().numpy()
    if mod.startswith("numpy") or hasattr(obj, "__array_interface__"):
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            if obj.dtype.hasobject:
                raise TypeError("a solution returned a numpy array of Python objects; return numbers")
            return np.ascontiguousarray(obj) if type(obj) is np.ndarray else np.array(obj)
    if isinstance(obj, (list, tuple)):
        items = [to_plain(v, _depth + 1) for v in obj]
        return items if isinstance(obj, list) else tuple(items)
    if isinstance(obj, dict):
        if not all(isinstance(k, (str, int)) for k in obj):
            raise TypeError("a solution returned a dict whose keys are not str or int")
        return {k: to_plain(v, _depth + 1) for k, v in obj.items()}
    raise TypeError(f"a solution returned a {type(obj).__module__}.{type(obj).__qualname__}, which cannot "
                    "leave the scoring process: return numbers or numpy arrays")


_ALLOWED = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer"),
    ("builtins", "complex"),
}


class _PlainUnpickler(pickle.Unpickler):
    """Builds numpy arrays and builtins only (the Python docs' "restricting globals")."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to build {module}.{name}: only plain data leaves the scoring process")


def dumps_plain(obj: Any) -> bytes:
    return pickle.dumps(to_plain(obj), protocol=PROTOCOL)


def loads_plain(data: bytes) -> Any:
    return _PlainUnpickler(io.BytesIO(data)).load()


# ---------------------------------------------------------------------------------------------
# The handle a task's evaluate() gets
# ---------------------------------------------------------------------------------------------

class SolutionHandle:
    """A solution the harness can question but not touch (see the module docstring)."""

    def _request(self, request: tuple) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self._request(("call", name, args, kwargs))

    def compute(self, fn: str, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` (``fn`` is ``"module:name"``) in a clean scoring process that has
        never held a solution: for harness work on plain data a solution returned."""
        return self._request(("compute", fn, args, kwargs))

    def fetch(self) -> Any:
        """The solution itself, if it is plain data (a number, an array, a tuple of them...)."""
        return self._request(("fetch",))


def answer(solution: Any, request: tuple) -> Any:
    """Carry out one request on ``solution`` (in the scoring process, or in-process when debugging)."""
    kind = request[0]
    if kind == "call":
        _, name, args, kwargs = request
        fn = getattr(solution, name, None)
        if not callable(fn):
            raise TypeError(f"the solution ({type(solution).__qualname__}) has no method {name!r}")
        return fn(*args, **kwargs)
    if kind == "compute":
        from advbench.registry import load_object

        _, target, args, kwargs = request
        return load_object(target)(*args, **kwargs)
    if kind == "fetch":
        return solution
    raise ValueError(f"unknown request {kind!r}")


def compute_in_subprocess(request: tuple, timeout: float = 3600.0) -> Any:
    """A ``compute`` request carried out in a fresh, unjailed interpreter (in-process mode and
    tests): like the clean scoring process, it has never run a solution's code, so nothing the
    solution did to this process (patching a clock, a contract function) reaches the computation."""
    import json
    import os
    import subprocess
    import sys

    code = ("import sys, json; sys.path[:] = json.loads(sys.argv[1]); "
            "from advbench.solution import _compute_main; _compute_main()")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADVBENCH_SEAL")}
    try:
        proc = subprocess.run([sys.executable, "-c", code, json.dumps(sys.path)],
                              input=pickle.dumps(request, PROTOCOL), capture_output=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise SolutionError(f"compute took longer than {timeout:g} s") from exc
    if proc.returncode != 0:
        raise SolutionError(f"compute failed (exit code {proc.returncode}): "
                            f"{proc.stderr.decode(errors='replace').strip()[-2000:]}")
    reply = loads_plain(proc.stdout)
    if reply[0] == "error":
        raise SolutionError(str(reply[1]))
    return reply[1]


def _compute_main() -> None:
    import sys

    request = pickle.loads(sys.stdin.buffer.read())  # from the harness, which is trusted
    try:
        reply = ("ok", to_plain(answer(None, request)))
    except Exception as exc:  # noqa: BLE001 - reported to the caller
        reply = ("error", "".join(traceback.format_exception_only(type(exc), exc)).strip())
    out = pickle.dumps(reply, protocol=PROTOCOL)
    sys.stdout.flush()
    sys.stdout.buffer.write(out)
    sys.stdout.buffer.flush()


class LocalSolution(SolutionHandle):
    """In-process mode (debugging only): the same calls, the same plain-data answers, no isolation;
    ``compute`` runs in a fresh subprocess (:func:`compute_in_subprocess`)."""

    def __init__(self, solution: Any) -> None:
        self._solution = solution

    def _request(self, request: tuple) -> Any:
        if request[0] == "compute":
            return compute_in_subprocess(request)
        try:
            result = answer(self._solution, request)
            return loads_plain(dumps_plain(result))
        except Exception as exc:
            raise SolutionError("".join(traceback.format_exception_only(type(exc), exc)).strip()) from exc


class DataSolution(SolutionHandle):
    """A solution that arrived as plain data (``advbench.context.dump_solution``), decoded here:
    ``{"parts": {name: value}}`` for a task whose solution is data (``TaskSpec.solution_data``:
    ``handle.name()`` is the value, ``fetch()`` the dict), or ``{"whole": value}`` for a solution
    that is plain data itself (``fetch()`` is it). ``compute`` goes to the clean scoring process
    (``compute``; else a fresh subprocess). No process opens a pickle of it, so no code of it runs
    anywhere the harness scores."""

    def __init__(self, data: Any, compute: Callable[[tuple], Any] | None = None) -> None:
        if not (isinstance(data, dict) and len(data) == 1 and ("parts" in data or "whole" in data)):
            raise SolutionError("a data solution arrived in another shape than dump_solution makes")
        self._parts = data.get("parts")
        self._whole = data.get("whole")
        if self._parts is not None and not isinstance(self._parts, dict):
            raise SolutionError("a data solution's parts arrived as something other than a dict")
        self._compute = compute

    def _request(self, request: tuple) -> Any:
        kind = request[0]
        if kind == "call":
            _, name, args, kwargs = request
            if self._parts is None:
                raise SolutionError(f"TypeError: the solution is plain data ({type(self._whole).__name__}); "
                                    f"it has no method {name!r}")
            if name not in self._parts:
                raise SolutionError(f"the solution is data ({', '.join(self._parts)}); it has no {name}()")
            if args or kwargs:
                raise SolutionError(f"{name}() of a data solution takes no arguments")
            return self._parts[name]
        if kind == "fetch":
            return self._whole if self._parts is None else self._parts
        if kind == "compute":
            return (self._compute or compute_in_subprocess)(request)
        raise SolutionError(f"unknown request {kind!r}")


def local_handle(blob: bytes) -> SolutionHandle:
    """In-process mode: the handle for a solution ``ctx.checkpoint`` sent as ``blob``."""
    from advbench.context import PLAIN

    if blob.startswith(PLAIN):
        return DataSolution(loads_plain(blob[len(PLAIN):]))
    return LocalSolution(pickle.loads(blob))


def send_plain(conn: Any, obj: Any) -> None:
    conn.send_bytes(dumps_plain(obj))


def recv_plain(conn: Any) -> Any:
    """A message from a process that runs method code: decoded as plain data, never unpickled freely."""
    return loads_plain(conn.recv_bytes())


class RemoteSolution(SolutionHandle):
    """The solution currently loaded in a scoring process (:func:`serve` at the other end).

    ``compute`` carries out ``compute`` requests elsewhere (the run's clean scoring process): never
    in the process that opened the solution."""

    def __init__(self, conn: Any, deadline: float, alive: Callable[[], str | None],
                 compute: Callable[[tuple], Any] | None = None) -> None:
        self._conn, self._deadline, self._alive, self._compute = conn, deadline, alive, compute

    def _request(self, request: tuple) -> Any:
        if request[0] == "compute":
            return (self._compute or compute_in_subprocess)(request)
        self._conn.send(("request", request))
        return self._reply()

    def _reply(self) -> Any:
        return await_reply(self._conn, self._deadline, self._alive, "scoring process")

    def load(self, solution_pickle: bytes) -> float:
        """Hand the scoring process a solution's pickle (unopened here); return its load seconds."""
        self._conn.send(("load", solution_pickle))
        return float(self._reply())

    def drop(self) -> None:
        self._conn.send(("drop",))
        self._reply()


def await_reply(conn: Any, deadline: float, alive: Callable[[], str | None], what: str) -> Any:
    while not conn.poll(0.05):
        dead = alive()
        if dead:
            raise SolutionError(f"the {what} died: {dead}")
        if time.monotonic() > deadline:
            raise SolutionError("evaluation ran past its time limit")
    try:
        reply = recv_plain(conn)
    except (EOFError, OSError) as exc:
        raise SolutionError(f"the {what} died: {alive() or exc}") from exc
    except pickle.UnpicklingError as exc:
        raise SolutionError(f"the {what} sent something other than plain data: {exc}") from exc
    if not (isinstance(reply, tuple) and len(reply) == 2 and reply[0] in ("ok", "error")):
        raise SolutionError(f"the {what} broke the protocol")
    if reply[0] == "error":
        raise SolutionError(str(reply[1]))
    return reply[1]


def serve(conn: Any, clean: bool = False) -> None:
    """The scoring process's loop: load a solution's pickle, answer requests about it, drop it.

    A ``clean`` process answers ``compute`` requests only and never opens a solution; any other
    scoring process refuses ``compute``, since the solution it opened may have changed any function
    in it. The harness sends each kind only to its own process; this is the second lock."""
    solution: Any = None
    while True:
        try:
            msg = conn.recv()  # from the harness, which is trusted
        except EOFError:
            return
        kind = msg[0]
        try:
            if kind == "load":
                if clean:
                    raise RuntimeError("a clean scoring process never opens a solution")
                t0 = time.perf_counter()
                solution = None
                solution = pickle.loads(msg[1])
                send_plain(conn, ("ok", time.perf_counter() - t0))
            elif kind == "request":
                if (msg[1][0] == "compute") != clean:
                    raise RuntimeError("compute() runs only in a clean scoring process, and a clean one runs "
                                       "nothing else")
                send_plain(conn, ("ok", answer(solution, msg[1])))
            elif kind == "drop":
                solution = None
                send_plain(conn, ("ok", None))
            elif kind == "exit":
                return
            else:
                send_plain(conn, ("error", f"unknown message {kind!r}"))
        except Exception as exc:
            text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            tb = "".join(traceback.format_tb(exc.__traceback__, limit=-4))
            send_plain(conn, ("error", f"{text}\n{tb}" if tb else text))
