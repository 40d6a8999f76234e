"""``acrobot-swingup`` and ``acrobot-swingup_sparse`` for a batch of states."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch

from neural_sim.robots.batched.base import StateTask, to_host, tolerance
from neural_sim.robots.batched.kinematics import PlanarKinematics, rotate_y
from neural_sim.robots.dm_control import DmControlTask


class AcrobotBalance(StateTask):
    """``acrobot-swingup`` / ``acrobot-swingup_sparse`` for a batch."""

    def __init__(self, bridge: DmControlTask, sparse: bool, device: torch.device | str = "cpu") -> None:
        kinematics = PlanarKinematics(bridge, device)  # also checks the geometry assumptions
        self._shoulder, self._elbow = kinematics.body_offset("upper_arm"), kinematics.body_offset("lower_arm")
        named = bridge.physics.named.model
        self._tip = torch.tensor(named.site_pos["tip"], dtype=torch.float64, device=device)
        self._target = torch.tensor(named.site_pos["target"], dtype=torch.float64, device=device)
        self._radius = float(named.site_size["target", 0])
        self._sparse = sparse

    def _angles(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return states[:, 0], states[:, 0] + states[:, 1]

    def observations(self, states: torch.Tensor, rows: np.ndarray | None = None) -> OrderedDict[str, np.ndarray]:
        """``orientations`` = (xz, xz, zz, zz) of the arms' frames; ``velocity`` = qvel."""
        upper, lower = self._angles(states)
        orientations = torch.stack([torch.sin(upper), torch.sin(lower), torch.cos(upper), torch.cos(lower)], -1)
        return OrderedDict(orientations=to_host(orientations), velocity=to_host(states[:, 2:4], copy=True))

    def rewards(self, states: torch.Tensor, rows: np.ndarray | None = None) -> np.ndarray:
        """Tolerance of the tip-to-target distance (margin 1, or 0 when sparse)."""
        upper, lower = self._angles(states)
        tip = self._shoulder + rotate_y(upper, self._elbow) + rotate_y(lower, self._tip)
        distance = torch.linalg.vector_norm(self._target - tip, dim=-1)
        return to_host(tolerance(distance, (0.0, self._radius), margin=0.0 if self._sparse else 1.0))
