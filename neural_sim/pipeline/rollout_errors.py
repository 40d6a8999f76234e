"""Open-loop prediction error, the MoSim paper's protocol.

Given the true state at a window's start and the true actions, predict ``H`` steps open
loop; score = MSE over all ``H`` steps and all state dimensions, raw units, averaged over
windows that start after the sequences reach steady state (step 100).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from neural_sim.errors import NeuralSimError
from neural_sim.model.config import StateLayout
from neural_sim.model.rotations import angle_between
from neural_sim.pipeline.collect import Dataset

#: Windows start at or after this step of a sequence (the paper's steady-state cut).
STEADY_STATE_STEP = 100

RolloutFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Windows:
    """Evaluation windows cut from a data set."""

    start_states: torch.Tensor  # [W, S]
    actions: torch.Tensor  # [W, H, nu]
    targets: torch.Tensor  # [W, H, S], the true state after each action


def sample_windows(
    dataset: Dataset, horizon: int, windows_per_sequence: int, seed: int, first_step: int = STEADY_STATE_STEP
) -> Windows:
    """Cut ``windows_per_sequence`` random windows of ``horizon`` steps from every sequence."""
    steps = dataset.actions.shape[1]
    if first_step + horizon > steps:
        raise NeuralSimError(
            f"sequences of {steps} steps are too short for horizon {horizon} windows starting at step {first_step}"
        )
    rng = np.random.default_rng(seed)
    n = dataset.states.shape[0]
    starts = rng.integers(first_step, steps - horizon + 1, size=(n, windows_per_sequence))
    seq = np.repeat(np.arange(n), windows_per_sequence)
    start = starts.reshape(-1)
    offsets = np.arange(horizon)
    start_states = dataset.states[seq, start]
    actions = dataset.actions[seq[:, None], start[:, None] + offsets]
    targets = dataset.states[seq[:, None], start[:, None] + offsets + 1]
    as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    return Windows(as_tensor(start_states), as_tensor(actions), as_tensor(targets))


@torch.no_grad()
def rollout_errors(rollout: RolloutFn, windows: Windows, batch_size: int = 4096) -> torch.Tensor:
    """Squared errors ``[W, H, S]`` of open-loop rollouts over ``windows``."""
    errors = []
    for i in range(0, len(windows.start_states), batch_size):
        batch = slice(i, i + batch_size)
        predicted = rollout(windows.start_states[batch], windows.actions[batch])
        errors.append((predicted - windows.targets[batch]).double() ** 2)
    return torch.cat(errors)


@torch.no_grad()
def orientation_errors(rollout: RolloutFn, windows: Windows, layout: StateLayout,
                       batch_size: int = 4096) -> np.ndarray:
    """Rotation angles in radians ``[W, H, J]`` between the predicted and true orientation
    of each free or ball joint along open-loop rollouts over ``windows``."""
    quaternions = [list(joint.quaternion_qpos) for joint in layout.rotation_joints]
    errors = []
    for i in range(0, len(windows.start_states), batch_size):
        batch = slice(i, i + batch_size)
        predicted = rollout(windows.start_states[batch], windows.actions[batch]).double().numpy()
        target = windows.targets[batch].double().numpy()
        errors.append(np.stack([angle_between(predicted[..., q], target[..., q]) for q in quaternions], axis=-1))
    return np.concatenate(errors)


def hold_last_state(start_states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Baseline predictor: the state never changes."""
    return start_states.unsqueeze(1).expand(-1, actions.shape[1], -1)


def trusted_horizon(
    rollout: RolloutFn, dataset: Dataset, max_horizon: int, seed: int, threshold: float = 0.05
) -> int:
    """Steps until the open-loop error reaches ``threshold`` of the state variance.

    The per-step MSE of each dimension is divided by that dimension's variance in the
    data, averaged over dimensions; the first step at which it reaches ``threshold`` (5%)
    ends the trusted horizon. Returns ``max_horizon`` if it never does.
    """
    max_horizon = min(max_horizon, dataset.actions.shape[1] - STEADY_STATE_STEP)
    windows = sample_windows(dataset, max_horizon, 4, seed)
    variance = torch.as_tensor(dataset.states.reshape(-1, dataset.states.shape[-1]).var(0))
    normalised = (rollout_errors(rollout, windows).mean(0) / variance.clamp_min(1e-12)).mean(-1)
    above = torch.nonzero(normalised >= threshold)
    return int(above[0, 0]) if len(above) else max_horizon
