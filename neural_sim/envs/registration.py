"""Register Gymnasium ids for checkpoints.

Registration reads only ``config.json`` and uses a string entry point, so ``import
neural_sim`` stays cheap: the model and MuJoCo load on ``gymnasium.make``.
"""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym

from neural_sim.checkpoints import read_config, shipped_names
from neural_sim.envs.ids import NAMESPACE, env_entries
from neural_sim.hub import resolve_checkpoint

ENTRY_POINT = "neural_sim.envs.single:NeuralSimEnv"
VECTOR_ENTRY_POINT = "neural_sim.envs.vector:NeuralSimVectorEnv"


def register_checkpoint(
    name_or_path: str | os.PathLike[str], *, revision: str | None = None, checkpoint_kwarg: str | None = None
) -> list[str]:
    """Register a checkpoint's env ids: the short id and one per stock task for dm_control
    robots (``NeuralSim/Cheetah-v0``, ``NeuralSim/cheetah-run-v0``), the mirrored Gymnasium
    id for Gymnasium robots (``NeuralSim/HalfCheetah-v5``).

    :param name_or_path: shipped robot name, checkpoint folder or Hub repo id
        (``"org/name"``: downloaded now if not cached, so ``make`` later works offline).
    :param revision: Hub branch, tag or commit to pin (Hub repo ids only).
    :param checkpoint_kwarg: value passed to the env as ``checkpoint`` (default:
        ``name_or_path`` as given, so a shipped name keeps resolving after the package moves).
    :return: the ids registered (ids that already exist are replaced).
    """
    folder = resolve_checkpoint(name_or_path, revision)
    config = read_config(Path(folder))
    robot = config.robot
    value = checkpoint_kwarg if checkpoint_kwarg is not None else os.fspath(name_or_path)
    entries = env_entries(robot)
    for env_id, task in entries:
        if env_id in gym.registry:
            del gym.registry[env_id]
        gym.register(
            id=env_id,
            entry_point=ENTRY_POINT,
            vector_entry_point=VECTOR_ENTRY_POINT,
            max_episode_steps=config.default_episode_steps,
            kwargs={"checkpoint": value, "task": task, **({"revision": revision} if revision else {})},
        )
    return [env_id for env_id, _ in entries]


def registered_ids() -> list[str]:
    """Every ``NeuralSim/...`` id in Gymnasium's registry (shipped and user-registered), sorted."""
    return sorted(env_id for env_id in gym.registry if env_id.startswith(f"{NAMESPACE}/"))


def register_shipped() -> list[str]:
    """Register every shipped checkpoint's ids; return them."""
    ids: list[str] = []
    for name in shipped_names():
        ids += register_checkpoint(name)
    return ids
