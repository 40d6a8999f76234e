"""The prediction benchmark: baselines, error curves, plot, Lyapunov check."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY

import neural_sim
from neural_sim.checkpoints import ABLATION_DIR, read_config
from neural_sim.cli import main
from neural_sim.errors import NeuralSimError
from neural_sim.model import ModelConfig
from neural_sim.pipeline.benchmark import PLOT_FILE, benchmark, write_benchmark
from neural_sim.pipeline.card import lyapunov_summary, model_card
from neural_sim.pipeline.chaos import trajectory_exponents
from neural_sim.pipeline.collect import Dataset
from neural_sim.pipeline.train import TrainConfig, train
from neural_sim.robots import robot_spec


@pytest.fixture(scope="module")
def with_ablation(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path, acrobot_data: Dataset) -> Path:
    """The tiny checkpoint plus a residual-architecture ablation trained on the same data."""
    folder = tmp_path_factory.mktemp("bench") / "ckpt"
    shutil.copytree(tiny_checkpoint, folder)
    config = TrainConfig(iterations=20, batch_size=64, eval_every=10, seed=5)
    train(acrobot_data, robot_spec("acrobot"), folder / ABLATION_DIR, ModelConfig(architecture="residual",
          residual=TINY), config=config, command="pytest-ablation", progress=False, log=lambda _: None)
    return folder


def test_benchmark_compares_model_baselines_and_ablation_on_the_same_windows(with_ablation: Path) -> None:
    results = benchmark(with_ablation, sequences=1, seed=9, horizons=(3, 16), windows_per_sequence=4,
                        lyapunov=False)
    assert results["ablation"]["architecture"] == "residual"
    assert results["ablation"]["command"] == "pytest-ablation"
    for row in results["horizons"].values():
        for prefix in ("", "hold_last_state_", "ablation_"):
            per_dim = row[f"{prefix}per_dimension"]
            assert len(per_dim) == 4
            # The overall MSE is the mean over dimensions of the per-dimension MSE.
            assert row[f"{prefix}mse" if prefix else "mse"] == pytest.approx(np.mean(per_dim), rel=1e-9)
        assert row["ablation_mse"] != row["mse"]
        # The path environments step gives the reference integrator's figures.
        assert row["fast_path_relative_difference"] < 0.01
        assert row["fast_path_mse"] == pytest.approx(row["mse"], rel=0.01)
    curves = results["error_vs_step"]
    assert curves["horizon"] == 16 and len(curves["model"]) == 16 and len(curves["ablation"]) == 16
    assert np.mean(curves["hold_last_state"]) == pytest.approx(results["horizons"]["16"]["hold_last_state_mse"])
    assert results["state_labels"] == ["qpos[0]", "qpos[1]", "qvel[0]", "qvel[1]"]
    assert results["fast_ms_per_step_batch1"] > 0


def test_an_ablation_of_another_robot_is_refused(with_ablation: Path) -> None:
    with pytest.raises(NeuralSimError, match="not of this checkpoint's robot 'acrobot'"):
        benchmark(with_ablation, sequences=1, seed=9, horizons=(3,), windows_per_sequence=2, lyapunov=False,
                  ablation=neural_sim.hub.resolve_checkpoint("pendulum"))


def test_write_puts_figures_plot_and_ablation_into_the_checkpoint(tmp_path: Path, with_ablation: Path) -> None:
    folder = tmp_path / "ckpt"
    shutil.copytree(with_ablation, folder)
    results = benchmark(folder, sequences=1, seed=9, horizons=(3, 16), windows_per_sequence=2, lyapunov=False,
                        command="pytest-bench")
    write_benchmark(folder, results)
    assert (folder / PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = (folder / "README.md").read_text()
    assert "ablation (residual) MSE" in card and "](benchmark.png)" in card and "pytest-ablation" in card
    assert read_config(folder).benchmark["error_vs_step"]["horizon"] == 16


def test_card_says_when_the_ablation_had_another_sample_budget(tmp_path: Path, with_ablation: Path) -> None:
    folder = tmp_path / "ckpt"
    shutil.copytree(with_ablation, folder)
    results = benchmark(folder, sequences=1, seed=9, horizons=(3,), windows_per_sequence=2, lyapunov=False)
    config = read_config(folder)
    for samples, like_for_like in ((results["ablation"]["samples"], True), (10**9, False)):
        training = {**config.training, "samples": samples}
        card = model_card(dataclasses.replace(config, training=training, benchmark=results))
        assert ("the same data with the same samples" in card) is like_for_like
        assert ("not a like-for-like comparison" in card) is not like_for_like


def test_benchmark_command_prints_baselines_and_writes_json_and_plot(
    tmp_path: Path, with_ablation: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json, out_png = tmp_path / "b.json", tmp_path / "b.png"
    argv = ["benchmark", str(with_ablation), "--sequences", "1", "--seed", "9", "--horizons", "3", "16",
            "--windows", "2", "--no-lyapunov", "--json", str(out_json), "--plot", str(out_png)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "ablation (residual)" in printed and "traced" in printed
    assert json.loads(out_json.read_text())["horizons"]["16"]["windows"] == 2
    assert out_png.stat().st_size > 1000


def test_lyapunov_check_reports_model_and_mujoco_with_standard_errors(tiny_checkpoint: Path) -> None:
    results = benchmark(tiny_checkpoint, sequences=1, seed=9, horizons=(3,), windows_per_sequence=2,
                        lyapunov_trajectories=3, lyapunov_steps=300)
    lyapunov = results["lyapunov"]
    assert lyapunov["trajectories"] == 3 and lyapunov["steps"] == 300
    assert np.isfinite(lyapunov["model"]) and np.isfinite(lyapunov["mujoco"])
    assert lyapunov["model"] != lyapunov["mujoco"]  # a 20-iteration model is not MuJoCo
    for key in ("model_standard_error", "mujoco_standard_error", "difference_standard_error"):
        assert lyapunov[key] > 0
    # The paired difference is the difference of the means (up to the rounding to 4 places).
    assert lyapunov["difference"] == pytest.approx(lyapunov["model"] - lyapunov["mujoco"], abs=2e-4)
    assert "+-" in lyapunov_summary(lyapunov) and "paired difference" in lyapunov_summary(lyapunov)


@pytest.mark.parametrize(("trajectories", "steps"), [(1, 300), (3, 200)])
def test_lyapunov_settings_it_cannot_use_are_refused_before_any_work(
    tiny_checkpoint: Path, trajectories: int, steps: int
) -> None:
    with pytest.raises(NeuralSimError, match=r"at least 2 trajectories .* more than 200 steps"):
        benchmark(tiny_checkpoint, sequences=1, seed=9, lyapunov_trajectories=trajectories, lyapunov_steps=steps)


def test_trajectory_exponents_are_one_per_trajectory() -> None:
    # Two decoupled linear maps with different rates: each trajectory recovers its own.
    dt = 0.1

    def step(states: np.ndarray, tangents: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rates = np.exp(np.array([[0.5], [-0.25]]) * dt)
        return states * rates, tangents * rates

    exponents = trajectory_exponents(step, np.ones((2, 2)), np.zeros((2, 400, 1)), dt)
    assert exponents == pytest.approx([0.5, -0.25], rel=1e-6)


def test_benettin_recovers_the_exponent_of_a_linear_map() -> None:
    # x' = diag(e^{0.5 dt}, e^{-dt}) x: largest exponent 0.5 per second.
    dt = 0.1
    rates = np.exp(np.array([0.5, -1.0]) * dt)

    def step(states: np.ndarray, tangents: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return states * rates, tangents * rates

    starts = np.ones((3, 2))
    assert trajectory_exponents(step, starts, np.zeros((3, 400, 1)), dt).mean() == pytest.approx(0.5, rel=1e-6)
    with pytest.raises(ValueError, match="must exceed"):
        trajectory_exponents(step, starts, np.zeros((3, 10, 1)), dt)


def test_model_tangents_match_autodiff(tiny_checkpoint: Path) -> None:
    from neural_sim.pipeline.chaos import model_tangent_step

    simulator = neural_sim.load(tiny_checkpoint)
    rng = np.random.default_rng(0)
    states, tangents = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    actions = rng.uniform(-1, 1, size=(3, 1))
    _, pushed = model_tangent_step(simulator)(states, tangents, actions)
    x = torch.as_tensor(states, dtype=torch.float64)
    u = torch.as_tensor(actions, dtype=torch.float64)
    simulator.field.double()
    _, exact = torch.func.jvp(lambda s: simulator.predict(s, u), (x,), (torch.as_tensor(tangents),))
    np.testing.assert_allclose(pushed, exact.detach().numpy(), rtol=1e-5, atol=1e-7)


def test_data_written_to_another_file_is_the_same_data_but_another_seed_is_not() -> None:
    from neural_sim.pipeline.card import same_data

    recorded = {"robot": "cheetah", "task": "run", "sequences": 500, "steps": 1000, "seed": 0, "protocol": "poisson",
                "command": "neural-sim collect cheetah --sequences 500 --steps 1000 --seed 0"}
    rewritten = {**recorded, "command": recorded["command"] + " --out data/cheetah.safetensors", "agent_sequences": 0,
                 "agents": []}
    assert same_data(recorded, rewritten)
    assert not same_data(recorded, {**rewritten, "seed": 1})
    assert not same_data(recorded, {**rewritten, "agent_sequences": 200})


def test_an_agent_that_drove_a_parents_data_is_counted_through_the_fine_tune_chain() -> None:
    from neural_sim.pipeline.card import sequences_driven_by

    agent = {"path": "real-seed0.zip", "sha256": "aaa", "command": "", "sequences": 300}
    other = {**agent, "sha256": "bbb", "sequences": 50}
    training = {"data": {"agents": [other]}, "init_from": {"data": {"agents": [agent]}, "init_from": None}}
    assert sequences_driven_by(training, "aaa") == 300
    assert sequences_driven_by(training, "bbb") == 50
    assert sequences_driven_by(training, "ccc") == 0
    assert sequences_driven_by({}, "aaa") == 0


def test_training_chain_lists_a_fine_tune_then_its_parents_newest_first() -> None:
    from neural_sim.pipeline.card import training_chain

    grandparent = {"command": "train a", "init_from": None}
    parent = {"command": "train b", "init_from": grandparent}
    training = {"command": "train c", "init_from": parent}
    assert [run["command"] for run in training_chain(training)] == ["train c", "train b", "train a"]
    assert training_chain({"command": "train a"}) == [{"command": "train a"}]
