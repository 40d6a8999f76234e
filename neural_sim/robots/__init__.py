"""Bridges from learned states to real robots' tasks: one module per robot source.

A robot comes from one of :data:`SOURCES`:

- ``"dm_control"``: a dm_control suite domain (``"acrobot"``, ``"cheetah"``, ...);
- ``"gymnasium"``: a Gymnasium MuJoCo env (``"HalfCheetah-v5"``, ...);
- ``"mjcf"``: an MJCF file carried in the checkpoint folder, with the user's task.

A task is a stock task's name, or for dm_control and MJCF robots a user's
``dm_control.suite.base.Task`` instance.

The names below load on first use (PEP 562), so reading a checkpoint's ``robot`` section
(:class:`RobotInfo`) does not import dm_control, shimmy or MuJoCo: ``import neural_sim``
stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from neural_sim.robots.base import RobotInfo, RobotSpec, TaskBridge

if TYPE_CHECKING:
    from neural_sim.robots.dm_control import DM_CONTROL_ROBOTS, DmControlTask
    from neural_sim.robots.gymnasium_mujoco import GymnasiumMujocoTask
    from neural_sim.robots.mjcf import PASSIVE_TASK, PassiveTask
    from neural_sim.robots.sources import (
        SOURCES,
        collection_bridge,
        data_source,
        known_robots,
        make_task_bridge,
        robot_spec,
    )

_LAZY = {
    "DM_CONTROL_ROBOTS": "neural_sim.robots.dm_control",
    "DmControlTask": "neural_sim.robots.dm_control",
    "GymnasiumMujocoTask": "neural_sim.robots.gymnasium_mujoco",
    "PASSIVE_TASK": "neural_sim.robots.mjcf",
    "PassiveTask": "neural_sim.robots.mjcf",
    **{name: "neural_sim.robots.sources" for name in (
        "SOURCES", "collection_bridge", "data_source", "known_robots", "make_task_bridge", "robot_spec")},
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DM_CONTROL_ROBOTS",
    "PASSIVE_TASK",
    "SOURCES",
    "DmControlTask",
    "GymnasiumMujocoTask",
    "PassiveTask",
    "RobotInfo",
    "RobotSpec",
    "TaskBridge",
    "collection_bridge",
    "data_source",
    "known_robots",
    "make_task_bridge",
    "robot_spec",
]
