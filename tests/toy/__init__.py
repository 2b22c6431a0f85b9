"""A tiny task, registered in-process by the tests, to exercise the harness without torch.

Estimate the mean of a Gaussian from training draws; the held-out truth is the mean itself. It is
laid out as a real task is: the spec here, the public contract in ``contract.py``, the held-out
code in ``heldout.py``.
"""

from advbench.spec import Budget, Metric, Target, TaskSpec

SPEC = TaskSpec(
    name="toy",
    version=3,
    title="Toy mean estimation",
    summary="Estimate a Gaussian mean from samples.",
    variants={"easy": "sigma 1", "hard": "sigma 10"},
    metrics=(Metric("abs_error", "units", False, "|estimate - mean|"), Metric("hit", "fraction", True)),
    primary_metric="abs_error",
    targets=(Target("abs_error", 0.1, "quick", "easy"), Target("abs_error", 0.01, "full", "easy")),
    budgets={"quick": Budget("quick", 1.0, {"samples": 2000}, ("easy",)),
             "full": Budget("full", 1.0, {"samples": 20000}, ("easy", "hard"))},
    profiles=("cpu",),
    throughput_unit="samples/s",
    entry_point="toy.heldout:ToyTask",
    reference_method="estimate",
    floor_method="zero",
    evaluation_cpu_seconds=0.05,  # a number, or estimate() of an object: next to nothing
)
