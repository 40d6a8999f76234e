"""Stock dm_control suite domains and tasks, unpatched, evaluated on given physics states."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
from dm_control import mujoco, suite
from dm_control.rl import control
from dm_control.suite import base
from gymnasium import spaces
from shimmy.utils.dm_env import dm_spec2gym_space

from neural_sim.errors import InputError, UnknownNameError
from neural_sim.robots.activation import supported_activation
from neural_sim.robots.base import RobotInfo, RobotSpec
from neural_sim.robots.mujoco_model import state_layout

#: neural-sim robot name -> (dm_control domain, default task, translation-invariant joints).
DM_CONTROL_ROBOTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "acrobot": ("acrobot", "swingup", ()),
    "pendulum": ("pendulum", "swingup", ()),
    "cartpole": ("cartpole", "swingup", ()),
    "reacher": ("reacher", "easy", ()),
    "cheetah": ("cheetah", "run", ("rootx",)),
    "hopper": ("hopper", "hop", ("rootx",)),
    "walker": ("walker", "walk", ("rootx",)),
    "quadruped": ("quadruped", "walk", ("root",)),
    "humanoid": ("humanoid", "stand", ("root",)),
}


def domain_tasks(domain: str) -> tuple[str, ...]:
    """Every stock task of a dm_control domain, in the suite's order."""
    if domain not in suite.TASKS_BY_DOMAIN:
        raise UnknownNameError(f"unknown dm_control domain {domain!r}; known: {sorted(suite.TASKS_BY_DOMAIN)}")
    return tuple(suite.TASKS_BY_DOMAIN[domain])


def same_robot_tasks(domain: str, model: Any) -> tuple[str, ...]:
    """The domain's stock tasks that run this very robot on the same ground (cartpole's
    ``two_poles`` and ``three_poles`` load a different robot, quadruped's ``fetch`` adds a
    ball and ``escape`` rough terrain)."""
    def signature(m: Any) -> tuple[int, ...]:
        return (m.nq, m.nv, m.nu, m.nbody, m.ngeom)

    dims = signature(model)
    tasks = []
    for task in domain_tasks(domain):
        env = suite.load(domain, task)
        if signature(env.physics.model) == dims:
            tasks.append(task)
        env.close()
    return tuple(tasks)


class DmControlTask:
    """One dm_control task bound to its own ``Physics``: a stock suite task, or (through
    :meth:`custom`) any ``dm_control.suite.base.Task`` on any physics.

    :param domain: dm_control domain (``"acrobot"``).
    :param task: stock task of that domain (``"swingup"``).
    :param seed: seed of the task's own randomness (used only by :meth:`reset_random`).
    """

    def __init__(self, domain: str, task: str, seed: int | None = None) -> None:
        tasks = domain_tasks(domain)
        if task not in tasks:
            raise UnknownNameError(f"unknown task {task!r} of dm_control domain {domain!r}; known: {list(tasks)}")
        # No time limit: episode length is the environment's business, not the bridge's.
        self._bind(suite.load(domain, task, task_kwargs={"random": seed, "time_limit": float("inf")}), domain, task)

    @classmethod
    def custom(cls, physics: mujoco.Physics, task: base.Task, domain: str, seed: int | None = None) -> DmControlTask:
        """A user's task (observation, reward, termination as functions of ``physics``).

        :param physics: the robot's physics (a stock domain's, or one built from MJCF).
        :param task: a ``dm_control.suite.base.Task`` (dm_control's own task interface).
        :param domain: the robot's name, for messages.
        :param seed: reseeds the task's randomness when given.
        """
        if not isinstance(task, base.Task):
            raise InputError(
                f"task must be a stock task name or a dm_control.suite.base.Task instance, got {type(task).__name__}"
            )
        bridge = cls.__new__(cls)
        bridge._bind(control.Environment(physics, task, time_limit=float("inf")), domain, type(task).__name__)
        if seed is not None:
            bridge.seed(seed)
        return bridge

    def _bind(self, env: control.Environment, domain: str, task_name: str) -> None:
        self.domain, self.task_name = domain, task_name
        self._env = env
        self.physics = self._env.physics
        self.task = self._env.task
        # The stock suite's tasks never end an episode; a user's task may (its own get_termination).
        self.episodes_can_end = type(self.task).get_termination is not base.Task.get_termination
        self.dt = float(self._env.control_timestep())
        self.n_sub_steps = round(self.dt / float(self.physics.timestep()))
        self.observation_space: spaces.Space[Any] = dm_spec2gym_space(self._env.observation_spec())
        action_space = dm_spec2gym_space(self._env.action_spec())
        assert isinstance(action_space, spaces.Box)
        self.action_space: spaces.Box = action_space
        self.nq, self.nv = int(self.physics.model.nq), int(self.physics.model.nv)
        self.has_episode_state = self._episode_start_changes_model()
        self.activation = supported_activation(self.physics.model.ptr, self.n_sub_steps, domain)
        self.na = int(self.physics.model.na)

    def _episode_start_changes_model(self) -> bool:
        """Whether the task's episode start changes the model itself (reacher draws its
        target's position): task state that ``(qpos, qvel)`` do not carry."""
        model = self.physics.model

        def snapshot() -> np.ndarray:
            return np.concatenate([model.geom_pos.ravel(), model.geom_size.ravel(), model.body_pos.ravel(),
                                   model.site_pos.ravel()])

        random_state = self.task.random.get_state()
        before = snapshot()
        try:
            for seed in (1, 2):
                self.task._random = np.random.RandomState(seed)  # dm_control keeps it private
                with self.physics.reset_context():
                    self.task.initialize_episode(self.physics)
                if not np.array_equal(snapshot(), before):
                    return True
            return False
        finally:
            self.task.random.set_state(random_state)

    # -- state ----------------------------------------------------------------------------
    def set_state(self, state: np.ndarray) -> None:
        """Write ``[qpos, qvel]`` and run ``mj_forward`` so every derived quantity matches it."""
        self.physics.data.qpos[:] = state[: self.nq]
        self.physics.data.qvel[:] = state[self.nq :]
        self.physics.forward()

    def reset_to(self, state: np.ndarray) -> None:
        """Start an episode at ``state``: reset ``MjData`` (time 0, no solver warm start), as
        dm_control's own episode reset does, draw the task's own episode state when it has
        any (reacher's target, from the task's seeded randomness), then write the state."""
        with self.physics.reset_context():
            if self.has_episode_state:
                self.task.initialize_episode(self.physics)
            self.physics.data.qpos[:] = state[: self.nq]
            self.physics.data.qvel[:] = state[self.nq :]

    def transition(self, previous: np.ndarray, action: np.ndarray, state: np.ndarray,
                   activations: np.ndarray | None = None) -> None:
        """Leave the physics as ``control.Environment.step`` would after reaching ``state``.

        dm_control rewards read only the current physics (``physics.control()`` included,
        e.g. cartpole's small-control term), so ``previous`` is not needed.

        :param activations: the actuator activations after the step, when the caller carries
            them (envs sharing this bridge); default: the bridge's own, advanced.
        """
        self.task.before_step(action, self.physics)
        if activations is not None:
            self.physics.data.act[:] = activations
        elif self.activation is not None:  # as the physics step would have advanced them
            self.physics.data.act[:] = self.activation.advance(self.physics.data.act, self.physics.data.ctrl)
        self.physics.data.time += self.dt
        self.set_state(state)
        self.task.after_step(self.physics)

    def get_state(self) -> np.ndarray:
        """The current ``[qpos, qvel]`` (a copy)."""
        return np.concatenate([self.physics.data.qpos, self.physics.data.qvel])

    @property
    def activations(self) -> np.ndarray:
        """The current actuator activations ``[na]`` (a copy)."""
        return np.array(self.physics.data.act)

    @activations.setter
    def activations(self, value: np.ndarray) -> None:
        self.physics.data.act[:] = value

    def reset_random(self) -> np.ndarray:
        """Start an episode the stock way (``task.initialize_episode``); return its state."""
        with self.physics.reset_context():
            self.task.initialize_episode(self.physics)
        return self.get_state()

    def step_physics(self, action: np.ndarray) -> None:
        """Advance the real physics one control step, exactly as ``control.Environment.step``."""
        self.task.before_step(action, self.physics)
        self.physics.step(self.n_sub_steps)
        self.task.after_step(self.physics)

    def actuator_dofs(self) -> np.ndarray:
        """The velocity index (dof) each actuator drives, ``[nu]`` (joint actuators only)."""
        model = self.physics.model
        joints = model.actuator_trnid[:, 0]
        return np.asarray(model.jnt_dofadr[joints], dtype=np.int64)

    # -- task quantities ------------------------------------------------------------------
    def observation(self) -> OrderedDict[str, np.ndarray]:
        """The stock observation (arrays copied: dm_control may return views of physics data)."""
        obs = self.task.get_observation(self.physics)
        return OrderedDict((key, np.array(value)) for key, value in obs.items())

    def reward(self) -> float:
        """The stock reward."""
        return float(self.task.get_reward(self.physics))

    def termination(self) -> tuple[bool, bool]:
        """``(terminated, truncated)``: a discount of 0 terminates, a positive one truncates."""
        discount = self.task.get_termination(self.physics)
        if discount is None:
            return False, False
        return discount == 0, discount > 0

    def step_info(self) -> dict[str, Any]:
        """dm_control tasks report nothing beyond observation, reward and discount."""
        return {}

    def render(self, width: int = 320, height: int = 240, camera_id: int = -1) -> np.ndarray:
        """An RGB frame of the current state (needs a MuJoCo GL backend: ``MUJOCO_GL``)."""
        return np.asarray(self.physics.render(height=height, width=width, camera_id=camera_id))

    def seed(self, seed: int | None) -> None:
        """Reseed the task's randomness."""
        self.task._random = np.random.RandomState(seed)  # dm_control keeps it private

    def close(self) -> None:
        """Free the physics."""
        self._env.close()

    # -- robot description ------------------------------------------------------------------
    def robot_spec(self, name: str, default_task: str, invariant_joints: tuple[str, ...] = ()) -> RobotSpec:
        """Read the robot's dimensions, bounds and coordinate kinds from the MuJoCo model."""
        model = self.physics.model.ptr
        stock = suite.load(self.domain, self.task_name)
        episode_steps = int(stock._step_limit)  # dm_control exposes the stock limit nowhere else
        stock.close()
        info = RobotInfo(
            name=name,
            source="dm_control",
            domain=self.domain,
            tasks=same_robot_tasks(self.domain, self.physics.model),
            default_task=default_task,
            episode_steps=episode_steps,
        )
        layout = state_layout(model, self.dt, self.action_space, invariant_joints)
        return RobotSpec(info, layout)


def dm_control_robot_spec(name: str) -> RobotSpec:
    """The :class:`RobotSpec` of a known dm_control robot (``"acrobot"``, ``"cheetah"``, ...)."""
    if name not in DM_CONTROL_ROBOTS:
        raise UnknownNameError(f"unknown robot {name!r}; known dm_control robots: {sorted(DM_CONTROL_ROBOTS)}")
    domain, default_task, invariant = DM_CONTROL_ROBOTS[name]
    bridge = DmControlTask(domain, default_task)
    try:
        return bridge.robot_spec(name, default_task, invariant)
    finally:
        bridge.close()
