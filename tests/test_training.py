"""Multi-stage training, resuming an interrupted run, and per-robot recipes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import TINY, TINY_MODEL
from safetensors.torch import load_file, save_file

from neural_sim import load
from neural_sim.checkpoints import weights_fingerprint
from neural_sim.cli import main
from neural_sim.errors import NeuralSimError
from neural_sim.model import ModelConfig
from neural_sim.model.dynamics import MoSimField
from neural_sim.pipeline.collect import Dataset
from neural_sim.pipeline.recipes import load_recipe, recipe_names, with_overrides
from neural_sim.pipeline.train import (
    RUN_STATE_FILES,
    TRAINING_LOG,
    TrainConfig,
    _Sequences,
    one_step_loss,
    rollout_loss,
    train,
)
from neural_sim.robots import robot_spec

TWO_CORRECTORS = ModelConfig(position_encoder=TINY, state_encoder=TINY, action_encoder=TINY, correctors=(TINY, TINY))
QUIET = {"progress": False, "log": lambda _: None}


class _Interrupt(Exception):
    pass


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load(folder).field.state_dict()


def test_multi_stage_training_freezes_earlier_parts_and_adds_each_corrector(
    tmp_path: Path, acrobot_data: Dataset
) -> None:
    config = TrainConfig(iterations=30, stages=(10, 10, 10), batch_size=64, eval_every=5, seed=1)
    out, spec = tmp_path / "staged", robot_spec("acrobot")

    def stop_after_stage_zero(line: str) -> None:
        if line.startswith("iteration 10:"):
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train(acrobot_data, spec, out, TWO_CORRECTORS, config=config, progress=False, log=stop_after_stage_zero)
    stage_zero = {k[len("best."):]: v for k, v in load_file(str(out / RUN_STATE_FILES[1])).items()
                  if k.startswith("best.")}
    train(acrobot_data, spec, out, TWO_CORRECTORS, config=config, resume=True, **QUIET)

    field = load(out).field
    assert isinstance(field, MoSimField) and field.active_correctors == 2
    final = field.state_dict()
    predictor = [k for k in final if not k.startswith("correctors.")]
    assert predictor and all(torch.equal(final[k], stage_zero[k]) for k in predictor)
    assert any(not torch.equal(final[k], stage_zero[k]) for k in final if k.startswith("correctors."))
    training = json.loads((out / "config.json").read_text())["training"]
    assert [row["stage"] for row in training["history"]] == [0, 0, 1, 1, 2, 2]
    # Best-by-validation is kept across stages: the final error is the smallest seen.
    assert training["validation_mse_h16"] == min(row["val_mse_h16"] for row in training["history"])
    log = (out / TRAINING_LOG).read_text()
    assert "stage 0 (predictor)" in log and "stage 2 (corrector 2)" in log


def test_stage_zero_does_not_touch_the_correctors(tmp_path: Path, acrobot_data: Dataset) -> None:
    config = TrainConfig(iterations=11, stages=(10, 1), batch_size=64, eval_every=10, seed=1)
    model = ModelConfig(position_encoder=TINY, state_encoder=TINY, action_encoder=TINY, correctors=(TINY,))
    out = tmp_path / "s0"

    def stop_after_stage_zero(line: str) -> None:
        if line.startswith("iteration 10:"):
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train(acrobot_data, robot_spec("acrobot"), out, model, config=config, progress=False,
              log=stop_after_stage_zero)
    weights = _weights(out)
    assert all((weights[k] == 0).all() for k in ("correctors.0.output.weight", "correctors.0.output.bias"))


def test_an_interrupted_run_resumes_to_the_same_model(tmp_path: Path, acrobot_data: Dataset) -> None:
    config = TrainConfig(iterations=40, stages=(20, 20), batch_size=64, eval_every=5, seed=3)
    spec = robot_spec("acrobot")
    whole = train(acrobot_data, spec, tmp_path / "whole", TINY_MODEL, config=config,
                  **QUIET)
    assert not any((whole / name).exists() for name in RUN_STATE_FILES)

    interrupted = tmp_path / "interrupted"
    for stop_line in ("iteration 15:", "iteration 20:"):  # mid-stage and on a stage boundary
        def stop(line: str, stop_line: str = stop_line) -> None:
            if line.startswith(stop_line):
                raise _Interrupt

        with pytest.raises(_Interrupt):
            train(acrobot_data, spec, interrupted, TINY_MODEL, config=config, progress=False, log=stop,
                  resume=stop_line != "iteration 15:")
    assert all((interrupted / name).is_file() for name in RUN_STATE_FILES)
    with pytest.raises(NeuralSimError, match="pass --resume"):
        train(acrobot_data, spec, interrupted, TINY_MODEL, config=config, **QUIET)
    with pytest.raises(NeuralSimError, match="train_config differ"):
        other = TrainConfig(iterations=40, stages=(20, 20), batch_size=64, eval_every=5, seed=4)
        train(acrobot_data, spec, interrupted, TINY_MODEL, config=other, resume=True, **QUIET)

    train(acrobot_data, spec, interrupted, TINY_MODEL, config=config, resume=True, **QUIET)
    expected, resumed = _weights(whole), _weights(interrupted)
    assert all(torch.equal(expected[k], resumed[k]) for k in expected)
    history = json.loads((interrupted / "config.json").read_text())["training"]
    assert history["resumed_at_iterations"] == 20
    assert not any((interrupted / name).exists() for name in RUN_STATE_FILES)


def test_resume_without_an_interrupted_run_is_an_error(tmp_path: Path, acrobot_data: Dataset) -> None:
    with pytest.raises(NeuralSimError, match="nothing to resume"):
        train(acrobot_data, robot_spec("acrobot"), tmp_path / "new", TINY_MODEL,
              config=TrainConfig(iterations=2, eval_every=1), resume=True, **QUIET)


def test_stage_counts_must_match_the_correctors(tmp_path: Path, acrobot_data: Dataset) -> None:
    config = TrainConfig(iterations=20, stages=(10, 10))
    with pytest.raises(NeuralSimError, match=r"2 corrector\(s\) takes 3 stage lengths"):
        train(acrobot_data, robot_spec("acrobot"), tmp_path / "x", TWO_CORRECTORS, config=config, **QUIET)
    with pytest.raises(NeuralSimError, match="needs the mosim architecture"):
        train(acrobot_data, robot_spec("acrobot"), tmp_path / "y", ModelConfig(architecture="residual"),
              config=config, **QUIET)
    with pytest.raises(NeuralSimError, match="summing to iterations"):
        TrainConfig(iterations=5, stages=(10, 10))


def test_every_shipped_recipe_loads_and_names_a_known_robot() -> None:
    assert {"acrobot", "cheetah", "hopper", "reacher", "walker"} <= set(recipe_names())
    for name in recipe_names():
        recipe = load_recipe(name)
        robot_spec(recipe.robot)  # raises for an unknown robot
        assert recipe.train.iterations == (sum(recipe.train.stages) if recipe.train.stages else recipe.train.iterations)


def test_bad_recipes_are_reported(tmp_path: Path) -> None:
    with pytest.raises(NeuralSimError, match=r"unknown recipe 'spot'.*'acrobot'"):
        load_recipe("spot")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"robot": "acrobot", "train": {"iterationz": 5}}))
    with pytest.raises(NeuralSimError, match=r"unknown keys \['iterationz'\]"):
        load_recipe(bad)
    staged_file = tmp_path / "staged.json"
    staged_file.write_text(json.dumps({"robot": "hopper", "train": {"iterations": 30, "stages": [10, 20]}}))
    staged = load_recipe(staged_file)
    with pytest.raises(NeuralSimError, match="give --stages"):
        with_overrides(staged, iterations=100)


def test_train_command_takes_a_recipe_and_overrides(
    tmp_path: Path, acrobot_data: Dataset, capsys: pytest.CaptureFixture[str]
) -> None:
    data = acrobot_data.save(tmp_path / "data.safetensors")
    recipe = tmp_path / "tiny.json"
    recipe.write_text(json.dumps({
        "robot": "acrobot",
        "model": {"position_encoder": {"blocks": 1, "width": 16}, "state_encoder": {"blocks": 1, "width": 16},
                  "action_encoder": {"blocks": 0, "width": 8}, "correctors": [{"blocks": 1, "width": 16}]},
        "train": {"iterations": 1000, "stages": [500, 500], "batch_size": 32, "eval_every": 3},
    }))
    out = tmp_path / "ckpt"
    argv = ["train", "--recipe", str(recipe), "--data", str(data), "--out", str(out), "--stages", "3", "3"]
    assert main(argv) == 0
    training = json.loads((out / "config.json").read_text())["training"]
    assert training["train_config"]["stages"] == [3, 3] and training["train_config"]["iterations"] == 6
    assert training["train_config"]["batch_size"] == 32
    assert training["command"].startswith("neural-sim train --recipe")
    assert main(["train", "cheetah", "--recipe", str(recipe), "--out", str(out)]) == 2
    assert "is for robot 'acrobot', not 'cheetah'" in capsys.readouterr().err


def test_the_discrete_time_head_trains_and_is_recorded_in_config_and_card(
    tmp_path: Path, acrobot_data: Dataset
) -> None:
    data = acrobot_data.save(tmp_path / "data.safetensors")
    out = tmp_path / "euler"
    argv = ["train", "acrobot", "--data", str(data), "--out", str(out), "--architecture", "residual",
            "--integrator", "euler", "--substeps", "2", "--iterations", "4", "--batch-size", "16", "--eval-every", "2"]
    assert main(argv) == 0
    integrator = json.loads((out / "config.json").read_text())["simulator"]["integrator"]
    assert (integrator["method"], integrator["substeps"]) == ("euler", 2)
    assert "| integrator | euler, 2 substep(s) |" in (out / "README.md").read_text()
    simulator = load(out)
    states, actions = torch.zeros(3, simulator.state_size), torch.zeros(3, simulator.nu)
    with torch.no_grad():
        torch.testing.assert_close(simulator.fast_predict(states, actions), simulator.predict(states, actions))


def test_fine_tuning_starts_from_the_parent_and_records_it(
    tmp_path: Path, acrobot_data: Dataset, tiny_checkpoint: Path
) -> None:
    # With a zero learning rate the fine-tuned model must be its parent, bit for bit.
    config = TrainConfig(iterations=4, batch_size=8, eval_every=2, learning_rate=0.0, rollout_steps=5, seed=2)
    out = train(acrobot_data, robot_spec("acrobot"), tmp_path / "tuned", TINY_MODEL, config=config,
                init_from=tiny_checkpoint, **QUIET)
    parent, tuned = _weights(tiny_checkpoint), _weights(out)
    assert all(torch.equal(parent[k], tuned[k]) for k in parent)
    parent_config = json.loads((tiny_checkpoint / "config.json").read_text())
    config_json = json.loads((out / "config.json").read_text())
    assert config_json["simulator"]["normalisation"] == parent_config["simulator"]["normalisation"]
    training = config_json["training"]
    assert training["init_from"]["command"] == "pytest"
    assert training["init_from"]["weights_sha256"] == weights_fingerprint(tiny_checkpoint)
    assert "history" not in training["init_from"]
    # Samples count both runs; a rollout window of 5 steps costs 5 samples.
    assert training["samples"] == parent_config["training"]["samples"] + 4 * 8 * 5
    assert training["history"][0]["iteration"] == 0  # the parent itself was validated first
    card = (out / "README.md").read_text()
    assert f"fine-tuned from (weights {weights_fingerprint(tiny_checkpoint)}): `pytest`" in card


def test_fine_tuning_lowers_the_validation_error_of_a_briefly_trained_parent(
    tmp_path: Path, acrobot_data: Dataset, tiny_checkpoint: Path
) -> None:
    config = TrainConfig(iterations=30, batch_size=16, eval_every=10, learning_rate=3e-3, rollout_steps=4, seed=2)
    out = train(acrobot_data, robot_spec("acrobot"), tmp_path / "tuned", TINY_MODEL, config=config,
                init_from=tiny_checkpoint, **QUIET)
    history = json.loads((out / "config.json").read_text())["training"]["history"]
    start, best = history[0]["val_mse_h16"], min(row["val_mse_h16"] for row in history)
    assert best < start


def test_fine_tuning_refuses_another_architecture_or_robot(
    tmp_path: Path, acrobot_data: Dataset, tiny_checkpoint: Path
) -> None:
    config = TrainConfig(iterations=2, eval_every=1)
    with pytest.raises(NeuralSimError, match="another architecture"):
        train(acrobot_data, robot_spec("acrobot"), tmp_path / "a", ModelConfig(architecture="residual"),
              config=config, init_from=tiny_checkpoint, **QUIET)
    with pytest.raises(NeuralSimError, match="not of robot 'cartpole'"):
        train(acrobot_data, robot_spec("cartpole"), tmp_path / "b", TINY_MODEL, config=config,
              init_from=tiny_checkpoint, **QUIET)
    with pytest.raises(NeuralSimError, match="rollout_steps must be >= 1"):
        TrainConfig(rollout_steps=0)


def test_rollout_loss_of_one_step_is_the_one_step_loss_and_windows_follow_the_data(acrobot_data: Dataset) -> None:
    simulator = load("acrobot")
    sequences = _Sequences(acrobot_data, 3)
    starts, actions, targets = sequences.sample(5, torch.Generator().manual_seed(0))
    assert actions.shape == (5, 3, 1) and targets.shape == (5, 3, 4)
    states = torch.as_tensor(acrobot_data.states, dtype=torch.float32)
    data_actions = torch.as_tensor(acrobot_data.actions, dtype=torch.float32)
    for start, action, target in zip(starts, actions, targets, strict=True):
        # Each window is a contiguous piece of one training sequence.
        (n, t), = torch.nonzero((states == start).all(-1)).tolist()
        assert torch.equal(action, data_actions[n, t : t + 3]) and torch.equal(target, states[n, t + 1 : t + 4])
    scale = torch.ones(4)
    with torch.no_grad():
        assert rollout_loss(simulator, starts, actions[:, :1], targets[:, :1], scale) == pytest.approx(
            float(one_step_loss(simulator, starts, actions[:, 0], targets[:, 0], scale)))


def test_a_fine_tuning_recipe_needs_its_parent_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert load_recipe("cheetah-rollout").fine_tunes == "cheetah"
    assert main(["train", "--recipe", "cheetah-rollout", "--out", str(tmp_path / "x")]) == 2
    error = capsys.readouterr().err
    assert "fine-tunes a checkpoint of recipe 'cheetah': give that checkpoint with --init-from" in error
    assert not (tmp_path / "x").exists()


def test_a_parent_whose_rollouts_diverge_does_not_stay_best(
    tmp_path: Path, acrobot_data: Dataset, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import neural_sim.pipeline.train as train_module

    real = train_module.rollout_errors
    calls = []

    def diverging_first(*args: object, **kwargs: object) -> torch.Tensor:
        errors = real(*args, **kwargs)  # type: ignore[arg-type]
        calls.append(1)
        return errors * float("nan") if len(calls) == 1 else errors  # the parent's validation is NaN

    monkeypatch.setattr(train_module, "rollout_errors", diverging_first)
    config = TrainConfig(iterations=4, batch_size=8, eval_every=2, learning_rate=1e-3, rollout_steps=3, seed=2)
    out = train(acrobot_data, robot_spec("acrobot"), tmp_path / "tuned", TINY_MODEL, config=config,
                init_from=tiny_checkpoint, **QUIET)
    training = json.loads((out / "config.json").read_text())["training"]
    assert training["best_iteration"] > 0
    parent, tuned = _weights(tiny_checkpoint), _weights(out)
    assert any(not torch.equal(parent[k], tuned[k]) for k in parent)


def test_a_student_learns_its_teachers_predictions_not_the_data(
    tmp_path: Path, acrobot_data: Dataset, checkpoint_copy: Path
) -> None:
    # A teacher that predicts no acceleration at all: zero its network's output layer.
    weights = load_file(str(checkpoint_copy / "model.safetensors"))
    output_layers = {k for k in weights if ".output." in k}
    assert output_layers
    save_file({k: torch.zeros_like(v) if k in output_layers else v for k, v in weights.items()},
              str(checkpoint_copy / "model.safetensors"))
    teacher = load(checkpoint_copy)
    spec = robot_spec("acrobot")
    config = TrainConfig(iterations=150, batch_size=64, eval_every=150, learning_rate=3e-3, seed=3)
    student = load(train(acrobot_data, spec, tmp_path / "student", TINY_MODEL, config=config, teacher=checkpoint_copy,
                         **QUIET))
    plain = load(train(acrobot_data, spec, tmp_path / "plain", TINY_MODEL, config=config, **QUIET))
    starts = torch.as_tensor(acrobot_data.states[:, :-1].reshape(-1, 4), dtype=torch.float32)
    actions = torch.as_tensor(acrobot_data.actions.reshape(-1, 1), dtype=torch.float32)
    with torch.no_grad():
        wanted = teacher.predict(starts, actions)
        assert ((student.predict(starts, actions) - wanted) ** 2).mean() < 0.2 * (
            (plain.predict(starts, actions) - wanted) ** 2).mean()
    training = json.loads((tmp_path / "student" / "config.json").read_text())["training"]
    assert training["teacher"]["weights_sha256"] == weights_fingerprint(checkpoint_copy)
    assert "distilled from (weights" in (tmp_path / "student" / "README.md").read_text()
    with pytest.raises(NeuralSimError, match=r"teacher .* is a model of 'acrobot', not of robot 'cartpole'"):
        train(acrobot_data, robot_spec("cartpole"), tmp_path / "x", TINY_MODEL, config=config, teacher=checkpoint_copy,
              **QUIET)


def test_a_distilling_recipe_needs_its_teacher_checkpoint(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert load_recipe("cheetah-student-rollout").distills == "cheetah-rollout"
    argv = ["train", "--recipe", "cheetah-student-rollout", "--init-from", str(tiny_checkpoint), "--out",
            str(tmp_path / "x")]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert ("learns the predictions of a checkpoint of recipe 'cheetah-rollout': give that checkpoint with "
            "--teacher") in error
    assert not (tmp_path / "x").exists()
