"""Largest Lyapunov exponent of a robot under random actions, learned and real (Benettin).

Both simulators start from the same held-out states and are driven by the same held-out
random action sequences. A tangent vector rides along each trajectory: at every control
step it is pushed through the step's Jacobian, its growth is logged, and it is
renormalised. Each trajectory's exponent is its mean log growth per second after a
transient; the reported exponent is the mean over trajectories, with its standard error,
and the model's error is the paired difference (same start, same actions), with its own.
Per-trajectory exponents of a randomly driven robot spread widely (acrobot: -0.2 to 1.0
1/s over 700 steps), so a comparison without the standard errors says little. Both
simulators get the same treatment: Jacobian-vector products by central finite
differences in float64 (the learned model runs on a float64 copy of its weights;
forward-mode autodiff through the ODE solver costs about 100x more).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch

from neural_sim.model.simulator import Simulator
from neural_sim.robots.base import TaskBridge

#: Tangent growth before this step is the vector aligning itself, not the exponent.
TRANSIENT_STEPS = 200
#: Finite-difference step of the Jacobian-vector products (float64, unit tangents).
FD_STEP = 1e-7

#: ``(states [N, S], tangents [N, S], actions [N, nu]) -> (next states, pushed tangents)``.
TangentStep = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def trajectory_exponents(
    step: TangentStep, starts: np.ndarray, actions: np.ndarray, dt: float, seed: int = 0
) -> np.ndarray:
    """Largest Lyapunov exponent (1/s) of each trajectory from ``starts`` ``[N, S]`` driven by
    ``actions`` ``[N, T, nu]`` (the first :data:`TRANSIENT_STEPS` are not counted): ``[N]``.

    :param dt: control timestep in seconds.
    :param seed: seeds the initial tangent directions.
    """
    steps = actions.shape[1]
    if steps <= TRANSIENT_STEPS:
        raise ValueError(f"action sequences must exceed the {TRANSIENT_STEPS}-step transient, got {steps}")
    rng = np.random.default_rng(seed)
    states = np.asarray(starts, dtype=np.float64)
    tangents = rng.normal(size=states.shape)
    tangents /= np.linalg.norm(tangents, axis=1, keepdims=True)
    log_growth = np.zeros(len(states))
    for t in range(steps):
        states, tangents = step(states, tangents, actions[:, t])
        norms = np.linalg.norm(tangents, axis=1)
        if t >= TRANSIENT_STEPS:
            log_growth += np.log(norms)
        tangents = tangents / norms[:, None]
    return log_growth / ((steps - TRANSIENT_STEPS) * dt)


def _standard_error(values: np.ndarray) -> float:
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")


def model_tangent_step(simulator: Simulator) -> TangentStep:
    """The learned step and a central finite-difference Jacobian-vector product, on a float64
    copy of the model: the step and both perturbed steps in one batched call."""
    exact = Simulator(simulator.config, copy.deepcopy(simulator.field).double(), simulator.device)

    def step(states: np.ndarray, tangents: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(states)
        batch = np.concatenate([states, states + FD_STEP * tangents, states - FD_STEP * tangents])
        x = torch.as_tensor(batch, dtype=torch.float64, device=exact.device)
        u = torch.as_tensor(np.concatenate([actions] * 3), dtype=torch.float64, device=exact.device)
        with torch.no_grad():
            out = exact.predict(x, u).cpu().numpy()
        return out[:n], (out[n : 2 * n] - out[2 * n :]) / (2 * FD_STEP)

    return step


def physics_tangent_step(bridge: TaskBridge) -> TangentStep:
    """The real step and a central finite-difference Jacobian-vector product."""

    def advance(state: np.ndarray, action: np.ndarray) -> np.ndarray:
        bridge.set_state(state)  # not reset_to: a full data reset costs 10x the step
        bridge.step_physics(action)
        return bridge.get_state()

    def step(states: np.ndarray, tangents: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = zip(states, tangents, actions, strict=True)
        nxt, plus, minus = zip(*((advance(s, u), advance(s + FD_STEP * w, u), advance(s - FD_STEP * w, u))
                                 for s, w, u in rows), strict=True)
        return np.stack(nxt), (np.stack(plus) - np.stack(minus)) / (2 * FD_STEP)

    return step


def lyapunov_exponents(
    simulator: Simulator, bridge: TaskBridge, starts: np.ndarray, actions: np.ndarray, seed: int = 0
) -> dict[str, float | int | str]:
    """The learned model's and the real simulator's exponent from the same starts under the
    same actions ``[N, T, nu]``: means over trajectories (``model``, ``mujoco``), their
    standard errors (``*_standard_error``) and the paired difference model - MuJoCo
    (``difference``, ``difference_standard_error``), all in 1/s."""
    dt = simulator.dt
    model = trajectory_exponents(model_tangent_step(simulator), starts, actions, dt, seed)
    mujoco = trajectory_exponents(physics_tangent_step(bridge), starts, actions, dt, seed)
    return {
        "model": round(float(model.mean()), 4),
        "mujoco": round(float(mujoco.mean()), 4),
        "model_standard_error": round(_standard_error(model), 4),
        "mujoco_standard_error": round(_standard_error(mujoco), 4),
        "difference": round(float((model - mujoco).mean()), 4),
        "difference_standard_error": round(_standard_error(model - mujoco), 4),
        "trajectories": len(starts),
        "steps": actions.shape[1],
        "protocol": f"Benettin with finite-difference tangents, {actions.shape[1]} steps ({TRANSIENT_STEPS} "
        "transient) from held-out random-action states at step 100, driven by those sequences' own random "
        "actions; unit 1/s; mean +- standard error over trajectories",
    }
