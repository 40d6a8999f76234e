"""Density model: deterministic log-density, calibrated penalty, env integration, storage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from neural_sim.checkpoints import load_density, read_config, save_density, shipped_checkpoints_dir
from neural_sim.density import DensityModel, calibrate
from neural_sim.envs.single import NeuralSimEnv
from neural_sim.errors import CheckpointError, InputError
from neural_sim.pipeline.collect import Dataset
from neural_sim.pipeline.density_benchmark import auroc, benchmark_density
from neural_sim.pipeline.density_fit import DensityFitConfig, fit_density


@pytest.fixture(scope="session")
def density_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path,
                       acrobot_data: Dataset) -> Path:
    """The tiny checkpoint plus a briefly fitted density model."""
    folder = tmp_path_factory.mktemp("dens") / "ckpt"
    shutil.copytree(tiny_checkpoint, folder)
    config = DensityFitConfig(kind="maf", transforms=2, hidden=(16,), iterations=150, batch_size=256)
    density = fit_density(acrobot_data, read_config(folder).simulator, config, command="pytest-density",
                          log=lambda _: None)
    save_density(folder, density)
    return folder


def test_calibration_puts_the_penalty_scale_on_held_out_data() -> None:
    values = np.random.default_rng(0).normal(10.0, 2.0, size=100_000)
    c, k, quantiles = calibrate(values)
    assert c == pytest.approx(10.0 - 2.326 * 2.0, abs=0.05)  # the 1% quantile
    assert k == pytest.approx((np.median(values) - c) / 4, rel=1e-9)
    assert quantiles["q50"] == pytest.approx(10.0, abs=0.05)


def test_log_density_is_deterministic_and_the_penalty_lies_in_its_range(density_checkpoint: Path) -> None:
    density = load_density(density_checkpoint, read_config(density_checkpoint))
    states = torch.randn(64, 4) * torch.tensor([1.0, 1.0, 20.0, 20.0])
    actions = torch.rand(64, 1) * 2 - 1
    with torch.no_grad():
        first, second = density.log_density(states, actions), density.log_density(states, actions)
        penalty = density.penalty(first)
    assert torch.equal(first, second)
    # (-1, 0) mathematically; far from the data the sigmoid underflows to exactly -1.
    assert ((penalty >= -1) & (penalty < 0)).all()


def test_the_single_envs_float_penalty_equals_the_tensor_penalty(density_checkpoint: Path) -> None:
    density = load_density(density_checkpoint, read_config(density_checkpoint))
    c, k = density.config.c, density.config.k
    values = [-1e9, c - 60 * k, c - k, c, c + 1e-9, c + k, c + 60 * k, 1e9]
    expected = density.penalty(torch.tensor(values, dtype=torch.float64)).tolist()
    found = [density.penalty_value(v) for v in values]
    np.testing.assert_allclose(found, expected, rtol=1e-12, atol=1e-15)
    assert found[0] == -1.0 and found[-1] == 0.0 and found[3] == -0.5


def test_familiar_inputs_score_higher_than_far_away_ones(density_checkpoint: Path, acrobot_data: Dataset) -> None:
    density = load_density(density_checkpoint, read_config(density_checkpoint))
    states = torch.as_tensor(acrobot_data.states[:, 100:140].reshape(-1, 4), dtype=torch.float32)
    actions = torch.as_tensor(acrobot_data.actions[:, 100:140].reshape(-1, 1), dtype=torch.float32)
    far = states.clone()
    far[:, 2:] += 60.0  # velocities far beyond anything in the data
    with torch.no_grad():
        assert auroc(density.log_density(states, actions).numpy(), density.log_density(far, actions).numpy()) > 0.95


def test_env_reward_adds_the_weighted_penalty_and_reports_its_terms(density_checkpoint: Path) -> None:
    plain = NeuralSimEnv(density_checkpoint)
    penalised = gym.make("NeuralSim/Acrobot-v0", checkpoint=str(density_checkpoint), density_penalty=2.0)
    plain.reset(seed=1)
    penalised.reset(seed=1)
    for _ in range(5):
        _, reward_plain, *_ = plain.step(np.array([0.3]))
        _, reward, _, _, info = penalised.step(np.array([0.3]))
        assert info["task_reward"] == reward_plain
        assert -1 < info["penalty"] < 0 and np.isfinite(info["log_density"])
        assert reward == pytest.approx(reward_plain + 2.0 * info["penalty"])


@pytest.mark.parametrize("integrator", [None, "dopri5"])  # one traced graph; two separate calls
def test_penalised_env_steps_the_same_states_and_logs_the_eager_log_density(density_checkpoint: Path,
                                                                              integrator: str | None) -> None:
    plain = NeuralSimEnv(density_checkpoint, integrator=integrator)
    penalised = NeuralSimEnv(density_checkpoint, integrator=integrator, density_penalty=1.0)
    density = load_density(density_checkpoint, read_config(density_checkpoint))
    state = plain.reset(seed=3)[1]["state"]
    np.testing.assert_array_equal(penalised.reset(seed=3)[1]["state"], state)
    for action in np.linspace(-1, 1, 6)[:, None]:
        with torch.no_grad():
            expected = density.log_density(torch.tensor(state[None], dtype=torch.float32),
                                           torch.tensor(action[None], dtype=torch.float32)).item()
        info = penalised.step(action)[4]
        state = plain.step(action)[4]["state"]
        np.testing.assert_allclose(info["state"], state, rtol=1e-6, atol=1e-6)
        assert info["log_density"] == pytest.approx(expected, rel=1e-5, abs=1e-4)


def test_penalty_is_off_by_default_and_bad_weights_are_refused(density_checkpoint: Path) -> None:
    env = NeuralSimEnv(density_checkpoint)
    env.reset(seed=0)
    assert "penalty" not in env.step(np.zeros(1))[4]
    with pytest.raises(InputError, match="density_penalty must be a finite weight >= 0"):
        NeuralSimEnv(density_checkpoint, density_penalty=-1.0)


def test_checkpoint_without_a_density_model_says_how_to_fit_one(tiny_checkpoint: Path) -> None:
    with pytest.raises(CheckpointError, match="has no density model; fit one with `neural-sim fit-density"):
        NeuralSimEnv(tiny_checkpoint, density_penalty=1.0)


def test_damaged_density_file_is_reported(tmp_path: Path, density_checkpoint: Path) -> None:
    folder = tmp_path / "c"
    shutil.copytree(density_checkpoint, folder)
    raw = json.loads((folder / "config.json").read_text())
    raw["density"]["hidden"] = [32]
    (folder / "config.json").write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match="does not match the density config"):
        NeuralSimEnv(folder, density_penalty=1.0)
    (folder / "density.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"missing \['density.safetensors'\]"):
        NeuralSimEnv(folder, density_penalty=1.0)


def test_density_records_how_it_was_fitted(density_checkpoint: Path) -> None:
    density = read_config(density_checkpoint).density
    assert density is not None and density.fit is not None
    assert density.fit["command"] == "pytest-density" and density.fit["data"]["seed"] == 123


def test_density_benchmark_reports_separation_correlation_and_cost(density_checkpoint: Path) -> None:
    results = benchmark_density(density_checkpoint, sequences=1, seed=2, rows=300,
                                num_envs=8, timing_steps=30)
    assert set(results["auroc"]) == {"perturbed", "controller"}
    assert all(0.0 <= v <= 1.0 for v in results["auroc"].values())
    assert -1.0 <= results["spearman_penalty_vs_one_step_error"] <= 1.0
    cost = results["step_cost"]
    assert cost["on_ms"] > 0 and cost["off_ms"] > 0
    assert cost["batched"]["num_envs"] == 8 and cost["batched"]["on_ms"] > 0 and cost["batched"]["off_ms"] > 0


def test_fast_log_density_equals_the_eager_one(density_checkpoint: Path) -> None:
    density = load_density(density_checkpoint, read_config(density_checkpoint))
    for batch in (1, 7):
        states, actions = torch.randn(batch, 4) * 3, torch.rand(batch, 1) * 2 - 1
        with torch.no_grad():
            expected = density.log_density(states, actions)
        torch.testing.assert_close(density.fast_log_density(states, actions), expected, rtol=1e-5, atol=1e-4)


def _eager(density: DensityModel, state: np.ndarray, action: np.ndarray) -> float:
    with torch.no_grad():
        return density.log_density(torch.tensor(state[None], dtype=torch.float32),
                                   torch.tensor(action[None], dtype=torch.float32)).item()


def _random_pairs(density: DensityModel, count: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    layout = density.layout
    low, high = np.asarray(layout.action_low), np.asarray(layout.action_high)
    pairs = []
    for scale in np.geomspace(0.1, 30.0, count):  # near the data and far from it
        state = rng.normal(size=layout.nq + layout.nv) * scale
        pairs.append((state, rng.uniform(low, high)))
    return pairs


@pytest.mark.parametrize("source", ["fitted", "cheetah"])
def test_single_env_log_density_uses_numpy_and_equals_the_eager_one(
        density_checkpoint: Path, source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = density_checkpoint if source == "fitted" else shipped_checkpoints_dir() / source
    density = load_density(folder, read_config(folder))  # "fitted": two transforms; cheetah: one
    monkeypatch.setattr(density, "fast_log_density", lambda *_: pytest.fail("took the torch path"))
    for state, action in _random_pairs(density, 12, seed=3):
        assert density.log_density_value(state, action) == pytest.approx(_eager(density, state, action),
                                                                         rel=1e-5, abs=1e-4)


def test_single_env_log_density_follows_weights_changed_in_place(density_checkpoint: Path) -> None:
    density = load_density(density_checkpoint, read_config(density_checkpoint))
    state, action = np.array([0.3, -0.2, 1.0, -2.0]), np.array([0.5])
    before = density.log_density_value(state, action)
    with torch.no_grad():
        for parameter in density.flow.parameters():
            parameter.mul_(1.1)
    after = density.log_density_value(state, action)
    assert after != before
    assert after == pytest.approx(_eager(density, state, action), rel=1e-5, abs=1e-4)


def test_floating_base_single_env_log_density_takes_the_traced_graph() -> None:
    folder = shipped_checkpoints_dir() / "quadruped"
    density = load_density(folder, read_config(folder))
    calls: list[int] = []
    traced = density.fast_log_density
    density.fast_log_density = lambda s, a: calls.append(len(s)) or traced(s, a)  # type: ignore[method-assign]
    layout = density.layout
    state = np.zeros(layout.nq + layout.nv)
    state[3] = 1.0  # the free joint's unit quaternion (w, x, y, z) after its position
    state[7:layout.nq] = 0.1
    action = np.zeros(layout.nu)
    assert density.log_density_value(state, action) == pytest.approx(_eager(density, state, action),
                                                                      rel=1e-5, abs=1e-4)
    assert calls == [1]


def test_single_env_log_density_refuses_a_state_or_action_of_the_wrong_shape(density_checkpoint: Path) -> None:
    density = load_density(density_checkpoint, read_config(density_checkpoint))
    with pytest.raises(InputError, match=r"state of shape \(4,\).*action of shape \(1,\).*got \(5,\) and \(1,\)"):
        density.log_density_value(np.zeros(5), np.zeros(1))
    with pytest.raises(InputError, match=r"got \(4,\) and \(2,\)"):
        density.log_density_value(np.zeros(4), np.zeros(2))
