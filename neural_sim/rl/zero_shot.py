"""Zero-shot RL: an agent trained only in the learned simulator, scored in the real env.

For each seed, the same agent (same algorithm, hyper-parameters and budget) trains twice:
on the NeuralSim id, and on the real env it mirrors (the reference). Both are scored in
the real env every ``eval_every`` agent steps by :class:`RealEnvEvaluation`. Each seed's
results are saved when it ends, and a checkpoint at every evaluation; when the command runs
again with the same output folder, finished runs are skipped and an unfinished one resumes
from its last checkpoint, so an interrupted benchmark picks up where it stopped.
"""

from __future__ import annotations

import json
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import torch
from filelock import FileLock
from gymnasium import spaces
from sb3_contrib import TQC
from stable_baselines3 import SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from neural_sim.errors import NeuralSimError
from neural_sim.rl.evaluation import (
    RealEnvEvaluation,
    agent_env,
    checkpoint_fingerprint,
    make_real_env,
    real_env_id,
)

#: Algorithms by name, with the paper's settings (actor and critics 256x256; TQC with 5
#: critics of 25 quantiles, the top 2 per critic dropped).
ALGORITHMS: dict[str, tuple[type[BaseAlgorithm], dict[str, Any]]] = {
    "sac": (SAC, {"policy_kwargs": {"net_arch": [256, 256]}}),
    "tqc": (TQC, {"top_quantiles_to_drop_per_net": 2,
                  "policy_kwargs": {"net_arch": [256, 256], "n_critics": 5, "n_quantiles": 25}}),
}
RESULTS_FILE = "results.json"
#: Settings recorded in ``results.json`` only when they differ from these (older files lack them).
OPTIONAL_SETTINGS: dict[str, Any] = {"reset_from": "buffer"}
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


def zero_shot(
    env_id: str,
    algo: str = "sac",
    steps: int = 100_000,
    seeds: Sequence[int] = (0, 1, 2),
    eval_every: int = 10_000,
    eval_episodes: int = 10,
    density_penalty: float = 0.0,
    reference: bool = True,
    neural_sim: bool = True,
    reset_from: str = "buffer",
    device: str = "auto",
    out: str | Path | None = None,
    command: str = "",
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train ``algo`` on ``env_id`` (a NeuralSim id) and, as the reference, on the real env it
    mirrors; score both in the real env every ``eval_every`` steps.

    :param density_penalty: weight of the NeuralSim env's density penalty (0: off).
    :param reference: also train on the real env (same agent, same budget).
    :param neural_sim: train in ``env_id``; ``False`` trains only the reference (a real-env
        baseline for :func:`~neural_sim.rl.few_shot`).
    :param reset_from: where NeuralSim episodes start: ``"buffer"`` (the checkpoint's real
        states) or ``"task"`` (the stock task's initial states); see ``NeuralSimEnv``.
    :param out: folder for ``results.json``, ``learning_curve.png`` and the agents; runs
        already finished there are kept, not repeated.
    :return: the results: settings, the variants trained into the folder (``variants``), and
        per variant (``neural_sim``, ``real``) and seed the evaluation records, wall time and
        agent steps per second.
    """
    real_id = real_env_id(env_id)
    if steps < 1 or eval_every < 1:
        raise NeuralSimError(f"steps and eval_every must be positive, got {steps} and {eval_every}")
    if not (neural_sim or reference):
        raise NeuralSimError("nothing to train: neural_sim and reference are both off")
    settings = {"env_id": env_id, "real_env_id": real_id, "algo": algo, "steps": steps,
                "eval_every": eval_every, "eval_episodes": eval_episodes, "density_penalty": density_penalty,
                "checkpoint_sha256": checkpoint_fingerprint(env_id)}
    if reset_from != OPTIONAL_SETTINGS["reset_from"]:
        settings["reset_from"] = reset_from
    folder = Path(out) if out is not None else None
    results = _load_results(folder, settings) if folder is not None else None
    results = results or {**settings, "runs": {NEURAL: {}, REAL: {}}, "command": command,
                          "device": device, "torch_threads": torch.get_num_threads()}
    variants = ([(NEURAL, env_id)] if neural_sim else []) + ([(REAL, real_id)] if reference else [])
    results["variants"] = sorted({*results.get("variants", []), *(variant for variant, _ in variants)})
    if folder is not None:
        _save(folder, results)  # on disk from the start: a few-shot run can use a reference still training
    env_kwargs: dict[str, Any] = {"density_penalty": density_penalty} if density_penalty else {}
    if "reset_from" in settings:
        env_kwargs["reset_from"] = reset_from
    for variant, train_id in variants:
        train = partial(_train_and_score, train_id, real_id, algo, steps, eval_every=eval_every,
                        eval_episodes=eval_episodes, device=device, env_kwargs=env_kwargs if variant == NEURAL else {},
                        progress=progress, log=log, agents=folder / "agents" if folder else None, variant=variant)
        _run_missing_seeds(results, variant, seeds, folder, log, train)
    results["summary"] = summarise(results)
    if folder is not None:
        _save(folder, results, summarise)
        plot_learning_curves(results, folder / PLOT_FILE)
    return results


def _run_missing_seeds(results: dict[str, Any], variant: str, seeds: Sequence[int], folder: Path | None,
                       log: Callable[[str], None], train: Callable[[int], dict[str, Any]]) -> None:
    """``train`` each seed not yet in ``results["runs"][variant]``, saving after each."""
    for seed in seeds:
        if str(seed) in results["runs"][variant]:
            log(f"{variant} seed {seed}: already done in {folder}")
            continue
        results["runs"][variant][str(seed)] = train(seed)
        if folder is not None:
            _save(folder, results)


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


def _train_and_score(
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
    trained_in = checkpoint_fingerprint(train_id) if train_id != real_id else None
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


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """Per variant: mean over seeds of the real return at each evaluation step, its final and
    best value; and the NeuralSim-trained / real-trained ratio of the final returns."""
    summary: dict[str, Any] = {}
    for variant, runs in results["runs"].items():
        if not runs:
            continue
        steps, curve = mean_curve(list(runs.values()))
        summary[variant] = {"steps": steps, "mean_return": curve,
                            "final": curve[-1], "best": max(curve),
                            "final_over_best": curve[-1] / max(curve) if max(curve) > 0
                            else None, "seeds": sorted(int(s) for s in runs)}
    if NEURAL in summary and REAL in summary and summary[REAL]["final"] > 0:
        summary["final_ratio_neural_over_real"] = summary[NEURAL]["final"] / summary[REAL]["final"]
    return summary


def plot_learning_curves(results: dict[str, Any], path: Path) -> Path:
    """Real-env return vs agent steps: each seed thin, the mean over seeds thick."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    colours = {NEURAL: "tab:blue", REAL: "tab:orange"}
    labels = {NEURAL: f"trained in {results['env_id']}", REAL: f"trained in {results['real_env_id']}"}
    for variant, runs in results["runs"].items():
        for seed, run in runs.items():
            steps = [r["steps"] for r in run["evaluations"]]
            axes.plot(steps, [r["mean"] for r in run["evaluations"]], color=colours[variant], alpha=0.35,
                      linewidth=1, label=f"seed {seed}" if variant == NEURAL else None)
        summary = results.get("summary", {}).get(variant)
        if summary:
            axes.plot(summary["steps"], summary["mean_return"], color=colours[variant], linewidth=2.5,
                      label=f"{labels[variant]} (mean of {len(runs)})")
    penalty = f", density penalty {results['density_penalty']}" if results["density_penalty"] else ""
    axes.set(xlabel="agent steps", ylabel=f"return in real {results['real_env_id']}",
             title=f"{results['algo'].upper()} zero-shot{penalty}")
    if axes.get_legend_handles_labels()[0]:  # no run finished yet: an empty plot
        axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _load_results(folder: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
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


def _save(folder: Path, results: dict[str, Any],
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
