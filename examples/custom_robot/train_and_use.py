"""A robot that lives in no package: collect, train, then use it with your own task.

The MJCF (``arm.xml``) is copied into the checkpoint folder; the task is Python given at
``make`` time, written the way dm_control writes tasks (a ``base.Task`` with
``get_observation``/``get_reward``/``get_termination`` of ``physics``).

    python examples/custom_robot/train_and_use.py --iterations 2000
    neural-sim push runs/arm you/rail-arm     # publish it (needs `hf auth login`)
"""

from __future__ import annotations

import argparse
import subprocess
from collections import OrderedDict
from pathlib import Path

import gymnasium as gym
import numpy as np
from dm_control.suite import base

import neural_sim

XML = Path(__file__).with_name("arm.xml")


class ReachUp(base.Task):
    """Bring the hand to a point above the rail."""

    def get_observation(self, physics):  # type: ignore[no-untyped-def]
        return OrderedDict(position=physics.data.qpos.copy(), velocity=physics.data.qvel.copy(),
                           hand=physics.named.data.site_xpos["hand"].copy())

    def get_reward(self, physics):  # type: ignore[no-untyped-def]
        return -float(np.linalg.norm(physics.named.data.site_xpos["hand"] - [0.3, 0.0, 0.6]))


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", type=Path, default=Path("runs/arm"))
parser.add_argument("--iterations", type=int, default=2000)
args = parser.parse_args()

subprocess.run(["neural-sim", "train", str(XML), "--out", str(args.out), "--sequences", "100",
                "--iterations", str(args.iterations), "--lr", "3e-3"], check=True)
ids = neural_sim.register_checkpoint(args.out)
env = gym.make(ids[0], task=ReachUp())
obs, info = env.reset(seed=0)
total = 0.0
for _ in range(50):
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    total += float(reward)
    if terminated or truncated:
        break
print(f"{ids[0]}: 50 random steps of ReachUp, return {total:.2f}; hand at {obs['hand'].round(3)}")
