"""Actuator activations (MuJoCo ``act``): MuJoCo's rule, model inputs, data, training, envs."""

from __future__ import annotations

import dataclasses
import shutil
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from dm_control.suite import base
from gymnasium.utils.env_checker import check_env

from neural_sim.checkpoints import read_config, save_density
from neural_sim.envs.single import NeuralSimEnv
from neural_sim.envs.vector import NeuralSimVectorEnv
from neural_sim.errors import InputError, NeuralSimError
from neural_sim.model.activations import advance_numpy
from neural_sim.model.config import IntegratorConfig, ModelConfig, NetworkConfig, SimulatorConfig, default_normalisation
from neural_sim.model.simulator import Simulator
from neural_sim.pipeline.benchmark import benchmark
from neural_sim.pipeline.collect import Dataset, collect
from neural_sim.pipeline.density_benchmark import benchmark_density
from neural_sim.pipeline.density_fit import DensityFitConfig, fit_density
from neural_sim.pipeline.train import TrainConfig, train
from neural_sim.robots import collection_bridge, robot_spec

# Two position servos whose targets follow the control: one through an Euler filter, one
# through the exact exponential filter; controls are clamped to [-1, 1].
SERVO_ARM = """
<mujoco model="servo_arm">
  <option timestep="0.01"/>
  <worldbody>
    <body name="upper" pos="0 0 1">
      <joint name="shoulder" type="hinge" axis="0 1 0" limited="true" range="-2 2" damping="0.2"/>
      <geom type="capsule" fromto="0 0 0 0.5 0 0" size="0.05" mass="1"/>
      <body name="lower" pos="0.5 0 0">
        <joint name="elbow" type="hinge" axis="0 1 0" limited="true" range="-2 2" damping="0.1"/>
        <geom type="capsule" fromto="0 0 0 0.5 0 0" size="0.04" mass="0.5"/>
      </body>
    </body>
  </worldbody>
  <actuator>
    <general joint="shoulder" dyntype="filter" dynprm="0.05" gainprm="20" biastype="affine" biasprm="0 -20 -1"
             ctrllimited="true" ctrlrange="-1 1"/>
    <general joint="elbow" dyntype="filterexact" dynprm="0.1" gainprm="10" biastype="affine" biasprm="0 -10 -0.5"
             ctrllimited="true" ctrlrange="-1 1"/>
  </actuator>
</mujoco>
"""
TINY = ModelConfig(architecture="residual", residual=NetworkConfig(1, 32))


class Reach(base.Task):
    """Hold the arm out: the user's task for the servo arm."""

    def get_observation(self, physics):  # type: ignore[no-untyped-def]
        return OrderedDict(position=physics.data.qpos.copy(), velocity=physics.data.qvel.copy(),
                           targets=physics.data.act.copy())

    def get_reward(self, physics):  # type: ignore[no-untyped-def]
        return float(-abs(physics.data.qpos[0]))


@pytest.fixture(scope="module")
def servo_arm(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("servo") / "servo_arm.xml"
    path.write_text(SERVO_ARM)
    return str(path)


@pytest.fixture(scope="module")
def servo_checkpoint(servo_arm: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = collect(servo_arm, sequences=6, steps=150, seed=0, command="pytest")
    out = tmp_path_factory.mktemp("servo") / "model"
    train(data, robot_spec(servo_arm), out, TINY, config=TrainConfig(iterations=20, batch_size=64, eval_every=10),
          command="pytest", progress=False, log=lambda _: None)
    return out


def _simulator(servo_arm: str) -> Simulator:
    layout = robot_spec(servo_arm).layout
    torch.manual_seed(0)
    return Simulator(SimulatorConfig(layout, TINY, IntegratorConfig(), default_normalisation(layout)))


def test_the_layout_reads_the_activation_rule_from_the_mujoco_model(servo_arm: str) -> None:
    spec = robot_spec(servo_arm).layout.activations
    assert spec is not None and spec.size == 2
    assert spec.kinds == ("filter", "filterexact") and spec.time_constants == (0.05, 0.1)
    assert spec.control_limited == (True, True) and (spec.low, spec.high) == ((-1.0, -1.0), (1.0, 1.0))
    assert robot_spec(servo_arm).layout.input_size == 4
    assert robot_spec("cheetah").layout.activations is None


def test_the_model_rule_advances_activations_as_mujoco_does(servo_arm: str) -> None:
    real, _, _ = collection_bridge(servo_arm, None, 0)
    sim, spec = _simulator(servo_arm), robot_spec(servo_arm).layout.activations
    assert spec is not None
    real.reset_random()
    exact, public = np.zeros(2), np.zeros(2, dtype=np.float32)
    for action in np.random.default_rng(0).uniform(-1.5, 1.5, size=(30, 2)):  # some beyond the range: clamped
        real.step_physics(action)
        exact = advance_numpy(spec, exact, action)
        public = sim.next_activations(public, action.astype(np.float32))  # float32 in, float32 out
        np.testing.assert_allclose(exact, real.activations, rtol=0, atol=1e-12)
        np.testing.assert_allclose(public, real.activations, rtol=0, atol=1e-6)


def test_the_model_takes_activations_beside_the_action(servo_arm: str) -> None:
    sim = _simulator(servo_arm)
    states, actions = np.zeros((3, 4)), np.full((3, 2), 0.5)
    np.testing.assert_array_equal(sim.step(states, actions), sim.step(states, actions, np.zeros((3, 2))))
    assert not np.allclose(sim.step(states, actions, np.full((3, 2), 0.9)), sim.step(states, actions))
    # A rollout advances them by the rule from the given start.
    start, sequence = np.full((3, 2), 0.3), np.random.default_rng(1).uniform(-1, 1, size=(3, 5, 2))
    rolled = sim.rollout(states, sequence, start)
    state, act = states, start
    for t in range(5):
        state = sim.step(state, sequence[:, t], act)
        act = sim.next_activations(act, sequence[:, t])
        np.testing.assert_allclose(rolled[:, t], state, rtol=0, atol=1e-5)
    with pytest.raises(InputError, match=r"activations must have shape \[3, 2\] \(na=2\)"):
        sim.step(states, actions, np.zeros(2))
    with pytest.raises(InputError, match="activations contain NaN"):
        sim.step(states, actions, np.full((3, 2), np.nan))
    plain = Simulator(SimulatorConfig(robot_spec("pendulum").layout, TINY, IntegratorConfig(),
                                      default_normalisation(robot_spec("pendulum").layout)))
    with pytest.raises(InputError, match="takes no actuator activations"):
        plain.step(np.zeros(2), np.zeros(1), np.zeros(1))


def test_collected_data_records_activations_and_models_read_them_as_inputs(servo_arm: str, tmp_path: Path) -> None:
    data = collect(servo_arm, sequences=2, steps=10, seed=0, command="pytest")
    assert data.activations is not None and data.activations.shape == (2, 11, 2)
    assert not data.activations[:, 0].any()  # episodes start at rest
    sim = _simulator(servo_arm)
    np.testing.assert_allclose(data.activations[:, 1], sim.next_activations(data.activations[:, 0], data.actions[:, 0]),
                               rtol=0, atol=1e-12)
    again = Dataset.load(data.save(tmp_path / "data.safetensors"))
    assert again.activations is not None
    np.testing.assert_array_equal(again.activations, data.activations)
    inputs = data.model_inputs(2)
    np.testing.assert_array_equal(inputs[..., 2:], data.activations[:, :-1])
    with pytest.raises(NeuralSimError, match="takes 2 actuator activations per step but this data set records none"):
        dataclasses.replace(data, activations=None).model_inputs(2)


def test_envs_of_a_robot_with_activations_feed_them_to_the_model(servo_checkpoint: Path) -> None:
    env = NeuralSimEnv(checkpoint=str(servo_checkpoint), task=Reach())
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=0)
    sim, activations = env.simulator, np.zeros(2)
    for action in np.random.default_rng(0).uniform(-1, 1, size=(8, 2)).astype(np.float32):
        expected = sim.step(info["state"].astype(np.float32), action, activations.astype(np.float32))
        obs, _, _, _, info = env.step(action)
        np.testing.assert_allclose(info["state"], expected, rtol=0, atol=1e-5)
        activations = sim.next_activations(activations, action.astype(np.float64))
        np.testing.assert_allclose(obs["targets"], activations, rtol=0, atol=1e-6)
    envs = NeuralSimVectorEnv(2, checkpoint=str(servo_checkpoint), task=Reach(), max_episode_steps=50)
    _, infos = envs.reset(seed=0)
    acts = np.zeros((2, 2))
    for action in np.random.default_rng(1).uniform(-1, 1, size=(5, 2, 2)).astype(np.float32):
        expected = sim.step(infos["state"].astype(np.float32), action, acts.astype(np.float32))
        _, _, _, _, infos = envs.step(action)
        np.testing.assert_allclose(infos["state"], expected, rtol=0, atol=1e-5)
        acts = sim.next_activations(acts, action.astype(np.float64))


def test_the_benchmark_rolls_a_model_with_activations_through_its_own_inputs(servo_checkpoint: Path) -> None:
    report = benchmark(servo_checkpoint, sequences=2, seed=1, horizons=(3, 16), windows_per_sequence=4)
    for row in report["horizons"].values():
        assert np.isfinite(row["mse"]) and row["fast_path_relative_difference"] < 1e-3
    assert "activations" in report["lyapunov_skipped"]


def test_a_robot_with_unsupported_activation_dynamics_is_refused(tmp_path: Path) -> None:
    muscle = SERVO_ARM.replace('dyntype="filterexact" dynprm="0.1"', 'dyntype="muscle"')
    path = tmp_path / "muscle_arm.xml"
    path.write_text(muscle)
    with pytest.raises(InputError, match=r"'muscle_arm.xml': actuator activation dynamics \['muscle'\] are not supp"):
        collection_bridge(str(path), None, 0)


def test_the_density_benchmark_scores_a_model_with_activations(servo_arm: str, servo_checkpoint: Path,
                                                               tmp_path: Path) -> None:
    folder = tmp_path / "with_density"
    shutil.copytree(servo_checkpoint, folder)
    data = collect(servo_arm, sequences=6, steps=150, seed=0, command="pytest")
    fitted = fit_density(data, read_config(folder).simulator,
                         DensityFitConfig(kind="maf", transforms=2, hidden=(16,), iterations=50, batch_size=256),
                         command="pytest", log=lambda _: None)
    save_density(folder, fitted)
    results = benchmark_density(folder, sequences=1, seed=2, rows=300,
                                num_envs=8, timing_steps=30)
    assert all(0.0 <= v <= 1.0 for v in results["auroc"].values())
    assert all(np.isfinite(v) for v in results["median_one_step_mse"].values())
