"""How the harness reaches a solution it must not run itself.

A solution is often code (a predictor, an encoder, a policy), and code run in the harness process
could read the held-out answers there. So a solution lives in a *scoring process*: spawned fresh
for each run, it receives the solution's pickle from the method's process (through the harness,
which never unpickles it), held-out *inputs* when the task sends them, and never an answer. A
task's ``evaluate`` talks to it through a :class:`SolutionHandle`:

* ``handle.predict(x)``: any method of the solution, called in the scoring process;
* ``handle.apply("advbench.tasks.pc.contract:graph_arrays", *args)``: a function of the task's
  public contract, called there as ``fn(solution, *args)`` (for solutions that are data, or that
  need the profile's simulator built next to them);
* ``handle.fetch()``: the solution itself, when it is plain data.

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

    def apply(self, fn: str, *args: Any, **kwargs: Any) -> Any:
        """``fn(solution, *args, **kwargs)`` where the solution lives; ``fn`` is ``"module:name"``."""
        return self._request(("apply", fn, args, kwargs))

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
    if kind == "apply":
        from advbench.registry import load_object

        _, target, args, kwargs = request
        return load_object(target)(solution, *args, **kwargs)
    if kind == "fetch":
        return solution
    raise ValueError(f"unknown request {kind!r}")


class LocalSolution(SolutionHandle):
    """In-process mode (debugging only): the same calls, the same plain-data answers, no isolation."""

    def __init__(self, solution: Any) -> None:
        self._solution = solution

    def _request(self, request: tuple) -> Any:
        try:
            result = answer(self._solution, request)
            return loads_plain(dumps_plain(result))
        except Exception as exc:
            raise SolutionError("".join(traceback.format_exception_only(type(exc), exc)).strip()) from exc


def send_plain(conn: Any, obj: Any) -> None:
    conn.send_bytes(dumps_plain(obj))


def recv_plain(conn: Any) -> Any:
    """A message from a process that runs method code: decoded as plain data, never unpickled freely."""
    return loads_plain(conn.recv_bytes())


class RemoteSolution(SolutionHandle):
    """The solution currently loaded in a scoring process (:func:`serve` at the other end)."""

    def __init__(self, conn: Any, deadline: float, alive: Callable[[], str | None]) -> None:
        self._conn, self._deadline, self._alive = conn, deadline, alive

    def _request(self, request: tuple) -> Any:
        self._conn.send(("request", request))
        return self._reply()

    def _reply(self) -> Any:
        while not self._conn.poll(0.05):
            dead = self._alive()
            if dead:
                raise SolutionError(f"the scoring process died: {dead}")
            if time.monotonic() > self._deadline:
                raise SolutionError("evaluation ran past its time limit")
        try:
            reply = recv_plain(self._conn)
        except (EOFError, OSError) as exc:
            raise SolutionError(f"the scoring process died: {self._alive() or exc}") from exc
        except pickle.UnpicklingError as exc:
            raise SolutionError(f"the scoring process sent something other than plain data: {exc}") from exc
        if not (isinstance(reply, tuple) and len(reply) == 2 and reply[0] in ("ok", "error")):
            raise SolutionError("the scoring process broke the protocol")
        if reply[0] == "error":
            raise SolutionError(str(reply[1]))
        return reply[1]

    def load(self, solution_pickle: bytes) -> float:
        """Hand the scoring process a solution's pickle (unopened here); return its load seconds."""
        self._conn.send(("load", solution_pickle))
        return float(self._reply())

    def drop(self) -> None:
        self._conn.send(("drop",))
        self._reply()


def serve(conn: Any) -> None:
    """The scoring process's loop: load a solution's pickle, answer requests about it, drop it."""
    solution: Any = None
    while True:
        try:
            msg = conn.recv()  # from the harness, which is trusted
        except EOFError:
            return
        kind = msg[0]
        try:
            if kind == "load":
                t0 = time.perf_counter()
                solution = None
                solution = pickle.loads(msg[1])
                send_plain(conn, ("ok", time.perf_counter() - t0))
            elif kind == "request":
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
