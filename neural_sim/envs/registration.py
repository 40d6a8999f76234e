"""Register Gymnasium ids for checkpoints.

Registration reads only ``config.json`` and uses a string entry point, so ``import
neural_sim`` stays cheap: the model and MuJoCo load on ``gymnasium.make``.
"""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym

from neural_sim.checkpoints import read_config, resolve_checkpoint, shipped_names
from neural_sim.envs.ids import short_id, task_id

ENTRY_POINT = "neural_sim.envs.single:NeuralSimEnv"
VECTOR_ENTRY_POINT = "neural_sim.envs.vector:NeuralSimVectorEnv"


def register_checkpoint(name_or_path: str | os.PathLike[str], *, checkpoint_kwarg: str | None = None) -> list[str]:
    """Register the short id and one id per stock task for a checkpoint.

    :param name_or_path: shipped robot name or checkpoint folder.
    :param checkpoint_kwarg: value passed to the env as ``checkpoint`` (default:
        ``name_or_path`` as given, so a shipped name keeps resolving after the package moves).
    :return: the ids registered (ids that already exist are replaced).
    """
    folder = resolve_checkpoint(name_or_path)
    config = read_config(Path(folder))
    robot = config.robot
    value = checkpoint_kwarg if checkpoint_kwarg is not None else os.fspath(name_or_path)
    entries = [(short_id(robot), robot.default_task)] + [(task_id(robot, task), task) for task in robot.tasks]
    for env_id, task in entries:
        if env_id in gym.registry:
            del gym.registry[env_id]
        gym.register(
            id=env_id,
            entry_point=ENTRY_POINT,
            vector_entry_point=VECTOR_ENTRY_POINT,
            max_episode_steps=config.trusted_horizon,
            kwargs={"checkpoint": value, "task": task},
        )
    return [env_id for env_id, _ in entries]


def register_shipped() -> list[str]:
    """Register every shipped checkpoint's ids; return them."""
    ids: list[str] = []
    for name in shipped_names():
        ids += register_checkpoint(name)
    return ids
