"""Multi-stage training, resuming an interrupted run, and per-robot recipes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import TINY, TINY_MODEL
from safetensors.torch import load_file

from neural_sim import load
from neural_sim.cli import main
from neural_sim.errors import NeuralSimError
from neural_sim.model import ModelConfig
from neural_sim.model.dynamics import MoSimField
from neural_sim.pipeline.collect import Dataset
from neural_sim.pipeline.recipes import load_recipe, recipe_names, with_overrides
from neural_sim.pipeline.train import RUN_STATE_FILES, TRAINING_LOG, TrainConfig, train
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
