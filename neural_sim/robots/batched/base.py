"""What every batched task is: the protocol, the base of native tasks, dm_control's reward
shaping in torch, the exact physics-bridge fallback, and batch helpers."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

import mujoco
import numpy as np
import torch

from neural_sim.errors import InputError
from neural_sim.robots.base import TaskBridge

_DEFAULT_VALUE_AT_MARGIN = 0.1
#: A batch of observations: a dict of arrays (dm_control) or one array (Gymnasium).
Observations = OrderedDict[str, np.ndarray] | np.ndarray
#: ``(observations, rewards [N], terminated [N], truncated [N])`` of a batch of steps.
StepResult = tuple[Observations, np.ndarray, np.ndarray, np.ndarray]


class BatchedTask(Protocol):
    """Task quantities of ``[N, nq + nv]`` states (float64 tensors) of ``num_envs`` envs.

    A robot's actuator activations (MuJoCo ``act``, state outside ``(qpos, qvel)``) belong to
    the env that steps it: it advances them and passes each step's to :meth:`step`; an
    episode starts with none (zeros, as after MuJoCo's reset).
    """

    native: bool

    def begin_episodes(self, rows: np.ndarray, rngs: list[np.random.Generator]) -> None:
        """Envs ``rows`` start an episode: draw their task-level state (a target), each from
        its own generator ``rngs[row]``."""
        ...

    def observations(self, states: torch.Tensor, rows: np.ndarray | None = None) -> Observations:
        """Observations with a leading batch dimension (as at the start of an episode) of
        ``states``, the states of envs ``rows`` (default: every env, in order)."""
        ...

    def step(self, previous: torch.Tensor, actions: np.ndarray, states: torch.Tensor,
             rows: np.ndarray | None = None, activations: np.ndarray | None = None) -> StepResult:
        """Observation, reward and the task's own termination of steps ``previous -> states``
        of envs ``rows`` (default: every env, in order); ``activations`` ``[len(states), na]``
        are those envs' actuator activations after the step (robots that have them)."""
        ...


class StateTask:
    """Base of native tasks whose observation, reward and termination read only the new state
    (and, for tasks that draw one, each env's episode state)."""

    native = True

    def begin_episodes(self, rows: np.ndarray, rngs: list[np.random.Generator]) -> None:
        """Most tasks have no episode state beyond the physics state."""

    def observations(self, states: torch.Tensor, rows: np.ndarray | None = None) -> OrderedDict[str, np.ndarray]:
        """Observation arrays with a leading batch dimension."""
        raise NotImplementedError

    def rewards(self, states: torch.Tensor, rows: np.ndarray | None = None) -> np.ndarray:
        """``[N]`` rewards of ``states``, the states of envs ``rows`` (default: every env)."""
        raise NotImplementedError

    def terminations(self, states: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """The stock tasks implemented natively never terminate."""
        return _no_termination(states)

    def step(self, previous: torch.Tensor, actions: np.ndarray, states: torch.Tensor,
             rows: np.ndarray | None = None, activations: np.ndarray | None = None) -> StepResult:
        """Everything of the new states (``previous``, ``actions`` and activations are not needed)."""
        return (self.observations(states, rows), self.rewards(states, rows), *self.terminations(states))


def to_host(tensor: torch.Tensor, copy: bool = False) -> np.ndarray:
    """A tensor's values as a NumPy array on the host (what Gymnasium returns).

    :param copy: never a view of ``tensor`` (a device tensor's transfer already is a copy).
    """
    if tensor.device.type == "cpu":
        array = tensor.detach().numpy()
        return array.copy() if copy else array
    return tensor.detach().cpu().numpy()


def tolerance(
    x: torch.Tensor,
    bounds: tuple[float, float] = (0.0, 0.0),
    margin: float = 0.0,
    sigmoid: str = "gaussian",
    value_at_margin: float = _DEFAULT_VALUE_AT_MARGIN,
) -> torch.Tensor:
    """Torch port of ``dm_control.utils.rewards.tolerance`` (same arguments, same values)."""
    lower, upper = bounds
    in_bounds = (lower <= x) & (x <= upper)
    if margin == 0:
        return in_bounds.to(x.dtype)
    distance = torch.where(x < lower, lower - x, x - upper) / margin
    return torch.where(in_bounds, torch.ones_like(x), _sigmoid(distance, value_at_margin, sigmoid))


def _sigmoid(x: torch.Tensor, value_at_1: float, kind: str) -> torch.Tensor:
    if kind == "gaussian":
        return torch.exp(-0.5 * (x * math.sqrt(-2 * math.log(value_at_1))) ** 2)
    if kind == "hyperbolic":
        return 1 / torch.cosh(x * math.acosh(1 / value_at_1))
    if kind == "long_tail":
        return 1 / ((x * math.sqrt(1 / value_at_1 - 1)) ** 2 + 1)
    if kind == "reciprocal":
        return 1 / (x.abs() * (1 / value_at_1 - 1) + 1)
    if kind == "cosine":
        scaled = x * math.acos(2 * value_at_1 - 1) / math.pi
        return torch.where(scaled.abs() < 1, (1 + torch.cos(math.pi * scaled)) / 2, torch.zeros_like(x))
    if kind == "linear":
        scaled = x * (1 - value_at_1)
        return torch.where(scaled.abs() < 1, 1 - scaled, torch.zeros_like(x))
    if kind == "quadratic":
        scaled = x * math.sqrt(1 - value_at_1)
        return torch.where(scaled.abs() < 1, 1 - scaled**2, torch.zeros_like(x))
    if kind == "tanh_squared":
        return 1 - torch.tanh(x * math.atanh(math.sqrt(1 - value_at_1))) ** 2
    raise ValueError(f"unknown sigmoid {kind!r}")


def _no_termination(states: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    flags = np.zeros(len(states), dtype=bool)
    return flags, flags.copy()


class BridgeLoopTask:
    """Any task, one state at a time through the real physics (exact, a Python loop).

    :param bridge: the task's physics bridge, shared by every env.
    """

    native = False

    def __init__(self, bridge: TaskBridge) -> None:
        self._bridge = bridge

    def begin_episodes(self, rows: np.ndarray, rngs: list[np.random.Generator]) -> None:
        """The loop draws nothing (tasks with episode state are refused by
        :func:`make_batched_task`)."""

    def observations(self, states: torch.Tensor, rows: np.ndarray | None = None) -> Observations:
        """The task's observations of ``states`` as episode starts."""
        found = []
        for state in to_host(states):
            self._bridge.reset_to(state)
            found.append(self._bridge.observation())
        return stack_observations(found)

    def step(self, previous: torch.Tensor, actions: np.ndarray, states: torch.Tensor,
             rows: np.ndarray | None = None, activations: np.ndarray | None = None) -> StepResult:
        """Each step through :meth:`TaskBridge.transition`, with the env's own activations."""
        check_activations(activations, len(states), self._bridge.na)
        obs, rewards, terminated, truncated = [], [], [], []
        for i, (before, action, after) in enumerate(zip(to_host(previous), actions, to_host(states), strict=True)):
            self._bridge.transition(before, action, after, None if activations is None else activations[i])
            obs.append(self._bridge.observation())
            rewards.append(self._bridge.reward())
            term, trunc = self._bridge.termination()
            terminated.append(term)
            truncated.append(trunc)
        return stack_observations(obs), np.asarray(rewards), np.asarray(terminated), np.asarray(truncated)


def check_activations(activations: np.ndarray | None, num_states: int, na: int) -> None:
    """Refuse a step's activations of the wrong shape, or none for a robot that has them.

    :raises InputError: saying what was expected.
    """
    if na == 0 and activations is None:
        return
    if activations is None or np.shape(activations) != (num_states, na):
        got = None if activations is None else np.shape(activations)
        raise InputError(f"the robot has {na} actuator activations: a batched step needs them as "
                         f"[{num_states}, {na}] (each stepping env's, after the step), got {got}")


class PhysicsReadout:
    """What only MuJoCo computes (sensors, contact forces) for a batch of states: each state,
    with its control and actuator activations, is written into a private ``MjData`` by one
    ``mj_setState`` call and ``mj_forward`` is run (C calls; no dm_control indexing).

    :param model: the robot's ``MjModel``.
    :param contact_forces: also run ``mj_rnePostConstraint`` (``cfrc_ext``), as an env's step
        leaves it.
    :param kinematics_only: compute positions, orientations and centre-of-mass velocities
        only (``mj_kinematics``, ``mj_comPos``, ``mj_comVel``, ``mj_subtreeVel``): no
        collision, actuation or constraint solve, for tasks that read nothing else.
    """

    def __init__(self, model: mujoco.MjModel, contact_forces: bool = False, kinematics_only: bool = False) -> None:
        self.model, self.data = model, mujoco.MjData(model)
        self._contact_forces, self._kinematics_only = contact_forces, kinematics_only
        # mj_setState's order: qpos, qvel, act, ctrl.
        self._spec = (mujoco.mjtState.mjSTATE_QPOS | mujoco.mjtState.mjSTATE_QVEL | mujoco.mjtState.mjSTATE_ACT
                      | mujoco.mjtState.mjSTATE_CTRL)

    def read(self, states: np.ndarray, controls: np.ndarray | None, read: Callable[[mujoco.MjData], Any],
             shape: tuple[int, ...], activations: np.ndarray | None = None,
             model: mujoco.MjModel | None = None) -> np.ndarray:
        """``read(data)`` after ``mj_forward`` at each state, ``[N, *shape]``.

        :param states: ``[N, nq + nv]``.
        :param controls: ``[N, nu]`` (``None``: zero, as at an episode start).
        :param read: what to take from the ``MjData`` (copied into the result).
        :param shape: the shape of one reading.
        :param activations: ``[N, na]`` (``None``: zero, as at an episode start).
        :param model: another model with the same dimensions (e.g. one with actuation disabled).
        """
        model = self.model if model is None else model
        n = len(states)
        rows = np.zeros((n, states.shape[1] + model.na + model.nu))
        rows[:, : states.shape[1]] = states
        if activations is not None:
            rows[:, states.shape[1] : states.shape[1] + model.na] = activations
        if controls is not None:
            rows[:, states.shape[1] + model.na :] = controls
        data, found = self.data, np.empty((n, *shape))
        for i, row in enumerate(rows):
            mujoco.mj_setState(model, data, row, self._spec)
            if self._kinematics_only:
                mujoco.mj_kinematics(model, data)
                mujoco.mj_comPos(model, data)
                mujoco.mj_comVel(model, data)
                mujoco.mj_subtreeVel(model, data)
            else:
                mujoco.mj_forward(model, data)
            if self._contact_forces:
                mujoco.mj_rnePostConstraint(model, data)
            found[i] = read(data)
        return found


def stack_observations(observations: list[Any]) -> Observations:
    """One batch from per-env observations (dicts of arrays or arrays)."""
    if isinstance(observations[0], dict):
        return OrderedDict((key, np.stack([o[key] for o in observations])) for key in observations[0])
    return np.stack(observations)


def observation_row(observations: Observations, index: int) -> Any:
    """Env ``index``'s observation out of a batch (a copy)."""
    if isinstance(observations, dict):
        return OrderedDict((key, value[index].copy()) for key, value in observations.items())
    return observations[index].copy()


def merge_rows(num_envs: int, rows: np.ndarray, observations: Observations, other_rows: np.ndarray,
               others: Observations) -> Observations:
    """One batch of ``num_envs`` observations from those of envs ``rows`` and ``other_rows``."""
    def merged(first: np.ndarray, second: np.ndarray) -> np.ndarray:
        out = np.empty((num_envs, *first.shape[1:]), dtype=np.result_type(first, second))
        out[rows], out[other_rows] = first, second
        return out

    if isinstance(observations, dict):
        assert isinstance(others, dict)
        return OrderedDict((key, merged(value, others[key])) for key, value in observations.items())
    assert isinstance(others, np.ndarray)
    return merged(observations, others)


def assign_rows(observations: Observations, mask: np.ndarray, rows: Observations) -> None:
    """Overwrite the masked envs' observations in place with ``rows`` (one per masked env)."""
    if isinstance(observations, dict):
        assert isinstance(rows, dict)
        for key, value in observations.items():
            value[mask] = rows[key]
    else:
        observations[mask] = rows
