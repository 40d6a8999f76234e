"""``cartpole-balance``, ``-balance_sparse``, ``-swingup`` and ``-swingup_sparse`` for a batch of states."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from dm_control.suite import cartpole as dm_cartpole

from neural_sim.robots.batched.base import StateTask, StepResult, to_host, tolerance
from neural_sim.robots.batched.kinematics import PlanarKinematics
from neural_sim.robots.dm_control import DmControlTask


class CartpoleTask(StateTask):
    """The cartpole tasks: keep the pole upright and the cart centred; the smooth reward also
    asks for small control and slow joints, so it reads the action (unlike other native tasks)."""

    def __init__(self, bridge: DmControlTask, sparse: bool, device: torch.device | str = "cpu") -> None:
        kinematics = PlanarKinematics(bridge)  # also checks the geometry assumptions
        self._pole_signs = torch.tensor(
            [kinematics.hinge_sign(address) for address in range(1, bridge.nq)], dtype=torch.float64, device=device)
        self._nq = bridge.nq
        self._sparse = sparse
        self._cart_range = tuple(dm_cartpole.Balance._CART_RANGE)  # the stock task's own constants
        self._cosine_range = tuple(dm_cartpole.Balance._ANGLE_COSINE_RANGE)

    def _pole_angles(self, states: torch.Tensor) -> torch.Tensor:
        return states[:, 1 : self._nq] * self._pole_signs  # each pole's frame angle about y

    def observations(self, states: torch.Tensor, rows: np.ndarray | None = None) -> OrderedDict[str, np.ndarray]:
        """``position`` = cart position, then (zz, xz) of each pole's frame; ``velocity`` = qvel."""
        angles = self._pole_angles(states)
        frames = torch.stack([torch.cos(angles), torch.sin(angles)], -1).reshape(len(states), -1)
        return OrderedDict(position=to_host(torch.cat([states[:, :1], frames], -1)),
                           velocity=to_host(states[:, self._nq :], copy=True))

    def step(self, previous: torch.Tensor, actions: np.ndarray, states: torch.Tensor,
             rows: np.ndarray | None = None, activations: np.ndarray | None = None) -> StepResult:
        """Observation, reward (with the action as the step's control) and no termination."""
        return self.observations(states, rows), self.rewards_with_control(states, actions), *self.terminations(states)

    def rewards(self, states: torch.Tensor, rows: np.ndarray | None = None) -> np.ndarray:
        """The reward with zero control (use :meth:`step` for a step's own)."""
        return self.rewards_with_control(states, np.zeros((len(states), 1)))

    def rewards_with_control(self, states: torch.Tensor, actions: np.ndarray) -> np.ndarray:
        """The stock reward of ``states`` reached under control ``actions``."""
        cart, cosines = states[:, 0], torch.cos(self._pole_angles(states))
        if self._sparse:
            in_bounds = tolerance(cart, self._cart_range) * tolerance(cosines, self._cosine_range).prod(-1)
            return to_host(in_bounds)
        upright = ((cosines + 1) / 2).mean(-1)
        centered = (1 + tolerance(cart, margin=2)) / 2
        control = torch.as_tensor(np.asarray(actions, dtype=np.float64)[:, 0], device=states.device)
        small_control = (4 + tolerance(control, margin=1, value_at_margin=0, sigmoid="quadratic")) / 5
        small_velocity = (1 + tolerance(states[:, self._nq + 1 :], margin=5).min(-1).values) / 2
        return to_host(upright * small_control * small_velocity * centered)
