"""``neural-sim benchmark``: prediction accuracy of a checkpoint on fresh held-out data."""

from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from neural_sim.checkpoints import CARD_FILE, CheckpointConfig, load_simulator, read_config, write_config
from neural_sim.errors import NeuralSimError
from neural_sim.model.config import to_dict
from neural_sim.model.simulator import Simulator
from neural_sim.pipeline.card import model_card
from neural_sim.pipeline.collect import collect
from neural_sim.pipeline.evaluate import hold_last_state, rollout_errors, sample_windows
from neural_sim.robots import data_source

DEFAULT_HORIZONS = (3, 16, 100)


def step_cost_ms(simulator: Simulator, batch: int = 1, repeats: int = 200) -> float:
    """Median wall time of one ``predict`` call at ``batch`` (milliseconds)."""
    states = torch.zeros(batch, simulator.state_size, device=simulator.device)
    actions = torch.zeros(batch, simulator.nu, device=simulator.device)
    times = []
    with torch.no_grad():
        for _ in range(10):
            simulator.predict(states, actions)
        for _ in range(repeats):
            start = time.perf_counter()
            simulator.predict(states, actions)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def benchmark(
    folder: Path,
    sequences: int = 20,
    seed: int = 1,
    horizons: tuple[int, ...] = DEFAULT_HORIZONS,
    windows_per_sequence: int = 50,
    command: str = "",
    progress: bool = False,
) -> dict[str, Any]:
    """Open-loop MSE of a checkpoint at each horizon, next to the hold-last-state baseline.

    Test data: ``sequences`` Poisson random-action sequences of 1000 steps collected now
    with ``seed``, which must differ from the seed of the training data.

    :return: a JSON-ready dict with ``horizons`` -> {``mse``, ``hold_last_state_mse``},
        the test data description, the model's cost per step and ``command``.
    """
    config = read_config(folder)
    train_seed = config.training.get("data", {}).get("seed")
    if train_seed == seed:
        raise NeuralSimError(
            f"test seed {seed} is the seed of this checkpoint's training data; pick another (e.g. --seed {seed + 1})"
        )
    simulator = load_simulator(folder, config)
    data = collect(data_source(config.robot, folder), sequences, 1000, seed, command=command, progress=progress)
    results: dict[str, Any] = {}
    for h in horizons:
        windows = sample_windows(data, h, windows_per_sequence, seed=seed)
        model = float(rollout_errors(simulator.predict_rollout, windows).mean())
        hold = float(rollout_errors(hold_last_state, windows).mean())
        results[str(h)] = {"mse": model, "hold_last_state_mse": hold, "windows": len(windows.start_states)}
    return {
        "horizons": results,
        "test_data": {"protocol": "poisson", "sequences": sequences, "steps": 1000, "seed": seed,
                      "windows_start_after_step": 100},
        "integrator": to_dict(config.simulator.integrator),
        "ms_per_step_batch1": round(step_cost_ms(simulator), 4),
        "torch_threads": torch.get_num_threads(),
        "command": command,
    }


def write_benchmark(folder: Path, results: dict[str, Any]) -> CheckpointConfig:
    """Merge ``results`` into the checkpoint's ``benchmark`` record and regenerate its model card."""
    old = read_config(folder)
    config = dataclasses.replace(old, benchmark={**old.benchmark, **results})
    write_config(folder, config)
    (folder / CARD_FILE).write_text(model_card(config))
    return config
