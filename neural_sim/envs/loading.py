"""What the single and the batched env both build from a checkpoint, and their input checks."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from dm_control.suite import base
from gymnasium import spaces

from neural_sim.checkpoints import (
    CheckpointConfig,
    load_density,
    load_reset_states,
    load_simulator,
    read_config,
)
from neural_sim.density.model import DensityModel
from neural_sim.errors import CheckpointError, InputError, UnknownNameError
from neural_sim.hub import resolve_checkpoint
from neural_sim.model.config import StateLayout
from neural_sim.model.rotations import check_quaternions
from neural_sim.model.simulator import ACTION_TOLERANCE, Simulator
from neural_sim.robots import TaskBridge, make_task_bridge


@dataclass
class EnvParts:
    """A checkpoint made ready for an environment."""

    folder: Path
    config: CheckpointConfig
    task: str  # the task's name (a user task's class name)
    simulator: Simulator
    bridge: TaskBridge
    reset_states: np.ndarray
    density: DensityModel | None
    density_penalty: float


def load_env_parts(
    checkpoint: str | os.PathLike[str],
    task: str | base.Task | None,
    reset_states: np.ndarray | None,
    integrator: str | None,
    density_penalty: float,
    device: str | torch.device,
    revision: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    precision: str = "float32",
) -> EnvParts:
    """Resolve and check everything an env needs; see the envs' docstrings for the arguments."""
    if (isinstance(density_penalty, bool) or not isinstance(density_penalty, (int, float, np.integer, np.floating))
            or not np.isfinite(density_penalty) or density_penalty < 0):
        raise InputError(f"density_penalty must be a finite weight >= 0 (0 = off), got {density_penalty!r}")
    folder = resolve_checkpoint(checkpoint, revision)
    config = read_config(folder)
    robot = config.robot
    task = task or robot.default_task
    if isinstance(task, str) and task not in robot.tasks:
        raise UnknownNameError(
            f"unknown task {task!r} for robot {robot.name!r}; known: {list(robot.tasks)}, or (dm_control and MJCF "
            "robots) a dm_control.suite.base.Task instance"
        )
    simulator = load_simulator(folder, config, device)
    if integrator is not None:
        simulator = simulator.with_integrator(
            dataclasses.replace(config.simulator.integrator, method=integrator)  # type: ignore[arg-type]
        )
    simulator.set_fast_precision(precision)
    layout = config.simulator.layout
    bridge = make_task_bridge(robot, task, env_kwargs=env_kwargs, folder=folder)
    _check_bridge_matches(folder, config, bridge)
    if reset_states is None:
        buffer = _startable(bridge, load_reset_states(folder, layout.state_size), f"{folder}'s reset states")
    else:
        buffer = check_states(reset_states, "reset_states", layout, batched=True)
        if len(buffer) == 0:
            raise InputError("reset_states is empty; give at least one [nq + nv] state")
        buffer = _startable(bridge, buffer, "reset_states")
    density = load_density(folder, config).to(simulator.device) if density_penalty > 0 else None
    return EnvParts(folder, config, bridge.task_name, simulator, bridge, buffer, density, float(density_penalty))


def as_float_array(value: object, name: str) -> np.ndarray:
    """``value`` (an array, tensor on any device, list or number) as a float64 numpy array.

    :raises InputError: naming ``name``, for what is not real numbers (text, None, complex,
        ragged lists, a tensor with no data).
    """
    if isinstance(value, torch.Tensor):
        if value.device.type == "meta":
            raise InputError(f"{name} is a tensor on device 'meta', which holds no data")
        if value.is_complex():
            raise InputError(f"{name} must be real numbers, got dtype {value.dtype}")
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":  # bool, ints and floats only: text, objects, complex are refused
            raise TypeError(f"dtype {array.dtype}")
        return array.astype(np.float64)
    except (TypeError, ValueError) as error:
        raise InputError(f"{name} must be real numbers (an array, tensor or list), got {type(value).__name__}: "
                         f"{error}") from error


def check_states(states: object, name: str, layout: StateLayout, batched: bool) -> np.ndarray:
    """``states`` as float64 of shape ``[N, nq + nv]`` (``batched``) or ``[nq + nv]``, all finite."""
    states = as_float_array(states, name)
    size = layout.state_size
    expected = f"[N, {size}]" if batched else f"[{size}]"
    if states.ndim != (2 if batched else 1) or states.shape[-1] != size:
        described = f"; {layout.describe()}" if layout.rotation_joints else ""
        raise InputError(f"{name} must have shape {expected} (nq={layout.nq} + nv={layout.nv}{described}), "
                         f"got {states.shape}")
    finite = np.isfinite(states)
    if not finite.all():
        first = np.argwhere(~finite)[0]
        raise InputError(f"{name} contains NaN or inf (first at {layout.entry_name(int(first[-1]))}"
                         f"{f' of row {int(first[0])}' if batched else ''})")
    check_quaternions(states, layout, name)
    return states


def check_actions(actions: object, space: spaces.Box, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """``actions`` as float64 of exactly ``shape``, finite and inside ``space``'s bounds."""
    array = as_float_array(actions, name)
    if array.shape != shape:
        raise InputError(f"{name} must have shape {shape}, got {array.shape}")
    if not np.isfinite(array).all():
        raise InputError(f"{name} contains NaN or inf: {array.tolist()}")
    if (array < space.low - ACTION_TOLERANCE).any() or (array > space.high + ACTION_TOLERANCE).any():
        raise InputError(
            f"{name} {array.tolist()} outside the action space [{space.low.tolist()}, {space.high.tolist()}]"
        )
    return array


def _startable(bridge: TaskBridge, states: np.ndarray, name: str) -> np.ndarray:
    """The states an episode can start from: those the task does not end at once.

    Gymnasium's tasks end an episode in an unhealthy state (InvertedPendulum's pole beyond
    0.2 rad), and random-action data, collected without ending, lies mostly there: 99% of
    InvertedPendulum's buffer, which made its episodes one step long. dm_control's stock
    tasks never end an episode, so their states are all kept unchecked.
    """
    if not bridge.episodes_can_end:
        return states
    still = np.zeros(bridge.action_space.shape)
    keep = np.zeros(len(states), dtype=bool)
    for i, state in enumerate(states):
        bridge.transition(state, still, state)  # a step that goes nowhere: ends only in an unhealthy state
        keep[i] = not bridge.termination()[0]
    if not keep.any():
        raise InputError(f"every one of the {len(states)} states in {name} is a state the task {bridge.task_name!r} "
                         "ends an episode in (e.g. a fallen pole); give states an episode can start from")
    return states[keep]


def _check_bridge_matches(folder: Path, config: CheckpointConfig, bridge: TaskBridge) -> None:
    layout, space = config.simulator.layout, bridge.action_space
    found = (bridge.nq, bridge.nv, space.shape[0])  # type: ignore[attr-defined]
    if found != (layout.nq, layout.nv, layout.nu) or not np.allclose(space.low, layout.action_low):
        raise CheckpointError(
            f"checkpoint {folder} models nq/nv/nu = {layout.nq}/{layout.nv}/{layout.nu}, but the "
            f"{config.robot.source} robot {config.robot.domain!r} has {found[0]}/{found[1]}/{found[2]}"
        )
