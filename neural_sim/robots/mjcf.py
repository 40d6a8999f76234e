"""Robots that live in no package: an MJCF file shipped inside the checkpoint folder.

The task is the user's, given in Python at ``make`` time as a ``dm_control.suite.base.Task``
(dm_control's own interface: ``get_observation(physics)``, ``get_reward(physics)``,
``get_termination(physics)``, ``initialize_episode(physics)``), so nothing but the MJCF
comes with a checkpoint and no downloaded code ever runs. Every MJCF robot also has the
built-in :class:`PassiveTask` (observation: position and velocity; reward 0), which data
collection uses for its initial states.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import mujoco as mujoco_lib
import numpy as np
from dm_control import mujoco
from dm_control.suite import base

from neural_sim.errors import InputError, UnknownNameError
from neural_sim.robots.base import RobotInfo, RobotSpec
from neural_sim.robots.dm_control import DmControlTask
from neural_sim.robots.mujoco_model import free_joint_names, state_layout

SOURCE = "mjcf"
PASSIVE_TASK = "passive"
#: Control steps of an MJCF robot's episode (the dm_control suite's usual 1000).
EPISODE_STEPS = 1000


class PassiveTask(base.Task):
    """Observe the state, reward nothing: the task every MJCF robot has.

    Episodes start at keyframe 0 (or the model's reference pose ``qpos0``) plus uniform
    noise of ``noise`` on every position and velocity (quaternions renormalised).

    :param noise: half-width of the uniform start noise.
    :param random: seed or ``RandomState`` of the noise.
    """

    def __init__(self, noise: float = 0.1, random: int | np.random.RandomState | None = None) -> None:
        super().__init__(random=random)
        self.noise = noise

    def initialize_episode(self, physics: mujoco.Physics) -> None:
        """Keyframe 0 or ``qpos0``, plus noise."""
        model = physics.model
        start = model.key_qpos[0] if model.nkey else model.qpos0
        physics.data.qpos[:] = start + self.random.uniform(-self.noise, self.noise, size=model.nq)
        physics.data.qvel[:] = self.random.uniform(-self.noise, self.noise, size=model.nv)
        mujoco_lib.mj_normalizeQuat(model.ptr, physics.data.qpos)
        super().initialize_episode(physics)

    def get_observation(self, physics: mujoco.Physics) -> OrderedDict[str, np.ndarray]:
        """``position`` (qpos) and ``velocity`` (qvel)."""
        return OrderedDict(position=physics.data.qpos.copy(), velocity=physics.data.qvel.copy())

    def get_reward(self, physics: mujoco.Physics) -> float:
        """Always 0: give your own task for a reward."""
        return 0.0


def is_mjcf_path(name: str | os.PathLike[str]) -> bool:
    """Whether ``name`` names an MJCF file (``*.xml``)."""
    return os.fspath(name).endswith(".xml")


def load_physics(xml: str | os.PathLike[str]) -> mujoco.Physics:
    """dm_control ``Physics`` of an MJCF file (assets resolve relative to the file).

    :raises UnknownNameError: no such file.
    :raises InputError: MuJoCo cannot compile it.
    """
    path = Path(xml)
    if not path.is_file():
        raise UnknownNameError(f"no MJCF file at {path}")
    try:
        return mujoco.Physics.from_xml_path(str(path))
    except Exception as error:  # MuJoCo raises plain ValueError/Error types for bad XML
        raise InputError(f"MuJoCo cannot load {path}: {error}") from error


def mjcf_task(
    xml: str | os.PathLike[str], task: str | base.Task, seed: int | None = None
) -> DmControlTask:
    """The robot of ``xml`` with ``task`` (:data:`PASSIVE_TASK` or the user's ``base.Task``)."""
    physics = load_physics(xml)
    if isinstance(task, str):
        if task != PASSIVE_TASK:
            raise UnknownNameError(
                f"unknown task {task!r} for an MJCF robot: its only built-in task is {PASSIVE_TASK!r}; pass "
                "your own as task=<a dm_control.suite.base.Task instance>"
            )
        task = PassiveTask(random=seed)
    return DmControlTask.custom(physics, task, Path(xml).name, seed)


def mjcf_robot_spec(xml: str | os.PathLike[str], invariant_joints: tuple[str, ...] | None = None) -> RobotSpec:
    """The :class:`RobotSpec` of an MJCF robot; its control timestep is the physics timestep.

    :param invariant_joints: joints whose coordinate never changes the dynamics (hidden
        from the networks). Default: a slide named ``rootx`` and every free joint (its x
        and y: a robot on flat ground, or in free space, moves alike wherever it is).
    """
    path = Path(xml)
    bridge = mjcf_task(path, PASSIVE_TASK)
    try:
        model = bridge.physics.model.ptr
        if invariant_joints is None:
            invariant_joints = ("rootx", *free_joint_names(model))
        info = RobotInfo(
            name=path.stem,
            source=SOURCE,
            domain=path.name,
            tasks=(PASSIVE_TASK,),
            default_task=PASSIVE_TASK,
            episode_steps=EPISODE_STEPS,
        )
        layout = state_layout(model, bridge.dt, bridge.action_space, invariant_joints)
        return RobotSpec(info, layout, files=(path.resolve(),))
    finally:
        bridge.close()
