"""The few-shot loop: SAC trains in the learned cheetah; every few thousand steps it acts in
real MuJoCo for a while, and the model is fine-tuned on what it saw and resets from there.

Any model-free agent becomes model-based this way: the agent code is unchanged, the loop
is an SB3 callback. The real-env steps are the only real samples used.

    python examples/few_shot_cheetah.py --steps 100000 --every 5000 --real-steps 1000
"""

from __future__ import annotations

import argparse

import gymnasium as gym
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import CallbackList

from neural_sim.rl import FewShotLoop, RealEnvEvaluation

TRAIN_ID = "neural_sim:NeuralSim/Cheetah-v0"
REAL_ID = "dm_control/cheetah-run-v0"

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--steps", type=int, default=100_000, help="agent steps in the learned simulator")
parser.add_argument("--every", type=int, default=5_000, help="agent steps between real collections")
parser.add_argument("--real-steps", type=int, default=1_000, help="real-env steps per collection")
parser.add_argument("--finetune-iterations", type=int, default=200, help="fine-tuning steps per collection")
parser.add_argument("--eval-every", type=int, default=20_000, help="agent steps between real-env scores")
parser.add_argument("--eval-episodes", type=int, default=5, help="real episodes per score")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

env = gym.make(TRAIN_ID)
model = SAC("MultiInputPolicy", env, learning_starts=min(1000, args.steps // 2), seed=args.seed, verbose=0)
loop = FewShotLoop(args.every, args.real_steps, args.finetune_iterations, seed=args.seed,
                   on_collection=lambda r: print(f"{r['steps']} steps: {r['real_steps_total']} real steps so far, "
                                                 f"model loss on them {r['loss_before']:.3g} -> {r['loss_after']:.3g}"))
scores = RealEnvEvaluation(REAL_ID, every=args.eval_every, episodes=args.eval_episodes, seed=args.seed,
                           on_evaluation=lambda r: print(f"{r['steps']} steps ({loop.real_steps_total} real): "
                                                         f"real return {r['mean']:.1f} +- {r['std']:.1f}"))
model.learn(total_timesteps=args.steps, callback=CallbackList([loop, scores]))
