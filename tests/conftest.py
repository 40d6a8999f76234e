"""Shared fixtures: tiny models and checkpoints made by the real pipeline in seconds."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import neural_sim  # noqa: F401  (registers the NeuralSim ids; sets MUJOCO_GL on headless machines)
from neural_sim.model.config import ModelConfig, NetworkConfig
from neural_sim.pipeline.collect import Dataset, collect
from neural_sim.pipeline.train import TrainConfig, train
from neural_sim.robots import robot_spec

TINY = NetworkConfig(1, 16)
TINY_MODEL = ModelConfig(
    position_encoder=TINY, state_encoder=TINY, action_encoder=NetworkConfig(0, 8), correctors=(TINY,)
)


@pytest.fixture(scope="session")
def acrobot_data() -> Dataset:
    """Six short acrobot sequences (enough for a 16-step validation window after step 100)."""
    return collect("acrobot", sequences=6, steps=150, seed=123, command="pytest")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, acrobot_data: Dataset) -> Path:
    """A complete acrobot checkpoint folder with a tiny, briefly trained model."""
    out = tmp_path_factory.mktemp("ckpt") / "tiny-acrobot"
    config = TrainConfig(iterations=20, batch_size=64, eval_every=10, seed=5)
    train(acrobot_data, robot_spec("acrobot"), out, TINY_MODEL, config=config, command="pytest", progress=False,
          log=lambda _: None)
    return out


@pytest.fixture
def checkpoint_copy(tmp_path: Path, tiny_checkpoint: Path) -> Path:
    """A private copy of the tiny checkpoint that a test may damage."""
    target = tmp_path / "copy"
    shutil.copytree(tiny_checkpoint, target)
    return target
