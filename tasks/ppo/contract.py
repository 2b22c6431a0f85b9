"""The public contract of the ``ppo`` task: the environment a method trains in and the policy it returns.

Environments (gymnasium 1.x, continuous actions, one per variant, see :data:`ENVIRONMENTS`):

* ``pendulum``: ``Pendulum-v1``. Observation (cos θ, sin θ, θ̇), one torque in [-2, 2]; reward
  -(θ² + 0.1 θ̇² + 0.001 u²) per step; never terminates, *truncates* after 200 steps.
* ``mountaincar``: ``MountainCarContinuous-v0``. Observation (position, velocity), one force in
  [-1, 1]; reward +100 on reaching the flag (which *terminates*), -0.1 a² per step; truncates after
  999 steps.
* ``inverted_pendulum``: ``InvertedPendulum-v5`` (MuJoCo; only where ``import mujoco`` works).
  Observation of 4, one force in [-3, 3]; +1 per step the pole is up; terminates when it falls,
  truncates after 1000 steps.

What a method receives (``Problem.train``): an :class:`EnvFactory`, a small picklable description
of the environment (gymnasium id, keyword arguments, shapes and bounds) that builds seeded
environments in the method's own process:

* ``make(seed)``: one ``gymnasium.Env`` whose first ``reset()`` uses ``seed`` (and whose action
  space is seeded with it); later resets without a seed continue that episode stream.
* ``make_vector(n_envs, seed)``: a ``gymnasium.vector.SyncVectorEnv`` of ``n_envs`` such
  environments seeded ``seed, seed + 1, ..., seed + n_envs - 1``, in gymnasium 1.x's
  ``AutoresetMode.SAME_STEP``: when sub-environment ``i`` ends at a step (terminated *or*
  truncated), that same ``step()`` returns the first observation of its next episode in
  ``obs[i]``, the last observation of the finished episode in ``info["final_obs"][i]`` (where
  ``info["_final_obs"][i]`` is True) and the reward, ``terminated`` and ``truncated`` of the
  finishing step. (gymnasium's default, ``NEXT_STEP``, would instead spend the *next* step on the
  reset and ignore its action; a rollout written for one mode is wrong under the other.)
* ``training_seed(stream)``: the seed scheme of the reference: an integer in
  ``[0, TRAIN_SEED_LIMIT - 1024)`` drawn from ``default_rng([run_seed, 1, stream])``, so that
  ``seed + i`` for up to 1024 sub-environments stays in range.

Every seed a training environment is given must lie in ``[0, TRAIN_SEED_LIMIT)`` = [0, 10**6);
``make``, ``make_vector`` and ``reset(seed=...)`` refuse others. The harness evaluates on
``N_EVAL_EPISODES`` episodes whose seeds it draws from the run's seal in
``[EVAL_SEED_LOW, EVAL_SEED_HIGH)``, so training never meets an evaluation episode.

What a method returns: a :class:`Policy`, any object with ``act(obs) -> actions`` mapping
``float32[n, obs_dim]`` to ``float32[n, act_dim]``, deterministically (a Gaussian policy's mean).
The harness runs the evaluation environments itself and calls ``act`` once per step with the
observations of every evaluation episode still running, stacked in a fixed order (episodes that
have ended drop out of the batch, so ``n`` shrinks when episodes end at different steps). The policy
never sees a reward, a seed or an environment. Actions are clipped to the action space's bounds
before they are applied, as gymnasium's ``ClipAction`` wrapper does (Pendulum and MountainCar clip
internally anyway); NaN, infinite, non-numeric or wrongly shaped actions are an error.

Also here: :func:`run_episodes`, the rollout the harness scores with (a method may call it on its
own training seeds to validate), and :func:`interquartile_mean`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

import numpy as np

TRAIN_SEED_LIMIT = 10**6  # training environment seeds: [0, 10**6)
MAX_SUB_ENVS = 1024  # training_seed leaves room for seed + i, i < 1024
EVAL_SEED_LOW, EVAL_SEED_HIGH = 10**6, 2**31 - 1  # evaluation episode seeds: drawn from the seal
N_EVAL_EPISODES = 50


@dataclass(frozen=True)
class Environment:
    """One variant: which gymnasium environment, with which keyword arguments."""

    env_id: str
    kwargs: tuple[tuple[str, Any], ...] = ()
    needs: str | None = None  # a module the environment needs beyond gymnasium ("mujoco")


ENVIRONMENTS = {
    "pendulum": Environment("Pendulum-v1"),
    "mountaincar": Environment("MountainCarContinuous-v0"),
    "inverted_pendulum": Environment("InvertedPendulum-v5", needs="mujoco"),
}


class Policy(Protocol):
    def act(self, obs: np.ndarray) -> np.ndarray: ...


def check_training_seed(seed: Any) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"a training seed must be an integer, got {type(seed).__name__}")
    if not 0 <= int(seed) < TRAIN_SEED_LIMIT:
        raise ValueError(f"training seeds lie in [0, {TRAIN_SEED_LIMIT}); {seed} is outside (seeds from "
                         f"{EVAL_SEED_LOW} up are kept for evaluation)")
    return int(seed)


def _make_env(env_id: str, kwargs: dict[str, Any]):
    import gymnasium as gym

    return gym.make(env_id, **kwargs)


@functools.lru_cache(maxsize=None)
def _seeded_reset_wrapper():
    """The wrapper class, built on first use so that importing the contract does not import gymnasium."""
    import gymnasium as gym

    class TrainingSeeds(gym.Wrapper):
        """Applies the factory's seed on the first reset; refuses seeds outside the training range."""

        def __init__(self, env, seed: int) -> None:
            super().__init__(env)
            self._first_seed: int | None = seed
            env.action_space.seed(seed)

        def reset(self, *, seed: int | None = None, options: dict | None = None):
            if seed is not None:
                seed = check_training_seed(seed)
            elif self._first_seed is not None:
                seed = self._first_seed
            self._first_seed = None
            return self.env.reset(seed=seed, options=options)

    return TrainingSeeds


@dataclass(frozen=True)
class EnvFactory:
    """What a method receives: builds the variant's environment, seeded from the training range."""

    variant: str
    env_id: str
    kwargs: tuple[tuple[str, Any], ...]
    run_seed: int
    observation_shape: tuple[int, ...]
    action_shape: tuple[int, ...]
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    max_episode_steps: int

    @property
    def obs_dim(self) -> int:
        return int(np.prod(self.observation_shape))

    @property
    def act_dim(self) -> int:
        return int(np.prod(self.action_shape))

    def training_seed(self, stream: int = 0) -> int:
        """A seed in ``[0, TRAIN_SEED_LIMIT - MAX_SUB_ENVS)`` from ``default_rng([run_seed, 1, stream])``."""
        return int(np.random.default_rng([self.run_seed, 1, stream]).integers(0, TRAIN_SEED_LIMIT - MAX_SUB_ENVS))

    def make(self, seed: int):
        """One environment; its first ``reset()`` uses ``seed`` and its action space is seeded with it."""
        seed = check_training_seed(seed)
        return _seeded_reset_wrapper()(_make_env(self.env_id, dict(self.kwargs)), seed)

    def make_vector(self, n_envs: int, seed: int):
        """``n_envs`` environments seeded ``seed + i``, stepped together in ``AutoresetMode.SAME_STEP``."""
        from gymnasium.vector import AutoresetMode, SyncVectorEnv

        if not 1 <= int(n_envs) <= MAX_SUB_ENVS:
            raise ValueError(f"n_envs must be in [1, {MAX_SUB_ENVS}], got {n_envs}")
        seeds = [check_training_seed(seed + i) for i in range(int(n_envs))]
        envs = SyncVectorEnv([_Maker(self, s) for s in seeds], autoreset_mode=AutoresetMode.SAME_STEP)
        envs.action_space.seed(seeds[0])
        return envs


@dataclass(frozen=True)
class _Maker:
    """``factory.make(seed)`` as a picklable zero-argument callable (what SyncVectorEnv wants)."""

    factory: EnvFactory
    seed: int

    def __call__(self):
        return self.factory.make(self.seed)


def run_episodes(act: Callable[[np.ndarray], Any], env_id: str, kwargs: dict[str, Any], seeds: Sequence[int],
                 action_low: Sequence[float], action_high: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Run one episode per seed, all stepped together; return (returns, lengths) per episode.

    ``act`` is called once per step with ``float32[n_running, obs_dim]``, the observations of the
    episodes still running in seed order. Actions are checked (shape, finite numbers) and clipped to
    ``[action_low, action_high]``. This is the harness's rollout; it never passes rewards or seeds to
    ``act``.
    """
    envs = [_make_env(env_id, dict(kwargs)) for _ in seeds]
    low = np.asarray(action_low, dtype=np.float64)
    high = np.asarray(action_high, dtype=np.float64)
    try:
        first = [env.reset(seed=int(s))[0] for env, s in zip(envs, seeds)]
        obs = np.stack([np.asarray(o, dtype=np.float32).ravel() for o in first])
        returns = np.zeros(len(envs))
        lengths = np.zeros(len(envs), dtype=np.int64)
        running = np.ones(len(envs), dtype=bool)
        while running.any():
            idx = np.flatnonzero(running)
            actions = check_actions(act(obs[idx].copy()), len(idx), low.size)
            actions = np.clip(actions, low, high)
            for row, i in enumerate(idx):
                o, r, terminated, truncated, _ = envs[i].step(actions[row].reshape(envs[i].action_space.shape))
                returns[i] += float(r)
                lengths[i] += 1
                obs[i] = np.asarray(o, dtype=np.float32).ravel()
                if terminated or truncated:
                    running[i] = False
        return returns, lengths
    finally:
        for env in envs:
            env.close()


def check_actions(actions: Any, n: int, act_dim: int) -> np.ndarray:
    """The policy's answer as ``float64[n, act_dim]``, or a clear error."""
    out = np.asarray(actions)
    if out.dtype == object or not (np.issubdtype(out.dtype, np.number) or out.dtype == np.bool_):
        raise TypeError(f"act returned an array of {out.dtype}; expected float32[{n}, {act_dim}] actions")
    if out.shape != (n, act_dim):
        raise ValueError(f"act returned shape {out.shape}, expected ({n}, {act_dim}): one action row per observation")
    if not np.isfinite(out).all():
        raise ValueError("act returned NaN or infinite actions")
    return out.astype(np.float64)


def interquartile_mean(values: np.ndarray) -> float:
    """Mean of the middle 50 % (rliable's IQM): robust to a few failed episodes."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    cut = len(v) // 4
    return float(v[cut: len(v) - cut].mean())
