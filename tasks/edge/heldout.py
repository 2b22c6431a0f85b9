"""The held-out side of the ``edge`` task: the split, the source model, the metrics (harness only)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from advbench.spec import Budget
from advbench.task import Problem, Seal
from advbench.tasks.edge.contract import (DISTINCT_INPUTS, KNOWN_ENGINES, LATENCY_BATCHES, MAX_FILE_BYTES, MEASURE,
                                          MODELS, N_CLASSES, REPEATS, SOURCE_LR, SOURCE_STREAM, WARMUP_CALLS, EdgeTrain,
                                          Images, deployable_bytes, train_source_model)

if TYPE_CHECKING:
    from advbench.profiles import Profile
    from advbench.solution import SolutionHandle

TEST_FRACTION = 0.25


@dataclass
class EdgeHeldout:
    """What only the harness keeps: the test images, their labels, the source model's file."""

    x: np.ndarray  # float32 (450, 1, 8, 8)
    y: np.ndarray  # int64 (450,)
    source_file: bytes  # deployable_bytes of the task's fp32 model, taken at build time


def load_split(seal: Seal, test_fraction: float = TEST_FRACTION) -> tuple[Images, Images]:
    """The glyph digits of ``advbench.glyphs`` as 1x8x8 images, made under the seal, split stratified
    (450 held out), in fresh C-ordered memory (a channel axis with an odd stride reads as channels-last
    to torch, which pickling to the method's process would undo)."""
    from advbench.glyphs import glyph_split

    train, test = glyph_split(seal, test_fraction=test_fraction, images=True)
    return Images(train.x, train.y), Images(test.x, test.y)


def accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    """Share of correct predictions, computed as torch computes ``(pred == y).float().mean()``."""
    import torch

    return (torch.as_tensor(pred) == torch.as_tensor(y)).float().mean().item()


def _checked_export(e: Any) -> dict[str, Any]:
    """What :func:`~.contract.export` sent back from the scoring process, checked."""
    if not isinstance(e, dict) or set(e) != {"int8", "pruned", "quant_engine"}:
        raise TypeError("the edge export did not return a dict of int8, pruned and quant_engine")
    for name in ("int8", "pruned"):
        f = e[name]
        if f is not None and not isinstance(f, bytes):
            raise TypeError(f"the {name} file must be bytes or None, got {type(f).__name__}")
        if f is not None and not 0 < len(f) <= MAX_FILE_BYTES:
            raise ValueError(f"the {name} file has {len(f)} bytes (expected 1 to {MAX_FILE_BYTES})")
    engine = e["quant_engine"]
    if engine is not None and engine not in KNOWN_ENGINES:
        raise ValueError(f"quant_engine {engine!r} is not one of {KNOWN_ENGINES} or None")
    return e


def _checked(m: Any, n: int, batches: tuple[int, ...]) -> dict[str, Any]:
    """What :func:`~.contract.measure_files` returned, checked field by field."""
    def fail(what: str) -> ValueError:
        return ValueError(f"the edge measurement returned {what}")

    if not isinstance(m, dict) or not {"pred", "bytes", "latency", "numbers"} <= set(m):
        raise TypeError("the edge measurement did not return a dict with pred, bytes, latency and numbers")
    pred, size, latency, numbers = m["pred"], m["bytes"], m["latency"], m["numbers"]
    if not all(isinstance(d, dict) for d in (pred, size, latency, numbers)):
        raise TypeError("the edge measurement's pred, bytes, latency and numbers must be dicts")
    for k in MODELS:
        p = pred.get(k)
        if not isinstance(p, np.ndarray) or p.shape != (n,) or not np.issubdtype(p.dtype, np.integer):
            raise fail(f"predictions of the {k} model that are not {n} integers: "
                       f"{getattr(p, 'dtype', type(p).__name__)} {getattr(p, 'shape', '')}")
        b = size.get(k)
        if isinstance(b, bool) or not isinstance(b, int) or b <= 0:
            raise fail(f"a size of {b!r} bytes for the {k} model")
        c = numbers.get(k)
        if (not isinstance(c, (tuple, list)) or len(c) != 2 or not all(isinstance(v, int) and v >= 0 for v in c)
                or c[1] > c[0]):
            raise fail(f"stored numbers of the {k} model that are not (numbers, nonzero): {c!r}")
    if numbers["fp32"][1] <= 0:
        raise fail("a source model that stores no nonzero numbers")
    for b in batches:
        t = latency.get(b)
        if (not isinstance(t, (tuple, list)) or len(t) != 3
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in t)
                or not all(math.isfinite(v) and v > 0 for v in t)):
            raise fail(f"latencies at batch {b} that are not three finite positive numbers: {t!r}")
    return m


class EdgeTask:
    def build(self, *, variant: str, seed: int, budget: Budget, seal: Seal) -> Problem:
        if variant != "glyphs-cnn":
            raise ValueError(f"unknown variant {variant!r}")
        train, test = load_split(seal)
        epochs, batch_size = int(budget.limits["source_epochs"]), int(budget.limits["batch_size"])
        model = train_source_model(train.x, train.y, seed=seed, epochs=epochs, batch_size=batch_size)
        source_file = deployable_bytes(model, "source")  # taken now: nothing the method does can change it
        how = {"architecture": "DigitCNN(32, 64, 256)", "epochs": epochs, "batch_size": batch_size, "lr": SOURCE_LR,
               "optimizer": "Adam", "seed": seed, "batch_order": f"default_rng([seed, {SOURCE_STREAM}])", "threads": 1}
        return Problem(
            train=EdgeTrain(x=train.x, y=train.y, model=model, n_classes=N_CLASSES, source_training=how),
            heldout=EdgeHeldout(x=test.x, y=test.y, source_file=source_file),
            description={"variant": variant, "train": len(train.y), "heldout": len(test.y),
                         "source_model": how, "source_file_bytes": len(source_file),
                         "deployable": "TorchScript (torch.jit.save), loaded back with torch.jit.load",
                         "latency": f"fresh process, 1 thread, {WARMUP_CALLS} warm-up calls, median of {REPEATS} "
                                    f"paired repeats, {DISTINCT_INPUTS} distinct batches per size"})

    def evaluate(self, solution: "SolutionHandle", problem: Problem, profile: "Profile") -> dict[str, float]:
        test: EdgeHeldout = problem.heldout
        exported = _checked_export(solution.deployable_files())
        files = {"fp32": test.source_file,
                 "int8": exported["int8"] if exported["int8"] is not None else test.source_file,
                 "pruned": exported["pruned"] if exported["pruned"] is not None else test.source_file}
        # Measured in the clean scoring process (jailed, never opened a solution), from the files alone.
        m = _checked(solution.compute(MEASURE, files, test.x, engine=exported["quant_engine"]), len(test.y),
                     LATENCY_BATCHES)
        pred, size, numbers = m["pred"], m["bytes"], m["numbers"]
        out = {"fp32_acc": accuracy(pred["fp32"], test.y), "int8_acc": accuracy(pred["int8"], test.y)}
        out["acc_drop"] = 100.0 * (out["fp32_acc"] - out["int8_acc"])
        out["size_ratio"] = size["fp32"] / size["int8"]
        for b in LATENCY_BATCHES:
            t_fp32, t_int8, speedup = m["latency"][b]
            out[f"latency_fp32_b{b}_ms"] = 1e3 * t_fp32
            out[f"latency_int8_b{b}_ms"] = 1e3 * t_int8
            out[f"speedup_b{b}"] = speedup
        out["prune_acc_drop"] = 100.0 * (out["fp32_acc"] - accuracy(pred["pruned"], test.y))
        out["prune_sparsity"] = 1.0 - numbers["pruned"][1] / numbers["fp32"][1]
        out["pruned_size_ratio"] = size["fp32"] / size["pruned"]
        return out
