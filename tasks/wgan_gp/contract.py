"""The public contract of the ``wgan-gp`` task: the training samples a method receives, the sampler it returns.

A method receives a :class:`ToyData`: ``x``, ``float32[n, 2]`` samples of one of the WGAN-GP
paper's toy distributions (Gulrajani et al. 2017, appendix) **placed in the plane under the seal**:
rotated by an angle in [0, 2π), scaled by a factor in [0.7, 1.4] and shifted by 0.5-1.0
(:class:`Placement`). The family is public (:data:`DISTRIBUTIONS`, the paper's canonical sets); the
placement and the samples are not, so a sampler that draws the canonical distribution (or any fixed
one) scores far from the real data: the method learns the distribution from its samples only. It
returns a :class:`Sampler`: ``sample(n, seed) -> float32[n, 2]``, ``n`` independent draws from the
learned distribution in the plane of the training samples, using ``seed`` for its own noise. The
harness asks for 1000 samples with a seed of its own and compares them with 1000 held-out real
samples it never hands out.

**Scores in the canonical frame.** The harness undoes the placement on the generated samples
(:meth:`Placement.undo`) and scores them against canonical held-out samples: W1 in canonical units
(the placed W1 divided by the scale), mode statistics against the canonical centres. So the figures
mean the same under every key and compare with the paper's sets.

:func:`toy_samples` generates the canonical distributions; :func:`mode_statistics` and
:func:`wasserstein_1` are the scores, public so that a method can validate on its own samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Distribution:
    name: str
    centres: tuple[tuple[float, float], ...]  # mode centres after scaling (empty: no modes)
    sigma: float  # standard deviation of each mode after scaling (0: not a mixture)
    description: str


def _eight() -> tuple[tuple[float, float], ...]:
    s = 1.0 / math.sqrt(2)
    raw = [(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)]
    return tuple((2 * a / 1.414, 2 * b / 1.414) for a, b in raw)


def _twenty_five() -> tuple[tuple[float, float], ...]:
    return tuple((2 * i / 2.828, 2 * j / 2.828) for i in range(-2, 3) for j in range(-2, 3))


DISTRIBUTIONS = {
    "8gaussians": Distribution("8gaussians", _eight(), 0.02 / 1.414,
                               "8 Gaussians on a circle of radius 2, std 0.02, all scaled by 1/1.414"),
    "25gaussians": Distribution("25gaussians", _twenty_five(), 0.05 / 2.828,
                                "25 Gaussians on the grid {-2..2}^2 (spacing 1), std 0.05, scaled by 1/2.828"),
    "swissroll": Distribution("swissroll", (), 0.0,
                              "make_swiss_roll(noise=0.25) coordinates 0 and 2, scaled by 1/7.5"),
}


def toy_samples(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of the canonical distribution ``name`` (unplaced) as ``float32[n, 2]``, from ``rng``."""
    d = DISTRIBUTIONS[name]
    if d.centres:
        centres = np.asarray(d.centres)
        idx = rng.integers(len(centres), size=n)
        return (centres[idx] + d.sigma * rng.standard_normal((n, 2))).astype(np.float32)
    from sklearn.datasets import make_swiss_roll

    x = make_swiss_roll(n_samples=n, noise=0.25, random_state=int(rng.integers(2**31 - 1)))[0]
    return (x[:, [0, 2]] / 7.5).astype(np.float32)


@dataclass(frozen=True)
class Placement:
    """A similarity transform of the plane, ``y = scale * R(angle) x + shift``: where the harness puts a
    canonical distribution under the seal."""

    angle: float
    scale: float
    shift: tuple[float, float]

    def _rotation(self) -> np.ndarray:
        c, s = math.cos(self.angle), math.sin(self.angle)
        return np.array([[c, -s], [s, c]])

    def apply(self, x: np.ndarray) -> np.ndarray:
        return (self.scale * np.asarray(x, np.float64) @ self._rotation().T + np.asarray(self.shift)).astype(np.float32)

    def undo(self, y: np.ndarray) -> np.ndarray:
        return ((np.asarray(y, np.float64) - np.asarray(self.shift)) @ self._rotation() / self.scale).astype(np.float32)


SCALES = (0.7, 1.4)  # log-uniform
SHIFTS = (0.5, 1.0)  # the shift's length, uniform; its direction uniform


def random_placement(rng: np.random.Generator) -> Placement:
    """An angle uniform in [0, 2π), a scale log-uniform in :data:`SCALES`, a shift of length uniform in
    :data:`SHIFTS` in a uniform direction. The shift is never short, so no placement leaves the
    canonical set where it was."""
    angle = float(rng.uniform(0, 2 * math.pi))
    scale = float(math.exp(rng.uniform(math.log(SCALES[0]), math.log(SCALES[1]))))
    length, direction = float(rng.uniform(*SHIFTS)), float(rng.uniform(0, 2 * math.pi))
    return Placement(angle, scale, (length * math.cos(direction), length * math.sin(direction)))


@dataclass(frozen=True)
class ToyData:
    distribution: str  # the canonical family's name (public); where it sits in the plane is not
    x: np.ndarray  # float32[n, 2] training samples, placed


class Sampler(Protocol):
    def sample(self, n: int, seed: int) -> np.ndarray: ...


# A mode counts as covered when it holds at least this share of its fair share (n / modes) of the
# high-quality samples: a handful of stray points near a mode is not a learned mode.
COVERED_SHARE = 0.1


def mode_statistics(samples: np.ndarray, name: str) -> tuple[int, float]:
    """(modes covered, share of high-quality samples): a sample is high quality when it lies within
    3 standard deviations of its nearest mode centre; a mode is covered when at least
    ``COVERED_SHARE * n / modes`` high-quality samples are nearest to it."""
    d = DISTRIBUTIONS[name]
    centres = np.asarray(d.centres)
    dist = np.linalg.norm(samples[:, None, :] - centres[None, :, :], axis=-1)
    nearest, gap = dist.argmin(1), dist.min(1)
    good = gap <= 3 * d.sigma
    counts = np.bincount(nearest[good], minlength=len(centres))
    covered = int((counts >= COVERED_SHARE * len(samples) / len(centres)).sum())
    return covered, float(good.mean())


def wasserstein_1(a: np.ndarray, b: np.ndarray) -> float:
    """Exact W1 between two equal-size empirical distributions (Euclidean ground cost): the cost of
    the optimal assignment, ``scipy.optimize.linear_sum_assignment`` on the distance matrix."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    if len(a) != len(b):
        raise ValueError(f"W1 by assignment needs equal sizes, got {len(a)} and {len(b)}")
    cost = cdist(np.asarray(a, np.float64), np.asarray(b, np.float64))
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())
