"""neural-sim: learned (MoSim Neural-ODE) simulators of MuJoCo robots as Gymnasium envs.

Importing the package registers ``NeuralSim/...`` environment ids for every shipped
checkpoint (Gymnasium 1.x loads no entry points, so ``import neural_sim`` or
``gymnasium.make("neural_sim:NeuralSim/Acrobot-v0")`` is what registers them).
"""

from __future__ import annotations

import os

# Headless machines have no window system for dm_control's default GLFW renderer; EGL
# renders offscreen there. Must be set before dm_control is first imported.
if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"

import torch

from neural_sim.checkpoints import load_simulator, read_config, shipped_names
from neural_sim.envs.registration import register_checkpoint, register_shipped
from neural_sim.errors import (
    CheckpointError,
    DivergenceError,
    InputError,
    NeuralSimError,
    OutOfDomainError,
    UnknownNameError,
)
from neural_sim.hub import resolve_checkpoint
from neural_sim.model.simulator import Simulator

__version__ = "0.1.0"


def load(
    name_or_path: str | os.PathLike[str], device: str | torch.device = "cpu", revision: str | None = None
) -> Simulator:
    """Load a trained simulator.

    :param name_or_path: a shipped robot name (``"acrobot"``, see :func:`shipped_names`),
        a checkpoint folder, or a Hugging Face Hub repo id (``"org/name"``: downloaded into
        the HF cache on first use, then loaded offline).
    :param device: torch device to run on.
    :param revision: Hub branch, tag or commit hash to pin (Hub repo ids only).
    :return: a :class:`Simulator` with ``nq, nv, nu, dt``, ``step`` and ``rollout``.
    :raises UnknownNameError: not a shipped name, a folder or a Hub repo.
    :raises CheckpointError: the checkpoint is incomplete, corrupted, of a newer format,
        holds pickle, or is not cached while offline.
    """
    folder = resolve_checkpoint(name_or_path, revision)
    return load_simulator(folder, read_config(folder), device)


def _preload_in_forkserver_workers() -> None:
    """Have worker processes started from a forkserver import neural_sim (so know its ids).

    SB3's ``SubprocVecEnv`` uses the forkserver start method on Linux; the forkserver
    imports only the main module, which a notebook, ``python -c`` or pytest does not have
    as a file, so ``NeuralSim/...`` ids would be unknown in the workers. Has no effect once
    a forkserver runs, and adds to (never replaces) modules the user asked to preload.
    """
    import multiprocessing.forkserver as forkserver

    preloaded = list(getattr(forkserver._forkserver, "_preload_modules", ["__main__"]))  # private, read only
    if __name__ not in preloaded:
        forkserver.set_forkserver_preload([*preloaded, __name__])


ENV_IDS: list[str] = register_shipped()
_preload_in_forkserver_workers()

__all__ = [
    "ENV_IDS",
    "CheckpointError",
    "DivergenceError",
    "InputError",
    "NeuralSimError",
    "OutOfDomainError",
    "Simulator",
    "UnknownNameError",
    "__version__",
    "load",
    "register_checkpoint",
    "shipped_names",
]
