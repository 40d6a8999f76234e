"""Leaving the model's data ends the episode, never the run: single env, batched env, SB3."""

from __future__ import annotations

import dataclasses
import shutil
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

import neural_sim.envs.out_of_domain as out_of_domain_module
import neural_sim.sb3
from neural_sim.checkpoints import read_config, shipped_checkpoints_dir, shipped_names, write_config
from neural_sim.envs.single import NeuralSimEnv
from neural_sim.envs.vector import NeuralSimVectorEnv
from neural_sim.errors import DivergenceError, InputError, OutOfDomainError, OutOfDomainWarning
from neural_sim.model.domain import DataDomain
from neural_sim.pipeline.collect import Dataset
from neural_sim.pipeline.domain import fit_domain, held_out_cuts


def _far_out(env: NeuralSimEnv, scale: float = 1e3) -> np.ndarray:
    """A buffer state whose velocities are all ``scale`` (the data stays below about 30)."""
    state = env.reset_states[0].copy()
    state[env.config.simulator.layout.nq:] = scale
    return state


def _same_observation(a: object, b: object) -> bool:
    if isinstance(a, dict):
        return all(np.array_equal(a[k], b[k]) for k in a)  # type: ignore[index]
    return np.array_equal(a, b)  # type: ignore[arg-type]


@pytest.mark.parametrize("robot", shipped_names())
def test_every_shipped_checkpoint_knows_the_region_its_data_covers(robot: str) -> None:
    config = read_config(shipped_checkpoints_dir() / robot)
    domain = config.domain
    assert domain is not None and domain.samples > 0
    layout = config.simulator.layout
    assert not {*layout.angle_qpos, *layout.invariant_qpos, *layout.quaternion_qpos} & set(domain.dims)
    assert all(low <= high for low, high in zip(domain.low, domain.high, strict=True))
    env = NeuralSimEnv(robot)
    assert not domain.outside(env.reset_states, layout).any()  # episodes start inside


@pytest.mark.parametrize("robot", shipped_names())
def test_a_step_from_far_outside_the_data_truncates_and_goes_nowhere(robot: str) -> None:
    env = NeuralSimEnv(robot)
    start = _far_out(env)
    env.reset(options={"state": start})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutOfDomainWarning)
        found, reward, _, truncated, info = env.step(env.action_space.high)
    assert truncated and info["out_of_domain"] is True
    assert any(name.startswith("qvel[") for name in info["out_of_domain_dims"])
    np.testing.assert_array_equal(env.state, start)
    # The observation of a step that went nowhere: the start state's, with whatever the step
    # itself computes (Ant's contact forces, zero at a reset) as a step landing there gives it.
    env.bridge.activations = np.zeros(env.bridge.na)  # as at the reset the step started from
    env.bridge.transition(start, env.action_space.high, start)
    assert _same_observation(found, env.bridge.observation())
    assert np.isfinite(reward)


@pytest.mark.parametrize("robot", shipped_names())
def test_out_of_domain_raise_refuses_the_step_and_ignore_takes_it(robot: str) -> None:
    env = NeuralSimEnv(robot, out_of_domain="raise")
    env.reset(options={"state": _far_out(env)})
    with pytest.raises(OutOfDomainError, match=r"qvel\[\d+\].*out_of_domain='raise'"):
        env.step(env.action_space.high)
    env = NeuralSimEnv(robot, out_of_domain="ignore")
    start = _far_out(env)
    env.reset(options={"state": start})
    try:
        _, _, _, _, info = env.step(env.action_space.high)
    except DivergenceError:
        return  # "ignore" steps on as if trusted; a non-finite prediction still raises
    assert "out_of_domain" not in info
    assert not np.array_equal(env.state, start)


@pytest.mark.parametrize("scale", [1e3, 1e6, 1e20, 1e30])
def test_cheetah_is_never_paid_for_absurd_velocities(scale: float, monkeypatch: pytest.MonkeyPatch) -> None:
    env = gym.make("NeuralSim/cheetah-run-v0")
    observation, _ = env.reset(seed=0)
    simulator = env.unwrapped.simulator

    def absurd(states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:  # a model driven off its data
        out = states.clone()
        out[:, 9:] = scale
        return out

    monkeypatch.setattr(simulator, "fast_predict", absurd)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutOfDomainWarning)
        found, reward, terminated, truncated, info = env.step(np.ones(6, dtype=np.float32))
    assert truncated and not terminated and info["out_of_domain"]
    assert reward < 0.5  # the reward of the last state inside, not the task's maximum for a flying cheetah
    assert _same_observation(found, observation)
    env.reset(options={"state": _far_out(env.unwrapped, scale)})  # a start out there is truncated at once
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutOfDomainWarning)
        assert env.step(np.ones(6, dtype=np.float32))[3]


@pytest.mark.parametrize("robot", shipped_names())
def test_bang_bang_actions_never_leave_an_env_holding_a_state_outside_its_data(robot: str) -> None:
    env = NeuralSimVectorEnv(32, robot)
    domain = env.config.domain
    assert domain is not None
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    low, high = env.single_action_space.low, env.single_action_space.high
    period = rng.integers(5, 60, size=(32, 1))  # each env switches between the bounds at its own pace
    truncations = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutOfDomainWarning)
        for t in range(200):
            actions = np.where((t // period) % 2 == 0, high, low)
            *_, info = env.step(actions)
            truncations += int(info["out_of_domain"].sum())
            # Whoever left was stopped at the last state inside.
            assert not domain.outside(info["state"], env.config.simulator.layout).any()
    if robot == "cheetah":  # full torque back and forth spins its joints faster than random actions ever did
        assert truncations > 0


def test_steps_inside_the_data_are_marked_as_such() -> None:
    env = gym.make("NeuralSim/Cheetah-v0")
    env.reset(seed=0)
    for _ in range(5):
        *_, truncated, info = env.step(env.action_space.sample())
        assert info["out_of_domain"] is False and not truncated


@pytest.fixture
def narrow_acrobot(tmp_path: Path) -> Path:
    """The shipped acrobot with a domain of angular velocities within +-1 rad/s."""
    folder = tmp_path / "acrobot"
    shutil.copytree(shipped_checkpoints_dir() / "acrobot", folder, ignore=shutil.ignore_patterns("ablation"))
    config = read_config(folder)
    write_config(folder, dataclasses.replace(config, domain=DataDomain((2, 3), (-1.0, -1.0), (1.0, 1.0), 0.0, 1)))
    return folder


def test_bang_bang_actions_that_leave_the_data_end_the_episode_at_the_last_state_inside(narrow_acrobot: Path) -> None:
    env = NeuralSimEnv(narrow_acrobot)
    start = np.array([0.3, -0.2, 0.0, 0.0])
    observation, _ = env.reset(options={"state": start})
    domain = env.config.domain
    assert domain is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutOfDomainWarning)
        for step in range(300):
            before = env.state
            action = np.array([1.0 if (step // 25) % 2 == 0 else -1.0])
            found, _, _, truncated, info = env.step(action)
            if truncated:
                break
            assert info["out_of_domain"] is False and not domain.outside(env.state).any()
            observation = found
    assert truncated and info["out_of_domain"], "bang-bang actions never left +-1 rad/s"
    assert info["out_of_domain_dims"] and set(info["out_of_domain_dims"]) <= {"qvel[0]", "qvel[1]"}
    np.testing.assert_array_equal(env.state, before)  # the last state inside
    assert _same_observation(found, observation)


def test_the_first_out_of_domain_step_warns_once_per_process(narrow_acrobot: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(out_of_domain_module, "_warned", False)
    env = NeuralSimEnv(narrow_acrobot)
    env.reset(options={"state": np.array([0.0, 0.0, 5.0, 0.0])})
    with pytest.warns(OutOfDomainWarning, match=r"qvel\[0\].*truncated"):
        env.step(np.zeros(1))
    with warnings.catch_warnings():
        warnings.simplefilter("error", OutOfDomainWarning)
        env.step(np.zeros(1))  # no second warning


def test_a_non_finite_prediction_truncates_raises_or_diverges_by_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    for mode, expected in (("truncate", None), ("raise", OutOfDomainError), ("ignore", DivergenceError)):
        env = NeuralSimEnv("acrobot", out_of_domain=mode)  # type: ignore[arg-type]
        env.reset(seed=0)
        start = env.state
        monkeypatch.setattr(env.simulator, "fast_predict", lambda s, a: torch.full_like(s, float("nan")))
        if expected is not None:
            with pytest.raises(expected, match="non-finite"):
                env.step(np.zeros(1))
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OutOfDomainWarning)
            *_, truncated, info = env.step(np.zeros(1))
        assert truncated and info["out_of_domain_dims"][-1] == "non-finite prediction"
        np.testing.assert_array_equal(env.state, start)


def test_an_unknown_out_of_domain_mode_is_refused() -> None:
    with pytest.raises(InputError, match=r"unknown out_of_domain 'clip'.*'truncate', 'raise', 'ignore'"):
        gym.make("NeuralSim/Acrobot-v0", out_of_domain="clip")


# -- batched ------------------------------------------------------------------------------

def _batched_states(env: NeuralSimVectorEnv, far_row: int) -> np.ndarray:
    states = env._reset_states[:4].cpu().numpy().copy()
    states[far_row, env._layout.nq:] = 1e3
    return states


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_the_batched_env_truncates_only_the_env_that_left(mode: AutoresetMode) -> None:
    env = NeuralSimVectorEnv(4, "acrobot", autoreset_mode=mode)
    reference = NeuralSimVectorEnv(4, "acrobot")
    states = _batched_states(env, far_row=2)
    obs, _ = env.reset(seed=0, options={"state": states})
    reference.reset(seed=0, options={"state": env._reset_states[:4]})  # the same, env 2 inside
    actions = np.full((4, 1), 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutOfDomainWarning)
        _, rewards, terminated, truncated, info = env.step(actions)
    _, expected_rewards, *_, expected = reference.step(actions)
    assert truncated.tolist() == [False, False, True, False] and not terminated.any()
    assert info["out_of_domain"].tolist() == [False, False, True, False]
    assert info["out_of_domain_dims"][2] == ["qvel[0]", "qvel[1]"] and info["out_of_domain_dims"][0] is None
    kept = [0, 1, 3]
    np.testing.assert_array_equal(info["state"][kept], expected["state"][kept])  # the others are untouched
    np.testing.assert_array_equal(rewards[kept], expected_rewards[kept])
    if mode == AutoresetMode.SAME_STEP:
        np.testing.assert_array_equal(info["final_state"][2], states[2])  # ended where it started
        np.testing.assert_array_equal(info["final_obs"][2]["velocity"], obs["velocity"][2])
        assert (env._reset_states == info["state"][2]).all(-1).any()  # restarted from the buffer
    else:
        _, rewards, terminated, truncated, info = env.step(actions)  # env 2 resets, the others step
        assert rewards[2] == 0.0 and not truncated[2] and not info["out_of_domain"][2]
        assert (env._reset_states == info["state"][2]).all(-1).any()


def test_the_batched_env_raises_under_out_of_domain_raise() -> None:
    env = NeuralSimVectorEnv(4, "acrobot", out_of_domain="raise")
    env.reset(seed=0, options={"state": _batched_states(env, far_row=1)})
    with pytest.raises(OutOfDomainError, match=r"NeuralSimVectorEnv.step.*qvel"):
        env.step(np.zeros((4, 1)))


def test_the_sb3_adapter_reports_out_of_domain_truncations() -> None:
    vec = neural_sim.sb3.make_vec_env("NeuralSim/Acrobot-v0", n_envs=4, seed=0)
    vec.reset()
    vec.env.reset(seed=0, options={"state": _batched_states(vec.env, far_row=3)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutOfDomainWarning)
        vec.step_async(np.zeros((4, 1)))
        _, _, dones, infos = vec.step_wait()
    assert dones.tolist() == [False, False, False, True]
    assert infos[3]["out_of_domain"] and infos[3]["TimeLimit.truncated"] and "terminal_observation" in infos[3]
    assert all("out_of_domain" not in info for info in infos[:3])


# -- the batched step does no wasted work --------------------------------------------------

def test_next_step_resets_are_neither_predicted_nor_scored(monkeypatch: pytest.MonkeyPatch) -> None:
    env = NeuralSimVectorEnv(4, "acrobot", max_episode_steps=2, density_penalty=0.1)
    batches: list[int] = []
    predict, density = env.simulator.fast_predict, env.density
    assert density is not None
    log_density = density.fast_log_density
    monkeypatch.setattr(env.simulator, "fast_predict", lambda s, a: batches.append(len(s)) or predict(s, a))
    monkeypatch.setattr(density, "fast_log_density", lambda s, a: batches.append(-len(s)) or log_density(s, a))
    env.reset(seed=0)
    env.step(np.zeros((4, 1)))
    env.step(np.zeros((4, 1)))  # every env truncates
    env.reset(seed=0, options={"reset_mask": np.array([True, True, False, False])})
    _, rewards, _, truncated, info = env.step(np.zeros((4, 1)))  # envs 2 and 3 only reset
    assert batches == [-4, 4, -4, 4, -2, 2]
    assert rewards[2:].tolist() == [0.0, 0.0] and info["penalty"][2:].tolist() == [0.0, 0.0]
    assert not truncated[2:].any()


@pytest.mark.parametrize("robot", ["acrobot", "walker", "HalfCheetah-v5", "hopper"])  # native and physics-loop tasks
def test_a_next_step_step_in_which_every_env_resets_only_resets(robot: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    env = NeuralSimVectorEnv(3, robot, max_episode_steps=1)
    env.reset(seed=0)
    actions = np.zeros((3, *env.single_action_space.shape))
    *_, truncated, _ = env.step(actions)  # every env ends together
    assert truncated.all()
    monkeypatch.setattr(env.simulator, "fast_predict", lambda s, a: pytest.fail("a resetting env was predicted"))
    observations, rewards, terminated, truncated, info = env.step(actions)
    assert env.observation_space.contains(observations)
    assert not rewards.any() and not terminated.any() and not truncated.any()
    assert (env._reset_states[None] == info["state"][:, None]).all(-1).any(-1).all()  # all restarted from the buffer


def test_same_step_resets_recompute_only_the_ended_envs_observations(monkeypatch: pytest.MonkeyPatch) -> None:
    env = NeuralSimVectorEnv(4, "acrobot", max_episode_steps=1, autoreset_mode=AutoresetMode.SAME_STEP)
    env.reset(seed=0)
    rows: list[object] = []
    observations = env.task.observations
    monkeypatch.setattr(env.task, "observations",
                        lambda states, which=None: rows.append(None if which is None else list(which))
                        or observations(states, which))
    env._steps[:] = np.array([0, 1, 0, 1])  # envs 1 and 3 are one step from their limit
    env.max_episode_steps = 2
    env.step(np.zeros((4, 1)))
    assert rows == [None, [1, 3]]  # the step's own, then the restarted envs' only


# -- the domain itself ---------------------------------------------------------------------

def test_a_trained_checkpoint_records_its_data_domain(tiny_checkpoint: Path, acrobot_data: Dataset) -> None:
    domain = read_config(tiny_checkpoint).domain
    assert domain is not None and domain.dims == (2, 3)  # acrobot's hinge angles are unlimited
    np.testing.assert_allclose(domain.low, acrobot_data.states[..., 2:].reshape(-1, 2).min(0))
    np.testing.assert_allclose(domain.high, acrobot_data.states[..., 2:].reshape(-1, 2).max(0))
    assert domain.fit["data"]["seed"] == 123


def test_held_out_cuts_count_steps_that_start_or_land_outside(acrobot_data: Dataset) -> None:
    layout = read_config(shipped_checkpoints_dir() / "acrobot").simulator.layout
    domain = fit_domain(acrobot_data, layout, margin=0.0)
    held_out = dataclasses.replace(acrobot_data, states=acrobot_data.states.copy())
    held_out.states[0, 10, 2] = 1e3  # one state far out: the steps into and out of it are cut
    cuts = held_out_cuts(domain, held_out, layout, margins=(0.0,))["0"]
    steps = held_out.actions.shape[0] * held_out.actions.shape[1]
    assert cuts["steps"] == pytest.approx(2 / steps) and cuts["sequences"] == pytest.approx(1 / 6)
    assert cuts["dims"] == ["qvel[0]"]


def test_a_domain_refuses_empty_or_non_finite_data() -> None:
    layout = read_config(shipped_checkpoints_dir() / "pendulum").simulator.layout
    with pytest.raises(ValueError, match="at least one state"):
        DataDomain.from_states(np.zeros((0, 2)), layout)
    with pytest.raises(ValueError, match="all finite"):
        DataDomain.from_states(np.array([[0.0, np.nan]]), layout)
    with pytest.raises(ValueError, match="margin"):
        DataDomain.from_states(np.zeros((3, 2)), layout, margin=-1)


@pytest.mark.parametrize("robot", ["cheetah", "quadruped"])
def test_the_domain_checks_tensors_as_it_checks_arrays(robot: str) -> None:
    config = read_config(shipped_checkpoints_dir() / robot)
    assert config.domain is not None
    layout = config.simulator.layout
    states = np.random.default_rng(0).normal(size=(300, layout.state_size)) * 3
    if layout.quaternion_qpos:
        quaternion = list(layout.quaternion_qpos)
        states[:, quaternion] /= np.linalg.norm(states[:, quaternion], axis=1, keepdims=True)
    expected = config.domain.outside(states, layout)
    assert 0 < expected.mean() < 1
    np.testing.assert_array_equal(config.domain.outside_tensor(torch.as_tensor(states), layout).numpy(), expected)
