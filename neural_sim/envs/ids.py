"""Environment id naming: one place, used by registration, the CLI and model cards.

- dm_control robots: ``NeuralSim/Acrobot-v0`` (the default task) plus one id per stock
  task mirroring shimmy's ``dm_control/<domain>-<task>-v0``: ``NeuralSim/acrobot-swingup-v0``;
- Gymnasium MuJoCo robots mirror Gymnasium's id: ``NeuralSim/HalfCheetah-v5``;
- MJCF robots have the short id only (``NeuralSim/Arm-v0``); their tasks come at ``make``.
"""

from __future__ import annotations

from neural_sim.robots.base import RobotInfo

NAMESPACE = "NeuralSim"


def short_id(robot: RobotInfo) -> str:
    """The id of the robot's default task: ``NeuralSim/Acrobot-v0``, ``NeuralSim/HalfCheetah-v5``."""
    if robot.source == "gymnasium":
        return f"{NAMESPACE}/{robot.domain}"
    return f"{NAMESPACE}/{robot.name.capitalize()}-v0"


def task_id(robot: RobotInfo, task: str) -> str:
    """``NeuralSim/acrobot-swingup-v0``: mirrors shimmy's ``dm_control/<domain>-<task>-v0``."""
    return f"{NAMESPACE}/{robot.domain}-{task}-v0"


def env_entries(robot: RobotInfo) -> list[tuple[str, str]]:
    """``(env id, task)`` for every id of a robot: the short one first."""
    if robot.source in ("gymnasium", "mjcf"):
        return [(short_id(robot), robot.default_task)]
    return [(short_id(robot), robot.default_task)] + [(task_id(robot, task), task) for task in robot.tasks]


def env_ids(robot: RobotInfo) -> list[str]:
    """Every id of a robot: the short one first, then one per stock task."""
    return [env_id for env_id, _ in env_entries(robot)]


def mirrored_id(robot: RobotInfo, task: str) -> str:
    """The real environment a NeuralSim id stands in for: shimmy's
    ``dm_control/<domain>-<task>-v0`` for dm_control robots, the Gymnasium id for Gymnasium
    robots.

    :raises ValueError: for MJCF robots, which have no real environment to mirror.
    """
    if robot.source == "gymnasium":
        return robot.domain
    if robot.source == "dm_control":
        return f"dm_control/{robot.domain}-{task}-v0"
    raise ValueError(f"robot {robot.name!r} comes from an MJCF file: there is no registered real env it mirrors")
