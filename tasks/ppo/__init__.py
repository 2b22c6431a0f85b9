"""ppo — provisional spec (docstring written after measurement)."""

from __future__ import annotations

from advbench.spec import Budget, Metric, Target, TaskSpec

SPEC = TaskSpec(
    name="ppo",
    version=1,
    title="Proximal policy optimisation, continuous actions",
    summary="PPO from scratch on gymnasium Pendulum-v1 (and MountainCarContinuous, InvertedPendulum); mean return of 50 deterministic episodes on held-out seeds.",
    variants={
        "pendulum": "Pendulum-v1: swing up and balance, 200 steps, torque in [-2, 2]",
        "mountaincar": "MountainCarContinuous-v0: reach the flag (+100), 999 steps, force in [-1, 1]",
        "inverted_pendulum": "InvertedPendulum-v5 (MuJoCo, needs `pip install mujoco`): balance for 1000 steps",
    },
    metrics=(
        Metric("mean_return", "return", True, "undiscounted return, mean over the 50 evaluation episodes"),
        Metric("iqm_return", "return", True, "interquartile mean of the same 50 returns"),
        Metric("return_std", "return", False, "standard deviation of the same 50 returns (spread, not a goal)"),
    ),
    primary_metric="mean_return",
    targets=(
        Target("mean_return", -700.0, "quick", "pendulum"),
        Target("mean_return", -250.0, "full", "pendulum"),
    ),
    budgets={
        "quick": Budget("quick", max_seconds=300, limits={"env_steps": 40_000}, variants=("pendulum",)),
        "full": Budget("full", max_seconds=600, limits={"env_steps": 200_000}, variants=("pendulum", "mountaincar")),
    },
    profiles=("cpu", "cuda"),
    throughput_unit="env steps/s",
    entry_point="advbench.tasks.ppo.heldout:PPOTask",
    solution="object with act(obs: float32[n, obs_dim]) -> float32[n, act_dim], deterministic",
    data="gymnasium environments; 50 evaluation episodes on seeds >= 10**6 from the seal",
    extras=("rl",),
)
