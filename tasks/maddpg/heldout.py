"""The held-out side of ``maddpg``: the evaluation episodes, the normaliser and the scoring (harness only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from advbench.task import Problem, Seal
from advbench.tasks.maddpg.contract import (EVAL_SEED_HIGH, EVAL_SEED_LOW, MAX_CYCLES, N_EVAL_EPISODES,
                                            TRAIN_SEED_LIMIT, MPETraining, OraclePolicy, RandomPolicy, VectorMPE,
                                            episode_returns, scenario)

if TYPE_CHECKING:
    from advbench.solution import SolutionHandle

EVAL_SEEDS_STREAM, RANDOM_POLICY_STREAM = 2, 3


def evaluation_seeds(seal: Seal, n: int = N_EVAL_EPISODES) -> list[int]:
    """``n`` distinct episode seeds in [10**6, 2**31 - 1): stream 2 of the seal, disjoint from training's [0, 10**6)."""
    offsets = seal.rng(EVAL_SEEDS_STREAM).choice(EVAL_SEED_HIGH - EVAL_SEED_LOW, size=n, replace=False)
    return sorted(int(EVAL_SEED_LOW + o) for o in offsets)


class MADDPGTask:
    def build(self, *, variant: str, seed: int, budget: Any, seal: Seal) -> Problem:
        sc = scenario(variant)
        seeds = evaluation_seeds(seal)
        env = VectorMPE(variant, len(seeds), seed_range=(EVAL_SEED_LOW, EVAL_SEED_HIGH))
        # Against the scripted opponent (adversary): the comparable score, and the normaliser's episodes.
        fixed = (VectorMPE(variant, len(seeds), seed_range=(EVAL_SEED_LOW, EVAL_SEED_HIGH), scripted_opponents=True)
                 if sc.opponents else env)
        train = MPETraining(variant=variant, seed=seed, agents=sc.controlled, obs_dim=env.obs_dim,
                            obs_dims=env.obs_dims, action_dims=env.action_dims, team=sc.team,
                            opponents=sc.opponents)
        return Problem(
            train=train,
            heldout={"env": env, "fixed_opponent_env": fixed, "seeds": seeds,
                     "random_rng": seal.rng(RANDOM_POLICY_STREAM), "normaliser": None},
            heldout_description=frozenset({"eval_seeds"}),
            description={"variant": variant, "env": f"mpe2.{sc.module}.parallel_env({dict(sc.kwargs)})",
                         "controlled_agents": list(sc.controlled), "team": list(sc.team),
                         "opponents": list(sc.opponents), "obs_dims": list(env.obs_dims),
                         "action_dims": list(env.action_dims), "obs_dim": env.obs_dim,
                         "steps_per_episode": MAX_CYCLES, "eval_episodes": len(seeds), "eval_seeds": seeds,
                         "train_seeds": f"VectorMPE episode seeds from default_rng([{seed}, 1, stream]) "
                                        f"in [0, {TRAIN_SEED_LIMIT})"},
        )

    def normaliser(self, problem: Problem) -> tuple[float, float]:
        """Mean team return of the random policy and of the oracle on this build's evaluation episodes.

        Computed here, in the harness, once per build and cached, so a normalised score is exact
        for its run: the same episodes as the solution, not a constant measured elsewhere. Where
        the team has an opponent, both play against the scripted one.
        """
        h = problem.heldout
        if h["normaliser"] is None:
            variant = problem.train.variant
            env = h["fixed_opponent_env"]
            random_return = float(episode_returns(env, RandomPolicy(h["random_rng"]).act, h["seeds"]).mean())
            oracle_return = float(episode_returns(env, OraclePolicy(variant).act, h["seeds"]).mean())
            if not oracle_return > random_return:
                raise RuntimeError(f"the oracle ({oracle_return:.2f}) does not beat the random policy "
                                   f"({random_return:.2f}): the normaliser would be meaningless")
            h["normaliser"] = (random_return, oracle_return)
            problem.description.update(random_return=random_return, oracle_return=oracle_return)
        return h["normaliser"]

    def evaluate(self, solution: "SolutionHandle", problem: Problem, profile: Any) -> dict[str, float]:
        random_return, oracle_return = self.normaliser(problem)
        h = problem.heldout

        def act(obs):
            return np.asarray(solution.act(obs.copy()))

        # One call per step with all evaluation episodes; the environment checks every action
        # (shape, NaN, range) and raises a clear error on a bad one.
        if h["fixed_opponent_env"] is h["env"]:
            team_return = float(episode_returns(h["env"], act, h["seeds"]).mean())
            return {"team_return": team_return,
                    "normalised_return": (team_return - random_return) / (oracle_return - random_return)}
        # The team against the scripted adversary (first: the normaliser's episodes and opponent),
        # then against its own trained one (the paper's setting). The score is the worse of the two:
        # a team cannot raise it by training a weak adversary (scored against its own only, a random
        # policy, whose adversary is random too, outranked the reference: 13.1 against 9.0).
        fixed_return = float(episode_returns(h["fixed_opponent_env"], act, h["seeds"]).mean())
        own_return = float(episode_returns(h["env"], act, h["seeds"]).mean())
        team_return = min(own_return, fixed_return)
        return {"team_return": team_return, "own_adversary_return": own_return,
                "scripted_opponent_return": fixed_return,
                "normalised_return": (team_return - random_return) / (oracle_return - random_return)}
