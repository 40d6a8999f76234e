"""``cheetah-run`` for a batch of states."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import torch
from dm_control.suite import cheetah as dm_cheetah

from neural_sim.model.tracing import trace_function
from neural_sim.robots.batched.base import StateTask, to_host, tolerance
from neural_sim.robots.batched.kinematics import PlanarKinematics
from neural_sim.robots.dm_control import DmControlTask


class CheetahRun(StateTask):
    """``cheetah-run`` for a batch."""

    def __init__(self, bridge: DmControlTask, device: torch.device | str = "cpu") -> None:
        self._kinematics = PlanarKinematics(bridge, device)
        self._torso = bridge.physics.model.name2id("torso", "body")
        self._run_speed = float(dm_cheetah._RUN_SPEED)  # the stock task's own constant
        self._nq = bridge.nq
        self._traced_speed: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    def _forward_speed(self, qpos: torch.Tensor, qvel: torch.Tensor) -> torch.Tensor:
        """X velocity of the torso subtree's centre of mass, ``[N]``."""
        return self._kinematics.subtree_com_velocity(self._torso, qpos, qvel)[:, 0]

    def observations(self, states: torch.Tensor, rows: np.ndarray | None = None) -> OrderedDict[str, np.ndarray]:
        """``position`` = qpos without root x; ``velocity`` = qvel."""
        position, velocity = states[:, 1 : self._nq], states[:, self._nq :]
        return OrderedDict(position=to_host(position, copy=True), velocity=to_host(velocity, copy=True))

    def rewards(self, states: torch.Tensor, rows: np.ndarray | None = None) -> np.ndarray:
        """Linear tolerance of the forward speed of the centre of mass (target 10 m/s)."""
        qpos, qvel = states[:, : self._nq], states[:, self._nq :]
        if self._traced_speed is None:
            # Forward kinematics is a few hundred tiny operations: traced, 3-5x cheaper.
            self._traced_speed = trace_function(self._forward_speed, (qpos, qvel))
        speed = self._traced_speed(qpos, qvel)
        return to_host(tolerance(speed, (self._run_speed, math.inf), margin=self._run_speed,
                         sigmoid="linear", value_at_margin=0.0))
