"""Gymnasium ``HalfCheetah-v5``, ``InvertedPendulum-v5`` and ``Ant-v5`` for a batch of steps.

Each reads the env's own settings (``env_kwargs`` such as reward weights apply) and does the
env's own arithmetic (Gymnasium's ``step``, ``_get_obs`` and ``_get_rew``) on the predicted
states; tested equal to the env's ``step`` to 1e-6. Ant's contact forces, which only MuJoCo's
constraint solver knows, come from one ``mj_forward`` per env.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np
import torch

from neural_sim.errors import InputError
from neural_sim.robots.batched.base import PhysicsReadout, StepResult, to_host
from neural_sim.robots.gymnasium_mujoco import GymnasiumMujocoTask


class _GymnasiumTask:
    """Base: no episode state; observations are one array per env."""

    native = True

    def __init__(self, bridge: GymnasiumMujocoTask) -> None:
        self._nq = bridge.nq

    def begin_episodes(self, rows: np.ndarray, rngs: list[np.random.Generator]) -> None:
        """No task-level episode state."""

    @staticmethod
    def _settings(bridge: GymnasiumMujocoTask, env_name: str, **attributes: str) -> dict[str, Any]:
        """The env's own settings (``env_kwargs`` applied): ``{key: env.<attribute>}``.

        :raises InputError: the env lacks one: it is not an ``env_name`` env.
        """
        try:
            return {key: getattr(bridge.env, attribute) for key, attribute in attributes.items()}
        except AttributeError as error:
            raise InputError(f"{bridge.env_id} is not {env_name} env: {error}") from error


class HalfCheetahForward(_GymnasiumTask):
    """``HalfCheetah-v5``: reward ``w_f (x' - x) / dt - w_c |u|^2``, never terminates.

    :raises InputError: a bridge whose env is not a ``HalfCheetah-v5``.
    """

    def __init__(self, bridge: GymnasiumMujocoTask) -> None:
        super().__init__(bridge)
        settings = self._settings(bridge, "a HalfCheetah-v5", forward="_forward_reward_weight",
                                  ctrl="_ctrl_cost_weight", skip_x="_exclude_current_positions_from_observation")
        self._forward_weight, self._ctrl_weight = float(settings["forward"]), float(settings["ctrl"])
        self._skip_x = bool(settings["skip_x"])
        self._dt = float(bridge.env.dt)

    def observations(self, states: torch.Tensor, rows: np.ndarray | None = None) -> np.ndarray:
        """``[qpos (without x by default), qvel]``."""
        return to_host(states[:, 1:] if self._skip_x else states, copy=True)

    def step(self, previous: torch.Tensor, actions: np.ndarray, states: torch.Tensor,
             rows: np.ndarray | None = None, activations: np.ndarray | None = None) -> StepResult:
        """Forward reward from the x displacement over the step, minus the control cost."""
        x_velocity = to_host((states[:, 0] - previous[:, 0]) / self._dt)
        # The env squares the action it is given as float32 (the bridge passes the space's dtype).
        ctrl_cost = self._ctrl_weight * np.sum(np.square(actions.astype(np.float32)), axis=1)
        rewards = self._forward_weight * x_velocity - ctrl_cost
        never = np.zeros(len(states), dtype=bool)
        return self.observations(states), rewards.astype(np.float64), never, never.copy()


class InvertedPendulumBalance(_GymnasiumTask):
    """``InvertedPendulum-v5``: reward 1 while the pole is within 0.2 rad, else the episode ends."""

    def observations(self, states: torch.Tensor, rows: np.ndarray | None = None) -> np.ndarray:
        """``[qpos, qvel]``."""
        return to_host(states, copy=True)

    def step(self, previous: torch.Tensor, actions: np.ndarray, states: torch.Tensor,
             rows: np.ndarray | None = None, activations: np.ndarray | None = None) -> StepResult:
        """Terminated when the pole leaves 0.2 rad (or a value is not finite); reward 1 until then."""
        observations = self.observations(states)
        terminated = ~np.isfinite(observations).all(axis=1) | (np.abs(observations[:, 1]) > 0.2)
        return observations, (~terminated).astype(np.float64), terminated, np.zeros(len(states), dtype=bool)


class AntForward(_GymnasiumTask):
    """``Ant-v5``: reward ``w_f x_velocity + healthy - w_c |u|^2 - w_k |clip(cfrc_ext)|^2``;
    terminated when unhealthy (torso height outside its range, or a value not finite).

    ``cfrc_ext`` (contact forces on each body) is MuJoCo's: each state is written with its
    control into a private ``MjData``, then ``mj_forward`` and ``mj_rnePostConstraint``, as
    the env's own step leaves them. At an episode start they are zero, as after the env's reset.

    :raises InputError: a bridge whose env is not an ``Ant-v5``.
    """

    def __init__(self, bridge: GymnasiumMujocoTask) -> None:
        super().__init__(bridge)
        settings = self._settings(
            bridge, "an Ant-v5", forward="_forward_reward_weight", ctrl="_ctrl_cost_weight",
            contact="_contact_cost_weight", healthy="_healthy_reward", terminate="_terminate_when_unhealthy",
            healthy_z="_healthy_z_range", force_range="_contact_force_range",
            skip_xy="_exclude_current_positions_from_observation", with_forces="_include_cfrc_ext_in_observation",
            main_body="_main_body")
        self._forward_weight, self._ctrl_weight = float(settings["forward"]), float(settings["ctrl"])
        self._contact_weight, self._healthy_reward = float(settings["contact"]), float(settings["healthy"])
        self._terminate_when_unhealthy = bool(settings["terminate"])
        self._healthy_z = tuple(float(z) for z in settings["healthy_z"])
        self._force_range = tuple(float(f) for f in settings["force_range"])
        self._skip_xy, self._with_forces = bool(settings["skip_xy"]), bool(settings["with_forces"])
        main_body = bridge.model.body(settings["main_body"]).id
        model = bridge.model
        free = np.flatnonzero(model.jnt_type == mujoco.mjtJoint.mjJNT_FREE)
        if len(free) != 1 or model.jnt_bodyid[free[0]] != main_body or model.jnt_qposadr[free[0]] != 0:
            raise InputError(f"{bridge.env_id}: the main body is not the free root at qpos[0:7]")
        self._dt = float(bridge.env.dt)
        self._model = model
        self._physics = PhysicsReadout(model, contact_forces=True)

    def _contact_forces(self, states: torch.Tensor, actions: np.ndarray) -> np.ndarray:
        """``clip(cfrc_ext)`` of every body but the world, ``[N, nbody - 1, 6]``."""
        found = self._physics.read(to_host(states), actions, lambda data: data.cfrc_ext[1:],
                                   (self._model.nbody - 1, 6))
        low, high = self._force_range
        return np.clip(found, low, high)

    def _observations(self, states: torch.Tensor, forces: np.ndarray) -> np.ndarray:
        parts = [to_host(states[:, 2:self._nq] if self._skip_xy else states[:, : self._nq]),
                 to_host(states[:, self._nq :])]
        if self._with_forces:
            parts.append(forces.reshape(len(states), -1))
        return np.concatenate(parts, axis=1)

    def observations(self, states: torch.Tensor, rows: np.ndarray | None = None) -> np.ndarray:
        """``[qpos (without x, y by default), qvel, contact forces (zero at a start)]``."""
        return self._observations(states, np.zeros((len(states), self._model.nbody - 1, 6)))

    def step(self, previous: torch.Tensor, actions: np.ndarray, states: torch.Tensor,
             rows: np.ndarray | None = None, activations: np.ndarray | None = None) -> StepResult:
        """Forward, healthy, control and contact terms of the env's own reward."""
        # The env squares the action it is given as float32 (the bridge passes the space's dtype).
        controls = actions.astype(np.float32)
        forces = self._contact_forces(states, controls.astype(np.float64))
        values = to_host(states)
        x_velocity = (values[:, 0] - to_host(previous[:, 0])) / self._dt  # the free root's x is the body's
        low, high = self._healthy_z
        healthy = np.isfinite(values).all(axis=1) & (low <= values[:, 2]) & (values[:, 2] <= high)
        rewards = (x_velocity * self._forward_weight + healthy * self._healthy_reward
                   - self._ctrl_weight * np.sum(np.square(controls), axis=1)
                   - self._contact_weight * np.sum(np.square(forces), axis=(1, 2)))
        terminated = ~healthy if self._terminate_when_unhealthy else np.zeros(len(states), dtype=bool)
        return (self._observations(states, forces), rewards.astype(np.float64), terminated,
                np.zeros(len(states), dtype=bool))
