"""Zero-shot RL: an agent trained only in the learned simulator, scored in the real env.

For each seed, the same agent (same algorithm, hyper-parameters and budget) trains twice:
on the NeuralSim id, and on the real env it mirrors (the reference). Both are scored in
the real env every ``eval_every`` agent steps by :class:`RealEnvEvaluation`. Each seed's
results are saved when it ends, and a checkpoint at every evaluation; when the command runs
again with the same output folder, finished runs are skipped and an unfinished one resumes
from its last checkpoint, so an interrupted benchmark picks up where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch

from neural_sim.errors import NeuralSimError
from neural_sim.rl.real_env import checkpoint_fingerprint, real_env_id
from neural_sim.rl.runs import (
    NEURAL,
    OPTIONAL_SETTINGS,
    PLOT_FILE,
    REAL,
    load_results,
    mean_curve,
    run_missing_seeds,
    save_results,
    train_and_score,
)


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
    max_episode_steps: int | None = None,
    device: str = "auto",
    out: str | Path | None = None,
    command: str = "",
    progress: bool = True,
    log: Callable[[str], None] = print,
    checkpoint: str | None = None,
) -> dict[str, Any]:
    """Train ``algo`` on ``env_id`` (a NeuralSim id) and, as the reference, on the real env it
    mirrors; score both in the real env every ``eval_every`` steps.

    :param density_penalty: weight of the NeuralSim env's density penalty (0: off).
    :param reference: also train on the real env (same agent, same budget).
    :param neural_sim: train in ``env_id``; ``False`` trains only the reference (a real-env
        baseline for :func:`~neural_sim.rl.few_shot`).
    :param reset_from: where NeuralSim episodes start: ``"buffer"`` (the checkpoint's real
        states) or ``"task"`` (the stock task's initial states); see ``NeuralSimEnv``.
    :param max_episode_steps: length of the NeuralSim env's episodes (default: the id's
        registered default, the checkpoint's); the real env's are always its own.
    :param checkpoint: train in this checkpoint (folder or Hub repo id, same robot) instead
        of the id's own; the id still names the task and the real env.
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
                "checkpoint_sha256": checkpoint_fingerprint(env_id, checkpoint, density=density_penalty > 0,
                                                          episode_length=max_episode_steps is None)}
    if max_episode_steps is not None and max_episode_steps < 1:
        raise NeuralSimError(f"max_episode_steps must be positive, got {max_episode_steps}")
    if reset_from != OPTIONAL_SETTINGS["reset_from"]:
        settings["reset_from"] = reset_from
    if max_episode_steps is not None:
        settings["max_episode_steps"] = max_episode_steps
    if checkpoint is not None:
        settings["checkpoint"] = str(checkpoint)
    folder = Path(out) if out is not None else None
    results = load_results(folder, settings) if folder is not None else None
    results = results or {**settings, "runs": {NEURAL: {}, REAL: {}}, "command": command,
                          "device": device, "torch_threads": torch.get_num_threads()}
    variants = ([(NEURAL, env_id)] if neural_sim else []) + ([(REAL, real_id)] if reference else [])
    results["variants"] = sorted({*results.get("variants", []), *(variant for variant, _ in variants)})
    if folder is not None:
        save_results(folder, results)  # on disk from the start: a few-shot run can use a reference still training
    env_kwargs: dict[str, Any] = {"density_penalty": density_penalty} if density_penalty else {}
    if "reset_from" in settings:
        env_kwargs["reset_from"] = reset_from
    if max_episode_steps is not None:
        env_kwargs["max_episode_steps"] = max_episode_steps
    if checkpoint is not None:
        env_kwargs["checkpoint"] = str(checkpoint)
    for variant, train_id in variants:
        train = partial(train_and_score, train_id, real_id, algo, steps, eval_every=eval_every,
                        eval_episodes=eval_episodes, device=device, env_kwargs=env_kwargs if variant == NEURAL else {},
                        progress=progress, log=log, agents=folder / "agents" if folder else None, variant=variant)
        run_missing_seeds(results, variant, seeds, folder, log, train)
    results["summary"] = summarise(results)
    if folder is not None:
        save_results(folder, results, summarise)
        plot_learning_curves(results, folder / PLOT_FILE)
    return results


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
