"""Robots and their tasks by source (dm_control, Gymnasium MuJoCo, MJCF): specs, bridges, data."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dm_control import suite
from dm_control.suite import base

from neural_sim.errors import CheckpointError, InputError, UnknownNameError
from neural_sim.robots.base import RobotInfo, RobotSpec, TaskBridge
from neural_sim.robots.dm_control import DM_CONTROL_ROBOTS, DmControlTask, dm_control_robot_spec
from neural_sim.robots.gymnasium_mujoco import GymnasiumMujocoTask, gymnasium_robot_spec, is_gymnasium_mujoco_id
from neural_sim.robots.mjcf import is_mjcf_path, mjcf_robot_spec, mjcf_task

#: Robot sources a checkpoint's ``robot.source`` may name.
SOURCES = ("dm_control", "gymnasium", "mjcf")


def make_task_bridge(
    robot: RobotInfo,
    task: str | base.Task,
    seed: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    folder: str | os.PathLike[str] | None = None,
) -> TaskBridge:
    """Task ``task`` of ``robot``, bound to a fresh physics.

    :param task: a task name of ``robot.tasks``, or a ``dm_control.suite.base.Task``
        instance (dm_control and MJCF robots).
    :param env_kwargs: keyword arguments of the source's own env constructor (Gymnasium
        robots only: reward weights and the like).
    :param folder: the checkpoint folder (MJCF robots: where the XML is).
    :raises UnknownNameError: for an unknown source or task.
    :raises InputError: for arguments the source does not take.
    """
    if env_kwargs and robot.source != "gymnasium":
        raise InputError(f"env_kwargs apply to Gymnasium robots only; {robot.source} got {sorted(env_kwargs)}")
    if not isinstance(task, str) and robot.source == "gymnasium":
        raise InputError("Gymnasium robots take their task from the Gymnasium env; pass env_kwargs to configure it")
    if robot.source == "dm_control":
        if isinstance(task, str):
            return DmControlTask(robot.domain, task, seed)
        return DmControlTask.custom(suite.load(robot.domain, robot.default_task).physics, task, robot.domain, seed)
    if robot.source == "gymnasium":
        return GymnasiumMujocoTask(robot.domain, seed, env_kwargs)
    if robot.source == "mjcf":
        if folder is None:
            raise InputError("an MJCF robot's task needs the checkpoint folder that holds its XML")
        xml = Path(folder) / robot.domain
        if not xml.is_file():
            raise CheckpointError(f"checkpoint {folder} is missing {robot.domain}, the MJCF file of its robot")
        return mjcf_task(xml, task, seed)
    raise UnknownNameError(f"unknown robot source {robot.source!r}; accepted: {list(SOURCES)}")


def known_robots() -> list[str]:
    """Names :func:`robot_spec` accepts (besides MJCF paths): dm_control robots and Gymnasium
    MuJoCo v5 ids."""
    import gymnasium as gym

    gymnasium_ids = sorted(i for i in gym.registry if is_gymnasium_mujoco_id(i) and i.endswith("-v5"))
    return sorted(DM_CONTROL_ROBOTS) + gymnasium_ids


def robot_spec(name: str) -> RobotSpec:
    """The spec of a robot neural-sim can collect data for: a dm_control robot name
    (``"acrobot"``), a Gymnasium MuJoCo id (``"HalfCheetah-v5"``) or an MJCF file path.

    :raises UnknownNameError: for any other name.
    """
    if name in DM_CONTROL_ROBOTS:
        return dm_control_robot_spec(name)
    if is_gymnasium_mujoco_id(name):
        return gymnasium_robot_spec(name)
    if is_mjcf_path(name):
        return mjcf_robot_spec(name)
    raise UnknownNameError(f"unknown robot {name!r}; known: {known_robots()} or a path to an MJCF file (*.xml)")


def collection_bridge(name: str, task: str | None, seed: int) -> tuple[TaskBridge, RobotInfo, str]:
    """A real simulator of robot ``name`` for data collection: ``(bridge, robot, task)``.

    :param task: the task whose initial-state distribution starts each sequence (default:
        the robot's default task).
    """
    info = robot_spec(name).info
    task = task or info.default_task
    if task not in info.tasks:
        raise UnknownNameError(f"unknown task {task!r} for robot {name!r}; known: {list(info.tasks)}")
    folder = Path(name).parent if info.source == "mjcf" else None
    return make_task_bridge(info, task, seed, folder=folder), info, task


def data_source(robot: RobotInfo, folder: str | os.PathLike[str]) -> str:
    """The name :func:`robot_spec` and data collection take for a checkpoint's robot (an
    MJCF robot's is the XML inside the checkpoint ``folder``)."""
    return str(Path(folder) / robot.domain) if robot.source == "mjcf" else robot.name
