"""The held-out side of the ``gnn`` task: the graph generators, the folds and the scoring (harness only)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from advbench.spec import Budget
from advbench.task import Problem, Seal
from advbench.tasks.gnn.contract import (MAX_DEGREE, N_FOLDS, GraphDataset, GraphSample, degree_features,
                                         fold_of_seed)

if TYPE_CHECKING:
    from advbench.profiles import Profile
    from advbench.solution import SolutionHandle

DATA_SEED = 20240  # fixed: the dataset never changes with the run seed, only the repeat and fold do
CSL_SKIPS = (2, 3, 4, 5, 6, 9, 11, 12, 13, 16)


def _from_nx(graph: Any, label: int, rng: np.random.Generator) -> GraphSample:
    n = graph.number_of_nodes()
    perm = rng.permutation(n)  # random node order: position must carry no label information
    edges = np.array([(perm[u], perm[v]) for u, v in graph.edges()], dtype=np.int64).reshape(-1, 2)
    edge_index = np.concatenate([edges, edges[:, ::-1]]).T.copy()
    return GraphSample(degree_features(edge_index, n), edge_index, label)


def make_family(rng: np.random.Generator, per_class: int = 250) -> list[GraphSample]:
    import networkx as nx

    graphs = []
    for label in range(4):
        for _ in range(per_class):
            n = int(rng.integers(20, 41))
            s = int(rng.integers(2**31))
            if label == 0:
                g = nx.gnp_random_graph(n, 4.0 / (n - 1), seed=s)
            elif label == 1:
                g = nx.barabasi_albert_graph(n, 2, seed=s)
            elif label == 2:
                g = nx.watts_strogatz_graph(n, 4, 0.1, seed=s)
            else:
                # Core-periphery blocks: a quarter of the nodes form a dense core (4 core
                # neighbours each), every periphery node has 2 expected core neighbours and 1/3 of
                # a periphery neighbour; mean degree about 4.2. Assortative blocks at this degree
                # look like Erdős–Rényi to a GCN: measured, 2-block 3.2/0.8 confused ER and SBM
                # completely and 4-block 3.6/0.4 still about a third of the time.
                n_core = n // 4
                sizes = [n_core, n - n_core]
                p_cp = 2.0 / n_core
                probs = [[min(1.0, 4.0 / (n_core - 1)), p_cp], [p_cp, (1 / 3) / (n - n_core - 1)]]
                g = nx.stochastic_block_model(sizes, probs, seed=s)
            graphs.append(_from_nx(nx.convert_node_labels_to_integers(g), label, rng))
    return graphs


def make_ba2motif(rng: np.random.Generator, per_class: int = 500) -> list[GraphSample]:
    import torch
    from torch_geometric.datasets import ExplainerDataset
    from torch_geometric.datasets.graph_generator import BAGraph
    from torch_geometric.datasets.motif_generator import CycleMotif, HouseMotif

    graphs = []
    state, np_state = torch.random.get_rng_state(), np.random.get_state()
    try:
        # ExplainerDataset draws from torch's global RNG, and PyG's barabasi_albert_graph from
        # numpy's (np.random.choice): seed both, and put both back afterwards. (Until the split into
        # contract and heldout only torch was seeded, so BA-2Motif changed with every build.)
        generator_seed = int(rng.integers(2**31))
        torch.manual_seed(generator_seed)
        np.random.seed(generator_seed)
        for label, motif in enumerate((HouseMotif(), CycleMotif(5))):
            ds = ExplainerDataset(graph_generator=BAGraph(num_nodes=25, num_edges=1), motif_generator=motif,
                                  num_motifs=1, num_graphs=per_class)
            for data in ds:
                n = int(data.num_nodes)
                perm = rng.permutation(n)
                edge_index = perm[data.edge_index.numpy()]
                graphs.append(GraphSample(degree_features(edge_index, n), edge_index, label))
    finally:
        torch.random.set_rng_state(state)
        np.random.set_state(np_state)
    return graphs


def make_csl(rng: np.random.Generator, per_class: int = 15) -> list[GraphSample]:
    import networkx as nx

    return [_from_nx(nx.circulant_graph(41, [1, skip]), label, rng)
            for label, skip in enumerate(CSL_SKIPS) for _ in range(per_class)]


MAKERS = {"family": (make_family, 4), "ba2motif": (make_ba2motif, 2), "csl": (make_csl, len(CSL_SKIPS))}


def stratified_folds(labels: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Fold index per graph: each class dealt round-robin over the folds after a shuffle."""
    folds = np.empty(len(labels), np.int64)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        folds[idx] = np.arange(len(idx)) % k
    return folds


def data_rng(variant: str, seal: Seal) -> np.random.Generator:
    """The generator behind a variant's graphs and, after them, the folds of repeat 0.

    Unsealed: ``default_rng([DATA_SEED, variant index])``, whatever the run seed. Sealed: keyed by
    the seal's key and ``DATA_SEED`` (not the run seed), so every run under one key shares one data
    set and the runs of seeds ``10r`` to ``10r + 9`` still test on the ten folds of its repeat ``r``
    (:func:`fold_rng`).
    """
    return replace(seal, seed=DATA_SEED).rng(list(MAKERS).index(variant))


def fold_rng(variant: str, repeat: int, seal: Seal, data: np.random.Generator) -> np.random.Generator:
    """The generator behind the fold assignment of one repeat of the 10-fold CV.

    Repeat 0 continues ``data`` (the variant's :func:`data_rng`, after the graphs were drawn), as
    ``gnn-v1`` did, so seeds 0-9 keep their folds. Repeat ``r >= 1`` gets its own stream of the
    same seal, ``(variant index, r)``: unsealed ``default_rng([DATA_SEED, variant index, r])``,
    sealed keyed by the seal's key like the graphs, so a sealed run's repeats stay hidden too.
    """
    if repeat == 0:
        return data
    return replace(seal, seed=DATA_SEED).rng(list(MAKERS).index(variant), repeat)


class GNNTask:
    def build(self, *, variant: str, seed: int, budget: Budget, seal: Seal) -> Problem:
        make, n_classes = MAKERS[variant]
        repeat, test_fold = fold_of_seed(seed)
        rng = data_rng(variant, seal)
        graphs = make(rng)
        labels = np.array([g.y for g in graphs])
        folds = stratified_folds(labels, N_FOLDS, fold_rng(variant, repeat, seal, rng))
        train = tuple(g for g, f in zip(graphs, folds) if f != test_fold)
        test = [g for g, f in zip(graphs, folds) if f == test_fold]
        return Problem(
            train=GraphDataset(train, MAX_DEGREE + 1, n_classes),
            heldout={"graphs": [GraphSample(g.x, g.edge_index) for g in test], "labels": np.array([g.y for g in test]),
                     "train": train},
            description={"variant": variant, "graphs": len(graphs), "repeat": repeat, "fold": test_fold,
                         "folds": N_FOLDS, "train_graphs": len(train), "test_graphs": len(test),
                         "classes": n_classes},
        )

    def evaluate(self, solution: "SolutionHandle", problem: Problem, profile: "Profile") -> dict[str, float]:
        test = problem.heldout
        train = test["train"]
        pred = _labels(solution.predict(test["graphs"]), len(test["graphs"]))
        train_pred = _labels(solution.predict([GraphSample(g.x, g.edge_index) for g in train]), len(train))
        return {"accuracy": float((pred == test["labels"]).mean()),
                "train_accuracy": float((train_pred == np.array([g.y for g in train])).mean())}


def _labels(pred: object, n: int) -> np.ndarray:
    """What ``predict`` returned, checked: one finite number per graph."""
    if isinstance(pred, (list, tuple)):
        pred = np.asarray(pred)
    if not isinstance(pred, np.ndarray):
        raise TypeError(f"predict returned {type(pred).__name__}; expected an array of class labels")
    if not (np.issubdtype(pred.dtype, np.number) or pred.dtype == np.bool_):
        raise TypeError(f"predict returned an array of {pred.dtype}; expected integer class labels")
    if pred.shape != (n,):
        raise ValueError(f"predict returned shape {pred.shape} for {n} graphs, expected ({n},)")
    if not np.isfinite(pred).all():
        raise ValueError("predict returned NaN or infinite labels")
    return pred
