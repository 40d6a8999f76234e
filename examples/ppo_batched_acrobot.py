"""Train Stable-Baselines3 PPO on 256 learned acrobots stepped as one batch, score it in MuJoCo.

The batched NeuralSim env makes one model call per step for all envs; the SB3 adapter
gives it SB3's VecEnv semantics, so PPO trains on it unchanged.

    python examples/ppo_batched_acrobot.py --steps 200000
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import shimmy  # noqa: F401  (registers the dm_control/... ids)
from stable_baselines3 import PPO

import neural_sim.sb3

TRAIN_ID = "NeuralSim/Acrobot-v0"
REAL_ID = "dm_control/acrobot-swingup-v0"

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=200_000, help="agent steps in the learned simulator")
parser.add_argument("--n-envs", type=int, default=256, help="environments stepped as one batch")
parser.add_argument("--eval-episodes", type=int, default=3, help="real-env episodes to score the policy")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

envs = neural_sim.sb3.make_vec_env(TRAIN_ID, n_envs=args.n_envs, seed=args.seed)
model = PPO("MultiInputPolicy", envs, n_steps=64, batch_size=4096, seed=args.seed, verbose=0)
model.learn(total_timesteps=args.steps)

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
print(f"trained {model.num_timesteps} steps on {args.n_envs} batched {TRAIN_ID} envs; real {REAL_ID} return: "
      f"{np.mean(returns):.1f} +- {np.std(returns):.1f} over {args.eval_episodes} episodes")
