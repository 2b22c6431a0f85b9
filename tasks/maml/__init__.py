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

Methods: ``reference`` = second-order MAML (inner gradient through ``torch.func.grad``, the meta-batch
under ``vmap``), ``first-order`` = first-order MAML, ``floor`` = joint pretraining on pooled tasks,
adapted the same way. Budgets: ``meta_iterations`` of 25 tasks, quick QUICK_ITERS (k10), full
FULL_ITERS (both variants). Targets (TASKS.md): quick 10-shot ``mse_1step`` ≤ 1.5 (and below the
floor: a test), full 10-shot ``mse_1step`` ≤ 0.8 and ``mse_10step`` ≤ 0.6 (Meta-SGD's table reports
MAML at about 0.77). FULL_RESULTS
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
        "quick": Budget("quick", max_seconds=240, limits={"meta_iterations": 2000}, variants=("k10",)),
        "full": Budget("full", max_seconds=600, limits={"meta_iterations": 20_000}, variants=("k5", "k10")),
    },
    profiles=("cpu",),
    throughput_unit="tasks/s",
    entry_point="advbench.tasks.maml.heldout:MAMLTask",
    solution="contract.MetaInitialisation: parameters() -> dict of the 1-40-40-1 network's weights, inner_lr()",
    data="generated sinusoids (the MAML paper's distribution); 600 evaluation tasks from the seal",
)
