"""maddpg — multi-agent DDPG (Lowe et al. 2017) on mpe2's multi-particle environments.

Environments (mpe2 1.1, the Multi-Particle Environments that left PettingZoo), continuous actions
in [0, 1]^5, 25 steps an episode, truncated, never terminated:

* ``speaker-listener`` (v2; the quick budget's): ``simple_speaker_listener_v4.parallel_env(
  max_cycles=25, continuous_actions=True)``, the paper's cooperative communication. The speaker
  sees the goal's colour and cannot move; the listener moves and sees the landmarks and the
  speaker's message, not the goal. This is where the paper shows what centralised critics buy:
  an independent speaker's critic sees only its own colour and message, so nothing ties a message
  to the listener's response and no code emerges; MADDPG's critics see both agents.
* ``spread``: ``simple_spread_v3.parallel_env(N=3, local_ratio=0.5, max_cycles=25,
  continuous_actions=True)``; three agents cover three landmarks without colliding. The method
  controls all three.
* ``adversary``: ``simple_adversary_v3.parallel_env(N=2, max_cycles=25, continuous_actions=True)``;
  since v2 the method controls and trains all three agents, the two good agents (the team) and the
  adversary, as in the paper. The harness plays the same evaluation episodes twice: against the
  adversary trained with the team (``own_adversary_return``, the paper's setting) and against a
  fixed public scripted adversary (it heads for the landmark that has a good agent nearest to it,
  ``contract.scripted_adversary_actions``; ``scripted_opponent_return``, comparable across runs).
  ``team_return`` is the worse of the two for the team: scored against its own adversary alone, a
  method could raise its score by training a weak adversary, and did: on the first sealed records
  the random floor, whose adversary is random too, scored 13.1 against its own adversary and the
  reference 9.0. The worse of the two cannot be raised that way (the scripted opponent bounds
  it), and a trained adversary stronger than the script lowers it.
  Against the scripted adversary, rushing both agents to the goal scores 9.7 and covering both
  landmarks (the oracle) 22.4 (mean of 200 episodes, seeds 10**6 to 10**6 + 199): deception pays.
  (v1 drove the adversary with the script in training too and scored against it only.)

What a method receives: an ``MPETraining`` (variant, seed, agents, the team and its opponents,
observation and action sizes) whose ``make_vector_env(n_envs, stream)`` steps ``n_envs`` real mpe2
episodes together, observations stacked ``float32[n_envs, n_agents, obs_dim]``, each agent's
zero-padded to the longest (speaker 3 and listener 11; adversary 8 and good agents 10); its
episode seeds come from the public run seed (``default_rng([seed, 1, stream])``) in [0, 10**6).
What it returns: a policy with ``act(obs: float32[episodes, agents, obs_dim]) -> float32[episodes,
agents, 5]`` in [0, 1] (agents in ``MPETraining.agents`` order; the speaker's message is the first
3 entries, the other 2 ignored). An action outside [0, 1], NaN or of the wrong shape is an error,
in training and in scoring (mpe2 would clip it silently; a policy must clip its own actions).

Scoring: the harness runs 100 evaluation episodes, on seeds drawn from the run's seal in
[10**6, 2**31 - 1) (never a training seed), all stepped together in the harness; the policy, in the
scoring process, is asked once per step for the actions of all 100 episodes and never sees a reward
or a seed. Metrics: ``team_return`` (primary): rewards summed over the team's agents and the 25
steps, mean over the episodes; ``normalised_return``: the same between the uniform random policy
(0) and the scripted oracle (1), both run by the task itself on the same 100 episodes, once per
build and cached, so the normaliser is exact for each run (their returns are in each record's
``config.data``; in ``adversary`` both play against the scripted adversary). The oracle
(``contract.OraclePolicy``): in ``spread`` and ``adversary`` the team splits the landmarks by the
cheapest matching, which every agent computes from its own observation, and steers there with a
PD controller (it ignores collisions and the adversary, so a learned policy could beat it); in
``speaker-listener`` the speaker says the goal's index one-hot and the listener steers to the
landmark it names (before the first message arrives, to the landmarks' centre).

The solution is code, asked only for ``act(obs)``: it runs in the jailed scoring process, fresh for
each evaluation of a sealed run, while the episodes are stepped and the returns summed in the
harness. Its CPU in one evaluation beyond 3x ``evaluation_cpu_seconds`` (1.0 s) is charged to
training time; past 50x the evaluation is refused. The env steps of the throughput are the
method's own ``ctx.count``, and records and boards say so.

Budgets: ``episodes`` of training (all agents together): quick 2500 (speaker-listener only, since
v2; v1's quick run was 800 episodes of spread), full 5000 (every variant). Measured with the
reference (``baselines/maddpg.py``: 64-64 networks, Adam 1e-3, gamma 0.95, tau 0.01, batch 1024,
16 episodes stepped together, one update per vector step, one thread, on a 2-core machine shared
with other runs, so times are noisy):

* speaker-listener (v2), seeds 0-4, unsealed evaluation episodes 10**6 + 500 to 10**6 + 599:
  MADDPG -16.1, -15.2, -20.1, -15.8, -16.3 after 5000 episodes (about 70 s of training); after
  2500: -17.6, -20.5, -25.4, -16.8, -25.9. Independent DDPG on the same seeds: -33.4, -34.2, -29.5,
  -26.1, -27.3 after 5000; -35 to -29.3 after 2500. The oracle scores -11.8 on those episodes, the
  random policy -80, and a listener that ignores the message and waits at the landmarks' centre
  -30.2: that is the ceiling without communication. The targets sit past it: quick -28, full -23.
* v2's records (``results/runs/maddpg-v2/``), full budget, sealed runs under the reference key,
  seeds 0-4, two runs side by side on the 2 cores:

  - speaker-listener: MADDPG -17.5, -15.8, -18.6, -14.6, -19.6 (mean -17.2, 95% interval
    ±2.5), every seed past -23, after 32.6-68.8 s of training (mean 41.6; 70-86 s for all 5000
    episodes). Independent DDPG -34.1, -32.1, -28.2, -25.8, -30.5 (mean -30.1 ± 4.0), no seed at
    -23: the intervals are far apart, the paper's result. Oracle -11.0 to -14.6, random -69.6 to
    -87.5.
  - spread: MADDPG -50.5, -52.0, -49.3, -52.3, -49.5 (mean -50.7 ± 1.7), independent DDPG -48.1 to
    -53.5 (mean -50.8 ± 2.4): as in v1, no gain from the centralised critic on this fully observed
    task. Time to -56: 60-106 s, against 40-56 s for v1's records: this machine is slower now, not
    the code (v1's and v2's training code, 800 episodes of spread alone on one idle core, one run
    after another: 24.3 and 21.7 s, 22.9 and 21.8 s). Where the time goes (cProfile, 800
    episodes): gradient steps 63 % (forward ``baddbmm`` 15 %, backward 18 %, Adam 6 %), mpe2's own
    stepping 27 %, acting, noise and the buffer the rest. Time to -56 in 30 s would need about
    half the gradient steps per episode, which changes the algorithm's sample efficiency: not done.
  - adversary (re-made from 8e7ae26, which scores the team against the worse of its two
    opponents; training and metrics per opponent identical to the first set, seed for seed):
    team_return MADDPG 6.1, 4.9, 4.4, 4.6, 3.1 (mean 4.6 ± 1.3), independent DDPG 1.3, -2.5, -1.8,
    -5.1, -5.0 (mean -2.6 ± 3.3), random -4.7, oracle 23.0. Every run's worse opponent was the
    scripted one: against their own adversaries MADDPG's teams scored 9.0 on average, IDDPG's 4.7
    and the random policy's 13.1 (its adversary is random too). MADDPG's critics help here as
    well, far from the deception the oracle's 23.0 takes. No target: the measured spread is
    wide and TASKS.md sets none.

v1 (the spread and adversary measurements below are v1's; spread is unchanged in v2):

* quick, spread, seeds 0-2: -60.7, -59.7, -58.6 after 800 episodes, 45-79 s of training; the
  first checkpoints (80 episodes, an untrained policy) score -70 to -78 and the random policy -72
  to -78, so TASKS.md's quick target of -75 is met by an untrained policy and would measure
  nothing. The quick target is -65, met by every seed from 560-640 episodes on.
* full, seeds 0-4 (``results/runs/maddpg-v1/``, sealed runs under the reference key: sealed
  evaluation episodes): spread -48.1, -49.8, -49.0, -49.0, -50.4, every seed past the -56 target;
  adversary 12.7, 11.9, 11.6, 11.9, 9.4 (about what rushing both agents to the goal scores, 9.7;
  no seed learned the deception the oracle's 23.5 needs). Training 98-105 s for 5000 episodes
  (two runs side by side on the 2 cores), 1180-1270 env steps/s on spread (steps of all agents of
  one episode counted once), peak RSS about 440 MiB. The earlier unsealed records of the same
  seeds: spread -47.8 to -55.0, adversary 7.8 to 11.6.

The speed goal (-56 within 4 minutes of training, where the calibration run took 9 minutes to
reach -53 after 5000 episodes) is met: time to -56 was 40-56 s of training (sealed seeds 0-4, one
thread, the other core busy with another run), 4.3-6.0 times inside the 4-minute goal. What made it fast: 16 episodes stepped
together, so one actor call serves them all; the agents' networks batched into one module
(``[n_agents, in, out]`` weights, one ``baddbmm`` per layer for every agent's actor, critic and
its actor loss with only that agent's action replaced); one gradient step per 16 transitions
instead of one per transition; no Python loop over agents or transitions in an update; the
environment stepped through mpe2's AEC interface without the parallel wrapper's per-call
overhead (about 300 instead of 560 microseconds an episode-step, the same numbers: checked).

Independent DDPG (``iddpg``, each critic sees its own observation and action only) is on the board
beside MADDPG. On spread it does about as well (v1 sealed: -49.2 to -52.3, time to target 30-40 s),
as independent learners are known to on this cooperative task with full observability; on
speaker-listener, where a message only pays through the other agent's response, it does not (v2,
above).

Sealing protects the evaluation episodes: sealed, their seeds (initial positions of agents and
landmarks, and in ``adversary`` which landmark is the goal) come from a keyed stream, so a method
cannot train on the very episodes it is scored on. The environments, the scripted adversary and
the oracle are public code; a method may train on as many episodes of its own as its budget allows.

Peers (``tests/test_maddpg.py``): mpe2's own ``parallel_env`` and TorchRL's ``PettingZooWrapper``
give the same observations, rewards and flags as the task's environment, exactly; TorchRL's
``DDPGLoss`` on a ``MultiAgentMLP(centralized=True)`` critic holding our weights gives our critic
targets and critic loss, and, with a TorchRL actor that replaces only agent i's action and agent
i's Q picked out, our agent-i actor loss and its gradient (to 1e-5). Out of the box TorchRL's
``DDPGLoss`` replaces every agent's action at once; the test states the difference.

Versions: mpe2 1.1.1, PettingZoo 1.27.0, torch 2.13.0; TorchRL 0.14.1 in the tests.
"""

from __future__ import annotations

from advbench.spec import Budget, Metric, Target, TaskSpec

# speaker-listener: the best a listener does without the message (steering to the landmarks' centre)
# is -30.2 on 100 evaluation episodes; these targets need a message that is understood.
QUICK_SPEAKER_LISTENER_TARGET = -28.0
FULL_SPEAKER_LISTENER_TARGET = -23.0

SPEC = TaskSpec(
    name="maddpg",
    version=2,
    title="Multi-agent DDPG on the multi-particle environments",
    summary="mpe2 simple_speaker_listener (cooperative communication), simple_spread (3 agents) and "
            "simple_adversary (2 good agents and a trained adversary); team return over 100 sealed "
            "evaluation episodes.",
    variants={
        "speaker-listener": "simple_speaker_listener_v4: a speaker that sees the goal and a listener that moves, "
                            "25 steps, continuous actions",
        "spread": "simple_spread_v3, N=3, local_ratio 0.5, 25 steps, continuous actions",
        "adversary": "simple_adversary_v3, N=2 good agents and the adversary, all trained; scored against the "
                     "trained adversary and a scripted one, 25 steps, continuous actions",
    },
    metrics=(
        Metric("team_return", "reward", True,
               "rewards summed over the team's agents and the 25 steps, mean over 100 evaluation episodes "
               "(adversary: the good agents' return against the worse for them of two opponents, the adversary "
               "trained with them and the scripted one)"),
        Metric("normalised_return", "fraction", True,
               "team return on the same episodes scaled so the random policy is 0 and the scripted oracle 1"),
        Metric("own_adversary_return", "reward", True,
               "adversary only: the good agents' return against the adversary trained with them (the paper's setting)"),
        Metric("scripted_opponent_return", "reward", True,
               "adversary only: the good agents' return against the scripted adversary on the same episodes, "
               "comparable across runs whatever adversary a method trained"),
    ),
    primary_metric="team_return",
    targets=(
        Target("team_return", QUICK_SPEAKER_LISTENER_TARGET, "quick", "speaker-listener"),
        Target("team_return", FULL_SPEAKER_LISTENER_TARGET, "full", "speaker-listener"),
        Target("team_return", -56.0, "full", "spread"),
    ),
    budgets={
        "quick": Budget("quick", max_seconds=240, limits={"episodes": 2500}, variants=("speaker-listener",)),
        "full": Budget("full", max_seconds=600, limits={"episodes": 5000},
                       variants=("speaker-listener", "spread", "adversary")),
    },
    profiles=("cpu", "cuda"),
    throughput_unit="env steps/s",
    entry_point="advbench.tasks.maddpg.heldout:MADDPGTask",
    ceiling_methods=("oracle",),
    solution="object with act(obs: float32[episodes, agents, obs_dim]) -> float32[episodes, agents, 5] in [0, 1] "
             "(observations zero-padded to the longest agent's, the first action_dims[i] entries run)",
    data="mpe2 simple_speaker_listener_v4 / simple_spread_v3 / simple_adversary_v3; 100 evaluation episodes "
         "on sealed seeds >= 10**6",
    extras=("rl",),
)
