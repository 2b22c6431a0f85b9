"""What a method receives besides its training data: seed, budget, profile, and ``checkpoint``.

The context lives in the method's process. It holds no evaluator, no held-out data and no scores:
``checkpoint`` sends the solution's pickle to the harness and waits while the harness scores it
elsewhere; the only answer is whether the budget's wall-time cap is spent.
"""

from __future__ import annotations

import contextlib
import pickle
import time
from typing import Any, Callable, Mapping

from advbench.errors import BudgetExhausted
from advbench.spec import Budget, TaskSpec


class RunContext:
    """Handed to a method as ``method(train_data, ctx)``.

    A method calls ``ctx.checkpoint(solution)`` whenever it has something worth scoring. The
    harness then stops the training clock, scores the solution on held-out data the method never
    sees, and keeps the score for the run's learning curve; nothing about it comes back, so a
    method cannot select or stop on held-out data (use your own validation split for that).
    ``checkpoint`` raises :class:`BudgetExhausted` once the budget's wall-time cap is spent; the
    harness then scores the last checkpointed solution. Training time is measured by the harness,
    not here: :meth:`elapsed` is this process's own estimate, for planning.
    """

    def __init__(self, *, spec: TaskSpec, variant: str, seed: int, budget: Budget, profile: Any,
                 submit: Callable[[str, tuple], Any]) -> None:
        self.spec = spec
        self.variant = variant
        self.seed = seed
        self.budget = budget
        self.profile = profile
        self.__submit = submit  # name-mangled only to keep it out of the way; it holds nothing secret
        self.work = 0.0
        self._start = time.perf_counter()
        self._last_progress = 0.0

    # ---- what the method reads ----
    @property
    def limits(self) -> Mapping[str, float]:
        """The budget in the task's own units, e.g. ``ctx.limits["steps"]``."""
        return self.budget.limits

    @property
    def device(self) -> str:
        """The torch device string of the profile (``"cpu"``, ``"cuda"``)."""
        return self.profile.torch_device

    @property
    def simulator(self) -> Mapping[str, Any]:
        """Simulator options of a quantum profile (method, shots, noise)."""
        return self.profile.simulator

    def rng(self, stream: int = 0):
        """A numpy Generator seeded from the run seed (``stream`` separates independent uses)."""
        import numpy as np

        return np.random.default_rng([self.seed, stream])

    def elapsed(self) -> float:
        """Training seconds so far, as this process sees them (nothing is scored while it trains)."""
        return time.perf_counter() - self._start

    def time_left(self) -> float:
        return self.budget.max_seconds - self.elapsed()

    # ---- what the method reports ----
    def record_config(self, **config: Any) -> None:
        """Hyperparameters as actually used; stored in the record (as plain data)."""
        self.__submit("config", (_plain_config(config),))

    def count(self, n: float) -> None:
        """Add ``n`` units of work (samples, env steps, circuit evaluations) for the throughput."""
        self.work += float(n)

    def progress(self, done: float, total: float) -> None:
        now = time.perf_counter()
        if now - self._last_progress > 0.2 or done >= total:  # a few updates a second is plenty
            self._last_progress = now
            self.__submit("progress", (float(done), float(total)))

    def ask(self, question: Any) -> Any:
        """The task's answer to ``question`` (plain data), looked up in the harness process.

        Only tasks whose contract says so answer questions (nas: an architecture's validation
        accuracy). Every ask is counted in the record; a question the task refuses (malformed,
        over the budget) raises ``ValueError`` with the task's reason.
        """
        kind, answer = self.__submit("ask", (question,))
        if kind != "answer":
            raise ValueError(answer)
        return answer

    def checkpoint(self, solution: Any, step: float | None = None) -> None:
        """Hand ``solution`` in, to be scored on held-out data; enforce the time cap.

        The harness keeps it and scores it once the method's process has ended (a method learns
        nothing of its scoring, not even how long it takes), at the training time it was handed in.
        For a task whose solution is data (``spec.solution_data``), the data is taken here, on the
        training clock. Past 1000 checkpoints, or 8 GiB of them in all, a checkpoint is refused
        (``ValueError``)."""
        blob = dump_solution(solution, self.spec)
        exhausted = self.__submit("checkpoint", (_plain_step(step), self.work, blob))
        if exhausted:
            raise BudgetExhausted(f"the budget's wall-time cap of {self.budget.max_seconds:g} s is spent")


PLAIN = b"advbench-plain\0"  # a solution sent as plain data: decoded by the harness, opened by no process


def dump_solution(solution: Any, spec: TaskSpec | None = None) -> bytes:
    """What the harness receives of ``solution``.

    * A task whose solution is data (``spec.solution_data``): ``{name: solution.name()}`` for each
      name, as plain data (taken here, in the method's process, on the training clock).
    * A solution that is plain data itself (numbers, arrays, dicts of them): that, as plain data.
    * Anything else: its pickle, which only a scoring process opens.
    """
    from advbench.solution import dumps_plain

    if spec is not None and spec.solution_data:
        data = {}
        for name in spec.solution_data:
            fn = getattr(solution, name, None)
            if not callable(fn):
                raise TypeError(f"a {spec.name} solution needs {', '.join(f'{n}()' for n in spec.solution_data)}; "
                                f"{type(solution).__qualname__} has no {name}()")
            data[name] = fn()
        try:
            return PLAIN + dumps_plain({"parts": data})
        except TypeError as exc:
            raise TypeError(f"a {spec.name} solution's {', '.join(f'{n}()' for n in spec.solution_data)} must "
                            f"return plain data: {exc}") from exc
    with contextlib.suppress(TypeError):  # not plain data: pickled below, for a scoring process to open
        return PLAIN + dumps_plain({"whole": solution})
    try:
        return pickle.dumps(solution, protocol=5)
    except Exception as exc:
        raise TypeError(f"the solution ({type(solution).__qualname__}) cannot be pickled, so it cannot be "
                        f"scored: {exc}. Define its class at module level (no lambdas or closures)") from exc


def _plain_step(step: Any) -> Any:
    if step is None or isinstance(step, (int, float, str)):
        return step
    try:
        return float(step)
    except (TypeError, ValueError):
        return str(step)


def _plain_config(config: dict[str, Any]) -> dict[str, Any]:
    from advbench.solution import to_plain

    out = {}
    for k, v in config.items():
        try:
            out[str(k)] = to_plain(v)
        except TypeError:
            out[str(k)] = repr(v)
    return out
