"""nerf — neural radiance fields (Mildenhall et al. 2020) on an analytic scene.

Data, generated (``contract``): three Lambertian spheres (radius 0.35-0.6, one strong colour
channel each, one directional light, no shadows) inside the cube ``[-1.5, 1.5]^3``, on a white
background, ray-traced exactly in numpy. Cameras on the sphere of radius 4 look at the origin
(world +z up, OpenGL convention: -z forward, pixel centres at +0.5), horizontal field of view 50°.
Version 2: the scene (spheres, colours, light) and the 8 held-out cameras come from the seal, the 40
training cameras from the public seed; a sealed method knows the scene only through its training
images and cannot render the held-out views itself (version 1 drew the scene from the public seed). Variants: ``spheres32`` (32 x 32 views) and
``spheres64`` (64 x 64). A method receives the 40 images, their poses and the intrinsics.

It returns a radiance field, ``query(points[N, 3], dirs[N, 3]) -> (sigma[N], rgb[N, 3])``. The
harness renders the held-out views itself (``heldout.render_views``): 64 samples per ray at the
midpoints of 64 equal bins of ``[2, 6]``, exclusive transmittance, the last bin ending at 6, white
background; densities clipped to ≥ 0 and colours to [0, 1]; wrong shapes, non-numbers, NaN or
infinity are an error, not a score. ``psnr`` (primary) is the mean over the 8 views of each
view's PSNR (rendering clipped to [0, 1]), ``psnr_min`` the worst view's. Each record has the
rendered views above their ground truth beside it (``<record>.views.png``, Pillow). An analytic
field of the true scene (σ = 200 inside the spheres) scores 45.5 dB (worst view 30.2) at 32 x 32
and 41.5 (31.2) at 64 x 64 through this renderer: the renderer's own error is far below the targets.

Scoring: the solution is code, asked only for ``query(points, dirs)``. It runs in the jailed scoring
process, fresh for each evaluation of a sealed run, on the held-out views' sample points; the
harness composites the views and computes the PSNRs from the plain arrays it returns. Its CPU in
one evaluation beyond 3x ``evaluation_cpu_seconds`` (1.5 s) is charged to training time; past 50x
the evaluation is refused. Throughput (rays/s) is the method's own ``ctx.count``.

Methods (``baselines/nerf.py``): ``reference`` = NeRF's positional encoding (6 frequencies for
points, 4 for directions), a 3 x 128 ReLU MLP, 32 stratified samples per training ray over its
segment inside the scene cube (the density is zero outside), 1024 rays a step, Adam 2e-3 decayed
to 2e-4; ``hash-grid`` = Instant-NGP's multiresolution hash encoding in plain torch (8 levels x 2
features, 2^15 entries a level, resolutions 8-192) with one-hidden-layer MLPs, Adam 3e-2, twice the
budget's steps (one of its steps costs half an MLP step: equal wall time); ``floor`` = an opaque
fog of the mean training colour. Budgets: steps of 1024 rays, quick 300 (spheres32), full 2000
(spheres64). Targets (TASKS.md): quick ≥ 22 dB, full ≥ 26 dB.

Measured, seed 0, one thread, on a shared 2-core machine (load average 3-5 while these ran, so
the times are upper bounds). Quick: reference 23.09 dB (worst view 22.59) after 78.7 s of
training, target met at 58 s; hash-grid 26.31 dB (22.82) after 80.3 s, 26.0 dB already at 36 s and
flat from there (26.0-26.5; its training loss keeps falling, the held-out PSNR does not). TASKS.md's
goal for the hash grid, 28 dB at equal time, was not reached: a colour head without the view
direction, a coarser finest grid (96) or 64 samples scored 24.5-25.4 dB. Floor 9.71 dB (8.97).
Full: reference 28.61 dB (27.75) after 449 s, target met at 173 s; 644 MiB. Throughput: reference
3900-4600 rays/s, hash grid 7600.

Full budget, seeds 0-2 (the committed records; 64 x 64, one thread, the other core busy with
another sweep): reference 28.61 / 28.89 / 28.97 dB (worst views 27.1-27.8), the 26 dB target met
on every seed after 139-178 s of training, 349-368 s in all, 5600-5900 rays/s, 0.63 GB; at about
70 s it stood at 24.5-25.5 dB. Hash grid 27.64 / 21.26 / 29.11 dB: at about 80 s seed 2 was at
28.0 dB (TASKS.md's goal), seed 0 at 26.9 (61 s), seed 1 at 23.5 (it started at 14 dB and never
recovered its worst view, 16.4); 26 dB reached after 40-61 s where it was reached, 6800-9400
rays/s. So the hash grid is 2-3 times faster to the target when it trains well, and less stable
from seed to seed than the positional encoding. Floor 9.7-10.4 dB.

Tried for the reference and not adopted (spheres32, in-process): a softplus density, Adam 5e-4
and 48 samples: 17.1 dB after 300 steps; the same with Adam 2e-3 and 32 samples: 20.6 dB, the
spheres' colours never appearing (a grey, half-transparent fog with black colours behind the
spheres). The exponential density (``exp(raw - 3)``) fixed that: 23.8 dB at step 300 (of a
400-step schedule).

Version 2, full budget, sealed under the project's reference key, seeds 0-2 (the committed
records; one thread, the other core busy with another record sweep throughout): reference 29.09 /
29.95 / 28.24 dB (worst views 25.7-28.0), the 26 dB target met on every seed after 105-131 s of
training, 440-460 s in all (version 1's 349-368 s ran beside lighter work); floor 10.1-11.4 dB. The
hash grid ran into the full budget's 600 s cap on all three seeds (step 2800-3200 of its 4000;
recorded as ``time_cap`` with the score at the cap: 27.8 / 24.0 / 27.4 dB; seed 1 had reached 26.1
at step 2800, seed 2 27.4 already at step 400, 65 s): its "twice the steps at equal wall time" does
not hold on this machine under load (version 1: 515 s a run), so its step multiplier is to be set
from a measured cost ratio. The numbers above this
paragraph are version 1's (the scene from the public seed).

Sealing (what is sealed, what is public): the scene and the held-out cameras come from the seal; the
training cameras, the scene generator (``contract.random_scene``) and the renderer are public. In
version 1 the scene came from the public seed, and a method that ray-traced the contract's scene
analytically at any camera scored 65 dB (reference 28.8). In version 2 the best of 32 scenes drawn
from public seeds scores 10.3-11.0 dB on the sealed views of seeds 0-2 (the mean-colour floor: about
10 dB; ``tests/test_nerf.py``). Unsealed runs draw every stream from the public seed: version 1's data.
"""

from __future__ import annotations

from advbench.spec import Budget, Metric, Target, TaskSpec

SPEC = TaskSpec(
    name="nerf",
    version=2,
    title="Neural radiance fields",
    summary="Novel-view synthesis of three Lambertian spheres from 40 posed views: the harness renders 8 sealed "
            "held-out views from the returned field with its own volume renderer and scores PSNR.",
    variants={
        "spheres32": "32x32 views: 40 training, 8 sealed held-out cameras on a sphere of radius 4",
        "spheres64": "64x64 views: 40 training, 8 sealed held-out cameras on a sphere of radius 4",
    },
    metrics=(
        Metric("psnr", "dB", True, "mean PSNR of the 8 held-out views rendered by the harness (64 samples per ray, "
                                   "white background, clipped to [0, 1])", min_effect=0.3),
        Metric("psnr_min", "dB", True, "PSNR of the worst held-out view"),
    ),
    primary_metric="psnr",
    targets=(
        Target("psnr", 22.0, "quick", "spheres32"),
        Target("psnr", 26.0, "full", "spheres64"),
    ),
    budgets={
        "quick": Budget("quick", max_seconds=240, limits={"iterations": 300, "rays_per_iteration": 1024},
                        variants=("spheres32",)),
        "full": Budget("full", max_seconds=600, limits={"iterations": 2000, "rays_per_iteration": 1024},
                       variants=("spheres64",)),
    },
    profiles=("cpu", "cuda"),
    throughput_unit="rays/s",
    entry_point="advbench.tasks.nerf.heldout:NeRFTask",
    evaluation_cpu_seconds=1.5,  # rendering the held-out views: 1.38 s measured (quick, seed 0)
    solution="a radiance field: query(points float32[N, 3], dirs float32[N, 3]) -> (sigma[N], rgb[N, 3])",
    data="generated: three Lambertian spheres ray-traced in numpy, the scene and the 8 held-out cameras from the "
         "seal, the 40 training cameras from the seed",
    extras=("generative",),  # torch, and Pillow (through matplotlib) for the PNG
)
