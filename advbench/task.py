"""The contract between the harness and a task's held-out code.

A task is a package ``tasks/<name>/`` (installed as ``advbench.tasks.<name>``) of three modules:

* ``__init__.py`` holds the :class:`~advbench.spec.TaskSpec` (``SPEC``) and nothing heavy, so that
  ``advbench list`` reads it without importing numpy or torch;
* ``contract.py`` is the public contract: the data types a method receives, the solution type it
  returns, constants and helpers. Methods (baselines and plugins) import this and only this;
* ``heldout.py`` builds the data and scores solutions. It is imported only by the harness process:
  an import-linter contract keeps ``baselines/`` and ``examples/`` off it, and the processes that
  run method code refuse to import it.

``build`` makes the data of one variant and seed and splits it into the method's view
(``Problem.train``, pickled to the method's process) and what only the harness keeps
(``Problem.heldout``). Every random choice that decides held-out data comes from ``seal`` so that a
sealed run (``advbench run --sealed``) cannot be rebuilt from its public seed.

``evaluate`` scores a solution. The solution is not in the harness process: it lives in a scoring
process that never receives held-out answers, and ``evaluate`` gets a
:class:`~advbench.solution.SolutionHandle` to it. Send it held-out *inputs*, get back plain data
(numpy arrays, numbers), and compute the metrics here, where the answers are.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Protocol

from advbench.spec import Budget

if TYPE_CHECKING:
    import numpy as np

    from advbench.profiles import Profile
    from advbench.solution import SolutionHandle


@dataclass
class Problem:
    train: Any  # handed to the method: training (and validation) data, or an environment factory
    heldout: Any  # never leaves the harness process
    description: dict[str, Any] = field(default_factory=dict)  # sizes, sources: stored in the record
    # Files ``evaluate`` made of the solution it scored (name -> bytes, e.g. "samples.png": a PNG);
    # those of the final evaluation are written beside the record and listed in its "artifacts".
    artifacts: dict[str, bytes] = field(default_factory=dict)
    # Answers a method's ``ctx.ask(question)`` in the harness process, so what it looks answers up
    # in never reaches the method (a tabular benchmark's validation column: nas). Plain data in and
    # out; a ValueError it raises is raised by ``ctx.ask`` in the method. Every ask is counted.
    # Checkpoints are scored once the method's process has ended (so that it cannot time its scoring),
    # each as of the moment it was handed in: an oracle whose answers change what ``evaluate`` reads
    # (nas's log of asks, dp-fedavg's privacy ledger) also has ``snapshot()``, a cheap copy of that
    # state, and ``as_of(snapshot)``, a context manager under which ``evaluate`` reads it as it was.
    oracle: Callable[[Any], Any] | None = None
    # Names of ``description`` items that tell something of the held-out data (evaluation episode
    # seeds, test accuracies of what a method asked about). Unsealed, they are in the record like
    # the rest; sealed, they go to a private artifact (``heldout-description.json``), never a record.
    heldout_description: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Seal:
    """Where the random choices that decide held-out data come from.

    Unsealed (``key is None``) they come from the public seed alone, exactly as before sealing
    existed, so unsealed runs stay reproducible from their record. Sealed, they come from an HMAC
    of the seed and the stream under a key the method's process never receives, so a method that
    rebuilds the data from ``ctx.seed`` gets other held-out data than the harness scores on.
    """

    seed: int
    key: bytes | None = None

    @property
    def sealed(self) -> bool:
        return self.key is not None

    def _keyed(self, stream: tuple[Any, ...], words: int) -> list[int]:
        assert self.key is not None
        digest = hmac.new(self.key, repr((self.seed, *stream)).encode(), hashlib.sha256).digest()
        return [int.from_bytes(digest[4 * i: 4 * i + 4], "little") for i in range(words)]

    def rng(self, *stream: int) -> "np.random.Generator":
        """A numpy Generator for one held-out stream: ``default_rng([seed, *stream])`` unsealed."""
        import numpy as np

        return np.random.default_rng([self.seed, *stream] if self.key is None else self._keyed(stream, 8))

    def random_state(self, public: int, *stream: Any) -> int:
        """An integer seed for libraries that take one (scikit-learn's ``random_state``):
        ``public`` unsealed, a keyed 31-bit integer sealed."""
        return public if self.key is None else self._keyed(("random_state", public, *stream), 1)[0] >> 1


class Task(Protocol):
    def build(self, *, variant: str, seed: int, budget: Budget, seal: Seal) -> Problem: ...

    def evaluate(self, solution: "SolutionHandle", problem: Problem, profile: "Profile") -> dict[str, float]: ...


def check_labels(out: Any, n: int, n_classes: int | None = None) -> "np.ndarray":
    """What a solution's ``predict`` sent back, checked: ``n`` integer class labels (integral floats
    accepted), within ``0 .. n_classes - 1`` when given, as int64; else an error that says what is wrong.
    For a task's ``evaluate``: a malformed answer is an error, never a score."""
    import numpy as np

    pred = np.asarray(out)
    if pred.dtype == np.bool_ or not np.issubdtype(pred.dtype, np.number) or np.issubdtype(pred.dtype, np.complexfloating):
        raise TypeError(f"predict returned an array of {pred.dtype}; expected integer class labels")
    pred = pred.reshape(-1)
    if pred.shape != (n,):
        raise ValueError(f"predict returned shape {pred.shape}, expected ({n},)")
    if np.issubdtype(pred.dtype, np.floating):
        if not np.isfinite(pred).all():
            raise ValueError("predict returned NaN or infinite values; expected integer class labels")
        if not np.array_equal(pred, np.round(pred)):
            raise ValueError("predict returned non-integer values; expected integer class labels")
    pred = pred.astype(np.int64)
    if n_classes is not None and len(pred) and (pred.min() < 0 or pred.max() >= n_classes):
        raise ValueError(f"predict returned labels outside 0-{n_classes - 1}: {sorted(set(pred.tolist()))[:5]}...")
    return pred
