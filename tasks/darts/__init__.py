"""darts — differentiable architecture search (Liu et al. 2019) on digits.

Data: scikit-learn's ``load_digits`` as 1×8×8 images; a 30% stratified test split held out (from
the seal), the method searches on the other 70% (``contract.SearchData``), which DARTS halves into
a weight half and an architecture half.

Space (``contract``): one cell type used by both of the network's 2 cells; 3 intermediate nodes,
9 candidate edges, C = 16 channels at 8×8, operations ``none, skip, conv3, conv5, dil3, max3,
avg3``. A method returns a genotype (two inputs and an operation each, per node); the **harness**
builds that network and trains it from scratch on all 70% with one fixed recipe
(``contract.RETRAIN``: SGD with momentum, cosine, 20 epochs) under three retraining seeds of its
own (from the seal), and scores the test accuracy of each. So the board compares architectures,
never training effort.

Scoring: the solution is data, ``genotype()``, taken in the method's own process at each checkpoint,
on the training clock, and decoded by the harness as plain data: no process opens it and no code of
it runs in scoring. The harness builds, retrains and tests the network with its own code; nothing
needs the clean scoring process. Throughput (search images/s) is the method's own ``ctx.count``,
and records and boards say so.

Metrics: ``test_accuracy`` (primary: mean over the three retrainings), its min and max, the derived
network's ``parameters`` and how many of its 6 operations are parameter-free
(``parameter_free_ops``: DARTS's known failure is a cell of skips and pools), and the harness's
``retrain_seconds`` per retraining. The search cost is the record's training time.

Methods: ``reference`` = first-order DARTS, ``second-order`` = DARTS through one virtual weight
step with the finite-difference mixed derivative, ``floor`` = a random cell from the same space
(Li & Talwalkar 2019). Budgets: ``search_epochs`` 4 (quick) and 30 (full). Targets: quick
``test_accuracy`` ≥ 0.97 (TASKS.md); full ≥ 0.98. TASKS.md asks for at least the median random
architecture, which is a comparison of two distributions, not a bar one run can clear: it was 0.99
until re-made records put one DARTS seed at 0.9895 against a random median of 0.993, one test image
in 540 either way. It is tested as such on the committed records (DARTS's mean over seeds against
the random cells' median), and the per-run bar is set where it separates DARTS's known failure: a
cell of skips retrains to 0.974-0.980 (seeds 0, 1), a cell of max pools to 0.975-0.976. On digits
it does not separate random cells, nor a cell of average pools (0.984-0.990): the space is
saturated once the harness retrains a cell properly, which the sealed glyph digits are to change.

Measured (sealed full records, one thread, records under ``results/runs/darts-v1``; a second sweep
shared the 2 cores for most of them, so the times are upper bounds): first-order DARTS, seeds 0-4,
``test_accuracy`` 0.9912 on average (0.9883-0.9932; 5 of 5 meet 0.98), 1.8 of 6 operations
parameter-free, 49.8 k parameters, 74-158 s of search; second order, seeds 0-2, 0.9924
(0.9895-0.9944), 182-189 s; random cells, seeds 0-14, 0.9908 on average, median 0.9907
(0.9858-0.9951; 15 of 15 meet 0.98), 3.0 of 6 operations parameter-free, 26.7 k parameters. DARTS's
cells match the median random cell (0.9912 against 0.9907: under one test image in 540), as Li &
Talwalkar found on larger spaces: on 8x8 digits the space is nearly saturated once the harness
retrains a cell properly. What the search changes is the cell: convolutions where random draws take
pools and skips half the time, and twice the parameters. The second-order hypergradient costs about
1.5 times the search time for no significant gain here.

Sealing (what is sealed, what is public): the test split and the three retraining seeds come from
the seal; the images are scikit-learn's public digits, so the held-out rows are the rest of its
copy. The derived cell is retrained from scratch by the harness, so a lookup cannot be handed in as
a cell; but a method could select a cell by its accuracy on the public test rows. The sealed glyph
digits (``advbench.glyphs``) are to replace them in a later version.
"""

from __future__ import annotations

from advbench.spec import Budget, Metric, Target, TaskSpec

SPEC = TaskSpec(
    name="darts",
    version=1,
    title="Differentiable architecture search (DARTS)",
    summary="DARTS over a 2-cell, 3-node, 7-operation space on 8x8 digits; the derived cell retrained from "
            "scratch by the harness under three sealed seeds, against random cells of the same space.",
    variants={"digits": "sklearn load_digits as 1x8x8; 70% to search on, 30% sealed test"},
    metrics=(
        Metric("test_accuracy", "accuracy", True, "test accuracy of the derived cell retrained from scratch, mean of "
                                                  "three harness retrainings", min_effect=0.005),
        Metric("test_accuracy_min", "accuracy", True, "the worst of the three retrainings"),
        Metric("test_accuracy_max", "accuracy", True, "the best of the three retrainings"),
        Metric("parameters", "count", False, "parameters of the derived network"),
        Metric("parameter_free_ops", "count", False, "skip and pooling operations among the cell's 6"),
        Metric("retrain_seconds", "s", False, "harness seconds per retraining"),
    ),
    primary_metric="test_accuracy",
    targets=(
        Target("test_accuracy", 0.97, "quick", "digits"),
        Target("test_accuracy", 0.98, "full", "digits"),
    ),
    budgets={
        "quick": Budget("quick", max_seconds=240, limits={"search_epochs": 4}, variants=("digits",)),
        "full": Budget("full", max_seconds=600, limits={"search_epochs": 30}, variants=("digits",)),
    },
    profiles=("cpu",),
    throughput_unit="search images/s",
    entry_point="advbench.tasks.darts.heldout:DARTSTask",
    solution_data=("genotype",),
    solution="contract.Genotype: genotype() -> 3 nodes of (input_a, op_a, input_b, op_b)",
    data="sklearn load_digits as 1x8x8; 30% stratified test split from the seal",
    extras=("vision",),
)
