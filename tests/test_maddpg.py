"""maddpg: the environment against mpe2 and TorchRL, the losses against TorchRL's DDPGLoss, the traps, scoring."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("mpe2")
from torch import nn  # noqa: E402

from advbench.baselines import maddpg as mb  # noqa: E402
from advbench.profiles import get_profile  # noqa: E402
from advbench.solution import LocalSolution, SolutionError  # noqa: E402
from advbench.task import Seal  # noqa: E402
from advbench.tasks.maddpg import SPEC  # noqa: E402
from advbench.tasks.maddpg import contract as mc  # noqa: E402
from advbench.tasks.maddpg import heldout as mh  # noqa: E402

VARIANTS = ("spread", "adversary", "speaker-listener")


# TorchRL warns that it was tested on another PettingZoo version, and that our loss modules have target
# parameters but no updater (the tests set the targets by hand): nothing to check about either.
pytestmark = [pytest.mark.filterwarnings("ignore:PettingZoo in TorchRL is tested:UserWarning"),
              pytest.mark.filterwarnings("ignore:No target network updater:UserWarning")]


@pytest.fixture(scope="module")
def problems():
    """One unsealed build per variant (the normaliser is cached on it after the first evaluate)."""
    task = mh.MADDPGTask()
    return {v: task.build(variant=v, seed=0, budget=SPEC.budgets["quick"], seal=Seal(0)) for v in VARIANTS}


def evaluate(problem, solution):
    return mh.MADDPGTask().evaluate(LocalSolution(solution), problem, get_profile("cpu"))


# ---------------------------------------------------------------- the environment
def _padded(own: np.ndarray, dim: int) -> np.ndarray:
    out = np.zeros(dim, dtype=np.float32)
    out[:len(own)] = own
    return out


@pytest.mark.parametrize("variant,scripted_opponents", [(v, False) for v in VARIANTS] + [("adversary", True)])
def test_vector_env_matches_mpe2_parallel_env_step_by_step(variant, scripted_opponents):
    """VectorMPE (mpe2's AEC interface, no wrappers) agrees exactly with mpe2's own parallel_env: each
    agent's observation zero-padded to the longest, the first ``action_dims[i]`` of its 5 entries run."""
    seeds = [3, 17, 123456]
    vec = mc.VectorMPE(variant, len(seeds), seed_range=(0, mc.TRAIN_SEED_LIMIT), scripted_opponents=scripted_opponents)
    refs = [mc.make_parallel_env(variant) for _ in seeds]
    obs = vec.reset(seeds)
    ref_obs = [env.reset(seed=s)[0] for env, s in zip(refs, seeds)]
    agents = vec.agents
    for e in range(len(seeds)):
        np.testing.assert_array_equal(obs[e], np.stack([_padded(ref_obs[e][a], vec.obs_dim) for a in agents]))
    rng = np.random.default_rng(0)
    for step in range(mc.MAX_CYCLES):
        actions = rng.random((len(seeds), len(agents), mc.ACTION_DIM), dtype=np.float32)
        obs, rewards, terminated, truncated = vec.step(actions)
        for e, env in enumerate(refs):
            joint = {a: actions[e, i, :vec.action_dims[i]] for i, a in enumerate(agents)}
            for name in vec.scripted:  # the scripted adversary, whatever the policy said for it
                joint[name] = mc.scripted_adversary_actions(env.unwrapped.observe(name)[None])[0]
            ref_obs, ref_rew, ref_term, ref_trunc, _ = env.step(joint)
            np.testing.assert_array_equal(obs[e], np.stack([_padded(ref_obs[a], vec.obs_dim) for a in agents]))
            np.testing.assert_array_equal(rewards[e], np.array([ref_rew[a] for a in agents], dtype=np.float32))
            assert terminated[e] == any(ref_term[a] for a in agents) and not terminated[e]  # MPE never terminates
            assert truncated[e] == any(ref_trunc[a] for a in agents) == (step == mc.MAX_CYCLES - 1)
    with pytest.raises(RuntimeError, match="truncated"):
        vec.step(actions)


@pytest.mark.parametrize("variant", VARIANTS)
def test_vector_env_matches_torchrl_pettingzoo_wrapper(variant):
    """TorchRL's PettingZooWrapper on the same mpe2 env, same seed and actions: identical obs, rewards, flags."""
    pytest.importorskip("torchrl")
    from torchrl.envs.libs.pettingzoo import PettingZooWrapper

    peer = PettingZooWrapper(env=mc.make_parallel_env(variant), use_mask=False, categorical_actions=False,
                             done_on_any=False)
    td = peer.reset(seed=11)
    vec = mc.VectorMPE(variant, 1, seed_range=(0, mc.TRAIN_SEED_LIMIT))
    obs = vec.reset([11])
    # TorchRL groups agents by name prefix (agent_0, agent_1 -> "agent"; adversary_0 -> "adversary";
    # speaker_0 -> "speaker"): each group's rows are some of our columns.
    columns = {group: [vec.agents.index(a) for a in names] for group, names in peer.group_map.items()}
    assert sorted(c for cols in columns.values() for c in cols) == list(range(vec.n_agents))

    def same_obs(tensordict, ours):
        for group, cols in columns.items():
            dim = vec.obs_dims[cols[0]]
            np.testing.assert_array_equal(tensordict[group, "observation"].numpy(), ours[cols, :dim])
            assert not ours[cols, dim:].any()  # the padding is zeros

    same_obs(td, obs[0])
    rng = np.random.default_rng(1)
    for step in range(mc.MAX_CYCLES):
        actions = rng.random((1, vec.n_agents, mc.ACTION_DIM), dtype=np.float32)
        for group, cols in columns.items():
            td[group, "action"] = torch.from_numpy(actions[0, cols, :vec.action_dims[cols[0]]])
        nxt = peer.step(td)["next"]
        obs, rewards, terminated, truncated = vec.step(actions)
        same_obs(nxt, obs[0])
        for group, cols in columns.items():
            np.testing.assert_array_equal(nxt[group, "reward"].numpy()[:, 0], rewards[0, cols])
            assert not nxt[group, "terminated"].any() and not terminated[0]
            assert bool(nxt[group, "truncated"].all()) == bool(truncated[0]) == (step == mc.MAX_CYCLES - 1)
        td = nxt


def test_spread_rewards_mix_global_and_local_by_local_ratio():
    """Each agent's reward is 0.5 * (-sum of landmark-to-nearest-agent distances) + 0.5 * (-its collisions)."""
    vec = mc.VectorMPE("spread", 2, seed_range=(0, mc.TRAIN_SEED_LIMIT))
    vec.reset([5, 6])
    rng = np.random.default_rng(2)
    for _ in range(10):
        _, rewards, _, _ = vec.step(rng.random((2, 3, mc.ACTION_DIM), dtype=np.float32))
        for e, env in enumerate(vec._envs):
            agents = np.array([a.state.p_pos for a in env.world.agents])
            marks = np.array([lm.state.p_pos for lm in env.world.landmarks])
            global_reward = -np.linalg.norm(marks[:, None] - agents[None], axis=-1).min(axis=1).sum()
            gaps = np.linalg.norm(agents[:, None] - agents[None], axis=-1)
            collisions = ((gaps < 0.3) & ~np.eye(3, dtype=bool)).sum(axis=1)
            np.testing.assert_allclose(rewards[e], 0.5 * global_reward + 0.5 * -collisions, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad,match", [(1.5, "outside the action space"), (-0.1, "outside the action space"),
                                       (np.nan, "NaN")])
def test_env_refuses_out_of_range_actions_instead_of_clipping_silently(bad, match):
    vec = mc.VectorMPE("spread", 2, seed_range=(0, mc.TRAIN_SEED_LIMIT))
    vec.reset([1, 2])
    actions = np.full((2, 3, mc.ACTION_DIM), 0.5, dtype=np.float32)
    actions[1, 2, 3] = bad
    with pytest.raises(ValueError, match=match):
        vec.step(actions)


def test_training_env_seeds_are_disjoint_from_evaluation_seeds(problems):
    train = problems["spread"].train
    env = train.make_vector_env(4)
    env.reset()
    assert all(0 <= s < mc.TRAIN_SEED_LIMIT for s in env.seeds)
    eval_seeds = problems["spread"].heldout["seeds"]
    assert len(set(eval_seeds)) == mc.N_EVAL_EPISODES and min(eval_seeds) >= mc.EVAL_SEED_LOW
    with pytest.raises(ValueError, match="must lie in"):
        env.reset(eval_seeds[:4])
    # The same stream gives the same episodes; another stream other ones.
    again = train.make_vector_env(4)
    again.reset()
    other = train.make_vector_env(4, stream=1)
    other.reset()
    assert again.seeds == env.seeds and other.seeds != env.seeds


# ---------------------------------------------------------------- scripted controllers
def test_scripted_adversary_heads_for_the_landmark_a_good_agent_is_nearest_to():
    # landmarks at (1, 0) and (-1, 0) relative to the adversary; agent_0 near the second, agent_1 far.
    obs = np.array([[1.0, 0.0, -1.0, 0.0, -1.1, 0.1, 0.0, 3.0]], dtype=np.float32)
    action = mc.scripted_adversary_actions(obs)[0]
    assert action[1] > 0 and action[2] == 0  # pushes left, towards (-1, 0)


def test_oracle_agents_agree_on_distinct_landmarks(problems):
    """Each agent solves the matching from its own observation; together they cover every landmark."""
    vec = mc.VectorMPE("spread", 20, seed_range=(0, mc.TRAIN_SEED_LIMIT))
    obs = vec.reset(list(range(20)))
    oracle = mc.OraclePolicy("spread")
    for _ in range(mc.MAX_CYCLES):
        obs, *_ = vec.step(oracle.act(obs))
    for env in vec._envs:
        agents = np.array([a.state.p_pos for a in env.world.agents])
        marks = np.array([lm.state.p_pos for lm in env.world.landmarks])
        nearest = np.linalg.norm(marks[:, None] - agents[None], axis=-1).argmin(axis=1)
        assert sorted(nearest) == [0, 1, 2]  # one agent per landmark


def test_speaker_listener_oracle_needs_the_message():
    """The listener does not know the goal; the speaker does. Told by the one-hot message, the oracle's
    listener ends at the goal landmark; with the message zeroed it can only head for the landmarks'
    centre, which scores far less: the variant measures communication."""
    seeds = list(range(40))
    vec = mc.VectorMPE("speaker-listener", len(seeds), seed_range=(0, mc.TRAIN_SEED_LIMIT))
    oracle = mc.OraclePolicy("speaker-listener")
    told = mc.episode_returns(vec, oracle.act, seeds)
    for env in vec._envs:
        speaker, listener = env.world.agents
        assert np.linalg.norm(listener.state.p_pos - speaker.goal_b.state.p_pos) < 0.1

    def silent(obs):
        obs = obs.copy()
        obs[:, 1, 8:11] = 0.0  # the listener's message channels
        return oracle.act(obs)

    untold = mc.episode_returns(vec, silent, seeds)
    assert told.mean() > untold.mean() + 10


def test_adversary_scored_against_its_own_adversary_and_the_scripted_one(problems):
    """adversary: the method controls the adversary too. The team is scored against that adversary
    (own_adversary_return) and the scripted one (scripted_opponent_return); team_return, the worse of
    the two, cannot be raised by training an adversary that does nothing."""
    problem = problems["adversary"]
    k = problem.train.agents.index("adversary_0")
    assert problem.train.team == ("agent_0", "agent_1") and problem.train.opponents == ("adversary_0",)

    def with_adversary(adversary_action):
        def act(obs):
            actions = mc.OraclePolicy("adversary").act(obs)
            actions[:, k] = adversary_action(obs[:, k])
            return actions
        return act

    idle = evaluate(problem, _Returns(with_adversary(lambda o: np.zeros((len(o), 5), np.float32))))
    hunting = evaluate(problem, _Returns(with_adversary(lambda o: mc.scripted_adversary_actions(o[:, :8]))))
    assert set(idle) == {"team_return", "own_adversary_return", "scripted_opponent_return", "normalised_return"}
    # Against an adversary that never moves, the team scores more than against one that hunts...
    assert idle["own_adversary_return"] > hunting["own_adversary_return"] + 1.0
    # ...but the scripted opponent's score does not see the difference, and neither does the team's.
    assert idle["scripted_opponent_return"] == hunting["scripted_opponent_return"]
    assert idle["team_return"] == hunting["team_return"] == hunting["scripted_opponent_return"]
    assert idle["normalised_return"] == hunting["normalised_return"] == pytest.approx(1.0)
    # Against the scripted adversary in its own column, both rollouts are the same game.
    assert hunting["own_adversary_return"] == pytest.approx(hunting["scripted_opponent_return"])

    # An adversary stronger than the script (it sits on the goal, which only the team should know)
    # lowers the team's score below the scripted opponent's.
    def on_goal(obs):
        actions = mc.OraclePolicy("adversary").act(obs)
        goal_from_agent0 = obs[:, 0, 0:2]  # agent_0 sees the goal relative to itself...
        adversary_from_agent0 = obs[:, 0, 6:8]  # ...and the adversary
        actions[:, k] = mc.force_to_action(2.0 * (goal_from_agent0 - adversary_from_agent0))
        return actions

    strong = evaluate(problem, _Returns(on_goal))
    assert strong["own_adversary_return"] < strong["scripted_opponent_return"]
    assert strong["team_return"] == strong["own_adversary_return"]


# ---------------------------------------------------------------- the losses against TorchRL
class MaskedSigmoid(nn.Module):
    """The actors' squashing: sigmoid, then 0 in the action entries an agent's environment ignores."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, pre):
        return torch.sigmoid(pre) * self.mask


def _torchrl_pair(n, d, actor_net: mb.Actors, critic_net: mb.Critics, target_actor: mb.Actors,
                  target_critic: mb.Critics, gamma: float):
    """TorchRL's DDPGLoss on MultiAgentMLP actor and centralised critic, holding our weights."""
    pytest.importorskip("torchrl")
    from tensordict.nn import TensorDictModule, TensorDictSequential
    from torchrl.modules import MultiAgentMLP
    from torchrl.objectives import DDPGLoss, ValueEstimators

    actor_mlp = MultiAgentMLP(n_agent_inputs=d, n_agent_outputs=mc.ACTION_DIM, n_agents=n, centralized=False,
                              share_params=False, depth=2, num_cells=64, activation_class=nn.ReLU)
    critic_mlp = MultiAgentMLP(n_agent_inputs=d + mc.ACTION_DIM, n_agent_outputs=1, n_agents=n, centralized=True,
                               share_params=False, depth=2, num_cells=64, activation_class=nn.ReLU)
    actor = TensorDictSequential(
        TensorDictModule(actor_mlp, in_keys=[("agents", "observation")], out_keys=[("agents", "preactivation")]),
        TensorDictModule(MaskedSigmoid(actor_net.mask), in_keys=[("agents", "preactivation")],
                         out_keys=[("agents", "action")]))
    critic = TensorDictModule(critic_mlp, in_keys=[("agents", "observation"), ("agents", "action")],
                              out_keys=[("agents", "state_action_value")])
    loss = DDPGLoss(actor, critic, delay_actor=True, delay_value=True)  # target actors *and* critics
    loss.set_keys(state_action_value=("agents", "state_action_value"), reward=("agents", "reward"),
                  done=("agents", "done"), terminated=("agents", "terminated"))
    loss.make_value_estimator(ValueEstimators.TD0, gamma=gamma)
    actor_prefix, critic_prefix = ("module", "0", "module", "params"), ("module", "params")
    copy_weights(loss.actor_network_params, actor_prefix, actor_net.net)
    copy_weights(loss.target_actor_network_params, actor_prefix, target_actor.net)
    copy_weights(loss.value_network_params, critic_prefix, critic_net.net)
    copy_weights(loss.target_value_network_params, critic_prefix, target_critic.net)
    return loss


def copy_weights(params, prefix, ours: mb.AgentMLPs) -> None:
    """Our ``[n, in, out]`` weights into TorchRL's stacked ``nn.Linear`` layers ``[n, out, in]`` (layers 0, 2, 4)."""
    with torch.no_grad():
        for k, (w, b) in enumerate(zip(ours.weights, ours.biases)):
            params.get((*prefix, str(2 * k), "weight")).data.copy_(w.transpose(1, 2))
            params.get((*prefix, str(2 * k), "bias")).data.copy_(b.squeeze(1))


def _batch(n, d, batch=64, seed=0, terminated_rows=(3, 9)):
    g = torch.Generator().manual_seed(seed)
    obs, next_obs = torch.randn(batch, n, d, generator=g), torch.randn(batch, n, d, generator=g)
    actions = torch.rand(batch, n, mc.ACTION_DIM, generator=g)
    rewards = torch.randn(batch, n, generator=g)
    terminated = torch.zeros(batch, dtype=torch.bool)
    terminated[list(terminated_rows)] = True  # MPE never terminates; here the formula is checked both ways
    truncated = torch.zeros(batch, dtype=torch.bool)
    truncated[::5] = True  # truncation must not stop bootstrapping
    return obs, actions, rewards, next_obs, terminated, truncated


def _tensordict(obs, actions, rewards, next_obs, terminated, truncated):
    from tensordict import TensorDict

    batch, n = obs.shape[:2]
    per_agent = lambda flag: flag[:, None, None].expand(batch, n, 1)  # noqa: E731
    return TensorDict({
        "agents": TensorDict({"observation": obs, "action": actions}, batch_size=[batch, n]),
        "next": TensorDict({"agents": TensorDict({
            "observation": next_obs, "reward": rewards.unsqueeze(-1),
            "terminated": per_agent(terminated), "done": per_agent(terminated | truncated)},
            batch_size=[batch, n])}, batch_size=[batch]),
    }, batch_size=[batch])


def _networks(n, d, seed=0, action_dims=None):
    torch.manual_seed(seed)
    nets = (mb.Actors(n, d, 64, action_dims), mb.Critics(n, d, 64, True), mb.Actors(n, d, 64, action_dims),
            mb.Critics(n, d, 64, True))
    return nets  # targets deliberately different from the online networks


# spread's three agents (18 numbers each), and speaker-listener's speaker (a 3-number observation
# padded to the listener's 11; a 3-entry message, the other 2 entries held at 0) and listener.
LOSS_SHAPES = [pytest.param(3, 18, None, id="spread"), pytest.param(2, 11, (3, 5), id="speaker-listener")]


@pytest.mark.parametrize("n,d,action_dims", LOSS_SHAPES)
def test_critic_target_and_loss_match_torchrl_ddpg_loss(n, d, action_dims):
    gamma = 0.95
    actors, critics, target_actors, target_critics = _networks(n, d, action_dims=action_dims)
    loss = _torchrl_pair(n, d, actors, critics, target_actors, target_critics, gamma)
    obs, actions, rewards, next_obs, terminated, truncated = _batch(n, d)
    if action_dims:  # the buffer holds what the actors output: 0 in the entries the environment ignores
        actions = actions * actors.mask
        obs[:, 0, 3:] = next_obs[:, 0, 3:] = 0.0  # the speaker's padding
    out = loss(_tensordict(obs, actions, rewards, next_obs, terminated, truncated))
    ours_y = mb.critic_targets(rewards, next_obs, terminated, target_actors, target_critics, gamma)
    torch.testing.assert_close(ours_y, out["target_value"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(critics(obs, actions), out["pred_value"], atol=1e-5, rtol=1e-5)
    # TorchRL averages over batch and agents; ours sums the agents' means (each critic its own MSE).
    torch.testing.assert_close(mb.critic_loss(obs, actions, ours_y, critics) / n, out["loss_value"],
                               atol=1e-5, rtol=1e-5)


def _own_action_actor(actor_mlp_module, agent: int, mask: torch.Tensor):
    """A TorchRL actor writing the buffer's joint action with only ``agent``'s replaced by its policy's."""
    from tensordict.nn import TensorDictModule

    action_mask = mask

    class OwnActionOnly(nn.Module):
        def __init__(self, policy):
            super().__init__()
            self.policy = policy

        def forward(self, obs, buffer_action):
            mask = torch.zeros(obs.shape[-2], 1, dtype=torch.bool)
            mask[agent] = True
            return torch.where(mask, torch.sigmoid(self.policy(obs)) * action_mask, buffer_action)

    return TensorDictModule(OwnActionOnly(actor_mlp_module),
                            in_keys=[("agents", "observation"), ("agents", "buffer_action")],
                            out_keys=[("agents", "action")])


class PickAgent(nn.Module):
    """``[B, n, 1] -> [B, 1]``: agent i's Q only."""

    def __init__(self, agent: int) -> None:
        super().__init__()
        self.agent = agent

    def forward(self, q):
        return q[..., self.agent, :]


@pytest.mark.parametrize("n,d,action_dims", LOSS_SHAPES)
def test_actor_loss_matches_torchrl_with_only_own_action_replaced(n, d, action_dims):
    """Agent i's MADDPG actor loss and its gradient equal TorchRL's DDPGLoss on a TorchRL actor that
    replaces only agent i's action, with agent i's Q picked out of the MultiAgentMLP critic."""
    pytest.importorskip("torchrl")
    from tensordict.nn import TensorDictModule, TensorDictSequential
    from torchrl.modules import MultiAgentMLP
    from torchrl.objectives import DDPGLoss

    actors, critics, target_actors, target_critics = _networks(n, d, seed=1, action_dims=action_dims)
    obs, actions, rewards, next_obs, terminated, truncated = _batch(n, d, seed=1)
    actions = actions * actors.mask
    policy_actions = actors(obs)
    ours = mb.actor_losses(obs, actions, policy_actions, critics)  # [n]
    for i in range(n):
        actor_mlp = MultiAgentMLP(n_agent_inputs=d, n_agent_outputs=mc.ACTION_DIM, n_agents=n, centralized=False,
                                  share_params=False, depth=2, num_cells=64, activation_class=nn.ReLU)
        critic_mlp = MultiAgentMLP(n_agent_inputs=d + mc.ACTION_DIM, n_agent_outputs=1, n_agents=n,
                                   centralized=True, share_params=False, depth=2, num_cells=64,
                                   activation_class=nn.ReLU)
        copy_weights(actor_mlp.params, (), actors.net)
        copy_weights(critic_mlp.params, (), critics.net)
        critic = TensorDictSequential(
            TensorDictModule(critic_mlp, in_keys=[("agents", "observation"), ("agents", "action")],
                             out_keys=[("agents", "q_all")]),
            TensorDictModule(PickAgent(i), in_keys=[("agents", "q_all")], out_keys=["own_q"]))
        loss = DDPGLoss(_own_action_actor(actor_mlp, i, actors.mask), critic, delay_actor=True, delay_value=True)
        loss.set_keys(state_action_value="own_q", reward=("agents", "reward"), done=("agents", "done"),
                      terminated=("agents", "terminated"))
        td = _tensordict(obs, actions, rewards, next_obs, terminated, truncated)
        td.set(("agents", "buffer_action"), actions)
        peer, _ = loss.loss_actor(td)
        torch.testing.assert_close(ours[i], peer, atol=1e-5, rtol=1e-5)
        # Gradients of agent i's actor, ours (a row of each batched weight) and TorchRL's.
        ours_grads = torch.autograd.grad(ours[i], list(actors.net.weights), retain_graph=True)
        peer_weights = [loss.actor_network_params.get(("module", "policy", "params", str(2 * k), "weight"))
                        for k in range(3)]
        peer_grads = torch.autograd.grad(peer, peer_weights)
        for k in range(3):
            torch.testing.assert_close(ours_grads[k][i].T, peer_grads[k][i], atol=1e-5, rtol=1e-4)
            assert torch.all(ours_grads[k][np.arange(n) != i] == 0)  # agent i's loss moves agent i only


def test_plain_torchrl_ddpg_loss_replaces_every_agents_action():
    """What TorchRL's DDPGLoss computes out of the box, stated precisely: -mean_{b,i} Q_i(o, mu(o)) with
    every agent's action replaced at once. It equals the mean of our per-agent losses only when the
    buffer's actions are the current policy's; on a replay batch it differs."""
    n, d = 3, 18
    actors, critics, target_actors, target_critics = _networks(n, d, seed=2)
    loss = _torchrl_pair(n, d, actors, critics, target_actors, target_critics, 0.95)
    obs, actions, rewards, next_obs, terminated, truncated = _batch(n, d, seed=2)
    with torch.no_grad():
        on_policy = actors(obs)
    peer_on = loss(_tensordict(obs, on_policy, rewards, next_obs, terminated, truncated))["loss_actor"]
    peer_replay = loss(_tensordict(obs, actions, rewards, next_obs, terminated, truncated))["loss_actor"]
    with torch.no_grad():
        ours_on = mb.actor_losses(obs, on_policy, actors(obs), critics).mean()
        ours_replay = mb.actor_losses(obs, actions, actors(obs), critics).mean()
    torch.testing.assert_close(ours_on, peer_on, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(peer_replay, peer_on)  # TorchRL ignores the buffer's actions entirely
    assert not torch.allclose(ours_replay, peer_replay, rtol=1e-5, atol=1e-6)  # ours keeps the buffer's other actions


# ---------------------------------------------------------------- the traps, in our own code
def test_truncation_bootstraps_termination_does_not():
    n, d = 2, 10
    _, _, target_actors, target_critics = _networks(n, d)
    rewards, next_obs = torch.randn(4, n), torch.randn(4, n, d)
    terminated = torch.tensor([False, True, False, True])
    y = mb.critic_targets(rewards, next_obs, terminated, target_actors, target_critics, 0.95)
    with torch.no_grad():
        bootstrap = 0.95 * target_critics(next_obs, target_actors(next_obs))
    torch.testing.assert_close(y[~terminated], rewards[~terminated] + bootstrap[~terminated])
    torch.testing.assert_close(y[terminated], rewards[terminated])


class _Ctx:
    """Just enough of a RunContext to run the training loop in-process."""

    seed, device = 0, "cpu"

    def __init__(self, episodes):
        self.limits = {"episodes": episodes}
        self.checkpoints = []

    def rng(self, stream=0):
        return np.random.default_rng([self.seed, stream])

    def record_config(self, **config):
        self.config = config

    def count(self, n):
        pass

    def progress(self, done, total):
        pass

    def checkpoint(self, solution, step=None):
        self.checkpoints.append(step)


def test_training_loop_stores_termination_not_truncation_and_in_range_actions(problems, monkeypatch):
    stored = []
    original = mb.ReplayBuffer.add

    def spy(self, obs, actions, rewards, next_obs, terminated):
        stored.append((np.array(actions), np.array(terminated)))
        return original(self, obs, actions, rewards, next_obs, terminated)

    monkeypatch.setattr(mb.ReplayBuffer, "add", spy)
    cfg = mb.Config(episodes=16, n_envs=8, random_episodes=8, batch_size=32, noise_std=5.0, checkpoints=2)
    ctx = _Ctx(16)
    policy = mb.train(problems["spread"].train, ctx, cfg)
    assert len(stored) == 2 * mc.MAX_CYCLES and ctx.checkpoints == [8, 16]
    # Every episode ended by truncation, and not one transition was stored as terminal.
    assert not any(term.any() for _, term in stored)
    # Huge exploration noise (the second batch of episodes; the first is uniform random), yet the
    # buffer only holds actions the environment accepts.
    acts = np.concatenate([a for a, _ in stored[mc.MAX_CYCLES:]])
    assert acts.min() >= 0.0 and acts.max() <= 1.0 and ((acts == 0) | (acts == 1)).mean() > 0.5
    out = policy.act(np.full((4, 3, 18), 1e4, dtype=np.float32))
    assert out.min() >= 0 and out.max() <= 1


def test_speaker_actions_hold_zero_where_its_environment_reads_nothing(problems):
    """The speaker's environment runs 3 message entries; the actors keep the other 2 at 0, in the
    buffer too (exploration noise included), so no critic learns from entries nothing executes."""
    stored = []
    original = mb.ReplayBuffer.add

    def spy(self, obs, actions, rewards, next_obs, terminated):
        stored.append(np.array(actions))
        return original(self, obs, actions, rewards, next_obs, terminated)

    train = problems["speaker-listener"].train
    assert train.obs_dims == (3, 11) and train.action_dims == (3, 5) and train.obs_dim == 11
    cfg = mb.Config(episodes=16, n_envs=8, random_episodes=8, batch_size=32, checkpoints=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mb.ReplayBuffer, "add", spy)
        policy = mb.train(train, _Ctx(16), cfg)
    acts = np.concatenate(stored)
    assert not acts[:, 0, 3:].any() and acts[:, 0, :3].std() > 0.1 and acts[:, 1].std() > 0.1
    out = policy.act(np.random.default_rng(0).normal(size=(4, 2, 11)).astype(np.float32))
    assert not out[:, 0, 3:].any()


def test_centralised_critic_sees_every_observation_and_action_independent_does_not():
    n, d = 3, 18
    torch.manual_seed(0)
    obs, actions = torch.randn(5, n, d), torch.rand(5, n, mc.ACTION_DIM)
    other_obs, other_actions = obs.clone(), actions.clone()
    other_obs[:, 2] += 1.0
    other_actions[:, 2] = 1 - other_actions[:, 2]  # change agent 2 only
    central, independent = mb.Critics(n, d, 64, True), mb.Critics(n, d, 64, False)
    for changed in ((other_obs, actions), (obs, other_actions)):
        assert (central(*changed)[:, :2] - central(obs, actions)[:, :2]).abs().min() > 0  # Q_0, Q_1 react
        torch.testing.assert_close(independent(*changed)[:, :2], independent(obs, actions)[:, :2])


def test_targets_use_every_agents_target_actor():
    n, d = 3, 18
    actors, critics, target_actors, target_critics = _networks(n, d)
    rewards, next_obs, terminated = torch.zeros(6, n), torch.randn(6, n, d), torch.zeros(6, dtype=torch.bool)
    y = mb.critic_targets(rewards, next_obs, terminated, target_actors, target_critics, 0.95)
    with torch.no_grad():
        target_actors.net.biases[-1][2] += 3.0  # move agent 2's target policy only
    y2 = mb.critic_targets(rewards, next_obs, terminated, target_actors, target_critics, 0.95)
    assert (y2[:, 0] - y[:, 0]).abs().min() > 0  # agent 0's target follows agent 2's target actor


def test_actor_loss_replaces_only_the_agents_own_action():
    n, d = 3, 18
    actors, critics, _, _ = _networks(n, d)
    obs, actions = torch.randn(8, n, d), torch.rand(8, n, mc.ACTION_DIM)
    joint = mb.replace_own_action(actions, actors(obs))
    for i in range(n):
        torch.testing.assert_close(joint[i, :, i], actors(obs)[:, i])
        keep = [j for j in range(n) if j != i]
        torch.testing.assert_close(joint[i][:, keep], actions[:, keep])
    # Moving agent 1's policy leaves agents 0's and 2's losses as they were.
    before = mb.actor_losses(obs, actions, actors(obs), critics).detach()
    with torch.no_grad():
        actors.net.biases[-1][1] += 2.0
    after = mb.actor_losses(obs, actions, actors(obs), critics).detach()
    torch.testing.assert_close(after[[0, 2]], before[[0, 2]])
    assert (after[1] - before[1]).abs() > 0


def test_batched_agent_networks_equal_one_linear_stack_per_agent():
    torch.manual_seed(3)
    net = mb.AgentMLPs(3, [7, 16, 16, 2])
    x = torch.randn(3, 10, 7)
    for i in range(3):
        h = x[i]
        for k, (w, b) in enumerate(zip(net.weights, net.biases)):
            h = h @ w[i] + b[i]
            h = torch.relu(h) if k < 2 else h
        torch.testing.assert_close(net(x)[i], h)


# ---------------------------------------------------------------- scoring, normaliser, sealing
@pytest.mark.parametrize("variant", VARIANTS)
def test_normaliser_is_exact_oracle_one_random_zero(problems, variant):
    problem = problems[variant]
    oracle = evaluate(problem, mc.OraclePolicy(variant))
    assert oracle["normalised_return"] == pytest.approx(1.0, abs=1e-12)
    # The same random actions as the harness drew (stream 3 of the seal) score exactly 0.
    random = evaluate(problem, mc.RandomPolicy(Seal(0).rng(mh.RANDOM_POLICY_STREAM)))
    assert random["normalised_return"] == pytest.approx(0.0, abs=1e-12)
    assert problem.description["oracle_return"] > problem.description["random_return"]
    # Another random policy lands near 0; the oracle is far above it.
    other = evaluate(problem, mc.RandomPolicy(12345))
    assert abs(other["normalised_return"]) < 0.25


def test_unsealed_build_is_reproducible_and_sealing_changes_the_episodes():
    task, budget = mh.MADDPGTask(), SPEC.budgets["quick"]
    a = task.build(variant="spread", seed=4, budget=budget, seal=Seal(4))
    b = task.build(variant="spread", seed=4, budget=budget, seal=Seal(4))
    assert a.heldout["seeds"] == b.heldout["seeds"] == a.description["eval_seeds"]
    sealed = task.build(variant="spread", seed=4, budget=budget, seal=Seal(4, key=b"some-secret-key-123"))
    assert sealed.heldout["seeds"] != a.heldout["seeds"]
    assert min(sealed.heldout["seeds"]) >= mc.EVAL_SEED_LOW
    # The method's view does not depend on the seal.
    assert sealed.train == a.train
    # The same policy scores the same on the same build, twice (the environment is deterministic).
    assert evaluate(a, mc.OraclePolicy("spread")) == evaluate(b, mc.OraclePolicy("spread"))


class _Returns:
    def __init__(self, fn):
        self.fn = fn

    def act(self, obs):
        return self.fn(obs)


@pytest.mark.parametrize("fn,match", [
    (lambda o: np.full((o.shape[0], o.shape[1], 5), np.nan, np.float32), "NaN"),
    (lambda o: np.zeros((o.shape[0], o.shape[1], 4), np.float32), "shape"),
    (lambda o: np.zeros((o.shape[0] - 1, o.shape[1], 5), np.float32), "shape"),
    (lambda o: np.full((o.shape[0], o.shape[1], 5), 2.0, np.float32), "outside the action space"),
    (lambda o: {"agent_0": np.zeros((o.shape[0], 5))}, "shape"),
    (lambda o: np.full((o.shape[0], o.shape[1], 5), "a"), "actions are an array"),
])
def test_evaluate_rejects_malformed_actions(problems, fn, match):
    with pytest.raises((ValueError, TypeError, SolutionError), match=match):
        evaluate(problems["spread"], _Returns(fn))


def test_floor_runs_through_the_harness_and_misses_the_target():
    from advbench.runner import run

    rec = run("maddpg", "floor", budget="quick", seed=0, results_dir=None)
    assert rec["status"] == "ok", rec["error"]
    assert abs(rec["metrics"]["normalised_return"]) < 0.25 and not rec["targets_met"]
    assert len(rec["config"]["data"]["eval_seeds"]) == mc.N_EVAL_EPISODES
    assert rec["config"]["data"]["oracle_return"] > rec["config"]["data"]["random_return"]


@pytest.mark.slow
def test_quick_target_speaker_listener():
    """The reference learns to talk on the quick budget: past the -30 a listener scores without the message."""
    from advbench.runner import run

    rec = run("maddpg", "reference", budget="quick", seed=0, results_dir=None)
    assert rec["status"] == "ok", rec["error"]
    assert rec["variant"] == "speaker-listener"
    assert rec["targets_met"], rec["metrics"]
    assert rec["time_to_target_seconds"] is not None
