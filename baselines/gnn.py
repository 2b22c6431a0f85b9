"""Graph convolutional network for graph classification, written out in torch, CleanRL-style.

GCN layer (Kipf & Welling 2017): X' = D^-1/2 (A + I) D^-1/2 X W + b, with the normalisation
computed per mini-batch of graphs from the edges themselves (never cached: every batch is a new
set of graphs, which is why PyG's ``cached=True`` would be wrong here). Graphs in a batch are
stacked into one block-diagonal graph by offsetting node ids, then mean-pooled per graph. The peer
check against PyG's ``GCNConv`` and ``global_mean_pool`` is in ``tests/test_gnn.py``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Config:
    hidden: int = 64
    layers: int = 3
    lr: float = 1e-2
    weight_decay: float = 0.0
    batch_size: int = 64
    epochs: int = 60  # overridden by the budget
    val_fraction: float = 0.1  # held out of the nine training folds to pick the best epoch
    lr_decay_every: int = 20  # halve the learning rate every N epochs: Adam at 1e-2 keeps bouncing


# ---------------------------------------------------------------- the layer
def gcn_norm(edge_index: torch.Tensor, num_nodes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Edges of A + I and their weights 1 / sqrt(deg(i) deg(j)), degrees counted with the self-loop."""
    loops = torch.arange(num_nodes, device=edge_index.device)
    edge_index = torch.cat([edge_index, torch.stack([loops, loops])], dim=1)
    src, dst = edge_index
    deg = torch.zeros(num_nodes, device=edge_index.device).index_add_(0, dst, torch.ones_like(dst, dtype=torch.float))
    inv_sqrt = deg.pow(-0.5)
    return edge_index, inv_sqrt[src] * inv_sqrt[dst]


class GCNLayer(nn.Module):
    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_dim, in_dim))  # same layout as PyG's lin.weight
        self.bias = nn.Parameter(torch.zeros(out_dim))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        edge_index, norm = gcn_norm(edge_index, x.size(0))
        h = x @ self.weight.T  # transform first: cheaper when out_dim <= in_dim, same result
        src, dst = edge_index
        out = torch.zeros_like(h).index_add_(0, dst, norm.unsqueeze(1) * h[src])  # message src -> dst
        return out + self.bias


def mean_pool(h: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
    sums = torch.zeros(num_graphs, h.size(1), device=h.device).index_add_(0, batch, h)
    counts = torch.zeros(num_graphs, device=h.device).index_add_(0, batch, torch.ones_like(batch, dtype=torch.float))
    return sums / counts.clamp(min=1).unsqueeze(1)


class GCN(nn.Module):
    def __init__(self, in_dim: int, num_classes: int, cfg: Config) -> None:
        super().__init__()
        dims = [in_dim] + [cfg.hidden] * cfg.layers
        self.convs = nn.ModuleList(GCNLayer(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.head = nn.Linear(cfg.hidden, num_classes)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
        for conv in self.convs:
            x = F.relu(conv(x, edge_index))
        return self.head(mean_pool(x, batch, num_graphs))


# ---------------------------------------------------------------- batching
def collate(graphs, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """One block-diagonal graph: node ids of graph k are offset by the nodes of graphs 0..k-1."""
    sizes = [g.num_nodes for g in graphs]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    x = torch.as_tensor(np.concatenate([g.x for g in graphs]), device=device)
    edge_index = torch.as_tensor(np.concatenate([g.edge_index + o for g, o in zip(graphs, offsets)], axis=1),
                                 dtype=torch.long, device=device)
    batch = torch.as_tensor(np.repeat(np.arange(len(graphs)), sizes), dtype=torch.long, device=device)
    return x, edge_index, batch, len(graphs)


class Predictor:
    """The solution: eval mode, no gradients, argmax of the logits."""

    def __init__(self, model: GCN, device: str, batch_size: int = 256) -> None:
        self.model, self.device, self.batch_size = model, device, batch_size

    @torch.no_grad()
    def predict(self, graphs) -> np.ndarray:
        self.model.eval()
        out = []
        for i in range(0, len(graphs), self.batch_size):
            out.append(self.model(*collate(graphs[i:i + self.batch_size], self.device)).argmax(1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0, np.int64)


def _setup(train, ctx) -> tuple[Config, GCN]:
    cfg = Config(epochs=int(ctx.limits["epochs"]))
    ctx.record_config(**asdict(cfg))
    torch.manual_seed(ctx.seed)
    return cfg, GCN(train.num_features, train.num_classes, cfg).to(ctx.device)


# ---------------------------------------------------------------- methods
def train(train, ctx) -> Predictor:
    """Reference: Adam on cross-entropy, best epoch chosen on a validation split of the training folds."""
    cfg, model = _setup(train, ctx)
    rng = ctx.rng()
    graphs = list(train.graphs)
    # Stratified validation split from the method's own data (the test fold is never seen).
    labels = train.labels
    val_idx = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[: max(1, int(cfg.val_fraction * (labels == c).sum()))]
                              for c in np.unique(labels)])
    is_val = np.zeros(len(graphs), bool)
    is_val[val_idx] = True
    fit = [g for g, v in zip(graphs, is_val) if not v]
    val = [g for g, v in zip(graphs, is_val) if v]
    val_y = np.array([g.y for g in val])

    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_decay_every, gamma=0.5)
    predictor = Predictor(model, ctx.device)
    best_acc, best_state = -1.0, None
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = rng.permutation(len(fit))
        for start in range(0, len(fit), cfg.batch_size):
            batch = [fit[j] for j in order[start:start + cfg.batch_size]]
            y = torch.as_tensor([g.y for g in batch], device=ctx.device)
            loss = F.cross_entropy(model(*collate(batch, ctx.device)), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            ctx.count(len(batch))
        sched.step()
        val_acc = float((predictor.predict(val) == val_y).mean())
        if val_acc > best_acc:  # model selection on validation only
            best_acc, best_state = val_acc, {k: v.clone() for k, v in model.state_dict().items()}
        ctx.progress(epoch, cfg.epochs)
        if epoch % 10 == 0 or epoch == cfg.epochs:
            ctx.checkpoint(predictor, step=epoch)
    model.load_state_dict(best_state)
    ctx.record_config(best_val_accuracy=best_acc)
    return predictor


class MajorityClass:
    def __init__(self, label: int) -> None:
        self.label = label

    def predict(self, graphs) -> np.ndarray:
        return np.full(len(graphs), self.label, dtype=np.int64)


def majority_class(train, ctx) -> MajorityClass:
    """Floor: always the most frequent training label (chance level on these balanced sets)."""
    return MajorityClass(int(np.bincount(train.labels).argmax()))
