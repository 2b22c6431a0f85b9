"""edge — compressing a small CNN for deployment: int8 quantisation and pruning, measured on CPU.

Data: scikit-learn's bundled ``load_digits`` as ``1 x 8 x 8`` images, pixels divided by 16 (in
[0, 1]). A stratified 75/25 split seeded by the run seed keeps 450 images as held-out test data.

What the method sees (``Problem.train``): an :class:`Images` with ``x`` (float32,
``(1347, 1, 8, 8)``) and ``y`` (int64). Everything a method needs for calibration and fine-tuning
comes from there; the held-out images stay in ``Problem.heldout``.

Solution: an :class:`EdgeSolution` (or any object with the same attributes):

* ``fp32``: the trained float model, ``nn.Module`` taking float32 ``(B, 1, 8, 8)`` to ``(B, 10)``
  logits; the reference for every "drop" and "speedup".
* ``int8``: the compressed model for deployment, same input and output (float in, float logits
  out: quantise/dequantise stubs inside). ``None`` means "no compression": the fp32 model is used.
* ``pruned``: a pruned (and fine-tuned) model, or ``None`` (the fp32 model is used).
* ``quant_path`` (str): which quantisation path produced ``int8``, e.g. ``"torch.ao eager static
  (x86, fused)"``; ``quant_engine`` (str or ``None``): the ``torch.backends.quantized.engine`` the
  int8 model was converted for (evaluation runs under it). Metrics must be floats, so these are
  recorded by the method with ``ctx.record_config`` and stored on the solution.

Metrics (all measured here, on the held-out images):

* ``fp32_acc``, ``int8_acc`` (fractions) and ``acc_drop`` = ``100 * (fp32_acc - int8_acc)`` in
  points, lower is better (negative when quantisation happens to help).
* ``size_ratio`` (primary): bytes of ``torch.save(fp32.state_dict())`` over bytes of
  ``torch.save(int8.state_dict())`` (in memory, ``BytesIO``). Higher is better.
* ``latency_{fp32,int8}_b{1,256}_ms``: per-call latency in milliseconds of a forward pass under
  ``torch.inference_mode`` on ONE thread (``torch.set_num_threads(1)``, restored afterwards), after
  warm-up, the median over repeats. The fp32 and int8 timings are interleaved repeat by repeat so
  that load from other processes falls on both alike; ``speedup_b1`` / ``speedup_b256`` are the
  median of the per-repeat ratios fp32 / int8.
* ``prune_acc_drop`` = ``100 * (fp32_acc - pruned_acc)`` in points; ``prune_sparsity`` = share of
  exactly-zero entries in the pruned model's conv and linear weights; ``pruned_size_ratio`` = fp32
  bytes over pruned bytes (about 1: dense storage does not shrink with zeros, and it falls to about
  0.5 if the pruning masks were left in place, the classic ``prune.remove`` trap).

Targets (measured with the reference baseline, ``advbench.baselines.edge:compress``: CNN
conv32-bn-relu, conv64-bn-relu, max-pool, linear 1024-256-10, 1.14 MB in fp32; full budget, seeds
0-2, on a 2-core AMD EPYC (AVX2, no VNNI) shared with other jobs, so every timing is noisy):

* quick: ``acc_drop <= 1.0`` and ``size_ratio >= 3.5``. Static int8 with fused conv-bn-relu keeps
  accuracy (fp32 0.991-0.998, drop -0.2 to +0.2 points) at 0.30 MB, 3.82x smaller.
* full: the same, plus ``speedup_b256 >= 1.2``, ``prune_acc_drop <= 1.0`` and
  ``prune_sparsity >= 0.7``. Speed depends on the int8 kernels: with the ``onednn`` engine (the
  reference's choice) int8 took 13-14 ms against 24-25 ms for fp32 at batch 256, speedup 1.67-1.85
  (1.6-2.2 over other sessions), so 1.2 holds with margin; with the ``x86`` engine (which picks
  fbgemm here) the speedup was 1.19-1.42, too close to 1.2 to be a reliable bar. At batch 1 the
  per-call overhead dominates: x86 gives 1.03-1.09x, onednn is *slower* than fp32 (0.33-0.82x),
  so batch 1 has no target and ``speedup_b1`` is reported for information only. 70 % global
  magnitude pruning with fine-tuning kept accuracy (drop -0.2 to +0.4 points); the sparsity bar is
  there because without it the unpruned model would meet the drop target trivially. Unstructured
  sparsity gives no dense speedup, so the pruned model has no speed target.

The floor hands back the fp32 model alone: drop 0, size ratio 1, speedup about 1, sparsity 0.
"""

from __future__ import annotations

import io
import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from advbench.spec import Budget, Metric, Target, TaskSpec
from advbench.task import Problem

TEST_FRACTION = 0.25
LATENCY_BATCHES = (1, 256)
WARMUP_CALLS = 10
REPEATS = 21  # odd: the median is one measured repeat
MIN_REPEAT_SECONDS = 0.02  # each repeat loops the call until it lasts this long (timer resolution, noise)

SPEC = TaskSpec(
    name="edge",
    version=1,
    title="Quantisation and pruning for deployment",
    summary="Static int8 quantisation and magnitude pruning of a digit CNN: accuracy drop, size, single-thread latency.",
    variants={"digits-cnn": "sklearn load_digits as 1x8x8 images, small conv-bn-relu CNN"},
    metrics=(
        Metric("size_ratio", "x", True, "fp32 state_dict bytes / int8 state_dict bytes (torch.save)"),
        Metric("acc_drop", "points", False, "100 x (fp32 accuracy - int8 accuracy) on held-out images"),
        Metric("fp32_acc", "fraction", True, "held-out accuracy of the fp32 model"),
        Metric("int8_acc", "fraction", True, "held-out accuracy of the int8 model"),
        *(Metric(f"latency_{kind}_b{b}_ms", "ms", False, f"median per-call latency, batch {b}, one thread")
          for b in LATENCY_BATCHES for kind in ("fp32", "int8")),
        *(Metric(f"speedup_b{b}", "x", True, f"fp32 / int8 latency at batch {b} (median of paired repeats)")
          for b in LATENCY_BATCHES),
        Metric("prune_acc_drop", "points", False, "100 x (fp32 accuracy - pruned accuracy)"),
        Metric("prune_sparsity", "fraction", True, "share of zero weights in the pruned model's conv/linear layers"),
        Metric("pruned_size_ratio", "x", True, "fp32 bytes / pruned bytes (about 1; about 0.5 if masks are left)"),
    ),
    primary_metric="size_ratio",
    targets=(
        Target("acc_drop", 1.0, "quick", "digits-cnn"),
        Target("size_ratio", 3.5, "quick", "digits-cnn"),
        Target("acc_drop", 1.0, "full", "digits-cnn"),
        Target("size_ratio", 3.5, "full", "digits-cnn"),
        Target("speedup_b256", 1.2, "full", "digits-cnn"),
        Target("prune_acc_drop", 1.0, "full", "digits-cnn"),
        Target("prune_sparsity", 0.7, "full", "digits-cnn"),
    ),
    budgets={
        "quick": Budget("quick", max_seconds=120,
                        limits={"epochs": 10, "finetune_epochs": 2, "calibration_batches": 8, "batch_size": 64},
                        variants=("digits-cnn",)),
        "full": Budget("full", max_seconds=600,
                       limits={"epochs": 30, "finetune_epochs": 10, "calibration_batches": 16, "batch_size": 64},
                       variants=("digits-cnn",)),
    },
    profiles=("cpu",),  # int8 eager kernels (fbgemm / x86 / qnnpack) are CPU-only; latency is a CPU measurement
    throughput_unit="samples/s",
    entry_point="advbench.tasks.edge:EdgeTask",
    solution="EdgeSolution(fp32, int8, pruned, quant_path, quant_engine): nn.Modules, float32 (B,1,8,8) -> (B,10) logits",
    data="sklearn load_digits / 16 as 1x8x8 images, stratified 75/25 split seeded by the run seed (450 held-out)",
    extras=("vision",),  # torch + scikit-learn
)


@dataclass
class Images:
    """What a method gets: 1x8x8 digit images in [0, 1] and their labels."""

    x: np.ndarray  # float32 (n, 1, 8, 8)
    y: np.ndarray  # int64 (n,)
    n_classes: int = 10


@dataclass
class EdgeSolution:
    fp32: Any  # nn.Module
    int8: Any = None  # nn.Module or None (= no compression)
    pruned: Any = None  # nn.Module or None (= not pruned)
    quant_path: str = "none"
    quant_engine: str | None = None
    prune_amount: float = 0.0


def load_split(seed: int, test_fraction: float = TEST_FRACTION) -> tuple[Images, Images]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None, :, :]
    y = data.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=seed)
    return Images(x_tr, y_tr), Images(x_te, y_te)


# ---------------------------------------------------------------- measurements
def state_dict_bytes(model) -> int:
    """Serialised size: ``torch.save(model.state_dict())`` into memory."""
    import torch

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


def accuracy(model, x, y) -> float:
    import torch

    with torch.inference_mode():
        return (model(x).argmax(1) == y).float().mean().item()


def weight_sparsity(model) -> float:
    """Share of exactly-zero entries over the weights of every conv and linear layer."""
    import torch

    zeros = total = 0
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            w = m.weight.detach()
            zeros += int((w == 0).sum())
            total += w.numel()
    return zeros / total if total else 0.0


def _per_call(model, x, n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        model(x)
    return (time.perf_counter() - t) / n


def paired_latency(a, b, x, repeats: int = REPEATS) -> tuple[float, float, float]:
    """Median per-call seconds of ``a`` and ``b`` on ``x`` and the median of per-repeat ratios a / b.

    Run with the caller's thread setting; warm-up first (allocator, one-off kernel selection), then
    repeats that alternate a and b so that a burst of load from elsewhere hits both.
    """
    import torch

    with torch.inference_mode():
        for _ in range(WARMUP_CALLS):
            a(x), b(x)
        # Calls per repeat: enough that one repeat lasts MIN_REPEAT_SECONDS for the slower model.
        one = max(_per_call(a, x, 3), _per_call(b, x, 3), 1e-6)
        n = max(1, int(MIN_REPEAT_SECONDS / one))
        ta, tb = [], []
        for _ in range(repeats):
            ta.append(_per_call(a, x, n))
            tb.append(_per_call(b, x, n))
    ratios = [p / q for p, q in zip(ta, tb)]
    return statistics.median(ta), statistics.median(tb), statistics.median(ratios)


class EdgeTask:
    def build(self, *, variant: str, seed: int, budget: Budget) -> Problem:
        if variant != "digits-cnn":
            raise ValueError(f"unknown variant {variant!r}")
        train, test = load_split(seed)
        return Problem(train=train, heldout=test,
                       description={"variant": variant, "train": len(train.y), "heldout": len(test.y),
                                    "latency": f"1 thread, {WARMUP_CALLS} warm-up calls, median of {REPEATS} paired repeats"})

    def evaluate(self, solution: Any, problem: Problem, profile: Any) -> dict[str, float]:
        import torch

        fp32 = getattr(solution, "fp32", None)
        if not isinstance(fp32, torch.nn.Module):
            raise TypeError(f"solution must have an nn.Module .fp32 (an EdgeSolution), got {type(solution).__name__}")
        int8 = getattr(solution, "int8", None)
        int8 = fp32 if int8 is None else int8  # "is None": an empty nn.Sequential is falsy
        pruned = getattr(solution, "pruned", None)
        pruned = fp32 if pruned is None else pruned
        engine = getattr(solution, "quant_engine", None)
        test: Images = problem.heldout
        x, y = torch.as_tensor(test.x), torch.as_tensor(test.y)

        threads, old_engine = torch.get_num_threads(), torch.backends.quantized.engine
        modes = [(m, m.training) for m in (fp32, int8, pruned)]
        try:
            torch.set_num_threads(1)  # edge deployment: one core; also far less noisy on a shared machine
            if engine:
                torch.backends.quantized.engine = engine  # packed int8 weights belong to one engine
            for m, _ in modes:
                m.eval()
            out = {"fp32_acc": accuracy(fp32, x, y), "int8_acc": accuracy(int8, x, y)}
            out["acc_drop"] = 100.0 * (out["fp32_acc"] - out["int8_acc"])
            fp32_bytes = state_dict_bytes(fp32)
            out["size_ratio"] = fp32_bytes / state_dict_bytes(int8)
            for b in LATENCY_BATCHES:
                xb = x[:b].contiguous()
                t_fp32, t_int8, speedup = paired_latency(fp32, int8, xb)
                out[f"latency_fp32_b{b}_ms"] = 1e3 * t_fp32
                out[f"latency_int8_b{b}_ms"] = 1e3 * t_int8
                out[f"speedup_b{b}"] = speedup
            out["prune_acc_drop"] = 100.0 * (out["fp32_acc"] - accuracy(pruned, x, y))
            out["prune_sparsity"] = weight_sparsity(pruned)
            out["pruned_size_ratio"] = fp32_bytes / state_dict_bytes(pruned)
        finally:
            torch.set_num_threads(threads)
            torch.backends.quantized.engine = old_engine
            for m, was_training in modes:
                m.train(was_training)
        return out
