"""Batched envs: native task functions equal dm_control's, VectorEnv semantics, SB3 adapter."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from dm_control.utils import rewards as dm_rewards
from gymnasium.vector import AutoresetMode
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

import neural_sim.sb3
from neural_sim.envs.single import NeuralSimEnv
from neural_sim.envs.vector import NeuralSimVectorEnv
from neural_sim.errors import InputError
from neural_sim.robots import DmControlTask
from neural_sim.robots.batched import BridgeLoopTask, make_batched_task, tolerance
from neural_sim.robots.gymnasium_mujoco import GymnasiumMujocoTask

TASKS = [("acrobot", "swingup"), ("acrobot", "swingup_sparse"), ("pendulum", "swingup"), ("cheetah", "run"),
         ("walker", "stand"), ("walker", "walk"), ("walker", "run"), ("cartpole", "swingup"),
         ("cartpole", "swingup_sparse"), ("cartpole", "balance"), ("cartpole", "balance_sparse"),
         ("hopper", "stand"), ("hopper", "hop")]


@pytest.mark.parametrize(("domain", "task"), TASKS)
def test_native_task_functions_equal_the_stock_definitions(domain: str, task: str) -> None:
    native = make_batched_task(DmControlTask(domain, task))
    assert native.native
    reference = BridgeLoopTask(DmControlTask(domain, task))
    rng = np.random.default_rng(0)
    size = {"acrobot": 4, "pendulum": 2, "cheetah": 18, "walker": 18, "cartpole": 4, "hopper": 14}[domain]
    states = torch.as_tensor(rng.normal(size=(600, size)) * 4)
    if domain == "cheetah":
        states[:300, 9] += 12.0  # running forward: rewards strictly between 0 and 1
    elif domain == "cartpole":  # near upright and centred: the sparse bounds are met too
        states[:300, :2] = torch.as_tensor(rng.normal(size=(300, 2)) * [0.2, 0.05])
    elif domain == "walker":  # standing upright, some moving forward: every reward term in play
        states[:300, :9] = torch.as_tensor(rng.normal(size=(300, 9)) * 0.2)
        states[:300, 9] += torch.as_tensor(rng.uniform(0, 10, size=300))
    elif domain == "hopper":  # upright, some hopping forward, feet near and in the floor: every term in play
        states[:300, :7] = torch.as_tensor(rng.normal(size=(300, 7)) * [1, 0.15, 0.2, 0.2, 0.2, 0.2, 0.2])
        states[:300, 7] += torch.as_tensor(rng.uniform(0, 4, size=300))
    else:
        states[:300, : size // 2] = torch.as_tensor(rng.normal(size=(300, size // 2)) * 0.15)  # near upright
    previous = torch.as_tensor(rng.normal(size=(600, size)))
    actions = rng.uniform(-1, 1, size=(600, native_actions(domain)))
    expected, found = reference.step(previous, actions, states), native.step(previous, actions, states)
    assert list(found[0]) == list(expected[0])
    for key in expected[0]:
        np.testing.assert_allclose(found[0][key], expected[0][key], rtol=0, atol=1e-6)
    np.testing.assert_allclose(found[1], expected[1], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(found[2], expected[2])
    assert 0 < expected[1].mean() < 1  # both in-target and off-target states were tested
    # Traced task functions serve other batch sizes than the one they were traced at.
    for n in (1, 7):
        np.testing.assert_allclose(native.step(previous[:n], actions[:n], states[:n])[1], expected[1][:n],
                                   rtol=0, atol=1e-6)
    reset_expected, reset_found = reference.observations(states), native.observations(states)
    for key in reset_expected:
        np.testing.assert_allclose(reset_found[key], reset_expected[key], rtol=0, atol=1e-6)


@pytest.mark.parametrize(("env_id", "env_kwargs"), [
    ("HalfCheetah-v5", {}),
    ("HalfCheetah-v5", {"forward_reward_weight": 0.7, "ctrl_cost_weight": 0.3,
                        "exclude_current_positions_from_observation": False}),
    ("InvertedPendulum-v5", {}),
    ("Ant-v5", {}),
    ("Ant-v5", {"contact_cost_weight": 0.01, "healthy_z_range": (0.3, 0.9), "include_cfrc_ext_in_observation": False,
                "exclude_current_positions_from_observation": False, "terminate_when_unhealthy": False}),
])
def test_native_gymnasium_tasks_equal_the_envs_own_step(env_id: str, env_kwargs: dict) -> None:
    native = make_batched_task(GymnasiumMujocoTask(env_id, env_kwargs=env_kwargs))
    assert native.native
    reference = BridgeLoopTask(GymnasiumMujocoTask(env_id, env_kwargs=env_kwargs))
    rng = np.random.default_rng(0)
    size = {"HalfCheetah-v5": 18, "InvertedPendulum-v5": 4, "Ant-v5": 29}[env_id]
    nu = {"HalfCheetah-v5": 6, "InvertedPendulum-v5": 1, "Ant-v5": 8}[env_id]
    bound = {"HalfCheetah-v5": 1.0, "InvertedPendulum-v5": 3.0, "Ant-v5": 1.0}[env_id]
    previous = torch.as_tensor(rng.normal(size=(300, size)))
    states = previous + torch.as_tensor(rng.normal(size=(300, size)) * 0.2)
    if env_id == "Ant-v5":  # real starts (unit quaternions), legs in the floor or not, some torsos too low or high
        bridge = GymnasiumMujocoTask(env_id, seed=0)
        starts = torch.as_tensor(np.stack([bridge.reset_random() for _ in range(300)]))
        previous = starts + torch.as_tensor(rng.normal(size=(300, size)) * 0.05)
        states = starts + torch.as_tensor(rng.normal(size=(300, size)) * 0.3)
        states[:, 3:7] = starts[:, 3:7]
        states[:, 2] = torch.as_tensor(rng.uniform(0.1, 1.1, size=300))
    states[:5, 3] = float("nan") if env_id == "InvertedPendulum-v5" else states[:5, 3]  # diverged: terminates
    actions = rng.uniform(-bound, bound, size=(300, nu))
    expected, found = reference.step(previous, actions, states), native.step(previous, actions, states)
    np.testing.assert_allclose(found[0], expected[0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(found[1], expected[1], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(found[2], expected[2])
    np.testing.assert_array_equal(found[3], expected[3])
    if env_id == "InvertedPendulum-v5":
        assert 0 < found[2].mean() < 1  # poles inside and outside 0.2 rad both tested
    if env_id == "Ant-v5":
        if not env_kwargs:  # contact forces in the observation, and torsos in and out of the healthy range
            assert (np.abs(expected[0][:, -78:]) > 0).any(axis=1).mean() > 0.2
            assert 0 < found[2].mean() < 1
        np.testing.assert_allclose(native.observations(states), reference.observations(states), rtol=0, atol=1e-6)
    np.testing.assert_allclose(native.observations(states), reference.observations(states), rtol=0, atol=1e-6)


@pytest.mark.parametrize("task", ["easy", "hard"])
def test_native_reacher_equals_the_stock_task_for_each_envs_own_target(task: str) -> None:
    n = 400
    native = make_batched_task(DmControlTask("reacher", task), num_envs=n)
    assert native.native
    rngs = [np.random.default_rng(i) for i in range(n)]
    native.begin_episodes(np.arange(n), rngs)
    targets = native.targets.numpy()
    assert len(np.unique(targets[:, 0])) == n  # one target per env
    radius = np.linalg.norm(targets, axis=1)
    assert (radius >= 0.05).all() and (radius <= 0.20).all()
    rng = np.random.default_rng(1)
    states = torch.as_tensor(np.concatenate([rng.uniform(-np.pi, np.pi, (n, 2)), rng.normal(size=(n, 2))], 1))
    # Half the envs get a target within reach of the finger: rewards 1 and 0 both tested.
    reference = DmControlTask("reacher", task)
    for i in range(n // 2):
        reference.set_state(states[i].numpy())
        native._targets[i] = torch.as_tensor(reference.physics.named.data.geom_xpos["finger", :2] + 0.005)
    targets = native.targets.numpy()
    obs, rewards, terminated, _ = native.step(states, np.zeros((n, 2)), states)
    assert set(np.unique(rewards)) == {0.0, 1.0}
    for i in range(n):
        reference.physics.named.model.geom_pos["target", :2] = targets[i]
        reference.set_state(states[i].numpy())
        expected = reference.observation()
        for key in expected:
            np.testing.assert_allclose(obs[key][i], expected[key], rtol=0, atol=1e-9)
        assert rewards[i] == pytest.approx(reference.reward(), abs=1e-9)
    assert not terminated.any()
    # Observations of a subset of envs use those envs' targets.
    rows = np.array([3, 7])
    subset = native.observations(states[torch.as_tensor(rows)], rows)
    np.testing.assert_array_equal(subset["to_target"], obs["to_target"][rows])


def test_batched_reacher_draws_new_targets_on_reset_and_autoreset() -> None:
    envs = gym.make_vec("NeuralSim/Reacher-v0", num_envs=3, max_episode_steps=2)
    obs, _ = envs.reset(seed=0)
    first = envs.unwrapped.task.targets
    assert len(np.unique(first[:, 0])) == 3
    again, _ = envs.reset(seed=0)
    np.testing.assert_array_equal(again["to_target"], obs["to_target"])
    for _ in range(3):  # two steps end the episodes, the third resets them (NEXT_STEP)
        envs.step(np.zeros((3, 2)))
    assert not np.array_equal(envs.unwrapped.task.targets, first)


def native_actions(domain: str) -> int:
    return {"acrobot": 1, "pendulum": 1, "cheetah": 6, "walker": 6, "cartpole": 1, "hopper": 4}[domain]


@pytest.mark.parametrize("sigmoid", ["gaussian", "hyperbolic", "long_tail", "reciprocal", "cosine", "linear",
                                     "quadratic", "tanh_squared"])
def test_tolerance_matches_dm_control(sigmoid: str) -> None:
    x = np.linspace(-3, 5, 401)
    expected = dm_rewards.tolerance(x, bounds=(0.0, 1.0), margin=1.5, sigmoid=sigmoid, value_at_margin=0.2)
    found = tolerance(torch.as_tensor(x), (0.0, 1.0), 1.5, sigmoid, 0.2).numpy()
    np.testing.assert_allclose(found, expected, rtol=0, atol=1e-12)


def test_make_vec_returns_the_native_batched_env_with_batched_spaces() -> None:
    env = gym.make_vec("NeuralSim/Acrobot-v0", num_envs=5)
    assert isinstance(env, NeuralSimVectorEnv)
    assert env.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert env.action_space.shape == (5, 1)
    assert env.max_episode_steps == gym.spec("NeuralSim/Acrobot-v0").max_episode_steps


def test_batched_env_steps_like_independent_single_envs() -> None:
    vec = NeuralSimVectorEnv(3, "acrobot")
    singles = [NeuralSimEnv("acrobot") for _ in range(3)]
    starts = np.random.default_rng(1).normal(size=(3, 4))
    vec.reset(options={"state": starts})
    for env, start in zip(singles, starts, strict=True):
        env.reset(options={"state": start})
    rng = np.random.default_rng(2)
    for _ in range(10):
        actions = rng.uniform(-1, 1, size=(3, 1))
        obs, rewards, _, _, info = vec.step(actions)
        for i, env in enumerate(singles):
            single_obs, single_reward, *_ , single_info = env.step(actions[i])
            np.testing.assert_allclose(info["state"][i], single_info["state"], rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(obs["velocity"][i], single_obs["velocity"], rtol=1e-5, atol=1e-5)
            assert rewards[i] == pytest.approx(single_reward, abs=1e-5)


def test_per_env_seeds_make_resets_reproducible_and_distinct() -> None:
    a, b = NeuralSimVectorEnv(4, "pendulum"), NeuralSimVectorEnv(4, "pendulum")
    _, info_a = a.reset(seed=7)
    _, info_b = b.reset(seed=7)
    np.testing.assert_array_equal(info_a["state"], info_b["state"])
    assert len({tuple(row) for row in info_a["state"]}) > 1


def test_next_step_autoreset_resets_ended_envs_on_the_following_step() -> None:
    env = NeuralSimVectorEnv(2, "pendulum", max_episode_steps=3)
    env.reset(seed=0)
    zeros = np.zeros((2, 1))
    for _ in range(2):
        _, _, terminated, truncated, _ = env.step(zeros)
        assert not truncated.any() and not terminated.any()
    _, _, _, truncated, _ = env.step(zeros)
    assert truncated.all()
    _, rewards, terminated, truncated, info = env.step(zeros)  # the reset step
    assert not truncated.any() and not terminated.any() and (rewards == 0).all()
    assert all(any(np.array_equal(s, r) for r in env._reset_states) for s in info["state"])


def test_same_step_autoreset_reports_the_final_observation() -> None:
    env = NeuralSimVectorEnv(2, "pendulum", max_episode_steps=2, autoreset_mode=AutoresetMode.SAME_STEP)
    env.reset(seed=0)
    env.step(np.zeros((2, 1)))
    obs, _, _, truncated, info = env.step(np.zeros((2, 1)))
    assert truncated.all() and info["_final_obs"].all()
    final = info["final_obs"][0]
    assert set(final) == set(obs) and not np.array_equal(final["velocity"], obs["velocity"][0])


def test_batched_density_penalty_matches_the_single_env(tmp_path) -> None:  # type: ignore[no-untyped-def]
    vec = NeuralSimVectorEnv(2, "acrobot", density_penalty=0.5)
    single = NeuralSimEnv("acrobot", density_penalty=0.5)
    start = np.array([[0.3, -0.2, 1.0, -2.0], [2.0, 1.0, 0.0, 0.5]])
    vec.reset(options={"state": start})
    single.reset(options={"state": start[1]})
    _, rewards, _, _, info = vec.step(np.array([[0.2], [-0.4]]))
    _, reward, _, _, single_info = single.step(np.array([-0.4]))
    assert info["penalty"][1] == pytest.approx(single_info["penalty"], abs=1e-6)
    assert rewards[1] == pytest.approx(reward, abs=1e-5)
    assert rewards[0] == pytest.approx(info["task_reward"][0] + 0.5 * info["penalty"][0])


def test_batched_env_rejects_bad_input() -> None:
    env = NeuralSimVectorEnv(2, "acrobot")
    with pytest.raises(gym.error.ResetNeeded):
        env.step(np.zeros((2, 1)))
    env.reset(seed=0)
    with pytest.raises(InputError, match=r"actions must have shape \(2, 1\)"):
        env.step(np.zeros((3, 1)))
    with pytest.raises(InputError, match="outside the action space"):
        env.step(np.full((2, 1), 3.0))
    with pytest.raises(InputError, match="got 3 seeds for 2 envs"):
        env.reset(seed=[1, 2, 3])
    with pytest.raises(InputError, match="num_envs must be >= 1"):
        NeuralSimVectorEnv(0, "acrobot")


def test_sb3_adapter_is_a_vecenv_with_terminal_observations() -> None:
    venv = neural_sim.sb3.make_vec_env("NeuralSim/Pendulum-v0", n_envs=3, seed=0, max_episode_steps=2)
    assert isinstance(venv, VecEnv) and venv.num_envs == 3
    venv.reset()
    venv.step(np.zeros((3, 1)))
    obs, rewards, dones, infos = venv.step(np.zeros((3, 1)))
    assert dones.all() and rewards.dtype == np.float32
    for info in infos:
        assert info["TimeLimit.truncated"] is True
        assert set(info["terminal_observation"]) == set(obs)


def test_ppo_trains_unchanged_on_the_sb3_adapter() -> None:
    venv = neural_sim.sb3.make_vec_env("NeuralSim/Acrobot-v0", n_envs=16, seed=0)
    model = PPO("MultiInputPolicy", venv, n_steps=16, batch_size=64, n_epochs=1, seed=0,
                policy_kwargs={"net_arch": [16]})
    model.learn(total_timesteps=512)
    assert model.num_timesteps == 512


def _rollout(envs: NeuralSimVectorEnv, steps: int) -> list[tuple]:
    out = [envs.reset(seed=3)]
    rng = np.random.default_rng(0)
    for _ in range(steps):
        out.append(envs.step(rng.uniform(-1, 1, size=envs.action_space.shape).astype(np.float32)))
    return out


def test_the_batched_env_keeps_states_on_the_models_device_and_returns_host_arrays() -> None:
    envs = NeuralSimVectorEnv(5, "cheetah", max_episode_steps=4, density_penalty=1.0)
    assert envs.device == envs.simulator.device
    *_, (obs, rewards, terminated, truncated, info) = _rollout(envs, 6)  # through an autoreset
    for value in (*obs.values(), rewards, terminated, truncated, info["state"], info["penalty"]):
        assert isinstance(value, np.ndarray)
    assert envs._states.device == envs.simulator.device and envs._reset_states.device == envs.simulator.device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("checkpoint", ["cheetah", "walker", "reacher", "quadruped", "HalfCheetah-v5"])
def test_a_cuda_batched_env_returns_what_the_cpu_one_does(checkpoint: str) -> None:
    runs = [_rollout(NeuralSimVectorEnv(8, checkpoint, max_episode_steps=3, device=device), 5)
            for device in ("cpu", "cuda")]
    for cpu, cuda in zip(*runs, strict=True):
        cpu_obs, cuda_obs = cpu[0], cuda[0]
        for key in (cpu_obs if isinstance(cpu_obs, dict) else [None]):
            a, b = (cpu_obs, cuda_obs) if key is None else (cpu_obs[key], cuda_obs[key])
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)  # float32 rounding of one step
        if len(cpu) == 5:
            np.testing.assert_allclose(cuda[1], cpu[1], rtol=1e-4, atol=1e-4)
            np.testing.assert_array_equal(cuda[2] | cuda[3], cpu[2] | cpu[3])


def test_a_bfloat16_batched_env_steps_near_the_float32_one() -> None:
    runs = [_rollout(NeuralSimVectorEnv(16, "cheetah", max_episode_steps=50, precision=precision), 3)
            for precision in ("float32", "bfloat16")]
    assert runs[1][0][0]["velocity"].dtype == runs[0][0][0]["velocity"].dtype
    (f32_obs, f32_rewards, *_), (bf16_obs, bf16_rewards, *_) = runs[0][-1], runs[1][-1]
    np.testing.assert_allclose(bf16_obs["velocity"], f32_obs["velocity"], rtol=0.05, atol=0.05)
    np.testing.assert_allclose(bf16_rewards, f32_rewards, atol=0.02)
    assert not np.array_equal(bf16_obs["velocity"], f32_obs["velocity"])
    with pytest.raises(InputError, match="unknown precision 'half'"):
        NeuralSimVectorEnv(2, "cheetah", precision="half")


def test_soak_counts_the_episodes_of_its_episode_length_and_refuses_a_bad_one() -> None:
    from neural_sim.pipeline.soak import soak

    report = soak("NeuralSim/Pendulum-v0", steps=20_000, num_envs=4, max_episode_steps=10, log=lambda _: None)
    assert report["max_episode_steps"] == 10
    assert report["divergences"] == [] and report["env_steps"] == 20_000
    # NEXT_STEP autoreset: each env ends an episode every 10 steps and spends one step resetting.
    assert 4 * (5_000 // 11) <= report["episodes"] <= 4 * (5_000 // 10)
    default = soak("NeuralSim/Pendulum-v0", steps=20_000, num_envs=4, log=lambda _: None)
    assert default["max_episode_steps"] == gym.spec("NeuralSim/Pendulum-v0").max_episode_steps
    assert default["episodes"] <= 4 * (5_000 // default["max_episode_steps"])
    with pytest.raises(ValueError, match="max_episode_steps must be a positive"):
        soak("NeuralSim/Pendulum-v0", steps=20_000, num_envs=4, max_episode_steps=0)
