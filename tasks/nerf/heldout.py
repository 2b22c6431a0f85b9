"""The held-out side of ``nerf``: the sealed scene, the sealed held-out cameras and images, the harness's renderer,
PSNR, the PNG."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np

from advbench.task import Problem, Seal
from advbench.tasks.nerf.contract import (FAR, N_HELDOUT_VIEWS, N_SAMPLES, N_TRAIN_VIEWS, NEAR, Intrinsics,
                                          TrainViews, bin_edges, camera_rays, composite, psnr, random_poses,
                                          random_scene, render_scene, render_weights)

if TYPE_CHECKING:
    from advbench.solution import SolutionHandle

SIZES = {"spheres32": 32, "spheres64": 64}


class NeRFTask:
    def build(self, *, variant: str, seed: int, budget: Any, seal: Seal) -> Problem:
        if variant not in SIZES:
            raise ValueError(f"unknown variant {variant!r}; valid: {', '.join(SIZES)}")
        intr = Intrinsics.square(SIZES[variant])
        # The scene (spheres, colours, light) and the held-out cameras come from the seal: a sealed run
        # knows the scene only through its 40 training images, and cannot trace the views it is scored on.
        # The training cameras are public (their poses are handed out anyway). Unsealed, every stream is
        # the public seed's, as in version 1.
        scene = random_scene(seal.rng(1))
        train_poses = random_poses(np.random.default_rng([seed, 2]), N_TRAIN_VIEWS)
        test_poses = random_poses(seal.rng(3), N_HELDOUT_VIEWS)
        return Problem(
            train=TrainViews(render_scene(scene, train_poses, intr), train_poses, intr),
            heldout={"poses": test_poses, "images": render_scene(scene, test_poses, intr), "intrinsics": intr},
            description={"variant": variant, "image_size": SIZES[variant], "train_views": N_TRAIN_VIEWS,
                         "heldout_views": N_HELDOUT_VIEWS, "samples_per_ray": N_SAMPLES, "near": NEAR, "far": FAR,
                         "focal": intr.focal, "scene": "three spheres and a light, from the seal",
                         "train_pose_seed": [seed, 2]},
        )

    def evaluate(self, solution: "SolutionHandle", problem: Problem, profile: Any) -> dict[str, float]:
        h = problem.heldout
        renders = render_views(solution.query, h["poses"], h["intrinsics"])
        scores = [psnr(r, gt) for r, gt in zip(renders, h["images"])]
        metrics = {"psnr": float(np.mean(scores)), "psnr_min": float(np.min(scores))}
        problem.artifacts["views.png"] = views_png(renders, h["images"])
        return metrics


def check_field_output(out: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``query``'s answer for ``n`` points as ``(sigma float64[n] >= 0, rgb float64[n, 3] in [0, 1])``:
    negative densities clipped to 0 and colours to [0, 1]; anything else wrong is a ValueError."""
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise ValueError(f"query(points, dirs) must return a pair (sigma[N], rgb[N, 3]), got {type(out).__name__}"
                         + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""))
    arrays = []
    for name, value, shapes in (("sigma", out[0], ((n,), (n, 1))), ("rgb", out[1], ((n, 3),))):
        a = np.asarray(value)
        if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
            raise ValueError(f"query returned {name} of dtype {a.dtype}; expected real numbers")
        if a.shape not in shapes:
            raise ValueError(f"query returned {name} of shape {a.shape} for {n} points; expected {shapes[0]}")
        if not np.isfinite(a).all():
            raise ValueError(f"query returned NaN or infinite {name}")
        arrays.append(a.astype(np.float64))
    return np.maximum(arrays[0].reshape(n), 0.0), np.clip(arrays[1], 0.0, 1.0)


def render_views(query: Any, poses: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Each view ``float32[V, H, W, 3]`` rendered by the harness: 64 bin midpoints per ray in [NEAR, FAR],
    ``query`` asked for one view's points at a time, composited over white."""
    import torch

    edges = torch.as_tensor(bin_edges(N_SAMPLES, NEAR, FAR))
    starts, ends = edges[:-1], edges[1:]
    mids = 0.5 * (starts + ends)
    out = []
    for c2w in poses:
        o, d = camera_rays(c2w, intrinsics)
        o, d = o.reshape(-1, 3), d.reshape(-1, 3)
        n_rays = len(o)
        points = (o[:, None, :] + mids.numpy()[None, :, None] * d[:, None, :]).reshape(-1, 3)
        dirs = np.repeat(d, N_SAMPLES, axis=0)
        sigma, rgb = check_field_output(query(points.astype(np.float32), dirs.astype(np.float32)), len(points))
        w = render_weights(torch.as_tensor(sigma).reshape(n_rays, N_SAMPLES), starts, ends)
        colour = composite(w, torch.as_tensor(rgb).reshape(n_rays, N_SAMPLES, 3))
        out.append(colour.numpy().reshape(intrinsics.height, intrinsics.width, 3))
    return np.clip(np.stack(out), 0, 1).astype(np.float32)


def views_png(renders: np.ndarray, truth: np.ndarray) -> bytes:
    """Rendered held-out views (top row) above their ground truth (bottom row), one PNG, nearest-neighbour
    upscaled to at least 128 pixels a view, 4-pixel grey gutters."""
    from PIL import Image

    n, h, w, _ = truth.shape
    scale = max(1, -(-128 // h))
    gap = 4
    grid = np.full((2 * h * scale + 3 * gap, n * (w * scale + gap) + gap, 3), 0.5)
    for i in range(n):
        for row, img in enumerate((renders[i], truth[i])):
            big = np.kron(np.clip(img, 0, 1), np.ones((scale, scale, 1)))
            y, x = gap + row * (h * scale + gap), gap + i * (w * scale + gap)
            grid[y:y + h * scale, x:x + w * scale] = big
    buf = io.BytesIO()
    Image.fromarray(np.round(grid * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def png_size(n_views: int, size: int) -> tuple[int, int]:
    """(width, height) of :func:`views_png`'s grid for ``n_views`` square views of ``size`` pixels."""
    scale = max(1, -(-128 // size))
    return n_views * (size * scale + 4) + 4, 2 * size * scale + 12
