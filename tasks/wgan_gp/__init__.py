"""wgan-gp — Wasserstein GAN with gradient penalty (Gulrajani et al. 2017) on the paper's toy distributions.

Data, generated (``contract.DISTRIBUTIONS``): ``8gaussians`` (radius 2, std 0.02, scaled by
1/1.414), ``25gaussians`` (grid -2..2, std 0.05, scaled by 1/2.828), ``swissroll``
(``make_swiss_roll(noise=0.25)`` coordinates 0 and 2, / 7.5): the paper's canonical sets, each
**placed in the plane under the seal** (version 2): rotated by an angle in [0, 2π), scaled by 0.7-1.4
and shifted by 0.5-1.0 (``contract.Placement``). A method receives 100 000 training samples of the
placed distribution (sealed too) and the family's name, and returns a sampler ``sample(n, seed)``
in the same plane; the harness asks it five times for 1000 samples with seeds of its own and
compares them with five sets of 1000 held-out real samples (all from the seal).

Scoring: the solution is code, asked only for ``sample(n, seed)``. It runs in the jailed scoring
process, fresh for each evaluation of a sealed run, and gets no held-out samples, only the count and
a seed of the harness's; the harness computes every metric from the plain samples it returns. Its CPU in
one evaluation beyond 3x ``evaluation_cpu_seconds`` (1.0 s) is charged to training time; past 50x
the evaluation is refused. Throughput (generator steps/s) is the method's own ``ctx.count``.

Metrics, in the canonical frame (the harness undoes the placement on the generated samples, so a
figure means the same under every key): ``w1`` (primary), the mean over the five pairs of the exact
Wasserstein-1 distance between 1000 generated and 1000 held-out samples (the optimal assignment's
mean Euclidean cost, scipy's ``linear_sum_assignment``; equal to the transport linear program's
optimum: tested). One assignment alone is a noisy figure: real against real on 25 Gaussians, 20
single draws, 0.100 ± 0.020 (0.057-0.131), so version 1's single draw put the reference's seeds at
0.093-0.139 on the draw as much as on the generator (seed 0's sampler: 0.089-0.132 on three held-out
sets). Calibration of the mean of five (12 sealed seeds each, ``tests/test_wgan_gp.py`` holds the
real-data bounds), mean (range): 25 Gaussians real against real 0.099 (0.087-0.108), blurred by
std 0.05 0.122 (0.112-0.130), by 0.1 0.163 (0.154-0.169), one mode of 25 dropped 0.138
(0.110-0.167); 8 Gaussians real 0.078 (0.072-0.087), blurred 0.05 0.113, 0.1 0.163, one mode of 8
dropped 0.258; swiss roll real 0.090 (0.078-0.099), blurred 0.1 0.115 (version 1's docstring gave
0.039 and 0.067 for real data: single draws, below these averages). For the mixtures also ``modes_covered`` (modes holding at least 10%
of their fair share of the 5000 generated samples' high-quality ones) and ``high_quality`` (samples
within 3 std of their nearest mode; a perfect sampler scores 1 - exp(-4.5) = 0.989). Each record has
the scatter plot of one pair's generated against held-out samples beside it
(``<record>.samples.png``, matplotlib, canonical frame).

Budgets: generator steps (5 critic steps each), quick 1500 (8 Gaussians), full 10 000 (every set).
Targets: quick 8/8 modes, high quality ≥ 0.70, W1 ≤ 0.15 (TASKS.md); full, 25 Gaussians, 25/25,
≥ 0.80 and W1 ≤ **0.12**. TASKS.md's full W1 target, 0.10, is what real data scores against real data
(0.100 a single draw, above): a perfect sampler would miss it half the time. 0.12 asks for a
distance within 0.02-0.04 of real data's own and below a sampler that drops one mode of 25.
Reference (``baselines/wgan_gp.py``): 3 x 128 ReLU MLPs, Adam 1e-3 (β 0.5, 0.9) decayed linearly to
0, λ 0.1, batch 256, the sampler an exponential moving average of the generator's weights, trained
on the samples standardised (mean 0, one spread of 1: the placement's shift and scale taken out, the
canonical sets already sit there). Version 1's measurements, seed 0, one thread: quick 8 Gaussians
8/8, 0.85, W1 0.103 at 1500 steps (44 s); 25 Gaussians at 10 000 steps (318 s) 25/25, 0.94, W1
0.092. Without the weight average the same runs oscillated (8 Gaussians: 3 to 8 modes from one
checkpoint to the next); at the paper's lr 1e-4 they needed several times the steps.

Version 1's full budget, seeds 0-2, one thread: 8 Gaussians W1 0.052 / 0.054 / 0.080, 8/8 modes,
0.97 high quality; 25 Gaussians W1 0.139 / 0.113 / 0.093 (single draws), 25/25 modes on every seed
(reached after 3000 steps, about 85 s), 0.94-0.95 high quality; swiss roll W1 0.085 / 0.109 / 0.109;
the untrained floor 1.21-1.39. About 290 s and 314 MiB per run. W1 stops falling after about 4000
steps while the high-quality share still rises from 0.84 to 0.95. Tried on seed 0 and not adopted:
batch 1024 (0.132 at 5000 steps, four times the cost), an 8-d latent (0.152 at 6000), the last
iterate instead of the weight average (0.144), λ 1 (0.124); in this version, hidden width 256 (the
paper uses 512): three held-out sets' mean 0.108 at 4000 steps against 0.106 at 128, three times
slower.

Version 2, full budget, sealed under the project's reference key, seeds 0-2 (the committed records;
one thread, the other core busy): 25 Gaussians W1 0.0999 / 0.0953 / 0.0953, 25/25 modes, 0.925-0.944
high quality: every full target met on every seed; 8 Gaussians W1 0.094-0.099 (8/8, 0.977-0.983);
swiss roll 0.088-0.100; each within about 0.01 of real data against real data (0.099, 0.078, 0.090
above). The untrained floor 1.18-1.39 (0-1 modes). About 232 s of training a run.

Sealing (what is sealed, what is public): the placement, the training samples, the held-out samples
and the sampling seeds come from the seal; the canonical family (``contract.DISTRIBUTIONS``,
``contract.toy_samples``) and the placement's ranges are public. In version 1 the distributions
were the paper's as they stand, and sampling the contract's own sampler scored 25-Gaussian W1 0.060
sealed (reference 0.115). In version 2 that sampler scores W1 0.62-1.31 and covers 0-3 of 25 modes
under 8 keys (the untrained floor: about 1; ``tests/test_wgan_gp.py``). Unsealed runs draw every
stream, the placement included, from the public seed: development runs.
"""

from __future__ import annotations

from advbench.spec import Budget, Metric, Target, TaskSpec

SPEC = TaskSpec(
    name="wgan-gp",
    version=2,
    title="Wasserstein GAN with gradient penalty",
    summary="WGAN-GP on the paper's toy sets (8 and 25 Gaussians, swiss roll) placed in the plane under the seal; "
            "exact W1 to held-out samples, modes covered and share of high-quality samples.",
    variants={
        "8gaussians": "8 Gaussians on a circle (radius 2, std 0.02), scaled by 1/1.414, placed under the seal",
        "25gaussians": "25 Gaussians on a 5x5 grid (std 0.05), scaled by 1/2.828, placed under the seal",
        "swissroll": "sklearn make_swiss_roll(noise=0.25), coordinates 0 and 2, scaled by 1/7.5, placed under the seal",
    },
    metrics=(
        Metric("w1", "distance", False, "exact W1 between 1000 generated and 1000 held-out real samples "
                                        "(optimal assignment, Euclidean cost, canonical frame), mean of 5 pairs"),
        Metric("modes_covered", "modes", True, "modes holding at least 10% of their fair share of high-quality samples"),
        Metric("high_quality", "fraction", True, "share of generated samples within 3 std of their nearest mode"),
    ),
    primary_metric="w1",
    targets=(
        Target("modes_covered", 8, "quick", "8gaussians"),
        Target("high_quality", 0.70, "quick", "8gaussians"),
        Target("w1", 0.15, "quick", "8gaussians"),
        Target("modes_covered", 25, "full", "25gaussians"),
        Target("high_quality", 0.80, "full", "25gaussians"),
        Target("w1", 0.12, "full", "25gaussians"),
    ),
    budgets={
        "quick": Budget("quick", max_seconds=240, limits={"generator_steps": 1500}, variants=("8gaussians",)),
        "full": Budget("full", max_seconds=600, limits={"generator_steps": 10_000},
                       variants=("8gaussians", "25gaussians", "swissroll")),
    },
    profiles=("cpu", "cuda"),
    throughput_unit="generator steps/s",
    entry_point="advbench.tasks.wgan_gp.heldout:WGANGPTask",
    solution="object with sample(n: int, seed: int) -> float32[n, 2]",
    data="generated under the seal: the placement (rotation, scale, shift), 100000 training samples, 5 x 1000 "
         "held-out real samples",
    extras=("generative",),
)
