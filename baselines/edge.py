"""Post-training static int8 quantisation and magnitude pruning of a small CNN, CleanRL-style.

Three steps, all in this file:

1. Train the fp32 CNN (conv-bn-relu x 2, max-pool, linear 1024-256-10) on the training images.
2. Static int8 quantisation with PyTorch's eager-mode API (``torch.ao.quantization``): copy the
   model, ``.eval()`` it (batch-norm must use its running statistics before it is folded), fuse
   conv-bn-relu and linear-relu (one int8 kernel each, and bn folded into the conv weights), insert
   observers with the ``x86`` qconfig (per-channel weights, histogram activations), calibrate on
   *training* batches only, convert with the ``onednn`` kernels (fastest here; see ``Config``). The model carries ``QuantStub`` /
   ``DeQuantStub`` so it takes and returns float tensors like the fp32 one.
3. Global magnitude (L1) pruning of 70 % of the conv and linear weights, fine-tuning with the masks
   in place (pruned weights stay zero), then ``prune.remove`` so the weights are plain tensors again
   (with the masks left in, the state_dict holds weight_orig *and* weight_mask: twice the size).

torchao's pt2e flow (``prepare_pt2e`` / ``convert_pt2e``) is the successor of the eager API; it is
feature-checked and recorded but not used, because torchao is not installed here and the eager path
is the one that was measured. ``quant_path`` in the record says which path produced the model.
"""

from __future__ import annotations

import copy
import importlib.util
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune

from advbench.tasks.edge.contract import EdgeSolution


@dataclass
class Config:
    channels1: int = 32
    channels2: int = 64
    hidden: int = 256
    lr: float = 1e-3
    batch_size: int = 64  # overridden by the budget
    epochs: int = 30  # fp32 training, overridden by the budget
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
    finetune_lr: float = 3e-4  # lower than training: recover, do not re-learn
    threads: int = 1  # tiny model: one thread is faster than two contending on a shared 2-core machine


class DigitCNN(nn.Module):
    """Input float32 (B, 1, 8, 8) in [0, 1]; output (B, 10) logits. Stubs are identities until converted."""

    def __init__(self, c1: int = 32, c2: int = 64, hidden: int = 256, n_classes: int = 10) -> None:
        super().__init__()
        self.quant = torch.ao.quantization.QuantStub()
        self.conv1, self.bn1, self.relu1 = nn.Conv2d(1, c1, 3, padding=1, bias=False), nn.BatchNorm2d(c1), nn.ReLU()
        self.conv2, self.bn2, self.relu2 = nn.Conv2d(c1, c2, 3, padding=1, bias=False), nn.BatchNorm2d(c2), nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc1, self.relu3 = nn.Linear(c2 * 4 * 4, hidden), nn.ReLU()
        self.fc2 = nn.Linear(hidden, n_classes)
        self.dequant = torch.ao.quantization.DeQuantStub()

    # Modules fused into one int8 kernel each (conv+bn+relu: bn folded into the conv weights).
    FUSE = [["conv1", "bn1", "relu1"], ["conv2", "bn2", "relu2"], ["fc1", "relu3"]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.quant(x)
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.pool(self.relu2(self.bn2(self.conv2(x))))
        x = self.relu3(self.fc1(torch.flatten(x, 1)))
        return self.dequant(self.fc2(x))


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


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, rng: np.random.Generator):
    order = torch.as_tensor(rng.permutation(len(y)))
    for i in range(0, len(y), batch_size):
        idx = order[i:i + batch_size]
        yield x[idx], y[idx]


def train_epochs(model: nn.Module, x, y, epochs: int, lr: float, cfg: Config, rng, ctx) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for xb, yb in batches(x, y, cfg.batch_size, rng):
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            ctx.count(len(yb))
    model.eval()


def quantize_static(model: nn.Module, calibration, engine: str, qconfig: str = "x86") -> nn.Module:
    """Eager-mode post-training static quantisation of a copy of ``model``.

    The int8 weights are packed for ``engine``; run the result with ``torch.backends.quantized.engine``
    set to it (the task's evaluate does, from ``EdgeSolution.quant_engine``).
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


# ---------------------------------------------------------------- methods
def _setup(train, ctx):
    cfg = Config(epochs=int(ctx.limits["epochs"]), batch_size=int(ctx.limits["batch_size"]),
                 calibration_batches=int(ctx.limits["calibration_batches"]),
                 finetune_epochs=int(ctx.limits["finetune_epochs"]))
    torch.manual_seed(ctx.seed)
    x, y = torch.as_tensor(train.x), torch.as_tensor(train.y)
    model = DigitCNN(cfg.channels1, cfg.channels2, cfg.hidden, int(train.n_classes))
    return cfg, x, y, model, np.random.default_rng([ctx.seed, 5])


@contextmanager
def torch_threads(n: int):
    """Use ``n`` intra-op threads for the block, then restore the caller's setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def compress(train, ctx) -> EdgeSolution:
    """Reference: fp32 training, static int8 (fused; onednn kernels, x86 observers), 70 % global pruning + fine-tuning."""
    cfg, x, y, model, rng = _setup(train, ctx)
    cfg.engine = pick_engine(cfg.engine)
    available = quant_path_available()
    quant_path = f"torch.ao.quantization eager static (engine {cfg.engine}, qconfig {cfg.qconfig}, fused conv-bn-relu)"
    ctx.record_config(**asdict(cfg), quant_path=quant_path, torchao_available=available["torchao_pt2e"])
    with torch_threads(cfg.threads):
        train_epochs(model, x, y, cfg.epochs, cfg.lr, cfg, rng, ctx)
    solution = EdgeSolution(fp32=model)
    ctx.checkpoint(solution, step="fp32")

    calibration = [xb for xb, _ in batches(x, y, cfg.batch_size, rng)][: cfg.calibration_batches]
    solution.int8 = quantize_static(model, calibration, cfg.engine, cfg.qconfig)
    solution.quant_path, solution.quant_engine = quant_path, cfg.engine
    ctx.checkpoint(solution, step="int8")

    pruned = prune_global(copy.deepcopy(model), cfg.prune_amount)
    with torch_threads(cfg.threads):  # masks stay on while fine-tuning: pruned weights get no update
        train_epochs(pruned, x, y, cfg.finetune_epochs, cfg.finetune_lr, cfg, rng, ctx)
    solution.pruned, solution.prune_amount = remove_masks(pruned), cfg.prune_amount
    return solution


def fp32_only(train, ctx) -> EdgeSolution:
    """Floor: the trained fp32 model, deployed as is (no quantisation, no pruning)."""
    cfg, x, y, model, rng = _setup(train, ctx)
    ctx.record_config(**asdict(cfg), quant_path="none")
    with torch_threads(cfg.threads):
        train_epochs(model, x, y, cfg.epochs, cfg.lr, cfg, rng, ctx)
    return EdgeSolution(fp32=model)
