"""Post-training static int8 quantisation and magnitude pruning of a given CNN, CleanRL-style.

The task hands over its trained fp32 model (``train.model``, a ``DigitCNN``: conv-bn-relu x 2,
max-pool, linear 1024-256-10) with the training images; the method compresses it two ways:

1. Static int8 quantisation with PyTorch's eager-mode API (``torch.ao.quantization``): copy the
   model, ``.eval()`` it (batch-norm must use its running statistics before it is folded), fuse
   conv-bn-relu and linear-relu (one int8 kernel each, and bn folded into the conv weights), insert
   observers with the ``x86`` qconfig (per-channel weights, histogram activations), calibrate on
   *training* batches only, convert with the ``onednn`` kernels (fastest here; see ``Config``).
   The model carries ``QuantStub`` / ``DeQuantStub`` so it takes and returns float tensors like
   the fp32 one.
2. Global magnitude (L1) pruning of 70 % of the conv and linear weights, fine-tuning with the masks
   in place (pruned weights stay zero), then ``prune.remove`` so the weights are plain tensors again
   (with the masks left in, the model does not compile to TorchScript, and traced it stores
   weight_orig *and* weight_mask: twice the size).

The task ships both as TorchScript files and measures those (``advbench.tasks.edge.contract``);
both modules script as they are. torchao's pt2e flow (``prepare_pt2e`` / ``convert_pt2e``) is the
successor of the eager API; it is feature-checked and recorded but not used, because torchao is not
installed here and the eager path is the one that was measured. ``quant_path`` in the record says
which path produced the model.
"""

from __future__ import annotations

import copy
import importlib.util
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from advbench.tasks.edge.contract import DigitCNN, EdgeSolution, batches, train_epochs


@dataclass
class Config:
    batch_size: int = 64  # overridden by the budget
    calibration_batches: int = 16  # training batches seen by the observers, overridden by the budget
    # Kernels: torch.backends.quantized engine. onednn measured fastest at batch 256 on one thread
    # here (int8 10-18 ms against 27 ms for the x86 engine, which picked fbgemm; fp32 17-32 ms).
    # Falls back to x86, fbgemm, qnnpack where onednn is missing.
    engine: str = "onednn"
    # Observers: the x86 qconfig (per-channel symmetric int8 weights, 7-bit "reduce_range"
    # activations). onednn's own qconfig uses 8-bit activations, which can saturate the u8 x s8
    # 16-bit intermediate sums on CPUs without VNNI (torch warns; this AMD EPYC has only AVX2).
    qconfig: str = "x86"
    prune_amount: float = 0.7  # share of conv + linear weights set to zero (global L1 magnitude)
    finetune_epochs: int = 10  # with the masks in place, overridden by the budget
    finetune_lr: float = 3e-4  # lower than the source's 1e-3: recover, do not re-learn
    threads: int = 1  # tiny model: one thread is faster than two contending on a shared 2-core machine


def quant_path_available() -> dict[str, bool]:
    """Which quantisation APIs this environment offers."""
    return {"torchao_pt2e": importlib.util.find_spec("torchao") is not None,
            "torch_ao_eager": hasattr(torch.ao.quantization, "fuse_modules") and hasattr(torch.ao.quantization, "convert")}


def pick_engine(preferred: str) -> str:
    engines = torch.backends.quantized.supported_engines
    for e in (preferred, "x86", "fbgemm", "qnnpack"):  # x86 = fbgemm or onednn per op; qnnpack = ARM
        if e in engines:
            return e
    raise RuntimeError(f"no int8 engine available: {engines}")


def quantize_static(model: nn.Module, calibration, engine: str, qconfig: str = "x86") -> nn.Module:
    """Eager-mode post-training static quantisation of a copy of ``model``.

    The int8 weights are packed for ``engine``; run the result with ``torch.backends.quantized.engine``
    set to it (the task does, from ``EdgeSolution.quant_engine``).
    """
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        q = copy.deepcopy(model).eval()  # eval BEFORE fusing: bn folding uses the running statistics
        q.qconfig = torch.ao.quantization.get_default_qconfig(qconfig)
        with warnings.catch_warnings():
            # The eager API warns that it is deprecated in favour of torchao (not installed here).
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            torch.ao.quantization.fuse_modules(q, DigitCNN.FUSE, inplace=True)
            torch.ao.quantization.prepare(q, inplace=True)
            with torch.inference_mode():
                for xb in calibration:  # observers record activation ranges: training data only
                    q(xb)
            torch.ao.quantization.convert(q, inplace=True)
    finally:
        torch.backends.quantized.engine = previous  # leave the process as we found it
    return q


def prunable(model: nn.Module) -> list[tuple[nn.Module, str]]:
    return [(m, "weight") for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def prune_global(model: nn.Module, amount: float) -> nn.Module:
    """Zero the ``amount`` smallest-magnitude weights over all conv/linear layers (masks stay on)."""
    prune.global_unstructured(prunable(model), pruning_method=prune.L1Unstructured, amount=amount)
    return model


def remove_masks(model: nn.Module) -> nn.Module:
    """Make the pruning permanent: weight = weight_orig * mask, drop the mask and the hook."""
    for m, name in prunable(model):
        if prune.is_pruned(m):
            prune.remove(m, name)
    return model


@contextmanager
def torch_threads(n: int):
    """Use ``n`` intra-op threads for the block, then restore the caller's setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------- methods
def compress(train, ctx) -> EdgeSolution:
    """Reference: static int8 (fused; onednn kernels, x86 observers), 70 % global pruning + fine-tuning."""
    cfg = Config(batch_size=int(ctx.limits["batch_size"]), calibration_batches=int(ctx.limits["calibration_batches"]),
                 finetune_epochs=int(ctx.limits["finetune_epochs"]))
    cfg.engine = pick_engine(cfg.engine)
    available = quant_path_available()
    quant_path = f"torch.ao.quantization eager static (engine {cfg.engine}, qconfig {cfg.qconfig}, fused conv-bn-relu)"
    ctx.record_config(**asdict(cfg), quant_path=quant_path, torchao_available=available["torchao_pt2e"])
    torch.manual_seed(ctx.seed)
    rng = np.random.default_rng([ctx.seed, 6])  # stream 5 ordered the source model's batches
    x, y = torch.as_tensor(train.x), torch.as_tensor(train.y)
    model = train.model.eval()  # the task's fp32 model: every ratio is taken against it

    calibration = [xb for xb, _ in batches(x, y, cfg.batch_size, rng)][: cfg.calibration_batches]
    solution = EdgeSolution(int8=quantize_static(model, calibration, cfg.engine, cfg.qconfig),
                            quant_path=quant_path, quant_engine=cfg.engine)
    ctx.checkpoint(solution, step="int8")

    pruned = prune_global(copy.deepcopy(model), cfg.prune_amount)
    with torch_threads(cfg.threads):  # masks stay on while fine-tuning: pruned weights get no update
        train_epochs(pruned, x, y, epochs=cfg.finetune_epochs, lr=cfg.finetune_lr, batch_size=cfg.batch_size,
                     rng=rng, count=ctx.count)
    solution.pruned, solution.prune_amount = remove_masks(pruned), cfg.prune_amount
    return solution


def fp32_only(train, ctx) -> EdgeSolution:
    """Floor: no compression; the task deploys its own fp32 model in place of both."""
    ctx.record_config(quant_path="none")
    return EdgeSolution()
