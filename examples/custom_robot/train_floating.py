"""A floating-base robot from a bare MJCF file: collect, train, then run it with your task.

``box_legs.xml`` is a box on four legs with a free root joint (7 qpos: x, y, z and a unit
quaternion; 6 qvel). The model integrates the quaternion on the unit sphere and sees
gravity in the torso's frame instead of its heading, so the same file layout brings in a
MuJoCo Menagerie robot (Go2, ANYmal) downloaded by hand.

    python examples/custom_robot/train_floating.py --iterations 2000
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

XML = Path(__file__).with_name("box_legs.xml")


class Forward(base.Task):
    """Move along +x while staying upright."""

    def get_observation(self, physics):  # type: ignore[no-untyped-def]
        # Heading-free observation: height, orientation, joint angles, velocities.
        return OrderedDict(position=physics.data.qpos[2:].copy(), velocity=physics.data.qvel.copy())

    def get_reward(self, physics):  # type: ignore[no-untyped-def]
        upright = float(physics.named.data.xmat["torso", "zz"])
        return float(physics.data.qvel[0]) * max(upright, 0.0)


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", type=Path, default=Path("runs/box_legs"))
parser.add_argument("--iterations", type=int, default=2000)
args = parser.parse_args()

subprocess.run(["neural-sim", "train", str(XML), "--out", str(args.out), "--sequences", "100", "--steps", "300",
                "--architecture", "residual", "--iterations", str(args.iterations), "--lr", "2e-3"], check=True)
ids = neural_sim.register_checkpoint(args.out)
env = gym.make(ids[0], task=Forward())
obs, info = env.reset(seed=0)
total = 0.0
for _ in range(100):
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    total += float(reward)
    if terminated or truncated:
        break
quaternion = info["state"][3:7]
print(f"{ids[0]}: 100 random steps of Forward, return {total:.2f}; torso quaternion {quaternion.round(3)} "
      f"(norm {np.linalg.norm(quaternion):.6f})")
