"""The held-out side of ``wgan-gp``: held-out real samples, the sampling seed, the scores and the scatter plot."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np

from advbench.task import Problem, Seal
from advbench.tasks.wgan_gp.contract import DISTRIBUTIONS, ToyData, mode_statistics, toy_samples, wasserstein_1

if TYPE_CHECKING:
    from advbench.solution import SolutionHandle

N_TRAIN = 100_000
N_EVAL = 1000


class WGANGPTask:
    def build(self, *, variant: str, seed: int, budget: Any, seal: Seal) -> Problem:
        d = DISTRIBUTIONS[variant]
        train = toy_samples(variant, N_TRAIN, np.random.default_rng([seed, 1]))
        real = toy_samples(variant, N_EVAL, seal.rng(2))
        sample_seed = int(seal.rng(3).integers(2**31 - 1))
        return Problem(
            train=ToyData(variant, train, d.centres, d.sigma),
            heldout={"real": real, "sample_seed": sample_seed},
            description={"variant": variant, "distribution": d.description, "train": N_TRAIN,
                         "heldout_real": N_EVAL, "generated": N_EVAL, "train_seed": [seed, 1]},
        )

    def evaluate(self, solution: "SolutionHandle", problem: Problem, profile: Any) -> dict[str, float]:
        variant = problem.train.distribution
        fake = np.asarray(solution.sample(N_EVAL, problem.heldout["sample_seed"]))
        if fake.shape != (N_EVAL, 2) or not np.issubdtype(fake.dtype, np.floating) or not np.isfinite(fake).all():
            raise ValueError(f"sample({N_EVAL}, seed) returned {fake.dtype} {fake.shape}; expected finite float "
                             f"samples of shape ({N_EVAL}, 2)")
        real = problem.heldout["real"]
        metrics = {"w1": wasserstein_1(fake, real)}
        if DISTRIBUTIONS[variant].centres:
            covered, quality = mode_statistics(fake, variant)
            metrics.update(modes_covered=float(covered), high_quality=quality)
        problem.artifacts["samples.png"] = scatter_png(real, fake, variant, metrics)
        return metrics


def scatter_png(real: np.ndarray, fake: np.ndarray, title: str, metrics: dict[str, float]) -> bytes:
    """Held-out real samples (grey) and generated samples (orange) side by side, as PNG bytes."""
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
    fig.suptitle(f"{title}: " + ", ".join(f"{k} {v:.3g}" for k, v in metrics.items()))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()
