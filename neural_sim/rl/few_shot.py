"""The MoSim paper's few-shot loop (section 3.4), as a Stable-Baselines3 callback.

An agent trains in a NeuralSim env as usual. Every ``every`` agent steps the callback
runs the current policy for ``real_steps`` steps in the real physics (the env's
:meth:`~neural_sim.envs.single.NeuralSimEnv.physics_twin`, its episodes started from the
stock task's initial states as the real env's are), records the physics states,
adds them to the env's reset buffer (so model episodes start where the agent now goes),
and fine-tunes the env's model on every real transition gathered so far. The agent
itself is untouched: any off-the-shelf algorithm becomes model-based this way.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from stable_baselines3.common.callbacks import BaseCallback

from neural_sim.envs.single import NeuralSimEnv
from neural_sim.errors import NeuralSimError
from neural_sim.pipeline.train import fine_tune
from neural_sim.rl.real_env import agent_env, checkpoint_fingerprint, real_env_id
from neural_sim.rl.runs import (
    PLOT_FILE,
    REAL,
    RESULTS_FILE,
    last_evaluations_mean,
    load_results,
    mean_curve,
    run_missing_seeds,
    save_results,
    train_and_score,
    trained_variants,
    window_means,
)

FEW_SHOT = "few_shot"
TRANSITIONS_FILE, WEIGHTS_FILE, LOOP_FILE = "real_transitions.npz", "model_weights.safetensors", "loop.json"


class FewShotLoop(BaseCallback):
    """Collect real steps with the current policy, fine-tune the model on them, repeat.

    :param every: agent steps (in the learned simulator) between real collections.
    :param real_steps: real-env steps per collection.
    :param finetune_iterations: Adam steps of fine-tuning after each collection.
    :param learning_rate: fine-tuning learning rate.
    :param batch_size: fine-tuning batch size.
    :param seed: seeds the real env's resets and the fine-tuning batches.
    :param on_collection: called with each record (``steps``, ``real_steps_total``,
        ``real_return_last_episode``, ``loss_before``, ``loss_after``).
    """

    def __init__(
        self,
        every: int,
        real_steps: int,
        finetune_iterations: int = 200,
        learning_rate: float = 1e-4,
        batch_size: int = 256,
        seed: int = 0,
        on_collection: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        super().__init__()
        if every < 1 or real_steps < 1 or finetune_iterations < 1:
            raise ValueError(
                f"every, real_steps and finetune_iterations must be positive, got {every}, {real_steps}, "
                f"{finetune_iterations}"
            )
        self.every, self.real_steps, self.iterations = every, real_steps, finetune_iterations
        self.learning_rate, self.batch_size, self.seed = learning_rate, batch_size, seed
        self.on_collection = on_collection
        self.records: list[dict[str, Any]] = []
        self.transitions: dict[str, list[np.ndarray]] = {"starts": [], "actions": [], "targets": []}
        self._returns: list[float] = []
        self._restored: tuple[dict[str, np.ndarray], dict[str, torch.Tensor], dict[str, Any]] | None = None

    def _init_callback(self) -> None:
        envs = self.training_env.get_attr("unwrapped")
        if not all(isinstance(env, NeuralSimEnv) and env.backend == "neural" for env in envs):
            raise NeuralSimError("FewShotLoop needs an agent training in NeuralSim envs (backend 'neural')")
        self.model_envs: list[NeuralSimEnv] = envs
        # Real episodes start as the real env's do, seen through the same spaces as the agent's.
        self._real_twin = envs[0].physics_twin(reset_from="task")
        self.real = agent_env(self._real_twin)
        self._episode_steps = envs[0].config.robot.episode_steps
        if self._restored is not None:
            self._take_up(*self._restored)
            self._restored = None
        # A resumed loop starts a new real episode, seeded by how far it had got.
        self._start_real_episode(self.seed + len(self.records))

    def _start_real_episode(self, seed: int | None = None) -> None:
        self._obs, info = self.real.reset(seed=seed)
        self._state = info["state"]
        self._episode_return, self._episode_length = 0.0, 0

    def _on_step(self) -> bool:
        if self.num_timesteps % self.every == 0:
            self.collect_and_fine_tune()
        return True

    def _on_training_end(self) -> None:
        self.real.close()

    def save_state(self, folder: Path) -> None:
        """Write what the loop has gathered and learnt (real transitions, the fine-tuned model,
        the records) into ``folder``, for a run checkpoint."""
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / TRANSITIONS_FILE, **cast("dict[str, Any]", {
            key: np.concatenate(batches) if batches else np.empty((0,)) for key, batches in self.transitions.items()
        }))
        weights = self.model_envs[0].simulator.field.state_dict()
        save_file({name: tensor.detach().cpu().contiguous() for name, tensor in weights.items()},
                  str(folder / WEIGHTS_FILE))  # safetensors, as every checkpoint: no pickle
        (folder / LOOP_FILE).write_text(json.dumps({"records": self.records, "returns": self._returns}) + "\n")

    def load_state(self, folder: Path) -> None:
        """Read a state :meth:`save_state` wrote; it is taken up when training starts (the
        real transitions back into every model env's reset buffer, the fine-tuned weights
        into its model)."""
        with np.load(folder / TRANSITIONS_FILE) as arrays:
            transitions = {key: arrays[key] for key in arrays.files}
        weights = load_file(str(folder / WEIGHTS_FILE))
        self._restored = (transitions, weights, json.loads((folder / LOOP_FILE).read_text()))

    def _take_up(self, transitions: dict[str, np.ndarray], weights: dict[str, torch.Tensor],
                 loop: dict[str, Any]) -> None:
        gathered = len(transitions["starts"]) > 0
        self.transitions = {key: [rows] if gathered else [] for key, rows in transitions.items()}
        self.records, self._returns = loop["records"], loop["returns"]
        self._share_weights(weights)
        if gathered:
            for env in self.model_envs:
                env.add_reset_states(transitions["starts"])

    def _share_weights(self, weights: dict[str, torch.Tensor]) -> None:
        """Load ``weights`` into every model env's model (envs may share one)."""
        for simulator in {id(env.simulator): env.simulator for env in self.model_envs}.values():
            simulator.field.load_state_dict(weights)

    @property
    def real_steps_total(self) -> int:
        """Real-env steps taken so far."""
        return sum(len(batch) for batch in self.transitions["starts"])

    def collect_and_fine_tune(self) -> dict[str, Any]:
        """One round: ``real_steps`` real steps with the current (stochastic) policy, their
        states into every model env's reset buffer, then fine-tuning on all real data."""
        starts, actions, targets = [], [], []
        takes_activations = self.model_envs[0].simulator.na > 0
        for _ in range(self.real_steps):
            action, _ = self.model.predict(self._obs, deterministic=False)
            # The model's input: the action, then the real actuator activations it starts from.
            step_input = np.asarray(action, dtype=np.float64)
            if takes_activations:
                step_input = np.concatenate([step_input, self._real_twin.bridge.activations])
            obs, reward, terminated, truncated, info = self.real.step(action)
            starts.append(self._state)
            actions.append(step_input)
            targets.append(info["state"])
            self._obs, self._state = obs, info["state"]
            self._episode_return += float(reward)
            self._episode_length += 1
            if terminated or truncated or self._episode_length >= self._episode_steps:
                self._returns.append(self._episode_return)
                self._start_real_episode()
        for key, rows in (("starts", starts), ("actions", actions), ("targets", targets)):
            self.transitions[key].append(np.stack(rows))
        for env in self.model_envs:
            env.add_reset_states(np.stack(starts))
        simulator = self.model_envs[0].simulator
        # The generator yields exactly three arrays: mypy cannot count them, hence the cast.
        losses = fine_tune(simulator,
                           *cast("tuple[np.ndarray, np.ndarray, np.ndarray]",
                                 (np.concatenate(self.transitions[k]) for k in ("starts", "actions", "targets"))),
                           iterations=self.iterations, learning_rate=self.learning_rate,
                           batch_size=self.batch_size, seed=self.seed + len(self.records))
        self._share_weights(simulator.field.state_dict())
        record = {"steps": int(self.num_timesteps), "real_steps_total": self.real_steps_total,
                  "real_return_last_episode": self._returns[-1] if self._returns else None, **losses}
        self.records.append(record)
        if self.on_collection is not None:
            self.on_collection(record)
        return record


def few_shot(
    env_id: str,
    reference: str | Path,
    algo: str = "sac",
    steps: int = 50_000,
    seeds: Sequence[int] = (0, 1, 2),
    every: int = 5_000,
    real_steps: int = 1_000,
    finetune_iterations: int = 200,
    density_penalty: float = 0.0,
    last_evaluations: int = 3,
    device: str = "auto",
    out: str | Path | None = None,
    command: str = "",
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Real-sample efficiency of the few-shot loop against an agent trained on the real env.

    Per seed, ``algo`` trains ``steps`` agent steps in ``env_id`` with :class:`FewShotLoop`
    (``real_steps`` real steps and a fine-tuning every ``every`` steps), scored in the real env
    at the evaluation points of the reference. The reference is the ``real`` variant of a
    :func:`~neural_sim.rl.zero_shot` results folder for the same env, algorithm and scoring.
    Its target is its return at the end of its budget (per seed, the mean of the last
    ``last_evaluations`` evaluations; then the mean over seeds). The answer is the real
    samples the few-shot agents had used when they first scored that, judged the same way
    (see :func:`real_sample_efficiency`).

    :param reference: ``neural-sim rl`` output folder (or its ``results.json``) with real runs.
    :param out: folder for ``results.json`` and ``learning_curve.png``; finished seeds are kept.
    :return: the settings, the runs (each evaluation also records ``real_steps``, the real
        samples used so far) and ``summary`` (see :func:`real_sample_efficiency`).
    :raises NeuralSimError: if the reference trains no agent on the real env or was scored
        differently. A reference still training is accepted: the summary uses its runs
        finished by the end (rerun to score against later ones; finished seeds are kept).
    """
    reference_path = Path(reference)
    reference_path = reference_path / RESULTS_FILE if reference_path.is_dir() else reference_path
    if not reference_path.is_file():
        raise NeuralSimError(f"no reference results at {reference_path}; run `neural-sim rl` first")
    reference_results = json.loads(reference_path.read_text())
    real_id = real_env_id(env_id)
    expected = {"real_env_id": real_id, "algo": algo}
    differing = sorted(k for k, v in expected.items() if reference_results.get(k) != v)
    # A reference still training counts: its folder names the variants it trains.
    if differing or REAL not in trained_variants(reference_results):
        raise NeuralSimError(
            f"{reference_path} is no reference for {algo} on {real_id}: "
            + (f"{', '.join(differing)} differ" if differing
               else "it trains no agent on the real env (made with --no-reference?)")
        )
    eval_every, eval_episodes = reference_results["eval_every"], reference_results["eval_episodes"]
    settings = {"env_id": env_id, "real_env_id": real_id, "algo": algo, "steps": steps, "every": every,
                "real_steps": real_steps, "finetune_iterations": finetune_iterations,
                "eval_every": eval_every, "eval_episodes": eval_episodes, "density_penalty": density_penalty,
                "checkpoint_sha256": checkpoint_fingerprint(env_id, density=density_penalty > 0)}
    folder = Path(out) if out is not None else None
    results = load_results(folder, settings) if folder is not None else None
    results = results or {**settings, "runs": {FEW_SHOT: {}}, "reference": str(reference_path),
                          "command": command, "device": device, "torch_threads": torch.get_num_threads()}
    kwargs = {"density_penalty": density_penalty} if density_penalty else {}

    def train(seed: int) -> dict[str, Any]:
        loop = FewShotLoop(every, real_steps, finetune_iterations, seed=seed)
        run = train_and_score(env_id, real_id, algo, steps, seed, eval_every, eval_episodes, device, kwargs,
                               progress, log, folder / "agents" if folder else None, FEW_SHOT, helper=loop,
                               annotate=lambda record: record.update(real_steps=loop.real_steps_total))
        return {**run, "collections": loop.records}

    run_missing_seeds(results, FEW_SHOT, seeds, folder, log, train)

    reference_results = json.loads(reference_path.read_text())  # as it is now: seeds may have finished meanwhile

    def summarise(current: dict[str, Any]) -> dict[str, Any]:
        return real_sample_efficiency(current, reference_results, last_evaluations)

    results["summary"] = summarise(results)
    if folder is not None:
        save_results(folder, results, summarise)
        plot_sample_efficiency(results, reference_results, folder / PLOT_FILE)
    return results


def real_sample_efficiency(results: dict[str, Any], reference: dict[str, Any], last_evaluations: int = 3
                           ) -> dict[str, Any]:
    """The reference's target return, the real samples the few-shot runs needed to reach it,
    and the ratio of the reference's real samples to those (``None`` where never reached, and
    the target ``None`` while the reference has no finished run).

    The target is the reference's return at the end of its budget: per seed, the mean of its
    last ``last_evaluations`` evaluations, then the mean over seeds. The few-shot runs reach
    it when the mean over seeds, averaged over ``last_evaluations`` consecutive evaluations,
    first does; the real samples counted are those used by the last of them. At equal real
    samples, ``reference_at_final_real_samples`` is the reference's return where the few-shot
    final return is judged. The other way round, ``reference_real_samples_to_best_window`` is
    what the reference needed to reach the few-shot runs' best window mean (which they reached
    with ``real_samples_to_best_window``), and ``fewer_real_samples_at_best`` their ratio.
    """
    reference_runs = reference["runs"][REAL]
    target = (statistics.mean(last_evaluations_mean(run, last_evaluations) for run in reference_runs.values())
              if reference_runs else None)
    reference_samples = reference["steps"]
    runs = list(results["runs"][FEW_SHOT].values())
    summary: dict[str, Any] = {"target_return": target, "reference_real_samples": reference_samples,
                               "reference_seeds": sorted(int(s) for s in reference_runs),
                               "seeds": sorted(int(s) for s in results["runs"][FEW_SHOT])}
    if not runs:
        return summary
    samples, curve = mean_curve(runs, "real_steps")
    length = len(curve)
    # Judged as the target is: over a window of ``last_evaluations`` evaluations, so that one
    # lucky evaluation does not count as reaching it.
    window = min(last_evaluations, length)
    smoothed = window_means(curve, window)
    needed = _first_reaching(samples, smoothed, target, window) if target is not None else None
    best_window = max(smoothed)
    summary.update({"real_samples": samples, "mean_return": curve, "window_mean_return": smoothed,
                    "best": max(curve),
                    "final": statistics.mean(last_evaluations_mean(run, last_evaluations) for run in runs),
                    "real_samples_to_target": needed,
                    "fewer_real_samples": reference_samples / needed if needed else None,
                    "reference_at_final_real_samples": _reference_within(reference_runs, samples[length - window],
                                                                         samples[-1])})
    # The other way round: what the reference needs to reach the few-shot runs' best (window) return.
    best_samples = _first_reaching(samples, smoothed, best_window, window)
    reference_needed = None
    if reference_runs:
        reference_steps, reference_curve = mean_curve(list(reference_runs.values()))
        reference_window = min(last_evaluations, len(reference_curve))
        reference_needed = _first_reaching(reference_steps, window_means(reference_curve, reference_window),
                                           best_window, reference_window)
    summary.update({"best_window_return": best_window, "real_samples_to_best_window": best_samples,
                    "reference_real_samples_to_best_window": reference_needed,
                    "fewer_real_samples_at_best": reference_needed / best_samples
                    if reference_needed and best_samples else None})
    return summary


def _first_reaching(xs: list[int], smoothed: list[float], value: float, window: int) -> int | None:
    """The ``x`` at the end of the first window whose mean reaches ``value`` (``None``: never)."""
    reached = next((i for i, mean in enumerate(smoothed) if mean >= value), None)
    return xs[reached + window - 1] if reached is not None else None


def _reference_within(runs: dict[str, Any], first: int, last: int) -> float | None:
    """The reference's return over the real samples the few-shot final return is judged on
    (``first`` to ``last``): per seed, the mean of its evaluations there (or of its latest one
    before ``last`` where none falls there), then the mean over seeds; ``None`` without runs."""
    per_seed = []
    for run in runs.values():
        inside = [e["mean"] for e in run["evaluations"] if first <= e["steps"] <= last]
        before = [e["mean"] for e in run["evaluations"] if e["steps"] <= last]
        if inside or before:
            per_seed.append(statistics.mean(inside) if inside else before[-1])
    return statistics.mean(per_seed) if per_seed else None


def plot_sample_efficiency(results: dict[str, Any], reference: dict[str, Any], path: Path) -> Path:
    """Real-env return against real-env samples (log scale): the few-shot runs and the
    reference; below, the model's fine-tuning loss on all real data before and after each
    round (how well the model keeps up with where the agent goes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (axes, losses) = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True, height_ratios=(2, 1))
    for label, colour, runs, x_key in (("few-shot in " + results["env_id"], "tab:blue",
                                        results["runs"][FEW_SHOT], "real_steps"),
                                       ("trained in " + results["real_env_id"], "tab:orange",
                                        reference["runs"][REAL], "steps")):
        for i, run in enumerate(runs.values()):
            axes.plot([e[x_key] for e in run["evaluations"]], [e["mean"] for e in run["evaluations"]],
                      color=colour, alpha=0.6, marker=".", label=label if i == 0 else None)
    target = results.get("summary", {}).get("target_return")
    if target is not None:
        axes.axhline(target, color="grey", linestyle="--", linewidth=1, label="reference's final return")
    axes.set(xscale="log", ylabel=f"return in real {results['real_env_id']}",
             title=f"{results['algo'].upper()} few-shot: {results['every']} model steps per "
                   f"{results['real_steps']} real steps")
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=7)
    for i, run in enumerate(results["runs"][FEW_SHOT].values()):
        samples = [c["real_steps_total"] for c in run.get("collections", [])]
        for key, style in (("loss_before", "-"), ("loss_after", ":")):
            losses.plot(samples, [c[key] for c in run.get("collections", [])], color="tab:blue", linestyle=style,
                        alpha=0.6, label=f"{key.replace('_', ' ')} fine-tuning" if i == 0 else None)
    losses.set(xlabel="real-env samples", ylabel="model loss on real data")
    if losses.get_legend_handles_labels()[0]:
        losses.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
