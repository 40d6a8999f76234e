"""Train a simulator on collected data and write a checkpoint folder.

Loss: single-step prediction error, each state dimension divided by the standard
deviation of its one-step change (so positions and velocities weigh alike); or, with
``TrainConfig.rollout_steps`` > 1, the error of open-loop rollouts that many steps long,
each dimension divided by its standard deviation in the data (the long-horizon error the
benchmark scores; a fine-tuning stage after one-step training halved cartpole's H=100
error). A run can start from another checkpoint's weights (``init_from``). The best
model by validation ``H``-step open-loop MSE (raw units) is kept and written as soon as
it improves, so an interrupted run still leaves a usable checkpoint; the run's own state
is saved at every validation, so ``resume`` continues it exactly.

Training is end-to-end, or multi-stage as in the MoSim paper (``TrainConfig.stages``):
the predictor alone first, then each corrector on top of the frozen earlier parts.

With a ``teacher`` checkpoint the targets are the teacher's predictions from the data's
states and actions instead of the data's next states (distillation, e.g. into a student
that costs one network evaluation a step where the teacher's RK4 step costs four); the
best model is still chosen by its error against the real data.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from neural_sim.checkpoints import (
    FORMAT_VERSION,
    CheckpointConfig,
    load_simulator,
    read_config,
    save_checkpoint,
    weights_fingerprint,
)
from neural_sim.errors import NeuralSimError
from neural_sim.model.config import (
    IntegratorConfig,
    ModelConfig,
    Normalisation,
    SimulatorConfig,
    StateLayout,
    to_dict,
)
from neural_sim.model.dynamics import MoSimField, VectorField
from neural_sim.model.kinematics import contact_features_module
from neural_sim.model.rotations import RotationKinematics
from neural_sim.model.simulator import Simulator
from neural_sim.pipeline.card import write_card
from neural_sim.pipeline.collect import Dataset
from neural_sim.pipeline.domain import fit_domain
from neural_sim.pipeline.rollout_errors import rollout_errors, sample_windows, trusted_horizon
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

    :param iterations: gradient steps in all (the sum of ``stages`` when those are given).
    :param batch_size: transitions per step.
    :param learning_rate: Adam's initial rate, decayed to zero on a cosine (in every stage).
    :param seed: seeds initialisation, the train/validation split and batch sampling.
    :param validation_fraction: share of sequences held out for model selection.
    :param eval_every: iterations between validations (and saves of the resumable state).
    :param eval_horizon: open-loop horizon whose validation MSE selects the best model.
    :param grad_clip: gradient-norm clip.
    :param stages: empty or one count: train every network together (end-to-end). Otherwise the
        paper's multi-stage schedule for a MoSim field with ``k`` correctors, ``k + 1``
        iteration counts: stage 0 trains the predictor (L, B, A) alone, stage ``i`` trains
        corrector ``i`` on top of everything before it, frozen.
    :param rollout_steps: open-loop steps the loss unrolls. 1: the one-step loss. ``K`` > 1:
        each batch is ``batch_size`` windows of ``K`` steps from the training sequences,
        predicted open loop from their first state; each costs about ``K`` one-step samples.
    """

    iterations: int = 20_000
    batch_size: int = 512
    learning_rate: float = 1e-3
    seed: int = 0
    validation_fraction: float = 0.1
    eval_every: int = 1000
    eval_horizon: int = 16
    grad_clip: float = 10.0
    stages: tuple[int, ...] = ()
    rollout_steps: int = 1

    def __post_init__(self) -> None:
        if self.rollout_steps < 1:
            raise NeuralSimError(f"rollout_steps must be >= 1 (1: the one-step loss), got {self.rollout_steps}")
        if self.stages and (min(self.stages) < 1 or sum(self.stages) != self.iterations):
            raise NeuralSimError(
                f"stages {list(self.stages)} must be positive iteration counts summing to iterations={self.iterations}"
            )


@dataclass
class _Stage:
    """One stage of training: which parameters learn, and which correctors run."""

    name: str
    iterations: int
    parameters: list[torch.nn.Parameter]
    active_correctors: int | None  # None: not a MoSim field


def _stages(field: VectorField, config: TrainConfig) -> list[_Stage]:
    if len(config.stages) <= 1:  # one stage is end-to-end training
        active = len(field.correctors) if isinstance(field, MoSimField) else None
        return [_Stage("end-to-end", config.iterations, list(field.parameters()), active)]
    if not isinstance(field, MoSimField):
        raise NeuralSimError("multi-stage training needs the mosim architecture (the residual field is one network)")
    if len(config.stages) != len(field.correctors) + 1:
        raise NeuralSimError(
            f"multi-stage training of a field with {len(field.correctors)} corrector(s) takes "
            f"{len(field.correctors) + 1} stage lengths (predictor, then each corrector), got {list(config.stages)}"
        )
    stages = [_Stage("stage 0 (predictor)", config.stages[0], field.predictor_parameters(), 0)]
    for i, corrector in enumerate(field.correctors):
        stages.append(_Stage(f"stage {i + 1} (corrector {i + 1})", config.stages[i + 1],
                             list(corrector.parameters()), i + 1))
    return stages


def compute_normalisation(dataset: Dataset, spec: RobotSpec, contact_features: bool = False) -> Normalisation:
    """Means and standard deviations of positions, velocities and accelerations (and of
    the contact features, when the model takes them).

    :raises NeuralSimError: contact features asked of a robot without contact kinematics
        (no floor, or a ball joint).
    """
    layout = spec.layout
    states = dataset.states.reshape(-1, layout.state_size)
    q, v = states[:, : layout.nq], states[:, layout.nq :]
    world_v = v
    accelerations = np.diff(dataset.states[..., layout.nq :], axis=1).reshape(-1, layout.nv) / layout.dt
    if layout.rotation_joints:
        # Networks see a free joint's linear velocity, and give its acceleration, in its
        # body frame: standardise them there.
        rotations = RotationKinematics(layout).double()
        with torch.no_grad():
            q_start = torch.from_numpy(np.ascontiguousarray(dataset.states[:, :-1, : layout.nq].reshape(-1, layout.nq)))
            accelerations = rotations.to_body_frame(q_start, torch.from_numpy(accelerations)).numpy()
            v = rotations.to_body_frame(torch.from_numpy(q), torch.from_numpy(np.ascontiguousarray(v))).numpy()

    def std(x: np.ndarray) -> tuple[float, ...]:
        s = x.std(0)
        return tuple(float(v) if v > _MIN_STD else 1.0 for v in s)

    contact_mean: tuple[float, ...] = ()
    contact_std: tuple[float, ...] = ()
    if contact_features:
        contacts_of = contact_features_module(layout)
        if contacts_of is None:
            raise NeuralSimError(
                f"contact features need a robot whose bodies can touch a floor plane, with hinge, slide or free "
                f"joints only; {spec.info.name!r} is not one (set the model's contact_features to false)"
            )
        with torch.no_grad():
            contacts = contacts_of.double()(torch.from_numpy(np.ascontiguousarray(q)),
                                            torch.from_numpy(np.ascontiguousarray(world_v)))
        contact_mean = tuple(float(x) for x in contacts.mean(0))
        contact_std = std(contacts.numpy())
    return Normalisation(
        q_mean=tuple(float(x) for x in q.mean(0)),
        q_std=std(q),
        v_mean=tuple(float(x) for x in v.mean(0)),
        v_std=std(v),
        acc_std=std(accelerations),
        contact_mean=contact_mean,
        contact_std=contact_std,
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
    resume: bool = False,
    init_from: str | Path | None = None,
    teacher: str | Path | None = None,
) -> Path:
    """Train on ``dataset`` and write the best model as a checkpoint folder at ``output``.

    While training, ``output`` holds the best model so far and, at every validation, the
    resumable state of the run (``training_state.*``, removed when training ends); each
    validation line also goes to ``output/training.log``.

    :param dataset: real sequences (:func:`~neural_sim.pipeline.collect.collect`).
    :param spec: the robot (dims must match the data).
    :param output: checkpoint folder to write (replaced as training improves).
    :param model: architecture (default: the paper's small MoSim).
    :param integrator: integrator used in training and stored as the default.
    :param config: optimisation settings, including multi-stage ``stages``.
    :param command: the command line recorded as provenance.
    :param log: where progress lines go.
    :param progress: show a progress bar.
    :param resume: continue the interrupted run whose state is in ``output`` (same data,
        model and settings); the result equals an uninterrupted run's.
    :param init_from: a checkpoint folder of the same robot and architecture to start from
        (fine-tuning): its weights and its input normalisation are kept, and its training
        record goes into this checkpoint's provenance (``training.init_from``); ``samples``
        and ``wall_time_s`` then count both runs.
    :param teacher: a checkpoint folder of the same robot whose predictions from the data's
        states and actions are the targets (distillation); recorded as ``training.teacher``.
    :return: the checkpoint folder.
    :raises NeuralSimError: data that does not fit the robot, an interrupted run in
        ``output`` without ``resume`` (or ``resume`` without one, or with other settings), an
        ``init_from`` checkpoint of another robot or architecture, a ``teacher`` of another robot.
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
    output = Path(output)
    parent = _parent_checkpoint(init_from, spec, model) if init_from is not None else None
    teacher_model = _teacher(teacher, spec) if teacher is not None else None
    run_settings = {
        "data": dataclasses.asdict(dataset.info),
        "model": to_dict(model),
        "integrator": to_dict(integrator),
        "train_config": dataclasses.asdict(config),
        **({"init_from": parent.weights} if parent is not None else {}),
        **({"teacher": teacher_model.record["weights_sha256"]} if teacher_model is not None else {}),
    }
    saved_run = _load_run_state(output, run_settings, resume)

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    n_sequences = dataset.states.shape[0]
    n_val = max(1, round(n_sequences * config.validation_fraction)) if n_sequences > 1 else 0
    order = rng.permutation(n_sequences)
    train_idx, val_idx = np.sort(order[n_val:]), np.sort(order[:n_val])
    train_data = dataset.subset(train_idx)
    val_data = dataset.subset(val_idx) if n_val else train_data

    # A fine-tuned model keeps the input scaling its weights were trained with.
    normalisation = (parent.normalisation if parent is not None
                     else compute_normalisation(train_data, spec, model.contact_features))
    # A fine-tuned model keeps its parent's layout too (one written before the layout
    # carried contact kinematics stays as it was).
    sim_config = SimulatorConfig(parent.layout if parent is not None else layout, model, integrator, normalisation)
    # From here on a data set's "actions" are the model's per-step inputs: each action, then
    # the actuator activations at the start of its step when the model takes them.
    na = sim_config.layout.na
    train_data = dataclasses.replace(train_data, actions=train_data.model_inputs(na))
    val_data = dataclasses.replace(val_data, actions=val_data.model_inputs(na))
    simulator = Simulator(sim_config)
    field = simulator.field.train()
    if parent is not None:
        field.load_state_dict(parent.state_dict)
    stages = _stages(field, config)
    if len(stages) > 1 and isinstance(field, MoSimField) and parent is None:
        # Every corrector starts at exactly zero: each stage begins from the model the
        # previous one ended with, and a checkpoint written mid-stage is that model.
        for corrector in field.correctors:
            _zero_output_layer(corrector)

    # Transitions (s_t, a_t, s_t+1) as flat float32 tensors.
    size = layout.state_size
    starts = torch.as_tensor(train_data.states[:, :-1].reshape(-1, size), dtype=torch.float32)
    actions = torch.as_tensor(train_data.actions.reshape(-1, sim_config.layout.input_size), dtype=torch.float32)
    targets = torch.as_tensor(train_data.states[:, 1:].reshape(-1, size), dtype=torch.float32)
    delta_std = (targets - starts).std(0).clamp_min(_MIN_STD)
    sequences = _Sequences(train_data, config.rollout_steps) if config.rollout_steps > 1 else None

    horizon = min(config.eval_horizon, val_data.actions.shape[1] - 100)
    val_windows = sample_windows(val_data, horizon, 16, seed=config.seed + 1)
    reset_states = _reset_states(train_data, np.random.default_rng(config.seed))
    generator = torch.Generator().manual_seed(config.seed)

    progress_state = _RunProgress(best_state=copy.deepcopy(field.state_dict()))
    if saved_run is not None:
        progress_state = _restore_run(saved_run, field, generator)
    elapsed_before = progress_state.wall_time_s
    started = time.time() - elapsed_before

    # A fine-tuned checkpoint's samples and wall time count its parent's training too.
    samples_before = int(parent.training.get("samples", 0)) if parent is not None else 0
    wall_time_before = float(parent.training.get("wall_time_s", 0.0)) if parent is not None else 0.0
    samples_per_iteration = config.batch_size * config.rollout_steps

    # Episodes end where the data ends (data with no finite state trains to a clear error below).
    domain = fit_domain(dataset, sim_config.layout, command=command) if np.isfinite(dataset.states).all(-1).any() \
        else None

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
                "samples": samples_before + samples_per_iteration * int(extra.get("iterations", 0)),  # type: ignore[call-overload]
                "skipped_non_finite_steps": progress_state.skipped,
                "wall_time_s": round(wall_time_before + time.time() - started, 1),
                **({"init_from": parent.training} if parent is not None else {}),
                **({"teacher": teacher_model.record} if teacher_model is not None else {}),
                "hardware": f"{platform.machine()} CPU, {torch.get_num_threads()} torch thread(s)",
                "torch_version": torch.__version__,
                **({"resumed_at_iterations": progress_state.resumed_at} if progress_state.resumed_at else {}),
                **extra,
            },
            domain=domain,
        )

    output.mkdir(parents=True, exist_ok=True)
    log_file = (output / TRAINING_LOG).open("a")

    def report(line: str) -> None:
        log_file.write(line + "\n")
        log_file.flush()
        (bar.write if bar is not None else log)(line)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.iterations, initial=progress_state.iteration, desc=f"train {spec.info.name}",
                   unit="it")

    def validate() -> float:
        field.eval()
        mse = float(rollout_errors(simulator.predict_rollout, val_windows).mean())
        field.train()
        return mse

    if parent is not None and progress_state.iteration == 0:
        # The starting model competes for best: fine-tuning never returns a worse model. One
        # whose rollouts diverge (NaN) does not: every finite model beats it.
        mse = validate()
        if math.isfinite(mse):
            progress_state.best_mse, progress_state.best_state = mse, copy.deepcopy(field.state_dict())
        progress_state.history.append({"iteration": 0, "stage": 0, f"val_mse_h{horizon}": mse})
        report(f"iteration 0 (the --init-from model): validation H={horizon} MSE {mse:.4g}")
    iteration = 0
    try:
        for stage_index, stage in enumerate(stages):
            stage_start = iteration
            iteration += stage.iterations
            if progress_state.iteration >= iteration:
                continue  # finished before the run was resumed
            _enter_stage(field, stage)
            optimiser = torch.optim.Adam(stage.parameters, lr=config.learning_rate)
            if progress_state.optimiser is not None:
                if progress_state.iteration > stage_start:
                    optimiser.load_state_dict(progress_state.optimiser)
                else:  # resumed at a stage boundary: the saved optimiser was the last stage's
                    field.load_state_dict(progress_state.best_state)
                progress_state.optimiser = None
            if progress_state.iteration == stage_start:
                report(f"{stage.name}: {stage.iterations} iterations, "
                       f"{sum(p.numel() for p in stage.parameters)} parameters learning")
            for step in range(progress_state.iteration + 1, iteration + 1):
                progress_state.iteration = step
                within = step - stage_start - 1
                for group in optimiser.param_groups:
                    group["lr"] = config.learning_rate * 0.5 * (1 + math.cos(math.pi * within / stage.iterations))
                if sequences is None:
                    batch = torch.randint(len(starts), (config.batch_size,), generator=generator)
                    x, u, y = starts[batch], actions[batch], targets[batch]
                    if teacher_model is not None:
                        with torch.no_grad():
                            y = teacher_model.simulator.predict(x, u)
                    loss = one_step_loss(simulator, x, u, y, delta_std)
                else:
                    x, u, y = sequences.sample(config.batch_size, generator)
                    if teacher_model is not None:
                        with torch.no_grad():
                            y = teacher_model.simulator.predict_rollout(x, u)
                    loss = rollout_loss(simulator, x, u, y, sequences.scale)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(stage.parameters, config.grad_clip)
                # A rare batch can overflow (contact-rich robots): skip it rather than let one
                # non-finite update poison every weight; give up if it keeps happening.
                if not (torch.isfinite(loss) and torch.isfinite(grad_norm)):
                    progress_state.skipped += 1
                    progress_state.in_a_row += 1
                    if progress_state.in_a_row >= _MAX_SKIPPED_IN_A_ROW:
                        raise NeuralSimError(
                            f"training diverged: {progress_state.in_a_row} non-finite steps in a row at iteration "
                            f"{step}; the best model so far is in {output} (try a lower --lr)"
                        )
                else:
                    progress_state.in_a_row = 0
                    optimiser.step()
                    value = loss.item()
                    running = progress_state.running
                    progress_state.running = 0.98 * running + 0.02 * value if running is not None else value
                if bar is not None:
                    bar.update()
                    if step % 50 == 0 and progress_state.running is not None:
                        bar.set_postfix(loss=f"{progress_state.running:.3g}", best=f"{progress_state.best_mse:.3g}")
                if step % config.eval_every == 0 or step == iteration:
                    mse = validate()
                    progress_state.history.append(
                        {"iteration": step, "stage": stage_index, "loss": progress_state.running or math.nan,
                         f"val_mse_h{horizon}": mse}
                    )
                    improved = mse < progress_state.best_mse
                    if improved:
                        progress_state.best_mse, progress_state.best_iteration = mse, step
                        progress_state.best_state = copy.deepcopy(field.state_dict())
                        partial = checkpoint_config({"iterations": step, "best_iteration": step, "complete": False})
                        save_checkpoint(output, partial, simulator, reset_states, spec.files)
                        write_card(output, partial)
                    progress_state.wall_time_s = time.time() - started
                    _save_run_state(output, run_settings, progress_state, field, optimiser, generator)
                    report(
                        f"iteration {step}: loss {progress_state.running or math.nan:.4g}, validation H={horizon} "
                        f"MSE {mse:.4g}{' (best)' if improved else ''}, {time.time() - started:.0f}s"
                    )
            # The next stage starts from the best model so far.
            field.load_state_dict(progress_state.best_state)
    finally:
        if bar is not None:
            bar.close()
        log_file.close()

    field.load_state_dict(progress_state.best_state)
    if isinstance(field, MoSimField):
        field.active_correctors = len(field.correctors)
    field.eval()
    horizon_steps = trusted_horizon(simulator.predict_rollout, val_data, spec.info.episode_steps, config.seed + 2)
    final = checkpoint_config(
        {
            "iterations": config.iterations,
            "best_iteration": progress_state.best_iteration,
            f"validation_mse_h{horizon}": progress_state.best_mse,
            "trusted_horizon": horizon_steps,
            "history": progress_state.history,
            "complete": True,
        }
    )
    save_checkpoint(output, final, simulator, reset_states, spec.files)
    write_card(output, final)
    for name in RUN_STATE_FILES:
        (output / name).unlink(missing_ok=True)
    log(f"wrote {output} (best iteration {progress_state.best_iteration}, trusted horizon {horizon_steps} steps)")
    return output


def _zero_output_layer(network: torch.nn.Module) -> None:
    with torch.no_grad():
        cast(torch.nn.Linear, network.output).weight.zero_()  # a ResNet's output layer
        cast(torch.nn.Linear, network.output).bias.zero_()


def _enter_stage(field: VectorField, stage: _Stage) -> None:
    """Freeze all but the stage's parameters and run only the correctors it needs."""
    learning = {id(p) for p in stage.parameters}
    for parameter in field.parameters():
        parameter.requires_grad_(id(parameter) in learning)
    if isinstance(field, MoSimField) and stage.active_correctors is not None:
        field.active_correctors = stage.active_correctors


@dataclass
class _RunProgress:
    """Everything about a run that changes as it trains (what resuming restores)."""

    best_state: dict[str, torch.Tensor]
    iteration: int = 0
    best_mse: float = math.inf
    best_iteration: int = 0
    running: float | None = None
    skipped: int = 0
    in_a_row: int = 0
    wall_time_s: float = 0.0
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)
    optimiser: dict[str, Any] | None = None
    resumed_at: int = 0


#: The resumable state of an unfinished run, beside its best checkpoint.
RUN_STATE_FILES = ("training_state.json", "training_state.safetensors")
TRAINING_LOG = "training.log"


def _save_run_state(
    output: Path,
    settings: dict[str, Any],
    state: _RunProgress,
    field: VectorField,
    optimiser: torch.optim.Optimizer,
    generator: torch.Generator,
) -> None:
    tensors = {f"field.{k}": v.detach().clone().contiguous() for k, v in field.state_dict().items()}
    tensors |= {f"best.{k}": v.detach().clone().contiguous() for k, v in state.best_state.items()}
    tensors["generator"] = generator.get_state()
    optimiser_state = optimiser.state_dict()
    for index, values in optimiser_state["state"].items():
        for name, value in values.items():
            tensors[f"optimiser.{index}.{name}"] = torch.as_tensor(value).clone().contiguous()
    meta = {
        "settings": settings,
        "iteration": state.iteration,
        "best_mse": state.best_mse if math.isfinite(state.best_mse) else None,
        "best_iteration": state.best_iteration,
        "running": state.running,
        "skipped": state.skipped,
        "in_a_row": state.in_a_row,
        "wall_time_s": state.wall_time_s,
        "history": state.history,
        "optimiser_param_groups": optimiser_state["param_groups"],
        "optimiser_state_keys": {str(i): sorted(v) for i, v in optimiser_state["state"].items()},
    }
    # Write then rename, so an interruption mid-save leaves the previous state intact.
    save_file(tensors, str(output / (RUN_STATE_FILES[1] + ".tmp")))
    (output / (RUN_STATE_FILES[0] + ".tmp")).write_text(json.dumps(meta, indent=1) + "\n")
    for name in RUN_STATE_FILES:
        os.replace(output / (name + ".tmp"), output / name)


def _load_run_state(output: Path, settings: dict[str, Any], resume: bool) -> dict[str, Any] | None:
    meta_path, tensor_path = (output / name for name in RUN_STATE_FILES)
    if not meta_path.is_file():
        if resume:
            raise NeuralSimError(f"nothing to resume: {output} holds no interrupted run ({RUN_STATE_FILES[0]})")
        return None
    if not resume:
        raise NeuralSimError(
            f"{output} holds an interrupted training run: pass --resume to continue it, or choose another --out"
        )
    try:
        meta = json.loads(meta_path.read_text())
        tensors = load_file(str(tensor_path))
    except (OSError, ValueError, SafetensorError) as error:
        raise NeuralSimError(f"the run state in {output} is unreadable ({error}); start a new run elsewhere") from error
    saved = json.loads(json.dumps(meta["settings"]))
    if saved != json.loads(json.dumps(settings)):
        differing = sorted(k for k in settings if saved.get(k) != json.loads(json.dumps(settings[k])))
        raise NeuralSimError(
            f"cannot resume the run in {output}: its {', '.join(differing)} differ from this command's; "
            "resume with the original command and data"
        )
    return {"meta": meta, "tensors": tensors}


def _restore_run(saved: dict[str, Any], field: VectorField, generator: torch.Generator) -> _RunProgress:
    meta, tensors = saved["meta"], saved["tensors"]
    field.load_state_dict({k[len("field."):]: v for k, v in tensors.items() if k.startswith("field.")})
    generator.set_state(tensors["generator"])
    optimiser_state = {
        "state": {
            int(i): {name: tensors[f"optimiser.{i}.{name}"] for name in names}
            for i, names in meta["optimiser_state_keys"].items()
        },
        "param_groups": meta["optimiser_param_groups"],
    }
    best_mse = meta["best_mse"]
    return _RunProgress(
        best_state={k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")},
        iteration=meta["iteration"],
        best_mse=math.inf if best_mse is None else best_mse,
        best_iteration=meta["best_iteration"],
        running=meta["running"],
        skipped=meta["skipped"],
        in_a_row=meta["in_a_row"],
        wall_time_s=meta["wall_time_s"],
        history=meta["history"],
        optimiser=optimiser_state,
        resumed_at=meta["iteration"],
    )


def one_step_loss(
    simulator: Simulator, starts: torch.Tensor, actions: torch.Tensor, targets: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    """The training loss: one-step error per dimension over ``scale`` (the spread of the
    one-step change), squared and averaged."""
    return (((simulator.predict(starts, actions) - targets) / scale) ** 2).mean()


def rollout_loss(
    simulator: Simulator, starts: torch.Tensor, actions: torch.Tensor, targets: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    """Open-loop rollout error: from ``starts`` ``[B, S]`` under ``actions`` ``[B, K, nu]``,
    the error to ``targets`` ``[B, K, S]`` per dimension over ``scale``, squared and averaged."""
    return (((simulator.predict_rollout(starts, actions) - targets) / scale) ** 2).mean()


class _Sequences:
    """Training sequences as tensors, cut into random windows of ``steps`` for :func:`rollout_loss`."""

    def __init__(self, dataset: Dataset, steps: int) -> None:
        if steps > dataset.actions.shape[1]:
            raise NeuralSimError(
                f"rollout_steps={steps} is longer than the training sequences ({dataset.actions.shape[1]} steps)"
            )
        self.states = torch.as_tensor(dataset.states, dtype=torch.float32)  # [N, T + 1, S]
        self.actions = torch.as_tensor(dataset.actions, dtype=torch.float32)  # [N, T, nu]
        self.steps = steps
        size = self.states.shape[-1]
        self.scale = self.states.reshape(-1, size).std(0).clamp_min(_MIN_STD)

    def sample(self, windows: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``windows`` random windows: start states, actions and the states after each action."""
        n, length = self.actions.shape[:2]
        sequence = torch.randint(n, (windows,), generator=generator)
        first = torch.randint(length - self.steps + 1, (windows,), generator=generator)
        steps = first[:, None] + torch.arange(self.steps)
        rows = sequence[:, None]
        return self.states[sequence, first], self.actions[rows, steps], self.states[rows, steps + 1]


@dataclass(frozen=True)
class _Parent:
    """The checkpoint a fine-tuning run starts from."""

    state_dict: dict[str, torch.Tensor]
    layout: StateLayout
    normalisation: Normalisation
    training: dict[str, Any]
    weights: str  # its weights' fingerprint


def _same_robot_config(folder: str | Path, spec: RobotSpec, role: str) -> CheckpointConfig:
    """The config of checkpoint ``folder``, checked to be a model of ``spec``'s robot."""
    config = read_config(folder)
    if config.robot.name != spec.info.name or (config.simulator.layout.without_contact_kinematics()
                                               != spec.layout.without_contact_kinematics()):
        raise NeuralSimError(
            f"{role} {folder} is a model of {config.robot.name!r}, not of robot {spec.info.name!r} "
            "(or its dimensions differ)"
        )
    return config


def _parent_checkpoint(folder: str | Path, spec: RobotSpec, model: ModelConfig) -> _Parent:
    """Read and check the ``init_from`` checkpoint: same robot, dimensions and architecture."""
    config = _same_robot_config(folder, spec, "--init-from")
    if to_dict(config.simulator.model) != to_dict(model):
        raise NeuralSimError(
            f"--init-from {folder} has another architecture ({to_dict(config.simulator.model)}) than this run "
            f"({to_dict(model)}); fine-tuning keeps the architecture: use the same recipe's model settings"
        )
    simulator = load_simulator(folder, config)
    training = {k: v for k, v in config.training.items() if k != "history"}
    training["weights_sha256"] = weights_fingerprint(folder)
    return _Parent(simulator.field.state_dict(), config.simulator.layout, config.simulator.normalisation, training,
                   training["weights_sha256"])


@dataclass(frozen=True)
class _Teacher:
    """The checkpoint a distillation run learns from."""

    simulator: Simulator
    record: dict[str, Any]  # its training provenance and weights' fingerprint


def _teacher(folder: str | Path, spec: RobotSpec) -> _Teacher:
    """Load and check the ``teacher`` checkpoint: same robot and dimensions."""
    config = _same_robot_config(folder, spec, "teacher")
    simulator = load_simulator(folder, config)
    simulator.field.eval()
    for parameter in simulator.field.parameters():
        parameter.requires_grad_(False)
    record = {"checkpoint": str(folder), "command": config.training.get("command", ""),
              "integrator": to_dict(config.simulator.integrator), "weights_sha256": weights_fingerprint(folder)}
    return _Teacher(simulator, record)


def _reset_states(dataset: Dataset, rng: np.random.Generator) -> np.ndarray:
    """A random subset of the data's real states, for environment resets."""
    states = dataset.states.reshape(-1, dataset.states.shape[-1])
    take = rng.choice(len(states), size=min(RESET_STATES, len(states)), replace=False)
    return states[np.sort(take)]


def fine_tune(
    simulator: Simulator,
    starts: np.ndarray,
    actions: np.ndarray,
    targets: np.ndarray,
    iterations: int,
    learning_rate: float = 1e-4,
    batch_size: int = 256,
    seed: int = 0,
) -> dict[str, float]:
    """Adam steps of the training loss (one-step error per dimension over the spread of the
    one-step change) on real transitions ``(starts [N, S], actions [N, nu + na]) -> targets`` (each action,
    then the actuator activations at its start when the model takes them),
    updating ``simulator`` in place (its traced fast path rebuilds itself).

    :return: the loss over all given transitions before and after.
    """
    if len(starts) == 0 or iterations < 1:
        raise NeuralSimError(f"fine-tuning needs transitions and iterations >= 1, got {len(starts)} and {iterations}")
    device = simulator.device
    x, u, y = (torch.as_tensor(np.asarray(a), dtype=torch.float32, device=device) for a in (starts, actions, targets))
    scale = (y - x).std(0).clamp_min(_MIN_STD) if len(x) > 1 else torch.ones_like(x[0])
    field = simulator.field

    def loss_of(rows: torch.Tensor | slice) -> torch.Tensor:
        return one_step_loss(simulator, x[rows], u[rows], y[rows], scale)

    with torch.no_grad():
        before = float(loss_of(slice(None)))
    field.train()
    optimiser = torch.optim.Adam(field.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(iterations):
        loss = loss_of(torch.randint(len(x), (min(batch_size, len(x)),), generator=generator).to(device))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(field.parameters(), 10.0)
        optimiser.step()
    field.eval()
    with torch.no_grad():
        after = float(loss_of(slice(None)))
    return {"loss_before": before, "loss_after": after}
