"""The held-out side of the ``pc`` task: data generation (the true graphs) and the scoring.

Harness only: the true DAG and CPDAG never leave this process. Every random choice that decides
them (the DAGs, the discrete networks' tables, the ``gaussian`` weights) and the samples comes from
the run's :class:`~advbench.task.Seal`. :func:`sample_network` samples the bundled networks
themselves (pc-v1's data; the peer checks and the speed benchmark against causal-learn use them).
"""

from __future__ import annotations

import functools
import gzip
from typing import TYPE_CHECKING

import numpy as np

from advbench.spec import Budget
from advbench.task import Problem, Seal
from advbench.tasks.pc.contract import (CPT_SCALE, GAUSS_DEGREE, GAUSS_NODES, GAUSS_WEIGHTS, N_SAMPLES, NETWORKS, Dataset,
                                        Graph, dag_to_cpdag, shd, skeleton_scores)

if TYPE_CHECKING:
    from advbench.profiles import Profile
    from advbench.solution import SolutionHandle


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------

def network_path(name: str):
    """The bundled ``<name>.bif.gz`` inside the installed pgmpy package (no download)."""
    import importlib.resources

    path = importlib.resources.files("pgmpy") / "utils" / "example_models" / f"{name}.bif.gz"
    if not path.is_file():
        raise FileNotFoundError(f"pgmpy does not bundle {name}.bif.gz (looked in {path})")
    return path


def sample_network(name: str, n: int, seed: int, seal: Seal | None = None) -> tuple[Dataset, Graph]:
    """Forward-sample ``n`` rows from a bundled BIF network; return the data and the true DAG.

    pgmpy's sampler is seeded with ``seal.random_state(seed, ...)``: ``seed`` itself unsealed (or
    without a seal), a keyed integer sealed. The DAG is the bundled network's, public either way.
    """
    import warnings
    from importlib.metadata import version

    sim_seed = seed if seal is None else seal.random_state(seed, "pc", "simulate", name)
    reader = _bif_reader(name)
    global_state = np.random.get_state()  # pgmpy's sampler reseeds numpy's global RNG: restore it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecation notices of pgmpy's own modules
        model = reader.get_model()
        try:
            df = model.simulate(n_samples=n, seed=sim_seed, show_progress=False)
        finally:
            np.random.set_state(global_state)
    nodes = tuple(reader.variable_names)
    states = reader.variable_states
    parents = reader.variable_parents
    dag = Graph.from_edges(nodes, directed=[(u, v) for v in nodes for u in parents[v]])
    data = np.empty((n, len(nodes)), np.int64)
    for j, v in enumerate(nodes):
        code = {s: k for k, s in enumerate(states[v])}
        data[:, j] = [code[s] for s in df[v].astype(str)]
    sealed = ", sealed" if seal is not None and seal.sealed else ""
    source = f"pgmpy {version('pgmpy')} utils/example_models/{name}.bif.gz, forward-sampled, seed {seed}{sealed}"
    card = tuple(len(states[v]) for v in nodes)
    return Dataset(data=data, nodes=nodes, kind="discrete", cardinalities=card, source=source), dag


@functools.lru_cache(maxsize=None)
def _bif_reader(name: str):
    """pgmpy's reader of the bundled ``<name>.bif.gz``, read once."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecation notices of pgmpy's own modules
        from pgmpy.readwrite import BIFReader

        return BIFReader(string=gzip.decompress(network_path(name).read_bytes()).decode())


# (in-degree, number of states) of each node of pgmpy's bundled networks, in the files' node order:
# all a sealed network copies of them. Pinned, so that building a run's data does not import pgmpy
# (4 s of the 5.9 s a pc run's setup took in a fresh process); tests/test_pc.py reads them back from
# pgmpy's files (:func:`bundled_network_shape`).
NETWORK_SHAPES: dict[str, tuple[tuple[int, int], ...]] = {
    "sachs": ((2, 3), (2, 3), (2, 3), (3, 3), (2, 3), (2, 3), (1, 3), (1, 3), (0, 3), (0, 3), (2, 3)),
    "child": ((0, 2), (2, 2), (2, 3), (1, 3), (2, 5), (2, 2), (1, 2), (2, 3), (1, 3), (1, 2), (1, 5), (1, 6),
              (1, 2), (2, 3), (1, 2), (1, 3), (1, 4), (1, 3), (1, 3), (1, 2)),
    "alarm": ((1, 2), (1, 3), (1, 3), (0, 2), (2, 3), (0, 2), (2, 3), (0, 2), (2, 3), (2, 3), (0, 2), (2, 3),
              (0, 2), (0, 2), (1, 3), (2, 4), (0, 2), (2, 4), (0, 2), (2, 3), (2, 3), (1, 3), (0, 2), (2, 2),
              (0, 3), (3, 4), (0, 2), (0, 3), (1, 4), (2, 4), (3, 4), (2, 4), (1, 3), (4, 2), (1, 3), (2, 3),
              (2, 3)),
}


def bundled_network_shape(name: str) -> tuple[tuple[int, int], ...]:
    """(in-degree, number of states) of each node of a bundled network, read from pgmpy's file."""
    reader = _bif_reader(name)
    return tuple((len(reader.variable_parents[v]), len(reader.variable_states[v])) for v in reader.variable_names)


def sealed_network(shape_of: str, n: int, seal: Seal) -> tuple[Dataset, Graph]:
    """A discrete Bayesian network made under the seal in the shape of a bundled one, and ``n`` rows
    forward-sampled from it.

    The nodes keep the bundled network's (in-degree, states) pairs; everything else is drawn from
    stream 12 of the seal: a topological order (uniform among the orders in which every node has as
    many predecessors as its in-degree), each node's parents (uniform among its predecessors), each
    conditional table (log-linear: each parent adds a random effect, normal with std ``CPT_SCALE``,
    to the child's state logits), the rows and the column order. Nodes are named ``X1``... by column. The bundled network's structure and
    tables are never used, so looking it up gives nothing.
    """
    rng = seal.rng(12, NETWORKS.index(shape_of))
    shape = list(NETWORK_SHAPES[shape_of])
    p = len(shape)
    # A topological order: at each position, any remaining node that has enough predecessors.
    left, order = list(rng.permutation(p)), []
    while left:
        k = next(i for i, node in enumerate(left) if shape[node][0] <= len(order))
        order.append(left.pop(k))
    indeg = [shape[v][0] for v in order]
    card = [shape[v][1] for v in order]
    parents = [sorted(rng.choice(k, size=indeg[k], replace=False).tolist()) if indeg[k] else [] for k in range(p)]
    x = np.empty((n, p), np.int64)
    for k in range(p):
        # Log-linear tables: each parent adds a random effect to the child's state logits, so every
        # parent matters on its own (full Dirichlet tables left some edges too weak to see).
        logits = CPT_SCALE * rng.standard_normal(card[k]) / 2 + np.zeros((n, card[k]))
        for j in parents[k]:
            logits += (CPT_SCALE * rng.standard_normal((card[j], card[k])))[x[:, j]]
        table = np.exp(logits - logits.max(axis=1, keepdims=True))
        table /= table.sum(axis=1, keepdims=True)
        u = rng.random(n)[:, None]
        x[:, k] = np.minimum((u > np.cumsum(table, axis=1)).sum(axis=1), card[k] - 1)
    perm = rng.permutation(p)  # column c holds order position perm[c]
    where = np.argsort(perm)
    nodes = tuple(f"X{c + 1}" for c in range(p))
    dag = Graph.from_edges(nodes, directed=[(nodes[where[j]], nodes[where[k]]) for k in range(p) for j in parents[k]])
    source = (f"a Bayesian network in {shape_of}'s shape ({p} nodes, its in-degrees and numbers of states), "
              f"structure and tables drawn {'under the seal' if seal.sealed else f'from seed {seal.seed}'}")
    return Dataset(data=np.ascontiguousarray(x[:, perm]), nodes=nodes, kind="discrete",
                   cardinalities=tuple(card[i] for i in perm), source=source), dag


def gaussian_sem(n: int, seed: int, p: int = GAUSS_NODES, degree: float = GAUSS_DEGREE,
                 seal: Seal | None = None) -> tuple[Dataset, Graph]:
    """A linear-Gaussian SEM on a random DAG: X_j = sum_i w_ij X_i + N(0, 1), then standardised.

    Everything (DAG, weights, noise, column order) comes from stream 11 of ``seal`` (of
    ``Seal(seed)`` when none is given: ``default_rng([seed, 11])``).
    """
    rng = (seal if seal is not None else Seal(seed)).rng(11)
    prob = degree / (p - 1)  # expected degree = prob * (p - 1)
    lower = np.tril(rng.random((p, p)) < prob, -1)  # i -> j only for i > j in causal order
    lo, hi = GAUSS_WEIGHTS
    weights = lower * rng.uniform(lo, hi, (p, p)) * rng.choice([-1.0, 1.0], (p, p))
    x = np.zeros((n, p))
    for j in range(p):  # causal order 0, 1, ..., p-1; weights[j, i] is the weight of i -> j
        x[:, j] = x @ weights[j] + rng.standard_normal(n)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    perm = rng.permutation(p)  # column k holds causal-order variable perm[k]
    x = x[:, perm]
    nodes = tuple(f"X{k + 1}" for k in range(p))
    where = np.argsort(perm)  # causal-order variable i sits in column where[i]
    edges = [(where[i], where[j]) for j, i in zip(*np.nonzero(lower))]
    dag = Graph.from_edges(nodes, directed=[(nodes[a], nodes[b]) for a, b in edges])
    sealed = ", sealed" if seal is not None and seal.sealed else ""
    source = (f"linear-Gaussian SEM, {p} nodes, edge probability {prob:.3f}, weights +-U{GAUSS_WEIGHTS}, "
              f"N(0,1) noise, standardised, seed {seed}{sealed}")
    return Dataset(data=x, nodes=nodes, kind="continuous", source=source), dag


# ---------------------------------------------------------------------------------------------
# The task
# ---------------------------------------------------------------------------------------------

def solution_graph(solution: "SolutionHandle") -> Graph:
    """Ask the solution for its graph as plain data (``Graph.arrays``) and rebuild (validate) it here."""
    got = solution.arrays()
    if not (isinstance(got, (tuple, list)) and len(got) == 2):
        raise TypeError(f"pc: arrays() returned {type(got).__name__}, expected (nodes, adj)")
    nodes, adj = got
    if not isinstance(nodes, (tuple, list)) or not all(isinstance(n, str) for n in nodes):
        raise TypeError("pc: a solution's nodes must be a sequence of names")
    if not isinstance(adj, np.ndarray):
        raise TypeError(f"pc: a solution's adj must be an array, got {type(adj).__name__}")
    return Graph(tuple(nodes), adj)  # raises on a bad shape, non-0/1 or non-finite entries, self-loops


class PCTask:
    def build(self, *, variant: str, seed: int, budget: Budget, seal: Seal) -> Problem:
        n = int(budget.limits.get("samples", N_SAMPLES))
        if variant.endswith("-like") and (shape_of := variant.removesuffix("-like")) in NETWORKS:
            train, dag = sealed_network(shape_of, n, seal)
        elif variant == "gaussian":
            train, dag = gaussian_sem(n, seed, seal=seal)
        else:
            raise ValueError(f"unknown variant {variant!r}")
        cpdag = dag_to_cpdag(dag)
        return Problem(
            train=train,
            heldout={"dag": dag, "cpdag": cpdag},
            description={"variant": variant, "source": train.source, "kind": train.kind,
                         "samples": n, "nodes": len(dag.nodes), "edges": dag.n_edges,
                         "cpdag_directed": int(cpdag.directed.sum()),
                         "cpdag_undirected": int(np.triu(cpdag.undirected).sum())},
        )

    def evaluate(self, solution: "SolutionHandle", problem: Problem, profile: "Profile") -> dict[str, float]:
        truth: Graph = problem.heldout["cpdag"]
        est = solution_graph(solution)
        precision, recall, f1 = skeleton_scores(truth, est)
        return {"skeleton_f1": f1, "shd": float(shd(truth, est)),
                "skeleton_precision": precision, "skeleton_recall": recall}
