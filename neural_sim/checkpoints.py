"""The checkpoint folder: ``config.json`` + safetensors + a model card. No pickle anywhere.

Layout (hub-ready)::

    config.json               format version, robot, dims, architecture, integrator,
                              normalisation, trusted horizon, training provenance, benchmark
    model.safetensors         the vector field's weights
    reset_states.safetensors  real physics states ("states": [N, nq + nv]) for env resets
    density.safetensors       optional: the density model's weights (config in "density")
    README.md                 the model card
    benchmark.png             optional: the benchmark's error plots
    ablation/                 optional: the same robot, other architecture (a checkpoint)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from neural_sim.density.model import DensityConfig, DensityModel
from neural_sim.errors import CheckpointError
from neural_sim.model.config import SimulatorConfig, from_dict, to_dict
from neural_sim.model.domain import DataDomain
from neural_sim.model.dynamics import build_vector_field
from neural_sim.model.simulator import Simulator
from neural_sim.robots.base import RobotInfo

#: The format this version of neural-sim writes; it reads this one and older ones.
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
MODEL_FILE = "model.safetensors"
RESET_STATES_FILE = "reset_states.safetensors"
DENSITY_FILE = "density.safetensors"
CARD_FILE = "README.md"
#: Optional sub-folder: a complete checkpoint of the same robot with the other architecture,
#: trained by the same recipe on the same data (the benchmark's inductive-bias ablation).
ABLATION_DIR = "ablation"
REQUIRED_FILES = (CONFIG_FILE, MODEL_FILE, RESET_STATES_FILE)


@dataclass(frozen=True)
class CheckpointConfig:
    """Contents of ``config.json``.

    :param format_version: checkpoint format version (:data:`FORMAT_VERSION` when written).
    :param robot: which robot and tasks the model is of.
    :param simulator: what rebuilds the network.
    :param trusted_horizon: steps of open-loop prediction the model is trusted for (state
        error within 5% of the state variance); the default episode length of its
        environments unless ``episode_length`` sets one.
    :param training: provenance: command, seed, data, wall time, samples, hardware.
    :param benchmark: prediction accuracy figures and the command that measured them.
    :param density: the density model's config and calibration, if the checkpoint has one.
    :param episode_length: the default episode length set by ``neural-sim benchmark-task
        --write`` (``steps``, the rule, the policy and the figures behind it); empty: the
        trusted horizon is the default.
    :param domain: the region of state space the training data covers; the envs end an
        episode that leaves it (``None``: only a non-finite prediction ends one).
    """

    format_version: int
    robot: RobotInfo
    simulator: SimulatorConfig
    trusted_horizon: int
    training: dict[str, Any] = field(default_factory=dict)
    benchmark: dict[str, Any] = field(default_factory=dict)
    density: DensityConfig | None = None
    episode_length: dict[str, Any] = field(default_factory=dict)
    domain: DataDomain | None = None

    @property
    def default_episode_steps(self) -> int:
        """Truncation of the checkpoint's registered env ids: ``episode_length["steps"]``
        when set, else the trusted horizon (at least 1: a barely trained model may trust 0)."""
        return max(1, int(self.episode_length.get("steps", self.trusted_horizon)))


def shipped_checkpoints_dir() -> Path:
    """Where the default checkpoints live.

    Inside the installed package (a wheel puts ``checkpoints/`` at
    ``neural_sim/checkpoints``), else beside the package in a source checkout.
    """
    package = Path(__file__).resolve().parent
    for candidate in (package / "checkpoints", package.parent / "checkpoints"):
        if candidate.is_dir():
            return candidate
    return package / "checkpoints"


def shipped_names() -> list[str]:
    """Names of the checkpoints that ship with neural-sim (``["acrobot", "pendulum"]``)."""
    root = shipped_checkpoints_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CONFIG_FILE).is_file())


def weights_fingerprint(folder: str | os.PathLike[str], density: bool = True, episode_length: bool = True) -> str:
    """A short hash of what a checkpoint's envs compute with: the model, the reset states,
    the density model (if present and ``density``: an env without the penalty never reads
    it) and the default episode length set by ``neural-sim benchmark-task --write``. The
    rest of ``config.json`` is left out on purpose: rewriting its benchmark figures changes
    no prediction. So is the data domain: it changes no prediction, it only ends episodes
    that leave the data (RL results record how many did). ``episode_length=False`` leaves the
    default episode length out too: a run that sets its own (``neural-sim rl
    --max-episode-steps``) never reads it.

    :return: the first 12 hex digits of the SHA-256 over those files, in a fixed order.
    """
    folder = Path(folder)
    _require_files(folder, (MODEL_FILE, RESET_STATES_FILE))
    digest = hashlib.sha256()
    for name in (MODEL_FILE, RESET_STATES_FILE) + ((DENSITY_FILE,) if density else ()):
        if (folder / name).is_file():
            digest.update(name.encode())
            digest.update((folder / name).read_bytes())
    if episode_length and (folder / CONFIG_FILE).is_file():
        episode = json.loads((folder / CONFIG_FILE).read_text()).get("episode_length") or {}
        if "steps" in episode:  # the truncation of every registered id
            digest.update(f"episode_length={episode['steps']}".encode())
    return digest.hexdigest()[:12]


def read_config(folder: str | os.PathLike[str]) -> CheckpointConfig:
    """Read and validate ``config.json`` of a checkpoint folder."""
    folder = Path(folder)
    _require_files(folder, (CONFIG_FILE,))
    try:
        raw = json.loads((folder / CONFIG_FILE).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{folder / CONFIG_FILE} is not valid JSON: {error}") from error
    if not isinstance(raw, dict) or "format_version" not in raw:
        raise CheckpointError(f"{folder / CONFIG_FILE} has no 'format_version': not a neural-sim checkpoint")
    version = raw["format_version"]
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{folder / CONFIG_FILE}: format_version must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{folder} uses checkpoint format version {version}, newer than this neural-sim "
            f"supports (<= {FORMAT_VERSION}); upgrade neural-sim to load it"
        )
    try:
        return from_dict(CheckpointConfig, raw, where=CONFIG_FILE)
    except ValueError as error:
        raise CheckpointError(f"{folder / CONFIG_FILE} is invalid: {error}") from error


def load_simulator(
    folder: str | os.PathLike[str], config: CheckpointConfig, device: str | torch.device = "cpu"
) -> Simulator:
    """Build the network from ``config`` and load ``model.safetensors`` into it."""
    folder = Path(folder)
    _require_files(folder, (MODEL_FILE,))
    try:
        field_ = build_vector_field(config.simulator.layout, config.simulator.normalisation, config.simulator.model)
    except ValueError as error:
        raise CheckpointError(f"{folder / CONFIG_FILE} describes a model that cannot be built: {error}") from error
    weights = _read_safetensors(folder / MODEL_FILE)
    missing, unexpected = _state_dict_mismatch(field_.state_dict(), weights)
    if missing or unexpected:
        raise CheckpointError(
            f"{folder / MODEL_FILE} does not match the architecture in {CONFIG_FILE}: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for name, tensor in field_.state_dict().items():
        if tensor.shape != weights[name].shape:
            raise CheckpointError(
                f"{folder / MODEL_FILE}: tensor {name!r} has shape {tuple(weights[name].shape)}, "
                f"the architecture in {CONFIG_FILE} needs {tuple(tensor.shape)}"
            )
    field_.load_state_dict(weights)
    return Simulator(config.simulator, field_, device)


def load_reset_states(folder: str | os.PathLike[str], state_size: int) -> np.ndarray:
    """The real states shipped for resets, ``[N, nq + nv]`` float64."""
    folder = Path(folder)
    _require_files(folder, (RESET_STATES_FILE,))
    tensors = _read_safetensors(folder / RESET_STATES_FILE)
    if "states" not in tensors:
        raise CheckpointError(f"{folder / RESET_STATES_FILE} has no tensor 'states' (found {sorted(tensors)})")
    states = tensors["states"].to(torch.float64).numpy()
    if states.ndim != 2 or states.shape[1] != state_size or len(states) == 0:
        raise CheckpointError(
            f"{folder / RESET_STATES_FILE}: 'states' must have shape [N>0, {state_size}], got {states.shape}"
        )
    if not np.isfinite(states).all():
        raise CheckpointError(f"{folder / RESET_STATES_FILE}: 'states' contains NaN or inf")
    return states


def load_density(folder: str | os.PathLike[str], config: CheckpointConfig) -> DensityModel:
    """The checkpoint's density model.

    :raises CheckpointError: the checkpoint has none, or its file is missing or damaged.
    """
    folder = Path(folder)
    if config.density is None:
        raise CheckpointError(
            f"checkpoint {folder} has no density model; fit one with `neural-sim fit-density {folder}`"
        )
    _require_files(folder, (DENSITY_FILE,))
    try:
        density = DensityModel(config.simulator.layout, config.simulator.normalisation, config.density)
    except ValueError as error:
        raise CheckpointError(f"{folder / CONFIG_FILE}: invalid density config: {error}") from error
    weights = _read_safetensors(folder / DENSITY_FILE)
    missing, unexpected = _state_dict_mismatch(density.state_dict(), weights)
    if missing or unexpected or any(t.shape != weights[n].shape for n, t in density.state_dict().items()):
        raise CheckpointError(
            f"{folder / DENSITY_FILE} does not match the density config in {CONFIG_FILE} "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]}, or shapes differ)"
        )
    density.load_state_dict(weights)
    return density.eval()


def save_density(folder: str | os.PathLike[str], density: DensityModel) -> CheckpointConfig:
    """Add (or replace) a density model in an existing checkpoint folder."""
    path = Path(folder)
    config = dataclasses.replace(read_config(path), density=density.config)
    weights = {name: tensor.detach().cpu().contiguous() for name, tensor in density.state_dict().items()}
    save_file(weights, str(path / DENSITY_FILE), metadata={"format": "pt"})
    write_config(path, config)
    return config


def write_config(folder: Path, config: CheckpointConfig) -> None:
    """Write ``config.json``."""
    (folder / CONFIG_FILE).write_text(json.dumps(to_dict(config), indent=2) + "\n")


def save_checkpoint(
    folder: str | os.PathLike[str],
    config: CheckpointConfig,
    simulator: Simulator,
    reset_states: np.ndarray,
    robot_files: tuple[Path, ...] = (),
) -> Path:
    """Write a checkpoint folder's weights, reset states and config (created if needed; files
    replaced); the model card is :func:`neural_sim.pipeline.card.write_card`'s.

    :param robot_files: files the robot needs at load time (an MJCF robot's XML), copied in.
    """
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    for file in robot_files:
        if file.resolve() != (path / file.name).resolve():
            shutil.copyfile(file, path / file.name)
    weights = {name: tensor.detach().cpu().contiguous() for name, tensor in simulator.field.state_dict().items()}
    save_file(weights, str(path / MODEL_FILE), metadata={"format": "pt"})
    save_file({"states": torch.as_tensor(np.asarray(reset_states, dtype=np.float64))}, str(path / RESET_STATES_FILE))
    write_config(path, config)
    return path


def _require_files(folder: Path, names: tuple[str, ...]) -> None:
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(
            f"checkpoint folder {folder} is missing {missing}; a checkpoint holds {list(REQUIRED_FILES)} "
            f"and {CARD_FILE}"
        )


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"{path} is not a readable safetensors file (corrupted or truncated?): {error}"
        ) from error


def _state_dict_mismatch(
    expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]
) -> tuple[list[str], list[str]]:
    return sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
