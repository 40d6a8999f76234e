"""``NeuralSimEnv``: a stock task whose physics is a learned simulator."""

from __future__ import annotations

import os
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from dm_control.suite import base

from neural_sim.envs.loading import check_actions, check_states, load_env_parts
from neural_sim.envs.out_of_domain import DomainGuard, OutOfDomain
from neural_sim.errors import InputError, UnknownNameError
from neural_sim.model.simulator import Simulator

Backend = Literal["neural", "physics"]
BACKENDS = ("neural", "physics")
RESET_OPTIONS = ("state",)
ResetFrom = Literal["buffer", "task"]
RESET_FROM = ("buffer", "task")


class NeuralSimEnv(gym.Env[Any, np.ndarray]):
    """A stock robot task stepped by a learned simulator.

    ## Description
    Each step advances the physics state ``(qpos, qvel)`` with the checkpoint's Neural ODE,
    writes the predicted state into the real task's MuJoCo ``Physics``, runs
    ``mj_forward``, and returns the stock task's own observation, reward and termination
    for it. Observation and action spaces are identical to the real env's (shimmy's
    ``dm_control/<domain>-<task>-v0``, or Gymnasium's ``HalfCheetah-v5`` and co.), so
    policies move freely between the two. Gymnasium robots' ``info`` carries the real
    env's own step info (``x_velocity``, reward terms).

    ## Starting State
    A state drawn (with the env's seeded RNG) from the checkpoint's real-buffer states,
    or the caller's ``reset_states``; with ``reset_from="task"``, the stock task's own
    initial state (its ``initialize_episode``, or a Gymnasium env's ``reset``).
    ``reset(options={"state": s})`` starts at ``s``.

    ## Rewards
    The stock task's reward of the new state, plus ``density_penalty * penalty`` when the
    density penalty is on (see Arguments).

    ## Episode End
    Terminated when the stock task says so (discount 0); truncated after
    ``max_episode_steps`` (registered default: the checkpoint's episode length), and truncated
    when a step leaves the region the model's training data covers (see ``out_of_domain``).

    ## Arguments
    :param checkpoint: shipped robot name (``"acrobot"``), checkpoint folder, or Hugging
        Face Hub repo id (``"org/name"``, downloaded on first use, then loaded offline).
    :param task: stock task name (default: the checkpoint's default task), or your own
        ``dm_control.suite.base.Task`` instance for dm_control and MJCF robots: its
        ``get_observation``/``get_reward``/``get_termination`` read the predicted physics.
    :param backend: ``"neural"`` (the learned model) or ``"physics"`` (real MuJoCo
        stepping behind the same class: the oracle that proves the bridge).
    :param reset_states: ``[N, nq + nv]`` real states to start episodes from, replacing
        the checkpoint's buffer.
    :param reset_from: ``"buffer"`` (default: the paper's design, states met in real data,
        which cover where an agent goes) or ``"task"`` (the stock task's initial states, the
        distribution the real env is scored from; e.g. reacher starts at rest).
    :param integrator: override the checkpoint's integrator (``"rk4"``, ``"dopri5"`` or ``"euler"``).
    :param density_penalty: weight of the density penalty added to the task reward (0, the
        default, turns it off). ``penalty = sigmoid((log p(s, a) - c) / k) - 1`` in
        ``(-1, 0)`` for the state the step starts from and the action taken; ``c`` and
        ``k`` are calibrated per checkpoint. ``info`` then carries ``task_reward``,
        ``log_density`` and ``penalty``.
    :param device: torch device of the model.
    :param revision: Hub branch, tag or commit to pin (Hub repo ids only).
    :param env_kwargs: keyword arguments of the source env's constructor, for Gymnasium
        robots (``{"ctrl_cost_weight": 0.2}`` as ``gymnasium.make("HalfCheetah-v5", ...)``
        takes them); the real env computes observation, reward and termination with them.
    :param out_of_domain: what a step that starts or lands outside the checkpoint's data
        domain (or predicts a non-finite value) does. ``"truncate"`` (default): the episode
        is truncated, the env stays at the step's start state (observation and reward are
        those of a step that went nowhere), ``info["out_of_domain"]`` is ``True`` and
        ``info["out_of_domain_dims"]`` names what was out; a warning is shown the first time
        in a process. ``"raise"``: an :class:`~neural_sim.errors.OutOfDomainError`.
        ``"ignore"``: the step is taken as if trusted (a non-finite one still raises
        :class:`~neural_sim.errors.DivergenceError`). Every step of the neural backend
        carries ``info["out_of_domain"]`` unless ``"ignore"``.
    :param precision: ``"float32"`` (default) or ``"bfloat16"``: the model's hidden layers in
        bfloat16 (:meth:`~neural_sim.model.simulator.Simulator.set_fast_precision`), for
        large batches on hardware with bfloat16 matmuls; slower at batch 1.
    :param render_mode: ``None`` or ``"rgb_array"``.
    :param render_kwargs: ``width``, ``height``, ``camera_id`` of rendered frames.

    ## Version History
    - v0: initial release.
    """

    # Not a ClassVar: gymnasium declares ``metadata`` an instance attribute (reassigned in __init__).
    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 50}  # noqa: RUF012

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] = "acrobot",
        task: str | base.Task | None = None,
        backend: Backend = "neural",
        reset_states: np.ndarray | None = None,
        integrator: str | None = None,
        density_penalty: float = 0.0,
        device: str | torch.device = "cpu",
        revision: str | None = None,
        env_kwargs: dict[str, Any] | None = None,
        render_mode: str | None = None,
        render_kwargs: dict[str, Any] | None = None,
        reset_from: ResetFrom = "buffer",
        out_of_domain: OutOfDomain = "truncate",
        precision: str = "float32",
    ) -> None:
        if backend not in BACKENDS:
            raise UnknownNameError(f"unknown backend {backend!r}; accepted: {list(BACKENDS)}")
        if reset_from not in RESET_FROM:
            raise UnknownNameError(f"unknown reset_from {reset_from!r}; accepted: {list(RESET_FROM)}")
        if reset_from == "task" and reset_states is not None:
            raise InputError("reset_states and reset_from='task' exclude each other; give one")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise InputError(f"unsupported render_mode {render_mode!r}; accepted: None, 'rgb_array'")
        parts = load_env_parts(checkpoint, task, reset_states, integrator, density_penalty, device, revision,
                               env_kwargs, precision)
        self.config, self.task_name, self.bridge = parts.config, parts.task, parts.bridge
        self.simulator: Simulator = parts.simulator
        self.density, self.density_penalty = parts.density, parts.density_penalty
        self._reset_states = parts.reset_states
        self._source: dict[str, Any] = {"checkpoint": checkpoint, "task": task, "integrator": integrator,
                                        "device": device, "revision": revision, "env_kwargs": env_kwargs}
        self.backend: Backend = backend
        self.reset_from: ResetFrom = reset_from
        self._layout = layout = self.config.simulator.layout
        self._guard = DomainGuard(self.config.domain, layout, out_of_domain)
        self.out_of_domain: OutOfDomain = self._guard.mode
        self.observation_space = self.bridge.observation_space
        self.action_space: gym.spaces.Box = self.bridge.action_space
        self.render_mode = render_mode
        self.render_kwargs = dict(render_kwargs or {})
        self.metadata = {**self.metadata, "render_fps": round(1.0 / layout.dt)}
        self._state: np.ndarray | None = None
        # Step inputs live in preallocated float32 tensors, filled through numpy views on a
        # CPU: at batch 1 a fresh tensor per step costs about a tenth of the model's step.
        # The model's per-step input is the action, then (for a model that takes them) the
        # actuator activations at the start of the step, which the bridge keeps.
        device = self.simulator.device
        self._state_t = torch.zeros(1, layout.state_size, device=device)
        self._model_input_t = torch.zeros(1, layout.input_size, device=device)
        self._input_views = ((self._state_t.numpy()[0], self._model_input_t.numpy()[0])
                             if device.type == "cpu" else None)

    # -- gymnasium API --------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Start an episode from a buffer state (seeded), the task's own initial state
        (``reset_from="task"``) or ``options["state"]``."""
        super().reset(seed=seed)
        if seed is not None:
            self.bridge.seed(seed)  # the task's own randomness (a target drawn per episode)
        options = options or {}
        unknown = sorted(set(options) - set(RESET_OPTIONS))
        if unknown:
            raise InputError(f"unknown reset options {unknown}; accepted: {list(RESET_OPTIONS)}")
        if options.get("state") is not None:
            state = check_states(options["state"], "options['state']", self._layout,
                                 batched=False)
        elif self.reset_from == "task":
            # The stock reset leaves the physics (task episode state included) where it starts.
            self._state = self.bridge.reset_random()
            return self.bridge.observation(), {"state": self._state.copy()}
        else:
            state = self._reset_states[self.np_random.integers(len(self._reset_states))]
        self._state = state.copy()
        self.bridge.reset_to(self._state)
        return self.bridge.observation(), {"state": self._state.copy()}

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Advance one control step; observation, reward and termination come from the stock task."""
        if self._state is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        action = check_actions(action, self.action_space, "action", self.action_space.shape)
        state_t, model_input_t = self._inputs(self._state, action)
        info: dict[str, Any] = {}
        if self.density is not None:
            info["log_density"] = log_density = self.density.log_density_value(self._state, action)
            info["penalty"] = self.density.penalty_value(log_density)
        left_domain = False
        if self.backend == "physics":
            self.bridge.step_physics(action)
            self._state = self.bridge.get_state()
        else:
            previous = self._state
            predicted = self.simulator.fast_predict(state_t, model_input_t)[0].cpu().numpy().astype(np.float64)
            checked = self._guard.check(previous[None], predicted[None], action[None], "NeuralSimEnv.step")
            if checked is not None:
                left, dims = checked
                left_domain = info["out_of_domain"] = bool(left[0])
                if left_domain:
                    assert dims is not None
                    info["out_of_domain_dims"] = dims[0]
                    predicted = previous  # a step that went nowhere: the last state inside
            self._state = predicted.copy() if left_domain else predicted
            self.bridge.transition(previous, action, self._state)
        terminated, truncated = self.bridge.termination()
        truncated = truncated or left_domain
        reward = task_reward = self.bridge.reward()
        if self.density is not None:
            reward = task_reward + self.density_penalty * info["penalty"]
            info["task_reward"] = task_reward
        info = {**self.bridge.step_info(), **info, "state": self._state.copy()}
        return self.bridge.observation(), reward, terminated, truncated, info

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """An RGB frame of the current (predicted) state when ``render_mode="rgb_array"``."""
        if self.render_mode is None:
            return None
        return self.bridge.render(**self.render_kwargs)

    def close(self) -> None:
        """Free the task's physics."""
        self.bridge.close()

    def add_reset_states(self, states: np.ndarray) -> None:
        """Add real ``[N, nq + nv]`` states to the buffer episodes start from (the few-shot
        loop adds the states it meets in the real env)."""
        new = check_states(states, "states", self._layout, batched=True)
        self._reset_states = np.concatenate([self._reset_states, new])

    @property
    def reset_states(self) -> np.ndarray:
        """The states episodes start from, ``[N, nq + nv]`` (a copy)."""
        return self._reset_states.copy()

    def physics_twin(self, reset_from: ResetFrom | None = None) -> NeuralSimEnv:
        """The same robot and task stepped by real MuJoCo (``backend="physics"``): the same
        spaces and observations, so a policy trained here acts there unchanged, and
        ``info["state"]`` records the real physics state of every step.

        :param reset_from: where its episodes start (default: as this env's).
        """
        return NeuralSimEnv(**self._source, backend="physics", reset_from=reset_from or self.reset_from)

    # -- internals ------------------------------------------------------------------------
    @property
    def state(self) -> np.ndarray | None:
        """The current physics state ``[qpos, qvel]`` (a copy), ``None`` before ``reset``."""
        return None if self._state is None else self._state.copy()

    def _inputs(self, state: np.ndarray, action: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """``state`` and the step's model input (``action``, then the bridge's actuator
        activations if the model takes them) as ``[1, ...]`` float32 tensors (overwritten
        next step)."""
        step_input = np.concatenate([action, self.bridge.activations]) if self._layout.na else action
        if self._input_views is not None:
            self._input_views[0][:] = state
            self._input_views[1][:] = step_input
        else:
            self._state_t.copy_(torch.as_tensor(state, dtype=torch.float32).unsqueeze(0))
            self._model_input_t.copy_(torch.as_tensor(step_input, dtype=torch.float32).unsqueeze(0))
        return self._state_t, self._model_input_t
