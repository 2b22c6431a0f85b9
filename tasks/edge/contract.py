"""The public contract of the ``edge`` task: what a method receives and must return, and the
measurement code that runs next to the solution.

A method receives an :class:`Images` as ``train``: ``x`` (``float32 (1347, 1, 8, 8)`` in [0, 1])
and ``y`` (``int64`` labels). Calibration and fine-tuning data come from there.

It returns an :class:`EdgeSolution` (or any object with the same attributes): ``fp32``, the trained
float ``nn.Module`` (``float32 (B, 1, 8, 8)`` -> ``(B, 10)`` logits); ``int8``, the compressed
model with the same input and output (quantise / dequantise stubs inside), or ``None``; ``pruned``,
a pruned model or ``None`` (``None`` means the fp32 model stands in); ``quant_path`` and
``quant_engine``, the ``torch.backends.quantized.engine`` the int8 weights were packed for.

The harness calls :func:`measure` on it in the scoring process with the held-out images only (no
labels): one thread, the solution's int8 engine, each model's predictions, ``state_dict`` sizes,
the pruned model's weight sparsity and paired single-thread latencies come back as plain data.

The solution reaches the scoring process as a pickle. PyTorch's eager int8 convolutions do not
survive ``pickle`` (their ``__setstate__`` skips ``nn.Module.__init__``: pytorch/pytorch#25137), so
:class:`EdgeSolution` pickles its modules itself, rebuilding such modules the way their own
``__deepcopy__`` does and repacking int8 weights under ``quant_engine``. Return an
``EdgeSolution`` (not another object with the same attributes) when ``int8`` is a quantised model.
"""

from __future__ import annotations

import io
import pickle
import statistics
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from advbench.tasks.edge import LATENCY_BATCHES

WARMUP_CALLS = 10
REPEATS = 21  # odd: the median is one measured repeat
MIN_REPEAT_SECONDS = 0.02  # each repeat loops the call until it lasts this long (timer resolution, noise)
MODELS = ("fp32", "int8", "pruned")

__all__ = ["LATENCY_BATCHES", "WARMUP_CALLS", "REPEATS", "MIN_REPEAT_SECONDS", "MODELS", "Images", "EdgeSolution",
           "state_dict_bytes", "weight_sparsity", "paired_latency", "predictions", "measure"]


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

    # Pickled through _ModulePickler: see the module docstring.
    def __getstate__(self) -> dict[str, Any]:
        buf = io.BytesIO()
        _ModulePickler(buf, protocol=5).dump(dict(self.__dict__))
        return {"quant_engine": self.quant_engine, "fields": buf.getvalue()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # int8 weights are repacked as they load, for the engine they were packed for.
        with _quantized_engine(state["quant_engine"]), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "TypedStorage is deprecated", UserWarning)  # torch's quantized-tensor loader
            self.__dict__.update(pickle.loads(state["fields"]))


def _rebuilt_by_deepcopy(cls: type) -> bool:
    """Modules whose pickling is broken: they define ``__setstate__`` (restoring their own fields
    only) and a ``__deepcopy__`` that calls ``nn.Module.__init__`` first (torch.ao quantized convs)."""
    import torch

    return (issubclass(cls, torch.nn.Module) and getattr(cls, "__deepcopy__", None) is not None
            and cls.__setstate__ is not torch.nn.Module.__setstate__)


def _rebuild_module(cls: type, state: Any) -> Any:
    """What such a module's own ``__deepcopy__`` does: a bare module, then its ``__setstate__``."""
    import torch

    module = cls.__new__(cls)
    torch.nn.Module.__init__(module)
    module.__setstate__(state)
    return module


class _ModulePickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if _rebuilt_by_deepcopy(type(obj)):
            return _rebuild_module, (type(obj), obj.__getstate__())
        return NotImplemented


class _quantized_engine:
    """Set ``torch.backends.quantized.engine`` for a block (if ``engine`` is given and supported here)."""

    def __init__(self, engine: str | None) -> None:
        self.engine, self.previous = engine, None

    def __enter__(self) -> None:
        if self.engine:
            import torch

            if self.engine in torch.backends.quantized.supported_engines:
                self.previous = torch.backends.quantized.engine
                torch.backends.quantized.engine = self.engine

    def __exit__(self, *exc: Any) -> None:
        if self.previous is not None:
            import torch

            torch.backends.quantized.engine = self.previous


# ---------------------------------------------------------------- measurements
def state_dict_bytes(model) -> int:
    """Serialised size: ``torch.save(model.state_dict())`` into memory."""
    import torch

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


def predictions(model, x) -> Any:
    """``argmax`` of the logits under ``torch.inference_mode`` (an int64 tensor)."""
    import torch

    with torch.inference_mode():
        return model(x).argmax(1)


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


def measure(solution: Any, x: np.ndarray, batches: tuple[int, ...] = LATENCY_BATCHES) -> dict[str, Any]:
    """Everything the task measures on the solution's modules, run where the solution lives.

    ``x``: the held-out images (``float32 (N, 1, 8, 8)``). On one thread and under the solution's
    ``quant_engine`` (both restored afterwards), with every model in eval mode (its mode restored):

    * ``pred``: ``{"fp32", "int8", "pruned"} -> int64 (N,)`` predicted classes;
    * ``bytes``: the same keys -> ``torch.save(state_dict)`` size in bytes;
    * ``latency``: batch size -> ``(fp32 seconds, int8 seconds, median per-repeat ratio)`` from
      :func:`paired_latency` on the first ``batch`` images;
    * ``prune_sparsity``: :func:`weight_sparsity` of the pruned model.

    A missing ``int8`` or ``pruned`` model (``None``) is the fp32 model.
    """
    import torch

    fp32 = getattr(solution, "fp32", None)
    if not isinstance(fp32, torch.nn.Module):
        raise TypeError(f"solution must have an nn.Module .fp32 (an EdgeSolution), got {type(solution).__name__}")
    int8 = getattr(solution, "int8", None)
    int8 = fp32 if int8 is None else int8  # "is None": an empty nn.Sequential is falsy
    pruned = getattr(solution, "pruned", None)
    pruned = fp32 if pruned is None else pruned
    engine = getattr(solution, "quant_engine", None)
    x = torch.as_tensor(x)

    threads, old_engine = torch.get_num_threads(), torch.backends.quantized.engine
    modes = [(m, m.training) for m in (fp32, int8, pruned)]
    try:
        torch.set_num_threads(1)  # edge deployment: one core; also far less noisy on a shared machine
        if engine:
            torch.backends.quantized.engine = engine  # packed int8 weights belong to one engine
        for m, _ in modes:
            m.eval()
        # The order of the old in-harness evaluation: accuracy, size, latency, then the pruned model.
        pred = {"fp32": predictions(fp32, x), "int8": predictions(int8, x)}
        size = {"fp32": state_dict_bytes(fp32), "int8": state_dict_bytes(int8)}
        latency = {int(b): paired_latency(fp32, int8, x[:b].contiguous()) for b in batches}
        pred["pruned"] = predictions(pruned, x)
        sparsity = weight_sparsity(pruned)
        size["pruned"] = state_dict_bytes(pruned)
    finally:
        torch.set_num_threads(threads)
        torch.backends.quantized.engine = old_engine
        for m, was_training in modes:
            m.train(was_training)
    return {"pred": pred, "bytes": size, "latency": latency, "prune_sparsity": sparsity}
