"""dp-fedavg — federated learning with differential privacy: record-level DP-SGD per client and
user-level DP-FedAvg. (Measured numbers are filled in below once the full runs are done.)"""

from __future__ import annotations

from advbench.spec import Budget, Metric, Target, TaskSpec

_LEVELS = {
    "record": "digits over 10 IID clients; every client runs DP-SGD (opacus) on its own records",
    "user": "make_classification(70000, 64, 20 informative, 10 classes, class_sep 1.5) over 1000 clients "
            "of 60; DP-FedAvg with Poisson client sampling",
}
_BUDGETS = {"eps1": "epsilon 1", "eps3": "epsilon 3", "eps8": "epsilon 8", "nonprivate": "no privacy (the ceiling)"}
VARIANTS = {f"{level}-{b}": f"{what}; {_BUDGETS[b]}, delta 1e-5" for level, what in _LEVELS.items() for b in _BUDGETS}

SPEC = TaskSpec(
    name="dp-fedavg",
    version=1,
    title="Federated learning with differential privacy",
    summary="Record-level DP-SGD per client on digits and user-level DP-FedAvg over 1000 synthetic clients; "
            "accuracy at epsilon 1, 3, 8 (delta 1e-5) and without privacy, epsilon recomputed by the harness.",
    variants=VARIANTS,
    metrics=(
        Metric("accuracy", "fraction", True, "global model's accuracy on the held-out test set"),
        Metric("epsilon", "epsilon", False, "epsilon of the run's privacy ledger under the accountant the method "
                                            "named, recomputed by the harness with opacus (absent when non-private)"),
        Metric("epsilon_rdp", "epsilon", False, "the same ledger under opacus' RDP accountant"),
        Metric("epsilon_prv", "epsilon", False, "the same ledger under opacus' PRV accountant (tighter)"),
        Metric("noise_multiplier", "sigma", False, "sigma: noise std over the clipping norm"),
        Metric("sample_rate", "probability", False, "Poisson rate: of a record in a client's batch, or of a client "
                                                    "in a round"),
        Metric("steps", "steps", False, "compositions the accountant counted (DP-SGD steps per client, or rounds)"),
        Metric("clip", "L2 norm", False, "clipping bound: of a per-example gradient, or of a client's update"),
    ),
    primary_metric="accuracy",
    targets=(
        Target("accuracy", 0.90, "quick", "record-eps8"),
        Target("accuracy", 0.85, "full", "record-eps3"),
        Target("accuracy", 0.74, "full", "user-eps3"),
    ),
    budgets={
        "quick": Budget("quick", max_seconds=240, limits={"record_rounds": 20, "user_rounds": 100},
                        variants=("record-eps8",)),
        "full": Budget("full", max_seconds=600, limits={"record_rounds": 20, "user_rounds": 300},
                       variants=tuple(VARIANTS)),
    },
    profiles=("cpu",),
    throughput_unit="client updates/s",
    entry_point="advbench.tasks.dp_fedavg.heldout:DPFedAvgTask",
    solution="object with predict(x: float32[n, features]) -> int labels[n] and privacy_ledger() -> dict "
             "(level, noise_multiplier, sample_rate, steps, delta, accountant, clip)",
    data="sklearn load_digits / 16 (25% stratified test split, sealed) over 10 clients; "
         "make_classification 70000 x 64 (10000 held out, sealed) over 1000 clients",
    extras=("privacy",),
)
