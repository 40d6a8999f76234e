"""The usual Stable-Baselines3 script for Gymnasium's ``HalfCheetah-v5``, trained in the
learned simulator instead: the only change is the training env id.

``NeuralSim/HalfCheetah-v5`` has Gymnasium's own observation and action spaces, and the
real ``HalfCheetah-v5`` code computes its observation, reward (forward velocity from the
previous and the predicted state, control cost) and ``info`` on every predicted state.
Episodes are truncated at the checkpoint's trusted horizon (``max_episode_steps=`` changes
that); the policy is then scored in real MuJoCo.

    python examples/sac_halfcheetah_v5.py --steps 20000
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
from stable_baselines3 import SAC
from stable_baselines3.common.env_util import make_vec_env

TRAIN_ID = "neural_sim:NeuralSim/HalfCheetah-v5"  # was: "HalfCheetah-v5"
REAL_ID = "HalfCheetah-v5"

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=20_000, help="agent steps in the learned simulator")
parser.add_argument("--eval-episodes", type=int, default=3, help="real-env episodes to score the policy")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

env = make_vec_env(TRAIN_ID, n_envs=1, seed=args.seed)
model = SAC("MlpPolicy", env, learning_starts=min(1000, args.steps // 2), seed=args.seed, verbose=0)
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
