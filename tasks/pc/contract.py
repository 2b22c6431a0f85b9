"""The public contract of the ``pc`` task: what a method receives and must return.

A method receives a :class:`Dataset` as ``train``: ``data`` (``n x p``; integer state codes for
``kind == "discrete"``, standardised floats for ``kind == "continuous"``), the node names, and
for discrete data the number of states of each variable. It returns a :class:`Graph` over the same
node names: the estimated CPDAG (``adj[i, j] = 1, adj[j, i] = 0`` is ``i -> j``; both 1 is
``i — j``; both 0 no edge).

The graph algorithms the scoring uses are here too, public: :func:`meek_closure`,
:func:`dag_to_cpdag`, :func:`shd` and :func:`skeleton_scores`. The harness reads a solution
through :meth:`Graph.arrays` (node names and matrix, plain data) and rebuilds and validates the
graph on its side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

NETWORKS = ("sachs", "child", "alarm")  # pgmpy example files whose shape the sealed networks copy
CPT_SCALE = 1.5  # std of each parent's effect on a sealed network's state logits
N_SAMPLES = 5000
GAUSS_NODES, GAUSS_DEGREE, GAUSS_WEIGHTS = 20, 2.5, (0.5, 1.5)


# ---------------------------------------------------------------------------------------------
# The solution type, and what a method receives
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Graph:
    """A partially directed graph over named nodes (a DAG, a CPDAG, or a method's estimate).

    ``adj`` is a ``(p, p)`` 0/1 matrix with a zero diagonal: ``adj[i, j] = 1, adj[j, i] = 0`` is the
    directed edge ``nodes[i] -> nodes[j]``; ``adj[i, j] = adj[j, i] = 1`` the undirected edge
    ``nodes[i] — nodes[j]``; ``adj[i, j] = adj[j, i] = 0`` no edge.
    """

    nodes: tuple[str, ...]
    adj: np.ndarray

    def __post_init__(self) -> None:
        nodes = tuple(str(n) for n in self.nodes)
        raw = np.asarray(self.adj)
        p = len(nodes)
        if len(set(nodes)) != p:
            raise ValueError("Graph: node names must be unique")
        if raw.shape != (p, p):
            raise ValueError(f"Graph: adj has shape {raw.shape}, expected {(p, p)} for {p} nodes")
        # Check the values *before* casting: a cast to int8 would turn NaN into 0 (with a warning),
        # 0.5 into 0 and 257 into 1, and score the result as if the method had said so.
        if raw.dtype.kind not in "biuf":
            raise TypeError(f"Graph: adj must hold numbers 0 and 1, got an array of {raw.dtype}")
        if raw.dtype.kind == "f" and not np.isfinite(raw).all():
            raise ValueError("Graph: adj holds NaN or infinite entries; entries must be 0 or 1")
        if not np.isin(raw, (0, 1)).all():
            raise ValueError("Graph: adj entries must be 0 or 1")
        adj = raw.astype(np.int8)  # a copy: the graph owns its matrix
        if np.diagonal(adj).any():
            raise ValueError("Graph: adj must have a zero diagonal (no self-loops)")
        adj.setflags(write=False)
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "adj", adj)

    def arrays(self) -> tuple[tuple[str, ...], np.ndarray]:
        """``(node names, adj)`` as plain data: what the harness asks a solution for."""
        return self.nodes, np.array(self.adj)

    # ---- construction ----
    @classmethod
    def empty(cls, nodes: Sequence[str]) -> "Graph":
        return cls(tuple(nodes), np.zeros((len(nodes), len(nodes)), np.int8))

    @classmethod
    def from_edges(cls, nodes: Sequence[str], directed: Iterable[tuple[Any, Any]] = (),
                   undirected: Iterable[tuple[Any, Any]] = ()) -> "Graph":
        """Edges given as pairs of node names or of indices into ``nodes``."""
        nodes = tuple(nodes)
        index = {n: i for i, n in enumerate(nodes)}
        ix = lambda v: v if isinstance(v, (int, np.integer)) else index[v]  # noqa: E731
        adj = np.zeros((len(nodes), len(nodes)), np.int8)
        for a, b in directed:
            adj[ix(a), ix(b)] = 1
        for a, b in undirected:
            adj[ix(a), ix(b)] = adj[ix(b), ix(a)] = 1
        return cls(nodes, adj)

    # ---- reading ----
    @property
    def skeleton(self) -> np.ndarray:
        """Symmetric boolean adjacency, marks ignored."""
        a = self.adj.astype(bool)
        return a | a.T

    @property
    def directed(self) -> np.ndarray:
        """Boolean matrix: ``[i, j]`` is True where ``i -> j``."""
        a = self.adj.astype(bool)
        return a & ~a.T

    @property
    def undirected(self) -> np.ndarray:
        """Symmetric boolean matrix: True where ``i — j``."""
        a = self.adj.astype(bool)
        return a & a.T

    def directed_edges(self) -> list[tuple[str, str]]:
        return [(self.nodes[i], self.nodes[j]) for i, j in zip(*np.nonzero(self.directed))]

    def undirected_edges(self) -> list[tuple[str, str]]:
        return [(self.nodes[i], self.nodes[j]) for i, j in zip(*np.nonzero(np.triu(self.undirected)))]

    @property
    def n_edges(self) -> int:
        return int(np.triu(self.skeleton).sum())

    def reorder(self, nodes: Sequence[str]) -> "Graph":
        """The same graph with its rows and columns in the order of ``nodes`` (same name set)."""
        nodes = tuple(nodes)
        if set(nodes) != set(self.nodes) or len(nodes) != len(self.nodes):
            raise ValueError(f"Graph: nodes {sorted(self.nodes)} are not {sorted(nodes)}")
        index = {n: i for i, n in enumerate(self.nodes)}
        perm = [index[n] for n in nodes]
        return Graph(nodes, self.adj[np.ix_(perm, perm)])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Graph):
            return NotImplemented
        return self.nodes == other.nodes and np.array_equal(self.adj, other.adj)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        d, u = self.directed_edges(), self.undirected_edges()
        return f"Graph({len(self.nodes)} nodes, {len(d)} directed, {len(u)} undirected)"


@dataclass(frozen=True, eq=False)
class Dataset:
    """What a method gets as ``train``: samples, node names, and the kind of data.

    ``data`` is ``(n, p)``: ``int64`` state codes ``0 .. cardinalities[j]-1`` for discrete data
    (``kind == "discrete"``, chi-square / G-square tests), standardised ``float64`` for continuous
    data (``kind == "continuous"``, Fisher's z). Column ``j`` is the variable ``nodes[j]``.
    """

    data: np.ndarray
    nodes: tuple[str, ...]
    kind: str  # "discrete" or "continuous"
    cardinalities: tuple[int, ...] | None = None  # states per variable, discrete data only
    source: str = ""

    @property
    def n_samples(self) -> int:
        return int(self.data.shape[0])


# ---------------------------------------------------------------------------------------------
# Graph algorithms the evaluation needs
# ---------------------------------------------------------------------------------------------

def meek_closure(adj: np.ndarray) -> np.ndarray:
    """Apply Meek's rules R1-R3 to a fixpoint on a PDAG (``adj`` convention of :class:`Graph`).

    R1: a -> b — c, a and c not adjacent      =>  b -> c   (else b would be a new collider)
    R2: a -> b -> c and a — c                 =>  a -> c   (else a cycle)
    R3: a — b -> d, a — c -> d, a — d, b and c not adjacent  =>  a -> d
    From the v-structures of a DAG these three rules give its CPDAG (Meek 1995; R4 only matters
    with background knowledge).
    """
    g = np.array(adj, dtype=bool)
    changed = True
    while changed:
        changed = False
        und = g & g.T
        dire = g & ~g.T
        skel = g | g.T
        for b, c in zip(*np.nonzero(und)):
            if not (g[b, c] and g[c, b]):  # oriented earlier in this sweep
                continue
            # R1: some a -> b with a not adjacent to c
            r1 = dire[:, b] & ~skel[:, c]
            r1[c] = False
            # R2: some chain b -> k -> c
            r2 = dire[b, :] & dire[:, c]
            # R3: two non-adjacent k, l with b — k -> c and b — l -> c
            cand = np.nonzero(und[b, :] & dire[:, c])[0]
            r3 = any(not skel[k, l] for i, k in enumerate(cand) for l in cand[i + 1:])
            if r1.any() or r2.any() or r3:
                g[c, b] = False  # b -> c
                changed = True
                und = g & g.T
                dire = g & ~g.T
    return g.astype(np.int8)


def dag_to_cpdag(dag: Graph) -> Graph:
    """The CPDAG (essential graph) of a DAG: keep v-structure edges directed, close under Meek."""
    d = dag.directed
    if (dag.undirected).any():
        raise ValueError("dag_to_cpdag: the input has undirected edges")
    skel = d | d.T
    adj = skel.astype(np.int8)  # start with every edge undirected
    for b in range(len(dag.nodes)):
        parents = np.nonzero(d[:, b])[0]
        for i, a in enumerate(parents):
            for c in parents[i + 1:]:
                if not skel[a, c]:  # a -> b <- c with a, c not adjacent: a v-structure
                    adj[b, a] = adj[b, c] = 0
    return Graph(dag.nodes, meek_closure(adj))


def _edge_codes(g: Graph) -> np.ndarray:
    """Per ordered pair: 0 no edge, 1 ``i -> j``, 2 ``j -> i``, 3 ``i — j``."""
    a = g.adj.astype(np.int8)
    return a + 2 * a.T


def shd(truth: Graph, est: Graph) -> int:
    """Structural Hamming distance: node pairs whose edge (absent / i->j / j->i / i—j) differs."""
    est = est.reorder(truth.nodes)
    diff = _edge_codes(truth) != _edge_codes(est)
    return int(np.triu(diff, 1).sum())


def skeleton_scores(truth: Graph, est: Graph) -> tuple[float, float, float]:
    """(precision, recall, F1) of the estimated adjacencies; 0 where a denominator is 0."""
    est = est.reorder(truth.nodes)
    t, e = np.triu(truth.skeleton, 1), np.triu(est.skeleton, 1)
    tp = int((t & e).sum())
    precision = tp / int(e.sum()) if e.any() else 0.0
    recall = tp / int(t.sum()) if t.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return precision, recall, f1
