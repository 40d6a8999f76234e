"""Gymnasium ``HalfCheetah-v5`` and ``InvertedPendulum-v5`` for a batch of steps.

Each reads the env's own settings (``env_kwargs`` such as reward weights apply) and does the
env's own arithmetic (Gymnasium's ``step``, ``_get_obs`` and ``_get_rew``) on the predicted
states; tested equal to the env's ``step`` to 1e-6.
"""

from __future__ import annotations

import numpy as np
import torch

from neural_sim.errors import InputError
from neural_sim.robots.batched.base import StepResult
from neural_sim.robots.gymnasium_mujoco import GymnasiumMujocoTask


class _GymnasiumTask:
    """Base: no episode state; observations are one array per env."""

    native = True

    def __init__(self, bridge: GymnasiumMujocoTask) -> None:
        self._nq = bridge.nq

    def begin_episodes(self, rows: np.ndarray, rngs: list[np.random.Generator]) -> None:
        """No task-level episode state."""


class HalfCheetahForward(_GymnasiumTask):
    """``HalfCheetah-v5``: reward ``w_f (x' - x) / dt - w_c |u|^2``, never terminates.

    :raises InputError: a bridge whose env is not a ``HalfCheetah-v5``.
    """

    def __init__(self, bridge: GymnasiumMujocoTask) -> None:
        super().__init__(bridge)
        env = bridge.env
        try:
            self._forward_weight = float(env._forward_reward_weight)  # type: ignore[attr-defined]
            self._ctrl_weight = float(env._ctrl_cost_weight)  # type: ignore[attr-defined]
            self._skip_x = bool(env._exclude_current_positions_from_observation)  # type: ignore[attr-defined]
        except AttributeError as error:
            raise InputError(f"{bridge.env_id} is not a HalfCheetah-v5 env: {error}") from error
        self._dt = float(env.dt)

    def observations(self, states: torch.Tensor, rows: np.ndarray | None = None) -> np.ndarray:
        """``[qpos (without x by default), qvel]``."""
        return (states[:, 1:] if self._skip_x else states).numpy().copy()

    def step(self, previous: torch.Tensor, actions: np.ndarray, states: torch.Tensor,
             rows: np.ndarray | None = None) -> StepResult:
        """Forward reward from the x displacement over the step, minus the control cost."""
        x_velocity = ((states[:, 0] - previous[:, 0]) / self._dt).numpy()
        # The env squares the action it is given as float32 (the bridge passes the space's dtype).
        ctrl_cost = self._ctrl_weight * np.sum(np.square(actions.astype(np.float32)), axis=1)
        rewards = self._forward_weight * x_velocity - ctrl_cost
        never = np.zeros(len(states), dtype=bool)
        return self.observations(states), rewards.astype(np.float64), never, never.copy()


class InvertedPendulumBalance(_GymnasiumTask):
    """``InvertedPendulum-v5``: reward 1 while the pole is within 0.2 rad, else the episode ends."""

    def observations(self, states: torch.Tensor, rows: np.ndarray | None = None) -> np.ndarray:
        """``[qpos, qvel]``."""
        return states.numpy().copy()

    def step(self, previous: torch.Tensor, actions: np.ndarray, states: torch.Tensor,
             rows: np.ndarray | None = None) -> StepResult:
        """Terminated when the pole leaves 0.2 rad (or a value is not finite); reward 1 until then."""
        observations = self.observations(states)
        terminated = ~np.isfinite(observations).all(axis=1) | (np.abs(observations[:, 1]) > 0.2)
        return observations, (~terminated).astype(np.float64), terminated, np.zeros(len(states), dtype=bool)
