"""Custom-MJCF robots: the XML travels in the checkpoint, the task is the user's Python."""

from __future__ import annotations

import shutil
from collections import OrderedDict
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from dm_control.rl import control
from dm_control.suite import base
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import neural_sim
from neural_sim.envs.single import NeuralSimEnv
from neural_sim.errors import CheckpointError, InputError, UnknownNameError
from neural_sim.model.config import ModelConfig, NetworkConfig
from neural_sim.pipeline.collect import collect
from neural_sim.pipeline.train import TrainConfig, train
from neural_sim.robots import robot_spec
from neural_sim.robots.mjcf import load_physics

TINY = NetworkConfig(1, 16)
TINY_MODEL = ModelConfig(
    position_encoder=TINY, state_encoder=TINY, action_encoder=NetworkConfig(0, 8), correctors=(TINY,)
)
ARM = Path(__file__).resolve().parents[1] / "examples" / "custom_robot" / "arm.xml"


class ReachUp(base.Task):
    """Hand towards a point above the rail; a user's task, as dm_control writes tasks."""

    def get_observation(self, physics):  # type: ignore[no-untyped-def]
        return OrderedDict(position=physics.data.qpos.copy(), velocity=physics.data.qvel.copy(),
                           hand=physics.named.data.site_xpos["hand"].copy())

    def get_reward(self, physics):  # type: ignore[no-untyped-def]
        return -float(np.linalg.norm(physics.named.data.site_xpos["hand"] - [0.3, 0.0, 0.6]))

    def get_termination(self, physics):  # type: ignore[no-untyped-def]
        return 0.0 if abs(physics.data.qpos[0]) > 0.95 else None  # ran off the rail


@pytest.fixture(scope="module")
def arm_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = collect(str(ARM), sequences=6, steps=150, seed=0, command="pytest")
    out = tmp_path_factory.mktemp("mjcf") / "arm"
    train(data, robot_spec(str(ARM)), out, TINY_MODEL, config=TrainConfig(iterations=20, batch_size=64, eval_every=10),
          command="pytest", progress=False, log=lambda _: None)
    return out


def test_the_checkpoint_carries_its_mjcf(arm_checkpoint: Path) -> None:
    assert (arm_checkpoint / "arm.xml").read_bytes() == ARM.read_bytes()
    config = neural_sim.read_config(arm_checkpoint)
    assert (config.robot.source, config.robot.domain, config.robot.tasks) == ("mjcf", "arm.xml", ("passive",))


def test_a_user_task_scores_the_predicted_physics(arm_checkpoint: Path) -> None:
    env = NeuralSimEnv(arm_checkpoint, task=ReachUp())
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"position", "velocity", "hand"}
    obs, reward, *_ = env.step(np.zeros(3))
    hand = load_physics(ARM)
    hand.data.qpos[:] = env.state[:3]
    hand.forward()
    np.testing.assert_allclose(obs["hand"], hand.named.data.site_xpos["hand"])
    assert reward == pytest.approx(-np.linalg.norm(hand.named.data.site_xpos["hand"] - [0.3, 0.0, 0.6]))


def test_the_physics_backend_equals_dm_control_with_the_same_task(arm_checkpoint: Path) -> None:
    env = NeuralSimEnv(arm_checkpoint, task=ReachUp(), backend="physics")
    _, info = env.reset(seed=0)
    real = control.Environment(load_physics(ARM), ReachUp(), time_limit=float("inf"))
    real.reset()
    with real.physics.reset_context():
        real.physics.data.qpos[:], real.physics.data.qvel[:] = info["state"][:3], info["state"][3:]
    for action in np.random.default_rng(0).uniform(-1, 1, size=(30, 3)):
        obs, reward, terminated, *_ = env.step(action)
        step = real.step(action)
        np.testing.assert_array_equal(obs["hand"], step.observation["hand"])
        assert reward == step.reward
        if terminated:
            break


def test_mjcf_envs_pass_both_env_checkers(arm_checkpoint: Path) -> None:
    check_env(NeuralSimEnv(arm_checkpoint, task=ReachUp()), skip_render_check=True)
    sb3_check_env(NeuralSimEnv(arm_checkpoint), warn=False)  # the built-in passive task


def test_register_checkpoint_gives_an_mjcf_robot_ids(arm_checkpoint: Path) -> None:
    ids = neural_sim.register_checkpoint(arm_checkpoint)
    assert ids == ["NeuralSim/Arm-v0"]
    env = gym.make("NeuralSim/Arm-v0", task=ReachUp())
    env.reset(seed=1)
    _, reward, *_ = env.step(env.action_space.sample())
    assert reward < 0


def test_bad_tasks_and_a_missing_mjcf_are_refused(arm_checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="unknown task 'reach'"):
        NeuralSimEnv(arm_checkpoint, task="reach")
    with pytest.raises(InputError, match=r"dm_control.suite.base.Task instance, got dict"):
        NeuralSimEnv(arm_checkpoint, task={"reward": 1})  # type: ignore[arg-type]
    with pytest.raises(InputError, match="env_kwargs apply to Gymnasium robots only"):
        NeuralSimEnv(arm_checkpoint, env_kwargs={"ctrl_cost_weight": 0.1})
    broken = tmp_path / "arm"
    shutil.copytree(arm_checkpoint, broken)
    (broken / "arm.xml").unlink()
    with pytest.raises(CheckpointError, match=r"missing arm.xml, the MJCF file of its robot"):
        NeuralSimEnv(broken)
    with pytest.raises(UnknownNameError, match=r"no MJCF file at nowhere\.xml"):
        robot_spec("nowhere.xml")
