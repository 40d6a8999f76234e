"""Fit and calibrate a density model on a checkpoint's training data."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable

import numpy as np
import torch

from neural_sim.density.model import DensityConfig, DensityModel, FlowKind, calibrate, feature_size
from neural_sim.model.config import SimulatorConfig
from neural_sim.pipeline.collect import Dataset

_MIN_STD = 1e-6


@dataclasses.dataclass(frozen=True)
class DensityFitConfig:
    """How a density model is fitted.

    :param kind: ``"nsf"`` or ``"maf"``.
    :param transforms: flow transforms.
    :param hidden: conditioner hidden widths.
    :param iterations: Adam steps (learning rate decayed on a cosine).
    :param batch_size: (state, action) rows per step.
    :param learning_rate: Adam's initial rate.
    :param seed: seeds initialisation, the held-out split and batches.
    :param held_out_fraction: share of sequences kept for calibration.
    """

    kind: FlowKind = "maf"
    transforms: int = 1
    hidden: tuple[int, ...] = (64, 64)
    iterations: int = 3000
    batch_size: int = 1024
    learning_rate: float = 3e-3
    seed: int = 0
    held_out_fraction: float = 0.1


def transitions(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """All ``(s_t, a_t)`` rows of a data set as float32 tensors."""
    size, nu = dataset.states.shape[-1], dataset.actions.shape[-1]
    states = torch.as_tensor(dataset.states[:, :-1].reshape(-1, size), dtype=torch.float32)
    actions = torch.as_tensor(dataset.actions.reshape(-1, nu), dtype=torch.float32)
    return states, actions


@torch.no_grad()
def batched_log_density(density: DensityModel, states: torch.Tensor, actions: torch.Tensor,
                        batch_size: int = 8192) -> np.ndarray:
    """``log p`` of many rows, in batches."""
    return torch.cat(
        [density.log_density(states[i : i + batch_size], actions[i : i + batch_size])
         for i in range(0, len(states), batch_size)]
    ).numpy()


def fit_density(
    dataset: Dataset,
    simulator: SimulatorConfig,
    config: DensityFitConfig | None = None,
    command: str = "",
    log: Callable[[str], None] = print,
    progress: bool = False,
) -> DensityModel:
    """Fit a flow to ``dataset``'s (state, action) rows and calibrate its penalty.

    :param dataset: the data the dynamics model was trained on (regenerated from its seed).
    :param simulator: the dynamics model's config (its feature map is shared).
    :param config: flow and optimisation settings.
    :param command: command line recorded in the density config.
    :param log: where progress lines go.
    :param progress: show a progress bar.
    :return: the calibrated density model.
    """
    config = config or DensityFitConfig()
    started = time.time()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    n = dataset.states.shape[0]
    n_held = max(1, round(n * config.held_out_fraction))
    order = rng.permutation(n)
    fit_part = Dataset(dataset.states[np.sort(order[n_held:])], dataset.actions[np.sort(order[n_held:])], dataset.info)
    held_part = Dataset(dataset.states[np.sort(order[:n_held])], dataset.actions[np.sort(order[:n_held])], dataset.info)

    layout, normalisation = simulator.layout, simulator.normalisation
    size = feature_size(layout, normalisation)
    placeholder = DensityConfig(config.kind, config.transforms, config.hidden, (0.0,) * size, (1.0,) * size)
    states, actions = transitions(fit_part)
    with torch.no_grad():
        raw = DensityModel(layout, normalisation, placeholder).raw_features(states, actions)
    mean, std = raw.mean(0), raw.std(0).clamp_min(_MIN_STD)
    stats = dataclasses.replace(placeholder, feature_mean=tuple(mean.tolist()), feature_std=tuple(std.tolist()))
    density = DensityModel(layout, normalisation, stats)
    features = (raw - mean) / std

    optimiser = torch.optim.Adam(density.flow.parameters(), lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, config.iterations) / config.iterations))
    )
    generator = torch.Generator().manual_seed(config.seed)
    iterator: Iterable[int] = range(1, config.iterations + 1)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc=f"fit density ({config.kind})", unit="it")
    running = 0.0
    for iteration in iterator:
        batch = features[torch.randint(len(features), (config.batch_size,), generator=generator)]
        loss = -density.flow().log_prob(batch).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        running = 0.98 * running + 0.02 * loss.item() if iteration > 1 else loss.item()
        if iteration % 500 == 0 or iteration == config.iterations:
            log(f"density iteration {iteration}: negative log-likelihood {running:.4f}")
    density.eval()

    held_states, held_actions = transitions(held_part)
    c, k, quantiles = calibrate(batched_log_density(density, held_states, held_actions))
    fit_info: dict[str, object] = {
        "command": command,
        "seed": config.seed,
        "data": dataclasses.asdict(dataset.info),
        "fit_config": dataclasses.asdict(config),
        "held_out_rows": len(held_states),
        "held_out_log_density": quantiles,
        "final_nll": running,
        "wall_time_s": round(time.time() - started, 1),
    }
    calibrated = DensityModel(layout, normalisation, dataclasses.replace(stats, c=c, k=k, fit=fit_info))
    calibrated.load_state_dict(density.state_dict())
    return calibrated.eval()
