"""Data collection, training and benchmarking: seeded, reproducible, recorded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import neural_sim
from neural_sim.envs.single import NeuralSimEnv
from neural_sim.errors import NeuralSimError, UnknownNameError
from neural_sim.model import ModelConfig, NetworkConfig, Simulator
from neural_sim.pipeline.benchmark import benchmark, write_benchmark
from neural_sim.pipeline.collect import SWITCH_PROBABILITY, ZERO_PROBABILITY, Dataset, collect, poisson_actions
from neural_sim.pipeline.rollout_errors import hold_last_state, rollout_errors, sample_windows
from neural_sim.pipeline.train import TrainConfig, train
from neural_sim.robots import robot_spec

TINY = NetworkConfig(1, 16)


def test_poisson_actions_follow_the_papers_protocol() -> None:
    rng = np.random.default_rng(0)
    low, high = np.array([-1.0, -2.0]), np.array([1.0, 2.0])
    actions = poisson_actions(rng, 200_000, low, high)
    changes = np.any(actions[1:] != actions[:-1], axis=1)
    # A switch re-draws; two consecutive zero draws show no change, so the observed rate is
    # a bit below SWITCH_PROBABILITY.
    expected = SWITCH_PROBABILITY * (1 - ZERO_PROBABILITY**2)
    assert changes.mean() == pytest.approx(expected, abs=0.005)
    zero_share = np.all(actions == 0, axis=1).mean()
    assert zero_share == pytest.approx(ZERO_PROBABILITY, abs=0.01)
    assert (actions >= low).all() and (actions <= high).all()


def test_collection_is_reproducible_from_its_seed(acrobot_data: Dataset) -> None:
    again = collect("acrobot", sequences=6, steps=150, seed=123, command="pytest")
    np.testing.assert_array_equal(again.states, acrobot_data.states)
    np.testing.assert_array_equal(again.actions, acrobot_data.actions)
    other = collect("acrobot", sequences=1, steps=150, seed=124)
    assert not np.array_equal(other.states[0], acrobot_data.states[0])


def test_collected_states_follow_the_real_dynamics(acrobot_data: Dataset) -> None:
    oracle = NeuralSimEnv("acrobot", backend="physics")
    oracle.reset(options={"state": acrobot_data.states[2, 0]})
    for t in range(20):
        oracle.step(acrobot_data.actions[2, t])
    np.testing.assert_array_equal(oracle.state, acrobot_data.states[2, 20])


def test_dataset_round_trips_through_safetensors(tmp_path: Path, acrobot_data: Dataset) -> None:
    path = acrobot_data.save(tmp_path / "data.safetensors")
    loaded = Dataset.load(path)
    np.testing.assert_array_equal(loaded.states, acrobot_data.states)
    assert loaded.info == acrobot_data.info


def test_unreadable_dataset_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"garbage")
    with pytest.raises(NeuralSimError, match="cannot read data set"):
        Dataset.load(path)


def test_collecting_an_unknown_robot_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown robot 'spot'.*'acrobot'"):
        collect("spot", sequences=1)


def test_windows_start_after_steady_state_and_match_the_data(acrobot_data: Dataset) -> None:
    windows = sample_windows(acrobot_data, horizon=16, windows_per_sequence=5, seed=0)
    assert windows.actions.shape == (30, 16, 1) and windows.targets.shape == (30, 16, 4)
    # Each target is the state after the action at the same index: the hold-last-state
    # baseline's error at step 0 is the first one-step change, never zero for acrobot.
    assert (rollout_errors(hold_last_state, windows)[:, 0].sum(-1) > 0).all()
    with pytest.raises(NeuralSimError, match="too short"):
        sample_windows(acrobot_data, horizon=100, windows_per_sequence=1, seed=0)


def test_training_beats_the_untrained_model_and_keeps_the_best(tmp_path: Path) -> None:
    data = collect("pendulum", sequences=4, steps=140, seed=8)
    model = ModelConfig(position_encoder=TINY, state_encoder=TINY, action_encoder=TINY, correctors=(TINY,))
    config = TrainConfig(iterations=150, batch_size=128, learning_rate=3e-3, eval_every=50, seed=1)
    folder = train(data, robot_spec("pendulum"), tmp_path / "p", model, config=config, progress=False,
                   log=lambda _: None)
    trained = neural_sim.load(folder)
    untrained = Simulator(trained.config)
    windows = sample_windows(data, horizon=16, windows_per_sequence=8, seed=0)
    trained_mse = float(rollout_errors(trained.predict_rollout, windows).mean())
    untrained_mse = float(rollout_errors(untrained.predict_rollout, windows).mean())
    assert trained_mse < 0.2 * untrained_mse
    record = neural_sim.checkpoints.read_config(folder).training
    best = min(record["history"], key=lambda row: row["val_mse_h16"])
    assert record["best_iteration"] == best["iteration"] and record["complete"] is True


def test_benchmark_reports_each_horizon_and_refuses_the_training_seed(checkpoint_copy: Path) -> None:
    with pytest.raises(NeuralSimError, match="seed of this checkpoint's training data"):
        benchmark(checkpoint_copy, sequences=1, seed=123)
    results = benchmark(checkpoint_copy, sequences=1, seed=9, horizons=(3, 16), windows_per_sequence=4,
                        command="pytest-bench", lyapunov_trajectories=2, lyapunov_steps=250)
    assert set(results["horizons"]) == {"3", "16"}
    for row in results["horizons"].values():
        assert row["mse"] >= 0 and row["hold_last_state_mse"] > 0 and row["windows"] == 4
    write_benchmark(checkpoint_copy, results)
    assert neural_sim.checkpoints.read_config(checkpoint_copy).benchmark["command"] == "pytest-bench"
    assert "pytest-bench" in (checkpoint_copy / "README.md").read_text()


def test_training_that_keeps_diverging_stops_with_a_clear_error(tmp_path: Path) -> None:
    data = collect("pendulum", sequences=3, steps=130, seed=8)
    data.states[:] = np.inf  # every batch overflows
    config = TrainConfig(iterations=300, batch_size=16, eval_every=1000, seed=1)
    model = ModelConfig(position_encoder=TINY, state_encoder=TINY, action_encoder=TINY, correctors=())
    with pytest.raises(NeuralSimError, match="training diverged: 100 non-finite steps in a row"):
        train(data, robot_spec("pendulum"), tmp_path / "x", model, config=config, progress=False, log=lambda _: None)
