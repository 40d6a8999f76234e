"""Does where NeuralSim episodes start change what a zero-shot agent learns?

Trains SAC (the settings of ``neural-sim rl``) in a NeuralSim dm_control env whose episodes
start from the stock task's own initial states (``task.initialize_episode``: for reacher,
random angles at rest) instead of the checkpoint's real buffer (states met under random
actions, moving), and scores it in the real env every ``--eval-every`` steps. Compare with
the ``neural_sim`` rows of ``neural-sim rl`` on the same id and seed.

    python benchmarks/zero_shot_reset_distribution.py NeuralSim/Reacher-v0 --seed 0 \
        --out benchmarks/results/rl-reset/reacher-easy-stock-seed0.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import neural_sim  # noqa: F401  (registers the NeuralSim ids)
from neural_sim.rl import RealEnvEvaluation, real_env_id
from neural_sim.rl.runs import make_agent


def stock_initial_states(env_id: str, count: int, seed: int) -> np.ndarray:
    """``[count, nq + nv]`` states the real task starts its episodes from (the task's own
    ``initialize_episode``, seeded ``seed``, ``seed + 1``, ... as shimmy seeds it)."""
    bridge = gym.make(env_id).unwrapped.bridge
    states = []
    for i in range(count):
        bridge.seed(seed + i)
        states.append(bridge.reset_random())
    return np.array(states)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("env_id", help="NeuralSim id of a dm_control robot, e.g. NeuralSim/Reacher-v0")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--eval-every", type=int, default=5_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the evaluation records")
    args = parser.parse_args()
    torch.set_num_threads(1)

    real_id = real_env_id(args.env_id)
    starts = stock_initial_states(args.env_id, 4096, seed=50_000)  # seeds apart from training and scoring
    env = gym.make(args.env_id, reset_states=starts)
    env.reset(seed=args.seed)
    agent = make_agent("sac", env, args.seed, "cpu", learning_starts=min(1000, args.steps // 2))
    evaluation = RealEnvEvaluation(real_id, args.eval_every, args.eval_episodes, seed=10_000 + args.seed,
                                   on_evaluation=lambda r: print(f"{r['steps']} steps: real return {r['mean']:.1f}"))
    started = time.time()
    agent.learn(args.steps, callback=evaluation)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"env_id": args.env_id, "real_env_id": real_id, "seed": args.seed,
                                    "steps": args.steps, "reset": "stock initial states",
                                    "evaluations": evaluation.records,
                                    "wall_time_s": round(time.time() - started, 1)}, indent=1) + "\n")


if __name__ == "__main__":
    main()
