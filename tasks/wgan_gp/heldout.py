"""The held-out side of ``wgan-gp``: the sealed placement, held-out real samples, the sampling seed, the
scores (in the canonical frame) and the scatter plot."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np

from advbench.task import Problem, Seal
from advbench.tasks.wgan_gp.contract import (DISTRIBUTIONS, ToyData, mode_statistics, random_placement, toy_samples,
                                             wasserstein_1)

if TYPE_CHECKING:
    from advbench.solution import SolutionHandle

N_TRAIN = 100_000
N_EVAL = 1000  # samples on each side of one assignment
N_PAIRS = 5  # W1 is the mean of this many independent assignments (one alone varies by +-0.02 on real data)


class WGANGPTask:
    def build(self, *, variant: str, seed: int, budget: Any, seal: Seal) -> Problem:
        if variant not in DISTRIBUTIONS:
            raise ValueError(f"unknown variant {variant!r}; valid: {', '.join(DISTRIBUTIONS)}")
        d = DISTRIBUTIONS[variant]
        # Where the distribution sits in the plane, and every sample, come from the seal: the family is
        # public, this instance of it is not. (Unsealed, the streams are the public seed's, as always.)
        placement = random_placement(seal.rng(4))
        train = placement.apply(toy_samples(variant, N_TRAIN, seal.rng(1)))
        # Canonical: the harness scores in that frame. N_PAIRS sets of N_EVAL, each with its own sampling seed.
        real = toy_samples(variant, N_PAIRS * N_EVAL, seal.rng(2)).reshape(N_PAIRS, N_EVAL, 2)
        sample_seeds = [int(s) for s in seal.rng(3).integers(2**31 - 1, size=N_PAIRS)]
        return Problem(
            train=ToyData(variant, train),
            heldout={"real": real, "sample_seeds": sample_seeds, "placement": placement},
            description={"variant": variant, "distribution": d.description,
                         "placement": "rotation in [0, 2pi), scale 0.7-1.4, shift 0.5-1.0, from the seal",
                         "train": N_TRAIN, "heldout_real": [N_PAIRS, N_EVAL], "generated": [N_PAIRS, N_EVAL]},
        )

    def evaluate(self, solution: "SolutionHandle", problem: Problem, profile: Any) -> dict[str, float]:
        variant = problem.train.distribution
        placement, reals = problem.heldout["placement"], problem.heldout["real"]
        fakes = []
        for seed in problem.heldout["sample_seeds"]:
            fake = np.asarray(solution.sample(N_EVAL, seed))
            if fake.shape != (N_EVAL, 2) or not np.issubdtype(fake.dtype, np.floating) or not np.isfinite(fake).all():
                raise ValueError(f"sample({N_EVAL}, seed) returned {fake.dtype} {fake.shape}; expected finite float "
                                 f"samples of shape ({N_EVAL}, 2)")
            # Back to the canonical frame: W1 in canonical units (placed W1 / scale), modes at the paper's centres.
            fakes.append(placement.undo(fake))
        metrics = {"w1": float(np.mean([wasserstein_1(f, r) for f, r in zip(fakes, reals)]))}
        if DISTRIBUTIONS[variant].centres:
            covered, quality = mode_statistics(np.concatenate(fakes), variant)
            metrics.update(modes_covered=float(covered), high_quality=quality)
        problem.artifacts["samples.png"] = scatter_png(reals[0], fakes[0], variant, metrics)
        return metrics


def scatter_png(real: np.ndarray, fake: np.ndarray, title: str, metrics: dict[str, float]) -> bytes:
    """Held-out real samples (grey) and generated samples (orange) side by side, as PNG bytes, both in the
    canonical frame (the sealed placement undone), so plots compare across keys."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 4), sharex=True, sharey=True)
    lim = float(np.abs(real).max()) * 1.3
    for ax, pts, label, colour in ((axes[0], real, "held-out real", "0.4"), (axes[1], fake, "generated", "tab:orange")):
        ax.scatter(pts[:, 0], pts[:, 1], s=2, c=colour)
        ax.set_title(label)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
    fig.suptitle(f"{title} (canonical frame): " + ", ".join(f"{k} {v:.3g}" for k, v in metrics.items()))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()
