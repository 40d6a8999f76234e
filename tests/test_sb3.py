"""Off-the-shelf Stable-Baselines3 agents train on NeuralSim ids with no code changes."""

from __future__ import annotations

import gymnasium as gym
from stable_baselines3 import SAC


def test_sac_trains_a_few_hundred_steps_unchanged() -> None:
    env = gym.make("NeuralSim/Acrobot-v0")
    model = SAC("MultiInputPolicy", env, learning_starts=100, batch_size=32, train_freq=1,
                policy_kwargs={"net_arch": [32, 32]}, seed=0, verbose=0)
    model.learn(total_timesteps=300)
    assert model.num_timesteps == 300
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action.astype(env.action_space.dtype))
