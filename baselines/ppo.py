"""Proximal policy optimisation (Schulman et al. 2017) for continuous actions, CleanRL-style.

One file, top to bottom: a Gaussian actor and a critic (separate tanh MLPs, orthogonal
initialisation), observation normalisation and reward scaling by running statistics, rollouts in
a gymnasium 1.x vector environment in ``AutoresetMode.SAME_STEP``, generalised advantage
estimation, and the clipped surrogate objective. The model of style is CleanRL's
``ppo_continuous_action.py``; the places where this file departs from it say why. The peer checks
(GAE against stable-baselines3's ``RolloutBuffer``, the Gaussian log-probability against SB3's
``DiagGaussianDistribution``, running statistics against SB3's ``RunningMeanStd``) live in
``tests/test_ppo.py``.

The traps, and where each is handled:

* **Truncation is not termination.** Pendulum never terminates; every episode is cut by its time
  limit after 200 steps. A truncated step still has a future, so its TD target bootstraps from
  V(last observation of the episode), which the vector env hands back in ``info["final_obs"]``
  (the observation in ``obs`` is already the next episode's first). Only ``terminated`` zeroes the
  bootstrap; ``terminated or truncated`` stops the advantage recursion. See :func:`gae`.
* **Log-probability of the raw sample, summed over action dimensions.** The policy samples an
  unbounded Gaussian action; the environment gets it clipped to [-1, 1] and scaled to the bounds
  (:func:`to_env_action`), but the buffer keeps the raw sample, so that the log-probability stored
  and the one recomputed during the update describe the same action. A diagonal Gaussian's density
  is the product over dimensions, so the log-probability is the sum (:func:`gaussian_log_prob`).
* **The ratio comes from log-probabilities**, ``exp(new_logp - old_logp)``: a ratio of densities
  underflows to 0/0 for actions far in the tails.
* **The value loss is against returns recomputed each epoch** (Andrychowicz et al. 2021, "What
  matters in on-policy RL", recommend recomputing advantages every pass): at the start of every
  epoch the current critic re-values the whole rollout, GAE is run again, and the minibatch loss
  compares the critic's fresh prediction (with its gradient) to those returns. Computing the values
  once, outside the loop, leaves the advantages stale and, in the version this task's seed code
  had, left the critic without a gradient.
* **Advantages are normalised per minibatch** (mean 0, std 1), which makes the step size of the
  policy independent of the reward scale.
* **Seeds**: sub-environment ``i`` is seeded ``training_seed(0) + i`` once, at its first reset;
  its later episodes come from its own seeded generator (reseeding every reset with the same seed
  would replay one initial state forever). Sampling noise, initial weights and minibatch order come
  from ``ctx.seed``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from advbench.tasks.ppo.contract import EnvFactory


@dataclass
class Config:
    total_steps: int = 200_000  # overridden by the budget: ctx.limits["env_steps"]
    n_envs: int = 8  # sub-environments stepped together: one policy forward serves all of them
    n_steps: int = 256  # steps per sub-environment per rollout: a batch of n_envs * n_steps
    n_epochs: int = 10
    minibatch_size: int = 256
    lr: float = 1e-3
    anneal_lr: bool = True  # linear decay to 0 over the budget, as CleanRL does
    gamma: float = 0.9  # Pendulum's reward is immediate: a short horizon learns much faster (RL-Zoo uses 0.9)
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden: int = 64
    # In normalised action units ([-1, 1] spans the action bounds): std 0.61, a torque of 1.2 on
    # Pendulum. Measured at 60k steps, seeds 0 and 1: -207 and -219 against -209 and -353 at std 1.
    log_std_init: float = -0.5
    normalize_obs: bool = True
    normalize_reward: bool = True  # divide rewards by the std of a running discounted return
    clip_obs: float = 10.0
    checkpoint_every: int = 10_000  # env steps between checkpoints handed to the harness
    variant_overrides: dict = field(default_factory=dict)  # filled from VARIANTS, recorded as used


# Per-variant departures from Config, chosen by measurement (see tasks/ppo/__init__.py).
VARIANTS: dict[str, dict] = {
    "pendulum": {},
    "mountaincar": {"gamma": 0.99, "log_std_init": 1.0},
    "inverted_pendulum": {"gamma": 0.99},
}


# ---------------------------------------------------------------- running statistics
class RunningMeanStd:
    """Mean and variance of a stream, merged batch by batch (Chan et al.'s parallel algorithm)."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4) -> None:
        self.mean = np.zeros(shape, np.float64)
        self.var = np.ones(shape, np.float64)
        self.count = epsilon  # as SB3 and gymnasium: a tiny prior count instead of a special case

    def update(self, batch: np.ndarray) -> None:
        batch = np.asarray(batch, np.float64)
        b_mean, b_var, b_count = batch.mean(axis=0), batch.var(axis=0), batch.shape[0]
        delta = b_mean - self.mean
        total = self.count + b_count
        self.mean = self.mean + delta * b_count / total
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        self.var = m2 / total
        self.count = total


class ObsNormalizer:
    """(obs - mean) / std, clipped; statistics updated on every observation the rollout sees."""

    def __init__(self, obs_dim: int, enabled: bool, clip: float) -> None:
        self.rms, self.enabled, self.clip = RunningMeanStd((obs_dim,)), enabled, clip

    def __call__(self, obs: np.ndarray, update: bool) -> np.ndarray:
        if not self.enabled:
            return np.asarray(obs, np.float32)
        if update:
            self.rms.update(obs)
        return normalize(obs, self.rms.mean, self.rms.var, self.clip)


def normalize(obs: np.ndarray, mean: np.ndarray, var: np.ndarray, clip: float) -> np.ndarray:
    return np.clip((obs - mean) / np.sqrt(var + 1e-8), -clip, clip).astype(np.float32)


class RewardScaler:
    """Divides rewards by the running std of the discounted return (gymnasium's NormalizeReward).

    The discounted return restarts when an episode ends, truncated or not; the rewards are scaled,
    never shifted, so the sign of every reward (and the optimal policy) is kept.
    """

    def __init__(self, n_envs: int, gamma: float, enabled: bool) -> None:
        self.rms, self.gamma, self.enabled = RunningMeanStd(()), gamma, enabled
        self.discounted = np.zeros(n_envs)

    def __call__(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        if not self.enabled:
            return rewards.astype(np.float32)
        self.discounted = self.discounted * self.gamma + rewards
        self.rms.update(self.discounted)
        self.discounted[dones] = 0.0
        return (rewards / math.sqrt(self.rms.var + 1e-8)).astype(np.float32)


# ---------------------------------------------------------------- the agent
def layer(n_in: int, n_out: int, gain: float = math.sqrt(2)) -> nn.Linear:
    """Orthogonal weights, zero bias (CleanRL, after the PPO implementation-details study)."""
    lin = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(lin.weight, gain)
    nn.init.zeros_(lin.bias)
    return lin


def mlp(n_in: int, hidden: int, n_out: int, out_gain: float) -> nn.Sequential:
    return nn.Sequential(layer(n_in, hidden), nn.Tanh(), layer(hidden, hidden), nn.Tanh(),
                         layer(hidden, n_out, out_gain))


class ActorCritic(nn.Module):
    """Separate actor and critic networks; a state-independent log-std, one per action dimension."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int, log_std_init: float) -> None:
        super().__init__()
        self.critic = mlp(obs_dim, hidden, 1, out_gain=1.0)
        # Gain 0.01 on the last actor layer: the initial mean is ~0 whatever the observation, so
        # early exploration is the Gaussian's, not an arbitrary deterministic bias.
        self.actor_mean = mlp(obs_dim, hidden, act_dim, out_gain=0.01)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(log_std_init)))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)


def gaussian_log_prob(action: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(action; mean, diag(exp(log_std))^2), summed over the last (action) dimension."""
    z = (action - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def gaussian_entropy(log_std: torch.Tensor) -> torch.Tensor:
    """Entropy of the diagonal Gaussian, summed over action dimensions (independent of the mean)."""
    return (0.5 + 0.5 * math.log(2 * math.pi) + log_std).sum(-1)


def to_env_action(raw: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """A raw policy action (normalised units, unbounded) as the environment's action.

    Clip to [-1, 1] first, then map affinely onto [low, high]. The buffer keeps ``raw``.
    """
    return (low + (np.clip(raw, -1.0, 1.0) + 1.0) * 0.5 * (high - low)).astype(np.float32)


# ---------------------------------------------------------------- GAE
def gae(rewards: np.ndarray, values: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
        final_values: np.ndarray, last_values: np.ndarray, gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimates and returns (= advantages + values), arrays of (n_steps, n_envs).

    ``values[t]`` is V(s_t); ``last_values`` is V of the observation after the last step. When the
    episode of sub-environment e ends at step t, ``final_values[t, e]`` is V of that episode's last
    observation (``info["final_obs"]``); it is the bootstrap of a truncated step, while a terminated
    step bootstraps from 0. Either way the recursion does not carry advantages across the boundary.
    """
    n_steps = rewards.shape[0]
    advantages = np.zeros_like(values, dtype=np.float64)
    dones = terminated | truncated
    running = np.zeros(values.shape[1:], np.float64)
    for t in reversed(range(n_steps)):
        next_values = last_values if t == n_steps - 1 else values[t + 1]
        # The successor's value: the next observation's, unless the episode ended here; then the
        # final observation's for a truncation and nothing for a termination.
        next_values = np.where(dones[t], np.where(terminated[t], 0.0, final_values[t]), next_values)
        delta = rewards[t] + gamma * next_values - values[t]
        running = delta + gamma * lam * (1.0 - dones[t]) * running
        advantages[t] = running
    return advantages, advantages + values


# ---------------------------------------------------------------- rollouts
@dataclass
class Rollout:
    """One batch of experience, (n_steps, n_envs, ...). Observations are stored normalised."""

    obs: np.ndarray
    raw_actions: np.ndarray  # the Gaussian samples, before clipping and scaling
    log_probs: np.ndarray  # of the raw samples, summed over action dimensions
    rewards: np.ndarray  # scaled
    terminated: np.ndarray
    truncated: np.ndarray
    final_obs: np.ndarray  # normalised last observation of an episode that ended at (t, e); else 0
    last_obs: np.ndarray  # normalised observation after the last step, (n_envs, obs_dim)


class PPO:
    """The training state: environments, agent, optimiser and normalisers."""

    def __init__(self, factory: EnvFactory, cfg: Config, seed: int, device: str) -> None:
        self.cfg, self.factory, self.device = cfg, factory, torch.device(device)
        torch.manual_seed(seed)
        self.noise = torch.Generator().manual_seed(seed)  # action noise, on the CPU whatever the device
        self.rng = np.random.default_rng([seed, 7])  # minibatch order
        self.envs = factory.make_vector(cfg.n_envs, factory.training_seed(0))
        self.low = np.asarray(factory.action_low, np.float32)
        self.high = np.asarray(factory.action_high, np.float32)
        self.agent = ActorCritic(factory.obs_dim, factory.act_dim, cfg.hidden, cfg.log_std_init).to(self.device)
        # eps 1e-5 as CleanRL (PyTorch's default 1e-8 was tuned for other problems).
        self.opt = torch.optim.Adam(self.agent.parameters(), lr=cfg.lr, eps=1e-5)
        self.obs_norm = ObsNormalizer(factory.obs_dim, cfg.normalize_obs, cfg.clip_obs)
        self.reward_scaler = RewardScaler(cfg.n_envs, cfg.gamma, cfg.normalize_reward)
        obs, _ = self.envs.reset()  # each sub-environment applies its own seed on this first reset
        self.obs = self.obs_norm(obs.reshape(cfg.n_envs, -1), update=True)

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(x, dtype=torch.float32, device=self.device)

    @torch.no_grad()
    def collect(self) -> Rollout:
        cfg, n, e = self.cfg, self.cfg.n_steps, self.cfg.n_envs
        obs_dim, act_dim = self.factory.obs_dim, self.factory.act_dim
        obs_buf = np.zeros((n, e, obs_dim), np.float32)
        raw_buf = np.zeros((n, e, act_dim), np.float32)
        logp_buf = np.zeros((n, e), np.float32)
        rew_buf = np.zeros((n, e), np.float32)
        term_buf = np.zeros((n, e), bool)
        trunc_buf = np.zeros((n, e), bool)
        final_buf = np.zeros((n, e, obs_dim), np.float32)
        log_std = self.agent.log_std
        std = torch.exp(log_std).cpu()
        for t in range(n):
            obs_buf[t] = self.obs
            mean = self.agent.actor_mean(self._tensor(self.obs)).cpu()
            raw = mean + std * torch.randn(mean.shape, generator=self.noise)
            logp_buf[t] = gaussian_log_prob(raw, mean, log_std.cpu()).numpy()
            raw_np = raw.numpy()
            raw_buf[t] = raw_np
            next_obs, reward, terminated, truncated, info = self.envs.step(
                to_env_action(raw_np, self.low, self.high).reshape((e, *self.factory.action_shape)))
            dones = terminated | truncated
            term_buf[t], trunc_buf[t] = terminated, truncated
            rew_buf[t] = self.reward_scaler(np.asarray(reward, np.float64), dones)
            if dones.any():
                # SAME_STEP autoreset: next_obs[i] already starts the next episode; the finished
                # episode's last observation, which a truncated step bootstraps from, is here.
                for i in np.flatnonzero(dones):
                    final = np.asarray(info["final_obs"][i], np.float32).reshape(1, -1)
                    final_buf[t, i] = self.obs_norm(final, update=False)[0]
            self.obs = self.obs_norm(next_obs.reshape(e, -1), update=True)
        return Rollout(obs_buf, raw_buf, logp_buf, rew_buf, term_buf, trunc_buf, final_buf, self.obs.copy())

    @torch.no_grad()
    def targets(self, ro: Rollout) -> tuple[np.ndarray, np.ndarray]:
        """Advantages and returns under the *current* critic (called at the start of every epoch)."""
        n, e = ro.rewards.shape
        values = self.agent.value(self._tensor(ro.obs.reshape(n * e, -1))).cpu().numpy().reshape(n, e)
        dones = ro.terminated | ro.truncated
        final_values = np.zeros((n, e), np.float32)
        if dones.any():
            final_values[dones] = self.agent.value(self._tensor(ro.final_obs[dones])).cpu().numpy()
        last_values = self.agent.value(self._tensor(ro.last_obs)).cpu().numpy()
        return gae(ro.rewards, values, ro.terminated, ro.truncated, final_values, last_values,
                   self.cfg.gamma, self.cfg.gae_lambda)

    def update(self, ro: Rollout) -> dict[str, float]:
        cfg = self.cfg
        n, e = ro.rewards.shape
        batch = n * e
        obs = self._tensor(ro.obs.reshape(batch, -1))
        raw = self._tensor(ro.raw_actions.reshape(batch, -1))
        old_logp = self._tensor(ro.log_probs.reshape(batch))
        stats: dict[str, float] = {}
        for _ in range(cfg.n_epochs):
            adv_np, ret_np = self.targets(ro)
            advantages, returns = self._tensor(adv_np.reshape(batch)), self._tensor(ret_np.reshape(batch))
            order = torch.as_tensor(self.rng.permutation(batch), device=self.device)
            for start in range(0, batch, cfg.minibatch_size):
                mb = order[start: start + cfg.minibatch_size]
                losses = ppo_losses(self.agent, obs[mb], raw[mb], old_logp[mb], advantages[mb], returns[mb],
                                    cfg.clip_coef)
                loss = losses["policy"] - cfg.ent_coef * losses["entropy"] + cfg.vf_coef * losses["value"]
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self.agent.parameters(), cfg.max_grad_norm)
                self.opt.step()
            stats = {k: float(v.detach()) for k, v in losses.items()}
        return stats

    def policy(self) -> "GaussianMeanPolicy":
        """A frozen copy of the actor's mean and the observation statistics, on the CPU."""
        actor = copy.deepcopy(self.agent.actor_mean).cpu().eval()
        for p in actor.parameters():
            p.requires_grad_(False)
        rms = self.obs_norm.rms
        return GaussianMeanPolicy(actor, rms.mean.copy(), rms.var.copy(), self.cfg.normalize_obs, self.cfg.clip_obs,
                                  self.low, self.high)


def ppo_losses(agent: ActorCritic, obs: torch.Tensor, raw_actions: torch.Tensor, old_log_probs: torch.Tensor,
               advantages: torch.Tensor, returns: torch.Tensor, clip_coef: float) -> dict[str, torch.Tensor]:
    """Clipped surrogate, value and entropy terms on one minibatch (the critic's value is fresh)."""
    mean = agent.actor_mean(obs)
    new_log_probs = gaussian_log_prob(raw_actions, mean, agent.log_std)
    ratio = torch.exp(new_log_probs - old_log_probs)  # from log-probabilities: densities underflow
    adv = (advantages - advantages.mean()) / (advantages.std() + 1e-8) if advantages.numel() > 1 else advantages
    policy_loss = torch.max(-adv * ratio, -adv * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)).mean()
    value_loss = 0.5 * (agent.value(obs) - returns).pow(2).mean()
    entropy = gaussian_entropy(agent.log_std)
    with torch.no_grad():
        approx_kl = ((ratio - 1) - (new_log_probs - old_log_probs)).mean()  # Schulman's k3 estimator
        clip_fraction = ((ratio - 1).abs() > clip_coef).float().mean()
    return {"policy": policy_loss, "value": value_loss, "entropy": entropy, "approx_kl": approx_kl,
            "clip_fraction": clip_fraction}


# ---------------------------------------------------------------- solutions
class GaussianMeanPolicy:
    """The solution: the actor's mean on normalised observations, clipped and scaled to the bounds."""

    def __init__(self, actor: nn.Module, obs_mean: np.ndarray, obs_var: np.ndarray, normalize_obs: bool,
                 clip_obs: float, low: np.ndarray, high: np.ndarray) -> None:
        self.actor, self.obs_mean, self.obs_var = actor, obs_mean, obs_var
        self.normalize_obs, self.clip_obs, self.low, self.high = normalize_obs, clip_obs, low, high

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, np.float32).reshape(len(obs), -1)
        if self.normalize_obs:
            x = normalize(x, self.obs_mean, self.obs_var, self.clip_obs)
        mean = self.actor(torch.as_tensor(x)).numpy()
        return to_env_action(mean, self.low, self.high)


class RandomPolicy:
    """The floor: uniform random actions within the bounds (its generator is seeded from the run seed)."""

    def __init__(self, low: np.ndarray, high: np.ndarray, seed: int) -> None:
        self.low, self.high = np.asarray(low, np.float32), np.asarray(high, np.float32)
        self.rng = np.random.default_rng([seed, 3])

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.rng.uniform(self.low, self.high, size=(len(obs), self.low.size)).astype(np.float32)


# ---------------------------------------------------------------- methods
def train(factory: EnvFactory, ctx) -> GaussianMeanPolicy:
    """Reference: PPO with the clipped surrogate objective, GAE(λ) and per-epoch recomputed targets."""
    overrides = VARIANTS.get(factory.variant, {})
    cfg = Config(total_steps=int(ctx.limits["env_steps"]), variant_overrides=dict(overrides), **overrides)
    ctx.record_config(**asdict(cfg), training_seed=factory.training_seed(0))
    ppo = PPO(factory, cfg, ctx.seed, ctx.device)
    batch = cfg.n_envs * cfg.n_steps
    n_updates = max(1, cfg.total_steps // batch)
    steps, next_checkpoint = 0, cfg.checkpoint_every
    policy = ppo.policy()
    for update in range(n_updates):
        if cfg.anneal_lr:
            for group in ppo.opt.param_groups:
                group["lr"] = cfg.lr * (1.0 - update / n_updates)
        rollout = ppo.collect()
        steps += batch
        ctx.count(batch)
        ppo.update(rollout)
        ctx.progress(steps, n_updates * batch)
        policy = ppo.policy()
        if steps >= next_checkpoint or update == n_updates - 1:
            ctx.checkpoint(policy, step=steps)
            while next_checkpoint <= steps:
                next_checkpoint += cfg.checkpoint_every
    ppo.envs.close()
    return policy


def random_policy(factory: EnvFactory, ctx) -> RandomPolicy:
    """Floor: actions drawn uniformly within the bounds, whatever the observation."""
    return RandomPolicy(np.asarray(factory.action_low), np.asarray(factory.action_high), ctx.seed)
