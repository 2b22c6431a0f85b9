"""nas — neural architecture search on a tabular benchmark: a REINFORCE controller against random search.

Data: a small NAS-Bench-201 built here (NAS-Bench-201 itself cannot be downloaded). The search
space (``contract.SPACE``) is an MLP on scikit-learn's 8x8 digits: depth 1-4 hidden layers x width
8/16/32/64/128 x activation relu/tanh/elu/sigmoid x dropout 0/0.2/0.5, 240 architectures. Every one
was trained with fixed seeds (full-batch Adam, 150 steps, lr 1e-2, weight decay 1e-4) on each of
3 stratified folds of the 1347 training digits of the shared split (``advbench.datasets.digits_split``
of seed 0, unsealed), and the table stores its 3-fold cross-validation accuracy and loss (on all
1347 training digits) and the mean accuracy of its three networks on the 450 test digits. The
table is built on first use (the 12 architectures of a depth x width group trained together, one
thread per group, groups side by side in one process per core: 113 s on this 2-core machine, 225 s
in one process; the work is multiply-bound, the deepest and widest group alone a fifth of it), cached in ``$ADVBENCH_CACHE`` or ``$XDG_CACHE_HOME/advbench`` (``~/.cache/advbench``)
under a name that carries ``TABLE_VERSION``, and rebuilt bit for bit when missing (a test rebuilds
two groups and compares). Records store the table's sha256 (``config.data.table_sha256``).

A method never trains: it asks ``ctx.ask(architecture)`` and the harness answers from the table
with the validation accuracy and loss only; the table and the test column stay in the harness
process (the oracle closes over them and logs every ask). The budget counts evaluations, asking
again included (``ctx.limits["evaluations"]``); an ask past it raises ``ValueError``. The method
returns ``contract.Choice`` (its pick, which it must have asked about, and its ask count).

Scores, from the ask log: the harness picks the best validation accuracy among the asked
architectures (ties: lower validation loss, then the earlier ask). ``test_accuracy`` (primary) is
that pick's test accuracy. ``regret`` is the *optimum's* test accuracy minus it, where the optimum
is the architecture the same rule picks from the whole table (the best a validation-only search can
do; it can be negative: a worse validation score may test better). ``regret_to_best_test`` is to
the best test accuracy of the table instead (never negative). ``regret_at_k`` is the regret of the
pick after k asks, ``regret_auc`` the mean regret of the best-so-far curve over asks 1..budget (a
search that stops early keeps its pick). The whole curve is stored in the record,
``config.data.best_so_far``. ``found_optimum`` is 1 when the final pick is the optimum.

Scoring: the solution is data, ``architecture()`` and ``asks()``, taken in the method's own process
at each checkpoint, on the training clock, and decoded by the harness as plain data: no process
opens it and no code of it runs in scoring. The harness scores the pick from its own table and ask
log; nothing needs the clean scoring process. Throughput (evaluations/s) is counted by the harness:
the asks its oracle answered (``counted_by: "harness"``), not the method's ``ctx.count``.

What this does not protect: the table is public by construction (the code and the data are in this
repository, as NAS-Bench-201 is public), so a method that trains networks itself, or reads the cache
file, is cheating in a way the harness does not detect; the sandbox only refuses to import
``heldout.py``, where the builder lives.

Methods: ``reference`` = REINFORCE (Williams 1992) with an LSTM controller (Zoph & Le 2017), an
exponential-moving-average baseline and an entropy bonus (0.05), reward = 10 x validation accuracy;
``floor`` = random search (distinct architectures in a random order). Both cache answers, so
resampling costs nothing; a controller that has collapsed onto cached architectures stops after
20 000 samples with part of its budget unused. Budgets: evaluations, quick 50, full 100.

The table (v2, sha256 ``dbf4aaaf...``, pinned in ``heldout.TABLE_SHA256``; v1's numbers had changed
under its version when the unsealed split beneath it moved, so v1's records no longer reproduce and
were replaced): the optimum by validation is row 110 (CV 0.9800, test 0.9763), which is also the
best test accuracy of the table. The second- and third-best by validation (rows 169, 170) test 0.07
points lower; 12 architectures test within 0.5 points of the optimum. Spearman correlation of
validation and test 0.96 over the table, 0.58 over the top 50 by validation.

Targets: TASKS.md's ``regret`` within 0.5 points, at 50 evaluations (quick) and at 100 (full). On
this table they do not separate the methods, and the board says so: REINFORCE meets them on 20 of
20 seeds (quick and full), random search on 19 of 20. What separates them is how fast regret
falls, ``regret_auc``, compared over 20 paired seeds by a test of the committed records.

Measured (sealed records through the runner, one thread, seeds 0-19, paired; a second sweep shared
the 2 cores, so times are upper bounds). Full (100 evaluations): REINFORCE ``regret_auc`` 0.0034
against random search's 0.0042, lower on 14 of 20 seeds (mean paired difference -0.0008; Wilcoxon
p = 0.35): lower on average, not significant at 20 seeds. Regret after 10 / 25 / 50 / 100 asks:
REINFORCE 0.0047 / 0.0018 / 0.0005 / 0.0000 (the optimum on 19 of 20 seeds, the runner-up on the
other), random 0.0053 / 0.0036 / 0.0020 / 0.0010 (the optimum on 8). REINFORCE asked 95.0 times on
average (61 at least: collapsed runs stop early, having found the optimum). Quick (50 evaluations):
``regret`` 0.0005 against 0.0020, ``regret_auc`` 0.0066 against 0.0071 (lower on 12 of 20 seeds).

Sealing (what is sealed, what is public): nothing held out is sealed yet. The table is built once
from the unsealed digits split of seed 0 (scikit-learn's public digits), and the test accuracies it
stores are a function of public data and public code: a method that builds the same table itself
(``heldout`` is closed to it, but the recipe is in this docstring) can find the best architecture
without asking the harness. The sealed-data issue moves the table to the sealed glyph digits, one
table per key, once the table builds fast enough to do so per run.
"""

from __future__ import annotations

from advbench.spec import Budget, Metric, Target, TaskSpec

SPEC = TaskSpec(
    name="nas",
    version=2,
    title="Neural architecture search (tabular)",
    summary="Search 240 digit MLPs (depth, width, activation, dropout) of a cached tabular benchmark by asking the "
            "harness for validation accuracies; scored on the test accuracy of the best-validation pick.",
    variants={
        "digits-mlp": "240 MLPs on sklearn load_digits (4 depths x 5 widths x 4 activations x 3 dropouts), "
                      "3-fold CV validation accuracy, 450 test digits",
    },
    metrics=(
        Metric("test_accuracy", "accuracy", True, "test accuracy of the best-validation architecture among those asked"),
        Metric("regret", "accuracy", False, "the table optimum's test accuracy (its best-validation architecture) "
                                            "minus test_accuracy"),
        Metric("regret_auc", "accuracy", False, "mean regret of the best-so-far pick over asks 1..budget"),
        Metric("regret_to_best_test", "accuracy", False, "the table's best test accuracy minus test_accuracy"),
        Metric("regret_at_10", "accuracy", False, "regret of the pick after 10 asks"),
        Metric("regret_at_25", "accuracy", False, "regret of the pick after 25 asks"),
        Metric("regret_at_50", "accuracy", False, "regret of the pick after 50 asks"),
        Metric("regret_at_100", "accuracy", False, "regret of the pick after 100 asks (full budget)"),
        Metric("validation_accuracy", "accuracy", True, "the pick's validation (3-fold CV) accuracy"),
        Metric("found_optimum", "fraction", True, "1 if the pick is the table's best-validation architecture"),
    ),
    primary_metric="test_accuracy",
    targets=(
        Target("regret", 0.005, "quick", "digits-mlp"),
        Target("regret", 0.005, "full", "digits-mlp"),
    ),
    budgets={
        "quick": Budget("quick", max_seconds=120, limits={"evaluations": 50}, variants=("digits-mlp",)),
        "full": Budget("full", max_seconds=300, limits={"evaluations": 100}, variants=("digits-mlp",)),
    },
    profiles=("cpu",),
    throughput_unit="evaluations/s",
    entry_point="advbench.tasks.nas.heldout:NASTask",
    solution_data=("architecture", "asks"),
    solution="contract.Choice: architecture() -> the picked architecture (asked about), asks() -> ctx.ask calls so far",
    data="a tabular benchmark built once and cached: 240 MLPs trained on sklearn's digits with fixed seeds "
         "(3-fold CV accuracy, test accuracy); the method sees validation numbers through ctx.ask only",
    extras=("vision",),  # torch + scikit-learn
)
