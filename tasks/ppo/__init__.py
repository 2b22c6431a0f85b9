"""ppo — proximal policy optimisation (Schulman et al. 2017) on gymnasium's continuous-control tasks.

Environments (gymnasium 1.x): ``pendulum`` (``Pendulum-v1``, primary), ``mountaincar``
(``MountainCarContinuous-v0``) and ``inverted_pendulum`` (``InvertedPendulum-v5``, only where MuJoCo
loads; elsewhere it exits 2 naming the install). What a method receives: an ``EnvFactory``
(``contract.py``) that builds seeded training environments in the method's own process, refusing
any seed outside [0, 10**6). What it returns: a deterministic policy ``act(obs) -> actions``.

Scoring: the harness runs 50 evaluation episodes on seeds drawn from the run's seal in
[10**6, 2**31 - 1), never a training seed, all stepped together; the policy is asked once per step
for the actions of every episode still running and never sees a reward or a seed. Metrics: mean
return (primary), its interquartile mean and spread. Throughput: training env steps per second.

The solution is code, asked only for ``act(obs)``: it runs in the jailed scoring process, fresh
for each evaluation of a sealed run, while the environments are stepped and the returns summed in
the harness. Its CPU in one evaluation beyond 3x ``evaluation_cpu_seconds`` (1.0 s) is charged to
training time; past 50x the evaluation is refused. The env steps of the throughput are the
method's own ``ctx.count``, and records and boards say so.

Budgets: env steps, quick 40 000 (pendulum), full 200 000 (pendulum and mountaincar). Measured
with the reference (``baselines/ppo.py``: 8 sub-environments x 256 steps, 10 epochs, minibatch 256,
Adam 1e-3 annealed, gamma 0.9 on pendulum and 0.99 on mountaincar, one thread, full budget, seeds
0-4, sealed with the reference key, ``results/runs/ppo-v1/``; the unsealed runs before them scored
-172 to -189 on pendulum):

* pendulum: -190, -180, -170, -151, -189 (target -250 met by every seed; TASKS.md's -200 is also
  met by every seed); the random floor scores -1121 to -1294;
* mountaincar: 93.4-93.6 (the flag is reached in every evaluation episode from the first
  checkpoint, 10k steps, on: log-std 1.0 explores enough to find it); the floor -33.

Targets: quick pendulum -700 (an untrained policy scores about -1200), full pendulum -250 and
mountaincar 90. Peer checks in ``tests/test_ppo.py``: GAE equals stable-baselines3's
``RolloutBuffer.compute_returns_and_advantage`` on identical rollouts with truncations mid-rollout,
the Gaussian log-probability and entropy equal SB3's ``DiagGaussianDistribution``, the running
statistics SB3's ``RunningMeanStd``. The speed comparison with SB3 PPO (RL-Zoo's Pendulum
hyperparameters, same env steps, one thread each) is a benchmark:
``pytest tests/test_ppo.py --benchmark-enable -k bench_ppo -s``; its numbers are in the README.

Sealing (what is sealed, what is public): the 50 evaluation episodes' seeds come from the seal
(seeds >= 10**6, never used in training); the environments are gymnasium's, public. A method cannot
replay the evaluation episodes from ``ctx.seed``; a policy that plans with gymnasium's own dynamics
is model-based control of a public simulator, which the task does not forbid.
"""

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
        Target("mean_return", 90.0, "full", "mountaincar"),
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
