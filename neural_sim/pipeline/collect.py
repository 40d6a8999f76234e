"""Collect random-action data from a real simulator (the MoSim paper's Poisson protocol).

A data set is a safetensors file with ``states`` ``[N, T + 1, nq + nv]`` (float64) and
``actions`` ``[N, T, nu]`` (and, for robots whose actuators carry state, their
``activations`` ``[N, T + 1, na]``), plus JSON metadata saying how to regenerate it.
Collected data is never committed: the same command and seed rebuild it bit for bit.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from neural_sim.errors import NeuralSimError
from neural_sim.robots import collection_bridge

# The paper's protocol: switch to a new action with probability 1/5 each step (mean hold
# time 5); a newly drawn action is zero with probability 0.3.
SWITCH_PROBABILITY = 0.2
ZERO_PROBABILITY = 0.3


@dataclass(frozen=True)
class CollectionInfo:
    """How a data set was made (stored in its metadata and in checkpoints trained on it)."""

    robot: str
    domain: str
    task: str
    sequences: int
    steps: int
    seed: int
    protocol: str = "poisson"
    command: str = ""
    #: With ``protocol="poisson+agent"``: how many of the sequences (the first ones) agents'
    #: stochastic policies drove, in all, and each agent in turn (:meth:`AgentPolicy.record`:
    #: its file, SHA-256, training command and sequences).
    agent_sequences: int = 0
    agents: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> CollectionInfo:
        """Read a record written by :func:`dataclasses.asdict`, also one from before several
        agents (a single ``agent``, ``agent_sha256`` and ``agent_command``)."""
        record = dict(record)
        if "agent" in record:
            legacy = {"path": record.pop("agent"), "sha256": record.pop("agent_sha256", ""),
                      "command": record.pop("agent_command", ""), "sequences": record.get("agent_sequences", 0)}
            record["agents"] = [legacy] if legacy["sequences"] else []
        record["agents"] = tuple(record.get("agents", ()))
        return cls(**record)


@dataclass
class Dataset:
    """Sequences of real states and the actions between them."""

    states: np.ndarray  # [N, T + 1, nq + nv]
    actions: np.ndarray  # [N, T, nu]
    info: CollectionInfo
    #: The actuators' activations (MuJoCo ``act``) at each state, ``[N, T + 1, na]``, for
    #: robots whose actuators carry state; ``None`` for the others.
    activations: np.ndarray | None = None

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the data set as safetensors (no pickle)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tensors = {"states": torch.from_numpy(self.states), "actions": torch.from_numpy(self.actions)}
        if self.activations is not None:
            tensors["activations"] = torch.from_numpy(np.ascontiguousarray(self.activations))
        save_file(tensors, str(target), metadata={"collection": json.dumps(asdict(self.info))})
        return target

    def subset(self, rows: np.ndarray) -> Dataset:
        """The sequences ``rows`` (same provenance)."""
        activations = self.activations[rows] if self.activations is not None else None
        return Dataset(self.states[rows], self.actions[rows], self.info, activations)

    def model_inputs(self, na: int) -> np.ndarray:
        """The model's per-step inputs ``[N, T, nu + na]``: each action, then the activations
        at the start of its step (just the actions when ``na`` is 0).

        :raises NeuralSimError: the model takes activations and the data has none (collected
            before data recorded them) or another number.
        """
        if na == 0:
            return self.actions
        if self.activations is None or self.activations.shape[-1] != na:
            found = "none" if self.activations is None else self.activations.shape[-1]
            raise NeuralSimError(
                f"the model takes {na} actuator activations per step but this data set records {found}: "
                f"collect it again (`{self.info.command or 'neural-sim collect'}`) with this version")
        return np.concatenate([self.actions, self.activations[:, :-1]], axis=-1)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Dataset:
        """Read a data set written by :meth:`save`."""
        try:
            tensors = load_file(str(path))
            with safe_open(str(path), "pt") as handle:
                metadata = handle.metadata() or {}
        except (SafetensorError, OSError) as error:
            raise NeuralSimError(f"cannot read data set {path}: {error}") from error
        if "collection" not in metadata or not {"states", "actions"} <= set(tensors):
            raise NeuralSimError(f"{path} is not a neural-sim data set (needs 'states', 'actions' and metadata)")
        activations = tensors["activations"].numpy() if "activations" in tensors else None
        return cls(
            tensors["states"].numpy(), tensors["actions"].numpy(),
            CollectionInfo.from_json(json.loads(metadata["collection"])), activations,
        )


def poisson_actions(
    rng: np.random.Generator, steps: int, low: np.ndarray, high: np.ndarray
) -> np.ndarray:
    """One sequence of Poisson random actions, ``[steps, nu]``.

    The first action is drawn fresh; afterwards each step draws a new action with
    probability :data:`SWITCH_PROBABILITY` and holds the previous one otherwise.
    """
    nu = len(low)
    switch = rng.random(steps) < SWITCH_PROBABILITY
    switch[0] = True
    zero = rng.random(steps) < ZERO_PROBABILITY
    draws = rng.uniform(low, high, size=(steps, nu))
    draws[zero] = 0.0
    # Index of the latest switch at or before each step -> hold that draw.
    latest = np.maximum.accumulate(np.where(switch, np.arange(steps), 0))
    return draws[latest]


@dataclass(frozen=True)
class AgentPolicy:
    """An agent that drives some of the collected sequences (data where agents go).

    :param act: ``act(observation) -> action`` (stochastic: it explores around its path).
    :param path: the agent file, recorded in the data's provenance.
    :param sha256: its fingerprint.
    :param command: the command that trained it.
    """

    act: Callable[[Any], np.ndarray]
    path: str
    sha256: str
    command: str = ""

    def record(self, sequences: int) -> dict[str, Any]:
        """What a data set records of this agent, having driven ``sequences`` sequences."""
        return {"path": self.path, "sha256": self.sha256, "command": self.command, "sequences": sequences}


def collect(
    robot: str,
    sequences: int,
    steps: int = 1000,
    seed: int = 0,
    task: str | None = None,
    command: str | None = None,
    progress: bool = False,
    agents: Sequence[tuple[AgentPolicy, int]] = (),
) -> Dataset:
    """Roll out Poisson random actions (and, optionally, agents) in the real simulator.

    Each sequence starts from the stock task's own random initial state (dm_control's
    ``task.initialize_episode``, Gymnasium's ``reset``) and runs ``steps`` control steps with
    no time limit. Random actions alone leave a walker lying on the floor, where no agent
    goes: with ``agents``, the first sequences are driven by their stochastic policies
    instead (each agent in turn, for its number of sequences), so the data also covers the
    states trained agents reach (a walker standing, walking).

    :param robot: a known robot name (``"acrobot"``, ``"HalfCheetah-v5"``).
    :param sequences: number of sequences.
    :param steps: control steps per sequence.
    :param seed: seeds both the task's initial states and the actions.
    :param task: stock task supplying initial states (default: the robot's default task).
    :param command: the command line to record (default: this process's).
    :param progress: show a progress bar.
    :param agents: ``(agent, sequences it drives)`` pairs; each count positive, their sum at
        most ``sequences``.
    """
    if sequences < 1 or steps < 1:
        raise NeuralSimError(f"sequences and steps must be >= 1, got {sequences} and {steps}")
    counts = [count for _, count in agents]
    if any(count < 1 for count in counts) or sum(counts) > sequences:
        raise NeuralSimError(
            f"each agent must drive at least 1 sequence and together at most sequences={sequences}; got {counts}"
        )
    driver = [agent.act for agent, count in agents for _ in range(count)]  # the agent of each driven sequence
    bridge, robot_info, task = collection_bridge(robot, task, seed)
    rng = np.random.default_rng(seed)
    if agents:
        torch.manual_seed(seed)  # the agents' stochastic policies sample from torch's generator
    low, high = bridge.action_space.low, bridge.action_space.high
    size = bridge.nq + bridge.nv
    states = np.empty((sequences, steps + 1, size), dtype=np.float64)
    actions = np.empty((sequences, steps, len(low)), dtype=np.float64)
    activations = np.empty((sequences, steps + 1, bridge.na), dtype=np.float64) if bridge.na else None
    iterator = range(sequences)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc=f"collect {robot}", unit="seq")
    for i in iterator:
        states[i, 0] = bridge.reset_random()
        if activations is not None:
            activations[i, 0] = bridge.activations
        actions[i] = poisson_actions(rng, steps, low, high)  # drawn for every sequence: same RNG stream
        act = driver[i] if i < len(driver) else None
        for t in range(steps):
            if act is not None:
                actions[i, t] = np.clip(act(bridge.observation()), low, high)  # SB3 clips as well
            bridge.step_physics(actions[i, t])
            states[i, t + 1] = bridge.get_state()
            if activations is not None:
                activations[i, t + 1] = bridge.activations
    bridge.close()
    if command is None:
        command = shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
    provenance: dict[str, Any] = {}
    if agents:
        provenance = {"protocol": "poisson+agent", "agent_sequences": len(driver),
                      "agents": tuple(agent.record(count) for agent, count in agents)}
    info = CollectionInfo(robot, robot_info.domain, task, sequences, steps, seed, command=command, **provenance)
    return Dataset(states, actions, info, activations)


def recollect_training_data(training: dict[str, Any], robot: str | None = None, progress: bool = False,
                            load_agent: Callable[[str, str], AgentPolicy] | None = None) -> Dataset:
    """Collect a checkpoint's training data again from the command and seed in its record.

    :param training: the ``training`` section of a checkpoint's config.
    :param robot: where the robot is now (default: as recorded; an MJCF robot's XML moves
        with its checkpoint, see :func:`neural_sim.robots.data_source`).
    :param load_agent: ``load_agent(path, task) -> AgentPolicy``, for data agents drove.
    :raises NeuralSimError: the record names no data; an agent drove it and its file is
        missing or changed (the error names the command that trains it again).
    """
    if not training.get("data"):
        raise NeuralSimError("the checkpoint records no training data to regenerate")
    data = CollectionInfo.from_json(training["data"])
    agents = []
    for record in data.agents:
        remake = f"made by `{record.get('command') or 'a command not recorded'}`"
        if load_agent is None or not Path(record["path"]).is_file():
            raise NeuralSimError(f"this data was partly driven by the agent {record['path']} ({remake}); it is needed")
        agent = load_agent(record["path"], data.task)
        if agent.sha256 != record["sha256"]:
            raise NeuralSimError(f"the agent {record['path']} is not the one that drove this data "
                                 f"(sha256 {agent.sha256}, recorded {record['sha256']}; {remake})")
        agents.append((agent, int(record["sequences"])))
    return collect(robot or data.robot, data.sequences, data.steps, data.seed, data.task,
                   command=data.command, progress=progress, agents=agents)
