"""``NeuralSimEnv``: a stock task whose physics is a learned simulator."""

from __future__ import annotations

import os
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
import torch

from neural_sim.checkpoints import (
    load_density,
    load_reset_states,
    load_simulator,
    read_config,
    resolve_checkpoint,
)
from neural_sim.errors import CheckpointError, DivergenceError, InputError, UnknownNameError
from neural_sim.model.simulator import Simulator
from neural_sim.robots import make_task_bridge

Backend = Literal["neural", "physics"]
BACKENDS = ("neural", "physics")
RESET_OPTIONS = ("state",)
_ACTION_TOLERANCE = 1e-5


class NeuralSimEnv(gym.Env[Any, np.ndarray]):
    """A stock robot task stepped by a learned simulator.

    ## Description
    Each step advances the physics state ``(qpos, qvel)`` with the checkpoint's Neural ODE,
    writes the predicted state into the real task's MuJoCo ``Physics``, runs
    ``mj_forward``, and returns the stock task's own observation, reward and termination
    for it. Observation and action spaces are identical to shimmy's
    ``dm_control/<domain>-<task>-v0``, so policies move freely between the two.

    ## Starting State
    A state drawn (with the env's seeded RNG) from the checkpoint's real-buffer states,
    or the caller's ``reset_states``; ``reset(options={"state": s})`` starts at ``s``.

    ## Rewards
    The stock task's reward of the new state, plus ``density_penalty * penalty`` when the
    density penalty is on (see Arguments).

    ## Episode End
    Terminated when the stock task says so (discount 0); truncated after
    ``max_episode_steps`` (registered default: the checkpoint's trusted horizon).

    ## Arguments
    :param checkpoint: shipped robot name (``"acrobot"``) or checkpoint folder.
    :param task: stock task (default: the checkpoint's default task).
    :param backend: ``"neural"`` (the learned model) or ``"physics"`` (real MuJoCo
        stepping behind the same class: the oracle that proves the bridge).
    :param reset_states: ``[N, nq + nv]`` real states to start episodes from, replacing
        the checkpoint's buffer.
    :param integrator: override the checkpoint's integrator (``"rk4"`` or ``"dopri5"``).
    :param density_penalty: weight of the density penalty added to the task reward (0, the
        default, turns it off). ``penalty = sigmoid((log p(s, a) - c) / k) - 1`` in
        ``(-1, 0)`` for the state the step starts from and the action taken; ``c`` and
        ``k`` are calibrated per checkpoint. ``info`` then carries ``task_reward``,
        ``log_density`` and ``penalty``.
    :param device: torch device of the model.
    :param render_mode: ``None`` or ``"rgb_array"``.
    :param render_kwargs: ``width``, ``height``, ``camera_id`` of rendered frames.

    ## Version History
    - v0: initial release.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(
        self,
        checkpoint: str | os.PathLike[str] = "acrobot",
        task: str | None = None,
        backend: Backend = "neural",
        reset_states: np.ndarray | None = None,
        integrator: str | None = None,
        density_penalty: float = 0.0,
        device: str | torch.device = "cpu",
        render_mode: str | None = None,
        render_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise UnknownNameError(f"unknown backend {backend!r}; accepted: {list(BACKENDS)}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise InputError(f"unsupported render_mode {render_mode!r}; accepted: None, 'rgb_array'")
        folder = resolve_checkpoint(checkpoint)
        self.config = read_config(folder)
        robot = self.config.robot
        task = task or robot.default_task
        if task not in robot.tasks:
            raise UnknownNameError(f"unknown task {task!r} for robot {robot.name!r}; known: {list(robot.tasks)}")
        self.task_name = task
        self.backend: Backend = backend
        self.simulator: Simulator = load_simulator(folder, self.config, device)
        if integrator is not None:
            import dataclasses

            self.simulator = self.simulator.with_integrator(
                dataclasses.replace(self.config.simulator.integrator, method=integrator)  # type: ignore[arg-type]
            )
        layout = self.config.simulator.layout
        self._nq, self._size = layout.nq, layout.state_size
        self.bridge = make_task_bridge(robot, task)
        self._check_bridge_matches(folder)
        self.observation_space = self.bridge.observation_space
        self.action_space = self.bridge.action_space
        if reset_states is None:
            self._reset_states = load_reset_states(folder, self._size)
        else:
            self._reset_states = self._check_states(np.asarray(reset_states, dtype=np.float64), "reset_states", 2)
            if len(self._reset_states) == 0:
                raise InputError("reset_states is empty; give at least one [nq + nv] state")
        if not np.isfinite(density_penalty) or density_penalty < 0:
            raise InputError(f"density_penalty must be a finite weight >= 0 (0 = off), got {density_penalty}")
        self.density_penalty = float(density_penalty)
        self.density = load_density(folder, self.config) if self.density_penalty > 0 else None
        self.render_mode = render_mode
        self.render_kwargs = dict(render_kwargs or {})
        self.metadata = {**self.metadata, "render_fps": round(1.0 / layout.dt)}  # type: ignore[misc]
        self._state: np.ndarray | None = None

    # -- gymnasium API --------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Start an episode from a buffer state (seeded) or ``options["state"]``."""
        super().reset(seed=seed)
        options = options or {}
        unknown = sorted(set(options) - set(RESET_OPTIONS))
        if unknown:
            raise InputError(f"unknown reset options {unknown}; accepted: {list(RESET_OPTIONS)}")
        if options.get("state") is not None:
            state = self._check_states(np.asarray(options["state"], dtype=np.float64), "options['state']", 1)
        else:
            state = self._reset_states[self.np_random.integers(len(self._reset_states))]
        self._state = state.copy()
        self.bridge.reset_to(self._state)
        return self.bridge.observation(), {"state": self._state.copy()}

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Advance one control step; observation, reward and termination come from the stock task."""
        if self._state is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        action = self._check_action(action)
        info: dict[str, Any] = {}
        if self.density is not None:
            info["log_density"], info["penalty"] = self._density_terms(self._state, action)
        if self.backend == "physics":
            self.bridge.step_physics(action)
            self._state = self.bridge.get_state()
        else:
            self._state = self._predict(self._state, action)
            self.bridge.set_state(self._state)
        terminated, truncated = self.bridge.termination()
        reward = task_reward = self.bridge.reward()
        if self.density is not None:
            reward = task_reward + self.density_penalty * info["penalty"]
            info["task_reward"] = task_reward
        info["state"] = self._state.copy()
        return self.bridge.observation(), reward, terminated, truncated, info

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """An RGB frame of the current (predicted) state when ``render_mode="rgb_array"``."""
        if self.render_mode is None:
            return None
        return self.bridge.render(**self.render_kwargs)

    def close(self) -> None:
        """Free the task's physics."""
        self.bridge.close()

    # -- internals ------------------------------------------------------------------------
    @property
    def state(self) -> np.ndarray | None:
        """The current physics state ``[qpos, qvel]`` (a copy), ``None`` before ``reset``."""
        return None if self._state is None else self._state.copy()

    def _predict(self, state: np.ndarray, action: np.ndarray) -> np.ndarray:
        sim = self.simulator
        with torch.no_grad():
            s = torch.as_tensor(state, dtype=torch.float32, device=sim.device).unsqueeze(0)
            a = torch.as_tensor(action, dtype=torch.float32, device=sim.device).unsqueeze(0)
            next_state = sim.fast_predict(s, a)[0].cpu().numpy().astype(np.float64)
        if not np.isfinite(next_state).all():
            raise DivergenceError(
                f"the learned simulator produced a non-finite state from state {state.tolist()} "
                f"and action {action.tolist()}: it was driven far outside its training data"
            )
        return next_state

    def _density_terms(self, state: np.ndarray, action: np.ndarray) -> tuple[float, float]:
        assert self.density is not None
        with torch.no_grad():
            s = torch.as_tensor(state, dtype=torch.float32).unsqueeze(0)
            a = torch.as_tensor(action, dtype=torch.float32).unsqueeze(0)
            log_density = self.density.log_density(s, a)
            return float(log_density[0]), float(self.density.penalty(log_density)[0])

    def _check_action(self, action: Any) -> np.ndarray:
        space = self.action_space
        array = np.asarray(action, dtype=np.float64)
        if array.shape != space.shape:
            raise InputError(f"action must have shape {space.shape}, got {array.shape}")
        if not np.isfinite(array).all():
            raise InputError(f"action contains NaN or inf: {array.tolist()}")
        if (array < space.low - _ACTION_TOLERANCE).any() or (array > space.high + _ACTION_TOLERANCE).any():
            raise InputError(
                f"action {array.tolist()} is outside the action space [{space.low.tolist()}, {space.high.tolist()}]"
            )
        return array

    def _check_states(self, states: np.ndarray, name: str, ndim: int) -> np.ndarray:
        expected = f"[{self._size}]" if ndim == 1 else f"[N, {self._size}]"
        if states.ndim != ndim or states.shape[-1] != self._size:
            raise InputError(
                f"{name} must have shape {expected} (nq={self._nq} + nv={self._size - self._nq}), got {states.shape}"
            )
        if not np.isfinite(states).all():
            raise InputError(f"{name} contains NaN or inf")
        return states

    def _check_bridge_matches(self, folder: os.PathLike[str]) -> None:
        layout, bridge = self.config.simulator.layout, self.bridge
        space = bridge.action_space
        found = (bridge.nq, bridge.nv, space.shape[0])  # type: ignore[attr-defined]
        if found != (layout.nq, layout.nv, layout.nu) or not np.allclose(space.low, layout.action_low):
            raise CheckpointError(
                f"checkpoint {folder} models nq/nv/nu = {layout.nq}/{layout.nv}/{layout.nu}, but the "
                f"{self.config.robot.source} robot {self.config.robot.domain!r} has {found[0]}/{found[1]}/{found[2]}"
            )
