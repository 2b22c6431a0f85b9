"""The public contract of the ``maddpg`` task: the environment a method trains in and the policy it returns.

Environments (mpe2, the Multi-Particle Environments that left PettingZoo), continuous actions:

* ``speaker-listener``: ``simple_speaker_listener_v4.parallel_env(max_cycles=25,
  continuous_actions=True)``, Lowe et al.'s cooperative communication. ``speaker_0`` cannot move;
  it sees the goal landmark's colour (3 numbers) and says 3 numbers in [0, 1]. ``listener_0`` moves;
  it sees its velocity, the three landmarks relative to itself and the speaker's last message (11
  numbers), not which landmark is the goal. Both get minus the listener's squared distance to the
  goal. A listener that ignores the message can at best wait between the landmarks.
* ``spread``: ``simple_spread_v3.parallel_env(N=3, local_ratio=0.5, max_cycles=25,
  continuous_actions=True)``. Three agents, three landmarks; every agent gets half the shared
  reward (minus the sum over landmarks of the distance to the nearest agent) and half its own
  (-1 per other agent it touches). Observation: 18 numbers (own velocity and position, landmarks,
  other agents relative to itself, two silent comm channels per other agent, always 0).
* ``adversary``: ``simple_adversary_v3.parallel_env(N=2, max_cycles=25, continuous_actions=True)``.
  Two good agents (``agent_0``, ``agent_1``; observation of 10: the goal landmark, both landmarks
  and the other two agents, relative to itself) and ``adversary_0`` (8: both landmarks and the good
  agents), which does not know which landmark is the goal. The method controls all three, as in
  Lowe et al.: the good agents are the team (a good agent's reward is the adversary's distance to
  the goal minus the team's nearest distance to it: covering both landmarks, deception, beats
  rushing the goal), the adversary their opponent (minus its distance to the goal). The harness
  scores the team against the adversary trained with it and, on the same episodes, against
  :func:`scripted_adversary_actions` (it heads for the landmark with a good agent nearest to it),
  which no policy can weaken; the team's score is the worse of the two.

Both run exactly ``MAX_CYCLES`` = 25 steps and then *truncate*; neither ever terminates, so a TD
target must bootstrap from the last state (``terminated`` is all False, ``truncated`` is True at
step 25).

Actions: ``float32[..., 5]`` in [0, 1] (mpe2's ``Box(0, 1, (5,))``: no-op, left, right, down, up;
the force is ``5 * (right - left, up - down)``). mpe2 would clip an out-of-range action with a
logged warning; here an action outside [0, 1] (beyond ``ACTION_TOLERANCE``), NaN or of the wrong
shape is an error, in training and in scoring, so a policy clips its own actions (and stores the
clipped action, the one the environment ran, in its replay buffer).

What a method receives (``Problem.train``): an :class:`MPETraining`. ``make_vector_env(n_envs,
stream)`` builds a :class:`VectorMPE`: ``n_envs`` mpe2 episodes stepped together, observations
stacked as ``float32[n_envs, n_agents, obs_dim]`` in the order of ``agents``, each zero-padded to
the longest (``obs_dims`` gives each agent's own length); of an agent's 5 action entries its
environment runs the first ``action_dims[i]`` (the speaker's 3-entry message), the rest must be in
[0, 1] and are ignored. Rewards come for every controlled agent, the adversary's too. Its episode seeds are
drawn from ``default_rng([seed, 1, stream])`` in ``[0, TRAIN_SEED_LIMIT)`` = [0, 10**6); the
harness evaluates on seeds drawn from the run's seal in ``[EVAL_SEED_LOW, EVAL_SEED_HIGH)``, so
training never meets an evaluation episode (and ``reset(seeds=...)`` on a training environment
refuses seeds outside its range).

What a method returns: a :class:`Policy`, any object with ``act(obs) -> actions`` mapping
``float32[n_episodes, n_agents, obs_dim]`` to ``float32[n_episodes, n_agents, 5]`` in [0, 1]
(decentralised execution is the policy's business: agent i's action should depend on ``obs[:, i]``
only). The harness calls it once per step with the observations of all ``N_EVAL_EPISODES``
evaluation episodes at once, steps 0 to 24 in order (``adversary``: two such rollouts of the same
episodes, against the scripted adversary and then against its own); it never sees a reward or a seed.

Also here: :class:`RandomPolicy` (the floor and the normaliser's 0) and :class:`OraclePolicy`
(each variant's scripted controller, the normaliser's 1), and :func:`episode_returns`,
the rollout the harness scores with.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np

MAX_CYCLES = 25
ACTION_DIM = 5
ACTION_LOW, ACTION_HIGH = 0.0, 1.0
ACTION_TOLERANCE = 1e-6
TRAIN_SEED_LIMIT = 10**6  # training episode seeds: [0, 10**6)
EVAL_SEED_LOW, EVAL_SEED_HIGH = 10**6, 2**31 - 1  # evaluation episode seeds: drawn from the seal
N_EVAL_EPISODES = 100


@dataclass(frozen=True)
class Scenario:
    """One variant: the mpe2 environment, the agents a method controls, and whose rewards are scored."""

    module: str  # mpe2 module name
    kwargs: tuple[tuple[str, object], ...]  # parallel_env keyword arguments
    controlled: tuple[str, ...]  # agents the method's policy drives, in the order of its arrays
    team: tuple[str, ...]  # the agents whose rewards make the team return
    opponents: tuple[str, ...] = ()  # controlled agents playing against the team (scored apart)


SCENARIOS = {
    "spread": Scenario("simple_spread_v3",
                       (("N", 3), ("local_ratio", 0.5), ("max_cycles", MAX_CYCLES), ("continuous_actions", True)),
                       controlled=("agent_0", "agent_1", "agent_2"), team=("agent_0", "agent_1", "agent_2")),
    "adversary": Scenario("simple_adversary_v3",
                          (("N", 2), ("max_cycles", MAX_CYCLES), ("continuous_actions", True)),
                          controlled=("agent_0", "agent_1", "adversary_0"), team=("agent_0", "agent_1"),
                          opponents=("adversary_0",)),
    "speaker-listener": Scenario("simple_speaker_listener_v4",
                                 (("max_cycles", MAX_CYCLES), ("continuous_actions", True)),
                                 controlled=("speaker_0", "listener_0"), team=("speaker_0", "listener_0")),
}


def scenario(variant: str) -> Scenario:
    if variant not in SCENARIOS:
        raise ValueError(f"unknown variant {variant!r}; choose from {sorted(SCENARIOS)}")
    return SCENARIOS[variant]


def make_parallel_env(variant: str):
    """The mpe2 ``parallel_env`` of a variant, built exactly as the task names it."""
    import importlib

    sc = scenario(variant)
    return importlib.import_module(f"mpe2.{sc.module}").parallel_env(**dict(sc.kwargs))


class Policy(Protocol):
    def act(self, obs: np.ndarray) -> np.ndarray: ...


def check_actions(actions: object, n_envs: int, n_agents: int) -> np.ndarray:
    """``actions`` as ``float32[n_envs, n_agents, 5]``, or a clear error (shape, type, NaN, range)."""
    arr = np.asarray(actions)
    expected = (n_envs, n_agents, ACTION_DIM)
    if arr.shape != expected:
        raise ValueError(f"actions have shape {arr.shape}, expected {expected} (episodes, agents, action dims)")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"actions are an array of {arr.dtype}; expected floats in [0, 1]")
    if not np.isfinite(arr).all():
        raise ValueError("actions contain NaN or infinite values")
    low, high = float(arr.min()), float(arr.max())
    if low < ACTION_LOW - ACTION_TOLERANCE or high > ACTION_HIGH + ACTION_TOLERANCE:
        raise ValueError(f"actions range over [{low:.4g}, {high:.4g}], outside the action space [0, 1]: "
                         "clip them in the policy (mpe2 would clip them silently, so the action a policy "
                         "learns from would not be the one the environment ran)")
    return np.clip(arr, ACTION_LOW, ACTION_HIGH).astype(np.float32, copy=False)


# ---------------------------------------------------------------------------------------------
# Scripted controllers: the adversary of the ``adversary`` variant and the oracle
# ---------------------------------------------------------------------------------------------

# A proportional-derivative controller towards a target on the environments' own physics (mass 1,
# damping 0.25 per 0.1 s step, force 5 per unit of action difference). Gains chosen on 200 episodes
# (seeds 10**6 to 10**6 + 199): PD 6 / 2 gave the oracle -19.7 on spread (4 / 1.5: -20.6; 8 / 3:
# -20.7; 10 / 4: -21.8). The adversary variant's observations carry no velocity, so its controllers
# are proportional only; the oracle's gain 1 beat 2, 3 and 5 (22.4, 20.8, 19.6, 17.7).
PD_GAIN, PD_DAMPING = 6.0, 2.0
P_GAIN_NO_VELOCITY = 1.0
ADVERSARY_GAIN = 2.0  # the scripted adversary's own gain (kept apart from the oracle's)
ADVERSARY_OBS_DIM = 8  # the adversary's own observation; the stacked array pads it to the good agents' 10


def force_to_action(force: np.ndarray) -> np.ndarray:
    """A desired force direction ``[..., 2]`` (each axis in [-1, 1]) as an mpe2 action ``[..., 5]``."""
    force = np.clip(force, -1.0, 1.0)
    action = np.zeros((*force.shape[:-1], ACTION_DIM), dtype=np.float32)
    action[..., 1] = np.maximum(-force[..., 0], 0.0)  # left
    action[..., 2] = np.maximum(force[..., 0], 0.0)  # right
    action[..., 3] = np.maximum(-force[..., 1], 0.0)  # down
    action[..., 4] = np.maximum(force[..., 1], 0.0)  # up
    return action


def _pairs(points: np.ndarray) -> np.ndarray:
    """``float[..., 2k]`` (k points written x, y, x, y...) as ``float[..., k, 2]``."""
    return points.reshape(*points.shape[:-1], -1, 2)


def scripted_adversary_actions(obs: np.ndarray) -> np.ndarray:
    """The ``adversary`` variant's adversary: it heads for the landmark with a good agent nearest to it.

    ``obs``: its mpe2 observation ``float32[n, 8]`` (both landmarks, then ``agent_0`` and
    ``agent_1``, relative to itself). A team that rushes the goal leads it there; a team that covers
    both landmarks leaves it guessing.
    """
    landmarks, agents = _pairs(obs[:, :4]), _pairs(obs[:, 4:8])  # [n, 2, 2] each
    gaps = np.linalg.norm(landmarks[:, :, None, :] - agents[:, None, :, :], axis=-1)  # [n, landmark, agent]
    target = landmarks[np.arange(len(obs)), gaps.min(axis=2).argmin(axis=1)]
    return force_to_action(ADVERSARY_GAIN * target)


def _assignment(costs: np.ndarray) -> np.ndarray:
    """Per row of ``costs[n, agents, landmarks]``, the landmark of each agent in the cheapest matching."""
    n_agents = costs.shape[1]
    perms = np.array(list(itertools.permutations(range(n_agents))))  # [P, agents]
    totals = costs[:, np.arange(n_agents)[None, :], perms].sum(-1)  # [n, P]
    return perms[totals.argmin(axis=1)]


class OraclePolicy:
    """The scripted ceiling of each variant, acting on each agent's own observation.

    * ``spread`` and ``adversary``: the good agents split the landmarks by the cheapest matching,
      which every agent computes from its own observation (it sees every landmark and every agent),
      so the agents agree without talking, and each steers to its own landmark. It ignores
      collisions (spread) and the adversary, so a learned policy can beat it. In ``adversary`` the
      opponent's column is :func:`scripted_adversary_actions`.
    * ``speaker-listener``: the speaker says the goal's index as a one-hot message (the goal's
      colour is its landmark's, whose largest channel is the landmark's index); the listener steers
      to the landmark the message names, and to the landmarks' centre before any message arrives
      (step 0).
    """

    def __init__(self, variant: str) -> None:
        self.scenario = scenario(variant)  # an unknown variant fails here, not at the first step
        self.variant = variant

    def act(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float64)
        n, n_agents, _ = obs.shape
        actions = np.zeros((n, n_agents, ACTION_DIM), dtype=np.float32)
        if self.variant == "speaker-listener":
            goal = obs[:, 0, :3].argmax(axis=1)
            actions[np.arange(n), 0, goal] = 1.0  # the speaker's message: the first 3 entries
            vel, landmarks, message = obs[:, 1, 0:2], _pairs(obs[:, 1, 2:8]), obs[:, 1, 8:11]
            target = np.where(message.max(axis=1, keepdims=True) > 0,
                              landmarks[np.arange(n), message.argmax(axis=1)], landmarks.mean(axis=1))
            actions[:, 1] = force_to_action(PD_GAIN * target - PD_DAMPING * vel)
            return actions
        team = [self.scenario.controlled.index(a) for a in self.scenario.team]
        for i in team:
            if self.variant == "spread":
                vel, landmarks, others = obs[:, i, 0:2], _pairs(obs[:, i, 4:10]), _pairs(obs[:, i, 10:14])
                own_team = others  # the other two agents, relative to agent i
            else:
                vel, landmarks, others = None, _pairs(obs[:, i, 2:6]), _pairs(obs[:, i, 6:10])
                own_team = others[:, 1:]  # others = (adversary_0, the other good agent)
            # Positions of the team relative to agent i, in agent order (agent i itself at 0, 0).
            mates = np.insert(own_team, i, 0.0, axis=1)
            costs = np.linalg.norm(mates[:, :, None, :] - landmarks[:, None, :, :], axis=-1)
            target = landmarks[np.arange(n), _assignment(costs)[:, i]]
            force = PD_GAIN * target - PD_DAMPING * vel if vel is not None else P_GAIN_NO_VELOCITY * target
            actions[:, i] = force_to_action(force)
        for name in self.scenario.opponents:
            k = self.scenario.controlled.index(name)
            actions[:, k] = scripted_adversary_actions(obs[:, k, :ADVERSARY_OBS_DIM])
        return actions


class RandomPolicy:
    """Uniform random actions in [0, 1]: the floor, and the normaliser's 0."""

    def __init__(self, seed: int | Sequence[int] | np.random.Generator) -> None:
        self._rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    def act(self, obs: np.ndarray) -> np.ndarray:
        n, n_agents, _ = np.shape(obs)
        return self._rng.random((n, n_agents, ACTION_DIM), dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# The environment
# ---------------------------------------------------------------------------------------------

class VectorMPE:
    """``n_envs`` mpe2 episodes of one variant stepped together, observations stacked.

    Each episode is a real mpe2 environment (``make_parallel_env(variant)``), stepped through its
    AEC interface: agent by agent in the environment's own order, the world moving after the last
    one, exactly what mpe2's ``parallel_env.step`` does, without its per-call wrappers (the task's
    tests check the two agree observation for observation and reward for reward).

    Agents whose observations or actions are shorter than the others' share the stacked arrays
    padded: an observation is zero-filled to ``obs_dim`` (``obs_dims`` gives each agent's own
    length; the speaker's is 3, the listener's 11, the adversary's 8 beside the good agents' 10),
    and of an agent's 5 action entries the environment runs the first ``action_dims[i]`` (the
    speaker's 3-entry message); the rest must still lie in [0, 1] and are ignored.

    With ``scripted_opponents`` the opponents (``adversary``'s ``adversary_0``) are driven by
    :func:`scripted_adversary_actions` from their own observations, whatever the policy says for
    them: the evaluation against a fixed opponent.

    ``reset(seeds=None)`` starts ``n_envs`` new episodes, on the given seeds or on the next ones of
    the environment's seed stream; ``step(actions)`` returns ``(obs, rewards, terminated,
    truncated)`` with ``rewards`` ``float32[n_envs, n_agents]`` (every controlled agent's, the
    opponents' too) and the flags ``bool[n_envs]``. All episodes run in lockstep and truncate
    together after ``MAX_CYCLES`` steps.
    """

    def __init__(self, variant: str, n_envs: int, *, seed_stream: np.random.Generator | None = None,
                 seed_range: tuple[int, int] = (0, TRAIN_SEED_LIMIT), scripted_opponents: bool = False) -> None:
        if n_envs < 1:
            raise ValueError("n_envs must be at least 1")
        self.variant = variant
        self.scenario = scenario(variant)
        self.n_envs = n_envs
        self.seed_range = seed_range
        self._seed_stream = seed_stream
        self._envs = [make_parallel_env(variant).unwrapped for _ in range(n_envs)]
        for env in self._envs:
            # Never rendered: drop the 700x700 pygame canvas each mpe2 environment allocates (2 MB).
            if getattr(env, "screen", None) is not None:
                env.screen = None
        first = self._envs[0]
        self.order = tuple(first.possible_agents)  # mpe2's stepping order
        self.agents = self.scenario.controlled
        self.n_agents = len(self.agents)
        self.obs_dims = tuple(int(first.observation_space(a).shape[0]) for a in self.agents)
        self.action_dims = tuple(int(first.action_space(a).shape[0]) for a in self.agents)
        self.obs_dim = max(self.obs_dims)
        self.action_dim = ACTION_DIM
        self.team_columns = [self.agents.index(a) for a in self.scenario.team]
        self.scripted = self.scenario.opponents if scripted_opponents else ()
        self.steps = 0
        self.seeds: list[int] = []

    def reset(self, seeds: Sequence[int] | None = None) -> np.ndarray:
        if seeds is None:
            if self._seed_stream is None:
                raise ValueError("this environment has no seed stream: pass seeds to reset")
            seeds = self._seed_stream.integers(*self.seed_range, size=self.n_envs).tolist()
        seeds = [int(s) for s in seeds]
        if len(seeds) != self.n_envs:
            raise ValueError(f"reset got {len(seeds)} seeds for {self.n_envs} environments")
        low, high = self.seed_range
        if any(not low <= s < high for s in seeds):
            raise ValueError(f"episode seeds must lie in [{low}, {high}) for this environment")
        for env, s in zip(self._envs, seeds):
            env.reset(seed=s)
        self.seeds, self.steps = seeds, 0
        return self._observe()

    def _observe(self) -> np.ndarray:
        obs = np.zeros((self.n_envs, self.n_agents, self.obs_dim), dtype=np.float32)
        for i, (name, dim) in enumerate(zip(self.agents, self.obs_dims)):  # one column per agent, zero-padded
            obs[:, i, :dim] = np.stack([env.observe(name) for env in self._envs])
        return obs

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if not self.seeds:
            raise RuntimeError("call reset() before step()")
        if self.steps >= MAX_CYCLES:
            raise RuntimeError(f"the episodes were truncated after {MAX_CYCLES} steps: call reset()")
        actions = check_actions(actions, self.n_envs, self.n_agents)
        if self.scripted:  # check_actions returned a new array: overwriting a column is safe
            for name in self.scripted:
                k = self.agents.index(name)
                own = np.stack([env.observe(name) for env in self._envs])
                actions[:, k] = scripted_adversary_actions(own)
        column = {a: i for i, a in enumerate(self.agents)}
        rewards = np.empty((self.n_envs, self.n_agents), dtype=np.float32)
        for e, env in enumerate(self._envs):
            for name in self.order:
                k = column[name]
                env.step(actions[e, k, :self.action_dims[k]])
            for i, name in enumerate(self.agents):
                rewards[e, i] = env.rewards[name]
        self.steps += 1
        terminated = np.array([any(env.terminations[a] for a in self.agents) for env in self._envs])
        truncated = np.array([any(env.truncations[a] for a in self.agents) for env in self._envs])
        return self._observe(), rewards, terminated, truncated


@dataclass(frozen=True)
class MPETraining:
    """What a method receives: the variant and the means to make training environments.

    ``agents`` are the controlled agents in array order; ``team`` those whose rewards the team
    return sums (in ``adversary`` the two good agents; the method trains the adversary too, and is
    scored against it and against the scripted one); ``obs_dims`` and ``action_dims`` each agent's
    own lengths inside the padded arrays.
    """

    variant: str
    seed: int
    agents: tuple[str, ...]
    obs_dim: int
    obs_dims: tuple[int, ...]
    action_dims: tuple[int, ...]
    team: tuple[str, ...]
    opponents: tuple[str, ...] = ()
    action_dim: int = ACTION_DIM
    max_cycles: int = MAX_CYCLES

    def make_vector_env(self, n_envs: int, stream: int = 0) -> VectorMPE:
        """``n_envs`` episodes at a time; seeds from ``default_rng([seed, 1, stream])`` in [0, 10**6)."""
        return VectorMPE(self.variant, n_envs, seed_stream=np.random.default_rng([self.seed, 1, stream]),
                         seed_range=(0, TRAIN_SEED_LIMIT))


def episode_returns(env: VectorMPE, act: Callable[[np.ndarray], np.ndarray],
                    seeds: Sequence[int] | None = None) -> np.ndarray:
    """Team return (rewards summed over the team's agents and the 25 steps) of each episode."""
    obs = env.reset(seeds)
    total = np.zeros(env.n_envs)
    for _ in range(MAX_CYCLES):
        obs, rewards, terminated, truncated = env.step(act(obs))
        total += rewards[:, env.team_columns].sum(axis=1, dtype=np.float64)
    return total
