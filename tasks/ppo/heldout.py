"""The held-out side of the ``ppo`` task: the evaluation episode seeds and the scoring (harness only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from advbench.errors import UsageError
from advbench.spec import Budget
from advbench.task import Problem, Seal
from advbench.tasks.ppo.contract import (ENVIRONMENTS, EVAL_SEED_HIGH, EVAL_SEED_LOW, N_EVAL_EPISODES, TRAIN_SEED_LIMIT,
                                         EnvFactory, interquartile_mean, run_episodes)

if TYPE_CHECKING:
    from advbench.profiles import Profile
    from advbench.solution import SolutionHandle

EVAL_SEED_STREAM = 2


def evaluation_seeds(seal: Seal, n: int = N_EVAL_EPISODES) -> list[int]:
    """``n`` distinct episode seeds in ``[EVAL_SEED_LOW, EVAL_SEED_HIGH)`` from stream 2 of the seal."""
    rng = seal.rng(EVAL_SEED_STREAM)
    seeds: list[int] = []
    while len(seeds) < n:
        s = int(rng.integers(EVAL_SEED_LOW, EVAL_SEED_HIGH))
        if s not in seeds:
            seeds.append(s)
    return seeds


def make_env_or_explain(variant: str):
    """The variant's environment, or a UsageError naming the install that fixes a missing simulator."""
    import gymnasium as gym

    env_cfg = ENVIRONMENTS[variant]
    try:
        return gym.make(env_cfg.env_id, **dict(env_cfg.kwargs))
    except (ImportError, gym.error.DependencyNotInstalled) as exc:
        if env_cfg.needs is None:
            raise
        others = ", ".join(v for v, e in ENVIRONMENTS.items() if e.needs is None)
        raise UsageError(f"variant {variant!r} ({env_cfg.env_id}) needs MuJoCo, which cannot be loaded here ({exc}): "
                         f"pip install 'gymnasium[mujoco]' (that is: pip install mujoco imageio). "
                         f"Variants that need nothing more: {others}") from exc


def make_factory(variant: str, seed: int) -> EnvFactory:
    env_cfg = ENVIRONMENTS[variant]
    env = make_env_or_explain(variant)
    try:
        space = env.action_space
        return EnvFactory(
            variant=variant, env_id=env_cfg.env_id, kwargs=env_cfg.kwargs, run_seed=seed,
            observation_shape=tuple(int(d) for d in env.observation_space.shape),
            action_shape=tuple(int(d) for d in space.shape),
            action_low=tuple(float(x) for x in np.ravel(space.low)),
            action_high=tuple(float(x) for x in np.ravel(space.high)),
            max_episode_steps=int(env.spec.max_episode_steps),
        )
    finally:
        env.close()


class PPOTask:
    def build(self, *, variant: str, seed: int, budget: Budget, seal: Seal) -> Problem:
        factory = make_factory(variant, seed)
        seeds = evaluation_seeds(seal)
        return Problem(
            train=factory,
            heldout={"seeds": seeds},
            heldout_description=frozenset({"evaluation_seeds"}),
            description={
                "variant": variant, "env_id": factory.env_id, "gymnasium": _gymnasium_version(),
                "observation_shape": list(factory.observation_shape), "action_shape": list(factory.action_shape),
                "action_low": list(factory.action_low), "action_high": list(factory.action_high),
                "max_episode_steps": factory.max_episode_steps,
                "training_seeds": (f"any in [0, {TRAIN_SEED_LIMIT}); the reference seeds sub-environment i with "
                                   f"training_seed(0) + i = {factory.training_seed(0)} + i, "
                                   f"training_seed(s) = default_rng([{seed}, 1, s]).integers(0, "
                                   f"{TRAIN_SEED_LIMIT} - 1024)"),
                "evaluation_episodes": len(seeds),
                "evaluation_seeds": seeds,
                "evaluation": "one episode per seed, deterministic policy, actions clipped to the bounds",
            },
        )

    def evaluate(self, solution: "SolutionHandle", problem: Problem, profile: "Profile") -> dict[str, float]:
        f: EnvFactory = problem.train
        returns, _ = run_episodes(solution.act, f.env_id, dict(f.kwargs), problem.heldout["seeds"], f.action_low,
                                  f.action_high)
        return {"mean_return": float(returns.mean()), "iqm_return": interquartile_mean(returns),
                "return_std": float(returns.std())}


def _gymnasium_version() -> str:
    import gymnasium

    return gymnasium.__version__
