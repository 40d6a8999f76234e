"""Train a simulator on collected data and write a checkpoint folder.

Loss: single-step prediction error, each state dimension divided by the standard
deviation of its one-step change (so positions and velocities weigh alike). The best
model by validation ``H``-step open-loop MSE (raw units) is kept and written as soon as
it improves, so an interrupted run still leaves a usable checkpoint.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neural_sim.checkpoints import FORMAT_VERSION, CheckpointConfig, save_checkpoint
from neural_sim.errors import NeuralSimError
from neural_sim.model.config import IntegratorConfig, ModelConfig, Normalisation, SimulatorConfig
from neural_sim.model.simulator import Simulator
from neural_sim.pipeline.card import model_card
from neural_sim.pipeline.collect import Dataset
from neural_sim.pipeline.evaluate import rollout_errors, sample_windows, trusted_horizon
from neural_sim.robots.base import RobotSpec

# Standard deviations below this are treated as 1 (a coordinate that never moves).
_MIN_STD = 1e-6
# Number of reset states shipped in a checkpoint.
RESET_STATES = 4096
# Non-finite steps in a row after which training stops.
_MAX_SKIPPED_IN_A_ROW = 100


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings.

    :param iterations: gradient steps.
    :param batch_size: transitions per step.
    :param learning_rate: Adam's initial rate, decayed to zero on a cosine.
    :param seed: seeds initialisation, the train/validation split and batch sampling.
    :param validation_fraction: share of sequences held out for model selection.
    :param eval_every: iterations between validations.
    :param eval_horizon: open-loop horizon whose validation MSE selects the best model.
    :param grad_clip: gradient-norm clip.
    """

    iterations: int = 20_000
    batch_size: int = 512
    learning_rate: float = 1e-3
    seed: int = 0
    validation_fraction: float = 0.1
    eval_every: int = 1000
    eval_horizon: int = 16
    grad_clip: float = 10.0


def compute_normalisation(dataset: Dataset, spec: RobotSpec) -> Normalisation:
    """Means and standard deviations of positions, velocities and accelerations."""
    layout = spec.layout
    states = dataset.states.reshape(-1, layout.state_size)
    q, v = states[:, : layout.nq], states[:, layout.nq :]
    accelerations = np.diff(dataset.states[..., layout.nq :], axis=1).reshape(-1, layout.nv) / layout.dt

    def std(x: np.ndarray) -> tuple[float, ...]:
        s = x.std(0)
        return tuple(float(v) if v > _MIN_STD else 1.0 for v in s)

    return Normalisation(
        q_mean=tuple(float(x) for x in q.mean(0)),
        q_std=std(q),
        v_mean=tuple(float(x) for x in v.mean(0)),
        v_std=std(v),
        acc_std=std(accelerations),
    )


def train(
    dataset: Dataset,
    spec: RobotSpec,
    output: str | Path,
    model: ModelConfig | None = None,
    integrator: IntegratorConfig | None = None,
    config: TrainConfig | None = None,
    command: str = "",
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> Path:
    """Train on ``dataset`` and write the best model as a checkpoint folder at ``output``.

    :param dataset: real sequences (:func:`~neural_sim.pipeline.collect.collect`).
    :param spec: the robot (dims must match the data).
    :param output: checkpoint folder to write (replaced as training improves).
    :param model: architecture (default: the paper's small MoSim).
    :param integrator: integrator used in training and stored as the default.
    :param config: optimisation settings.
    :param command: the command line recorded as provenance.
    :param log: where progress lines go.
    :param progress: show a progress bar.
    :return: the checkpoint folder.
    """
    model = model or ModelConfig()
    integrator = integrator or IntegratorConfig()
    config = config or TrainConfig()
    layout = spec.layout
    if dataset.states.shape[-1] != layout.state_size or dataset.actions.shape[-1] != layout.nu:
        raise NeuralSimError(
            f"data has state size {dataset.states.shape[-1]} and action size {dataset.actions.shape[-1]}, "
            f"robot {spec.info.name!r} needs {layout.state_size} and {layout.nu}"
        )
    started = time.time()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)

    n_sequences = dataset.states.shape[0]
    n_val = max(1, round(n_sequences * config.validation_fraction)) if n_sequences > 1 else 0
    order = rng.permutation(n_sequences)
    train_idx, val_idx = np.sort(order[n_val:]), np.sort(order[:n_val])
    train_data = Dataset(dataset.states[train_idx], dataset.actions[train_idx], dataset.info)
    val_data = Dataset(dataset.states[val_idx], dataset.actions[val_idx], dataset.info) if n_val else train_data

    normalisation = compute_normalisation(train_data, spec)
    sim_config = SimulatorConfig(layout, model, integrator, normalisation)
    simulator = Simulator(sim_config)
    field = simulator.field.train()

    # Transitions (s_t, a_t, s_t+1) as flat float32 tensors.
    size = layout.state_size
    starts = torch.as_tensor(train_data.states[:, :-1].reshape(-1, size), dtype=torch.float32)
    actions = torch.as_tensor(train_data.actions.reshape(-1, layout.nu), dtype=torch.float32)
    targets = torch.as_tensor(train_data.states[:, 1:].reshape(-1, size), dtype=torch.float32)
    delta_std = (targets - starts).std(0).clamp_min(_MIN_STD)

    horizon = min(config.eval_horizon, val_data.actions.shape[1] - 100)
    val_windows = sample_windows(val_data, horizon, 16, seed=config.seed + 1)

    optimiser = torch.optim.Adam(field.parameters(), lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, config.iterations) / config.iterations))
    )
    generator = torch.Generator().manual_seed(config.seed)
    best_mse, best_state, best_iteration = math.inf, copy.deepcopy(field.state_dict()), 0
    history: list[dict[str, float]] = []
    output = Path(output)
    reset_states = _reset_states(train_data, np.random.default_rng(config.seed))

    def checkpoint_config(extra: dict[str, object]) -> CheckpointConfig:
        return CheckpointConfig(
            format_version=FORMAT_VERSION,
            robot=spec.info,
            simulator=sim_config,
            trusted_horizon=int(extra.pop("trusted_horizon", spec.info.episode_steps)),  # type: ignore[call-overload]
            training={
                "command": command,
                "seed": config.seed,
                "data": dataclasses.asdict(dataset.info),
                "train_config": dataclasses.asdict(config),
                "samples": config.batch_size * int(extra.get("iterations", 0)),  # type: ignore[call-overload]
                "skipped_non_finite_steps": skipped,
                "wall_time_s": round(time.time() - started, 1),
                "hardware": f"{platform.machine()} CPU, {torch.get_num_threads()} torch thread(s)",
                "torch_version": torch.__version__,
                **extra,
            },
        )

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.iterations, desc=f"train {spec.info.name}", unit="it")
    running, skipped, in_a_row = 0.0, 0, 0
    for iteration in range(1, config.iterations + 1):
        batch = torch.randint(len(starts), (config.batch_size,), generator=generator)
        predicted = simulator.predict(starts[batch], actions[batch])
        loss = (((predicted - targets[batch]) / delta_std) ** 2).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(field.parameters(), config.grad_clip)
        # A rare batch can overflow (contact-rich robots): skip it rather than let one
        # non-finite update poison every weight; give up if it keeps happening.
        if not (torch.isfinite(loss) and torch.isfinite(grad_norm)):
            skipped += 1
            in_a_row += 1
            if in_a_row >= _MAX_SKIPPED_IN_A_ROW:
                raise NeuralSimError(
                    f"training diverged: {in_a_row} non-finite steps in a row at iteration {iteration}; "
                    f"the best model so far is in {output} (try a lower --lr)"
                )
            schedule.step()
            continue
        in_a_row = 0
        optimiser.step()
        schedule.step()
        value = loss.item()
        running = 0.98 * running + 0.02 * value if iteration > 1 else value
        if bar is not None:
            bar.update()
            if iteration % 50 == 0:
                bar.set_postfix(loss=f"{running:.3g}", best=f"{best_mse:.3g}")
        if iteration % config.eval_every == 0 or iteration == config.iterations:
            field.eval()
            mse = float(rollout_errors(simulator.predict_rollout, val_windows).mean())
            field.train()
            history.append({"iteration": iteration, "loss": running, f"val_mse_h{horizon}": mse})
            improved = mse < best_mse
            if improved:
                best_mse, best_iteration = mse, iteration
                best_state = copy.deepcopy(field.state_dict())
                save_checkpoint(
                    output,
                    checkpoint_config({"iterations": iteration, "best_iteration": iteration, "complete": False}),
                    simulator,
                    reset_states,
                    "Training in progress.\n",
                    spec.files,
                )
            (bar.write if bar is not None else log)(
                f"iteration {iteration}: loss {running:.4g}, validation H={horizon} MSE {mse:.4g}"
                f"{' (best)' if improved else ''}, {time.time() - started:.0f}s"
            )
    if bar is not None:
        bar.close()

    field.load_state_dict(best_state)
    field.eval()
    horizon_steps = trusted_horizon(simulator.predict_rollout, val_data, spec.info.episode_steps, config.seed + 2)
    final = checkpoint_config(
        {
            "iterations": config.iterations,
            "best_iteration": best_iteration,
            f"validation_mse_h{horizon}": best_mse,
            "trusted_horizon": horizon_steps,
            "history": history,
            "complete": True,
        }
    )
    save_checkpoint(output, final, simulator, reset_states, model_card(final), spec.files)
    log(f"wrote {output} (best iteration {best_iteration}, trusted horizon {horizon_steps} steps)")
    return output


def _reset_states(dataset: Dataset, rng: np.random.Generator) -> np.ndarray:
    """A random subset of the data's real states, for environment resets."""
    states = dataset.states.reshape(-1, dataset.states.shape[-1])
    take = rng.choice(len(states), size=min(RESET_STATES, len(states)), replace=False)
    return states[np.sort(take)]
