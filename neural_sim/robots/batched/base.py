"""What every batched task is: the protocol, the base of native tasks, dm_control's reward
shaping in torch, the exact physics-bridge fallback, and batch helpers."""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Protocol

import numpy as np
import torch

from neural_sim.robots.base import TaskBridge

_DEFAULT_VALUE_AT_MARGIN = 0.1
#: A batch of observations: a dict of arrays (dm_control) or one array (Gymnasium).
Observations = OrderedDict[str, np.ndarray] | np.ndarray
#: ``(observations, rewards [N], terminated [N], truncated [N])`` of a batch of steps.
StepResult = tuple[Observations, np.ndarray, np.ndarray, np.ndarray]


class BatchedTask(Protocol):
    """Task quantities of ``[N, nq + nv]`` states (float64 tensors) of ``num_envs`` envs."""

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
             rows: np.ndarray | None = None) -> StepResult:
        """Observation, reward and the task's own termination of steps ``previous -> states``
        of envs ``rows`` (default: every env, in order)."""
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
             rows: np.ndarray | None = None) -> StepResult:
        """Everything of the new states (``previous`` and ``actions`` are not needed)."""
        return (self.observations(states, rows), self.rewards(states, rows), *self.terminations(states))


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
    :param num_envs: the batch size: each env's actuator activations (state outside
        ``(qpos, qvel)``, advanced by the bridge) are kept here and swapped in for its step.
    """

    native = False

    def __init__(self, bridge: TaskBridge, num_envs: int = 1) -> None:
        self._bridge = bridge
        self._activations = np.zeros((num_envs, bridge.na)) if bridge.na else None

    def begin_episodes(self, rows: np.ndarray, rngs: list[np.random.Generator]) -> None:
        """Episodes start with zero activations (as MuJoCo's reset); the loop draws nothing
        (tasks with episode state are refused by :func:`make_batched_task`)."""
        if self._activations is not None:
            self._activations[rows] = 0.0

    def observations(self, states: torch.Tensor, rows: np.ndarray | None = None) -> Observations:
        """The task's observations of ``states`` as episode starts."""
        found = []
        for state in states.numpy():
            self._bridge.reset_to(state)
            found.append(self._bridge.observation())
        return stack_observations(found)

    def step(self, previous: torch.Tensor, actions: np.ndarray, states: torch.Tensor,
             rows: np.ndarray | None = None) -> StepResult:
        """Each step through :meth:`TaskBridge.transition`, with the env's own activations."""
        obs, rewards, terminated, truncated = [], [], [], []
        envs = range(len(states)) if rows is None else rows
        for env, before, action, after in zip(envs, previous.numpy(), actions, states.numpy(), strict=True):
            if self._activations is not None:
                self._bridge.activations = self._activations[env]
            self._bridge.transition(before, action, after)
            if self._activations is not None:
                self._activations[env] = self._bridge.activations
            obs.append(self._bridge.observation())
            rewards.append(self._bridge.reward())
            term, trunc = self._bridge.termination()
            terminated.append(term)
            truncated.append(trunc)
        return stack_observations(obs), np.asarray(rewards), np.asarray(terminated), np.asarray(truncated)


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
