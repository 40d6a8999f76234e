"""``walker-stand``, ``walker-walk`` and ``walker-run`` for a batch of states."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import torch
from dm_control.suite import walker as dm_walker

from neural_sim.model.tracing import trace_function
from neural_sim.robots.batched.base import StateTask, to_host, tolerance
from neural_sim.robots.batched.kinematics import PlanarKinematics
from neural_sim.robots.dm_control import DmControlTask

#: Each task's target speed, the stock task's own constants.
MOVE_SPEEDS = {"stand": 0.0, "walk": float(dm_walker._WALK_SPEED), "run": float(dm_walker._RUN_SPEED)}


class WalkerTask(StateTask):
    """The planar walker's stand, walk and run tasks: stand tall and upright, move forward."""

    def __init__(self, bridge: DmControlTask, device: torch.device | str = "cpu") -> None:
        self._kinematics = PlanarKinematics(bridge, device)
        self._torso = self._kinematics.body_id("torso")
        self._stand_height = float(dm_walker._STAND_HEIGHT)
        self._move_speed = MOVE_SPEEDS[bridge.task_name]
        self._nq = bridge.nq
        self._traced: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]] | None = None

    def _quantities(self, qpos: torch.Tensor, qvel: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Body frame angles ``[N, nbody]``, torso height and forward speed of the torso subtree."""
        positions, angles = self._kinematics.body_frames(qpos)
        speed = self._kinematics.subtree_com_velocity(self._torso, qpos, qvel)[:, 0]
        return angles, positions[:, self._torso, 2], speed

    def _evaluate(self, states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        qpos, qvel = states[:, : self._nq], states[:, self._nq :]
        if self._traced is None:
            # Forward kinematics is a few hundred tiny operations: traced, several times cheaper.
            self._traced = trace_function(self._quantities, (qpos, qvel))
        return self._traced(qpos, qvel)

    def observations(self, states: torch.Tensor, rows: np.ndarray | None = None) -> OrderedDict[str, np.ndarray]:
        """``orientations`` = (xx, xz) of every body's frame; ``height`` = torso z; ``velocity`` = qvel."""
        angles, height, _ = self._evaluate(states)
        frames = angles[:, 1:]
        orientations = torch.stack([torch.cos(frames), torch.sin(frames)], -1).reshape(len(states), -1)
        return OrderedDict(orientations=to_host(orientations), height=to_host(height, copy=True),
                           velocity=to_host(states[:, self._nq :], copy=True))

    def rewards(self, states: torch.Tensor, rows: np.ndarray | None = None) -> np.ndarray:
        """The stock reward: standing (height tolerance) and upright, times moving forward."""
        angles, height, speed = self._evaluate(states)
        standing = tolerance(height, (self._stand_height, math.inf), margin=self._stand_height / 2)
        upright = (1 + torch.cos(angles[:, self._torso])) / 2
        stand_reward = (3 * standing + upright) / 4
        if self._move_speed == 0:
            return to_host(stand_reward)
        move = tolerance(speed, (self._move_speed, math.inf), margin=self._move_speed / 2, value_at_margin=0.5,
                         sigmoid="linear")
        return to_host(stand_reward * (5 * move + 1) / 6)
