"""``hopper-stand`` and ``hopper-hop`` for a batch of states."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import torch
from dm_control.suite import hopper as dm_hopper

from neural_sim.model.tracing import trace_function
from neural_sim.robots.batched.base import PhysicsReadout, StateTask, StepResult, to_host, tolerance
from neural_sim.robots.batched.kinematics import PlanarKinematics
from neural_sim.robots.dm_control import DmControlTask


class HopperTask(StateTask):
    """The planar hopper's stand and hop tasks: torso high above the foot, small controls
    (stand) or moving forward (hop).

    Height and speed are forward kinematics in torch. The ``touch`` observation is the
    contact force under the toe and the heel: only MuJoCo's constraint solver knows it, so
    it comes from one ``mj_forward`` per state on a private ``MjData`` (a C call, no
    dm_control indexing; the forces depend on the control, which it takes too).
    """

    def __init__(self, bridge: DmControlTask, device: torch.device | str = "cpu") -> None:
        self._kinematics = PlanarKinematics(bridge, device)
        model = bridge.physics.model
        self._torso = self._kinematics.body_id("torso")
        self._foot = self._kinematics.body_id("foot")
        self._hopping = bridge.task_name == "hop"
        self._stand_height = float(dm_hopper._STAND_HEIGHT)  # the stock task's own constants
        self._hop_speed = float(dm_hopper._HOP_SPEED)
        self._nq = bridge.nq
        self._physics = PhysicsReadout(model.ptr)
        toe, heel = (int(model.sensor_adr[model.name2id(name, "sensor")]) for name in ("touch_toe", "touch_heel"))
        if heel != toe + 1:
            raise NotImplementedError("the touch sensors are not adjacent")  # read as one slice below
        self._touch = slice(toe, heel + 1)
        self._traced: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]] | None = None

    def _quantities(self, qpos: torch.Tensor, qvel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Torso height above the foot (centres of mass, MuJoCo ``xipos``) and forward speed of
        the torso subtree."""
        coms, _ = self._kinematics.body_coms(qpos, qvel)
        speed = self._kinematics.subtree_com_velocity(self._torso, qpos, qvel)[:, 0]
        return coms[:, self._torso, 2] - coms[:, self._foot, 2], speed

    def _evaluate(self, states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        qpos, qvel = states[:, : self._nq], states[:, self._nq :]
        if self._traced is None:  # a few hundred tiny operations: traced, several times cheaper
            self._traced = trace_function(self._quantities, (qpos, qvel))
        return self._traced(qpos, qvel)

    def _touch_sensors(self, states: torch.Tensor, controls: np.ndarray | None) -> np.ndarray:
        """``log1p`` of the toe and heel touch sensors at each state under its control ``[N, 2]``
        (zero control: an episode start, where dm_control resets it)."""
        touch = self._touch
        found = self._physics.read(to_host(states), controls, lambda data: data.sensordata[touch], (2,))
        return np.log1p(found)

    def _observations(self, states: torch.Tensor, controls: np.ndarray | None) -> OrderedDict[str, np.ndarray]:
        return OrderedDict(position=to_host(states[:, 1 : self._nq], copy=True),
                           velocity=to_host(states[:, self._nq :], copy=True),
                           touch=self._touch_sensors(states, controls))

    def observations(self, states: torch.Tensor, rows: np.ndarray | None = None) -> OrderedDict[str, np.ndarray]:
        """``position`` = qpos without root x; ``velocity`` = qvel; ``touch`` at zero control
        (as at an episode start)."""
        return self._observations(states, None)

    def step(self, previous: torch.Tensor, actions: np.ndarray, states: torch.Tensor,
             rows: np.ndarray | None = None, activations: np.ndarray | None = None) -> StepResult:
        """Observation (touch under the step's control) and the stock reward."""
        height, speed = self._evaluate(states)
        standing = tolerance(height, (self._stand_height, 2.0))
        if self._hopping:
            hopping = tolerance(speed, (self._hop_speed, math.inf), margin=self._hop_speed / 2,
                                value_at_margin=0.5, sigmoid="linear")
            rewards = standing * hopping
        else:
            controls = torch.as_tensor(actions, dtype=states.dtype, device=states.device)
            small_control = tolerance(controls, margin=1.0, value_at_margin=0.0, sigmoid="quadratic").mean(-1)
            rewards = standing * (small_control + 4) / 5
        return (self._observations(states, actions), to_host(rewards), *self.terminations(states))
