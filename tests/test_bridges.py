"""Task bridges: a learned step given the true next state scores exactly like the real step.

These isolate the bridge from model error: ``transition(previous, action, true_next)`` must
reproduce the real simulator's observation, reward, termination and info bit for bit.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from neural_sim.errors import InputError, UnknownNameError
from neural_sim.robots import DmControlTask, GymnasiumMujocoTask, known_robots, robot_spec


@pytest.mark.parametrize(("domain", "task"), [("cartpole", "swingup"), ("acrobot", "swingup"), ("reacher", "easy")])
def test_dm_control_transition_scores_like_the_real_step(domain: str, task: str) -> None:
    real, bridge = DmControlTask(domain, task, seed=3), DmControlTask(domain, task, seed=3)
    real.reset_random()
    bridge.reset_random()  # same seed: same task randomness (reacher's target)
    rng = np.random.default_rng(0)
    for _ in range(30):
        previous = real.get_state()
        action = rng.uniform(real.action_space.low, real.action_space.high)
        real.step_physics(action)
        bridge.transition(previous, action, real.get_state())
        for key, value in real.observation().items():
            np.testing.assert_array_equal(bridge.observation()[key], value)
        assert bridge.reward() == real.reward()  # cartpole's reward reads the control
        assert bridge.termination() == real.termination()


@pytest.mark.parametrize("env_id", ["HalfCheetah-v5", "Hopper-v5", "InvertedPendulum-v5"])
def test_gymnasium_transition_scores_like_the_real_env(env_id: str) -> None:
    real = gym.make(env_id).unwrapped
    bridge = GymnasiumMujocoTask(env_id)
    real.reset(seed=0)
    rng = np.random.default_rng(0)
    terminations = 0
    for _ in range(60):
        previous = np.concatenate([real.data.qpos, real.data.qvel])
        action = rng.uniform(-1, 1, size=real.action_space.shape).astype(np.float32)
        obs, reward, terminated, _, info = real.step(action)
        bridge.transition(previous, action, np.concatenate([real.data.qpos, real.data.qvel]))
        np.testing.assert_array_equal(bridge.observation(), obs)
        assert bridge.reward() == reward  # forward velocity uses the previous x exactly
        assert bridge.termination() == (terminated, False)
        assert bridge.step_info().keys() == info.keys()
        np.testing.assert_array_equal(list(bridge.step_info().values()), list(info.values()))
        terminations += terminated
    if env_id != "HalfCheetah-v5":
        assert terminations > 0  # unhealthy states were reached and reported


def test_gymnasium_physics_step_is_the_real_env_step() -> None:
    real = gym.make("Hopper-v5").unwrapped
    bridge = GymnasiumMujocoTask("Hopper-v5")
    start, _ = real.reset(seed=1)
    bridge.reset_to(np.concatenate([real.data.qpos, real.data.qvel]))
    np.testing.assert_array_equal(bridge.observation(), start)
    action = np.full(3, 0.5, dtype=np.float32)
    for _ in range(20):
        obs, reward, terminated, _, _ = real.step(action)
        bridge.step_physics(action)
        np.testing.assert_array_equal(bridge.observation(), obs)
        assert (bridge.reward(), bridge.termination()[0]) == (reward, terminated)


def test_gymnasium_robot_spec_reads_the_model() -> None:
    spec = robot_spec("HalfCheetah-v5")
    assert (spec.layout.nq, spec.layout.nv, spec.layout.nu) == (9, 9, 6)
    assert spec.layout.dt == pytest.approx(0.05)  # frame_skip 5 x timestep 0.01
    assert spec.layout.invariant_qpos == (0,)  # rootx
    assert spec.layout.angle_qpos == (2,)  # rooty, unlimited
    assert spec.layout.velocity_lag == pytest.approx(0.005)  # Euler integrator
    assert robot_spec("InvertedPendulum-v5").layout.velocity_lag == 0.0  # RK4
    assert spec.info.source == "gymnasium" and spec.info.episode_steps == 1000


def test_unknown_robots_and_bad_env_arguments_are_refused() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown robot 'HalfCheetah-v9'.*HalfCheetah-v5"):
        robot_spec("HalfCheetah-v9")
    with pytest.raises(UnknownNameError, match="not a Gymnasium MuJoCo env id"):
        GymnasiumMujocoTask("CartPole-v1")
    with pytest.raises(InputError, match="invalid keyword arguments for HalfCheetah-v5"):
        GymnasiumMujocoTask("HalfCheetah-v5", env_kwargs={"no_such_weight": 1.0})
    assert "acrobot" in known_robots() and "Walker2d-v5" in known_robots()
