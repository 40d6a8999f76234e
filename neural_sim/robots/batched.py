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
from collections.abc import Callable
from typing import Any, Protocol

import mujoco
import numpy as np
import torch
from dm_control.suite import cheetah as dm_cheetah
from dm_control.suite import pendulum as dm_pendulum

from neural_sim.errors import InputError
from neural_sim.model.tracing import trace_function
from neural_sim.robots.base import TaskBridge
from neural_sim.robots.dm_control import DmControlTask

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


def rotate_y(angle: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
    """``local`` (a body-frame offset) in world coordinates after turning ``angle`` about y."""
    c, s = torch.cos(angle).unsqueeze(-1), torch.sin(angle).unsqueeze(-1)
    return torch.cat([c * local[0] + s * local[2], local[1].expand_as(c), -s * local[0] + c * local[2]], -1)


class PlanarKinematics:
    """Forward kinematics of a robot that moves in the world xz plane, in torch.

    Supports MuJoCo trees whose bodies have identity orientation offsets, whose hinges turn
    about +-y and whose slides move along x or z (cheetah, hopper, walker); anything else
    raises ``NotImplementedError`` so the caller falls back to the physics bridge.
    """

    def __init__(self, bridge: DmControlTask) -> None:
        model = bridge.physics.model
        self._parents = [int(p) for p in model.body_parentid]
        self._body_ids = {mujoco.mj_id2name(model.ptr, mujoco.mjtObj.mjOBJ_BODY, b): b for b in range(model.nbody)}
        self._offsets = torch.tensor(model.body_pos, dtype=torch.float64)
        self._com_offsets = torch.tensor(model.body_ipos, dtype=torch.float64)
        self.masses = torch.tensor(model.body_mass, dtype=torch.float64)
        self._joints: list[list[tuple[str, int, float, torch.Tensor]]] = [[] for _ in range(model.nbody)]
        for body in range(model.nbody):
            if not np.allclose(model.body_quat[body], [1, 0, 0, 0]):
                raise NotImplementedError("a body frame is rotated")
        for joint in range(model.njnt):
            axis, kind = model.jnt_axis[joint], model.jnt_type[joint]
            anchor = torch.tensor(model.jnt_pos[joint], dtype=torch.float64)
            address = int(model.jnt_qposadr[joint])
            if kind == mujoco.mjtJoint.mjJNT_HINGE and np.allclose(np.abs(axis), [0, 1, 0]):
                self._joints[model.jnt_bodyid[joint]].append(("hinge", address, float(axis[1]), anchor))
            elif kind == mujoco.mjtJoint.mjJNT_SLIDE and np.isclose(axis[1], 0) and np.isclose(np.linalg.norm(axis), 1):
                self._joints[model.jnt_bodyid[joint]].append(
                    ("slide", address, 0.0, torch.tensor(axis, dtype=torch.float64)))
            else:
                raise NotImplementedError("a joint is neither a y hinge nor an xz slide")

    def body_offset(self, name: str) -> torch.Tensor:
        """A body's origin in its parent's frame."""
        return self._offsets[self._body_ids[name]]

    @staticmethod
    def _rotate_rate(angle: torch.Tensor, rate: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
        """Time derivative of ``rotate_y(angle, local)`` when ``angle`` changes at ``rate``."""
        c, s, w = torch.cos(angle).unsqueeze(-1), torch.sin(angle).unsqueeze(-1), rate.unsqueeze(-1)
        x_rate, z_rate = w * (-s * local[0] + c * local[2]), w * (-c * local[0] - s * local[2])
        return torch.cat([x_rate, torch.zeros_like(c), z_rate], -1)

    def body_coms(self, qpos: torch.Tensor, qvel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World positions and velocities of every body's centre of mass, each ``[B, nbody, 3]``.

        Velocities are the exact time derivatives of the positions (chain rule through the
        tree), for ``qvel`` the rates of ``qpos`` (true for hinge and slide joints).
        """
        zeros3, zeros = qpos.new_zeros(qpos.shape[0], 3), qpos.new_zeros(qpos.shape[0])
        positions, velocities, angles, rates = [zeros3], [zeros3], [zeros], [zeros]
        coms, com_velocities = [zeros3], [zeros3]
        for body in range(1, len(self._parents)):
            parent = self._parents[body]
            angle, rate = angles[parent], rates[parent]
            position = positions[parent] + rotate_y(angle, self._offsets[body])
            velocity = velocities[parent] + self._rotate_rate(angle, rate, self._offsets[body])
            for kind, address, sign, vector in self._joints[body]:
                q, qdot = qpos[:, address], qvel[:, address]
                if kind == "slide":
                    position = position + rotate_y(angle, vector) * q.unsqueeze(-1)
                    velocity = (velocity + self._rotate_rate(angle, rate, vector) * q.unsqueeze(-1)
                                + rotate_y(angle, vector) * qdot.unsqueeze(-1))
                else:  # hinge about +-y through its anchor
                    new_angle, new_rate = angle + sign * q, rate + sign * qdot
                    position = position + rotate_y(angle, vector) - rotate_y(new_angle, vector)
                    velocity = (velocity + self._rotate_rate(angle, rate, vector)
                                - self._rotate_rate(new_angle, new_rate, vector))
                    angle, rate = new_angle, new_rate
            positions.append(position)
            velocities.append(velocity)
            angles.append(angle)
            rates.append(rate)
            coms.append(position + rotate_y(angle, self._com_offsets[body]))
            com_velocities.append(velocity + self._rotate_rate(angle, rate, self._com_offsets[body]))
        return torch.stack(coms, dim=1), torch.stack(com_velocities, dim=1)

    def subtree_com_velocity(self, root: int, qpos: torch.Tensor, qvel: torch.Tensor) -> torch.Tensor:
        """Velocity of the centre of mass of ``root``'s subtree, ``[B, 3]`` (MuJoCo ``subtreelinvel``)."""
        members = [b for b in range(len(self._parents)) if self._in_subtree(b, root)]
        weights = self.masses[members] / self.masses[members].sum()
        _, velocities = self.body_coms(qpos, qvel)
        return (velocities[:, members] * weights.unsqueeze(-1)).sum(1)

    def _in_subtree(self, body: int, root: int) -> bool:
        while body != 0 and body != root:
            body = self._parents[body]
        return body == root


class CheetahRun(StateTask):
    """``cheetah-run`` for a batch."""

    def __init__(self, bridge: DmControlTask) -> None:
        self._kinematics = PlanarKinematics(bridge)
        self._torso = bridge.physics.model.name2id("torso", "body")
        self._run_speed = float(dm_cheetah._RUN_SPEED)  # the stock task's own constant
        self._nq = bridge.nq
        self._traced_speed: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None

    def _forward_speed(self, qpos: torch.Tensor, qvel: torch.Tensor) -> torch.Tensor:
        """x velocity of the torso subtree's centre of mass, ``[N]``."""
        return self._kinematics.subtree_com_velocity(self._torso, qpos, qvel)[:, 0]

    def observations(self, states: torch.Tensor, rows: np.ndarray | None = None) -> OrderedDict[str, np.ndarray]:
        """``position`` = qpos without root x; ``velocity`` = qvel."""
        position, velocity = states[:, 1 : self._nq], states[:, self._nq :]
        return OrderedDict(position=position.numpy().copy(), velocity=velocity.numpy().copy())

    def rewards(self, states: torch.Tensor, rows: np.ndarray | None = None) -> np.ndarray:
        """Linear tolerance of the forward speed of the centre of mass (target 10 m/s)."""
        qpos, qvel = states[:, : self._nq], states[:, self._nq :]
        if self._traced_speed is None:
            # Forward kinematics is a few hundred tiny operations: traced, 3-5x cheaper.
            self._traced_speed = trace_function(self._forward_speed, (qpos, qvel))
        speed = self._traced_speed(qpos, qvel)
        return tolerance(speed, (self._run_speed, math.inf), margin=self._run_speed,
                         sigmoid="linear", value_at_margin=0.0).numpy()


class AcrobotBalance(StateTask):
    """``acrobot-swingup`` / ``acrobot-swingup_sparse`` for a batch."""

    def __init__(self, bridge: DmControlTask, sparse: bool) -> None:
        kinematics = PlanarKinematics(bridge)  # also checks the geometry assumptions
        self._shoulder, self._elbow = kinematics.body_offset("upper_arm"), kinematics.body_offset("lower_arm")
        named = bridge.physics.named.model
        self._tip = torch.tensor(named.site_pos["tip"], dtype=torch.float64)
        self._target = torch.tensor(named.site_pos["target"], dtype=torch.float64)
        self._radius = float(named.site_size["target", 0])
        self._sparse = sparse

    def _angles(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return states[:, 0], states[:, 0] + states[:, 1]

    def observations(self, states: torch.Tensor, rows: np.ndarray | None = None) -> OrderedDict[str, np.ndarray]:
        """``orientations`` = (xz, xz, zz, zz) of the arms' frames; ``velocity`` = qvel."""
        upper, lower = self._angles(states)
        orientations = torch.stack([torch.sin(upper), torch.sin(lower), torch.cos(upper), torch.cos(lower)], -1)
        return OrderedDict(orientations=orientations.numpy(), velocity=states[:, 2:4].numpy().copy())

    def rewards(self, states: torch.Tensor, rows: np.ndarray | None = None) -> np.ndarray:
        """Tolerance of the tip-to-target distance (margin 1, or 0 when sparse)."""
        upper, lower = self._angles(states)
        tip = self._shoulder + rotate_y(upper, self._elbow) + rotate_y(lower, self._tip)
        distance = torch.linalg.vector_norm(self._target - tip, dim=-1)
        return tolerance(distance, (0.0, self._radius), margin=0.0 if self._sparse else 1.0).numpy()


class PendulumSwingUp(StateTask):
    """``pendulum-swingup`` for a batch."""

    def __init__(self, bridge: DmControlTask) -> None:
        PlanarKinematics(bridge)  # checks the geometry assumptions
        self._cosine_bound = float(dm_pendulum._COSINE_BOUND)  # the stock task's own constant

    def observations(self, states: torch.Tensor, rows: np.ndarray | None = None) -> OrderedDict[str, np.ndarray]:
        """``orientation`` = (zz, xz) of the pole frame; ``velocity`` = qvel."""
        angle = states[:, 0]
        orientation = torch.stack([torch.cos(angle), torch.sin(angle)], -1)
        return OrderedDict(orientation=orientation.numpy(), velocity=states[:, 1:2].numpy().copy())

    def rewards(self, states: torch.Tensor, rows: np.ndarray | None = None) -> np.ndarray:
        """1 while the pole is near upright (cosine above the stock bound)."""
        return tolerance(torch.cos(states[:, 0]), (self._cosine_bound, 1.0)).numpy()


class ReacherReach(StateTask):
    """``reacher-easy`` / ``reacher-hard`` for a batch, with one target per env.

    Targets are drawn as the stock task draws them (angle uniform in [0, 2 pi), radius
    uniform in [0.05, 0.20]), from each env's own generator.
    """

    #: The stock task's target radius range (literals in ``Reacher.initialize_episode``).
    TARGET_RADIUS = (0.05, 0.20)

    def __init__(self, bridge: DmControlTask, num_envs: int) -> None:
        model, named = bridge.physics.model, bridge.physics.named.model
        if not (np.allclose(model.body_quat, [1, 0, 0, 0]) and np.allclose(np.abs(model.jnt_axis), [0, 0, 1])):
            raise NotImplementedError("reacher's bodies are rotated or its hinges do not turn about z")
        self._base = torch.tensor(named.body_pos["arm"][:2], dtype=torch.float64)
        self._upper = torch.tensor(named.body_pos["hand"][:2], dtype=torch.float64)
        self._lower = torch.tensor(named.body_pos["finger"][:2] + named.geom_pos["finger"][:2], dtype=torch.float64)
        self._radii = float(bridge.task._target_size + named.geom_size["finger", 0])  # the task's own size
        self._targets = torch.zeros(num_envs, 2, dtype=torch.float64)

    def begin_episodes(self, rows: np.ndarray, rngs: list[np.random.Generator]) -> None:
        """A new target for each of ``rows``."""
        for row in rows:
            angle = rngs[row].uniform(0, 2 * np.pi)
            radius = rngs[row].uniform(*self.TARGET_RADIUS)
            self._targets[row] = torch.tensor([radius * np.sin(angle), radius * np.cos(angle)])

    @property
    def targets(self) -> torch.Tensor:
        """Each env's target position (x, y), ``[num_envs, 2]`` (a copy)."""
        return self._targets.clone()

    def _finger(self, states: torch.Tensor) -> torch.Tensor:
        def turn(angle: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
            c, s = torch.cos(angle).unsqueeze(-1), torch.sin(angle).unsqueeze(-1)
            return torch.cat([c * local[0] - s * local[1], s * local[0] + c * local[1]], -1)

        shoulder, wrist = states[:, 0], states[:, 0] + states[:, 1]
        return self._base + turn(shoulder, self._upper) + turn(wrist, self._lower)

    def _to_target(self, states: torch.Tensor, rows: np.ndarray | None) -> torch.Tensor:
        targets = self._targets if rows is None else self._targets[torch.as_tensor(rows)]
        return targets - self._finger(states)

    def observations(self, states: torch.Tensor, rows: np.ndarray | None = None) -> OrderedDict[str, np.ndarray]:
        """``position`` = qpos; ``to_target`` = target minus finger (x, y); ``velocity`` = qvel."""
        return OrderedDict(position=states[:, :2].numpy().copy(), to_target=self._to_target(states, rows).numpy(),
                           velocity=states[:, 2:].numpy().copy())

    def rewards(self, states: torch.Tensor, rows: np.ndarray | None = None) -> np.ndarray:
        """1 while the finger touches the target (distance within the two radii)."""
        distance = torch.linalg.vector_norm(self._to_target(states, rows), dim=-1)
        return tolerance(distance, (0.0, self._radii)).numpy()


class BridgeLoopTask:
    """Any task, one state at a time through the real physics (exact, a Python loop)."""

    native = False

    def __init__(self, bridge: TaskBridge) -> None:
        self._bridge = bridge

    def begin_episodes(self, rows: np.ndarray, rngs: list[np.random.Generator]) -> None:
        """Tasks with episode state are refused by :func:`make_batched_task`: nothing to draw."""

    def observations(self, states: torch.Tensor, rows: np.ndarray | None = None) -> Observations:
        """The task's observations of ``states`` as episode starts."""
        found = []
        for state in states.numpy():
            self._bridge.reset_to(state)
            found.append(self._bridge.observation())
        return stack_observations(found)

    def step(self, previous: torch.Tensor, actions: np.ndarray, states: torch.Tensor,
             rows: np.ndarray | None = None) -> StepResult:
        """Each step through :meth:`TaskBridge.transition` (the loop has no per-env state)."""
        obs, rewards, terminated, truncated = [], [], [], []
        for before, action, after in zip(previous.numpy(), actions, states.numpy(), strict=True):
            self._bridge.transition(before, action, after)
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


def make_batched_task(bridge: TaskBridge, native: bool = True, num_envs: int = 1) -> BatchedTask:
    """The torch-native implementation of the bridge's task if there is one, else the loop.

    :raises InputError: for a task without a native implementation whose episodes carry
        state outside ``(qpos, qvel)``: one shared physics cannot hold one per env.
    """
    if native and isinstance(bridge, DmControlTask):
        try:
            if bridge.domain == "reacher" and bridge.task_name in ("easy", "hard"):
                return ReacherReach(bridge, num_envs)
            if bridge.domain == "acrobot":
                return AcrobotBalance(bridge, sparse=bridge.task_name == "swingup_sparse")
            if bridge.domain == "pendulum" and bridge.task_name == "swingup":
                return PendulumSwingUp(bridge)
            if bridge.domain == "cheetah" and bridge.task_name == "run":
                return CheetahRun(bridge)
        except NotImplementedError:
            pass
    if getattr(bridge, "has_episode_state", False):
        # One shared physics cannot hold a different target per env.
        raise InputError(
            f"the batched env has no native implementation of task {bridge.task_name!r}, whose episodes carry "
            "state outside (qpos, qvel) (a target drawn per episode); use the single env "
            "(gymnasium.make, or SB3's make_vec_env with n_envs=N) for this task"
        )
    return BridgeLoopTask(bridge)
