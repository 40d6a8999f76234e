"""Stock task quantities for a whole batch of physics states at once.

A :class:`BatchedTask` returns observations, rewards and terminations for ``[N, nq + nv]``
states. Tasks with a torch-native implementation compute them without a Python loop over
environments; each is tested equal to the stock dm_control definition (tolerance 1e-6).
Every other task falls back to :class:`BridgeLoopTask`, which writes each state into the
real ``Physics`` in turn: exact, but a Python loop.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Protocol

import numpy as np
import torch
from dm_control.suite import pendulum as dm_pendulum

from neural_sim.robots.base import TaskBridge
from neural_sim.robots.dm_control import DmControlTask

_DEFAULT_VALUE_AT_MARGIN = 0.1
_Evaluated = tuple[OrderedDict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]


class BatchedTask(Protocol):
    """Task quantities of ``[N, nq + nv]`` states (float64 tensors)."""

    native: bool

    def observations(self, states: torch.Tensor) -> OrderedDict[str, np.ndarray]:
        """Observation arrays with a leading batch dimension."""
        ...

    def rewards(self, states: torch.Tensor) -> np.ndarray:
        """``[N]`` rewards."""
        ...

    def terminations(self, states: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """``[N]`` terminated and ``[N]`` truncated flags from the task itself."""
        ...


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


class _PlanarYChain:
    """Geometry of a chain of hinges about the world y axis, read from the MuJoCo model.

    Supports exactly what the native tasks need: bodies with identity orientation offsets,
    joints at their body origins. Anything else raises, and the caller falls back.
    """

    def __init__(self, bridge: DmControlTask, bodies: list[str]) -> None:
        named = bridge.physics.named.model
        for body in bodies:
            if not np.allclose(named.body_quat[body], [1, 0, 0, 0]):
                raise NotImplementedError(f"body {body!r} has a rotated frame")
        for joint in range(bridge.physics.model.njnt):
            if not np.allclose(bridge.physics.model.jnt_axis[joint], [0, 1, 0]) or not np.allclose(
                bridge.physics.model.jnt_pos[joint], 0
            ):
                raise NotImplementedError("joint axis is not y or joint is off its body origin")
        self.offsets = [torch.tensor(named.body_pos[b], dtype=torch.float64) for b in bodies]

    @staticmethod
    def z_axis(angle: torch.Tensor) -> torch.Tensor:
        """World direction of a body's z axis after rotating ``angle`` about y: ``(sin, 0, cos)``."""
        return torch.stack([torch.sin(angle), torch.zeros_like(angle), torch.cos(angle)], dim=-1)

    @staticmethod
    def rotate(angle: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
        """A body-frame offset in world coordinates (rotation about y by ``angle``)."""
        c, s = torch.cos(angle).unsqueeze(-1), torch.sin(angle).unsqueeze(-1)
        x, y, z = local[0], local[1], local[2]
        return torch.cat([c * x + s * z, y.expand_as(c), -s * x + c * z], dim=-1)


class AcrobotBalance:
    """``acrobot-swingup`` / ``acrobot-swingup_sparse`` for a batch."""

    native = True

    def __init__(self, bridge: DmControlTask, sparse: bool) -> None:
        self._chain = _PlanarYChain(bridge, ["upper_arm", "lower_arm"])
        named = bridge.physics.named.model
        self._tip = torch.tensor(named.site_pos["tip"], dtype=torch.float64)
        self._target = torch.tensor(named.site_pos["target"], dtype=torch.float64)
        self._radius = float(named.site_size["target", 0])
        self._sparse = sparse

    def _angles(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return states[:, 0], states[:, 0] + states[:, 1]

    def observations(self, states: torch.Tensor) -> OrderedDict[str, np.ndarray]:
        """``orientations`` = (xz, xz, zz, zz) of the arms' frames; ``velocity`` = qvel."""
        upper, lower = self._angles(states)
        orientations = torch.stack([torch.sin(upper), torch.sin(lower), torch.cos(upper), torch.cos(lower)], -1)
        return OrderedDict(orientations=orientations.numpy(), velocity=states[:, 2:4].numpy().copy())

    def rewards(self, states: torch.Tensor) -> np.ndarray:
        """Tolerance of the tip-to-target distance (margin 1, or 0 when sparse)."""
        upper, lower = self._angles(states)
        shoulder, elbow = self._chain.offsets
        tip = shoulder + self._chain.rotate(upper, elbow) + self._chain.rotate(lower, self._tip)
        distance = torch.linalg.vector_norm(self._target - tip, dim=-1)
        return tolerance(distance, (0.0, self._radius), margin=0.0 if self._sparse else 1.0).numpy()

    def terminations(self, states: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """The task never terminates."""
        return _no_termination(states)


class PendulumSwingUp:
    """``pendulum-swingup`` for a batch."""

    native = True

    def __init__(self, bridge: DmControlTask) -> None:
        _PlanarYChain(bridge, ["pole"])  # checks the geometry assumptions
        self._cosine_bound = float(dm_pendulum._COSINE_BOUND)  # the stock task's own constant

    def observations(self, states: torch.Tensor) -> OrderedDict[str, np.ndarray]:
        """``orientation`` = (zz, xz) of the pole frame; ``velocity`` = qvel."""
        angle = states[:, 0]
        orientation = torch.stack([torch.cos(angle), torch.sin(angle)], -1)
        return OrderedDict(orientation=orientation.numpy(), velocity=states[:, 1:2].numpy().copy())

    def rewards(self, states: torch.Tensor) -> np.ndarray:
        """1 while the pole is near upright (cosine above the stock bound)."""
        return tolerance(torch.cos(states[:, 0]), (self._cosine_bound, 1.0)).numpy()

    def terminations(self, states: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """The task never terminates."""
        return _no_termination(states)


class BridgeLoopTask:
    """Any stock task, one state at a time through the real ``Physics`` (exact, a Python loop)."""

    native = False

    def __init__(self, bridge: TaskBridge) -> None:
        self._bridge = bridge
        self._last: torch.Tensor | None = None
        self._cache: _Evaluated | None = None

    def _evaluate(self, states: torch.Tensor) -> _Evaluated:
        # observations/rewards/terminations are asked for the same states in turn: one pass.
        if self._cache is not None and self._last is not None and torch.equal(self._last, states):
            return self._cache
        obs, rewards, terminated, truncated = [], [], [], []
        for state in states.numpy():
            self._bridge.set_state(state)
            obs.append(self._bridge.observation())
            rewards.append(self._bridge.reward())
            term, trunc = self._bridge.termination()
            terminated.append(term)
            truncated.append(trunc)
        stacked = OrderedDict((key, np.stack([o[key] for o in obs])) for key in obs[0])
        self._last = states.clone()
        self._cache = (stacked, np.asarray(rewards), np.asarray(terminated), np.asarray(truncated))
        return self._cache

    def observations(self, states: torch.Tensor) -> OrderedDict[str, np.ndarray]:
        """Stock observations, stacked."""
        return self._evaluate(states)[0]

    def rewards(self, states: torch.Tensor) -> np.ndarray:
        """Stock rewards."""
        return self._evaluate(states)[1]

    def terminations(self, states: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Stock terminations."""
        _, _, terminated, truncated = self._evaluate(states)
        return terminated, truncated


def make_batched_task(bridge: TaskBridge, native: bool = True) -> BatchedTask:
    """The torch-native implementation of the bridge's task if there is one, else the loop."""
    if native and isinstance(bridge, DmControlTask):
        try:
            if bridge.domain == "acrobot":
                return AcrobotBalance(bridge, sparse=bridge.task_name == "swingup_sparse")
            if bridge.domain == "pendulum" and bridge.task_name == "swingup":
                return PendulumSwingUp(bridge)
        except NotImplementedError:
            pass
    return BridgeLoopTask(bridge)
