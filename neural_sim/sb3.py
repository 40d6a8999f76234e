"""Stable-Baselines3 ``VecEnv`` over the batched NeuralSim env.

SB3 does not take Gymnasium vector envs: it expects an ended env to be reset within the
same ``step`` and its last observation in ``infos[i]["terminal_observation"]``. This adapter
runs :class:`~neural_sim.envs.vector.NeuralSimVectorEnv` in ``SAME_STEP`` autoreset mode
and translates::

    from stable_baselines3 import PPO
    import neural_sim.sb3
    model = PPO("MultiInputPolicy", neural_sim.sb3.make_vec_env("NeuralSim/Acrobot-v0", n_envs=256))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from neural_sim.envs.vector import NeuralSimVectorEnv


class NeuralSimVecEnv(VecEnv):
    """SB3 view of a :class:`NeuralSimVectorEnv` created in ``SAME_STEP`` mode."""

    def __init__(self, env: NeuralSimVectorEnv) -> None:
        if env.metadata["autoreset_mode"] != AutoresetMode.SAME_STEP:
            raise ValueError("NeuralSimVecEnv needs a NeuralSimVectorEnv with autoreset_mode=SAME_STEP")
        self.env = env
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
        self._actions: np.ndarray | None = None

    def reset(self) -> VecEnvObs:
        """Reset every env, using seeds given to :meth:`seed` once."""
        seeds = None if all(s is None for s in self._seeds) else self._seeds
        obs, _ = self.env.reset(seed=seeds)  # type: ignore[arg-type]
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """Remember the actions for :meth:`step_wait`."""
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        """Step all envs; ended envs are already reset, their last observation is in ``infos``."""
        # SB3 calls step_async (which sets the actions) before every step_wait.
        obs, rewards, terminated, truncated, info = self.env.step(cast(np.ndarray, self._actions))
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        i: int | np.intp
        for i in np.flatnonzero(dones):
            infos[i]["terminal_observation"] = info["final_obs"][i]
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        for key in ("task_reward", "log_density", "penalty"):
            if key in info:
                for i in range(self.num_envs):
                    infos[i][key] = float(info[key][i])
        if "out_of_domain" in info:  # truncated envs whose step left the model's data
            for i in np.flatnonzero(info["out_of_domain"]):
                infos[i]["out_of_domain"] = True
                infos[i]["out_of_domain_dims"] = info["out_of_domain_dims"][i]
        return obs, rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        """Free the env."""
        self.env.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The batched env's attribute, once per requested env index."""
        return [getattr(self.env, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute of the batched env (shared by all envs)."""
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        """Call a method of the batched env once per requested index."""
        return [getattr(self.env, method_name)(*method_args, **method_kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """The batched env is never wrapped."""
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        """No rendering from the batched env."""
        return [None for _ in range(self.num_envs)]


def make_vec_env(env_id: str, n_envs: int, seed: int | None = None, **kwargs: Any) -> NeuralSimVecEnv:
    """An SB3 ``VecEnv`` of ``n_envs`` copies of a NeuralSim id, stepped as one batch.

    :param env_id: a registered ``NeuralSim/...`` id.
    :param n_envs: number of environments.
    :param seed: seeds env ``i`` with ``seed + i`` at the first reset.
    :param kwargs: overrides of the id's keyword arguments (``checkpoint``, ``task``,
        ``max_episode_steps``, ``density_penalty``, ``device``, ...).
    """
    spec = gym.spec(env_id)
    options = {**spec.kwargs, "max_episode_steps": spec.max_episode_steps, **kwargs}
    vec = NeuralSimVecEnv(NeuralSimVectorEnv(n_envs, autoreset_mode=AutoresetMode.SAME_STEP, **options))
    if seed is not None:
        vec.seed(seed)
    return vec
