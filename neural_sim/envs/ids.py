"""Environment id naming: one place, used by registration and model cards."""

from __future__ import annotations

from neural_sim.robots.base import RobotInfo

NAMESPACE = "NeuralSim"


def short_id(robot: RobotInfo) -> str:
    """``NeuralSim/Acrobot-v0``: the robot's default task."""
    return f"{NAMESPACE}/{robot.name.capitalize()}-v0"


def task_id(robot: RobotInfo, task: str) -> str:
    """``NeuralSim/acrobot-swingup-v0``: mirrors shimmy's ``dm_control/<domain>-<task>-v0``."""
    return f"{NAMESPACE}/{robot.domain}-{task}-v0"


def env_ids(robot: RobotInfo) -> list[str]:
    """Every id of a robot: the short one first, then one per stock task."""
    return [short_id(robot)] + [task_id(robot, task) for task in robot.tasks]
