"""The run machinery shared by zero-shot and few-shot RL benchmarks.

An agent (SB3 SAC or sb3-contrib TQC with the paper's settings) trains on one env and is
scored in the real env every few thousand steps; runs save their results into one folder
(``results.json``, merged under a lock so seeds can run at once), write a checkpoint at every
evaluation, and resume from it when the command runs again.
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
from filelock import FileLock
from gymnasium import spaces
from sb3_contrib import TQC
from stable_baselines3 import SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from neural_sim.errors import NeuralSimError
from neural_sim.rl.real_env import (
    RealEnvEvaluation,
    agent_env,
    checkpoint_fingerprint,
    make_real_env,
)

#: Algorithms by name, with the paper's settings (actor and critics 256x256; TQC with 5
#: critics of 25 quantiles, the top 2 per critic dropped).
ALGORITHMS: dict[str, tuple[type[OffPolicyAlgorithm], dict[str, Any]]] = {
    "sac": (SAC, {"policy_kwargs": {"net_arch": [256, 256]}}),
    "tqc": (TQC, {"top_quantiles_to_drop_per_net": 2,
                  "policy_kwargs": {"net_arch": [256, 256], "n_critics": 5, "n_quantiles": 25}}),
}
RESULTS_FILE = "results.json"
#: Settings recorded in ``results.json`` only when they differ from these (older files lack them).
OPTIONAL_SETTINGS: dict[str, Any] = {"reset_from": "buffer", "max_episode_steps": None, "checkpoint": None}
#: Settings recorded since a later version: compared only with files that have them.
LATER_SETTINGS = frozenset({"checkpoint_sha256"})
PLOT_FILE = "learning_curve.png"
#: A run's checkpoint folder is ``agents/<variant>-seed<seed>`` + this, while the run is unfinished.
CHECKPOINT_SUFFIX = ".checkpoint"
NEURAL, REAL = "neural_sim", "real"


def make_agent(algo: str, env: gym.Env[Any, Any], seed: int, device: str = "auto",
               learning_starts: int = 1000) -> BaseAlgorithm:
    """An off-the-shelf agent for ``env`` (``MultiInputPolicy`` for dict observations).

    :raises NeuralSimError: for an unknown algorithm name.
    """
    if algo not in ALGORITHMS:
        raise NeuralSimError(f"unknown algorithm {algo!r}; accepted: {sorted(ALGORITHMS)}")
    cls, kwargs = ALGORITHMS[algo]
    policy = "MultiInputPolicy" if isinstance(env.observation_space, spaces.Dict) else "MlpPolicy"
    return cls(policy, env, seed=seed, device=device, verbose=0, learning_starts=learning_starts, **kwargs)


def run_missing_seeds(results: dict[str, Any], variant: str, seeds: Sequence[int], folder: Path | None,
                       log: Callable[[str], None], train: Callable[[int], dict[str, Any]]) -> None:
    """``train`` each seed not yet in ``results["runs"][variant]``, saving after each."""
    for seed in seeds:
        if str(seed) in results["runs"][variant]:
            log(f"{variant} seed {seed}: already done in {folder}")
            continue
        results["runs"][variant][str(seed)] = train(seed)
        if folder is not None:
            save_results(folder, results)


def trained_variants(results: dict[str, Any]) -> list[str]:
    """The variants a results folder trains: as recorded, or (older files) those with runs."""
    return results.get("variants") or [variant for variant, runs in results.get("runs", {}).items() if runs]


def mean_curve(runs: list[dict[str, Any]], x_key: str = "steps") -> tuple[list[int], list[float]]:
    """The mean over ``runs`` of the real return at each evaluation they all reached, with
    the evaluations' ``x_key`` (agent steps, or real samples for few-shot runs)."""
    length = min(len(run["evaluations"]) for run in runs)
    xs = [runs[0]["evaluations"][i][x_key] for i in range(length)]
    return xs, [statistics.mean(run["evaluations"][i]["mean"] for run in runs) for i in range(length)]


def window_means(curve: list[float], window: int) -> list[float]:
    """Means of ``curve`` over each run of ``window`` consecutive evaluations (one lucky
    evaluation does not count as reaching a return); element ``i`` ends at ``curve[i + window - 1]``."""
    return [statistics.mean(curve[i + 1 - window:i + 1]) for i in range(window - 1, len(curve))]


def last_evaluations_mean(run: dict[str, Any], count: int = 3) -> float:
    """A run's real return averaged over its last ``count`` evaluations (one evaluation of a
    half-trained agent swings widely)."""
    return statistics.mean(e["mean"] for e in run["evaluations"][-count:])


@runtime_checkable
class Resumable(Protocol):
    """A training helper (e.g. the few-shot loop) whose state goes into run checkpoints."""

    def save_state(self, folder: Path) -> None:
        """Write the state into ``folder`` (created)."""

    def load_state(self, folder: Path) -> None:
        """Take up the state :meth:`save_state` wrote (before training starts)."""


def train_and_score(
    train_id: str, real_id: str, algo: str, steps: int, seed: int, eval_every: int, eval_episodes: int,
    device: str, env_kwargs: dict[str, Any], progress: bool, log: Callable[[str], None],
    agents: Path | None, variant: str, helper: BaseCallback | None = None,
    annotate: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """One seed: train on ``train_id`` (with ``helper`` beside the scoring callback, e.g. the
    few-shot loop), scored in ``real_id``; ``annotate`` adds fields to each evaluation record.

    With an ``agents`` folder, every evaluation also writes a checkpoint (agent, replay
    buffer, records, the helper's state) that a rerun resumes from; it is removed when the
    run ends. A resumed run is deterministic from its checkpoint but is not bit-identical to
    an uninterrupted one (the episode in progress restarts); ``resumed_from_steps`` says where.
    """
    # The weights this run trains in, read before training: the checkpoint may be replaced
    # on disk while a run of hours goes on.
    with_density = bool(env_kwargs.get("density_penalty"))
    trained_in = (checkpoint_fingerprint(train_id, env_kwargs.get("checkpoint"), with_density,
                                         episode_length=env_kwargs.get("max_episode_steps") is None)
                  if train_id != real_id else None)
    env = agent_env(make_real_env(train_id) if train_id == real_id else gym.make(train_id, **env_kwargs))
    env.reset(seed=seed)
    name = f"{variant}-seed{seed}"
    checkpoint = agents / f"{name}{CHECKPOINT_SUFFIX}" if agents is not None else None
    progress_so_far = _load_checkpoint(checkpoint) if checkpoint is not None else None
    if progress_so_far is None:
        agent = make_agent(algo, env, seed, device, learning_starts=min(1000, steps // 2))
        records: list[dict[str, Any]] = []
        resumed_from: list[int] = []
        wall_before = 0.0
    else:
        assert checkpoint is not None
        agent = _resume_agent(algo, checkpoint, env, seed, device, progress_so_far["steps"])
        records, wall_before = progress_so_far["evaluations"], progress_so_far["wall_time_s"]
        resumed_from = [*progress_so_far["resumed_from_steps"], agent.num_timesteps]
        if isinstance(helper, Resumable):
            helper.load_state(checkpoint / "helper")
        log(f"{name}: resuming from the checkpoint at {agent.num_timesteps} steps in {checkpoint}")

    def report(record: dict[str, Any]) -> None:
        if annotate is not None:
            annotate(record)
        log(f"{name}: {record['steps']} steps, real {real_id} return {record['mean']:.1f} +- {record['std']:.1f}")
        if checkpoint is not None:
            _save_checkpoint(checkpoint, agent, helper, {
                "steps": agent.num_timesteps, "evaluations": evaluation.records, "resumed_from_steps": resumed_from,
                "wall_time_s": wall_before + time.time() - started})

    evaluation = RealEnvEvaluation(real_id, eval_every, eval_episodes, seed=10_000 + seed, on_evaluation=report)
    evaluation.records = list(records)
    evaluation.out_of_domain = records[-1].get("out_of_domain_truncations", 0) if records else 0
    started = time.time()
    callback = evaluation if helper is None else CallbackList([helper, evaluation])
    agent.learn(total_timesteps=steps - agent.num_timesteps, callback=callback, reset_num_timesteps=False,
                progress_bar=progress)
    wall = wall_before + time.time() - started
    env.close()
    if agents is not None and checkpoint is not None:
        agent.save(agents / f"{name}.zip")  # the trained agent, in SB3's own format
        shutil.rmtree(checkpoint)
    run = {"evaluations": evaluation.records, "wall_time_s": round(wall, 1),
           "agent_steps_per_s": round(steps / wall, 1) if wall > 0 else None}
    if trained_in is not None:
        run["checkpoint_sha256"] = trained_in
    if resumed_from:
        run["resumed_from_steps"] = resumed_from
    return run


def _save_checkpoint(folder: Path, agent: BaseAlgorithm, helper: BaseCallback | None,
                     progress: dict[str, Any]) -> None:
    """Write a run checkpoint into ``folder``, swapped in whole so a crash mid-write leaves
    the previous one intact."""
    staging, previous = folder.with_name(folder.name + ".tmp"), folder.with_name(folder.name + ".old")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    agent.save(staging / "agent.zip")
    if isinstance(agent, OffPolicyAlgorithm):
        agent.save_replay_buffer(staging / "replay_buffer.pkl")
    if isinstance(helper, Resumable):
        helper.save_state(staging / "helper")
    (staging / "progress.json").write_text(json.dumps(progress) + "\n")
    shutil.rmtree(previous, ignore_errors=True)
    if folder.exists():
        folder.rename(previous)
    staging.rename(folder)
    shutil.rmtree(previous, ignore_errors=True)


def _load_checkpoint(folder: Path) -> dict[str, Any] | None:
    """The progress record of the checkpoint in ``folder``, or ``None`` where there is none."""
    previous = folder.with_name(folder.name + ".old")
    if not folder.exists() and previous.exists():  # a crash between the two renames of a save
        previous.rename(folder)
    if not (folder / "progress.json").is_file():
        return None
    progress: dict[str, Any] = json.loads((folder / "progress.json").read_text())
    return progress


def _resume_agent(algo: str, folder: Path, env: gym.Env[Any, Any], seed: int, device: str,
                  steps: int) -> BaseAlgorithm:
    """The agent saved in a checkpoint, with its replay buffer, ready to go on training."""
    agent = ALGORITHMS[algo][0].load(folder / "agent.zip", env=env, device=device)
    if agent.num_timesteps != steps:
        raise NeuralSimError(f"checkpoint {folder} is inconsistent (agent at {agent.num_timesteps} steps, records "
                             f"at {steps}); delete it to restart this seed")
    if isinstance(agent, OffPolicyAlgorithm):
        agent.load_replay_buffer(folder / "replay_buffer.pkl")
    agent._last_obs = None  # type: ignore[assignment]  # the saved episode is gone: learn() starts a new one
    agent.set_random_seed(seed + agent.num_timesteps)  # the continuation depends only on the checkpoint
    return agent


def load_results(folder: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The ``results.json`` in ``folder`` (``None`` if there is none).

    :raises NeuralSimError: it holds results of other settings.
    """
    path = folder / RESULTS_FILE
    if not path.is_file():
        return None
    results = json.loads(path.read_text())
    compared = {*settings, *OPTIONAL_SETTINGS} - {k for k in LATER_SETTINGS if k not in results}
    if not results.get("runs", {}).get(NEURAL):
        # Agents trained in the real env do not depend on the checkpoint: a folder holding
        # only those takes NeuralSim runs in whatever weights the id has now.
        compared.discard("checkpoint_sha256")
        if "checkpoint_sha256" in settings:
            results["checkpoint_sha256"] = settings["checkpoint_sha256"]
    differing = sorted(k for k in compared
                       if results.get(k, OPTIONAL_SETTINGS.get(k)) != settings.get(k, OPTIONAL_SETTINGS.get(k)))
    if differing:
        raise NeuralSimError(
            f"{path} holds results of other settings ({', '.join(differing)} differ); use another --out"
        )
    return results


def save_results(folder: Path, results: dict[str, Any],
          summary: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
    """Write ``results``, first taking in runs that another process (another seed run into
    the same folder) has saved since we loaded; ``results`` is updated in place, and its
    ``summary`` recomputed by ``summary`` when given."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / RESULTS_FILE
    with FileLock(str(path) + ".lock"):
        if path.is_file():
            on_disk = json.loads(path.read_text())
            for variant, runs in on_disk.get("runs", {}).items():
                for seed, run in runs.items():
                    results["runs"].setdefault(variant, {}).setdefault(seed, run)
            if "variants" in results or "variants" in on_disk:  # few-shot results have none
                results["variants"] = sorted({*results.get("variants", []), *on_disk.get("variants", [])})
        # The folder's weights are those its NeuralSim runs trained in (a reference-only
        # process that loaded the folder earlier may hold an older fingerprint).
        trained_in = {run["checkpoint_sha256"] for run in results["runs"].get(NEURAL, {}).values()
                      if "checkpoint_sha256" in run}
        if len(trained_in) == 1:
            results["checkpoint_sha256"] = trained_in.pop()
        if summary is not None:
            results["summary"] = summary(results)
        staging = path.with_suffix(".json.tmp")
        staging.write_text(json.dumps(results, indent=1) + "\n")
        staging.replace(path)  # atomic: a reader never sees half a file
