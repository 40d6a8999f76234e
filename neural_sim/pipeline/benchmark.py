"""``neural-sim benchmark``: prediction accuracy of a checkpoint on fresh held-out data.

The MoSim paper's protocol (section 2.2): Poisson random-action test sequences collected
now with a seed the training data never used, windows from step 100, open-loop rollouts
from the true state under the true actions, MSE over all steps and state dimensions in
raw units. In the same run, on the same windows:

- the hold-last-state baseline;
- the architecture ablation, when the checkpoint carries one (``ablation/``: the other
  architecture, trained on the same data with the same samples; the paper's
  inductive-bias ablation);
- the error at every step of the longest horizon and per state dimension (JSON and a PNG);
- the largest Lyapunov exponent of the model next to MuJoCo's (:mod:`.chaos`);
- the model's cost per step (torchdiffeq, and the traced path environments use).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neural_sim.checkpoints import (
    ABLATION_DIR,
    CheckpointConfig,
    load_simulator,
    read_config,
    write_config,
)
from neural_sim.errors import NeuralSimError
from neural_sim.model.config import to_dict
from neural_sim.model.simulator import Simulator
from neural_sim.pipeline.card import write_card
from neural_sim.pipeline.chaos import TRANSIENT_STEPS, lyapunov_exponents
from neural_sim.pipeline.collect import collect
from neural_sim.pipeline.rollout_errors import (
    STEADY_STATE_STEP,
    RolloutFn,
    hold_last_state,
    orientation_errors,
    rollout_errors,
    sample_windows,
)
from neural_sim.robots import data_source, make_task_bridge

DEFAULT_HORIZONS = (3, 16, 100)
#: File name of the benchmark plot, beside ``config.json`` when written with ``--write``.
PLOT_FILE = "benchmark.png"
#: Trajectories and steps of the Lyapunov check: with 20 of 900 steps the acrobot's standard
#: errors (about 0.06 1/s) were as large as the exponent itself.
LYAPUNOV_TRAJECTORIES = 60
LYAPUNOV_STEPS = 2000


def step_cost_ms(step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], simulator: Simulator,
                 batch: int = 1, repeats: int = 200) -> float:
    """Median wall time of one ``step(states, actions)`` call at ``batch`` (milliseconds)."""
    states = torch.zeros(batch, simulator.state_size, device=simulator.device)
    actions = torch.zeros(batch, simulator.config.layout.input_size, device=simulator.device)
    times = []
    with torch.no_grad():
        for _ in range(10):
            step(states, actions)
        for _ in range(repeats):
            start = time.perf_counter()
            step(states, actions)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def state_labels(nq: int, nv: int) -> list[str]:
    """``qpos[0] ... qvel[nv-1]``: the names of the state dimensions."""
    return [f"qpos[{i}]" for i in range(nq)] + [f"qvel[{i}]" for i in range(nv)]


def benchmark(
    folder: Path,
    sequences: int = 20,
    seed: int = 1,
    horizons: tuple[int, ...] = DEFAULT_HORIZONS,
    windows_per_sequence: int = 50,
    command: str = "",
    progress: bool = False,
    ablation: Path | None = None,
    lyapunov: bool = True,
    lyapunov_trajectories: int = LYAPUNOV_TRAJECTORIES,
    lyapunov_steps: int = LYAPUNOV_STEPS,
    precision: str = "float32",
) -> dict[str, Any]:
    """Open-loop MSE of a checkpoint at each horizon, next to its baselines.

    Test data: ``sequences`` Poisson random-action sequences of 1000 steps collected now
    with ``seed``, which must differ from the seed of the training data.

    :param ablation: a checkpoint of the same robot with the other architecture (default:
        the checkpoint's own ``ablation/`` folder, if it has one).
    :param lyapunov: also estimate the largest Lyapunov exponent, model and MuJoCo.
    :param lyapunov_trajectories: held-out random-action sequences (collected with ``seed``)
        the exponent is averaged over.
    :param lyapunov_steps: steps of each, counted from step 100 of its sequence.
    :param precision: of the fast path (the environments' step; see
        :meth:`~neural_sim.model.simulator.Simulator.set_fast_precision`): its column and
        cost are measured in it, the model's own in float32.
    :return: a JSON-ready dict: ``horizons`` -> {``mse``, ``hold_last_state_mse``,
        ``ablation_mse``, ``per_dimension``, and for robots with free or ball joints
        ``orientation_error_deg`` per joint (mean rotation angle between predicted and true
        orientation; also for each baseline)}, ``error_vs_step`` (the longest horizon),
        ``ablation``, ``lyapunov``, the test data description, costs and ``command``.
    """
    if lyapunov and (lyapunov_trajectories < 2 or lyapunov_steps <= TRANSIENT_STEPS):
        raise NeuralSimError(
            f"the Lyapunov check needs at least 2 trajectories (for a standard error) of more than "
            f"{TRANSIENT_STEPS} steps (its transient), got {lyapunov_trajectories} of {lyapunov_steps}; "
            "--no-lyapunov skips it"
        )
    config = read_config(folder)
    train_seed = config.training.get("data", {}).get("seed")
    if train_seed == seed:
        raise NeuralSimError(
            f"test seed {seed} is the seed of this checkpoint's training data; pick another (e.g. --seed {seed + 1})"
        )
    simulator = load_simulator(folder, config)
    simulator.set_fast_precision(precision)
    ablation = ablation if ablation is not None else _default_ablation(folder)
    ablation_sim = _load_ablation(ablation, config) if ablation is not None else None
    data = collect(data_source(config.robot, folder), sequences, 1000, seed, command=command, progress=progress)
    # Windows carry each action with the actuator activations at the start of its step (for
    # robots whose actuators have them); a model that takes fewer inputs reads its own part.
    data = dataclasses.replace(data, actions=data.model_inputs(
        data.activations.shape[-1] if data.activations is not None else 0))

    predictors: dict[str, RolloutFn] = {"model": _reading_its_inputs(simulator.predict_rollout, simulator),
                                        "hold_last_state": hold_last_state}
    if ablation_sim is not None:
        predictors["ablation"] = _reading_its_inputs(ablation_sim.predict_rollout, ablation_sim)
    layout = config.simulator.layout
    results: dict[str, Any] = {}
    curves: dict[str, list[float]] = {}
    for h in sorted(horizons):
        windows = sample_windows(data, h, windows_per_sequence, seed=seed)
        row: dict[str, Any] = {"windows": len(windows.start_states)}
        for name, predict in predictors.items():
            errors = rollout_errors(predict, windows)  # [W, H, S]
            row["mse" if name == "model" else f"{name}_mse"] = float(errors.mean())
            row["per_dimension" if name == "model" else f"{name}_per_dimension"] = [
                float(x) for x in errors.mean((0, 1))]
            if h == max(horizons):
                curves[name] = [float(x) for x in errors.mean((0, 2))]
            if layout.rotation_joints:
                # Orientation as an angle: the quaternion's MSE says little about it.
                angles = orientation_errors(predict, windows, layout)
                key = "orientation_error_deg" if name == "model" else f"{name}_orientation_error_deg"
                row[key] = {joint.name: float(np.degrees(angles[..., j].mean()))
                            for j, joint in enumerate(layout.rotation_joints)}
        # The model as environments step it (traced, fused) must match the reference path.
        row["fast_path_mse"] = float(rollout_errors(_reading_its_inputs(simulator.fast_rollout, simulator),
                                                    windows).mean())
        difference = abs(row["fast_path_mse"] - row["mse"])
        row["fast_path_relative_difference"] = difference / row["mse"] if row["mse"] else difference
        results[str(h)] = row

    report: dict[str, Any] = {
        "horizons": results,
        "error_vs_step": {"horizon": max(horizons), **curves},
        "state_labels": state_labels(layout.nq, layout.nv),
        "test_data": {"protocol": "poisson", "sequences": sequences, "steps": 1000, "seed": seed,
                      "windows_start_after_step": STEADY_STATE_STEP},
        "integrator": to_dict(config.simulator.integrator),
        "ms_per_step_batch1": round(step_cost_ms(simulator.predict, simulator), 4),
        "fast_ms_per_step_batch1": round(step_cost_ms(simulator.fast_predict, simulator), 4),
        "fast_path_precision": precision,
        "torch_threads": torch.get_num_threads(),
        "command": command,
    }
    if ablation_sim is not None:
        assert ablation is not None
        report["ablation"] = _describe_ablation(ablation, ablation_sim)
    if lyapunov and layout.rotation_joints:
        # Benettin's tangents would have to live on the quaternion sphere; finite differences
        # in the 4 quaternion entries mix in the renormalisation both simulators apply.
        report["lyapunov_skipped"] = "not measured for robots with free or ball joints"
    elif lyapunov and layout.na:
        # The actuators' activations are state too: the tangents would have to include them.
        report["lyapunov_skipped"] = "not measured for robots whose actuators carry activations"
    elif lyapunov:
        report["lyapunov"] = _lyapunov(simulator, config, folder, lyapunov_trajectories, lyapunov_steps, seed)
    return report


def _reading_its_inputs(rollout: RolloutFn, simulator: Simulator) -> RolloutFn:
    """``rollout`` given only the first ``nu + na`` input columns its model takes."""
    size = simulator.config.layout.input_size
    return lambda states, inputs: rollout(states, inputs[..., :size])


def write_benchmark(folder: Path, results: dict[str, Any]) -> CheckpointConfig:
    """Merge ``results`` into the checkpoint's ``benchmark`` record and regenerate its model card
    (and its plot, when ``results`` has error curves)."""
    old = read_config(folder)
    config = dataclasses.replace(old, benchmark={**old.benchmark, **results})
    write_config(folder, config)
    if "error_vs_step" in results:
        plot_benchmark(results, folder / PLOT_FILE, title=f"neural-sim {config.robot.name}")
    write_card(folder, config)
    return config


def plot_benchmark(results: dict[str, Any], path: Path, title: str = "") -> Path:
    """A two-panel PNG: MSE vs prediction step (log scale) and MSE per state dimension."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    curves = results["error_vs_step"]
    horizon = curves["horizon"]
    names = {"model": "model", "ablation": "architecture ablation", "hold_last_state": "hold last state"}
    if "ablation" in results:
        names["ablation"] = f"ablation ({results['ablation']['architecture']})"
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    steps = np.arange(1, horizon + 1)
    for key, label in names.items():
        if key in curves:
            left.plot(steps, curves[key], label=label)
    left.set(xlabel="prediction step", ylabel="MSE (raw units)", yscale="log", title=f"error vs step (H={horizon})")
    left.legend()
    row = results["horizons"][str(horizon)]
    labels = results["state_labels"]
    x = np.arange(len(labels))
    bars = [("model", row["per_dimension"])]
    if "ablation_per_dimension" in row:
        bars.append((names["ablation"], row["ablation_per_dimension"]))
    bars.append(("hold last state", row["hold_last_state_per_dimension"]))
    width = 0.8 / len(bars)
    for i, (label, values) in enumerate(bars):
        right.bar(x + (i - (len(bars) - 1) / 2) * width, values, width, label=label)
    right.set(yscale="log", ylabel="MSE (raw units)", title=f"per dimension, H={horizon}")
    right.set_xticks(x, labels, rotation=60, fontsize=7)
    right.legend(fontsize=7)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


def _default_ablation(folder: Path) -> Path | None:
    candidate = folder / ABLATION_DIR
    return candidate if (candidate / "config.json").is_file() else None


def _load_ablation(path: Path, config: CheckpointConfig) -> Simulator:
    other = read_config(path)
    if other.robot.name != config.robot.name or (other.simulator.layout.without_contact_kinematics()
                                                 != config.simulator.layout.without_contact_kinematics()):
        raise NeuralSimError(
            f"ablation {path} is a model of {other.robot.name!r}, not of this checkpoint's robot {config.robot.name!r}"
        )
    return load_simulator(path, other)


def _describe_ablation(path: Path, simulator: Simulator) -> dict[str, Any]:
    training = read_config(path).training
    return {
        "architecture": simulator.config.model.architecture,
        "path": path.name if path.parent.name else str(path),
        "command": training.get("command", ""),
        "samples": training.get("samples"),
        "data": training.get("data"),
        "wall_time_s": training.get("wall_time_s"),
        "hardware": training.get("hardware"),
    }


def _lyapunov(
    simulator: Simulator, config: CheckpointConfig, folder: Path, trajectories: int, steps: int, seed: int
) -> dict[str, Any]:
    # Sequences of their own, longer than the test data's: the exponent is a long-run average.
    data = collect(data_source(config.robot, folder), trajectories, STEADY_STATE_STEP + steps, seed)
    bridge = make_task_bridge(config.robot, config.robot.default_task, seed=0, folder=folder)
    try:
        # Every sequence from step 100 on: the same starts and actions for both.
        starts, actions = data.states[:, STEADY_STATE_STEP], data.actions[:, STEADY_STATE_STEP:]
        return lyapunov_exponents(simulator, bridge, starts, actions)
    finally:
        bridge.close()
