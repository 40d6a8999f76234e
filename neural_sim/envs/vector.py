"""``NeuralSimVectorEnv``: N copies of a NeuralSim task stepped by one batched model call."""

from __future__ import annotations

import os
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from dm_control.suite import base
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from neural_sim.envs.parts import check_actions, check_states, load_env_parts
from neural_sim.errors import DivergenceError, InputError
from neural_sim.robots.batched import assign_rows, make_batched_task, observation_row

AUTORESET_MODES = (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP)


class NeuralSimVectorEnv(VectorEnv):
    """``num_envs`` independent episodes of one task, stepped together.

    Each step predicts all next states in one batched model call, then computes
    observations and rewards for the batch with the task's torch-native implementation
    (proven equal to the stock one) or, for tasks without one, the exact physics bridge
    one env at a time.

    Made by ``gymnasium.make_vec("NeuralSim/Acrobot-v0", num_envs=N)``; the keyword
    arguments of :class:`~neural_sim.envs.single.NeuralSimEnv` apply, plus:

    :param num_envs: number of environments.
    :param max_episode_steps: per-env truncation (registered default: the trusted horizon).
    :param autoreset_mode: ``AutoresetMode.NEXT_STEP`` (Gymnasium's default: an env that
        ended is reset on the following ``step``, whose action it ignores) or
        ``AutoresetMode.SAME_STEP`` (reset within the ending step; the final observation
        goes to ``infos["final_obs"]``).
    :param native_tasks: use torch-native task functions where available (default True).
    """

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int,
        checkpoint: str | os.PathLike[str] = "acrobot",
        task: str | base.Task | None = None,
        max_episode_steps: int | None = None,
        reset_states: np.ndarray | None = None,
        integrator: str | None = None,
        density_penalty: float = 0.0,
        device: str | torch.device = "cpu",
        revision: str | None = None,
        env_kwargs: dict[str, Any] | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        native_tasks: bool = True,
    ) -> None:
        if int(num_envs) < 1:
            raise InputError(f"num_envs must be >= 1, got {num_envs}")
        mode = AutoresetMode(autoreset_mode)
        if mode not in AUTORESET_MODES:
            raise InputError(f"autoreset_mode {mode} is not supported; accepted: {[m.value for m in AUTORESET_MODES]}")
        self.metadata = {**self.metadata, "autoreset_mode": mode}
        self.num_envs = int(num_envs)
        parts = load_env_parts(checkpoint, task, reset_states, integrator, density_penalty, device, revision,
                               env_kwargs)
        self.config, self.bridge, self.simulator = parts.config, parts.bridge, parts.simulator
        self.density, self.density_penalty = parts.density, parts.density_penalty
        self._reset_states = parts.reset_states
        self._layout = self.config.simulator.layout
        self._size = self._layout.state_size
        self.task = make_batched_task(self.bridge, native=native_tasks, num_envs=self.num_envs)
        self.single_observation_space = self.bridge.observation_space
        self.single_action_space = self.bridge.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.max_episode_steps = max_episode_steps
        self._states = torch.zeros(self.num_envs, self._size, dtype=torch.float64)
        self._steps = np.zeros(self.num_envs, dtype=np.int64)
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)
        self._rngs = [np.random.default_rng() for _ in range(self.num_envs)]
        self._started = False

    # -- gymnasium API --------------------------------------------------------------------
    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset every env (or those in ``options["reset_mask"]``).

        :param seed: an int seeds env ``i`` with ``seed + i``; a list gives one seed per env.
        :param options: ``"state"``: ``[num_envs, nq + nv]`` start states;
            ``"reset_mask"``: ``[num_envs]`` bools, reset only those envs.
        """
        if seed is not None:
            seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else list(seed)
            if len(seeds) != self.num_envs:
                raise InputError(f"got {len(seeds)} seeds for {self.num_envs} envs")
            self._rngs = [np.random.default_rng(s) for s in seeds]
        options = dict(options or {})
        unknown = sorted(set(options) - {"state", "reset_mask"})
        if unknown:
            raise InputError(f"unknown reset options {unknown}; accepted: ['reset_mask', 'state']")
        mask = np.ones(self.num_envs, dtype=bool) if options.get("reset_mask") is None else np.asarray(
            options["reset_mask"], dtype=bool
        )
        if mask.shape != (self.num_envs,):
            raise InputError(f"reset_mask must have shape ({self.num_envs},), got {mask.shape}")
        if options.get("state") is not None:
            states = check_states(np.asarray(options["state"], dtype=np.float64), "options['state']", self._layout,
                                  batched=True)
            if len(states) != self.num_envs:
                raise InputError(f"options['state'] needs one state per env ({self.num_envs}), got {len(states)}")
            self._states[mask] = torch.as_tensor(states[mask])
            self.task.begin_episodes(np.flatnonzero(mask), self._rngs)
        else:
            self._reset_from_buffer(mask)
        self._steps[mask] = 0
        self._needs_reset[mask] = False
        self._started = True
        return self.task.observations(self._states), {"state": self._states.numpy().copy()}

    def step(self, actions: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Advance every env one control step (see ``autoreset_mode`` for ended envs)."""
        if not self._started:
            raise gym.error.ResetNeeded("call reset() before step()")
        space = self.single_action_space
        actions = check_actions(actions, space, "actions", (self.num_envs, *space.shape))
        resetting = self._needs_reset.copy()  # NEXT_STEP: envs that ended last step
        stepping = ~resetting
        info: dict[str, Any] = {}
        states = self._states
        action_t = torch.as_tensor(actions, dtype=torch.float32, device=self.simulator.device)
        if self.density is not None:
            with torch.no_grad():
                log_density = self.density.fast_log_density(
                    states.to(device=self.simulator.device, dtype=torch.float32), action_t
                ).double().cpu()
                penalty = self.density.penalty(log_density)
        with torch.no_grad():
            predicted = self.simulator.fast_predict(
                states.to(device=self.simulator.device, dtype=torch.float32), action_t
            )
        predicted = predicted.double().cpu()
        if not torch.isfinite(predicted[torch.as_tensor(stepping)]).all():
            bad = int(np.flatnonzero(~torch.isfinite(predicted).all(-1).numpy() & stepping)[0])
            raise DivergenceError(
                f"env {bad}: the learned simulator produced a non-finite state from {states[bad].tolist()} "
                f"and action {actions[bad].tolist()}: it was driven far outside its training data"
            )
        self._states = torch.where(torch.as_tensor(stepping).unsqueeze(-1), predicted, states)
        self._steps[stepping] += 1
        if resetting.any():
            self._reset_from_buffer(resetting)
            self._steps[resetting] = 0
        observations, rewards, terminated, truncated = self.task.step(states, actions, self._states)
        if resetting.any():  # these envs start an episode: their observation is a reset's
            rows = np.flatnonzero(resetting)
            assign_rows(observations, resetting, self.task.observations(self._states[torch.as_tensor(rows)], rows))
        if self.max_episode_steps is not None:
            truncated = truncated | (self._steps >= self.max_episode_steps)
        terminated, truncated = terminated & stepping, truncated & stepping
        if self.density is not None:
            info["task_reward"] = rewards.copy()
            info["log_density"] = np.where(stepping, log_density.numpy(), 0.0)
            info["penalty"] = np.where(stepping, penalty.numpy(), 0.0)
            rewards = rewards + self.density_penalty * info["penalty"]
        rewards = np.where(stepping, rewards, 0.0)
        ended = terminated | truncated
        if self.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP and ended.any():
            info["final_obs"] = np.array(
                [observation_row(observations, i) if e else None for i, e in enumerate(ended)],
                dtype=object,
            )
            info["_final_obs"] = ended.copy()
            info["final_state"] = np.where(ended[:, None], self._states.numpy(), np.nan)
            self._reset_from_buffer(ended)
            self._steps[ended] = 0
            observations = self.task.observations(self._states)
        else:
            self._needs_reset = ended
        info["state"] = self._states.numpy().copy()
        return observations, rewards, terminated, truncated, info

    def close_extras(self, **kwargs: Any) -> None:
        """Free the task's physics."""
        self.bridge.close()

    # -- internals ------------------------------------------------------------------------
    def _reset_from_buffer(self, mask: np.ndarray) -> None:
        rows = np.flatnonzero(mask)
        for i in rows:
            self._states[i] = torch.as_tensor(self._reset_states[self._rngs[i].integers(len(self._reset_states))])
        self.task.begin_episodes(rows, self._rngs)
