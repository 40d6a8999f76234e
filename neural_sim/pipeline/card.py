"""The model card (``README.md``) of a checkpoint, written from its config alone."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCardData

from neural_sim.checkpoints import CARD_FILE, CheckpointConfig
from neural_sim.envs.ids import env_ids


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def card_metadata(config: CheckpointConfig) -> ModelCardData:
    """The card's Hub metadata: library, tags (searchable on the Hub) and the env ids."""
    robot = config.robot
    return ModelCardData(
        library_name="neural-sim",
        pipeline_tag="reinforcement-learning",
        tags=["neural-sim", "reinforcement-learning", "world-model", "neural-ode", "mosim", "mujoco",
              robot.source, robot.domain],
        env_ids=env_ids(robot),
        robot=robot.name,
        robot_source=robot.source,
    )


def write_card(folder: str | os.PathLike[str], config: CheckpointConfig, repo_id: str | None = None) -> Path:
    """Write a checkpoint's model card (``README.md``) from its config: the one place cards
    are written.

    :param repo_id: the Hub repo the card is published in (see :func:`model_card`).
    :return: the card's path.
    """
    path = Path(folder) / CARD_FILE
    path.write_text(model_card(config, repo_id))
    return path


def model_card(config: CheckpointConfig, repo_id: str | None = None) -> str:
    """Markdown model card with Hub metadata, usage, accuracy figures and provenance.

    :param repo_id: the Hub repo the card is published in (its usage lines load from there);
        default: the shipped robot name.
    """
    robot, sim, training = config.robot, config.simulator, config.training
    layout, model, integrator = sim.layout, sim.model, sim.integrator
    ids = env_ids(robot)
    reference = repo_id or robot.name
    register = [f'neural_sim.register_checkpoint("{repo_id}")  # downloads once, then works offline'] if repo_id else []
    lines = [
        "---",
        card_metadata(config).to_yaml(),
        "---",
        "",
        f"# neural-sim: {robot.name}",
        "",
        f"A learned simulator (MoSim-style Neural ODE, architecture `{model.architecture}`) of the "
        f"{robot.source} `{robot.domain}` robot: physics state (qpos, qvel) and action in, "
        "next physics state out.",
        "",
        "## Use",
        "",
        "```python",
        "import gymnasium as gym, neural_sim",
        *register,
        f'env = gym.make("{ids[0]}")',
        "```",
        "",
        "Environment ids: " + ", ".join(f"`{i}`" for i in ids) + ".",
        "",
        f"Python API: `sim = neural_sim.load(\"{reference}\")`; `sim.step(states, actions)`, "
        "`sim.rollout(states, actions)`.",
        "",
        "## Model",
        "",
        "| | |",
        "|---|---|",
        f"| nq / nv / nu | {layout.nq} / {layout.nv} / {layout.nu} |",
        *([f"| actuator activations (model inputs) | {layout.na} "
           f"({', '.join(sorted(set(layout.activations.kinds)))}) |"] if layout.activations is not None else []),
        f"| control timestep | {layout.dt} s |",
        f"| architecture | {model.architecture} ({model.activation}) |",
        f"| integrator | {integrator.method}"
        + (f", {integrator.substeps} substep(s)" if integrator.method != "dopri5" else
           f", rtol {integrator.rtol}, atol {integrator.atol}") + " |",
        f"| trusted horizon (state error < 5% of its variance) | {config.trusted_horizon} steps |",
        f"| default episode length | {config.default_episode_steps} steps ({_episode_rule(config)}) |",
        "",
    ]
    if config.benchmark.get("horizons"):
        lines += _accuracy_section(config.benchmark, training.get("samples"), training.get("data"))
    lines += _episode_section(config.episode_length)
    if config.domain is not None:
        lines += _domain_section(config)
    if config.density is not None:
        density = config.density
        fit = density.fit or {}
        lines += [
            "## Density penalty",
            "",
            f"A `{density.kind}` flow ({density.transforms} transforms, hidden {list(density.hidden)}) over "
            "(state, action) of the training data. `gym.make(..., density_penalty=w)` adds "
            "`w * (sigmoid((log p - c) / k) - 1)` to the reward, with "
            f"c = {density.c:.4g} and k = {density.k:.4g} calibrated on held-out training data "
            f"(log p quantiles {fit.get('held_out_log_density', {})}).",
            "",
            f"Fitted with: `{fit.get('command', '')}`",
            "",
        ]
        evidence = config.benchmark.get("density")
        if evidence:
            cost = evidence["step_cost"]
            batched = cost.get("batched")
            batched_cell = (f"{batched['off_ms']:.2f} / {batched['on_ms']:.2f} ms at N={batched['num_envs']}"
                            if batched else "not measured")
            lines += [
                "| AUROC vs perturbed | AUROC vs controller | Spearman(penalty, one-step error) | env step off / on "
                "| batched step off / on |",
                "|---|---|---|---|---|",
                f"| {evidence['auroc']['perturbed']:.4f} | {evidence['auroc']['controller']:.4f} | "
                f"{evidence['spearman_penalty_vs_one_step_error']:.3f} | "
                f"{cost['off_ms']:.3f} / {cost['on_ms']:.3f} ms | {batched_cell} |",
                "",
                f"Perturbed: {evidence['perturbation']}; controller: {evidence['controller']}. "
                f"Measured with: `{evidence['command']}`",
                "",
            ]
    lines += [
        "## Provenance",
        "",
        f"- training command: `{training.get('command', '')}`",
        *_parent_lines(training),
        *_teacher_lines(training),
        f"- training seed: {training.get('seed', '')}",
        f"- data: {training.get('data', {})}",
        f"- samples seen: {training.get('samples', '')}; wall time: {training.get('wall_time_s', '')} s"
        + (" (both counting the runs it was fine-tuned from)" if training.get("init_from") else "") + "; "
        f"hardware: {training.get('hardware', '')}; torch {training.get('torch_version', '')}",
        "",
    ]
    return "\n".join(lines)


def _domain_section(config: CheckpointConfig) -> list[str]:
    """Where the model is trusted: the data's range, the margin, and what it costs on held-out data."""
    domain = config.domain
    assert domain is not None
    lines = [
        "## Where episodes end: the data domain",
        "",
        f"A step that starts or lands outside the range of the training data ({domain.samples} states) in any of "
        f"{len(domain.dims)} state dimensions, widened by {domain.margin:g} of each range on both sides, or "
        "that predicts a non-finite value, truncates its episode (`info[\"out_of_domain\"]`); "
        "`gym.make(..., out_of_domain=\"raise\")` raises instead, `\"ignore\"` steps on. Unlimited hinge "
        "angles and translation-invariant coordinates are not checked.",
        "",
    ]
    held_out = domain.fit.get("held_out") or {}
    if held_out:
        names = list(held_out)
        lines += [
            "Share of held-out real data (1000-step sequences, a seed the training never used) each margin "
            "would cut, " + "; ".join(f"{name} actions: {held_out[name]['data']['sequences']} sequences"
                                       for name in names) + ":",
            "",
            "| margin | " + " | ".join(f"{n}: steps cut | {n}: sequences cut" for n in names) + " |",
            "|---|" + "---|---|" * len(names),
            *(f"| {margin}{' (used)' if float(margin) == domain.margin else ''} | "
              + " | ".join(_cut_cells(held_out[n]["cuts"][margin]) for n in names) + " |"
              for margin in held_out[names[0]]["cuts"]),
            "",
            f"Measured with: `{domain.fit.get('command', '')}`",
            "",
        ]
    return lines


def _cut_cells(cut: dict[str, Any]) -> str:
    return f"{cut['steps']:.2e} | {cut['sequences']:.3f}"


def _data_command(data: dict[str, Any] | None) -> str:
    """The command that collected a data set, as its provenance records it."""
    return (data or {}).get("command") or "data not recorded"


def _episode_rule(config: CheckpointConfig) -> str:
    """How the default episode length was set, in a few words."""
    episode = config.episode_length
    if not episode:
        return "the trusted horizon"
    return (f"the longest horizon whose predicted return along real `{episode['task']}` episodes "
            f"({episode['policy']}) stays within {episode['tolerance']:g} of the reward range per step")


def _episode_section(episode: dict[str, Any]) -> list[str]:
    """The task-fidelity figures behind the default episode length."""
    if not episode:
        return []
    horizons = list(episode["return_error_per_step"])
    return [
        "## Rewards where episodes go",
        "",
        f"Open-loop model rollouts along {episode['episodes']} real `{episode['task']}` episodes from the "
        f"task's own initial states, driven by {episode['policy']}; the task's reward computed on both "
        f"(reward range {episode['reward_range']:.3g}; {episode['diverged']} rollouts diverged). "
        f"Over {episode['evaluated_steps']} steps: real return {episode['real_return_mean']:.1f}, model open loop "
        f"(the real actions replayed) {episode['model_return_mean']:.1f}"
        + (f", closed loop (the policy acting in the model) {episode['closed_loop_return_mean']:.1f}"
           if "closed_loop_return_mean" in episode else "") + "." + _early_ends(episode),
        "",
        "| steps | " + " | ".join(horizons) + " |",
        "|---|" + "---|" * len(horizons),
        "| open-loop return error per step | "
        + " | ".join(f"{episode['return_error_per_step'][h]:.3g}" for h in horizons) + " |",
        *(["| closed-loop return error per step | "
           + " | ".join(f"{episode['closed_loop_return_error_per_step'][h]:.3g}" for h in horizons) + " |"]
          if "closed_loop_return_error_per_step" in episode else []),
        "| state MSE at that step | " + " | ".join(f"{episode['state_mse'][h]:.3g}" for h in horizons) + " |",
        "",
        f"Default episode length: {episode['steps']} steps by the rule. Measured with: `{episode['command']}`",
        "",
    ]


def _early_ends(episode: dict[str, Any]) -> str:
    """Where the real task ended episodes early, how the errors were averaged."""
    lengths = episode.get("real_episode_steps")
    if not lengths or lengths["min"] == lengths["max"]:
        return ""
    return (f" The real task ended episodes after {lengths['min']} to {lengths['max']} steps (median "
            f"{lengths['median']:g}); each step's errors are over the episodes still running there.")


def training_chain(training: dict[str, Any]) -> list[dict[str, Any]]:
    """A checkpoint's training record followed by those of the runs it was fine-tuned from
    (``init_from``), newest first."""
    chain = [training]
    while chain[-1].get("init_from"):
        chain.append(chain[-1]["init_from"])
    return chain


def _parent_lines(training: dict[str, Any]) -> list[str]:
    """Provenance of the checkpoints a fine-tuned one started from, parent first."""
    return [f"- fine-tuned from (weights {parent.get('weights_sha256', '?')}): `{parent.get('command', '')}`, "
            f"seed {parent.get('seed', '')}, {parent.get('samples', '')} samples, "
            f"{parent.get('wall_time_s', '')} s"
            for parent in training_chain(training)[1:]]


def _teacher_lines(training: dict[str, Any]) -> list[str]:
    """Provenance of the checkpoint a distilled one learned from (its own run's, or a parent run's)."""
    lines: list[str] = []
    seen: set[str | None] = set()
    for record in training_chain(training):
        teacher = record.get("teacher")
        if teacher and teacher.get("weights_sha256") not in seen:  # a fine-tune of a student keeps its teacher
            seen.add(teacher.get("weights_sha256"))
            integrator = teacher.get("integrator", {})
            lines.append(f"- distilled from (weights {teacher.get('weights_sha256', '?')}, "
                         f"{integrator.get('method', '?')} x{integrator.get('substeps', '?')}): "
                         f"`{teacher.get('command', '')}`; targets were its predictions, selection on real data")
    return lines


def ablation_is_like_for_like(ablation: dict[str, Any], model_samples: int | None,
                              model_data: dict[str, Any] | None = None) -> bool:
    """Whether a benchmark's architecture ablation compares like with like: trained on as many
    samples as the model (not so after retraining the model alone for longer) and, where both
    record it, on the same data (not so after retraining the model alone on new data)."""
    data_matches = "data" not in ablation or model_data is None or same_data(ablation["data"], model_data)
    return ablation.get("samples") == model_samples and data_matches


#: What identifies a data set: a collection regenerated from these is the same data,
#: whatever file it was written to (``--out``) or whichever release recorded it.
_DATA_IDENTITY = ("robot", "task", "sequences", "steps", "seed", "protocol", "agent_sequences")


def same_data(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two data records (``training["data"]``) name the same collected data."""
    return all(a.get(key, 0 if key == "agent_sequences" else None)
               == b.get(key, 0 if key == "agent_sequences" else None) for key in _DATA_IDENTITY)


def sequences_driven_by(training: dict[str, Any], agent_sha256: str) -> int:
    """How many sequences of a checkpoint's training data (its own run's and its parents')
    the agent with fingerprint ``agent_sha256`` drove: a check of the model along that
    agent's episodes is then not independent of the data."""
    return sum(int(agent.get("sequences", 0))
               for record in training_chain(training)
               for agent in record.get("data", {}).get("agents", ())
               if agent.get("sha256") == agent_sha256)


def lyapunov_summary(lyapunov: dict[str, Any]) -> str:
    """``model a +- s 1/s, MuJoCo b +- s 1/s, difference d +- s 1/s`` from a benchmark's
    ``lyapunov`` record (records written before standard errors were kept show the means)."""
    def value(key: str) -> str:
        error = lyapunov.get(f"{key}_standard_error")
        return f"{lyapunov[key]:.4f}" + (f" +- {error:.4f}" if error is not None else "") + " 1/s"

    text = f"model {value('model')}, MuJoCo {value('mujoco')}"
    return text + (f", paired difference {value('difference')}" if "difference" in lyapunov else "")


def _accuracy_section(bench: dict[str, Any], model_samples: int | None,
                      model_data: dict[str, Any] | None = None) -> list[str]:
    """Figures of ``neural-sim benchmark``: MSE per horizon next to the baselines, the
    Lyapunov check and the cost per step."""
    ablation = bench.get("ablation")
    other = f" | ablation ({ablation['architecture']}) MSE" if ablation else ""
    lines = [
        "## Prediction accuracy",
        "",
        "Open-loop MSE over all steps and state dimensions, raw units, on held-out random-action "
        "data (the MoSim paper's protocol).",
        "",
        f"| horizon | model MSE | hold-last-state MSE{other} |",
        "|---|---|---|" + ("---|" if ablation else ""),
    ]
    for h, row in bench["horizons"].items():
        cells = [_fmt(row["mse"]), _fmt(row.get("hold_last_state_mse", "-"))]
        if ablation:
            cells.append(_fmt(row.get("ablation_mse", "-")))
        lines.append(f"| {h} | " + " | ".join(cells) + " |")
    lines += ["", f"Test data: {bench.get('test_data', {})}.", ""]
    orientation = {h: row for h, row in bench["horizons"].items() if "orientation_error_deg" in row}
    if orientation:
        lines += ["Orientation error of each free or ball joint (mean rotation angle between predicted and true "
                  "orientation, degrees; hold-last-state in brackets): "
                  + "; ".join(f"H={h}: " + ", ".join(
                      f"{joint} {_fmt(deg)} ({_fmt(row['hold_last_state_orientation_error_deg'][joint])})"
                      for joint, deg in row["orientation_error_deg"].items()) for h, row in orientation.items())
                  + ".", ""]
    if bench.get("lyapunov_skipped"):
        lines += [f"Largest Lyapunov exponent: {bench['lyapunov_skipped']}.", ""]
    if "error_vs_step" in bench:
        lines += ["![error vs prediction step and per state dimension](benchmark.png)", ""]
    if ablation:
        cost = f"{ablation['wall_time_s']} s on {ablation['hardware']}"
        if ablation_is_like_for_like(ablation, model_samples, model_data):
            trained = f"on the same data with the same samples ({ablation['samples']}; {cost})"
        else:  # e.g. a model retrained for longer, or on other data, than its ablation
            trained = (f"with {ablation['samples']} samples of `{_data_command(ablation.get('data'))}` "
                       f"({cost}); this model saw {model_samples} samples of `{_data_command(model_data)}`, so the "
                       "two columns are not a like-for-like comparison")
        lines += [f"Ablation: the `{ablation['architecture']}` architecture trained {trained}: "
                  f"`{ablation['command']}`.", ""]
    lyapunov = bench.get("lyapunov")
    if lyapunov:
        lines += [
            f"Largest Lyapunov exponent: {lyapunov_summary(lyapunov)} "
            f"({lyapunov['protocol']}; {lyapunov['trajectories']} trajectories).",
            "",
        ]
    if "ms_per_step_batch1" in bench:
        fast = bench.get("fast_ms_per_step_batch1")
        lines += [
            f"Cost per step at batch 1: {bench['ms_per_step_batch1']:.3f} ms (torchdiffeq)"
            + (f", {fast:.3f} ms (traced, as environments step)" if fast is not None else "")
            + f", {bench.get('torch_threads', '?')} torch thread(s).",
            "",
        ]
    lines += [f"Measured with: `{bench.get('command', '')}`", ""]
    return lines
