"""The Gymnasium environments: API conformance, equality with shimmy, determinism, errors."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import shimmy  # noqa: F401  (registers the dm_control/... ids)
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import neural_sim
from neural_sim.envs.single import NeuralSimEnv
from neural_sim.errors import InputError, UnknownNameError

EXPECTED_IDS = {
    "NeuralSim/Acrobot-v0", "NeuralSim/acrobot-swingup-v0", "NeuralSim/acrobot-swingup_sparse-v0",
    "NeuralSim/Pendulum-v0", "NeuralSim/pendulum-swingup-v0",
    "NeuralSim/Cheetah-v0", "NeuralSim/cheetah-run-v0",
    "NeuralSim/Cartpole-v0", "NeuralSim/cartpole-balance-v0", "NeuralSim/cartpole-balance_sparse-v0",
    "NeuralSim/cartpole-swingup-v0", "NeuralSim/cartpole-swingup_sparse-v0",
    "NeuralSim/InvertedPendulum-v5",
    "NeuralSim/Reacher-v0", "NeuralSim/reacher-easy-v0", "NeuralSim/reacher-hard-v0",
    "NeuralSim/HalfCheetah-v5",
    "NeuralSim/Hopper-v0", "NeuralSim/hopper-stand-v0", "NeuralSim/hopper-hop-v0",
    "NeuralSim/Walker-v0", "NeuralSim/walker-stand-v0", "NeuralSim/walker-walk-v0", "NeuralSim/walker-run-v0",
    "NeuralSim/Quadruped-v0", "NeuralSim/quadruped-walk-v0", "NeuralSim/quadruped-run-v0",
    "NeuralSim/Ant-v5",
}
# NeuralSim id -> the shimmy or Gymnasium id it mirrors.
MIRRORS = {
    "NeuralSim/Acrobot-v0": "dm_control/acrobot-swingup-v0",
    "NeuralSim/acrobot-swingup-v0": "dm_control/acrobot-swingup-v0",
    "NeuralSim/acrobot-swingup_sparse-v0": "dm_control/acrobot-swingup_sparse-v0",
    "NeuralSim/Pendulum-v0": "dm_control/pendulum-swingup-v0",
    "NeuralSim/pendulum-swingup-v0": "dm_control/pendulum-swingup-v0",
    "NeuralSim/Cheetah-v0": "dm_control/cheetah-run-v0",
    "NeuralSim/cheetah-run-v0": "dm_control/cheetah-run-v0",
    "NeuralSim/Cartpole-v0": "dm_control/cartpole-swingup-v0",
    "NeuralSim/cartpole-balance-v0": "dm_control/cartpole-balance-v0",
    "NeuralSim/cartpole-balance_sparse-v0": "dm_control/cartpole-balance_sparse-v0",
    "NeuralSim/cartpole-swingup-v0": "dm_control/cartpole-swingup-v0",
    "NeuralSim/cartpole-swingup_sparse-v0": "dm_control/cartpole-swingup_sparse-v0",
    "NeuralSim/InvertedPendulum-v5": "InvertedPendulum-v5",
    "NeuralSim/Reacher-v0": "dm_control/reacher-easy-v0",
    "NeuralSim/reacher-easy-v0": "dm_control/reacher-easy-v0",
    "NeuralSim/reacher-hard-v0": "dm_control/reacher-hard-v0",
    "NeuralSim/HalfCheetah-v5": "HalfCheetah-v5",
    "NeuralSim/Hopper-v0": "dm_control/hopper-hop-v0",
    "NeuralSim/hopper-stand-v0": "dm_control/hopper-stand-v0",
    "NeuralSim/hopper-hop-v0": "dm_control/hopper-hop-v0",
    "NeuralSim/Walker-v0": "dm_control/walker-walk-v0",
    "NeuralSim/walker-stand-v0": "dm_control/walker-stand-v0",
    "NeuralSim/walker-walk-v0": "dm_control/walker-walk-v0",
    "NeuralSim/walker-run-v0": "dm_control/walker-run-v0",
    "NeuralSim/Quadruped-v0": "dm_control/quadruped-walk-v0",
    "NeuralSim/quadruped-walk-v0": "dm_control/quadruped-walk-v0",
    "NeuralSim/quadruped-run-v0": "dm_control/quadruped-run-v0",
    "NeuralSim/Ant-v5": "Ant-v5",
}
DM_CONTROL_MIRRORS = sorted({m for m in MIRRORS.values() if m.startswith("dm_control/")})
GYMNASIUM_MIRRORS = sorted({m for m in MIRRORS.values() if not m.startswith("dm_control/")})


def test_import_registers_every_expected_id() -> None:
    assert EXPECTED_IDS <= set(neural_sim.ENV_IDS)
    assert EXPECTED_IDS <= set(gym.registry)


def test_module_prefixed_id_works() -> None:
    env = gym.make("neural_sim:NeuralSim/Acrobot-v0")
    env.reset(seed=0)
    env.close()


@pytest.mark.parametrize("env_id", sorted(EXPECTED_IDS))
def test_every_id_passes_gymnasium_and_sb3_env_checkers(env_id: str) -> None:
    env = gym.make(env_id)
    gym_check_env(env.unwrapped, skip_render_check=True)
    if has_scalar_box(env.observation_space):
        # shimmy turns dm_control's scalar observations (walker's height) into 0-d Boxes,
        # which SB3 cannot take, for shimmy's own env as for ours; flattened, both work.
        with pytest.raises(ValueError, match="0d arrays"):
            sb3_check_env(gym.make(MIRRORS[env_id]).unwrapped)
        sb3_check_env(gym.wrappers.FlattenObservation(env))
    else:
        sb3_check_env(env.unwrapped)
    env.close()


def has_scalar_box(space: gym.Space) -> bool:
    return isinstance(space, gym.spaces.Dict) and any(s.shape == () for s in space.spaces.values())


@pytest.mark.parametrize("env_id", sorted(EXPECTED_IDS))
def test_spaces_are_identical_to_shimmy(env_id: str) -> None:
    ours, real = gym.make(env_id), gym.make(MIRRORS[env_id])
    assert ours.observation_space == real.observation_space
    assert ours.action_space == real.action_space
    assert ours.action_space.dtype == real.action_space.dtype


# Contact solvers warm-start from the previous step's accelerations, which (qpos, qvel)
# do not carry: after a reset from the same state the oracle and shimmy differ in float
# rounding (about 1e-13 after 200 cheetah steps). Robots without contacts match bit for bit.
ORACLE_TOLERANCE = {"cheetah": 1e-9, "hopper": 1e-9, "walker": 1e-9, "quadruped": 1e-9}


@pytest.mark.parametrize("env_id", DM_CONTROL_MIRRORS)
def test_physics_backend_equals_shimmy(env_id: str) -> None:
    domain, task = env_id.split("/")[1].rsplit("-", 1)[0].split("-")
    tolerance = ORACLE_TOLERANCE.get(domain, 0.0)
    real = gym.make(env_id)
    oracle = NeuralSimEnv(checkpoint=domain, task=task, backend="physics")
    obs_real, _ = real.reset(seed=7)
    physics = real.unwrapped.physics
    start = np.concatenate([physics.data.qpos, physics.data.qvel])
    # The same seed draws the same task-level episode state (reacher's target) as shimmy.
    obs_oracle, info = oracle.reset(seed=7, options={"state": start})
    np.testing.assert_array_equal(info["state"], start)
    for key in obs_real:
        np.testing.assert_array_equal(obs_oracle[key], obs_real[key])
    rng = np.random.default_rng(0)
    for _ in range(200):
        action = rng.uniform(real.action_space.low, real.action_space.high)
        o1, r1, term1, _, _ = real.step(action)
        o2, r2, term2, _, _ = oracle.step(action)
        for key in o1:
            np.testing.assert_allclose(o2[key], o1[key], rtol=0, atol=tolerance)
        assert abs(r2 - r1) <= tolerance and term2 == term1


@pytest.mark.parametrize("env_id", GYMNASIUM_MIRRORS)
def test_physics_backend_equals_the_real_gymnasium_env(env_id: str) -> None:
    real = gym.make(env_id)
    oracle = NeuralSimEnv(checkpoint=env_id, backend="physics")
    obs_real, _ = real.reset(seed=7)
    data = real.unwrapped.data
    obs_oracle, _ = oracle.reset(options={"state": np.concatenate([data.qpos, data.qvel])})
    np.testing.assert_array_equal(obs_oracle, obs_real)
    rng = np.random.default_rng(0)
    steps = 0
    for _ in range(200):
        action = rng.uniform(real.action_space.low, real.action_space.high).astype(np.float32)
        o1, r1, term1, _, info1 = real.step(action)
        o2, r2, term2, _, info2 = oracle.step(action)
        np.testing.assert_array_equal(o2, o1)
        assert (r2, term2) == (r1, term1)
        assert {k: info2[k] for k in info1} == info1  # the real env's own step info, passed through
        steps += 1
        if term1:
            break
    assert steps > 1


def test_neural_step_reports_the_task_values_of_the_predicted_state() -> None:
    env = NeuralSimEnv("acrobot")
    env.reset(seed=0)
    obs, reward, _, _, info = env.step(np.array([0.5]))
    oracle = NeuralSimEnv("acrobot", backend="physics")
    obs_at, _ = oracle.reset(options={"state": info["state"]})
    for key in obs:
        np.testing.assert_allclose(obs[key], obs_at[key], rtol=0, atol=1e-12)
    assert reward == pytest.approx(oracle.bridge.reward(), abs=1e-12)


def test_same_seed_gives_the_same_trajectory() -> None:
    def run(seed: int) -> list[np.ndarray]:
        env = gym.make("NeuralSim/Acrobot-v0")
        env.action_space.seed(seed)
        _, info = env.reset(seed=seed)
        states = [info["state"]]
        for _ in range(20):
            states.append(env.step(env.action_space.sample())[4]["state"])
        return states

    a, b, c = run(3), run(3), run(4)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


def test_reset_starts_from_real_buffer_states() -> None:
    env = NeuralSimEnv("pendulum")
    buffer = env._reset_states
    for seed in range(5):
        _, info = env.reset(seed=seed)
        assert any(np.array_equal(info["state"], row) for row in buffer)


def test_reset_from_a_given_state_and_from_a_user_buffer() -> None:
    env = NeuralSimEnv("acrobot")
    _, info = env.reset(options={"state": [0.1, 0.2, 0.3, 0.4]})
    np.testing.assert_array_equal(info["state"], [0.1, 0.2, 0.3, 0.4])
    mine = np.array([[1.0, 2.0, 0.0, 0.0], [3.0, 1.0, 0.5, 0.5]])
    env = gym.make("NeuralSim/Acrobot-v0", reset_states=mine)
    for seed in range(4):
        _, info = env.reset(seed=seed)
        assert any(np.array_equal(info["state"], row) for row in mine)


@pytest.mark.parametrize(("env_id", "real_id"), [("NeuralSim/Reacher-v0", "dm_control/reacher-easy-v0"),
                                              ("NeuralSim/InvertedPendulum-v5", "InvertedPendulum-v5")])
def test_reset_from_task_starts_where_the_real_env_starts_on_the_same_seed(env_id: str, real_id: str) -> None:
    env, real = gym.make(env_id, reset_from="task"), gym.make(real_id)
    for seed in (3, 7):
        obs, info = env.reset(seed=seed)
        real_obs, _ = real.reset(seed=seed)
        for key in (real_obs if isinstance(real_obs, dict) else [None]):
            np.testing.assert_array_equal(obs[key] if key else obs, real_obs[key] if key else real_obs)
        assert not any(np.array_equal(info["state"], row) for row in env.unwrapped.reset_states)
    assert env.unwrapped.physics_twin().reset_from == "task"
    gym_check_env(env.unwrapped, skip_render_check=True)
    with pytest.raises(UnknownNameError, match=r"unknown reset_from 'stock'.*\['buffer', 'task'\]"):
        NeuralSimEnv("reacher", reset_from="stock")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="exclude each other"):
        NeuralSimEnv("reacher", reset_from="task", reset_states=env.unwrapped.reset_states)


def test_truncation_defaults_to_the_trusted_horizon_and_can_be_overridden() -> None:
    trusted = neural_sim.checkpoints.read_config(neural_sim.hub.resolve_checkpoint("pendulum")).trusted_horizon
    assert gym.spec("NeuralSim/Pendulum-v0").max_episode_steps == trusted
    env = gym.make("NeuralSim/Pendulum-v0", max_episode_steps=5)
    env.reset(seed=0)
    flags = [env.step(np.zeros(1))[3] for _ in range(5)]
    assert flags == [False] * 4 + [True]


def test_other_checkpoint_and_task_can_be_chosen_at_make(tiny_checkpoint: Path) -> None:
    env = gym.make("NeuralSim/acrobot-swingup_sparse-v0", checkpoint=str(tiny_checkpoint))
    assert env.unwrapped.task_name == "swingup_sparse"
    assert env.unwrapped.config.training["command"] == "pytest"
    env.reset(seed=0)
    _, reward, *_ = env.step(np.zeros(1))
    assert reward in (0.0, 1.0)  # the sparse task's reward


def test_render_returns_an_image_of_the_predicted_state() -> None:
    env = gym.make("NeuralSim/Acrobot-v0", render_mode="rgb_array", render_kwargs={"width": 64, "height": 48})
    env.reset(seed=0)
    first = env.render()
    for _ in range(30):
        env.step(np.ones(1))
    later = env.render()
    assert first.shape == (48, 64, 3) and first.dtype == np.uint8
    assert first.std() > 0 and not np.array_equal(first, later)


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (np.zeros(2), r"action must have shape \(1,\)"),
        (np.array([np.nan]), "NaN"),
        (np.array([1.5]), "outside the action space"),
    ],
)
def test_bad_actions_raise_clear_errors(action: np.ndarray, message: str) -> None:
    env = NeuralSimEnv("acrobot")
    env.reset(seed=0)
    with pytest.raises(InputError, match=message):
        env.step(action)


def test_bad_reset_inputs_raise_clear_errors() -> None:
    env = NeuralSimEnv("acrobot")
    with pytest.raises(InputError, match=r"must have shape \[4\]"):
        env.reset(options={"state": [0.0, 1.0]})
    with pytest.raises(InputError, match="NaN"):
        env.reset(options={"state": [0.0, np.nan, 0.0, 0.0]})
    with pytest.raises(InputError, match=r"unknown reset options \['qpos'\]"):
        env.reset(options={"qpos": [0.0, 0.0]})
    with pytest.raises(InputError, match=r"reset_states must have shape \[N, 4\]"):
        NeuralSimEnv("acrobot", reset_states=np.zeros((3, 5)))


def test_unknown_names_raise_errors_that_list_what_is_accepted() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown task 'balance'.*\['swingup', 'swingup_sparse'\]"):
        NeuralSimEnv("acrobot", task="balance")
    with pytest.raises(UnknownNameError, match=r"unknown backend 'mujoco'.*'neural', 'physics'"):
        NeuralSimEnv("acrobot", backend="mujoco")  # type: ignore[arg-type]
    with pytest.raises(gym.error.NameNotFound):
        gym.make("NeuralSim/Humanoid-v0")


def test_step_before_reset_is_refused() -> None:
    with pytest.raises(gym.error.ResetNeeded):
        NeuralSimEnv("acrobot").step(np.zeros(1))


def test_reacher_targets_are_drawn_per_episode_from_the_seed() -> None:
    env = gym.make("NeuralSim/Reacher-v0")
    first = env.reset(seed=3)[0]["to_target"]
    target = env.unwrapped.bridge.physics.named.model.geom_pos["target"].copy()
    env.reset()
    assert not np.array_equal(env.unwrapped.bridge.physics.named.model.geom_pos["target"], target)
    np.testing.assert_array_equal(env.reset(seed=3)[0]["to_target"], first)
    real = gym.make("dm_control/reacher-easy-v0")
    real.reset(seed=3)
    np.testing.assert_array_equal(real.unwrapped.physics.named.model.geom_pos["target"], target)


def test_batched_env_refuses_tasks_with_per_episode_state_it_cannot_batch() -> None:
    with pytest.raises(InputError, match="state outside \\(qpos, qvel\\)"):
        gym.make_vec("NeuralSim/Reacher-v0", num_envs=2, native_tasks=False)


def test_episodes_never_start_in_a_state_the_task_ends_at_once() -> None:
    # Random-action data lies mostly where InvertedPendulum's pole has fallen (beyond 0.2 rad).
    env = NeuralSimEnv("InvertedPendulum-v5")
    assert len(env.reset_states) > 0 and (np.abs(env.reset_states[:, 1]) <= 0.2).all()
    fallen = np.array([[0.0, 0.5, 0.0, 0.0], [0.0, -0.3, 0.0, 0.0]])
    with pytest.raises(InputError, match=r"every one of the 2 states in reset_states .* ends an episode in"):
        NeuralSimEnv("InvertedPendulum-v5", reset_states=fallen)
    kept = NeuralSimEnv("InvertedPendulum-v5", reset_states=np.vstack([fallen, np.zeros((1, 4))])).reset_states
    np.testing.assert_array_equal(kept, np.zeros((1, 4)))
