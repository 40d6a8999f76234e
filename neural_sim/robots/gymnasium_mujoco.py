"""Gymnasium's own MuJoCo environments (``HalfCheetah-v5``, ``InvertedPendulum-v5``, ...),
evaluated on given physics states.

The bridge drives the real Gymnasium env's ``step``: observation, reward, termination and
``info`` come from the env's own code. For a learned step the env's simulation call is
replaced (on this instance only) by one that writes the predicted state, so reward terms
that compare the state before and after the step (forward velocity) see exactly the
previous and the predicted state.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces
from gymnasium.envs.mujoco.mujoco_env import MujocoEnv
from gymnasium.utils import seeding

from neural_sim.errors import InputError, UnknownNameError
from neural_sim.robots.activation import supported_activation
from neural_sim.robots.base import RobotInfo, RobotSpec
from neural_sim.robots.mujoco_model import state_layout

SOURCE = "gymnasium"
#: Joints whose coordinate never changes the dynamics (the world is flat and endless): a
#: planar robot's ``rootx``, a floating robot's free ``root`` (its x and y).
INVARIANT_JOINTS = ("rootx", "root")


def is_gymnasium_mujoco_id(name: str) -> bool:
    """Whether ``name`` is a registered Gymnasium id whose env is a ``MujocoEnv``."""
    if name not in gym.registry:
        return False
    entry_point = gym.registry[name].entry_point
    return isinstance(entry_point, str) and entry_point.startswith("gymnasium.envs.mujoco")


class GymnasiumMujocoTask:
    """One Gymnasium MuJoCo env (unwrapped: no time limit) used as a task on given states.

    :param env_id: a Gymnasium MuJoCo id (``"HalfCheetah-v5"``).
    :param seed: seed of the env's own reset noise (used only by :meth:`reset_random`).
    :param env_kwargs: keyword arguments for ``gymnasium.make(env_id, ...)`` (reward
        weights, ``reset_noise_scale``, ...), exactly as the Gymnasium env accepts them.
    """

    def __init__(self, env_id: str, seed: int | None = None, env_kwargs: dict[str, Any] | None = None) -> None:
        if not is_gymnasium_mujoco_id(env_id):
            known = sorted(i for i in gym.registry if is_gymnasium_mujoco_id(i) and i.endswith("-v5"))
            raise UnknownNameError(f"{env_id!r} is not a Gymnasium MuJoCo env id; known: {known}")
        try:
            wrapped = gym.make(env_id, **(env_kwargs or {}))
        except TypeError as error:
            raise InputError(f"invalid keyword arguments for {env_id}: {error}") from error
        env = wrapped.unwrapped
        assert isinstance(env, MujocoEnv)
        self.env_id = self.domain = self.task_name = env_id
        self.episodes_can_end = True  # unhealthy states terminate (HalfCheetah's never do: all kept)
        self._wrapped, self._env = wrapped, env
        self.model, self.data = env.model, env.data
        self.nq, self.nv, self.na = int(self.model.nq), int(self.model.nv), int(self.model.na)
        self.dt = float(env.dt)
        self.activation = supported_activation(self.model, int(env.frame_skip), env_id)
        self.observation_space: spaces.Space[Any] = env.observation_space
        action_space = env.action_space
        assert isinstance(action_space, spaces.Box)
        self.action_space: spaces.Box = action_space
        self._real_simulation = env._step_mujoco_simulation  # the env's own physics step
        self._target: np.ndarray | None = None
        self._target_activations: np.ndarray | None = None
        self._renderer: mujoco.Renderer | None = None
        self._last: tuple[Any, float, bool, dict[str, Any]] | None = None
        self.seed(seed)

    @property
    def env(self) -> MujocoEnv:
        """The Gymnasium env itself, unwrapped (its settings: reward weights and the like)."""
        return self._env

    # -- state ----------------------------------------------------------------------------
    def set_state(self, state: np.ndarray) -> None:
        """Write ``[qpos, qvel]`` with the env's own ``set_state`` (runs ``mj_forward``)."""
        self._env.set_state(np.asarray(state[: self.nq]), np.asarray(state[self.nq :]))
        self._last = None

    def reset_to(self, state: np.ndarray) -> None:
        """Start an episode at ``state``: fresh ``MjData`` (as the env's reset), then the state."""
        mujoco.mj_resetData(self.model, self.data)
        self.set_state(state)

    def get_state(self) -> np.ndarray:
        """The current ``[qpos, qvel]`` (a copy)."""
        return np.concatenate([self.data.qpos, self.data.qvel])

    @property
    def activations(self) -> np.ndarray:
        """The current actuator activations ``[na]`` (a copy)."""
        return np.array(self.data.act)

    @activations.setter
    def activations(self, value: np.ndarray) -> None:
        self.data.act[:] = value

    def reset_random(self) -> np.ndarray:
        """Start an episode the stock way (the env's ``reset``, its own noise); return its state."""
        mujoco.mj_resetData(self.model, self.data)
        self._env.reset_model()
        self._last = None
        return self.get_state()

    def step_physics(self, action: np.ndarray) -> None:
        """One real env step (the env's own ``step``)."""
        self._record(self._env.step(np.asarray(action, dtype=self.action_space.dtype)))

    def transition(self, previous: np.ndarray, action: np.ndarray, state: np.ndarray,
                   activations: np.ndarray | None = None) -> None:
        """The env's own ``step`` from ``previous``, its simulation replaced by writing ``state``
        (and ``activations``, the actuator activations after the step, when the caller carries
        them; default: the bridge's own, advanced)."""
        self.set_state(previous)
        self._target, self._target_activations = state, activations
        self._env._step_mujoco_simulation = self._write_target  # type: ignore[method-assign]
        try:
            self._record(self._env.step(np.asarray(action, dtype=self.action_space.dtype)))
        finally:
            self._env._step_mujoco_simulation = self._real_simulation  # type: ignore[method-assign]
            self._target = self._target_activations = None

    def actuator_dofs(self) -> np.ndarray:
        """The velocity index (dof) each actuator drives, ``[nu]`` (joint actuators only)."""
        joints = self.model.actuator_trnid[:, 0]
        return np.asarray(self.model.jnt_dofadr[joints], dtype=np.int64)

    # -- task quantities ------------------------------------------------------------------
    def observation(self) -> np.ndarray:
        """The env's observation of the current state."""
        # ``_get_obs`` is defined by every concrete Gymnasium MuJoCo env, not by MujocoEnv itself.
        return np.array(self._last[0]) if self._last is not None else self._env._get_obs()  # type: ignore[attr-defined]

    def reward(self) -> float:
        """The env's reward for the latest step (0 before the first step of an episode)."""
        return self._last[1] if self._last is not None else 0.0

    def termination(self) -> tuple[bool, bool]:
        """``(terminated, False)``: Gymnasium's MuJoCo envs leave truncation to the time limit."""
        return (self._last[2] if self._last is not None else False), False

    def step_info(self) -> dict[str, Any]:
        """The env's own ``info`` of the latest step (``x_velocity``, reward terms, ...)."""
        return dict(self._last[3]) if self._last is not None else {}

    def render(self, width: int = 320, height: int = 240, camera_id: int = -1) -> np.ndarray:
        """An RGB frame of the current state (needs a MuJoCo GL backend: ``MUJOCO_GL``)."""
        if self._renderer is None or (self._renderer.width, self._renderer.height) != (width, height):
            self._renderer = mujoco.Renderer(self.model, height=height, width=width)
        self._renderer.update_scene(self.data, camera=camera_id)
        return self._renderer.render()

    def seed(self, seed: int | None) -> None:
        """Reseed the env's reset noise."""
        self._env.np_random, _ = seeding.np_random(seed)

    def close(self) -> None:
        """Free the env and the renderer."""
        if self._renderer is not None:
            self._renderer.close()
        self._wrapped.close()

    # -- robot description ------------------------------------------------------------------
    def robot_spec(self) -> RobotSpec:
        """Dimensions, bounds and coordinate kinds of the env's MuJoCo model."""
        spec = gym.spec(self.env_id)
        info = RobotInfo(
            name=self.env_id,
            source=SOURCE,
            domain=self.env_id,
            tasks=(self.env_id,),
            default_task=self.env_id,
            episode_steps=int(spec.max_episode_steps or 1000),
        )
        layout = state_layout(self.model, self.dt, self.action_space, INVARIANT_JOINTS)
        return RobotSpec(info, layout)

    # -- internals ------------------------------------------------------------------------
    def _write_target(self, ctrl: np.ndarray, n_frames: int) -> None:
        # Stands in for MujocoEnv._step_mujoco_simulation: same control write and the same
        # derived quantities afterwards (mj_rnePostConstraint fills cfrc_ext for contact costs).
        assert self._target is not None
        self.data.ctrl[:] = ctrl
        if self._target_activations is not None:
            self.data.act[:] = self._target_activations
        elif self.activation is not None:  # as the physics steps would have advanced them
            self.data.act[:] = self.activation.advance(self.data.act, self.data.ctrl)
        self.data.time += n_frames * self.model.opt.timestep
        self.data.qpos[:] = self._target[: self.nq]
        self.data.qvel[:] = self._target[self.nq :]
        mujoco.mj_forward(self.model, self.data)
        mujoco.mj_rnePostConstraint(self.model, self.data)

    def _record(self, result: tuple[Any, Any, bool, bool, dict[str, Any]]) -> None:
        observation, reward, terminated, _, info = result
        self._last = (np.array(observation), float(reward), bool(terminated), info)


def gymnasium_robot_spec(env_id: str) -> RobotSpec:
    """The :class:`RobotSpec` of a Gymnasium MuJoCo env id."""
    bridge = GymnasiumMujocoTask(env_id)
    try:
        return bridge.robot_spec()
    finally:
        bridge.close()
