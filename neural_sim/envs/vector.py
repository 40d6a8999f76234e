"""``NeuralSimVectorEnv``: N copies of a NeuralSim task stepped by one batched model call."""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from dm_control.suite import base
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from neural_sim.envs.loading import as_float_array, check_actions, check_states, load_env_parts
from neural_sim.envs.out_of_domain import DomainGuard, OutOfDomain
from neural_sim.errors import InputError
from neural_sim.model.activations import advance as advance_activations
from neural_sim.robots.batched import assign_rows, make_batched_task, merge_rows, observation_row
from neural_sim.robots.batched.base import to_host

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
    :param out_of_domain: as the single env's, per env: an env whose step leaves the data
        domain is truncated (``infos["out_of_domain"]`` marks it, ``infos["out_of_domain_dims"]``
        says what was out) and the others are untouched; ``"raise"`` and ``"ignore"`` as there.
    :param precision: ``"float32"`` (default) or ``"bfloat16"``, the model's hidden layers
        (see the single env's): 1.34x the env-steps/s of float32 for cheetah-run at N=4096 on a
        2-core CPU with AVX512-BF16 (``neural-sim bench-speed --bfloat16``).
    """

    # Not a ClassVar: gymnasium declares ``metadata`` an instance attribute (reassigned in __init__).
    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}  # noqa: RUF012

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
        out_of_domain: OutOfDomain = "truncate",
        precision: str = "float32",
    ) -> None:
        if int(num_envs) < 1:
            raise InputError(f"num_envs must be >= 1, got {num_envs}")
        mode = AutoresetMode(autoreset_mode)
        if mode not in AUTORESET_MODES:
            raise InputError(f"autoreset_mode {mode} is not supported; accepted: {[m.value for m in AUTORESET_MODES]}")
        self.metadata = {**self.metadata, "autoreset_mode": mode}
        self.num_envs = int(num_envs)
        parts = load_env_parts(checkpoint, task, reset_states, integrator, density_penalty, device, revision,
                               env_kwargs, precision)
        self.config, self.bridge, self.simulator = parts.config, parts.bridge, parts.simulator
        self.density, self.density_penalty = parts.density, parts.density_penalty
        # States, activations and the reset buffer live on the model's device across steps;
        # only what Gymnasium returns (observations, rewards, flags, info) comes to the host.
        self.device = self.simulator.device
        self._reset_states = torch.as_tensor(parts.reset_states, dtype=torch.float64, device=self.device)
        self._layout = self.config.simulator.layout
        self._size = self._layout.state_size
        self._guard = DomainGuard(self.config.domain, self._layout, out_of_domain)
        self.out_of_domain: OutOfDomain = self._guard.mode
        self.task = make_batched_task(self.bridge, native=native_tasks, num_envs=self.num_envs, device=self.device)
        self.single_observation_space = self.bridge.observation_space
        self.single_action_space: gym.spaces.Box = self.bridge.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.max_episode_steps = max_episode_steps
        self._states = torch.zeros(self.num_envs, self._size, dtype=torch.float64, device=self.device)
        # Each env's actuator activations (zero at episode starts): this env advances them by
        # MuJoCo's rule, feeds them to a model that takes them and passes them to the task.
        self._activation_rule = None if self.bridge.activation is None else self.bridge.activation.spec
        self._activations = torch.zeros(self.num_envs, self.bridge.na, dtype=torch.float64, device=self.device)
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
        options = dict(options or {})
        unknown = sorted(set(options) - {"state", "reset_mask"})
        if unknown:
            raise InputError(f"unknown reset options {unknown}; accepted: ['reset_mask', 'state']")
        mask = np.ones(self.num_envs, dtype=bool)
        if options.get("reset_mask") is not None:
            given = as_float_array(options["reset_mask"], "reset_mask")
            if given.shape != (self.num_envs,) or not np.isin(given, (0.0, 1.0)).all():
                raise InputError(f"reset_mask must be {self.num_envs} bools (shape ({self.num_envs},)), got "
                                 f"{np.asarray(options['reset_mask']).tolist()!r:.200}")
            mask = given.astype(bool)
        states = None
        if options.get("state") is not None:
            states = check_states(options["state"], "options['state']", self._layout, batched=True)
            if len(states) != self.num_envs:
                raise InputError(f"options['state'] needs one state per env ({self.num_envs}), got {len(states)}")
        if seed is not None:  # checked, like everything above, before anything changes
            self._rngs = [np.random.default_rng(s) for s in self._check_seeds(seed)]
        if states is not None:
            on_device = self._on_device(mask)
            self._states[on_device] = torch.as_tensor(states[mask], device=self.device)
            self._activations[on_device] = 0.0
            self.task.begin_episodes(np.flatnonzero(mask), self._rngs)
        else:
            self._reset_from_buffer(mask)
        self._steps[mask] = 0  # also for given start states
        self._needs_reset[mask] = False
        self._started = True
        return self.task.observations(self._states), {"state": to_host(self._states, copy=True)}

    def step(self, actions: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Advance every env one control step (see ``autoreset_mode`` for ended envs)."""
        if not self._started:
            raise gym.error.ResetNeeded("call reset() before step()")
        space = self.single_action_space
        actions = check_actions(actions, space, "actions", (self.num_envs, *space.shape))
        resetting = self._needs_reset  # NEXT_STEP: envs that ended last step; they only reset
        # Only the envs that step are predicted, scored and checked (a reset row's transition
        # would be meaningless); most steps, that is every env, and no indexing is done.
        rows = np.flatnonzero(~resetting) if resetting.any() else None
        if rows is not None and len(rows) == 0:
            return self._reset_all_ended()
        index = None if rows is None else self._on_device(rows)
        previous = self._states if index is None else self._states[index]
        stepped_actions = actions if rows is None else actions[rows]
        info: dict[str, Any] = {}
        with torch.no_grad():
            actions_in = torch.as_tensor(stepped_actions, dtype=torch.float64, device=self.device)  # moved once
            state_in, action_in = previous.float(), actions_in.float()
            if self.density is not None:
                log_density = self.density.fast_log_density(state_in, action_in).double()
                penalty = self.density.penalty(log_density)
            model_in, after = action_in, None
            if self._activation_rule is not None:
                activations = self._activations if index is None else self._activations[index]
                after = advance_activations(self._activation_rule, activations, actions_in)
                if self._layout.activations is not None:
                    model_in = torch.cat([action_in, activations.to(action_in)], dim=-1)
            predicted = self.simulator.fast_predict(state_in, model_in).double()
        left = self._check_domain(previous, predicted, stepped_actions, info)
        if left is not None and left.any():
            went_nowhere = self._on_device(left)
            predicted[went_nowhere] = previous[went_nowhere]  # steps that went nowhere
        observations, rewards, terminated, truncated = self.task.step(
            previous, stepped_actions, predicted, rows, None if after is None else to_host(after))
        if left is not None:
            truncated = truncated | left
        if index is None:
            self._states = predicted
        else:
            self._states[index] = predicted
        if after is not None:
            if index is None:
                self._activations = after
            else:
                self._activations[index] = after
        if self.density is not None:
            info["task_reward"] = rewards.copy()
            info["log_density"], info["penalty"] = to_host(log_density), to_host(penalty)
            rewards = rewards + self.density_penalty * info["penalty"]
        if rows is not None:  # the resetting envs: a reset's observation, no reward, not ended
            starting = np.flatnonzero(resetting)
            self._reset_from_buffer(resetting)
            observations = merge_rows(self.num_envs, rows, observations, starting,
                                      self.task.observations(self._states[self._on_device(starting)], starting))
            rewards, terminated, truncated = (_scatter(self.num_envs, rows, values)
                                              for values in (rewards, terminated, truncated))
            for key in ("task_reward", "log_density", "penalty", "out_of_domain", "out_of_domain_dims"):
                if key in info:
                    info[key] = _scatter(self.num_envs, rows, info[key])
            self._steps[rows] += 1
        else:
            self._steps += 1
        if self.max_episode_steps is not None:
            truncated = truncated | (self._steps >= self.max_episode_steps)
        if rows is not None:
            truncated[resetting] = False
        ended = terminated | truncated
        if self.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP and ended.any():
            info["final_obs"] = np.array(
                [observation_row(observations, i) if e else None for i, e in enumerate(ended)],
                dtype=object,
            )
            info["_final_obs"] = ended.copy()
            info["final_state"] = np.where(ended[:, None], to_host(self._states), np.nan)
            self._reset_from_buffer(ended)
            restarted = np.flatnonzero(ended)  # only their observations change
            assign_rows(observations, ended, self.task.observations(self._states[self._on_device(restarted)],
                                                                    restarted))
        else:
            self._needs_reset = ended
        info["state"] = to_host(self._states, copy=True)
        return observations, rewards, terminated, truncated, info

    def _reset_all_ended(self) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """A NEXT_STEP step in which every env ended last step: each starts an episode, none steps."""
        self._reset_from_buffer(self._needs_reset)
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)
        zeros, no = np.zeros(self.num_envs), np.zeros(self.num_envs, dtype=bool)
        info: dict[str, Any] = {}
        if self.density is not None:
            info.update(task_reward=zeros.copy(), log_density=zeros.copy(), penalty=zeros.copy())
        if self._guard.active:
            info["out_of_domain"] = no.copy()
        info["state"] = to_host(self._states, copy=True)
        return self.task.observations(self._states), zeros, no, no.copy(), info

    def _check_domain(self, previous: torch.Tensor, predicted: torch.Tensor, actions: np.ndarray,
                      info: dict[str, Any]) -> np.ndarray | None:
        """Which of the stepped envs left the data domain (``None`` under ``"ignore"``); fills ``info``."""
        checked = self._guard.check(previous, predicted, actions, "NeuralSimVectorEnv.step")
        if checked is None:
            return None
        left, dims = checked
        info["out_of_domain"] = left
        if dims is not None:
            info["out_of_domain_dims"] = dims
        return left

    def close_extras(self, **kwargs: Any) -> None:
        """Free the task's physics."""
        self.bridge.close()

    # -- internals ------------------------------------------------------------------------
    def _check_seeds(self, seed: object) -> list[int | None]:
        """One seed per env from an int (env ``i`` gets ``seed + i``) or a list of ``num_envs``
        ints (``None``: that env draws fresh entropy)."""
        def is_int(value: object) -> bool:
            return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

        if is_int(seed):
            seeds: list[int | None] = [int(seed) + i for i in range(self.num_envs)]  # type: ignore[call-overload]
        elif isinstance(seed, (list, tuple)) and all(s is None or is_int(s) for s in seed):
            seeds = [None if s is None else int(s) for s in seed]
        else:
            raise InputError(f"seed must be an int or a list of {self.num_envs} ints, got {seed!r}")
        if len(seeds) != self.num_envs:
            raise InputError(f"seed: got {len(seeds)} seeds for {self.num_envs} envs")
        if any(s is not None and s < 0 for s in seeds):
            raise InputError(f"seed must be >= 0, got {seed!r}")
        return seeds

    def _on_device(self, values: np.ndarray) -> torch.Tensor:
        """Row indices or a row mask, as a tensor on the states' device."""
        return torch.as_tensor(values, device=self.device)

    def _reset_from_buffer(self, mask: np.ndarray) -> None:
        """Envs ``mask`` start an episode from a buffer state drawn with their own generator."""
        rows = np.flatnonzero(mask)
        self._steps[rows] = 0
        on_device = self._on_device(rows)
        self._activations[on_device] = 0.0
        drawn = [self._rngs[i].integers(len(self._reset_states)) for i in rows]  # each env's own generator
        self._states[on_device] = self._reset_states[torch.as_tensor(drawn, dtype=torch.int64, device=self.device)]
        self.task.begin_episodes(rows, self._rngs)


def _scatter(num_envs: int, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A ``[num_envs]`` array holding ``values`` at ``rows`` and zeros (``False``, ``None``) elsewhere."""
    full = np.zeros(num_envs, dtype=values.dtype) if values.dtype != object else np.full(num_envs, None, dtype=object)
    full[rows] = values
    return full
