"""Neural radiance fields (Mildenhall et al. 2020) for the ``nerf`` task. One file, top to bottom.

A NeRF is a function ``F(x, d) -> (σ, c)``: a density at each point ``x`` and a colour seen from
direction ``d``. A pixel's colour is the volume-rendering integral along its ray, approximated by
the quadrature of ``contract.render_weights`` (``w_i = T_i (1 - exp(-σ_i δ_i))``, exclusive
transmittance, white background). Training fits ``F`` by rendering random batches of training
rays and minimising the squared error to their pixels; everything is differentiable, so the 3-D
field is learnt from 2-D images alone.

Three methods share the training loop:

* ``vanilla`` (reference): the paper's positional encoding ``γ(p) = (p, sin 2^k π p, cos 2^k π p)``
  (here ``k < 6`` for points, ``k < 4`` for directions) into a 3 x 128 ReLU MLP, a smaller MLP for
  the colour; 32 stratified samples per training ray (one uniform point per bin: the jitter is
  for training only; the harness renders with 64 bin midpoints). No hierarchical sampling: the
  scene is small and a second, fine network would halve the steps we can afford on one thread.
* ``hash_grid``: the multiresolution hash encoding of Instant-NGP (Müller et al. 2022) in plain
  torch: ``L`` grids of resolutions growing geometrically, each a table of ``T`` learnt feature
  vectors, indexed directly where the grid fits in the table and by a spatial hash where it does
  not; trilinear interpolation of the 8 corners; the concatenated features go through a tiny MLP.
  Most of the capacity is in the tables, each step touches only a few entries, and a large
  learning rate (3e-2) is stable, so it fits far faster per second than the deep MLP.
* ``mean_colour`` (floor): an opaque fog of the mean training colour, no training.

Both learnt fields know the scene cube (``TrainViews.scene_bound``, public): density is zero
outside it, as NeRF's bounded synthetic scenes assume. Training therefore samples only the part of
each ray inside the cube (its 32 bins span that segment, not all of ``[near, far]``) and draws its
batches from the pixels whose rays cross the cube (96% of them here; the rest are background).

Traps this file avoids (each is a test in ``tests/test_nerf.py``, where they are the contract's):
exclusive transmittance; ``δ`` from the bins, with the last bin ending at ``far`` (NeRF's 1e10
would paint every ray's end opaque, hiding the white background); ``σ ≥ 0`` (an exponential); the white
background added as ``1 - Σ w``; the camera convention (``-z`` forward, pixel centres at +0.5:
the rays come from ``contract.camera_rays``, the harness's own function); jitter in training only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from advbench.baselines.common import by_budget
from advbench.tasks.nerf.contract import TrainViews, camera_rays, composite, render_weights


# ---------------------------------------------------------------------------------------------
# Hyperparameters
# ---------------------------------------------------------------------------------------------

@dataclass
class Config:
    encoding: str = "frequency"  # "frequency" (NeRF) or "hash" (Instant-NGP)
    iterations: int = 300  # overridden by the budget
    rays_per_iteration: int = 1024  # overridden by the budget
    samples_per_ray: int = 32  # stratified over the ray's segment in the scene cube, training only
    lr: float = 2e-3  # Adam; decayed exponentially to lr * lr_final_ratio
    lr_final_ratio: float = 0.1
    # frequency encoding (NeRF: 10 and 4 on 800x800 images; 6 is enough at 32-64 pixels)
    pos_freqs: int = 6
    dir_freqs: int = 4
    width: int = 128
    depth: int = 3
    # hash encoding (Instant-NGP's names)
    levels: int = 8  # L
    features_per_level: int = 2  # F
    log2_table_size: int = 15  # T = 2^15 entries per level
    base_resolution: int = 8  # N_min over the scene cube
    max_resolution: int = 192  # N_max: a few cells per pixel at 64 x 64
    hash_width: int = 64
    view_dependent: bool = True  # colour head sees the view direction
    steps_per_budget_step: float = 1.0  # iterations = this x the budget's (equal wall time across methods)
    checkpoints: int = 10
    quick_checkpoints: int = 2  # the quick budget's: rendering the held-out views costs about 1.3 s a checkpoint
    query_chunk: int = 65536  # points per forward pass when the harness queries the field


# Equal wall time: a hash-grid step (1024 rays, 32 samples) cost about half a step of the 3 x 128 MLP on
# one thread (0.12 s against 0.25 s), so the hash grid takes twice the budget's steps.
HASH_OVERRIDES = dict(encoding="hash", lr=3e-2, lr_final_ratio=0.1, steps_per_budget_step=2.0)


# ---------------------------------------------------------------------------------------------
# Fields
# ---------------------------------------------------------------------------------------------

def frequency_encoding(x: torch.Tensor, n_freqs: int) -> torch.Tensor:
    """``(x, sin(2^k π x), cos(2^k π x))`` for ``k < n_freqs``: ``[..., D (1 + 2 n_freqs)]``."""
    scales = (2.0 ** torch.arange(n_freqs, dtype=x.dtype, device=x.device)) * math.pi
    xs = (x[..., None, :] * scales[:, None]).flatten(-2)
    return torch.cat([x, torch.sin(xs), torch.cos(xs)], dim=-1)


class FrequencyField(nn.Module):
    """NeRF's MLP: γ(x) -> depth x width ReLU -> σ and a feature; (feature, γ(d)) -> width/2 -> rgb."""

    def __init__(self, cfg: Config, bound: float) -> None:
        super().__init__()
        self.bound, self.pos_freqs, self.dir_freqs = bound, cfg.pos_freqs, cfg.dir_freqs
        layers, d_in = [], 3 * (1 + 2 * cfg.pos_freqs)
        for _ in range(cfg.depth):
            layers += [nn.Linear(d_in, cfg.width), nn.ReLU()]
            d_in = cfg.width
        self.trunk = nn.Sequential(*layers)
        self.sigma_feature = nn.Linear(cfg.width, 1 + cfg.width)
        self.colour = nn.Sequential(nn.Linear(cfg.width + 3 * (1 + 2 * cfg.dir_freqs), cfg.width // 2), nn.ReLU(),
                                    nn.Linear(cfg.width // 2, 3))

    def forward(self, x: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Coordinates scaled to [-1, 1] over the scene cube, so 2^5 π is the finest frequency there.
        h = self.sigma_feature(self.trunk(frequency_encoding(x / self.bound, self.pos_freqs)))
        sigma = density(h[:, 0])
        rgb = torch.sigmoid(self.colour(torch.cat([h[:, 1:], frequency_encoding(d, self.dir_freqs)], dim=-1)))
        return sigma * inside(x, self.bound), rgb


PRIMES = (1, 2654435761, 805459861)  # Instant-NGP's spatial hash: XOR of coordinates times primes


class Gather(torch.autograd.Function):
    """``table[idx]`` whose backward is one ``index_add_``: on CPU, ``embedding``'s and advanced
    indexing's backward (sort-based) were 4-20 times slower for the millions of rows a step touches."""

    @staticmethod
    def forward(ctx, table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(idx)
        ctx.rows = table.shape[0]
        return table.index_select(0, idx.reshape(-1)).reshape(*idx.shape, table.shape[1])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (idx,) = ctx.saved_tensors
        out = torch.zeros(ctx.rows, grad.shape[-1], dtype=grad.dtype, device=grad.device)
        out.index_add_(0, idx.reshape(-1), grad.reshape(-1, grad.shape[-1]))
        return out, None


class HashEncoding(nn.Module):
    """Multiresolution hash encoding over the cube ``[-bound, bound]^3``: ``[N, 3] -> [N, L F]``."""

    def __init__(self, cfg: Config, bound: float) -> None:
        super().__init__()
        self.bound, self.levels, self.table = bound, cfg.levels, 2 ** cfg.log2_table_size
        growth = math.exp((math.log(cfg.max_resolution) - math.log(cfg.base_resolution)) / max(1, cfg.levels - 1))
        self.resolutions = [int(math.floor(cfg.base_resolution * growth ** level)) for level in range(cfg.levels)]
        # A coarse level whose (N + 1)^3 vertices fit in the table is indexed one-to-one, no hash.
        self.dense = [(n + 1) ** 3 <= self.table for n in self.resolutions]
        # Instant-NGP initialises the tables with U(-1e-4, 1e-4): the field starts empty and smooth.
        table = torch.empty(cfg.levels * self.table, cfg.features_per_level).uniform_(-1e-4, 1e-4)
        self.embeddings = nn.Parameter(table)
        self.register_buffer("res", torch.tensor(self.resolutions, dtype=torch.float32)[:, None], persistent=False)
        shape = (cfg.levels, 1, 1, 1)  # broadcast against [N, L, 2, 2, 2]
        self.register_buffer("stride1", torch.tensor(self.resolutions).add(1)[:, None], persistent=False)  # [L, 1]
        self.register_buffer("is_dense", torch.tensor(self.dense).reshape(shape), persistent=False)
        self.register_buffer("offsets", (torch.arange(cfg.levels) * self.table).reshape(shape), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        unit = ((x + self.bound) / (2 * self.bound)).clamp(0, 1)  # [N, 3] in the unit cube
        pos = unit[:, None, :] * self.res  # [N, L, 3]
        base = torch.minimum(pos.floor(), self.res - 1)
        frac = pos - base
        lower = base.long()
        # Each axis's two corner terms ([N, L, 2]: lower and upper vertex) are combined by broadcasting
        # into the 2 x 2 x 2 cell corners, x-major, the same order for the indices and the weights. The
        # hash term of an axis is its coordinate times its prime, the dense one its coordinate times the
        # level's stride; both are exact modulo 2^64, and only the low bits are kept.
        two = torch.arange(2, device=x.device)
        terms = [(lower[..., a, None] + two) * PRIMES[a] for a in range(3)]  # [N, L, 2] each
        hashed = terms[0][..., :, None, None] ^ terms[1][..., None, :, None] ^ terms[2][..., None, None, :]
        dense = self._dense(lower, two)
        idx = (torch.where(self.is_dense, dense, hashed) & (self.table - 1)) + self.offsets  # [N, L, 2, 2, 2]
        # Trilinear weights: per axis (1 - f) for the lower vertex, f for the upper.
        wa = [torch.stack([1 - frac[..., a], frac[..., a]], dim=-1) for a in range(3)]
        w = wa[0][..., :, None, None] * wa[1][..., None, :, None] * wa[2][..., None, None, :]
        feats = Gather.apply(self.embeddings, idx.flatten(2))  # [N, L, 8, F]
        return (w.flatten(2)[..., None] * feats).sum(2).flatten(1)

    def _dense(self, lower: torch.Tensor, two: torch.Tensor) -> torch.Tensor:
        """One-to-one vertex index ``x + (N+1) y + (N+1)^2 z`` of each cell corner: ``[N, L, 2, 2, 2]``."""
        s = self.stride1
        tx, ty, tz = ((lower[..., a, None] + two) * s ** a for a in range(3))
        return tx[..., :, None, None] + ty[..., None, :, None] + tz[..., None, None, :]


class HashField(nn.Module):
    """Hash encoding -> one hidden layer -> σ and 15 features; (features, d) -> one hidden layer -> rgb."""

    def __init__(self, cfg: Config, bound: float) -> None:
        super().__init__()
        self.bound = bound
        self.encoding = HashEncoding(cfg, bound)
        self.density = nn.Sequential(nn.Linear(cfg.levels * cfg.features_per_level, cfg.hash_width), nn.ReLU(),
                                     nn.Linear(cfg.hash_width, 16))
        self.view_dependent = cfg.view_dependent
        self.colour = nn.Sequential(nn.Linear(15 + 3 * cfg.view_dependent, cfg.hash_width), nn.ReLU(),
                                    nn.Linear(cfg.hash_width, 3))

    def forward(self, x: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.density(self.encoding(x))
        sigma = density(h[:, 0])
        rgb = torch.sigmoid(self.colour(torch.cat([h[:, 1:], d], dim=-1) if self.view_dependent else h[:, 1:]))
        return sigma * inside(x, self.bound), rgb


DENSITY_SHIFT = 3.0


def density(raw: torch.Tensor) -> torch.Tensor:
    """σ = exp(raw - 1) >= 0, as Instant-NGP and nerfacto do. A surface needs σ in the tens to hundreds
    (opaque within one 0.06-long bin); softplus or ReLU of a linear output climbs there one Adam
    step at a time, and in a few hundred steps the field settled instead into a grey half-transparent
    fog behind the spheres with black colours. Capped at exp(11) (the gradient stops there)."""
    return torch.exp(torch.clamp(raw - DENSITY_SHIFT, max=11.0))


def inside(x: torch.Tensor, bound: float) -> torch.Tensor:
    """1 inside the scene cube, 0 outside: the field is empty there (the cube is public)."""
    return (x.abs() <= bound).all(dim=-1).to(x.dtype)


class FieldSolution:
    """What the harness queries: a trained field, run without gradients in chunks."""

    def __init__(self, model: nn.Module, chunk: int) -> None:
        self.model, self.chunk = model, chunk

    def query(self, points: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p, d = torch.as_tensor(np.asarray(points, np.float32)), torch.as_tensor(np.asarray(dirs, np.float32))
        sigma, rgb = torch.zeros(len(p)), torch.ones(len(p), 3)
        keep = inside(p, self.model.bound).bool().nonzero().squeeze(1)  # the field is empty elsewhere
        device = next(self.model.parameters()).device  # where it was trained; answers come back to the CPU
        with torch.no_grad():
            for s in range(0, len(keep), self.chunk):
                i = keep[s:s + self.chunk]
                out_sigma, out_rgb = self.model(p[i].to(device), d[i].to(device))
                sigma[i], rgb[i] = out_sigma.cpu(), out_rgb.cpu()
        return sigma.numpy(), rgb.numpy()


class ConstantField:
    """The floor's field: the same density and colour everywhere."""

    def __init__(self, sigma: float, rgb: np.ndarray) -> None:
        self.sigma, self.rgb = float(sigma), np.asarray(rgb, np.float32)

    def query(self, points: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(points)
        return np.full(n, self.sigma, np.float32), np.broadcast_to(self.rgb, (n, 3)).copy()


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------

def box_segment(o: torch.Tensor, d: torch.Tensor, bound: float, near: float, far: float
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each ray is inside the scene cube, clipped to ``[near, far]`` (slab method): ``t_in, t_out [R]``;
    ``t_in >= t_out`` for a ray that misses it."""
    inv = 1.0 / torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
    t1, t2 = (-bound - o) * inv, (bound - o) * inv
    t_in = torch.minimum(t1, t2).amax(-1).clamp(min=near)
    t_out = torch.maximum(t1, t2).amin(-1).clamp(max=far)
    return t_in, t_out


def training_rays(views: TrainViews) -> dict[str, torch.Tensor]:
    """The training pixels whose rays cross the scene cube: origin, unit direction, colour and the
    segment ``[t_in, t_out]`` inside the cube, ``[R, ...]`` each. The other pixels are background,
    white whatever the field: they carry nothing to learn."""
    rays = [camera_rays(c2w, views.intrinsics) for c2w in views.poses]
    o = torch.as_tensor(np.stack([r[0] for r in rays]).reshape(-1, 3), dtype=torch.float32)
    d = torch.as_tensor(np.stack([r[1] for r in rays]).reshape(-1, 3), dtype=torch.float32)
    c = torch.as_tensor(views.images.reshape(-1, 3), dtype=torch.float32)
    t_in, t_out = box_segment(o, d, views.scene_bound, views.near, views.far)
    hit = t_in < t_out
    return {"o": o[hit], "d": d[hit], "rgb": c[hit], "t_in": t_in[hit], "t_out": t_out[hit]}


def render_segments(model: nn.Module, o: torch.Tensor, d: torch.Tensor, t_in: torch.Tensor, t_out: torch.Tensor,
                    n_samples: int, generator: torch.Generator) -> torch.Tensor:
    """Training render: ``n_samples`` equal bins of each ray's segment inside the cube, one uniform
    (jittered) sample per bin, composited with the contract's weights over white. The density is
    zero outside the cube, so the bins outside it would add nothing; the harness's renderer, which
    tiles all of ``[near, far]``, gives the same integral."""
    k = torch.arange(n_samples + 1, dtype=o.dtype, device=o.device) / n_samples
    edges = t_in[:, None] + (t_out - t_in)[:, None] * k  # [R, S + 1]
    starts, ends = edges[:, :-1], edges[:, 1:]
    # The jitter is drawn on the CPU (the run's generator), so a seed draws the same samples on any device.
    t = starts + torch.rand(starts.shape, generator=generator).to(o.device) * (ends - starts)
    points = o[:, None, :] + t[..., None] * d[:, None, :]
    sigma, rgb = model(points.reshape(-1, 3), d[:, None, :].expand_as(points).reshape(-1, 3))
    w = render_weights(sigma.reshape(t.shape), starts, ends)
    return composite(w, rgb.reshape(*t.shape, 3))


def build_field(cfg: Config, bound: float) -> nn.Module:
    return FrequencyField(cfg, bound) if cfg.encoding == "frequency" else HashField(cfg, bound)


def _train(views: TrainViews, ctx, cfg: Config) -> FieldSolution:
    cfg.iterations = int(round(ctx.limits["iterations"] * cfg.steps_per_budget_step))
    cfg.rays_per_iteration = int(ctx.limits["rays_per_iteration"])
    ctx.record_config(**asdict(cfg))
    torch.manual_seed(ctx.seed)
    gen = torch.Generator().manual_seed(ctx.seed)
    model = build_field(cfg, views.scene_bound).to(ctx.device)
    if cfg.encoding == "hash":
        # Instant-NGP: Adam β2 0.99, ε 1e-15 (the tables' gradients are tiny and sparse; a larger ε
        # would freeze them), weight decay on the MLP only.
        opt = torch.optim.Adam([{"params": [model.encoding.embeddings]},
                                {"params": [p for n, p in model.named_parameters() if not n.startswith("encoding")],
                                 "weight_decay": 1e-6}], lr=cfg.lr, betas=(0.9, 0.99), eps=1e-15)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    decay = cfg.lr_final_ratio ** (1 / max(1, cfg.iterations))
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, decay)
    rays = {k: v.to(ctx.device) for k, v in training_rays(views).items()}
    every = max(1, cfg.iterations // by_budget(ctx, cfg.checkpoints, cfg.quick_checkpoints))
    for it in range(1, cfg.iterations + 1):
        batch = torch.randint(len(rays["o"]), (cfg.rays_per_iteration,), generator=gen).to(ctx.device)
        pred = render_segments(model, rays["o"][batch], rays["d"][batch], rays["t_in"][batch], rays["t_out"][batch],
                               cfg.samples_per_ray, gen)
        loss = (pred - rays["rgb"][batch]).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        ctx.count(cfg.rays_per_iteration)
        if it % every == 0 or it == cfg.iterations:
            ctx.progress(it, cfg.iterations)
            ctx.checkpoint(FieldSolution(model, cfg.query_chunk), step=it)
    return FieldSolution(model, cfg.query_chunk)


def vanilla(views: TrainViews, ctx) -> FieldSolution:
    """Reference: NeRF's positional encoding (6 / 4 frequencies), 3 x 128 MLP, 32 stratified samples in
    the cube, 1024 rays a step, Adam 2e-3 decayed to 2e-4."""
    return _train(views, ctx, Config())


def hash_grid(views: TrainViews, ctx) -> FieldSolution:
    """Instant-NGP's multiresolution hash encoding (8 levels x 2 features, 2^15 entries, resolutions 8-192)
    with one-hidden-layer MLPs, Adam 3e-2; the same rays and samples, twice the steps (equal wall time)."""
    return _train(views, ctx, Config(**HASH_OVERRIDES))


def mean_colour(views: TrainViews, ctx) -> ConstantField:
    """Floor: an opaque fog of the mean training colour (σ = 10 in the whole segment, so every pixel
    renders that colour; the white background no longer shows)."""
    rgb = views.images.reshape(-1, 3).mean(axis=0)
    ctx.record_config(sigma=10.0, rgb=rgb.tolist())
    field = ConstantField(10.0, rgb)
    ctx.checkpoint(field, step=0)
    return field
