"""The ``neural-sim`` command: wiring and error reporting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neural_sim.checkpoints import read_config
from neural_sim.cli import main
from neural_sim.pipeline.collect import Dataset


def test_info_summarises_a_shipped_checkpoint(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "acrobot"]) == 0
    summary = capsys.readouterr().out
    assert summary.startswith("acrobot: a learned dm_control 'acrobot'")
    assert "NeuralSim/Acrobot-v0" in summary and "nq 2, nv 2, nu 1" in summary and "H=16" in summary


def test_info_spells_out_a_floating_base_robots_rotation_joints(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "quadruped"]) == 0
    summary = capsys.readouterr().out
    assert "rotation      qpos[0:7] / qvel[0:6]: free joint 'root'" in summary
    assert "NeuralSim/quadruped-walk-v0" in summary
    assert "activations   12 actuator activations (filter), model inputs beside the action" in summary


def test_info_json_describes_a_shipped_checkpoint(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "acrobot", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["robot"]["name"] == "acrobot"
    assert "NeuralSim/Acrobot-v0" in info["env_ids"]
    assert info["layout"]["nq"] == 2


def test_errors_are_reported_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "nosuchbot"]) == 2
    assert "neural-sim: error: no checkpoint called 'nosuchbot'" in capsys.readouterr().err


def test_collect_then_train_records_both_commands(tmp_path: Path) -> None:
    data = tmp_path / "d.safetensors"
    assert main(["collect", "pendulum", "--sequences", "3", "--steps", "130", "--seed", "4", "--out", str(data)]) == 0
    assert Dataset.load(data).info.command.startswith("neural-sim collect pendulum")
    out = tmp_path / "ckpt"
    argv = ["train", "pendulum", "--data", str(data), "--out", str(out), "--iterations", "4", "--eval-every", "2",
            "--batch-size", "16", "--architecture", "residual"]
    assert main(argv) == 0
    config = read_config(out)
    assert config.training["command"] == "neural-sim " + " ".join(argv)
    assert config.training["data"]["command"].startswith("neural-sim collect pendulum")
    assert config.simulator.model.architecture == "residual"


def test_training_on_another_robots_data_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "d.safetensors"
    main(["collect", "pendulum", "--sequences", "1", "--steps", "5", "--out", str(data)])
    assert main(["train", "acrobot", "--data", str(data), "--out", str(tmp_path / "x")]) == 2
    assert "holds data of robot 'pendulum'" in capsys.readouterr().err


def test_bench_speed_reports_latency_update_cost_and_throughput(tmp_path: Path) -> None:
    out = tmp_path / "speed.json"
    argv = ["bench-speed", "NeuralSim/Pendulum-v0", "--batch-sizes", "2", "--repeats", "1", "--shimmy-max-envs", "2",
            "--bfloat16", "--json", str(out)]
    assert main(argv) == 0
    (result,) = json.loads(out.read_text())
    assert result["mirror_id"] == "dm_control/pendulum-swingup-v0"
    assert result["single_env_ms"]["neural"] > 0 and result["single_env_ms"]["shimmy"] > 0
    assert result["sac_update_ms"] > 0
    row = result["batched"]["2"]
    assert row["neural_steps_per_s"] > 0 and row["shimmy_sync_steps_per_s"] > 0
    assert row["ratio"] == row["neural_steps_per_s"] / row["shimmy_sync_steps_per_s"]
    assert row["neural_bfloat16_steps_per_s"] > 0  # the same env with bfloat16 hidden layers, side by side
    # EnvPool (a dev dependency on Linux) runs the same real task side by side, memory per env included.
    assert result["envpool_id"] == "PendulumSwingup-v1"
    assert row["envpool_steps_per_s"] > 0 and row["envpool_mib_per_env"] is not None
    assert row["neural_over_envpool"] == row["neural_steps_per_s"] / row["envpool_steps_per_s"]
    assert row["neural_mib_per_env"] is not None


def test_benchmark_refuses_to_write_figures_of_another_precision(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["benchmark", "cheetah", "--precision", "bfloat16", "--write"]) == 2
    assert "--write stores the float32 figures a card shows" in capsys.readouterr().err


def test_bench_speed_refuses_an_unknown_id(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench-speed", "NeuralSim/Nope-v0"]) == 2
    assert "unknown env id 'NeuralSim/Nope-v0'" in capsys.readouterr().err


def test_envpool_ids_are_found_for_the_real_tasks_neural_sim_mirrors() -> None:
    from neural_sim.pipeline.speed import envpool_id

    assert envpool_id("dm_control/cheetah-run-v0") == "CheetahRun-v1"
    assert envpool_id("dm_control/acrobot-swingup_sparse-v0") == "AcrobotSwingupSparse-v1"
    assert envpool_id("HalfCheetah-v5") == "HalfCheetah-v5"
    assert envpool_id("dm_control/nobody-nothing-v0") is None
