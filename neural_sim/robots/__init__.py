"""Bridges from learned states to real robots' tasks: one module per robot source.

A robot comes from one of :data:`SOURCES`:

- ``"dm_control"``: a dm_control suite domain (``"acrobot"``, ``"cheetah"``, ...);
- ``"gymnasium"``: a Gymnasium MuJoCo env (``"HalfCheetah-v5"``, ...).
"""

from __future__ import annotations

from typing import Any

from neural_sim.errors import InputError, UnknownNameError
from neural_sim.robots.base import RobotInfo, RobotSpec, TaskBridge
from neural_sim.robots.dm_control import DM_CONTROL_ROBOTS, DmControlTask, dm_control_robot_spec
from neural_sim.robots.gymnasium_mujoco import GymnasiumMujocoTask, gymnasium_robot_spec, is_gymnasium_mujoco_id

#: Robot sources a checkpoint's ``robot.source`` may name.
SOURCES = ("dm_control", "gymnasium")


def make_task_bridge(
    robot: RobotInfo, task: str, seed: int | None = None, env_kwargs: dict[str, Any] | None = None
) -> TaskBridge:
    """The stock task ``task`` of ``robot``, bound to a fresh physics.

    :param env_kwargs: keyword arguments of the source's own env constructor (Gymnasium
        robots only: reward weights and the like).
    :raises UnknownNameError: for an unknown source or task.
    """
    if robot.source == "dm_control":
        if env_kwargs:
            raise InputError(f"dm_control tasks take no extra env arguments; got {sorted(env_kwargs)}")
        return DmControlTask(robot.domain, task, seed)
    if robot.source == "gymnasium":
        return GymnasiumMujocoTask(robot.domain, seed, env_kwargs)
    raise UnknownNameError(f"unknown robot source {robot.source!r}; accepted: {list(SOURCES)}")


def known_robots() -> list[str]:
    """Names :func:`robot_spec` accepts: dm_control robots and Gymnasium MuJoCo v5 ids."""
    import gymnasium as gym

    gymnasium_ids = sorted(i for i in gym.registry if is_gymnasium_mujoco_id(i) and i.endswith("-v5"))
    return sorted(DM_CONTROL_ROBOTS) + gymnasium_ids


def robot_spec(name: str) -> RobotSpec:
    """The spec of a robot neural-sim can collect data for: a dm_control robot name
    (``"acrobot"``) or a Gymnasium MuJoCo id (``"HalfCheetah-v5"``).

    :raises UnknownNameError: for any other name.
    """
    if name in DM_CONTROL_ROBOTS:
        return dm_control_robot_spec(name)
    if is_gymnasium_mujoco_id(name):
        return gymnasium_robot_spec(name)
    raise UnknownNameError(f"unknown robot {name!r}; known: {known_robots()}")


def collection_bridge(name: str, task: str | None, seed: int) -> tuple[TaskBridge, RobotInfo, str]:
    """A real simulator of robot ``name`` for data collection: ``(bridge, robot, task)``.

    :param task: the task whose initial-state distribution starts each sequence (default:
        the robot's default task).
    """
    info = robot_spec(name).info
    task = task or info.default_task
    if task not in info.tasks:
        raise UnknownNameError(f"unknown task {task!r} for robot {name!r}; known: {list(info.tasks)}")
    return make_task_bridge(info, task, seed), info, task


__all__ = [
    "DM_CONTROL_ROBOTS",
    "SOURCES",
    "DmControlTask",
    "GymnasiumMujocoTask",
    "RobotInfo",
    "RobotSpec",
    "TaskBridge",
    "collection_bridge",
    "known_robots",
    "make_task_bridge",
    "robot_spec",
]
