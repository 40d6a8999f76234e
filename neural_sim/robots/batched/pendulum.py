"""``pendulum-swingup`` for a batch of states."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from dm_control.suite import pendulum as dm_pendulum

from neural_sim.robots.batched.base import StateTask, to_host, tolerance
from neural_sim.robots.batched.kinematics import PlanarKinematics
from neural_sim.robots.dm_control import DmControlTask


class PendulumSwingUp(StateTask):
    """``pendulum-swingup`` for a batch."""

    def __init__(self, bridge: DmControlTask) -> None:
        PlanarKinematics(bridge)  # checks the geometry assumptions
        self._cosine_bound = float(dm_pendulum._COSINE_BOUND)  # the stock task's own constant

    def observations(self, states: torch.Tensor, rows: np.ndarray | None = None) -> OrderedDict[str, np.ndarray]:
        """``orientation`` = (zz, xz) of the pole frame; ``velocity`` = qvel."""
        angle = states[:, 0]
        orientation = torch.stack([torch.cos(angle), torch.sin(angle)], -1)
        return OrderedDict(orientation=to_host(orientation), velocity=to_host(states[:, 1:2], copy=True))

    def rewards(self, states: torch.Tensor, rows: np.ndarray | None = None) -> np.ndarray:
        """1 while the pole is near upright (cosine above the stock bound)."""
        return to_host(tolerance(torch.cos(states[:, 0]), (self._cosine_bound, 1.0)))
