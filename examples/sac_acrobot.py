"""Train Stable-Baselines3 SAC inside the learned acrobot, then score it in real MuJoCo.

This is an ordinary SB3 script for ``dm_control/acrobot-swingup-v0``; the only change is the
training env id. ``neural_sim:`` in front of the id makes Gymnasium import neural-sim, which
registers its ids, so no other line changes.

    python examples/sac_acrobot.py --steps 20000
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import shimmy  # noqa: F401  (registers the dm_control/... ids)
from stable_baselines3 import SAC

TRAIN_ID = "neural_sim:NeuralSim/Acrobot-v0"  # was: "dm_control/acrobot-swingup-v0"
REAL_ID = "dm_control/acrobot-swingup-v0"

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=20_000, help="agent steps in the learned simulator")
parser.add_argument("--eval-episodes", type=int, default=3, help="real-env episodes to score the policy")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

env = gym.make(TRAIN_ID)
model = SAC("MultiInputPolicy", env, learning_starts=min(1000, args.steps // 2), seed=args.seed, verbose=0)
model.learn(total_timesteps=args.steps, progress_bar=False)

real = gym.make(REAL_ID)
returns = []
for episode in range(args.eval_episodes):
    obs, _ = real.reset(seed=args.seed + episode)
    done, total = False, 0.0
    while not done:
        action, _ = model.predict(obs, deterministic=True)
        obs, reward, terminated, truncated, _ = real.step(action)
        total += float(reward)
        done = terminated or truncated
    returns.append(total)
print(f"trained {args.steps} steps in {TRAIN_ID}; real {REAL_ID} return: "
      f"{np.mean(returns):.1f} +- {np.std(returns):.1f} over {args.eval_episodes} episodes")
