"""The held-out side of ``darts``: the 30% test split, and the harness's retraining of each genotype."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from advbench.glyphs import glyph_split
from advbench.task import Problem, Seal
from advbench.tasks.darts.contract import RETRAIN, SearchData, build_network, check_genotype, retrain

if TYPE_CHECKING:
    from advbench.solution import SolutionHandle

TEST_FRACTION = 0.3
VARIANTS = ("glyphs",)
# How many times the harness retrains a cell, by budget: RETRAIN.seeds (3) on the full budget, whose
# records make the board; once on quick, the smoke run, whose bar (0.97) tells a cell of convolutions
# (about 0.995) from one collapsed to pools or skips (0.946-0.966). Retraining was 57 of the quick
# run's 68 s in the README's main job. The quick seed is the first of the full budget's three.
RETRAIN_SEEDS = {"quick": 1}


class DARTSTask:
    def build(self, *, variant: str, seed: int, budget: Any, seal: Seal) -> Problem:
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
        train, test = glyph_split(seal, test_fraction=TEST_FRACTION, images=True)
        # The retraining seeds are the harness's: from the seal, so a method cannot pick a lucky one.
        seeds = RETRAIN_SEEDS.get(getattr(budget, "name", "full"), RETRAIN.seeds)
        retrain_seeds = [int(s) for s in seal.rng(3).integers(0, 2**31 - 1, size=RETRAIN.seeds)][:seeds]
        return Problem(
            train=SearchData(train.x, train.y),
            heldout={"train": train, "test": test, "retrain_seeds": retrain_seeds},
            description={"variant": variant, "search_images": len(train.y), "test_images": len(test.y),
                         "retrain": {"epochs": RETRAIN.epochs, "batch_size": RETRAIN.batch_size, "lr": RETRAIN.lr,
                                     "seeds": seeds}},
        )

    def evaluate(self, solution: "SolutionHandle", problem: Problem, profile: Any) -> dict[str, float]:
        nodes = check_genotype(solution.genotype())
        return score(nodes, problem.heldout)


def score(nodes: tuple, heldout: dict[str, Any]) -> dict[str, float]:
    """Train the genotype from scratch with each retraining seed; test accuracy of each."""
    import torch

    train, test = heldout["train"], heldout["test"]
    accs = []
    t0 = time.perf_counter()
    for seed in heldout["retrain_seeds"]:
        net = retrain(nodes, train.x, train.y, seed)
        with torch.no_grad():
            pred = net(torch.as_tensor(test.x)).argmax(1).numpy()
        accs.append(float((pred == test.y).mean()))
    params = sum(p.numel() for p in build_network(nodes).parameters())
    return {"test_accuracy": float(np.mean(accs)), "test_accuracy_min": float(np.min(accs)),
            "test_accuracy_max": float(np.max(accs)), "parameters": float(params),
            "parameter_free_ops": float(sum(op in ("skip", "max3", "avg3") for n in nodes for op in (n[1], n[3]))),
            "retrain_seconds": (time.perf_counter() - t0) / len(accs)}
