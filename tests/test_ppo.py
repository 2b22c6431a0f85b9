"""ppo: GAE, log-probabilities and running statistics against stable-baselines3; the traps; the task.

Peer checks on identical inputs: :func:`baselines.ppo.gae` against SB3's
``RolloutBuffer.compute_returns_and_advantage`` (fed the way SB3's own ``collect_rollouts`` feeds
it, time-limit bootstrap folded into the reward), the summed Gaussian log-probability against
SB3's ``DiagGaussianDistribution`` and ``torch.distributions.Normal``, the observation statistics
against SB3's ``RunningMeanStd``. The benchmark against SB3's PPO with the RL-Zoo hyperparameters
is ``test_bench_ppo_against_sb3_pendulum`` (off by default: ``pytest --benchmark-enable -k
bench_ppo -s``).
"""

from __future__ import annotations

import math
import pickle
import sys
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
gym = pytest.importorskip("gymnasium")

from advbench.baselines import ppo as P  # noqa: E402
from advbench.errors import UsageError  # noqa: E402
from advbench.profiles import get_profile  # noqa: E402
from advbench.solution import LocalSolution, SolutionError  # noqa: E402
from advbench.task import Seal  # noqa: E402
from advbench.tasks.ppo import SPEC  # noqa: E402
from advbench.tasks.ppo import contract as C  # noqa: E402
from advbench.tasks.ppo import heldout as H  # noqa: E402

GAMMA, LAM = 0.9, 0.95


def small_ppo(variant: str = "pendulum", seed: int = 0, **overrides) -> P.PPO:
    factory = H.make_factory(variant, seed)
    cfg = P.Config(**{"n_envs": 2, "n_steps": 64, "minibatch_size": 32, "n_epochs": 2, **overrides})
    return P.PPO(factory, cfg, seed, "cpu")


def episode_layout(rng: np.random.Generator, n_steps: int, n_envs: int):
    """Random rewards and values with episode ends of both kinds, mid-rollout and at the last step."""
    rewards = rng.normal(size=(n_steps, n_envs))
    values = rng.normal(size=(n_steps, n_envs))
    final_values = rng.normal(size=(n_steps, n_envs))
    last_values = rng.normal(size=n_envs)
    terminated = np.zeros((n_steps, n_envs), bool)
    truncated = np.zeros((n_steps, n_envs), bool)
    truncated[5, 0] = truncated[11, 1] = True  # time limits mid-rollout
    terminated[3, 1] = terminated[8, 2] = True  # real terminations mid-rollout
    truncated[n_steps - 1, 2] = True  # a time limit on the last step
    terminated[n_steps - 1, 0] = True  # a termination on the last step
    return rewards, values, terminated, truncated, final_values, last_values


# ---------------------------------------------------------------- peer checks (stable-baselines3)
@pytest.mark.parametrize("gamma,lam", [(GAMMA, LAM), (0.99, 1.0), (0.99, 0.0)])
def test_gae_matches_sb3_rollout_buffer_with_truncations_mid_rollout(gamma, lam):
    buffers = pytest.importorskip("stable_baselines3.common.buffers")
    n_steps, n_envs = 16, 3
    rewards, values, terminated, truncated, final_values, last_values = episode_layout(
        np.random.default_rng(0), n_steps, n_envs)
    ours_adv, ours_ret = P.gae(rewards, values, terminated, truncated, final_values, last_values, gamma, lam)

    space = gym.spaces.Box(-1, 1, (1,), np.float32)
    buf = buffers.RolloutBuffer(n_steps, space, space, device="cpu", gae_lambda=lam, gamma=gamma, n_envs=n_envs)
    dones = terminated | truncated
    episode_start = np.zeros(n_envs, np.float32)
    for t in range(n_steps):
        # As SB3's collect_rollouts does: a time-limit step gets gamma * V(terminal observation)
        # added to its reward, and the step counts as done.
        reward = rewards[t] + gamma * final_values[t] * truncated[t]
        buf.add(np.zeros((n_envs, 1), np.float32), np.zeros((n_envs, 1), np.float32), reward.astype(np.float32),
                episode_start, torch.as_tensor(values[t], dtype=torch.float32), torch.zeros(n_envs))
        episode_start = dones[t].astype(np.float32)
    buf.compute_returns_and_advantage(torch.as_tensor(last_values, dtype=torch.float32), dones[-1])
    np.testing.assert_allclose(ours_adv, buf.advantages, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours_ret, buf.returns, rtol=1e-5, atol=1e-5)


def test_gaussian_log_prob_and_entropy_match_sb3_and_torch_summed_over_action_dims():
    distributions = pytest.importorskip("stable_baselines3.common.distributions")
    g = torch.Generator().manual_seed(0)
    mean, log_std = torch.randn(64, 3, generator=g), torch.randn(3, generator=g) * 0.5
    actions = mean + 3 * torch.randn(64, 3, generator=g)
    ours = P.gaussian_log_prob(actions, mean, log_std)
    peer = distributions.DiagGaussianDistribution(3).proba_distribution(mean, log_std)
    torch.testing.assert_close(ours, peer.log_prob(actions), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(P.gaussian_entropy(log_std).expand(64), peer.entropy(), rtol=1e-5, atol=1e-5)
    normal = torch.distributions.Normal(mean, log_std.exp())
    torch.testing.assert_close(ours, normal.log_prob(actions).sum(-1), rtol=1e-5, atol=1e-5)
    # The trap: one dimension's log-probability (or their mean) is not the action's.
    assert not torch.allclose(ours, normal.log_prob(actions).mean(-1))


def test_running_mean_std_matches_sb3():
    rms_mod = pytest.importorskip("stable_baselines3.common.running_mean_std")
    rng = np.random.default_rng(1)
    ours, peer = P.RunningMeanStd((3,)), rms_mod.RunningMeanStd(shape=(3,))
    for n in (1, 8, 8, 200, 3):
        batch = rng.normal(loc=[1.0, -5.0, 20.0], scale=[0.1, 2.0, 7.0], size=(n, 3))
        ours.update(batch)
        peer.update(batch)
    np.testing.assert_allclose(ours.mean, peer.mean, rtol=1e-12)
    np.testing.assert_allclose(ours.var, peer.var, rtol=1e-12)
    assert ours.count == pytest.approx(peer.count)


# ---------------------------------------------------------------- traps
def test_truncation_bootstraps_from_the_final_observation_and_termination_does_not():
    one = np.ones((1, 1))
    no = np.zeros((1, 1), bool)
    yes = np.ones((1, 1), bool)
    final, last = np.full((1, 1), 10.0), np.full(1, -50.0)  # `last` is the next episode's start
    adv_trunc, _ = P.gae(one, np.zeros((1, 1)), no, yes, final, last, GAMMA, LAM)
    adv_term, _ = P.gae(one, np.zeros((1, 1)), yes, no, final, last, GAMMA, LAM)
    adv_going, _ = P.gae(one, np.zeros((1, 1)), no, no, final, last, GAMMA, LAM)
    assert adv_trunc[0, 0] == pytest.approx(1 + GAMMA * 10.0)  # bootstrap from V(final obs)
    assert adv_term[0, 0] == pytest.approx(1.0)  # no future after a termination
    assert adv_going[0, 0] == pytest.approx(1 + GAMMA * -50.0)  # same episode: V(next obs)

    # Nothing crosses an episode boundary: changing what comes after it leaves the steps before alone.
    rewards, values, terminated, truncated, final_values, last_values = episode_layout(np.random.default_rng(2), 16, 3)
    base, _ = P.gae(rewards, values, terminated, truncated, final_values, last_values, GAMMA, LAM)
    later = rewards.copy()
    later[6:, 0] += 100.0  # env 0 truncates at step 5
    changed, _ = P.gae(later, values, terminated, truncated, final_values, last_values, GAMMA, LAM)
    np.testing.assert_array_equal(base[:6, 0], changed[:6, 0])
    assert not np.allclose(base[6:, 0], changed[6:, 0])


def test_rollout_bootstraps_truncations_from_same_step_final_obs_and_seeds_each_env_once():
    """Pendulum truncates at step 200: the rollout must keep the finished episode's last observation
    (SAME_STEP autoreset puts the next episode's first one in ``obs``), and each sub-environment's
    next episode comes from its own seeded generator, not from a reseed."""
    ppo = small_ppo(n_steps=260, normalize_obs=False, normalize_reward=False)
    ro = ppo.collect()
    assert ro.truncated[199].all() and not ro.truncated[:199].any() and not ro.terminated.any()
    start = ppo.factory.training_seed(0)
    for i in range(ppo.cfg.n_envs):
        env = ppo.factory.make(start + i)
        obs, _ = env.reset()
        np.testing.assert_allclose(ro.obs[0, i], obs, rtol=1e-6)
        for t in range(200):
            obs, *_ = env.step(P.to_env_action(ro.raw_actions[t, i], ppo.low, ppo.high))
        np.testing.assert_allclose(ro.final_obs[199, i], obs, rtol=1e-5, atol=1e-6)  # the true last state
        second, _ = env.reset()  # no seed: the env's own generator goes on
        np.testing.assert_allclose(ro.obs[200, i], second, rtol=1e-6)
        assert not np.allclose(second, ro.obs[0, i])  # a reseed would have replayed the first start
    assert not np.allclose(ro.obs[0, 0], ro.obs[0, 1])  # sub-environments have different seeds


def test_buffer_keeps_raw_samples_so_the_first_ratio_is_exactly_one():
    """Actions outside the bounds are clipped for the environment only; the log-probability recomputed
    in the update is of the very action stored, so before any update the ratio is 1 everywhere."""
    ppo = small_ppo(log_std_init=1.0)  # std e in normalised units: most samples fall outside [-1, 1]
    ro = ppo.collect()
    raw = ro.raw_actions.reshape(-1, 1)
    assert (np.abs(raw) > 1).mean() > 0.3
    env_actions = P.to_env_action(raw, ppo.low, ppo.high)
    assert env_actions.min() >= -2.0 and env_actions.max() <= 2.0
    with torch.no_grad():
        obs = torch.as_tensor(ro.obs.reshape(len(raw), -1))
        new = P.gaussian_log_prob(torch.as_tensor(raw), ppo.agent.actor_mean(obs), ppo.agent.log_std)
    torch.testing.assert_close(new, torch.as_tensor(ro.log_probs.reshape(-1)), rtol=1e-5, atol=1e-5)
    # Had the buffer held the clipped actions, the recomputed log-probabilities would differ.
    clipped = torch.as_tensor(np.clip(raw, -1, 1))
    with torch.no_grad():
        wrong = P.gaussian_log_prob(clipped, ppo.agent.actor_mean(obs), ppo.agent.log_std)
    assert not torch.allclose(wrong, torch.as_tensor(ro.log_probs.reshape(-1)), atol=1e-3)


def test_ratio_from_log_probs_is_finite_far_in_the_tails():
    torch.manual_seed(0)
    agent = P.ActorCritic(3, 2, 16, log_std_init=-3.0)
    obs = torch.randn(32, 3)
    with torch.no_grad():
        raw = agent.actor_mean(obs) + 40.0  # ~800 standard deviations away: densities underflow to 0
        old = P.gaussian_log_prob(raw, agent.actor_mean(obs), agent.log_std)
        density = torch.distributions.Normal(agent.actor_mean(obs), agent.log_std.exp()).log_prob(raw).exp().prod(-1)
    assert (density == 0).all()  # so a ratio of densities would be 0/0
    losses = P.ppo_losses(agent, obs, raw, old, torch.randn(32), torch.randn(32), 0.2)
    assert losses["clip_fraction"] == 0 and abs(float(losses["approx_kl"])) < 1e-6
    losses["policy"].backward()
    assert all(torch.isfinite(p.grad).all() for p in agent.actor_mean.parameters())


def test_advantages_are_normalised_per_minibatch():
    torch.manual_seed(0)
    agent = P.ActorCritic(3, 1, 16, log_std_init=0.0)
    obs, raw = torch.randn(64, 3), torch.randn(64, 1)
    with torch.no_grad():
        old = P.gaussian_log_prob(raw, agent.actor_mean(obs), agent.log_std) + 0.1 * torch.randn(64)
    adv = torch.randn(64)
    base = P.ppo_losses(agent, obs, raw, old, adv, torch.zeros(64), 0.2)["policy"]
    scaled = P.ppo_losses(agent, obs, raw, old, 1000.0 * adv - 37.0, torch.zeros(64), 0.2)["policy"]
    torch.testing.assert_close(base, scaled, rtol=1e-4, atol=1e-5)


def test_value_targets_are_recomputed_every_epoch_and_the_critic_learns(monkeypatch):
    ppo = small_ppo(n_epochs=4)
    ro = ppo.collect()
    calls = []
    real_targets = ppo.targets

    def counting(rollout):
        calls.append(1)
        return real_targets(rollout)

    monkeypatch.setattr(ppo, "targets", counting)
    adv0, ret0 = real_targets(ro)
    obs = torch.as_tensor(ro.obs.reshape(-1, ro.obs.shape[-1]))
    with torch.no_grad():
        before = float(((ppo.agent.value(obs).numpy() - ret0.reshape(-1)) ** 2).mean())
    critic0 = [p.detach().clone() for p in ppo.agent.critic.parameters()]
    ppo.update(ro)
    assert len(calls) == ppo.cfg.n_epochs  # fresh advantages and returns at the start of every epoch
    assert any(not torch.equal(a, b) for a, b in zip(critic0, ppo.agent.critic.parameters()))
    with torch.no_grad():
        after = float(((ppo.agent.value(obs).numpy() - ret0.reshape(-1)) ** 2).mean())
    assert after < before
    adv1, _ = real_targets(ro)
    assert not np.allclose(adv0, adv1)  # the critic moved, so the advantages a new epoch sees did too


def test_action_scaling_maps_the_unit_box_onto_the_bounds_and_clips():
    low, high = np.array([0.0, -3.0], np.float32), np.array([1.0, 1.0], np.float32)
    raw = np.array([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0], [-7.0, 5.0]], np.float32)
    np.testing.assert_allclose(P.to_env_action(raw, low, high), [[0, -3], [1, 1], [0.5, -1], [0, 1]])


def test_solution_is_deterministic_in_bounds_and_pickles():
    ppo = small_ppo()
    policy = ppo.policy()
    obs = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32) * 5
    first = policy.act(obs)
    assert first.shape == (7, 1) and first.dtype == np.float32
    assert (np.abs(first) <= 2.0).all()
    np.testing.assert_array_equal(first, policy.act(obs))
    np.testing.assert_array_equal(first, pickle.loads(pickle.dumps(policy)).act(obs))


# ---------------------------------------------------------------- seeds and the environment factory
def test_training_factory_refuses_evaluation_seeds_and_is_reproducible():
    factory = H.make_factory("pendulum", 0)
    assert 0 <= factory.training_seed(0) < C.TRAIN_SEED_LIMIT - C.MAX_SUB_ENVS
    assert factory.training_seed(0) == H.make_factory("pendulum", 0).training_seed(0) != factory.training_seed(1)
    for bad in (C.TRAIN_SEED_LIMIT, C.EVAL_SEED_LOW + 5, -1):
        with pytest.raises(ValueError, match="training seeds"):
            factory.make(bad)
    with pytest.raises(ValueError, match="training seeds"):
        factory.make_vector(4, C.TRAIN_SEED_LIMIT - 2)
    env = factory.make(3)
    env.reset()
    with pytest.raises(ValueError, match="training seeds"):
        env.reset(seed=C.EVAL_SEED_LOW)
    a, b = factory.make_vector(3, 11), factory.make_vector(3, 11)
    assert a.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    np.testing.assert_array_equal(a.reset()[0], b.reset()[0])
    np.testing.assert_array_equal(a.action_space.sample(), b.action_space.sample())
    assert pickle.loads(pickle.dumps(factory)) == factory


def test_evaluation_seeds_are_disjoint_from_training_sealed_and_reproducible():
    seeds = H.evaluation_seeds(Seal(4))
    assert len(seeds) == C.N_EVAL_EPISODES == len(set(seeds)) >= 10
    assert all(C.EVAL_SEED_LOW <= s < C.EVAL_SEED_HIGH for s in seeds)
    assert seeds == H.evaluation_seeds(Seal(4)) != H.evaluation_seeds(Seal(5))
    assert seeds[0] == int(np.random.default_rng([4, 2]).integers(C.EVAL_SEED_LOW, C.EVAL_SEED_HIGH))

    task = H.PPOTask()
    plain = task.build(variant="pendulum", seed=4, budget=SPEC.budgets["quick"], seal=Seal(4))
    sealed = task.build(variant="pendulum", seed=4, budget=SPEC.budgets["quick"],
                        seal=Seal(4, key=b"some-secret-key-123"))
    assert plain.heldout["seeds"] == seeds and plain.description["evaluation_seeds"] == seeds
    assert not set(sealed.heldout["seeds"]) & set(seeds)
    assert all(s >= C.EVAL_SEED_LOW for s in sealed.heldout["seeds"])
    assert plain.train == sealed.train  # the method's view is public and the same
    assert "seeds" not in vars(plain.train) and str(seeds[0]) not in repr(plain.train)


def test_inverted_pendulum_without_mujoco_is_a_usage_error_naming_the_fix(monkeypatch):
    for name in [m for m in sys.modules if m == "mujoco" or m.startswith(("mujoco.", "gymnasium.envs.mujoco"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mujoco", None)  # import mujoco now raises ImportError
    with pytest.raises(UsageError, match=r"pip install 'gymnasium\[mujoco\]' \(that is: pip install mujoco"):
        H.PPOTask().build(variant="inverted_pendulum", seed=0, budget=SPEC.budgets["full"], seal=Seal(0))


def test_inverted_pendulum_builds_trains_and_scores_where_mujoco_loads():
    task = H.PPOTask()
    try:
        problem = task.build(variant="inverted_pendulum", seed=0, budget=SPEC.budgets["full"], seal=Seal(0))
    except UsageError as exc:  # not a missing peer: the variant is optional (no "could not import" here)
        pytest.skip(f"MuJoCo is not installed here, so the variant cannot run: {exc}")
    f = problem.train
    assert f.observation_shape == (4,) and f.action_low == (-3.0,) and f.action_high == (3.0,)
    ppo = P.PPO(f, P.Config(n_envs=2, n_steps=32, minibatch_size=32, n_epochs=1), 0, "cpu")
    ppo.update(ppo.collect())
    zero = task.evaluate(LocalSolution(_Returns(lambda n: np.zeros((n, 1), np.float32))), problem, get_profile("cpu"))
    assert 1 <= zero["mean_return"] < 1000  # +1 per step until the pole falls


# ---------------------------------------------------------------- scoring
class _Recorder:
    """A hand-written policy that records what the harness sends it."""

    def __init__(self, fn):
        self.fn, self.batches = fn, []

    def act(self, obs):
        self.batches.append((obs.shape, obs.dtype))
        return self.fn(obs)


def test_evaluate_steps_all_episodes_together_and_drops_finished_ones():
    task = H.PPOTask()
    problem = task.build(variant="mountaincar", seed=0, budget=SPEC.budgets["full"], seal=Seal(0))
    # Bang-bang on the velocity's sign pumps energy and reaches the flag in ~100-200 steps.
    pump = _Recorder(lambda obs: np.where(obs[:, 1:2] >= 0, 1.0, -1.0).astype(np.float32))
    metrics = task.evaluate(LocalSolution(pump), problem, get_profile("cpu"))
    assert metrics["mean_return"] > 80 and set(metrics) == {"mean_return", "iqm_return", "return_std"}
    sizes = [shape[0] for shape, _ in pump.batches]
    assert sizes[0] == C.N_EVAL_EPISODES and sizes[-1] < C.N_EVAL_EPISODES and sizes == sorted(sizes, reverse=True)
    assert len(sizes) < 999 and all(dtype == np.float32 and shape[1] == 2 for shape, dtype in pump.batches)


def test_evaluate_pendulum_zero_torque_and_random_policies():
    task = H.PPOTask()
    problem = task.build(variant="pendulum", seed=0, budget=SPEC.budgets["quick"], seal=Seal(0))
    zero = _Recorder(lambda obs: np.zeros((len(obs), 1), np.float32))
    m_zero = task.evaluate(LocalSolution(zero), problem, get_profile("cpu"))
    assert len(zero.batches) == 200 and all(shape == (C.N_EVAL_EPISODES, 3) for shape, _ in zero.batches)
    m_rand = task.evaluate(LocalSolution(P.RandomPolicy(np.array([-2.0]), np.array([2.0]), 0)), problem,
                           get_profile("cpu"))
    assert -1600 < m_rand["mean_return"] < -900 and -1600 < m_zero["mean_return"] < -500
    assert m_rand["iqm_return"] >= m_rand["mean_return"] - 200 and m_rand["return_std"] > 0


class _Returns:
    def __init__(self, out):
        self.out = out

    def act(self, obs):
        return self.out(len(obs))


@pytest.mark.parametrize("bad,error", [
    (lambda n: np.full((n, 1), np.nan, np.float32), "NaN"),
    (lambda n: np.zeros((n, 2), np.float32), "shape"),
    (lambda n: np.zeros((n,), np.float32), "shape"),
    (lambda n: np.zeros((n + 1, 1), np.float32), "shape"),
    (lambda n: np.full((n, 1), "a"), "float32"),
])
def test_evaluate_rejects_malformed_actions(bad, error):
    task = H.PPOTask()
    problem = task.build(variant="pendulum", seed=0, budget=SPEC.budgets["quick"], seal=Seal(0))
    with pytest.raises((ValueError, TypeError, SolutionError), match=error):
        task.evaluate(LocalSolution(_Returns(bad)), problem, get_profile("cpu"))


def test_out_of_range_actions_are_clipped_like_gymnasium_clip_action():
    task = H.PPOTask()
    problem = task.build(variant="pendulum", seed=0, budget=SPEC.budgets["quick"], seal=Seal(0))
    big = task.evaluate(LocalSolution(_Returns(lambda n: np.full((n, 1), 50.0, np.float32))), problem,
                        get_profile("cpu"))
    bound = task.evaluate(LocalSolution(_Returns(lambda n: np.full((n, 1), 2.0, np.float32))), problem,
                          get_profile("cpu"))
    assert big == bound


# ---------------------------------------------------------------- through the harness
@pytest.mark.slow
def test_quick_target_pendulum():
    from advbench.runner import run

    rec = run("ppo", "reference", budget="quick", seed=0, results_dir=None)
    assert rec["status"] == "ok", rec["error"]
    assert rec["targets_met"], rec["metrics"]
    assert rec["time_to_target_seconds"] is not None and rec["throughput"]["unit"] == "env steps/s"
    assert rec["throughput"]["work"] <= SPEC.budgets["quick"].limits["env_steps"]
    assert rec["config"]["data"]["evaluation_seeds"] == H.evaluation_seeds(Seal(0))


def test_floor_is_far_below_target():
    from advbench.runner import run

    rec = run("ppo", "floor", budget="quick", seed=0, results_dir=None)
    assert rec["status"] == "ok", rec["error"]
    assert rec["metrics"]["mean_return"] < -900 and not rec["targets_met"]


# ---------------------------------------------------------------- benchmark against SB3 (off by default)
ZOO_PENDULUM = dict(n_envs=4, n_steps=1024, gae_lambda=0.95, gamma=0.9, n_epochs=10, ent_coef=0.0, learning_rate=1e-3,
                    clip_range=0.2, use_sde=True, sde_sample_freq=4, batch_size=64)


def sb3_pendulum(steps: int, seed: int) -> tuple[float, float, object]:
    """SB3 PPO with RL-Zoo's Pendulum-v1 entry (hyperparams/ppo.yml: no ``normalize``, so no
    VecNormalize; batch_size is SB3's default, 64); deterministic actions for scoring."""
    from stable_baselines3 import PPO as SB3PPO
    from stable_baselines3.common.env_util import make_vec_env

    kw = dict(ZOO_PENDULUM)
    venv = make_vec_env("Pendulum-v1", n_envs=kw.pop("n_envs"), seed=seed)
    model = SB3PPO("MlpPolicy", venv, seed=seed, device="cpu", verbose=0, **kw)
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps)
    seconds = time.perf_counter() - t0

    def act(obs):
        return model.predict(obs, deterministic=True)[0]

    return seconds, model.num_timesteps, act


class _Counting:
    work = 0.0

    def __init__(self, steps: int, seed: int) -> None:
        self.seed, self.limits, self.device = seed, {"env_steps": steps}, "cpu"
        self.policy = None

    def record_config(self, **config):
        pass

    def count(self, n):
        self.work += n

    def progress(self, *args):
        pass

    def checkpoint(self, policy, step=None):
        self.policy = policy


def test_bench_ppo_against_sb3_pendulum(benchmark):
    """Same env steps, one thread each: returns on the same 50 held-out seeds and env steps/s."""
    if benchmark.disabled:
        pytest.skip("a 2-method training benchmark; run with --benchmark-enable -k bench_ppo -s")
    pytest.importorskip("stable_baselines3")
    torch.set_num_threads(1)
    steps, seed = SPEC.budgets["full"].limits["env_steps"], 0
    factory = H.make_factory("pendulum", seed)
    seeds = H.evaluation_seeds(Seal(seed))

    def score(act):
        returns, _ = C.run_episodes(act, factory.env_id, {}, seeds, factory.action_low, factory.action_high)
        return float(returns.mean())

    ctx = _Counting(int(steps), seed)
    t0 = time.perf_counter()
    policy = P.train(factory, ctx)  # checkpoints only keep the policy here: nothing is scored on the clock
    ours_seconds = time.perf_counter() - t0
    sb3_seconds, sb3_steps, sb3_act = sb3_pendulum(int(steps), seed)
    ours, sb3 = score(policy.act), score(sb3_act)
    rows = {"advbench": (ours, ctx.work / ours_seconds, ctx.work), "sb3": (sb3, sb3_steps / sb3_seconds, sb3_steps)}
    for name, (ret, rate, n) in rows.items():
        print(f"\n{name:9s} mean return {ret:8.1f}  {rate:7.0f} env steps/s  ({n:.0f} steps)")
    benchmark.extra_info.update({f"{k}_{m}": v for k, row in rows.items() for m, v in zip(("return", "steps_per_s"), row)})
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    assert math.isfinite(ours) and math.isfinite(sb3)
