"""``humanoid-stand``, ``-walk``, ``-run`` and ``-run_pure_state`` for a batch of states."""

from __future__ import annotations

import math
from collections import OrderedDict

import mujoco
import numpy as np
import torch
from dm_control.suite import humanoid as dm_humanoid

from neural_sim.robots.batched.base import PhysicsReadout, StepResult, to_host, tolerance
from neural_sim.robots.dm_control import DmControlTask

#: Each task's target horizontal speed (0: stand still) and whether it observes the pure
#: state; the stock task's own constants.
HUMANOID_TASKS = {
    "stand": (0.0, False),
    "walk": (float(dm_humanoid._WALK_SPEED), False),
    "run": (float(dm_humanoid._RUN_SPEED), False),
    "run_pure_state": (float(dm_humanoid._RUN_SPEED), True),
}


class HumanoidTask:
    """The humanoid's tasks: head high, torso upright, small controls, and either standing
    still or moving horizontally at the task's speed.

    Everything they read is kinematics (body positions and orientations, the torso
    subtree's centre-of-mass velocity), computed by MuJoCo per env without collision or
    constraint solving (:class:`PhysicsReadout` ``kinematics_only``).

    :param bridge: the task's bridge (its model and settings).
    """

    native = True

    def __init__(self, bridge: DmControlTask) -> None:
        if bridge.task_name not in HUMANOID_TASKS:
            raise NotImplementedError("not a stock humanoid task")
        model = bridge.physics.model.ptr
        self._physics = PhysicsReadout(model, kinematics_only=True)
        self._speed, self._pure_state = HUMANOID_TASKS[bridge.task_name]
        self._stand_height = float(dm_humanoid._STAND_HEIGHT)

        def body(name: str) -> int:
            return int(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name))

        self._torso, self._head = body("torso"), body("head")
        self._limbs = [body(side + limb) for side in ("left_", "right_") for limb in ("hand", "foot")]
        self._nq = bridge.nq

    def begin_episodes(self, rows: np.ndarray, rngs: list[np.random.Generator]) -> None:
        """The task draws nothing at an episode start."""

    def _kinematics(self, states: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Head height ``[N]``, torso orientation ``[N, 3, 3]``, limbs relative to the torso in
        its frame ``[N, 12]`` and the torso subtree's centre-of-mass velocity ``[N, 3]``."""
        torso, head, limbs = self._torso, self._head, self._limbs

        def read(data: mujoco.MjData) -> np.ndarray:
            return np.concatenate([data.xpos[head, 2:3], data.xmat[torso], data.xpos[torso],
                                   data.xpos[limbs].ravel(), data.subtree_linvel[torso]])

        found = self._physics.read(to_host(states), None, read, (1 + 9 + 3 + 12 + 3,))
        n = len(states)
        frame = found[:, 1:10].reshape(n, 3, 3)
        offsets = found[:, 13:25].reshape(n, 4, 3) - found[:, None, 10:13]
        extremities = np.einsum("nlk,nkj->nlj", offsets, frame).reshape(n, 12)
        return found[:, 0], frame, extremities, found[:, 25:28]

    def _observe(self, states: torch.Tensor) -> tuple[OrderedDict[str, np.ndarray], np.ndarray, np.ndarray,
                                                      np.ndarray]:
        values = to_host(states)
        height, frame, extremities, com_velocity = self._kinematics(states)
        if self._pure_state:
            observations = OrderedDict(position=values[:, : self._nq].copy(), velocity=values[:, self._nq :].copy())
        else:
            observations = OrderedDict(
                joint_angles=values[:, 7 : self._nq].copy(),
                head_height=height.copy(),
                extremities=extremities,
                torso_vertical=frame[:, 2].copy(),
                com_velocity=com_velocity.copy(),
                velocity=values[:, self._nq :].copy(),
            )
        return observations, height, frame[:, 2, 2], com_velocity

    def observations(self, states: torch.Tensor, rows: np.ndarray | None = None) -> OrderedDict[str, np.ndarray]:
        """The stock observation of each state."""
        return self._observe(states)[0]

    def step(self, previous: torch.Tensor, actions: np.ndarray, states: torch.Tensor,
             rows: np.ndarray | None = None, activations: np.ndarray | None = None) -> StepResult:
        """Observation and the stock reward of each new state under its action."""
        observations, height, upright, com_velocity = self._observe(states)
        standing = tolerance(torch.as_tensor(height), (self._stand_height, math.inf), margin=self._stand_height / 4)
        upright_reward = tolerance(torch.as_tensor(upright), (0.9, math.inf), sigmoid="linear", margin=1.9,
                                   value_at_margin=0.0)
        controls = torch.as_tensor(np.asarray(actions, dtype=np.float64))
        small_control = (4 + tolerance(controls, margin=1.0, value_at_margin=0.0, sigmoid="quadratic").mean(-1)) / 5
        horizontal = torch.as_tensor(com_velocity[:, :2])
        if self._speed == 0:
            move = tolerance(horizontal, margin=2.0).mean(-1)
        else:
            speed = torch.linalg.vector_norm(horizontal, dim=-1)
            move = (5 * tolerance(speed, (self._speed, math.inf), margin=self._speed, value_at_margin=0.0,
                                  sigmoid="linear") + 1) / 6
        rewards = small_control * standing * upright_reward * move
        never = np.zeros(len(states), dtype=bool)
        return observations, to_host(rewards), never, never.copy()
