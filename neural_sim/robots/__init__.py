"""Bridges from learned states to real robots' tasks: one module per robot source."""

from __future__ import annotations

from neural_sim.errors import UnknownNameError
from neural_sim.robots.base import RobotInfo, RobotSpec, TaskBridge
from neural_sim.robots.dm_control import DM_CONTROL_ROBOTS, DmControlTask, dm_control_robot_spec

#: Robot sources a checkpoint's ``robot.source`` may name.
SOURCES = ("dm_control",)


def make_task_bridge(robot: RobotInfo, task: str, seed: int | None = None) -> TaskBridge:
    """The stock task ``task`` of ``robot``, bound to a fresh physics.

    :raises UnknownNameError: for an unknown source or task.
    """
    if robot.source == "dm_control":
        return DmControlTask(robot.domain, task, seed)
    raise UnknownNameError(f"unknown robot source {robot.source!r}; accepted: {list(SOURCES)}")


def robot_spec(name: str) -> RobotSpec:
    """The spec of a robot neural-sim knows how to collect data for (``"acrobot"``, ...)."""
    return dm_control_robot_spec(name)


__all__ = [
    "DM_CONTROL_ROBOTS",
    "SOURCES",
    "DmControlTask",
    "RobotInfo",
    "RobotSpec",
    "TaskBridge",
    "make_task_bridge",
    "robot_spec",
]
