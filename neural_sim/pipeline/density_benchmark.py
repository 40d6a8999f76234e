"""``neural-sim benchmark-density``: does the density model know what the dynamics model knows?

Three figures per checkpoint:

- separation: AUROC of log-density between held-out random-action data (in distribution)
  and two out-of-distribution sets: ``perturbed`` (held-out states with every velocity
  pushed outward by the largest speed that joint reaches in the held-out data, so every
  perturbed state lies outside the velocities the data covers; smaller shifts often land
  back inside the data's support and are not out of distribution) and ``controller``
  (states reached by an energy-pumping controller, full actuation in the direction of each
  actuated joint's motion, which random actions rarely sustain);
- error prediction: Spearman rank correlation between the penalty and the model's
  one-step error (MSE over state dimensions, raw units) on all three sets mixed;
- cost: env step time (fastest of interleaved blocks) with the penalty on, relative to off, for a
  single env and a batched one (1024 envs).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import mannwhitneyu, spearmanr

from neural_sim.checkpoints import CheckpointConfig, load_density, load_simulator, read_config
from neural_sim.errors import NeuralSimError
from neural_sim.model.simulator import Simulator
from neural_sim.pipeline.collect import collect
from neural_sim.robots import data_source, make_task_bridge


def auroc(in_distribution: np.ndarray, out_of_distribution: np.ndarray) -> float:
    """P(log p of an in-distribution row > log p of an OOD row), ties counting half."""
    result = mannwhitneyu(in_distribution, out_of_distribution, alternative="two-sided")
    return float(result.statistic) / (len(in_distribution) * len(out_of_distribution))


def _real_next(bridge: Any, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """One real physics step from each (state, action)."""
    out = np.empty_like(states)
    for i, (state, action) in enumerate(zip(states, actions, strict=True)):
        bridge.reset_to(state)
        bridge.step_physics(action)
        out[i] = bridge.get_state()
    return out


def _controller_rows(bridge: Any, episodes: int, steps: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """(state, action, next state, activations) rows of the energy-pumping controller, from
    step 100 on."""
    dofs = bridge.actuator_dofs()
    high, nq = bridge.action_space.high, bridge.nq
    rows: list[tuple[np.ndarray, ...]] = []
    for _ in range(episodes):
        bridge.seed(int(rng.integers(2**31)))
        state = bridge.reset_random()
        for t in range(steps):
            direction = np.sign(state[nq + dofs])
            action = high * np.where(direction == 0, 1.0, direction)
            activations = bridge.activations
            bridge.step_physics(action)
            next_state = bridge.get_state()
            if t >= 100:
                rows.append((state, action, next_state, activations))
            state = next_state
    return tuple(np.stack(column) for column in zip(*rows, strict=True))


#: states, actions, real next states, and the actuator activations each step started from
#: (``[N, na]``, no columns for robots without them).
Rows = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
LogDensityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def evaluation_sets(
    config: CheckpointConfig, folder: Path, sequences: int, seed: int, rows: int
) -> dict[str, Rows]:
    """The in-distribution, perturbed and controller sets, ``rows`` rows each."""
    if config.training.get("data", {}).get("seed") == seed:
        raise NeuralSimError(f"seed {seed} is the seed of this checkpoint's training data; pick another")
    rng = np.random.default_rng(seed)
    data = collect(data_source(config.robot, folder), sequences, 1000, seed)
    size, nq = data.states.shape[-1], config.simulator.layout.nq
    seq, step = rng.integers(len(data.states), size=rows), rng.integers(100, 1000, size=rows)
    recorded = data.activations if data.activations is not None else np.zeros((*data.states.shape[:2], 0))
    sets: dict[str, Rows] = {
        "in_distribution": (data.states[seq, step], data.actions[seq, step], data.states[seq, step + 1],
                            recorded[seq, step])
    }
    bridge = make_task_bridge(config.robot, config.robot.default_task, seed=seed, folder=folder)
    top_speed = np.abs(data.states[..., nq:]).reshape(-1, size - nq).max(0)
    perturbed = sets["in_distribution"][0].copy()
    outward = np.where(perturbed[:, nq:] < 0, -1.0, 1.0)
    perturbed[:, nq:] += outward * top_speed
    actions = sets["in_distribution"][1]
    # Each perturbed state starts an episode of its own (activations at rest, as after a reset).
    sets["perturbed"] = (perturbed, actions, _real_next(bridge, perturbed, actions),
                         np.zeros((rows, recorded.shape[-1])))
    controller = _controller_rows(bridge, episodes=max(1, rows // 900), steps=1000, rng=rng)
    pick = rng.choice(len(controller[0]), size=min(rows, len(controller[0])), replace=False)
    sets["controller"] = (controller[0][pick], controller[1][pick], controller[2][pick], controller[3][pick])
    bridge.close()
    return sets


def density_figures(
    log_density: LogDensityFn, simulator: Simulator, sets: dict[str, Rows]
) -> dict[str, Any]:
    """AUROCs, Spearman(log-density, one-step error) and medians for any log-density function.

    The rank correlation is computed on log-density; the penalty is a monotone function of
    it, so Spearman's rho is the same for the penalty.
    """
    values, errors = {}, {}
    with torch.no_grad():
        for name, (states, actions, targets, activations) in sets.items():
            s = torch.as_tensor(states, dtype=torch.float32)
            a = torch.as_tensor(actions, dtype=torch.float32)
            values[name] = log_density(s, a).double().numpy()
            # The model's input: the action, then the activations if it takes them.
            inputs = torch.cat([a, torch.as_tensor(activations[:, : simulator.na], dtype=torch.float32)], dim=-1)
            errors[name] = ((simulator.predict(s, inputs).double().numpy() - targets) ** 2).mean(-1)
    rho = spearmanr(np.concatenate(list(values.values())), np.concatenate(list(errors.values()))).statistic
    return {
        "auroc": {name: auroc(values["in_distribution"], values[name]) for name in ("perturbed", "controller")},
        "spearman_penalty_vs_one_step_error": float(rho),
        "median_log_density": {name: float(np.median(v)) for name, v in values.items()},
        "median_one_step_mse": {name: float(np.median(v)) for name, v in errors.items()},
    }


def benchmark_density(
    folder: Path, sequences: int = 10, seed: int = 1, rows: int = 5000, command: str = "",
    num_envs: int = 1024, timing_steps: int = 300,
) -> dict[str, Any]:
    """Separation, error prediction and cost of a checkpoint's density model.

    :param folder: checkpoint folder with a density model.
    :param sequences: held-out random-action sequences (1000 steps) to collect.
    :param seed: seed of the held-out data, the perturbations and the controller starts;
        must differ from the training data's seed.
    :param rows: rows sampled from each set.
    :param command: command line recorded with the results.
    :param num_envs: envs of the batched env whose step is timed.
    :param timing_steps: single-env steps per timed block (a batched block is a fifteenth).
    """
    config = read_config(folder)
    density, simulator = load_density(folder, config), load_simulator(folder, config)
    figures = density_figures(density.log_density, simulator, evaluation_sets(config, folder, sequences, seed, rows))
    return {
        "flow": density.config.kind,
        **figures,
        "step_cost": step_cost(folder, timing_steps, num_envs=num_envs, batched_steps=max(1, timing_steps // 15)),
        "rows_per_set": rows,
        "sequences": sequences,
        "seed": seed,
        "perturbation": "every velocity pushed outward by the largest speed of that joint in the data",
        "controller": "full actuation in the direction of each actuated joint's velocity",
        "command": command,
    }


def step_cost(folder: Path, steps: int = 300, repeats: int = 7, num_envs: int = 1024,
              batched_steps: int = 20) -> dict[str, Any]:
    """Env step time (ms) with the density penalty off and on, single env and batched
    (``num_envs`` envs, the time of one batched step): the fastest of ``repeats`` blocks,
    off and on blocks interleaved, so that a slow spell of the machine cannot fall on one
    side only (medians of separate off and on runs varied by up to 40% between runs)."""
    from neural_sim.envs.single import NeuralSimEnv
    from neural_sim.envs.vector import NeuralSimVectorEnv

    single = _interleaved_cost({label: NeuralSimEnv(folder, density_penalty=weight)
                                for label, weight in (("off_ms", 0.0), ("on_ms", 1.0))}, steps, repeats)
    batched = _interleaved_cost({label: NeuralSimVectorEnv(num_envs, folder, density_penalty=weight)
                                 for label, weight in (("off_ms", 0.0), ("on_ms", 1.0))}, batched_steps, repeats)
    return {**single, "batched": {"num_envs": num_envs, **batched}}


def _interleaved_cost(envs: dict[str, Any], steps: int, repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {label: [] for label in envs}
    try:
        actions = {label: np.zeros(env.action_space.shape) for label, env in envs.items()}
        for label, env in envs.items():
            env.reset(seed=0)
            env.step(actions[label])  # builds the traced graphs before timing
        for _ in range(repeats):
            for label, env in envs.items():
                env.reset(seed=0)
                start = time.perf_counter()
                for _ in range(steps):
                    env.step(actions[label])
                times[label].append((time.perf_counter() - start) / steps)
    finally:
        for env in envs.values():
            env.close()
    result = {label: 1000 * min(values) for label, values in times.items()}
    result["overhead"] = result["on_ms"] / result["off_ms"] - 1.0
    return result
