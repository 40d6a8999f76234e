"""``quadruped-walk`` and ``quadruped-run`` for a batch of states."""

from __future__ import annotations

import copy
import math
from collections import OrderedDict

import mujoco
import numpy as np
import torch
from dm_control.suite import quadruped as dm_quadruped

from neural_sim.robots.batched.base import PhysicsReadout, StepResult, check_activations, to_host, tolerance
from neural_sim.robots.dm_control import DmControlTask

#: Each task's target speed, the stock task's own constants.
MOVE_SPEEDS = {"walk": float(dm_quadruped._WALK_SPEED), "run": float(dm_quadruped._RUN_SPEED)}


class QuadrupedMove:
    """The quadruped's walk and run tasks: stay upright, move forward at the task's speed.

    Its observation is mostly MuJoCo's sensors (velocimeter, IMU, force and torque at the
    toes), read after one ``mj_forward`` per env with the env's state, control and actuator
    activations (the servo targets, which the env advances and passes to :meth:`step`).

    :param bridge: the task's bridge (its model and settings).
    """

    native = True

    def __init__(self, bridge: DmControlTask) -> None:
        model = bridge.physics.model.ptr
        if bridge.na == 0 or bridge.task_name not in MOVE_SPEEDS:
            raise NotImplementedError("not the stock quadruped's walk or run task")
        self._physics = PhysicsReadout(model)
        # dm_control computes an episode start's quantities with actuation disabled (its
        # reset has no meaningful control yet); the servos' pull toward zero would show in
        # the accelerometer and toe forces otherwise.
        self._start_model = copy.copy(model)
        self._start_model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_ACTUATION
        self._speed = MOVE_SPEEDS[bridge.task_name]
        hinges = np.flatnonzero(model.jnt_type == mujoco.mjtJoint.mjJNT_HINGE)
        self._hinge_qpos = np.asarray(model.jnt_qposadr[hinges])
        self._hinge_qvel = np.asarray(model.jnt_dofadr[hinges])
        self._torso = int(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "torso"))

        def sensors(*kinds: mujoco.mjtSensor) -> np.ndarray:  # entries of these kinds, in sensor order
            ids = np.flatnonzero(np.isin(model.sensor_type, [int(k) for k in kinds]))
            return np.concatenate([np.arange(model.sensor_adr[i], model.sensor_adr[i] + model.sensor_dim[i])
                                   for i in ids])

        self._velocimeter = sensors(mujoco.mjtSensor.mjSENS_VELOCIMETER)
        self._imu = sensors(mujoco.mjtSensor.mjSENS_GYRO, mujoco.mjtSensor.mjSENS_ACCELEROMETER)
        self._force_torque = sensors(mujoco.mjtSensor.mjSENS_FORCE, mujoco.mjtSensor.mjSENS_TORQUE)
        self._nq, self._na, self._nsensor = bridge.nq, int(model.na), int(model.nsensordata)

    def begin_episodes(self, rows: np.ndarray, rngs: list[np.random.Generator]) -> None:
        """The task draws nothing at an episode start."""

    def _evaluate(self, states: torch.Tensor, activations: np.ndarray | None, controls: np.ndarray | None
                  ) -> tuple[OrderedDict[str, np.ndarray], np.ndarray]:
        """Observations and rewards at each state with its activations and control (``None``:
        an episode start, computed as dm_control's reset computes it)."""
        start = controls is None
        torso = self._torso
        readings = self._physics.read(
            to_host(states), controls, lambda data: np.append(data.sensordata, data.xmat[torso, 8]),
            (self._nsensor + 1,), activations, model=self._start_model if start else None)
        upright = readings[:, -1]  # the torso's z axis, world z component
        qpos, qvel = to_host(states[:, : self._nq]), to_host(states[:, self._nq :])
        velocity = readings[:, self._velocimeter]
        observations = OrderedDict(
            egocentric_state=np.concatenate(
                [qpos[:, self._hinge_qpos], qvel[:, self._hinge_qvel],
                 np.zeros((len(states), self._na)) if activations is None else activations], 1),
            torso_velocity=velocity,
            torso_upright=upright,
            imu=readings[:, self._imu],
            force_torque=np.arcsinh(readings[:, self._force_torque]),
        )
        upright_reward = tolerance(torch.as_tensor(upright), (1.0, math.inf), sigmoid="linear", margin=2.0,
                                   value_at_margin=0.0)
        move = tolerance(torch.as_tensor(velocity[:, 0]), (self._speed, math.inf), margin=self._speed,
                         value_at_margin=0.5, sigmoid="linear")
        return observations, to_host(upright_reward * move)

    def observations(self, states: torch.Tensor, rows: np.ndarray | None = None) -> OrderedDict[str, np.ndarray]:
        """Observations at episode starts (zero activations and control)."""
        return self._evaluate(states, None, None)[0]

    def step(self, previous: torch.Tensor, actions: np.ndarray, states: torch.Tensor,
             rows: np.ndarray | None = None, activations: np.ndarray | None = None) -> StepResult:
        """Observe and score each env's new state under its action and activations."""
        check_activations(activations, len(states), self._na)
        observations, rewards = self._evaluate(states, activations, np.asarray(actions, dtype=np.float64))
        never = np.zeros(len(states), dtype=bool)
        return observations, rewards, never, never.copy()
