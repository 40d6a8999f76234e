"""TQC in the learned cheetah with the density penalty, scored in real MuJoCo.

The penalty (``density_penalty=1.0``) lowers the reward where the model has seen no data,
which keeps the agent from exploiting the model's mistakes (the late collapse the MoSim
paper reports for cheetah-run without it). TQC as in the paper: 5 critics of 25
quantiles, the top 2 per critic dropped.

    python examples/tqc_density_cheetah.py --steps 200000
"""

from __future__ import annotations

import argparse

import gymnasium as gym
from sb3_contrib import TQC

from neural_sim.rl import RealEnvEvaluation

TRAIN_ID = "neural_sim:NeuralSim/Cheetah-v0"  # was: "dm_control/cheetah-run-v0"
REAL_ID = "dm_control/cheetah-run-v0"

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=200_000, help="agent steps in the learned simulator")
parser.add_argument("--density-penalty", type=float, default=1.0, help="penalty weight (0 turns it off)")
parser.add_argument("--eval-every", type=int, default=20_000, help="agent steps between real-env scores")
parser.add_argument("--eval-episodes", type=int, default=10, help="real episodes per score")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

env = gym.make(TRAIN_ID, density_penalty=args.density_penalty)
model = TQC("MultiInputPolicy", env, top_quantiles_to_drop_per_net=2,
            policy_kwargs={"n_critics": 5, "n_quantiles": 25}, learning_starts=min(1000, args.steps // 2),
            seed=args.seed, verbose=0)
scores = RealEnvEvaluation(REAL_ID, every=args.eval_every, episodes=args.eval_episodes, seed=args.seed,
                           on_evaluation=lambda r: print(f"{r['steps']} steps: real {REAL_ID} return "
                                                         f"{r['mean']:.1f} +- {r['std']:.1f}"))
model.learn(total_timesteps=args.steps, callback=scores)
