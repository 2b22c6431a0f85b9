"""The held-out side of ``nas``: the table (built once, cached), the oracle that answers ``ctx.ask``, the scores.

The table lives here, not in a public module, so a method's process cannot import the code that
builds or loads it (the sandbox refuses ``*.heldout`` modules); see the task's docstring for what
that does and does not protect.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from advbench.task import Problem, Seal
from advbench.tasks.nas.contract import (N_ARCHITECTURES, N_CHOICES, SPACE, SearchSpace, better, choices_of,
                                         index_of)

if TYPE_CHECKING:
    from advbench.solution import SolutionHandle

# ---------------------------------------------------------------------------------------------
# The table: every architecture of contract.SPACE trained once with fixed seeds
# ---------------------------------------------------------------------------------------------

# Bump when anything below changes the numbers: the cache file's name carries it. Version 1's numbers
# changed under it when the unsealed seed's digits split changed (records held ac2db097..., a rebuild
# gave dbf4aaaf...): the public table this code builds is pinned here, and a test rebuilds and compares.
# Version 3 moved from scikit-learn's digits to the glyph digits: the public table, and one table per
# sealed (task, variant, seed), made from that run's seal material. Version 4 keeps the recipe and
# trains a group as one stack per activation, with dropout drawn from NumPy (below): the same
# training, other random draws and sums, so other numbers; 1.6x faster (81 s against 130 s).
TABLE_VERSION = 4
TABLE_SHA256 = "e05a37027e9852b335f6ea180ae931fd9481a3c288ddcfbaa85bf784b4af2b51"  # the public (unsealed) table
TABLE_SEED = 0  # the glyph set (advbench.glyphs under Seal(TABLE_SEED, key)), the folds and the training seeds
FOLDS = 3  # of the 1350 training glyphs: each architecture is trained 3 times, on 900, validated on 450
EPOCHS = 150  # full-batch Adam steps
LEARNING_RATE = 0.01
WEIGHT_DECAY = 1e-4
PER_GROUP = N_CHOICES[2] * N_CHOICES[3]  # one (depth, width) group: every activation x dropout, trained together
N_GROUPS = N_CHOICES[0] * N_CHOICES[1]
COLUMNS = ("validation_accuracy", "validation_loss", "test_accuracy", "train_accuracy")


@dataclass(frozen=True)
class Table:
    """One row per architecture (row = ``contract.index_of``): float64 columns of :data:`COLUMNS`."""

    validation_accuracy: np.ndarray
    validation_loss: np.ndarray
    test_accuracy: np.ndarray
    train_accuracy: np.ndarray

    def sha256(self) -> str:
        h = hashlib.sha256()
        for c in COLUMNS:
            h.update(np.ascontiguousarray(getattr(self, c), dtype="<f8").tobytes())
        return h.hexdigest()

    def best_by_validation(self, rows: "np.ndarray | list[int] | None" = None) -> int:
        """The row :func:`contract.better` ranks first among ``rows`` (all rows by default; the first on ties)."""
        rows = range(len(self.validation_accuracy)) if rows is None else rows
        best = None
        for i in rows:
            if best is None or better(self.answer(i), self.answer(best)):
                best = int(i)
        assert best is not None
        return best

    def answer(self, i: int) -> tuple[float, float]:
        return float(self.validation_accuracy[i]), float(self.validation_loss[i])


def cache_dir() -> Path:
    """``$ADVBENCH_CACHE``, else ``$XDG_CACHE_HOME/advbench``, else ``~/.cache/advbench``."""
    if os.environ.get("ADVBENCH_CACHE"):
        return Path(os.environ["ADVBENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "advbench"


def key_name(key: bytes | None) -> str:
    """Whose table: ``public`` unsealed, else the first 16 hex digits of the SHA-256 of the run's
    seal material (``Seal.key``: an HMAC of the key for one task, variant and seed, so the methods
    of one seed share a table, and another seed or key has another)."""
    return "public" if key is None else "key-" + hashlib.sha256(key).hexdigest()[:16]


def cache_path(key: bytes | None = None, device: str = "cpu") -> Path:
    """The cached table of ``key``'s glyphs, trained on ``device``. A sealed table holds held-out
    numbers (every architecture's test accuracy in that run): it lives in the harness's cache, which
    the jail keeps out of a method's view, as it keeps out the key file. A table trained on a GPU has
    the CPU table's draws but the GPU's float sums, so other last bits: a file of its own."""
    where = "" if device == "cpu" else f"{device}-"
    return cache_dir() / f"nas-glyphs-mlp-table-v{TABLE_VERSION}-{where}{key_name(key)}.npz"


def table_folds(key: bytes | None = None) -> list[tuple[Any, Any, Any]]:
    """(fit, validation, test) arrays for each of the :data:`FOLDS` folds: one glyph set made under
    ``Seal(TABLE_SEED, key)`` (1350 training, 450 test images), its training part cut into stratified
    folds (from the seal too); the test images are the same for every fold. ``key`` is a sealed
    run's seal material (``Seal.key``), ``None`` for the public table every unsealed run shares."""
    from sklearn.model_selection import StratifiedKFold

    from advbench.datasets import LabelledArrays
    from advbench.glyphs import glyph_split

    seal = Seal(TABLE_SEED, key)
    train, test = glyph_split(seal)
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seal.random_state(TABLE_SEED, "folds")).split(
        train.x, train.y)
    c = np.ascontiguousarray
    return [(LabelledArrays(c(train.x[f]), c(train.y[f])), LabelledArrays(c(train.x[v]), c(train.y[v])), test)
            for f, v in folds]


# Dropout draws 16-bit integers from NumPy's PCG64: a unit is dropped when its draw is below
# round(p * 65536), and kept units are scaled by 65536 / (65536 - that), so the scaling undoes the
# exact drop rate (0.2 drops 13107 / 65536 = 0.19999695 of the units). torch's generator
# (``torch.rand`` and a comparison) took a fifth of v3's build; a 16-bit draw costs about a quarter
# of a ``torch.rand`` float here, and the 0.0 networks draw nothing.
DROP_THRESHOLDS = np.array([round(p * 65536) for p in SPACE["dropout"]])


def train_group(group: int, fold: int, data: tuple[Any, Any, Any], device: str = "cpu") -> np.ndarray:
    """Train the 12 architectures of one (depth, width) group on one fold; ``float64[12, 4]`` of :data:`COLUMNS`.

    The 12 networks are independent (separate weights; Adam is per element, so summing their losses
    gives each its own update). They train as four stacks, one per activation, of three networks, one
    per dropout rate, each stack batched along a leading model dimension with ``torch.bmm``. v3
    batched all 12 and sliced each activation's networks out of the batch: in backward every slice
    cost a zero fill and a copy of the whole batch, a fifth of the build. Seeds depend on the group
    and fold only, so any group can be rebuilt alone. Rows are activation-major, as the table's.
    Every random number is drawn on the CPU (initial weights from torch's CPU generator, dropout
    from NumPy) and moved to ``device``, so a GPU trains the same networks on the same draws.
    """
    import torch

    fit, val, test = data
    depth = SPACE["depth"][group // N_CHOICES[1]]
    width = SPACE["width"][group % N_CHOICES[1]]
    k = N_CHOICES[3]  # networks per stack
    gen = torch.Generator().manual_seed(1_000_000 * TABLE_SEED + 1000 * fold + group)
    masks = np.random.default_rng([TABLE_SEED, fold, group])
    sizes = [fit.x.shape[1]] + [width] * depth + [10]
    stacks = []
    for _ in SPACE["activation"]:
        params = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / fan_in ** 0.5  # nn.Linear's default initialisation
            w = ((torch.rand(k, fan_in, fan_out, generator=gen) * 2 - 1) * bound).to(device).requires_grad_(True)
            b = ((torch.rand(k, 1, fan_out, generator=gen) * 2 - 1) * bound).to(device).requires_grad_(True)
            params += [w, b]
        stacks.append(params)
    # In place on the matmul's fresh output (its backward does not need it): no new batch-sized tensor.
    funcs = {"relu": torch.relu_, "tanh": torch.tanh_, "elu": torch.nn.functional.elu_, "sigmoid": torch.sigmoid_}
    dropping = DROP_THRESHOLDS > 0
    thresholds = DROP_THRESHOLDS[dropping][:, None, None]
    scale = (65536 / (65536 - DROP_THRESHOLDS)).astype(np.float32)[:, None, None]

    def on_device(a: np.ndarray) -> Any:
        return torch.from_numpy(a).to(device)

    def keep_mask(n: int) -> Any:
        """``float32[k, n, width]``: each network's inverted-dropout mask (all ones at rate 0)."""
        keep = np.ones((k, n, width), dtype=bool)
        keep[dropping] = masks.integers(0, 65536, (int(dropping.sum()), n, width), dtype=np.uint16) >= thresholds
        return on_device(keep * scale)  # NumPy's product: a third of the time of torch's here

    def forward(x: Any, train: bool) -> Any:
        logits = []
        for activation, params in zip(SPACE["activation"], stacks):
            h = x.unsqueeze(0).expand(k, *x.shape)
            for layer in range(depth + 1):
                h = torch.bmm(h, params[2 * layer]).add_(params[2 * layer + 1])
                if layer < depth:
                    h = funcs[activation](h)
                    if train:
                        h = h * keep_mask(x.shape[0])
            logits.append(h)
        return torch.cat(logits)  # [12, n, 10], activation-major

    m = PER_GROUP

    def per_model_loss(logits: Any, y: Any) -> Any:
        return torch.nn.functional.cross_entropy(logits.reshape(-1, 10), y.repeat(m), reduction="none").view(m, -1).mean(1)

    x_fit, y_fit = on_device(fit.x), on_device(fit.y)
    opt = torch.optim.Adam([p for params in stacks for p in params], lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    for _ in range(EPOCHS):
        opt.zero_grad(set_to_none=True)
        per_model_loss(forward(x_fit, True), y_fit).sum().backward()
        opt.step()
    out = np.zeros((m, len(COLUMNS)))
    with torch.no_grad():
        def acc(d: Any) -> np.ndarray:
            return (forward(on_device(d.x), False).argmax(-1) == on_device(d.y)).double().mean(1).cpu().numpy()

        out[:, 0] = acc(val)
        out[:, 1] = per_model_loss(forward(on_device(val.x), False), on_device(val.y)).double().cpu().numpy()
        out[:, 2] = acc(test)
        out[:, 3] = acc(fit)
    return out


def _group_rows(group: int, key: bytes | None = None, device: str = "cpu") -> np.ndarray:
    """``float64[12, 4]``: one group trained on every fold, one thread, the mean over the folds."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same sums in the same order whoever builds it: the rows repeat exactly
    try:
        return np.mean([train_group(group, f, data, device) for f, data in enumerate(_folds(key))], axis=0)
    finally:
        torch.set_num_threads(threads)


@functools.lru_cache(maxsize=2)
def _folds(key: bytes | None) -> list[tuple[Any, Any, Any]]:
    return table_folds(key)  # once per process that builds groups


def _group_cost(group: int) -> int:
    """Multiply-adds per sample of one group's networks: the big groups go first to the workers."""
    depth, width = SPACE["depth"][group // N_CHOICES[1]], SPACE["width"][group % N_CHOICES[1]]
    return 64 * width + (depth - 1) * width * width + width * 10


def build_table(groups: "range | list[int] | None" = None,
                progress: Callable[[int, int], None] | None = None, workers: int | None = None,
                key: bytes | None = None, device: str = "cpu") -> np.ndarray:
    """``float64[rows, 4]`` for the rows of ``groups`` (all by default), in table order, on ``key``'s
    glyphs: each column the mean over the folds (validation: the 3-fold cross-validation accuracy, on
    all 1350 training images; test: the mean test accuracy of the three trained networks).

    Groups are independent and each is trained on one thread, so ``workers`` processes (default: this
    machine's cores, at most 4) build them side by side with the same numbers as one process (a test
    compares). Half the work is the matmuls, half the element-wise passes over each layer's
    activations (activation, dropout, their gradients); the deepest, widest group alone is a fifth.
    On ``device="cuda"`` the workers share the GPU (each draws its random numbers on its CPU core).
    """
    groups = list(range(N_GROUPS) if groups is None else groups)
    if workers is None:
        from advbench.profiles import available_cores

        workers = min(4, available_cores())
    workers = max(1, min(workers, len(groups)))
    rows: dict[int, np.ndarray] = {}
    if workers == 1:
        for g in groups:
            rows[g] = _group_rows(g, key, device)
            if progress is not None:
                progress(len(rows), len(groups))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # Each worker trains on one thread (_group_rows sets it before any work).
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_group_rows, g, key, device): g
                       for g in sorted(groups, key=_group_cost, reverse=True)}
            for done in as_completed(futures):
                rows[futures[done]] = done.result()
                if progress is not None:
                    progress(len(rows), len(groups))
    return np.concatenate([rows[g] for g in groups])


def _as_table(rows: np.ndarray) -> Table:
    return Table(*(np.ascontiguousarray(rows[:, j], dtype=np.float64) for j in range(len(COLUMNS))))


def _write_atomic(path: Path, rows: np.ndarray) -> None:
    """The table as one .npz, written whole or not at all (readers see the old file or the new one)."""
    from advbench.records import write_atomic

    buf = io.BytesIO()
    np.savez(buf, rows=rows, version=np.int64(TABLE_VERSION), columns=np.array(COLUMNS))
    write_atomic(path, buf.getvalue())


def _read(path: Path) -> np.ndarray | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            rows = z["rows"]
            if int(z["version"]) != TABLE_VERSION or rows.shape != (N_ARCHITECTURES, len(COLUMNS)):
                return None
            if tuple(z["columns"].tolist()) != COLUMNS or not np.isfinite(rows).all():
                return None
            return rows.astype(np.float64)
    except (OSError, ValueError, KeyError, EOFError):
        return None  # missing, truncated or foreign: rebuild


_LOADED: dict[Path, Table] = {}


# The public table as built by :func:`build_table` (``advbench.tasks.nas.heldout.build_table()``,
# about 85 s on two cores), shipped so that an unsealed run does not build it first: it is
# used only when its SHA-256 is :data:`TABLE_SHA256`, and tests/test_nas.py rebuilds groups of it
# and compares them (bit for bit on one machine; on another CPU float32 sums round otherwise and a
# prediction or two may move). It holds nothing sealed: every unsealed run scores on this table.
PUBLIC_TABLE_FILE = Path(__file__).with_name(f"public_table_v{TABLE_VERSION}.npz")


def _shipped_public_rows() -> np.ndarray | None:
    rows = _read(PUBLIC_TABLE_FILE)
    return rows if rows is not None and _as_table(rows).sha256() == TABLE_SHA256 else None


def load_table(*, rebuild: bool = False, key: bytes | None = None, device: str = "cpu") -> Table:
    """``key``'s table (the public one by default) from the cache, built on ``device`` (about 85 s on
    two CPU cores) and cached first when missing or unreadable. The public CPU table comes from the
    copy shipped with the package when the cache has none; a GPU builds its own."""
    path = cache_path(key, device)
    if not rebuild and path in _LOADED:
        return _LOADED[path]
    rows = None if rebuild else _read(path)
    if rows is None and not rebuild and key is None and device == "cpu":
        rows = _shipped_public_rows()
    if rows is None:
        rows = build_table(key=key, device=device)
        _write_atomic(path, rows)
    _LOADED[path] = table = _as_table(rows)
    return table


# ---------------------------------------------------------------------------------------------
# The task
# ---------------------------------------------------------------------------------------------

VARIANTS = ("glyphs-mlp",)
DEFAULT_EVALUATIONS = 100
REGRET_AT = (10, 25, 50, 100, 200)


class NASTask:
    def build(self, *, variant: str, seed: int, budget: Any, seal: Seal, device: str = "cpu") -> Problem:
        """``device``: where the harness trains the table when it must (the run's profile; ``SPEC.harness_device``)."""
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
        limit = int(budget.limits["evaluations"]) if budget is not None else DEFAULT_EVALUATIONS
        t0 = time.perf_counter()
        table = load_table(key=seal.key, device=device)
        load_seconds = time.perf_counter() - t0
        log: list[int] = []
        opt = table.best_by_validation()
        return Problem(
            train=SearchSpace(evaluations=limit),
            heldout={"table": table, "log": log, "evaluations": limit},
            oracle=Oracle(table, log, limit),
            heldout_description=frozenset({"optimum", "best_so_far"}),
            description={"variant": variant, "architectures": N_ARCHITECTURES, "evaluations": limit,
                         "table_version": TABLE_VERSION, "table_sha256": table.sha256(), "table_device": device,
                         "table_seconds": round(load_seconds, 3),
                         "optimum": {"row": opt, "choices": list(choices_of(opt)),
                                     "validation_accuracy": float(table.validation_accuracy[opt]),
                                     "test_accuracy": float(table.test_accuracy[opt]),
                                     "best_test_accuracy": float(table.test_accuracy.max())}},
        )

    def evaluate(self, solution: "SolutionHandle", problem: Problem, profile: Any) -> dict[str, float]:
        log, table = problem.heldout["log"], problem.heldout["table"]
        if not log:
            raise ValueError("no architecture was evaluated: ask (ctx.ask) before choosing")
        picked, asked = index_of(solution.architecture()), solution.asks()
        if isinstance(asked, bool) or not isinstance(asked, int) or asked != len(log):
            raise ValueError(f"the Choice says it was made after {asked!r} asks, but the method had asked "
                             f"{len(log)} times: pass the number of ctx.ask calls made so far")
        if picked not in log:
            raise ValueError("the returned architecture was never evaluated (ctx.ask): a method may only "
                             "pick among the architectures it paid for")
        metrics, curve = score(table, log, problem.heldout["evaluations"])
        # The whole best-so-far curve goes into the record (config.data), for plots; metrics are floats.
        problem.description["best_so_far"] = curve
        return metrics


class Oracle:
    """``ctx.ask``'s answer in the harness process: validation numbers only, each ask logged and counted.
    ``evaluate`` reads the log (the asks so far); the harness scores a checkpoint after the method has
    ended, as of the asks it had made: ``snapshot()`` is the log's length, ``as_of(n)`` its first n."""

    def __init__(self, table: Table, log: list[int], limit: int) -> None:
        self.table, self.log, self.limit = table, log, limit

    def __call__(self, question: Any) -> dict[str, Any]:
        i = index_of(question)  # ValueError on anything that is not an architecture: not counted
        if len(self.log) >= self.limit:
            raise ValueError(f"the budget of {self.limit} evaluations is spent")
        self.log.append(i)
        return {"validation_accuracy": float(self.table.validation_accuracy[i]),
                "validation_loss": float(self.table.validation_loss[i]),
                "evaluations_left": self.limit - len(self.log)}

    def snapshot(self) -> int:
        return len(self.log)

    @contextlib.contextmanager
    def as_of(self, asks: int) -> Iterator[None]:
        later = self.log[asks:]
        del self.log[asks:]  # the list the problem's heldout holds, shortened in place
        try:
            yield
        finally:
            self.log.extend(later)


def incumbents(table: Table, log: list[int]) -> list[int]:
    """The harness's pick after each ask: the best answer so far by :func:`contract.better`, earliest on ties."""
    out, best = [], None
    for i in log:
        if best is None or better(table.answer(i), table.answer(best)):
            best = i
        out.append(best)
    return out


def score(table: Table, log: list[int], limit: int) -> tuple[dict[str, float], dict[str, list]]:
    """Metrics of an ask log, and the best-so-far curve (one point per evaluation)."""
    if not log:
        raise ValueError("no architecture was evaluated")
    inc = incumbents(table, log)
    opt = float(table.test_accuracy[table.best_by_validation()])
    test = table.test_accuracy[inc]
    # A search that stops early keeps its pick: the curve runs on flat to the budget.
    full = np.concatenate([test, np.full(max(0, limit - len(test)), test[-1])])
    regret = opt - full
    last = inc[-1]
    metrics = {
        "test_accuracy": float(table.test_accuracy[last]),
        "regret": float(opt - table.test_accuracy[last]),
        "regret_to_best_test": float(table.test_accuracy.max() - table.test_accuracy[last]),
        "regret_auc": float(regret[:limit].mean()),
        "validation_accuracy": float(table.validation_accuracy[last]),
        "found_optimum": float(last == table.best_by_validation()),
        "evaluations": float(len(log)),
        "distinct_evaluations": float(len(set(log))),
    }
    for k in REGRET_AT:
        if k <= limit:
            metrics[f"regret_at_{k}"] = float(regret[k - 1])
    curve = {"evaluations": len(log), "limit": limit, "optimum_test_accuracy": opt,
             "test_accuracy": [round(float(v), 6) for v in test],
             "validation_accuracy": [round(float(table.validation_accuracy[i]), 6) for i in inc],
             "regret": [round(float(v), 6) for v in regret[:len(test)]]}
    return metrics, curve
