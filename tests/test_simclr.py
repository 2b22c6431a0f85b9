"""simclr: NT-Xent against pytorch-metric-learning on identical embeddings; augmentations; targets."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from advbench.baselines import simclr as bs  # noqa: E402
from advbench.profiles import get_profile  # noqa: E402
from advbench.solution import LocalSolution, SolutionError  # noqa: E402
from advbench.task import Seal  # noqa: E402
from advbench.tasks.simclr import SPEC  # noqa: E402
from advbench.tasks.simclr import contract as sc  # noqa: E402
from advbench.tasks.simclr import heldout as ts  # noqa: E402

KEY = b"some-secret-key-123"


@pytest.mark.parametrize("n, dim, tau", [(8, 16, 0.5), (32, 64, 0.2), (3, 5, 1.0)])
def test_nt_xent_matches_pytorch_metric_learning(n, dim, tau):
    pml = pytest.importorskip("pytorch_metric_learning.losses")
    g = torch.Generator().manual_seed(n)
    z1, z2 = torch.randn(n, dim, generator=g, dtype=torch.float64), torch.randn(n, dim, generator=g, dtype=torch.float64)
    expected = pml.NTXentLoss(temperature=tau)(torch.cat([z1, z2]), torch.arange(n).repeat(2))
    torch.testing.assert_close(bs.nt_xent(z1, z2, tau), expected, atol=1e-6, rtol=1e-6)


def test_nt_xent_is_small_for_matching_views_and_large_for_random_ones():
    z = torch.nn.functional.normalize(torch.randn(16, 32), dim=1)
    assert bs.nt_xent(z, z, 0.1) < 0.1 < bs.nt_xent(z, torch.randn(16, 32), 0.1)


def test_augmentations_are_random_bounded_and_keep_most_of_the_digit():
    problem = ts.SimCLRTask().build(variant="glyphs", seed=0, budget=None, seal=Seal(0))
    x = torch.as_tensor(problem.train[:64])
    gen = torch.Generator().manual_seed(0)
    cfg = bs.Config()
    a, b = bs.augment(x, cfg, gen), bs.augment(x, cfg, gen)
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert not torch.allclose(a, b)  # two different views of each image
    no_noise = bs.Config(noise_std=0.0, erase_prob=0.0, max_rotation_deg=0.0, max_shift_px=0.0, max_shear=0.0,
                         max_scale=0.0, stroke_jitter=0.0)
    torch.testing.assert_close(bs.augment(x, no_noise, gen), x, atol=1e-5, rtol=0)  # identity warp
    corr = np.corrcoef(a.flatten().numpy(), x.flatten().numpy())[0, 1]
    assert corr > 0.25  # strong augmentations (2 px is a quarter of the image) but still related


def test_method_gets_images_without_labels_and_no_test_images():
    problem = ts.SimCLRTask().build(variant="glyphs", seed=1, budget=None, seal=Seal(1))
    assert isinstance(problem.train, np.ndarray) and problem.train.shape[1:] == (1, 8, 8)
    train_keys = {im.tobytes() for im in problem.train}
    overlap = sum(im.tobytes() in train_keys for im in problem.heldout["x_test"])
    assert overlap == 0 and len(problem.train) + len(problem.heldout["x_test"]) == 1800
    assert len(problem.heldout["few"]) == 10 * sc.LABELS_PER_CLASS == 100


def test_the_images_are_sealed_glyphs_and_two_keys_differ():
    from advbench.glyphs import glyph_split

    seed = 2
    task = ts.SimCLRTask()
    h = task.build(variant="glyphs", seed=seed, budget=None, seal=Seal(seed)).heldout
    train, test = glyph_split(Seal(seed), test_fraction=0.3, images=True)
    rng = np.random.default_rng([seed, 3])  # unsealed: the few-label subset from the public seed
    few = np.concatenate([rng.choice(np.flatnonzero(train.y == c), 10, replace=False) for c in range(10)])
    for k, v in {"x_train": train.x, "x_test": test.x, "y_train": train.y, "y_test": test.y, "few": few}.items():
        assert np.array_equal(h[k], v), k
    sealed = task.build(variant="glyphs", seed=seed, budget=None, seal=Seal(seed, key=KEY)).heldout
    assert not np.array_equal(sealed["x_test"], h["x_test"])
    assert not np.array_equal(sealed["x_train"][sealed["few"]], h["x_train"][h["few"]])  # other probe images
    assert len(sealed["x_test"]) == len(h["x_test"]) and np.array_equal(np.bincount(sealed["y_test"]), np.bincount(test.y))
    # Same key, same seed: the same sealed data (the harness can rebuild it); another key: other data.
    again = task.build(variant="glyphs", seed=seed, budget=None, seal=Seal(seed, key=KEY)).heldout
    assert np.array_equal(again["x_test"], sealed["x_test"]) and np.array_equal(again["few"], sealed["few"])
    other = task.build(variant="glyphs", seed=seed, budget=None, seal=Seal(seed, key=b"another-key-0123456789")).heldout
    assert not np.array_equal(other["x_test"], sealed["x_test"])


def test_evaluate_checks_what_encode_returns():
    problem = ts.SimCLRTask().build(variant="glyphs", seed=0, budget=None, seal=Seal(0))
    task, cpu = ts.SimCLRTask(), get_profile("cpu")
    m = task.evaluate(LocalSolution(bs.RawPixels()), problem, cpu)
    assert set(m) == {x.name for x in SPEC.metrics} and 0.8 < m["probe_acc"] <= 1

    class Bad:
        def __init__(self, fn):
            self.fn = fn

        def encode(self, images):
            return self.fn(images)

    with pytest.raises(ValueError, match="NaN"):
        task.evaluate(LocalSolution(Bad(lambda x: np.full((len(x), 4), np.nan))), problem, cpu)
    with pytest.raises(ValueError, match="shape"):
        task.evaluate(LocalSolution(Bad(lambda x: np.zeros((3, 4)))), problem, cpu)
    with pytest.raises(TypeError):
        task.evaluate(LocalSolution(Bad(lambda x: np.array(["a"] * len(x))[:, None])), problem, cpu)
    with pytest.raises(SolutionError):
        task.evaluate(LocalSolution(object()), problem, cpu)


def test_solution_probes_h_not_z():
    enc = bs.FrozenEncoder(bs.ConvEncoder(bs.Config().feature_dim), "cpu")
    assert enc.encode(np.zeros((3, 1, 8, 8), np.float32)).shape == (3, bs.Config().feature_dim)


@pytest.mark.slow
def test_quick_targets_and_simclr_beats_raw_pixels_with_few_labels(tmp_path):
    from advbench.runner import run

    rec = run("simclr", "reference", budget="quick", seed=0, results_dir=tmp_path)
    assert rec["status"] == "ok" and rec["targets_met"], rec["metrics"]
    raw = run("simclr", "raw-pixels", budget="quick", seed=0, results_dir=tmp_path)
    assert rec["metrics"]["probe_acc_10_per_class"] > raw["metrics"]["probe_acc_10_per_class"] + 0.03
