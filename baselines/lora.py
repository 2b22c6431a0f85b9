"""Low-rank adaptation (Hu et al. 2021) of a pretrained MiniLM for the ``lora`` task. One file, top to bottom.

LoRA keeps a pretrained weight ``W`` frozen and learns a low-rank change to it: a linear layer
``y = W x + b`` becomes

    y = W x + b + (α / r) · B A dropout(x),    A: [r, in], B: [out, r], r ≪ min(in, out),

with ``B = 0`` at the start (the adapted model *is* the pretrained one until training moves B) and
``A`` random. Only ``A``, ``B`` and the new classification head train: on MiniLM's query and value
projections with r = 8 that is 0.33% of the parameters. After training, ``merge()`` folds
``(α / r) B A`` into ``W`` once, for inference at the base model's cost.

Traps this file avoids (each is a test in ``tests/test_lora.py``):

* **adding ΔW to the weight on every forward**: the seed's version did ``W += B A`` inside
  ``forward``, so outputs drifted further from one call to the next. Here ``forward`` never writes;
  only ``merge()`` does, once (a second merge raises);
* **B starts at zero, the scale is α / r** (peft's convention, equal outputs to peft's);
* **frozen base**: weights, biases and LayerNorm of the encoder do not train; the head does; only
  trainable parameters reach the optimiser;
* **dropout on the LoRA path only** (the frozen path sees the input undropped).

Methods: ``reference`` = LoRA r = 8, α = 16 on query and value; ``full`` = full fine-tuning of the same
encoder and head (beside it); ``floor`` = the frozen encoder's mean-pooled sentence embedding and a
logistic regression (scikit-learn) as the head.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from advbench.baselines.common import by_budget
from advbench.tasks.lora.contract import AdaptedClassifier, SentenceModel, SentimentData, encode, load_base_model


# ---------------------------------------------------------------------------------------------
# Hyperparameters
# ---------------------------------------------------------------------------------------------

@dataclass
class Config:
    steps: int = 150  # overridden by the budget
    batch: int = 32
    rank: int = 8
    alpha: float = 16.0
    lora_dropout: float = 0.05
    targets: tuple[str, ...] = ("query", "value")
    lr_lora: float = 1e-3  # LoRA's parameters and the head
    lr_full: float = 2e-5  # full fine-tuning: every weight moves, so a far smaller step
    lr_head: float = 1e-3  # the new head, in both modes
    weight_decay: float = 0.0
    checkpoints: int = 5
    # The quick budget's: the end only. Scoring one (MiniLM over the test sentences) took 5 s in the
    # README's main job, two cores busy: 15 of the run's 62 s with three.
    quick_checkpoints: int = 1


# ---------------------------------------------------------------------------------------------
# LoRA
# ---------------------------------------------------------------------------------------------

class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank path (see the module docstring)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.rank, self.scale = rank, alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))  # zero: no change at the start
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear (and peft) initialise A
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if self.merged:
            return out
        return out + (self.dropout(x) @ self.lora_A.T @ self.lora_B.T) * self.scale

    def delta_weight(self) -> torch.Tensor:
        return (self.lora_B @ self.lora_A) * self.scale

    @torch.no_grad()
    def merge(self) -> None:
        """Fold ΔW into the frozen weight, once."""
        if self.merged:
            raise RuntimeError("this LoRA layer is already merged; merging twice would add ΔW twice")
        self.base.weight += self.delta_weight()
        self.merged = True


def inject_lora(model: nn.Module, rank: int, alpha: float, dropout: float, targets: tuple[str, ...]) -> list[LoRALinear]:
    """Replace every ``nn.Linear`` whose name ends in one of ``targets`` by a :class:`LoRALinear`."""
    for p in model.parameters():
        p.requires_grad_(False)
    layers = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Linear) and child_name in targets:
                layer = LoRALinear(child, rank, alpha, dropout)
                setattr(module, child_name, layer)
                layers.append(layer)
    if not layers:
        raise ValueError(f"no nn.Linear named {targets} in the model")
    return layers


def merge_lora(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, LoRALinear):
            m.merge()


# ---------------------------------------------------------------------------------------------
# What the harness scores: the adapter, as data
# ---------------------------------------------------------------------------------------------

def adapter_of(net: SentenceModel, cfg: Config, mode: str, pretrained: dict[str, torch.Tensor]) -> AdaptedClassifier:
    """The trained classifier in peft's adapter layout (contract): LoRA's A and B per adapted layer
    and the head; full fine-tuning hands in every base tensor that moved instead."""
    weights = {name: p.detach().cpu().numpy().copy() for name, p in net.head.state_dict().items()}
    weights = {f"head.{k}": v for k, v in weights.items()}
    for name, module in net.encoder.named_modules():
        if isinstance(module, LoRALinear):
            weights[f"{name}.lora_A.weight"] = module.lora_A.detach().cpu().numpy().copy()
            weights[f"{name}.lora_B.weight"] = module.lora_B.detach().cpu().numpy().copy()
    if mode == "full":
        for name, t in net.encoder.state_dict().items():
            if torch.is_floating_point(t) and not torch.equal(t, pretrained[name]):
                weights[name] = t.detach().cpu().numpy().copy()
    return AdaptedClassifier(r=cfg.rank, lora_alpha=cfg.alpha, weights=weights)


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------

def fine_tune(data: SentimentData, ctx, mode: str) -> AdaptedClassifier:
    """``mode``: ``lora`` (A, B and head train) or ``full`` (every weight trains)."""
    cfg = Config(steps=int(ctx.limits["steps"]))
    ctx.record_config(**asdict(cfg), mode=mode)
    torch.manual_seed(ctx.seed)
    encoder, tokenizer = load_base_model()
    encoder = encoder.to(ctx.device)
    pretrained = {k: v.clone() for k, v in encoder.state_dict().items()} if mode == "full" else {}
    if mode == "lora":
        inject_lora(encoder, cfg.rank, cfg.alpha, cfg.lora_dropout, cfg.targets)
    net = SentenceModel(encoder).to(ctx.device)  # LoRA's A and B are made on the CPU: moved with the rest
    # Only trainable parameters reach the optimiser; the new head learns at its own (larger) rate.
    body = [p for p in net.encoder.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": body, "lr": cfg.lr_lora if mode == "lora" else cfg.lr_full},
                             {"params": list(net.head.parameters()), "lr": cfg.lr_head}],
                            weight_decay=cfg.weight_decay)
    ids, mask = (t.to(ctx.device) for t in encode(tokenizer, data.texts))
    labels = torch.as_tensor(data.labels, device=ctx.device)
    gen = torch.Generator().manual_seed(ctx.seed)  # the batch order is drawn on the CPU, the same on any device
    order, pos = torch.randperm(len(labels), generator=gen), 0
    # Linear warm-up over the first 10% of steps, then linear decay to zero: the usual fine-tuning
    # schedule; without the decay the last steps' noise decided the score (one seed: 0.998 at step
    # 120, 0.973 at 150).
    warmup = max(1, cfg.steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min((i + 1) / warmup, max(0.0, (cfg.steps - i) / (cfg.steps - warmup))))
    every = max(1, cfg.steps // by_budget(ctx, cfg.checkpoints, cfg.quick_checkpoints))
    net.train()
    for step in range(1, cfg.steps + 1):
        if pos + cfg.batch > len(order):
            order, pos = torch.randperm(len(labels), generator=gen), 0
        idx = order[pos: pos + cfg.batch].to(ctx.device)
        pos += cfg.batch
        loss = F.cross_entropy(net(ids[idx], mask[idx]), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        ctx.count(len(idx))
        if step % every == 0 or step == cfg.steps:
            ctx.progress(step, cfg.steps)
            ctx.checkpoint(adapter_of(net, cfg, mode, pretrained), step=step)
            net.train()
    return adapter_of(net, cfg, mode, pretrained)


def lora(data: SentimentData, ctx) -> AdaptedClassifier:
    """Reference: LoRA r = 8, α = 16 on the query and value projections; head trained; AdamW 1e-3."""
    return fine_tune(data, ctx, "lora")


def full_fine_tuning(data: SentimentData, ctx) -> AdaptedClassifier:
    """Ceiling: every weight of the encoder (AdamW 2e-5) and the head (1e-3) trained."""
    return fine_tune(data, ctx, "full")


def frozen_encoder(data: SentimentData, ctx) -> AdaptedClassifier:
    """Floor: the pretrained encoder frozen, a logistic regression on its mean-pooled embeddings."""
    from sklearn.linear_model import LogisticRegression

    ctx.record_config(head="LogisticRegression(C=1.0, max_iter=2000)")
    torch.manual_seed(ctx.seed)
    encoder, tokenizer = load_base_model()
    net = SentenceModel(encoder).to(ctx.device).eval()
    with torch.no_grad():
        x = torch.cat([net.embed(*(t.to(ctx.device) for t in encode(tokenizer, data.texts[i: i + 256]))).cpu()
                       for i in range(0, len(data), 256)]).numpy()
    clf = LogisticRegression(C=1.0, max_iter=2000).fit(x, data.labels)
    ctx.count(len(data))
    with torch.no_grad():  # two logits whose difference is the logistic regression's score
        w = torch.as_tensor(clf.coef_[0], dtype=torch.float32)
        net.head.weight.copy_(torch.stack([-w / 2, w / 2]))
        net.head.bias.copy_(torch.as_tensor([-clf.intercept_[0] / 2, clf.intercept_[0] / 2], dtype=torch.float32))
    solution = adapter_of(net, Config(), "floor", {})
    ctx.checkpoint(solution, step=1)
    return solution
