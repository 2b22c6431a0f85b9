"""pc — causal discovery with the PC algorithm: recover a CPDAG from observational samples.

Data. Every variant's graph is made under the run's seal, so no true graph exists in any file.
The discrete variants are Bayesian networks in the *shape* of three real ones bundled in pgmpy's
wheel (``pgmpy/utils/example_models/*.bif.gz``, read with ``BIFReader``): ``sachs-like`` (11
nodes, 3 states each), ``child-like`` (20 nodes, 2-6 states), ``alarm-like`` (37 nodes, 2-4 states)
keep each real node's in-degree and number of states, and nothing else: the topological order,
each node's parents, the conditional tables (log-linear: each parent adds a random effect, std
``CPT_SCALE`` 1.5, to the child's state logits, so every parent matters on its own) and the column
order are drawn from the seal; nodes are named ``X1``... by column. n = 5000 rows
(``budget.limits["samples"]``) are forward-sampled from it. The ``gaussian`` variant is a
linear-Gaussian SEM on a random DAG drawn from the seal: 20 nodes, each of the 190 possible edges
present with probability 2.5 / 19 (expected degree 2.5), weights uniform in +-[0.5, 1.5],
unit-variance Gaussian noise, columns standardised, nodes shuffled so that column order is not a
topological order. Discrete variants call for a chi-square test, ``gaussian`` for Fisher's z
(``Dataset.kind`` says which).

What the method sees (``Problem.train``): a :class:`~.contract.Dataset` — the sample matrix, the
node names, the kind of data and, for discrete data, the number of states of each variable. The
true DAG and its CPDAG stay in ``Problem.heldout``.

Sealing. In a ``--sealed`` run every graph, table and sample comes from a keyed stream (unsealed:
from the public seed, reproducible from the record), so the true graph can be neither regenerated
from the seed nor looked up: v1 scored on SACHS, CHILD and ALARM themselves, and reading the truth
from pgmpy's copy gave F1 1.0 and SHD 0 on all three, sealed. On v2's networks the same lookup has
nothing to read (their nodes are ``X1``..., their structure drawn per key); ``tests/test_pc.py``
scores the bundled networks' true graphs, mapped onto v2's nodes in the most favourable way a
lookup could guess, below the reference.

Solution: a :class:`~.contract.Graph` — the estimated CPDAG over the same node names.
``adj[i, j] = 1`` and ``adj[j, i] = 0`` is ``i -> j``; ``adj[i, j] = adj[j, i] = 1`` is ``i — j``
(undirected); both 0 is no edge. Bidirected edges cannot be expressed: a method resolves
conflicting orientations itself. The harness asks it for ``Graph.arrays()`` (node names and the
matrix, as plain data: the only call into solution code) and rebuilds and validates the ``Graph``
on its side, where the metrics are computed: a matrix with entries other than 0 and 1 (NaN included) is an error, never
cast.

Metrics, against the true CPDAG (the DAG's Markov equivalence class, computed here from the DAG
by its v-structures and Meek's rules; the data cannot tell more): ``shd`` counts node pairs
whose edge differs (missing, extra, or marked differently: reversed, or directed where the truth
is undirected and vice versa), one per pair, as causal-learn's ``SHD`` does on CPDAGs;
``skeleton_precision / recall / f1`` compare adjacencies only, ignoring marks (precision of an
empty graph is 0).

Targets, measured with the reference baseline (stable PC, alpha 0.01, chi-square / Fisher's z; it
gives the same skeleton and CPDAG as causal-learn's ``pc`` on the same data, which the tests
check) at n = 5000 on 100 graphs per variant, each sealed under a key of its own. A seed draws a
new graph, and F1 varies with the graph more than with anything a method does, so each bar sits
just below the worst of the 100 (minimum / 1st percentile / median):

* quick (and full): ``sachs-like`` skeleton F1 >= 0.85 (0.867 / 0.909 / 1.00) and ``child-like``
  >= 0.83 (0.837 / 0.844 / 0.958). The full budget repeats them so that a full run of these
  variants has a bar to meet.
* full: ``alarm-like`` skeleton F1 >= 0.88 (0.892 / 0.905 / 0.956) and SHD <= 30 (largest 28,
  median 17). On v1's real ALARM the reference gave F1 0.911-0.966 and SHD 5-16: a random DAG of
  the same in-degrees has more v-structures to orient, and a wrong or missed one counts in SHD.
  A first choice, bars at the worst of 20 unsealed seeds (0.93 / 0.88 / 0.87 and SHD 28), was
  missed by 2 of 5 sealed seeds: 20 graphs do not show the tail.
* ``gaussian`` has no target: its graph is redrawn with every seed, and F1 varies with it
  (0.71-1.00 over seeds 0-29, median 0.94; SHD 0-28), so any fixed bar would measure the seed.

Versions: ``pc-v2`` (this) scores on networks made under the seal in the shape of SACHS, CHILD and
ALARM (variants ``sachs-like``, ``child-like``, ``alarm-like``) instead of the bundled networks,
whose true graphs are public; ``gaussian`` and the metrics are v1's. Records never mix versions.

Modules: ``contract`` (``Graph``, ``Dataset``, the graph algorithms and metrics;
what a method imports) and ``heldout`` (data generation and the scoring; harness only).
"""

from __future__ import annotations

from advbench.spec import Budget, Metric, Target, TaskSpec

SPEC = TaskSpec(
    name="pc",
    version=2,
    title="Causal discovery with the PC algorithm",
    summary="Recover the CPDAG of a Bayesian network / linear-Gaussian SEM from 5000 samples; skeleton F1 and SHD.",
    variants={
        "sachs-like": "a network made under the seal in SACHS's shape (11 nodes, 17 edges, 3 states), 5000 samples, chi-square",
        "child-like": "a network made under the seal in CHILD's shape (20 nodes, 25 edges, 2-6 states), 5000 samples, chi-square",
        "alarm-like": "a network made under the seal in ALARM's shape (37 nodes, 46 edges, 2-4 states), 5000 samples, chi-square",
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
        Target("skeleton_f1", 0.85, "quick", "sachs-like"),
        Target("skeleton_f1", 0.83, "quick", "child-like"),
        Target("skeleton_f1", 0.85, "full", "sachs-like"),
        Target("skeleton_f1", 0.83, "full", "child-like"),
        Target("skeleton_f1", 0.88, "full", "alarm-like"),
        Target("shd", 30, "full", "alarm-like"),
    ),
    budgets={
        # ``samples`` is the number of rows the task draws; ``max_condition_set`` caps the size of
        # the conditioning sets a method may test. The reference needs up to 7 on child (a node of
        # degree 8), so the cap does not bind on these variants; it guards against runaway searches.
        "quick": Budget("quick", max_seconds=120, limits={"samples": 5000, "max_condition_set": 8},
                        variants=("sachs-like", "child-like")),
        "full": Budget("full", max_seconds=600, limits={"samples": 5000, "max_condition_set": 8},
                       variants=("alarm-like", "sachs-like", "child-like", "gaussian")),
    },
    profiles=("cpu",),
    throughput_unit="CI tests/s",
    entry_point="advbench.tasks.pc.heldout:PCTask",
    solution_data=("arrays",),
    solution="advbench.tasks.pc.contract.Graph: node names + 0/1 matrix adj; adj[i,j]=1,adj[j,i]=0 is i->j; "
             "both 1 is i—j",
    data="discrete networks made under the seal in the shape of pgmpy's SACHS, CHILD, ALARM, forward-sampled; "
         "linear-Gaussian SEM on a sealed random DAG (gaussian)",
    extras=("causal",),
    harness_uses_torch=False,
)
