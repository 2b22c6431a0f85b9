"""pc — causal discovery with the PC algorithm: recover a CPDAG from observational samples.

Data. Discrete variants sample n = 5000 rows (``budget.limits["samples"]``) by forward sampling
from real Bayesian networks bundled in pgmpy's wheel (``pgmpy/utils/example_models/*.bif.gz``,
read with ``BIFReader``; nothing is downloaded): ``sachs`` (11 nodes, 17 edges, 3 states each),
``child`` (20 nodes, 25 edges), ``alarm`` (37 nodes, 46 edges). States are integer codes in the
order the BIF file declares them. The ``gaussian`` variant is a linear-Gaussian SEM on a random
DAG drawn from the seed: 20 nodes, each of the 190 possible edges present with probability
2.5 / 19 (expected degree 2.5), weights uniform in +-[0.5, 1.5], unit-variance Gaussian noise,
columns standardised, nodes shuffled so that column order is not a topological order. Discrete
variants call for a chi-square test, ``gaussian`` for Fisher's z (``Dataset.kind`` says which).

What the method sees (``Problem.train``): a :class:`Dataset` — the sample matrix, the node names,
the kind of data and, for discrete data, the number of states of each variable. The true DAG and
its CPDAG stay in ``Problem.heldout``.

Solution: a :class:`Graph` — the estimated CPDAG over the same node names. ``adj[i, j] = 1`` and
``adj[j, i] = 0`` is ``i -> j``; ``adj[i, j] = adj[j, i] = 1`` is ``i — j`` (undirected); both 0 is
no edge. Bidirected edges cannot be expressed: a method resolves conflicting orientations itself.

Metrics, against the true CPDAG (the DAG's Markov equivalence class, computed here from the DAG
by its v-structures and Meek's rules; the data cannot tell more): ``shd`` counts node pairs
whose edge differs (missing, extra, or marked differently: reversed, or directed where the truth
is undirected and vice versa), one per pair, as causal-learn's ``SHD`` does on CPDAGs;
``skeleton_precision / recall / f1`` compare adjacencies only, ignoring marks (precision of an
empty graph is 0).

Targets, measured with the reference baseline (stable PC, alpha 0.01, chi-square / Fisher's z; it
gives the same skeleton and CPDAG as causal-learn's ``pc`` on the same data, which the tests
check) on 2 cores at n = 5000, seeds 0-19 for alarm and 0-9 for the others:

* quick (and full): ``sachs`` and ``child`` skeleton F1 >= 0.95 (measured: sachs 0.97-1.00, child
  0.98-1.00; about 0.1 s and 0.5 s of search). The full budget repeats them so that a full run of
  these variants has a bar to meet.
* full: ``alarm`` skeleton F1 >= 0.90 and SHD <= 16. The first proposal, F1 >= 0.94 and SHD <= 14,
  came from one causal-learn run (F1 0.955, SHD 13) and is met by only 10 of 20 seeds here: over
  seeds 0-19 F1 is 0.911-0.966 (median 0.943) and SHD 5-16 (median 8.5); seed 0 gives 0.955 and 6.
  A target the reference misses on half its seeds measures the seed, not the method, so the bar
  sits at the worst of 20 seeds. About 1 s of search.
* ``gaussian`` has no target: its graph is redrawn with every seed, and F1 varies with it
  (0.71-1.00 over seeds 0-29, median 0.94; SHD 0-28), so any fixed bar would measure the seed.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from advbench.spec import Budget, Metric, Target, TaskSpec
from advbench.task import Problem

NETWORKS = ("sachs", "child", "alarm")  # discrete variants, named after the pgmpy example files
N_SAMPLES = 5000
GAUSS_NODES, GAUSS_DEGREE, GAUSS_WEIGHTS = 20, 2.5, (0.5, 1.5)

SPEC = TaskSpec(
    name="pc",
    version=1,
    title="Causal discovery with the PC algorithm",
    summary="Recover the CPDAG of a Bayesian network / linear-Gaussian SEM from 5000 samples; skeleton F1 and SHD.",
    variants={
        "sachs": "pgmpy's SACHS network (11 nodes, 17 edges, 3 states), 5000 samples, chi-square",
        "child": "pgmpy's CHILD network (20 nodes, 25 edges, 2-6 states), 5000 samples, chi-square",
        "alarm": "pgmpy's ALARM network (37 nodes, 46 edges, 2-4 states), 5000 samples, chi-square",
        "gaussian": "linear-Gaussian SEM on a seeded random 20-node DAG (degree 2.5), 5000 samples, Fisher-z",
    },
    metrics=(
        Metric("skeleton_f1", "fraction", True, "F1 of the estimated adjacencies against the true skeleton"),
        Metric("shd", "edges", False, "structural Hamming distance to the true CPDAG (one per differing pair)"),
        Metric("skeleton_precision", "fraction", True, "share of estimated adjacencies that are true"),
        Metric("skeleton_recall", "fraction", True, "share of true adjacencies that were found"),
    ),
    primary_metric="skeleton_f1",
    targets=(
        Target("skeleton_f1", 0.95, "quick", "sachs"),
        Target("skeleton_f1", 0.95, "quick", "child"),
        Target("skeleton_f1", 0.95, "full", "sachs"),
        Target("skeleton_f1", 0.95, "full", "child"),
        Target("skeleton_f1", 0.90, "full", "alarm"),
        Target("shd", 16, "full", "alarm"),
    ),
    budgets={
        # ``samples`` is the number of rows the task draws; ``max_condition_set`` caps the size of
        # the conditioning sets a method may test. The reference needs up to 7 on child (a node of
        # degree 8), so the cap does not bind on these variants; it guards against runaway searches.
        "quick": Budget("quick", max_seconds=120, limits={"samples": N_SAMPLES, "max_condition_set": 8},
                        variants=("sachs", "child")),
        "full": Budget("full", max_seconds=600, limits={"samples": N_SAMPLES, "max_condition_set": 8},
                       variants=("alarm", "sachs", "child", "gaussian")),
    },
    profiles=("cpu",),
    throughput_unit="CI tests/s",
    entry_point="advbench.tasks.pc:PCTask",
    solution="advbench.tasks.pc.Graph: node names + 0/1 matrix adj; adj[i,j]=1,adj[j,i]=0 is i->j; both 1 is i—j",
    data="pgmpy's bundled BIF networks (sachs, child, alarm) forward-sampled; seeded linear-Gaussian SEM (gaussian)",
    extras=("causal",),
)


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
        adj = np.array(self.adj, dtype=np.int8)  # a copy: the graph owns its matrix
        p = len(nodes)
        if len(set(nodes)) != p:
            raise ValueError("Graph: node names must be unique")
        if adj.shape != (p, p):
            raise ValueError(f"Graph: adj has shape {adj.shape}, expected {(p, p)} for {p} nodes")
        if not np.isin(adj, (0, 1)).all():
            raise ValueError("Graph: adj entries must be 0 or 1")
        if np.diagonal(adj).any():
            raise ValueError("Graph: adj must have a zero diagonal (no self-loops)")
        adj.setflags(write=False)
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "adj", adj)

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


def sample_network(name: str, n: int, seed: int) -> tuple[Dataset, Graph]:
    """Forward-sample ``n`` rows from a bundled BIF network; return the data and the true DAG."""
    import warnings
    from importlib.metadata import version

    path = network_path(name)
    global_state = np.random.get_state()  # pgmpy's sampler reseeds numpy's global RNG: restore it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecation notices of pgmpy's own modules
        from pgmpy.readwrite import BIFReader

        reader = BIFReader(string=gzip.decompress(path.read_bytes()).decode())
        model = reader.get_model()
        try:
            df = model.simulate(n_samples=n, seed=seed, show_progress=False)
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
    source = f"pgmpy {version('pgmpy')} utils/example_models/{name}.bif.gz, forward-sampled, seed {seed}"
    card = tuple(len(states[v]) for v in nodes)
    return Dataset(data=data, nodes=nodes, kind="discrete", cardinalities=card, source=source), dag


def gaussian_sem(n: int, seed: int, p: int = GAUSS_NODES, degree: float = GAUSS_DEGREE) -> tuple[Dataset, Graph]:
    """A linear-Gaussian SEM on a random DAG: X_j = sum_i w_ij X_i + N(0, 1), then standardised."""
    rng = np.random.default_rng([seed, 11])
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
    source = (f"linear-Gaussian SEM, {p} nodes, edge probability {prob:.3f}, weights +-U{GAUSS_WEIGHTS}, "
              f"N(0,1) noise, standardised, seed {seed}")
    return Dataset(data=x, nodes=nodes, kind="continuous", source=source), dag


# ---------------------------------------------------------------------------------------------
# The task
# ---------------------------------------------------------------------------------------------

class PCTask:
    def build(self, *, variant: str, seed: int, budget: Budget) -> Problem:
        n = int(budget.limits.get("samples", N_SAMPLES))
        if variant in NETWORKS:
            train, dag = sample_network(variant, n, seed)
        elif variant == "gaussian":
            train, dag = gaussian_sem(n, seed)
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

    def evaluate(self, solution: Any, problem: Problem, profile: Any) -> dict[str, float]:
        truth: Graph = problem.heldout["cpdag"]
        if not isinstance(solution, Graph):
            if not (hasattr(solution, "nodes") and hasattr(solution, "adj")):
                raise TypeError(f"pc: a solution must be advbench.tasks.pc.Graph, got {type(solution).__name__}")
            solution = Graph(tuple(solution.nodes), np.asarray(solution.adj))
        precision, recall, f1 = skeleton_scores(truth, solution)
        return {"skeleton_f1": f1, "shd": float(shd(truth, solution)),
                "skeleton_precision": precision, "skeleton_recall": recall}
