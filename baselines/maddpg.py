"""MADDPG (Lowe et al. 2017) from scratch, CleanRL-style, on mpe2's multi-particle environments.

Centralised training, decentralised execution: agent i has an actor mu_i(o_i) that sees its own
observation only, and a critic Q_i(o_1..o_n, a_1..a_n) that sees every agent's observation and
action. The critic of agent i regresses on

    y_i = r_i + gamma * (1 - terminated) * Q'_i(o'_1..o'_n, mu'_1(o'_1)..mu'_n(o'_n))

(targets from *all* target actors and the target critic), and agent i's actor ascends
Q_i(o, a_1..mu_i(o_i)..a_n) with *only its own* action replaced by its policy's; the others stay the
buffer's. Targets follow the online networks by Polyak averaging. The traps this file avoids, each
tested in ``tests/test_maddpg.py``:

* MPE episodes end by truncation after 25 steps and never terminate, so the last transition
  bootstraps like any other (``terminated``, not ``terminated or truncated``, masks the target);
* actions live in [0, 1] (mpe2's Box): the actor ends in a sigmoid and exploration noise is clipped
  by the policy itself, so the buffer holds the action the environment ran (mpe2 would clip
  silently; this task's environment refuses out-of-range actions instead);
* the critic input is all observations and all actions (``centralised=False`` gives independent
  DDPG, each critic seeing its own pair only: the second method on the board).

What makes it fast (the calibration run took 9 minutes to reach -53 on spread; measurements in
the task's docstring):

* vectorised environments: ``n_envs`` episodes step together, so one actor call serves them all;
* batched agents: the n agents' networks are one module whose weights are ``[n_agents, in, out]``,
  so a forward pass for every agent is one ``baddbmm`` per layer, and the n actor losses (each with
  its own agent's action replaced) are one batched critic call;
* fewer updates per environment step: one gradient step (batch 1024) every ``update_every``
  vector steps, instead of one per transition;
* no Python loop over agents or transitions anywhere in the training step; the replay buffer is
  preallocated tensors indexed with ``torch.randint``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from advbench.tasks.maddpg.contract import (ACTION_DIM, ACTION_HIGH, ACTION_LOW, MPETraining, OraclePolicy,
                                            RandomPolicy)


@dataclass
class Config:
    centralised: bool = True  # MADDPG's critic; False: independent DDPG (own observation and action only)
    hidden: int = 64  # two hidden layers of 64, as Lowe et al.
    actor_lr: float = 1e-3
    critic_lr: float = 1e-3
    gamma: float = 0.95
    tau: float = 0.01  # Polyak rate of the target networks
    batch_size: int = 1024
    buffer_size: int = 200_000  # transitions; the full budget's 5000 episodes are 125k
    n_envs: int = 16  # episodes stepped together
    random_episodes: int = 64  # uniform random actions first, to fill the buffer with varied data
    update_every: int = 1  # vector steps (of n_envs transitions each) between gradient steps
    noise_std: float = 0.1  # Gaussian exploration noise in action units, clipped into [0, 1]
    actor_reg: float = 1e-3  # penalty on the actor's pre-sigmoid outputs (Lowe et al.'s p_reg)
    max_grad_norm: float = 0.5  # per agent, as Lowe et al.
    episodes: int = 5000  # overridden by the budget
    checkpoints: int = 10  # handed to the harness over the run (for the learning curve and time to target)


# ---------------------------------------------------------------- networks
class AgentMLPs(nn.Module):
    """n independent two-hidden-layer MLPs, evaluated together: weights ``[n_agents, in, out]``.

    ``forward(x)`` takes ``x[n_agents, batch, in]`` (agent k's input in row k) and returns
    ``[n_agents, batch, out]``; an input shared by every agent (the centralised critic's) may be
    passed expanded, without a copy. Initialised as ``nn.Linear`` would each agent's layers.
    """

    def __init__(self, n_agents: int, sizes: list[int]) -> None:
        super().__init__()
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / math.sqrt(fan_in)
            self.weights.append(nn.Parameter(torch.empty(n_agents, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(n_agents, 1, fan_out).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.weights) - 1
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if k < last:
                x = F.relu(x)
        return x


class Actors(nn.Module):
    """mu_i(o_i) for every agent: ``obs[B, n, obs_dim] -> actions[B, n, 5]`` in [0, 1] (sigmoid).

    An agent with fewer than 5 action entries (the speaker's 3-entry message) outputs 0 in the
    entries the environment ignores, so its critics never see noise there.
    """

    def __init__(self, n_agents: int, obs_dim: int, hidden: int, action_dims: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.net = AgentMLPs(n_agents, [obs_dim, hidden, hidden, ACTION_DIM])
        dims = action_dims or (ACTION_DIM,) * n_agents
        self.register_buffer("mask", (torch.arange(ACTION_DIM)[None, :] < torch.tensor(dims)[:, None]).float())

    def preactivation(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs.transpose(0, 1)).transpose(0, 1)

    def squash(self, pre: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(pre) * self.mask

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.squash(self.preactivation(obs))


class Critics(nn.Module):
    """Q_i for every agent.

    Centralised (MADDPG): Q_i sees ``[o_1, a_1, o_2, a_2, ...]``, every agent's observation and
    action (the layout of TorchRL's ``MultiAgentMLP(centralized=True)``, so weights copy across).
    Independent (IDDPG): Q_i sees ``[o_i, a_i]`` only.
    """

    def __init__(self, n_agents: int, obs_dim: int, hidden: int, centralised: bool) -> None:
        super().__init__()
        self.n_agents, self.centralised = n_agents, centralised
        per_agent = obs_dim + ACTION_DIM
        self.net = AgentMLPs(n_agents, [per_agent * (n_agents if centralised else 1), hidden, hidden, 1])

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``obs[B, n, d]``, ``actions[B, n, 5]`` (the same joint action for every critic) -> ``Q[B, n]``."""
        joint = torch.cat([obs, actions], dim=-1)  # [B, n, d + 5]
        if self.centralised:
            x = joint.flatten(1).unsqueeze(0).expand(self.n_agents, -1, -1)  # the same input for every Q_i
        else:
            x = joint.transpose(0, 1)  # Q_i sees row i only
        return self.net(x).squeeze(-1).transpose(0, 1)

    def per_agent_actions(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``Q_i(o, a^(i))`` where critic i gets its own joint action: ``actions[n, B, n, 5]`` -> ``[B, n]``."""
        n, batch = self.n_agents, obs.shape[0]
        joint = torch.cat([obs.unsqueeze(0).expand(n, -1, -1, -1), actions], dim=-1)  # [n, B, n, d + 5]
        if self.centralised:
            x = joint.flatten(2)
        else:
            x = joint[torch.arange(n), :, torch.arange(n)]  # critic i, its own agent i: [n, B, d + 5]
        return self.net(x).squeeze(-1).transpose(0, 1).reshape(batch, n)


# ---------------------------------------------------------------- losses (checked against TorchRL)
def critic_targets(rewards: torch.Tensor, next_obs: torch.Tensor, terminated: torch.Tensor,
                   target_actors: Actors, target_critics: Critics, gamma: float) -> torch.Tensor:
    """``y[B, n] = r + gamma * (1 - terminated) * Q'_i(o', mu'_1(o'_1), ..., mu'_n(o'_n))``.

    ``terminated[B]`` is the environment's termination, never its truncation: MPE only truncates,
    and a truncated episode's last state still has a value.
    """
    with torch.no_grad():
        next_q = target_critics(next_obs, target_actors(next_obs))
        return rewards + gamma * (1.0 - terminated.float()).unsqueeze(-1) * next_q


def critic_loss(obs: torch.Tensor, actions: torch.Tensor, targets: torch.Tensor, critics: Critics) -> torch.Tensor:
    """Each agent's mean squared TD error, summed over agents (each critic gets its own MSE's gradient)."""
    return (critics(obs, actions) - targets).pow(2).mean(0).sum()


def replace_own_action(buffer_actions: torch.Tensor, policy_actions: torch.Tensor) -> torch.Tensor:
    """``[n, B, n, 5]``: row i is the buffer's joint action with agent i's action replaced by its policy's."""
    n = buffer_actions.shape[1]
    own = torch.eye(n, dtype=torch.bool, device=buffer_actions.device)[:, None, :, None]  # [n, 1, n, 1]
    return torch.where(own, policy_actions.unsqueeze(0), buffer_actions.unsqueeze(0))


def actor_losses(obs: torch.Tensor, buffer_actions: torch.Tensor, policy_actions: torch.Tensor,
                 critics: Critics) -> torch.Tensor:
    """``[n]``: agent i's ``-mean_B Q_i(o, a_1..mu_i(o_i)..a_n)``, the other actions from the buffer.

    ``policy_actions[B, n, 5]`` are the actors' ``mu_i(o_i)``. Summed and backpropagated, each actor
    gets exactly its own loss's gradient: agent i's policy enters critic i's input only, in slot i.
    The critics' parameters should not require grad here (they are not being trained).
    """
    joint = replace_own_action(buffer_actions, policy_actions)
    return -critics.per_agent_actions(obs, joint).mean(0)


# ---------------------------------------------------------------- the solution
class DecentralisedPolicy:
    """The solution: each agent acts on its own observation (``act(obs[E, n, d]) -> [E, n, 5]``)."""

    def __init__(self, actors: Actors, device: str) -> None:
        self.actors, self.device = actors, device

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        out = self.actors(torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.device))
        return out.clamp(ACTION_LOW, ACTION_HIGH).cpu().numpy()  # sigmoid is in range; clamp makes it explicit


# ---------------------------------------------------------------- training
class ReplayBuffer:
    """A ring of preallocated tensors; ``terminated`` is stored, ``truncated`` is not needed."""

    def __init__(self, capacity: int, n_agents: int, obs_dim: int, device: str) -> None:
        self.capacity, self.size, self.pos = capacity, 0, 0
        self.obs = torch.zeros(capacity, n_agents, obs_dim, device=device)
        self.actions = torch.zeros(capacity, n_agents, ACTION_DIM, device=device)
        self.rewards = torch.zeros(capacity, n_agents, device=device)
        self.next_obs = torch.zeros(capacity, n_agents, obs_dim, device=device)
        self.terminated = torch.zeros(capacity, dtype=torch.bool, device=device)

    def add(self, obs, actions, rewards, next_obs, terminated) -> None:
        n = obs.shape[0]
        idx = (torch.arange(n) + self.pos) % self.capacity
        for store, value in ((self.obs, obs), (self.actions, actions), (self.rewards, rewards),
                             (self.next_obs, next_obs), (self.terminated, terminated)):
            store[idx] = torch.as_tensor(value, dtype=store.dtype, device=store.device)
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator):
        idx = torch.randint(self.size, (batch_size,), generator=generator).to(self.obs.device)
        return self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx], self.terminated[idx]


def polyak(target: nn.Module, online: nn.Module, tau: float) -> None:
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), tau)


def clip_per_agent(module: nn.Module, max_norm: float) -> None:
    """Clip each agent's gradient norm separately (its parameters are row i of every tensor)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    norms = torch.stack([g.flatten(1).pow(2).sum(1) for g in grads]).sum(0).sqrt()  # [n_agents]
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))


def _config(ctx, **overrides) -> Config:
    cfg = Config(episodes=int(ctx.limits["episodes"]), **overrides)
    ctx.record_config(**asdict(cfg))
    return cfg


def train(train: MPETraining, ctx, cfg: Config) -> DecentralisedPolicy:
    torch.manual_seed(ctx.seed)
    gen = torch.Generator().manual_seed(ctx.seed)
    noise_rng = ctx.rng(2)
    device = ctx.device
    n, d = len(train.agents), train.obs_dim
    actors = Actors(n, d, cfg.hidden, train.action_dims).to(device)
    critics = Critics(n, d, cfg.hidden, cfg.centralised).to(device)
    target_actors = Actors(n, d, cfg.hidden, train.action_dims).to(device)
    target_critics = Critics(n, d, cfg.hidden, cfg.centralised).to(device)
    target_actors.load_state_dict(actors.state_dict())
    target_critics.load_state_dict(critics.state_dict())
    actor_opt = torch.optim.Adam(actors.parameters(), lr=cfg.actor_lr)
    critic_opt = torch.optim.Adam(critics.parameters(), lr=cfg.critic_lr)
    buffer = ReplayBuffer(cfg.buffer_size, n, d, device)
    policy = DecentralisedPolicy(actors, device)
    env = train.make_vector_env(cfg.n_envs)
    action_mask = actors.mask.cpu().numpy()  # [n, 5]: the entries each agent's environment runs

    def update() -> None:
        obs, actions, rewards, next_obs, terminated = buffer.sample(cfg.batch_size, gen)
        targets = critic_targets(rewards, next_obs, terminated, target_actors, target_critics, cfg.gamma)
        loss = critic_loss(obs, actions, targets, critics)
        critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        clip_per_agent(critics, cfg.max_grad_norm)
        critic_opt.step()

        critics.requires_grad_(False)  # the actor step must not spend time on critic gradients
        pre = actors.preactivation(obs)
        # Lowe et al.'s regulariser keeps the pre-sigmoid outputs small, away from saturation.
        loss = actor_losses(obs, actions, actors.squash(pre), critics).sum()
        loss = loss + cfg.actor_reg * pre.pow(2).mean((0, 2)).sum()
        actor_opt.zero_grad(set_to_none=True)
        loss.backward()
        critics.requires_grad_(True)
        clip_per_agent(actors, cfg.max_grad_norm)
        actor_opt.step()
        polyak(target_actors, actors, cfg.tau)
        polyak(target_critics, critics, cfg.tau)

    checkpoint_every = max(cfg.n_envs, cfg.episodes // cfg.checkpoints)
    episodes, vector_steps, next_checkpoint = 0, 0, checkpoint_every
    while episodes + cfg.n_envs <= cfg.episodes:  # never more episodes than the budget
        obs = env.reset()
        for _ in range(train.max_cycles):
            if episodes < cfg.random_episodes:
                actions = noise_rng.random((cfg.n_envs, n, ACTION_DIM), dtype=np.float32) * action_mask
            else:
                actions = policy.act(obs) + cfg.noise_std * noise_rng.standard_normal((cfg.n_envs, n, ACTION_DIM),
                                                                                       dtype=np.float32)
                # The policy clips its own exploration: the buffer then holds the executed action.
                actions = np.clip(actions, ACTION_LOW, ACTION_HIGH) * action_mask
            next_obs, rewards, terminated, truncated = env.step(actions)
            buffer.add(obs, actions, rewards, next_obs, terminated)  # truncation is not termination
            obs = next_obs
            vector_steps += 1
            ctx.count(cfg.n_envs)
            if buffer.size >= cfg.batch_size and vector_steps % cfg.update_every == 0:
                update()
        episodes += cfg.n_envs
        ctx.progress(episodes, cfg.episodes)
        if episodes >= next_checkpoint or episodes + cfg.n_envs > cfg.episodes:
            next_checkpoint += checkpoint_every
            ctx.checkpoint(policy, step=episodes)
    return policy


# ---------------------------------------------------------------- methods
def maddpg(train_data: MPETraining, ctx) -> DecentralisedPolicy:
    """Reference: MADDPG, centralised critics over all observations and actions."""
    return train(train_data, ctx, _config(ctx))


def independent_ddpg(train_data: MPETraining, ctx) -> DecentralisedPolicy:
    """Independent DDPG: the same algorithm with each critic seeing its own observation and action only."""
    return train(train_data, ctx, _config(ctx, centralised=False))


def random_policy(train_data: MPETraining, ctx) -> RandomPolicy:
    """Floor: uniform random actions in [0, 1]."""
    ctx.record_config(policy="uniform random actions in [0, 1]")
    # Stream 4: not the stream the harness draws its normalising random policy from (3 of the seal).
    return RandomPolicy([ctx.seed, 4])


def oracle_assignment(train_data: MPETraining, ctx) -> OraclePolicy:
    """Ceiling: the task's scripted controller (agents split the landmarks by the cheapest matching)."""
    ctx.record_config(policy="scripted: cheapest agent-landmark matching, PD control to the assigned landmark")
    return OraclePolicy(train_data.variant)
