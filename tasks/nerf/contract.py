"""The public contract of the ``nerf`` task: the training views a method receives, the field it returns.

**The scene.** Three Lambertian spheres (:class:`Scene`: centres, radii, albedos, one directional
light) inside the cube ``[-SCENE_BOUND, SCENE_BOUND]^3``, on a white background, ray-traced in numpy
by :func:`render_scene` (exact ray-sphere intersections, ``ambient + (1 - ambient) max(0, n·l)``
shading, no shadows). The scene is drawn from the seal (:func:`random_scene` is public, the draw is
not): a method knows it only through the training images. The training cameras come from the public
run seed.

**Cameras.** Each camera sits on the sphere of radius :data:`RADIUS` around the origin and looks at
the origin, world ``+z`` up. ``c2w`` is a camera-to-world ``float64[3, 4]`` matrix (rotation columns
= camera ``x`` right, ``y`` up, ``z`` backwards; last column = the camera centre), the OpenGL/NeRF
convention: the camera looks along its **-z** axis. Pixel ``(row v, column u)`` is the ray through
the pixel's **centre**, ``((u + 0.5 - W/2) / f, -(v + 0.5 - H/2) / f, -1)`` in camera coordinates
(:func:`camera_rays`; directions normalised, so ``t`` is Euclidean distance from the camera).

**What a method receives:** :class:`TrainViews`: ``images float32[40, H, W, 3]`` in ``[0, 1]``,
their ``poses float64[40, 3, 4]`` and the :class:`Intrinsics`. The 8 held-out poses and their
images are the harness's, drawn from the seal: a sealed run cannot rebuild them from ``ctx.seed``.

**What it returns:** a radiance field, any picklable object with

    query(points: float32[N, 3], dirs: float32[N, 3]) -> (sigma: float[N], rgb: float[N, 3])

(``dirs`` are unit view directions, from the camera towards the point). The harness renders each
held-out view itself with :func:`render_rays`: :data:`N_SAMPLES` = 64 samples per ray at the
midpoints of 64 equal bins of ``[NEAR, FAR]``, no jitter, composited over a white background.
Densities below zero are clipped to 0 and colours to ``[0, 1]``; wrong shapes, non-numbers, NaN
or infinity are an error. Because the harness places the samples, a solution cannot pick its own
renderer.

**Volume rendering** (:func:`render_weights`, the quadrature of Max 1995 / NeRF): for the intervals
``[t_start_i, t_end_i]`` of one ray, ``δ_i = t_end_i - t_start_i``, ``α_i = 1 - exp(-σ_i δ_i)``,
the *exclusive* transmittance ``T_i = exp(-Σ_{j<i} σ_j δ_j)`` (``T_0 = 1``) and ``w_i = T_i α_i``;
the colour is ``Σ w_i c_i + (1 - Σ w_i)`` (white background). The harness's bins tile
``[NEAR, FAR]`` exactly, so the last interval ends at ``FAR`` (not NeRF's 1e10, which would make
every ray opaque and hide the background).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import torch

RADIUS = 4.0  # cameras on the sphere of this radius, looking at the origin
NEAR, FAR = 2.0, 6.0  # the ray segment the harness renders
N_SAMPLES = 64  # samples per ray in the harness's renderer (bin midpoints)
FOV_DEGREES = 50.0  # horizontal field of view
SCENE_BOUND = 1.5  # every sphere lies inside [-SCENE_BOUND, SCENE_BOUND]^3
N_TRAIN_VIEWS = 40
N_HELDOUT_VIEWS = 8
MAX_CAMERA_Z = 0.9  # |unit camera direction . z| < 0.9: no camera looks straight down the up axis
AMBIENT = 0.25


@dataclass(frozen=True)
class Intrinsics:
    """A pinhole camera of ``width x height`` pixels and focal length ``focal`` in pixels."""

    width: int
    height: int
    focal: float

    @classmethod
    def square(cls, size: int) -> "Intrinsics":
        return cls(size, size, 0.5 * size / float(np.tan(np.radians(FOV_DEGREES) / 2)))


@dataclass(frozen=True)
class TrainViews:
    """What a method receives: ``images float32[V, H, W, 3]`` in ``[0, 1]`` and ``poses float64[V, 3, 4]``."""

    images: np.ndarray
    poses: np.ndarray
    intrinsics: Intrinsics
    near: float = NEAR
    far: float = FAR
    scene_bound: float = SCENE_BOUND


@dataclass(frozen=True)
class Scene:
    centres: np.ndarray  # float64[3, 3]
    radii: np.ndarray  # float64[3]
    albedo: np.ndarray  # float64[3, 3] in [0, 1]
    light: np.ndarray  # float64[3], unit vector towards the light


class RadianceField(Protocol):
    def query(self, points: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


# ---------------------------------------------------------------------------------------------
# Scene and cameras
# ---------------------------------------------------------------------------------------------

def random_scene(rng: np.random.Generator) -> Scene:
    """Three spheres of radius 0.35-0.6 that do not overlap, inside the scene cube, with saturated colours."""
    centres: list[np.ndarray] = []
    radii: list[float] = []
    while len(centres) < 3:
        r = float(rng.uniform(0.35, 0.6))
        c = rng.uniform(-(SCENE_BOUND - r) * 0.8, (SCENE_BOUND - r) * 0.8, size=3)
        if all(np.linalg.norm(c - c2) > r + r2 + 0.1 for c2, r2 in zip(centres, radii)):
            centres.append(c)
            radii.append(r)
    hues = rng.permutation(3)
    albedo = np.full((3, 3), 0.15) + rng.uniform(0, 0.1, size=(3, 3))
    albedo[np.arange(3), hues] = rng.uniform(0.75, 0.95, size=3)  # one strong channel each: red, green, blue
    light = rng.normal(size=3)
    light[2] = abs(light[2]) + 0.5  # from above
    return Scene(np.array(centres), np.array(radii), albedo, light / np.linalg.norm(light))


def look_at(position: np.ndarray) -> np.ndarray:
    """``c2w float64[3, 4]`` of a camera at ``position`` looking at the origin, world +z up."""
    position = np.asarray(position, dtype=np.float64)
    back = position / np.linalg.norm(position)  # camera +z points away from what it looks at
    right = np.cross(np.array([0.0, 0.0, 1.0]), back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    return np.concatenate([np.stack([right, up, back], axis=1), position[:, None]], axis=1)


def random_poses(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` cameras uniform (by area) on the sphere of radius :data:`RADIUS`, ``|z| < MAX_CAMERA_Z * RADIUS``."""
    z = rng.uniform(-MAX_CAMERA_Z, MAX_CAMERA_Z, size=n)
    phi = rng.uniform(0, 2 * np.pi, size=n)
    s = np.sqrt(1 - z ** 2)
    dirs = np.stack([s * np.cos(phi), s * np.sin(phi), z], axis=1)
    return np.stack([look_at(RADIUS * d) for d in dirs])


def camera_rays(c2w: np.ndarray, intrinsics: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """Origins and unit directions ``float64[H, W, 3]`` of every pixel's ray (pixel centres, -z forward)."""
    c2w = np.asarray(c2w, dtype=np.float64)
    u, v = np.meshgrid(np.arange(intrinsics.width) + 0.5, np.arange(intrinsics.height) + 0.5, indexing="xy")
    d_cam = np.stack([(u - intrinsics.width / 2) / intrinsics.focal, -(v - intrinsics.height / 2) / intrinsics.focal,
                      -np.ones_like(u)], axis=-1)
    d = d_cam @ c2w[:, :3].T
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    return np.broadcast_to(c2w[:, 3], d.shape).copy(), d


def trace(scene: Scene, origins: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Exact colours ``float64[..., 3]`` of rays (unit ``dirs``): nearest sphere hit, Lambertian, else white."""
    o, d = origins.reshape(-1, 3), dirs.reshape(-1, 3)
    best = np.full(len(o), np.inf)
    colour = np.ones((len(o), 3))
    for c, r, a in zip(scene.centres, scene.radii, scene.albedo):
        oc = o - c
        b = np.einsum("ij,ij->i", oc, d)
        disc = b ** 2 - (np.einsum("ij,ij->i", oc, oc) - r ** 2)
        t = -b - np.sqrt(np.maximum(disc, 0))
        hit = (disc > 0) & (t > 0) & (t < best)
        if hit.any():
            n = (o[hit] + t[hit, None] * d[hit] - c) / r
            shade = AMBIENT + (1 - AMBIENT) * np.maximum(n @ scene.light, 0)
            colour[hit] = a * shade[:, None]
            best[hit] = t[hit]
    return colour.reshape(*origins.shape[:-1], 3)


def render_scene(scene: Scene, poses: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Ground-truth images ``float32[V, H, W, 3]`` of ``scene`` from ``poses``."""
    out = []
    for c2w in poses:
        o, d = camera_rays(c2w, intrinsics)
        out.append(trace(scene, o, d))
    return np.stack(out).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Volume rendering (torch): what the harness composites with, and what a method may train with
# ---------------------------------------------------------------------------------------------

def bin_edges(n_samples: int = N_SAMPLES, near: float = NEAR, far: float = FAR) -> np.ndarray:
    """``n_samples + 1`` edges of equal bins tiling ``[near, far]``."""
    return np.linspace(near, far, n_samples + 1)


def render_weights(sigma: "torch.Tensor", t_starts: "torch.Tensor", t_ends: "torch.Tensor") -> "torch.Tensor":
    """Compositing weights ``w[..., S]`` of densities ``sigma[..., S]`` on the intervals ``[t_starts, t_ends]``.

    ``w_i = T_i (1 - exp(-σ_i δ_i))`` with ``δ_i = t_end_i - t_start_i`` and the *exclusive*
    transmittance ``T_i = exp(-Σ_{j<i} σ_j δ_j)``: a sample is not dimmed by its own density.
    ``sigma`` must already be ``>= 0``.
    """
    import torch

    tau = sigma * (t_ends - t_starts)
    # Exclusive cumulative sum: shift right by one, T_0 = 1.
    accumulated = torch.cumsum(tau, dim=-1) - tau
    return torch.exp(-accumulated) * (1 - torch.exp(-tau))


def composite(weights: "torch.Tensor", rgb: "torch.Tensor", white_background: bool = True) -> "torch.Tensor":
    """``Σ w_i c_i`` plus the background's share ``1 - Σ w_i`` in white: ``[..., 3]``."""
    out = (weights[..., None] * rgb).sum(dim=-2)
    if white_background:
        out = out + (1 - weights.sum(dim=-1, keepdim=True))
    return out


def sample_along_rays(n_rays: int, n_samples: int, near: float = NEAR, far: float = FAR,
                      generator: "torch.Generator | None" = None, jitter: bool = False
                      ) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
    """Sample distances ``t[R, S]`` and their bins ``t_starts, t_ends[R, S]``: the bin midpoints, or
    (``jitter``, for training only) one uniform point per bin and ray: stratified sampling."""
    import torch

    edges = torch.linspace(near, far, n_samples + 1)
    starts, ends = edges[:-1].expand(n_rays, n_samples), edges[1:].expand(n_rays, n_samples)
    u = torch.rand(n_rays, n_samples, generator=generator) if jitter else torch.full((n_rays, n_samples), 0.5)
    return starts + u * (ends - starts), starts, ends


def render_rays(field_fn: Any, origins: "torch.Tensor", dirs: "torch.Tensor", n_samples: int = N_SAMPLES,
                near: float = NEAR, far: float = FAR, generator: "torch.Generator | None" = None,
                jitter: bool = False) -> "torch.Tensor":
    """Colours ``[R, 3]`` of rays ``origins, dirs [R, 3]`` through ``field_fn(points[N, 3], dirs[N, 3]) ->
    (sigma[N], rgb[N, 3])`` (torch), σ clipped to >= 0 and colours to [0, 1]. With the defaults (64
    midpoints, no jitter) this is exactly the harness's renderer (``tests/test_nerf.py`` checks it);
    ``jitter=True`` is stratified sampling, for training."""
    import torch

    # Drawn on the CPU (the generator's device: a seed draws the same samples anywhere), then moved
    # to the rays' device and dtype.
    t, starts, ends = sample_along_rays(len(origins), n_samples, near, far, generator, jitter)
    t = t.to(origins)
    points = origins[:, None, :] + t[..., None] * dirs[:, None, :]
    sigma, rgb = field_fn(points.reshape(-1, 3), dirs[:, None, :].expand_as(points).reshape(-1, 3))
    sigma = torch.clamp(sigma.reshape(len(origins), n_samples), min=0)
    rgb = torch.clamp(rgb.reshape(len(origins), n_samples, 3), 0, 1)
    w = render_weights(sigma, starts.to(sigma), ends.to(sigma))
    return composite(w, rgb)


def psnr(pred: np.ndarray, target: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of images in ``[0, 1]`` (``pred`` clipped first), capped at 100 dB."""
    mse = float(np.mean((np.clip(pred, 0, 1).astype(np.float64) - target.astype(np.float64)) ** 2))
    return float(-10 * np.log10(max(mse, 1e-10)))
