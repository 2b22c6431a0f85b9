"""maml — model-agnostic meta-learning (Finn et al. 2017) on the paper's sinusoid regression.

Data, generated: tasks ``y = A sin(x - φ)`` with ``A ~ U[0.1, 5]``, ``φ ~ U[0, π]``, ``x ~ U[-5, 5]``.
A method meta-trains on as many tasks as it draws from ``contract.SinusoidFamily.sample`` with its
own generator; the harness keeps 600 evaluation tasks (``k_shot`` support and 100 query points each)
drawn from the seal. Variants: ``k5`` and ``k10`` shots.

A method returns the initial weights of the contract's fixed 1-40-40-1 ReLU network and its inner
learning rate; the harness itself adapts them to each evaluation task with plain gradient steps on
the support MSE (``contract.adapt``) and scores the query MSE after 1 and after 10 steps:
``mse_1step`` (primary) and ``mse_10step``, the mean over the 600 tasks, each with the half-width of
its 95% confidence interval over tasks (``*_ci95``, scipy's t interval); ``mse_0step`` is the
unadapted error. Because the harness runs the steps, the step count cannot be gamed.

Scoring: the solution is data, ``parameters()`` and ``inner_lr()``, taken in the method's own
process at each checkpoint, on the training clock, and decoded by the harness as plain data: no
process opens it and no code of it runs in scoring. The harness adapts the weights and computes the
metrics with its own code; nothing needs the clean scoring process. Throughput (tasks/s) is the
method's own ``ctx.count``, and records and boards say so.

Methods: ``reference`` = second-order MAML (inner gradient through ``torch.func.grad``, the meta-batch
under ``vmap``), ``first-order`` = first-order MAML, ``floor`` = joint pretraining on pooled tasks,
adapted the same way. Each hands in the inner rate it checked on 20 000 tasks of its own: the
largest 0.01·0.9^j under which ten plain steps leave no support loss ten times above its start. An
initialisation meta-trained for one step of 0.01 can be sharp enough that ten steps diverge on a
rare task (support points bunched at one end of [-5, 5]): one full-budget seed scored mse_10step
562 over 600 sealed tasks, from a single task at 3e5, before the check.

Budgets: ``meta_iterations`` of 25 tasks, quick 1500 (k10; 2000 until 2026-12-06: 1500
iterations end at 1.02-1.07 on seeds 0-2, past the bar by 900-1050), full 20 000 (both variants). Targets (TASKS.md): quick 10-shot ``mse_1step`` ≤ 1.5 (and below the
floor: a test), full 10-shot ``mse_1step`` ≤ 0.8 and ``mse_10step`` ≤ 0.6 (Meta-SGD's table reports
MAML at about 0.77).

Measured (sealed full records, seeds 0-4, one thread, a second sweep sharing the 2 cores; mean
over seeds, range): 10 shots, MAML ``mse_1step`` 0.440 (0.393-0.502; each run's 95% CI over its 600
tasks about ±0.04), ``mse_10step`` 0.119 (0.108-0.127), handed-in inner rates 0.0066-0.01;
first-order 0.520 (0.465-0.567) and 0.137; the joint floor 2.36 and 1.61. 5 shots: MAML 0.744 and
0.379 (rates 0.0053-0.0081: five support points leave sharper initialisations), first-order 0.822
and 0.412, floor 2.51 and 2.28. MAML reached the 10-shot target after 7.6-14.5 s of training (about
70 s for the whole budget, 7100 tasks/s, 0.9 GiB peak: the step-size check adapts 2000 tasks at a
time). With the rate fixed at 0.01 (the records before the check), MAML's 10-shot ``mse_1step`` was
0.378 on average, and one seed's ``mse_10step`` 562.

The meta-gradient of a 25-task meta-batch under ``vmap``: 345 meta-batches/s against 49 for the
per-task autograd loop, 7.0 times (``pytest tests/test_maml.py --benchmark-enable -k bench_vmap -s``).

Sealing (what is sealed, what is public): the 600 evaluation tasks (amplitude, phase, support and
query points) come from the seal; the task distribution is the MAML paper's, public, as it must be
for meta-learning. The harness adapts the solution itself on each task's support points and scores
the query points, which no file holds, so no lookup reproduces them.
"""

from __future__ import annotations

from advbench.spec import Budget, Metric, Target, TaskSpec

SPEC = TaskSpec(
    name="maml",
    version=1,
    title="Meta-learning (MAML)",
    summary="Sinusoid regression from 5 or 10 points: meta-learnt initial weights, adapted by the harness "
            "with 1 and 10 gradient steps on 600 held-out tasks.",
    variants={
        "k5": "5 support points per task; 600 sealed evaluation tasks, 100 query points each",
        "k10": "10 support points per task; 600 sealed evaluation tasks, 100 query points each",
    },
    metrics=(
        Metric("mse_1step", "MSE", False, "query MSE after one harness-run gradient step, mean over 600 tasks"),
        Metric("mse_10step", "MSE", False, "query MSE after ten harness-run gradient steps, mean over 600 tasks"),
        Metric("mse_0step", "MSE", False, "query MSE of the initial weights, unadapted"),
        Metric("mse_1step_ci95", "MSE", False, "half-width of the 95% t interval of mse_1step over tasks"),
        Metric("mse_10step_ci95", "MSE", False, "half-width of the 95% t interval of mse_10step over tasks"),
    ),
    primary_metric="mse_1step",
    targets=(
        Target("mse_1step", 1.5, "quick", "k10"),
        Target("mse_1step", 0.8, "full", "k10"),
        Target("mse_10step", 0.6, "full", "k10"),
    ),
    budgets={
        "quick": Budget("quick", max_seconds=240, limits={"meta_iterations": 1500}, variants=("k10",)),
        "full": Budget("full", max_seconds=600, limits={"meta_iterations": 20_000}, variants=("k5", "k10")),
    },
    profiles=("cpu", "cuda"),
    throughput_unit="tasks/s",
    entry_point="advbench.tasks.maml.heldout:MAMLTask",
    solution_data=("parameters", "inner_lr"),
    solution="contract.MetaInitialisation: parameters() -> dict of the 1-40-40-1 network's weights, inner_lr()",
    data="generated sinusoids (the MAML paper's distribution); 600 evaluation tasks from the seal",
)
