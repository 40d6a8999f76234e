"""Zero-shot: SAC trained only in the learned reacher, scored in real MuJoCo as it learns.

An ordinary SB3 script for ``dm_control/reacher-easy-v0`` with the training id swapped;
``RealEnvEvaluation`` scores the policy in the real env every ``--eval-every`` steps over
full-length episodes. ``neural-sim rl NeuralSim/Reacher-v0`` does the same for several
seeds next to a reference agent trained on the real env, with a learning-curve plot.

    python examples/zero_shot_sac_reacher.py --steps 50000
"""

from __future__ import annotations

import argparse

import gymnasium as gym
from stable_baselines3 import SAC

from neural_sim.rl import RealEnvEvaluation

TRAIN_ID = "neural_sim:NeuralSim/Reacher-v0"  # was: "dm_control/reacher-easy-v0"
REAL_ID = "dm_control/reacher-easy-v0"

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=50_000, help="agent steps in the learned simulator")
parser.add_argument("--eval-every", type=int, default=10_000, help="agent steps between real-env scores")
parser.add_argument("--eval-episodes", type=int, default=10, help="real episodes per score")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

env = gym.make(TRAIN_ID)
model = SAC("MultiInputPolicy", env, learning_starts=min(1000, args.steps // 2), seed=args.seed, verbose=0)
scores = RealEnvEvaluation(REAL_ID, every=args.eval_every, episodes=args.eval_episodes, seed=args.seed,
                           on_evaluation=lambda r: print(f"{r['steps']} steps: real {REAL_ID} return "
                                                         f"{r['mean']:.1f} +- {r['std']:.1f}"))
model.learn(total_timesteps=args.steps, callback=scores)
