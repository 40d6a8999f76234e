"""``quadruped-walk`` and ``quadruped-run`` for a batch of states."""

from __future__ import annotations

import copy
import math
from collections import OrderedDict

import mujoco
import numpy as np
import torch
from dm_control.suite import quadruped as dm_quadruped

from neural_sim.robots.activation import supported_activation
from neural_sim.robots.batched.base import StepResult, tolerance
from neural_sim.robots.dm_control import DmControlTask

#: Each task's target speed, the stock task's own constants.
MOVE_SPEEDS = {"walk": float(dm_quadruped._WALK_SPEED), "run": float(dm_quadruped._RUN_SPEED)}


class QuadrupedMove:
    """The quadruped's walk and run tasks: stay upright, move forward at the task's speed.

    Its observation is mostly MuJoCo's sensors (velocimeter, IMU, force and torque at the
    toes), read after one ``mj_forward`` per env on a private ``MjData`` with the env's
    state, control and actuator activations; the servo targets (activations) of each env
    advance exactly by MuJoCo's rule (:mod:`neural_sim.model.activations`).

    :param bridge: the task's bridge (its model and settings).
    :param num_envs: the batch size (one set of activations per env).
    """

    native = True

    def __init__(self, bridge: DmControlTask, num_envs: int) -> None:
        model = bridge.physics.model.ptr
        if bridge.na == 0 or bridge.task_name not in MOVE_SPEEDS:
            raise NotImplementedError("not the stock quadruped's walk or run task")
        self._model, self._data = model, mujoco.MjData(model)
        # dm_control computes an episode start's quantities with actuation disabled (its
        # reset has no meaningful control yet); the servos' pull toward zero would show in
        # the accelerometer and toe forces otherwise.
        self._start_model = copy.copy(model)
        self._start_model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_ACTUATION
        rule = supported_activation(model, bridge.n_sub_steps, bridge.domain)
        assert rule is not None
        self._rule = rule
        self._activations = np.zeros((num_envs, model.na))
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
        self._spec = (mujoco.mjtState.mjSTATE_QPOS | mujoco.mjtState.mjSTATE_QVEL | mujoco.mjtState.mjSTATE_ACT
                      | mujoco.mjtState.mjSTATE_CTRL)
        self._state_size, self._na, self._nu = bridge.nq + bridge.nv, int(model.na), int(model.nu)

    def begin_episodes(self, rows: np.ndarray, rngs: list[np.random.Generator]) -> None:
        """Episodes start with zero activations, as after MuJoCo's reset."""
        self._activations[rows] = 0.0

    def _evaluate(self, states: torch.Tensor, activations: np.ndarray, controls: np.ndarray,
                  start: bool = False) -> tuple[OrderedDict[str, np.ndarray], np.ndarray]:
        """Observations and rewards at each state with its activations and control (at an
        episode ``start``, as dm_control's reset computes them)."""
        rows = np.concatenate([states.numpy(), activations, controls], axis=1)
        n = len(rows)
        readings, upright = np.empty((n, self._data.sensordata.size)), np.empty(n)
        model, data = (self._start_model if start else self._model), self._data
        for i, row in enumerate(rows):
            mujoco.mj_setState(model, data, row, self._spec)
            mujoco.mj_forward(model, data)
            readings[i] = data.sensordata
            upright[i] = data.xmat[self._torso, 8]  # the torso's z axis, world z component
        values = rows[:, : self._state_size]
        qvel = values[:, self._state_size - self._model.nv :]
        velocity = readings[:, self._velocimeter]
        observations = OrderedDict(
            egocentric_state=np.concatenate([values[:, self._hinge_qpos], qvel[:, self._hinge_qvel], activations], 1),
            torso_velocity=velocity,
            torso_upright=upright,
            imu=readings[:, self._imu],
            force_torque=np.arcsinh(readings[:, self._force_torque]),
        )
        upright_reward = tolerance(torch.as_tensor(upright), (1.0, math.inf), sigmoid="linear", margin=2.0,
                                   value_at_margin=0.0)
        move = tolerance(torch.as_tensor(velocity[:, 0]), (self._speed, math.inf), margin=self._speed,
                         value_at_margin=0.5, sigmoid="linear")
        return observations, (upright_reward * move).numpy()

    def observations(self, states: torch.Tensor, rows: np.ndarray | None = None) -> OrderedDict[str, np.ndarray]:
        """Observations at episode starts (zero activations and control)."""
        return self._evaluate(states, np.zeros((len(states), self._na)), np.zeros((len(states), self._nu)),
                              start=True)[0]

    def step(self, previous: torch.Tensor, actions: np.ndarray, states: torch.Tensor,
             rows: np.ndarray | None = None) -> StepResult:
        """Advance each env's activations under its action, then observe and score."""
        envs = np.arange(len(states)) if rows is None else np.asarray(rows)
        controls = np.asarray(actions, dtype=np.float64)
        self._activations[envs] = self._rule.advance(self._activations[envs], controls)
        observations, rewards = self._evaluate(states, self._activations[envs], controls)
        never = np.zeros(len(states), dtype=bool)
        return observations, rewards, never, never.copy()
