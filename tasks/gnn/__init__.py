"""gnn — graph classification with a graph convolutional network (Kipf & Welling 2017).

Data. PyG ships no offline graph-classification set (TUDataset downloads), so every variant is
generated from a fixed data seed (the dataset is the same for every run seed; see folds below):

* ``family``: 1000 graphs of 20-40 nodes, 250 from each of four random-graph families with matched
  mean degree ≈ 4 — Erdős–Rényi (p = 4/(n-1)), Barabási–Albert (m = 2), Watts–Strogatz (k = 4,
  p = 0.1) and a core-periphery stochastic block model (a quarter of the nodes in a dense core).
  Label = family. Only structure tells them apart.
* ``ba2motif``: BA-2Motif-style (Luo et al. 2020): a 25-node Barabási–Albert tree (m = 1) with one
  motif attached, a house (label 0) or a 5-cycle (label 1), 500 graphs each, made with PyG's
  ``ExplainerDataset`` (which draws from torch's and numpy's global generators: both are seeded
  from the data stream for the call and restored afterwards; in ``gnn-v1`` numpy's was not, and
  this variant then changed with every build).
* ``csl``: circulant skip-link graphs (Murphy et al. 2019): 41-node cycles with skip length in
  {2, 3, 4, 5, 6, 9, 11, 12, 13, 16}, 15 randomly relabelled graphs per class. Every node has degree
  4, so a GCN with degree features sees identical neighbourhoods everywhere and must stay at chance
  (0.1): a negative control. Accuracy clearly above chance would mean labels leak into the input.

Node features are one-hot degrees capped at 10 (constant features would hide most structure from a
GCN). Edges are undirected and stored in both directions.

Evaluation follows Errica et al. (2020): stratified 10-fold cross-validation, repeated. A run's
seed ``s`` is fold ``f = s % 10`` of repeat ``r = s // 10`` (``contract.fold_of_seed``); the method
gets the other nine folds of that repeat only. Repeat 0 is the partition of ``gnn-v1`` (the folds
drawn from the data stream right after the graphs), so seeds 0-9 keep their data; every further
repeat deals the same graphs into ten new stratified folds, from its own stream of the seal (``(variant
index, r)``; ``heldout.fold_rng``). ``advbench run --task gnn --seeds 10`` gives the 10-fold mean of
repeat 0, ``--seeds 30`` three repeats. (In ``gnn-v1`` a seed was ``seed % 10`` alone, so seeds 10-19
re-ran seeds 0-9's folds.)

Intervals: the ten folds of one repeat are not independent samples (any two share eight ninths of
their training graphs, and together they use every graph once), so a confidence interval over a
task's seeds must be computed over repeats, from the mean of each complete repeat's ten folds, with
as many degrees of freedom as there are repeats less one; not over the folds. The spec says so
(``seeds_per_replicate=10``), and the leaderboard's mean and 95% interval are over repeat means
(run whole repeats: ``--seeds`` a multiple of 10).

Sealing: unsealed, the graphs and the fold assignment of repeat 0 come from ``default_rng([DATA_SEED,
variant index])``, as before, and repeat ``r``'s from ``default_rng([DATA_SEED, variant index, r])``,
so anyone can regenerate the held-out fold from the public constants. In a ``--sealed`` run they
come from streams keyed by the seal's key (and ``DATA_SEED``, not the run seed, so the runs of seeds
0-9 under one key still share one data set and their test folds still partition it, as do those of
seeds 10-19 and so on), so the held-out graphs cannot be regenerated. What sealing cannot hide is the
generators: the families, motifs and skip lengths are public, and a method may well learn them;
that is the task.

Solution: any object with ``predict(graphs) -> int array`` over a list of
:class:`~.contract.GraphSample`, called in the scoring process on the held-out fold's graphs and
on the training graphs (for ``train_accuracy``), with labels stripped (``y = -1``) from both; the
accuracy is computed in the harness.

Scoring: the solution is code, asked only for ``predict(graphs)``. It runs in the jailed scoring
process, fresh for each evaluation of a sealed run, on label-stripped graphs; the harness computes
both accuracies from the plain labels it returns. Its CPU in one evaluation beyond 3x
``evaluation_cpu_seconds`` (1.0 s) is charged to training time; past 50x the evaluation is refused.
Throughput (graphs/s) is the method's own ``ctx.count``, and records and boards say so.

Targets: quick family >= 0.90 (one fold); full family >= 0.95 and ba2motif >= 0.95 per fold, and
CSL accuracy <= 0.20 (above that means leakage). Measured here with PyG's GCNConv (3 layers of 64,
mean pooling, Adam 1e-2, 60 epochs): family 5-fold accuracy 0.97 (0.955-0.99).

Versions: ``gnn-v2`` (this) makes seeds 10 and up new repeats of the CV instead of seeds 0-9's
folds again, and its BA-2Motif is one fixed data set (numpy's generator is seeded, see above; the
``gnn-v1`` records of it come from unseeded builds). Records of the two versions never mix.

Modules: ``contract`` (``GraphSample``, ``GraphDataset``, the degree features, ``fold_of_seed``;
what a method imports) and ``heldout`` (the generators, the folds and the scoring; harness only).
"""

from __future__ import annotations

from advbench.spec import Budget, Metric, Target, TaskSpec

SPEC = TaskSpec(
    name="gnn",
    version=2,
    title="Graph classification with GCN",
    summary=("Repeated stratified 10-fold accuracy (seed = 10 * repeat + fold) on generated graph families, "
             "BA-2Motif and the CSL control."),
    variants={
        "family": "1000 graphs, ER / BA / WS / SBM at mean degree 4, 20-40 nodes: which family?",
        "ba2motif": "1000 BA trees with a house or a 5-cycle attached: which motif?",
        "csl": "150 circulant skip-link graphs, 10 classes, all 4-regular: negative control (chance 0.1)",
    },
    metrics=(
        Metric("accuracy", "fraction", True, "accuracy on the held-out fold"),
        Metric("train_accuracy", "fraction", True, "accuracy on the method's nine training folds"),
    ),
    primary_metric="accuracy",
    targets=(
        Target("accuracy", 0.90, "quick", "family"),
        Target("accuracy", 0.95, "full", "family"),
        Target("accuracy", 0.95, "full", "ba2motif"),
        Target("accuracy", 0.20, "full", "csl", at_most=True),
    ),
    budgets={
        "quick": Budget("quick", max_seconds=240, limits={"epochs": 30}, variants=("family",)),
        "full": Budget("full", max_seconds=600, limits={"epochs": 60}, variants=("family", "ba2motif", "csl")),
    },
    profiles=("cpu", "cuda"),
    throughput_unit="graphs/s",
    entry_point="advbench.tasks.gnn.heldout:GNNTask",
    solution="object with predict(graphs: list[GraphSample]) -> int array of class labels",
    data=("generated with networkx and PyG's ExplainerDataset from a fixed seed; the run seed selects the CV "
          "repeat (seed // 10) and its test fold (seed % 10)"),
    extras=("graph",),
    seeds_per_replicate=10,  # a repeat of 10-fold CV is one replicate: the interval is over repeats
)
