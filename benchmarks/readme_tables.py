"""Fill the figure tables of the results pages ``benchmarks/*.md`` (the results the top-level
README links to) from the shipped checkpoints and benchmarks/results/.

Every figure in those tables is produced by a command recorded next to it
(``neural-sim benchmark``, ``neural-sim benchmark-density``, ``neural-sim bench-speed``,
``benchmarks/compare_density.py``, ``neural-sim fit-domain``); this script only copies them
between the ``<!-- tag -->`` markers of whichever page holds them.

    python benchmarks/readme_tables.py
"""

from __future__ import annotations

import json
import re
import shlex
import statistics
from pathlib import Path

from neural_sim.pipeline.card import ablation_is_like_for_like, lyapunov_summary, same_data, training_chain
from neural_sim.rl.real_env import checkpoint_fingerprint
from neural_sim.rl.runs import last_evaluations_mean, trained_variants

ROOT = Path(__file__).resolve().parent.parent
PAPER = {"acrobot": "0.0001 / 0.1043", "cheetah": "0.1206 / 0.2185", "reacher": "0.0005 / 0.0009",
         "hopper": "0.0375 / 0.2507 (dt 0.005)", "humanoid": "1.2737 / - (dt 0.005)",
         "quadruped": "0.0410 / 0.1401 (Go2, another robot)"}
# Issue 21's floating-base targets at H=16: 20x below holding the last state (humanoid: the paper's).
HOLD_FRACTION_TARGET = {"quadruped": 20, "Ant-v5": 20}
# Issue 3's targets (H=16 / H=100).
TARGET = {"acrobot": "1e-4 / 0.01", "reacher": "5e-4 / 9e-4", "cheetah": "0.12 / 0.22", "hopper": "0.0375 / 0.25",
          "pendulum": "1e-5 / 1e-3", "cartpole": "1e-4 / 1e-3", "walker": "0.5 / 2.0", "humanoid": "1.2737 / -"}


def shipped() -> list[tuple[str, dict]]:
    folders = sorted((p for p in (ROOT / "checkpoints").iterdir() if (p / "config.json").is_file()),
                     key=lambda p: p.name.lower())
    return [(p.name, json.loads((p / "config.json").read_text())) for p in folders]


def mse(value: float) -> str:
    """An MSE for the table; NaN means some open-loop rollouts diverged."""
    return "diverged" if value != value else f"{value:.2e}"


def accuracy_table() -> str:
    rows = ["| robot | architecture | H=3 | H=16 | H=100 | ablation H=16 / H=100 | hold-last-state H=16 "
            "| paper MoSim H=16 / H=100 | target H=16 / H=100 | trusted horizon / default episode (steps) | training |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for name, config in shipped():
        bench = config["benchmark"]
        if "horizons" not in bench:
            continue  # not benchmarked yet
        h = bench["horizons"]
        ablation = bench.get("ablation")
        training = config["training"]
        other = "-"
        if ablation:
            budget = ("" if ablation_is_like_for_like(ablation, training["samples"], training.get("data"))
                      else f", {ablation['samples'] / 1e6:.0f}M samples"
                      + (", other data" if ablation.get("data") is not None and training.get("data") is not None
                         and not same_data(ablation["data"], training["data"]) else ""))
            other = (f"{mse(h['16']['ablation_mse'])} / {mse(h['100']['ablation_mse'])} "
                     f"({ablation['architecture']}{budget})")
        cost = f"{training['wall_time_s'] / 60:.0f} min, {training['samples'] / 1e6:.0f}M samples"
        architecture = config["simulator"]["model"]["architecture"]
        if config["simulator"]["model"].get("contact_features"):
            architecture += " + contact features"
        teacher = next((run["teacher"] for run in training_chain(training) if "teacher" in run), None)
        if teacher is not None:
            integrator = config["simulator"]["integrator"]
            architecture += (f", {integrator['method']} x{integrator['substeps']} student of its "
                             f"{teacher['integrator']['method']} teacher")
        if "init_from" in training:
            architecture += f", {training['train_config']['rollout_steps']}-step rollout fine-tune"
        if (training.get("data") or {}).get("agent_sequences"):
            architecture += f" on agent-driven data ({training['data']['agent_sequences']} of its sequences)"
        target = TARGET.get(name, "-")
        if name in HOLD_FRACTION_TARGET:
            fraction = HOLD_FRACTION_TARGET[name]
            target = f"{h['16']['hold_last_state_mse'] / fraction:.3g} (hold / {fraction}) / -"
        rows.append(f"| {name} | {architecture} | {mse(h['3']['mse'])} | "
                    f"{mse(h['16']['mse'])} | {mse(h['100']['mse'])} | {other} | "
                    f"{h['16']['hold_last_state_mse']:.3g} | {PAPER.get(name, '-')} | {target} | "
                    f"{config['trusted_horizon']} / {episode_steps(config)} | {cost} |")
        if "lyapunov" in bench and name == "acrobot":
            lyapunov = bench["lyapunov"]
            notes.append(f"Largest Lyapunov exponent of {name}: {lyapunov_summary(lyapunov)} "
                         f"({lyapunov['protocol']}; {lyapunov['trajectories']} trajectories).")
    return "\n".join(rows + (["", *notes] if notes else []))


def episode_steps(config: dict) -> str:
    """The default episode length, marked when ``neural-sim benchmark-task`` set it (else it is
    the trusted horizon)."""
    episode = config.get("episode_length") or {}
    return f"{episode['steps']} (task rewards)" if episode else str(config["trusted_horizon"])


#: The walker candidates of the locomotion table, in the order the levers were tried.
WALKER_CANDIDATES = {
    "walker-old": "shipped before: 500 x 1000-step Poisson sequences, rollout fine-tune",
    "walker-short": "2000 x 250-step Poisson sequences from the task's starts, one-step loss only",
    "walker-short-rollout": "the same, rollout fine-tune",
    "walker-contact": "the same data + contact features, one-step loss only",
    "walker-contact-rollout": "the same, rollout fine-tune (data, contact features, fine-tune: all agent-free)",
    "walker-agent": "half the sequences driven by a real-trained SAC agent + contact features, one-step loss only",
    "shipped": "the same, rollout fine-tune (shipped)",
}


def locomotion_table() -> str:
    """Walker candidates: random-action MSE and task rewards along real-trained agent episodes
    (``benchmarks/results/locomotion/``; commands in ``benchmarks/locomotion/README.md``)."""
    folder = ROOT / "benchmarks" / "results" / "locomotion"
    rows = ["| walker model | H=16 / H=100, random actions | walker-stand return: real / model closed loop / "
            "model open loop | closed-loop return error per step at 50 / 100 / 1000 steps "
            "| episode length by the rule |",
            "|---|---|---|---|---|"]
    for name, description in WALKER_CANDIDATES.items():
        task_path = folder / f"walker-stand-task-{name}.json"
        if not task_path.is_file():
            continue
        task = json.loads(task_path.read_text())
        random_path = folder / f"walker-random-{name}.json"
        shipped_config = ROOT / "checkpoints" / "walker" / "config.json"
        horizons = (json.loads(random_path.read_text())["horizons"] if random_path.is_file()
                    else json.loads(shipped_config.read_text())["benchmark"]["horizons"] if name == "shipped" else None)
        accuracy = f"{horizons['16']['mse']:.2f} / {horizons['100']['mse']:.2f}" if horizons else "not measured"
        error = task["closed_loop_return_error_per_step"]
        rows.append(f"| {description} | {accuracy} | {task['real_return_mean']:.0f} / "
                    f"{task['closed_loop_return_mean']:.0f} / {task['model_return_mean']:.0f} | "
                    f"{error['50']:.3f} / {error['100']:.3f} / {error['1000']:.3f} | {task['episode_length']} |")
    return "\n".join(rows)


def density_table() -> str:
    rows = ["| robot | AUROC perturbed | AUROC controller | Spearman(penalty, one-step error) | env step off / on "
            "| batched step off / on |",
            "|---|---|---|---|---|---|"]
    for name, config in shipped():
        if "density" not in config["benchmark"]:
            continue  # no density figures yet
        d = config["benchmark"]["density"]
        cost = d["step_cost"]
        rows.append(f"| {name} | {d['auroc']['perturbed']:.3f} | {d['auroc']['controller']:.3f} | "
                    f"{d['spearman_penalty_vs_one_step_error']:.3f} | {cost['off_ms']:.2f} / {cost['on_ms']:.2f} ms "
                    f"(+{100 * cost['overhead']:.0f}%) | {batched_cost(cost)} |")
    return "\n".join(rows)


def batched_cost(cost: dict) -> str:
    batched = cost.get("batched")
    if batched is None:
        return "not measured yet"
    return (f"{batched['off_ms']:.1f} / {batched['on_ms']:.1f} ms at N={batched['num_envs']:,} "
            f"(+{100 * batched['overhead']:.0f}%)")


def flow_table() -> str:
    rows = ["| robot | flow | AUROC perturbed | AUROC controller | Spearman | log p cost, batch 1 | fit time |",
            "|---|---|---|---|---|---|---|"]
    for path in sorted((ROOT / "benchmarks" / "results").glob("density_comparison_*.json")):
        for robot, flows in json.loads(path.read_text())["results"].items():
            for kind, v in flows.items():
                rows.append(f"| {robot} | {kind} | {v['auroc']['perturbed']:.3f} | {v['auroc']['controller']:.3f} | "
                            f"{v['spearman_penalty_vs_one_step_error']:.3f} | {v['log_density_ms_batch1']:.2f} ms | "
                            f"{v['fit_s']:.0f} s |")
    return "\n".join(rows)


def speed_table() -> str:
    path = ROOT / "benchmarks" / "results" / "speed_cpu.json"
    if not path.is_file():
        return "(run `neural-sim bench-speed --json benchmarks/results/speed_cpu.json`)"
    results = json.loads(path.read_text())
    sizes = list(results[0]["batched"])
    rows = ["| id | step (ms) | shimmy step (ms) | SAC update / step | "
            + " | ".join(f"N={n} steps/s (x shimmy)" for n in sizes) + " |",
            "|---|---|---|---|" + "---|" * len(sizes)]
    for r in results:
        cells = []
        for n in sizes:
            b = r["batched"][n]
            ratio = f" (x{b['ratio']:.1f})" if b["ratio"] else " (shimmy not run)"
            cells.append(f"{b['neural_steps_per_s']:,.0f}{ratio}")
        rows.append(f"| `{r['env_id']}` | {r['single_env_ms']['neural']:.3f} | {r['single_env_ms']['shimmy']:.3f} | "
                    f"{r['sac_update_over_neural_step']:.0f} | " + " | ".join(cells) + " |")
    rows.append("")
    rows.append(f"Measured with `{results[0]['command']}` ({results[0]['machine']}).")
    return "\n".join(rows)


def envpool_table() -> str:
    """NeuralSim's batched env next to EnvPool (``neural-sim bench-speed`` with EnvPool installed)."""
    path = ROOT / "benchmarks" / "results" / "speed_envpool.json"
    if not path.is_file():
        return ("Not measured yet: run `neural-sim bench-speed NeuralSim/Cheetah-v0 NeuralSim/HalfCheetah-v5 "
                "--batch-sizes 1 16 256 1024 4096 --threads 2 --no-shimmy-vector --json "
                "benchmarks/results/speed_envpool.json` on a quiet machine with EnvPool installed "
                "(`pip install \".[bench]\"`); figures taken beside training runs are not comparable.")
    results = json.loads(path.read_text())
    bf16 = any("neural_bfloat16_steps_per_s" in b for r in results for b in r["batched"].values())
    rows = ["| id | EnvPool task | N | NeuralSim env-steps/s | " + ("NeuralSim bfloat16 env-steps/s | " if bf16 else "")
            + "EnvPool env-steps/s | NeuralSim / EnvPool" + (" (bfloat16)" if bf16 else "")
            + " | MiB per env: NeuralSim / EnvPool |", "|---|---|---|---|---|---|---|" + ("---|" if bf16 else "")]
    for r in results:
        for n, b in r["batched"].items():
            fast = b.get("neural_bfloat16_steps_per_s")
            cells = [f"`{r['env_id']}`", f"`{r['envpool_id']}`", f"{int(n):,}", f"{b['neural_steps_per_s']:,.0f}"]
            if bf16:
                cells.append(f"{fast:,.0f}" if fast else "-")
            if b.get("envpool_steps_per_s") is None:
                cells += [f"not run (above {r['envpool_max_envs']:,} envs)", "-", "-"]
            else:
                ratio = f"{b['neural_over_envpool']:.2f}"
                if bf16 and fast:
                    ratio += f" ({fast / b['envpool_steps_per_s']:.2f})"
                cells += [f"{b['envpool_steps_per_s']:,.0f}", ratio,
                          f"{b['neural_mib_per_env']:.3f} / {b['envpool_mib_per_env']:.2f}"]
            rows.append("| " + " | ".join(cells) + " |")
    rows += ["", f"Measured with `{results[0]['command']}` ({results[0]['machine']})."]
    return "\n".join(rows)


LAST_EVALUATIONS = 3


def rl_command(results: dict, seeds: list[int], name: str) -> str:
    """The one ``neural-sim rl`` command that makes these results (seeds may have been run one
    command at a time into the same folder; finished seeds are kept, so it is the same)."""
    penalty = f" --density-penalty {results['density_penalty']}" if results["density_penalty"] else ""
    reset = f" --reset-from {results['reset_from']}" if results.get("reset_from", "buffer") != "buffer" else ""
    if results.get("max_episode_steps") is not None:
        reset += f" --max-episode-steps {results['max_episode_steps']}"
    if results.get("checkpoint") is not None:
        reset += f" --checkpoint {results['checkpoint']}"
    trained = trained_variants(results)
    only = {"real": " --no-reference", "neural_sim": " --reference-only"}
    reference = next((flag for variant, flag in only.items() if variant not in trained), "")
    recorded = shlex.split(results.get("command") or "")  # the folder the runs were written to
    out = recorded[recorded.index("--out") + 1] if "--out" in recorded[:-1] else f"runs/rl-{name}"
    return (f"neural-sim rl {results['env_id']} --algo {results['algo']} --steps {results['steps']} "
            f"--eval-every {results['eval_every']} --eval-episodes {results['eval_episodes']}{penalty}{reset}"
            f"{reference} --seeds {' '.join(map(str, seeds))} --out {out}")


def last_evaluations(runs: dict) -> dict[str, float]:
    """Per seed, the real return averaged over its last ``LAST_EVALUATIONS`` evaluations."""
    return {seed: last_evaluations_mean(run, LAST_EVALUATIONS) for seed, run in runs.items() if run["evaluations"]}


def spread(values: list[float]) -> str:
    if not values:
        return "not run"
    deviation = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.0f} +- {deviation:.0f}"


def earlier_weights(results: dict) -> str:
    """A note for results trained in other weights than the checkpoint now shipped for their
    env id (they predate a retraining): rerunning the row's command refreshes them."""
    recorded = results.get("checkpoint_sha256")
    density = bool(results.get("density_penalty"))
    current = checkpoint_fingerprint(results["env_id"], density=density)
    if results.get("checkpoint") is not None:  # a candidate (`--checkpoint`), unless it has since shipped
        shipped = recorded in (current, checkpoint_fingerprint(results["env_id"], density=density,
                                                                episode_length=False))
        return "" if shipped else f", in candidate {results['checkpoint']} ({recorded})"
    if recorded is None or recorded == current:
        return ""
    # A run with its own episode length never read the default one (runs recorded before
    # that was left out of their fingerprint match the first comparison).
    if (results.get("max_episode_steps") is not None
            and recorded == checkpoint_fingerprint(results["env_id"], density=density, episode_length=False)):
        return ""
    return f", in earlier weights ({recorded})"


def rl_table() -> str:
    """Zero-shot results: one row per ``benchmarks/results/rl/*.json`` (``neural-sim rl``'s
    ``results.json``, copied). Per seed, the real return averaged over the last
    ``LAST_EVALUATIONS`` evaluations (single evaluations of a half-trained agent swing
    widely); mean +- std over seeds. A file run with ``--no-reference`` (the density-penalty
    variant) is compared with the real-env runs of the file with the same real task,
    algorithm, budget and scoring."""
    last = LAST_EVALUATIONS
    header = [f"| real task | agent, steps | seeds | trained in NeuralSim: real return, last {last} evaluations "
            "| trained in the real env | ratio | NeuralSim mean curve: best / last evaluation over best "
            "| wall time per run, NeuralSim / real (min) | command |",
            "|---|---|---|---|---|---|---|---|---|"]
    current, earlier = list(header), list(header)
    files = {path.stem: json.loads(path.read_text())
             for path in sorted((ROOT / "benchmarks" / "results" / "rl").glob("*.json"))}
    same_setup = ("real_env_id", "algo", "eval_every", "eval_episodes")
    for name, results in files.items():
        real_runs, real_note = results["runs"].get("real"), ""
        if not real_runs:
            # A real-env run of the same setup; a longer one is cut to this budget (SAC's
            # schedule does not depend on its budget, so its first N steps are an N-step run).
            matches = sorted((other for other in files.values() if other["runs"].get("real")
                              and all(other[k] == results[k] for k in same_setup)
                              and other["steps"] >= results["steps"]), key=lambda other: other["steps"])
            real_runs = {}
            if matches:
                real_runs = {seed: {**run, "evaluations": [e for e in run["evaluations"]
                                                           if e["steps"] <= results["steps"]]}
                             for seed, run in matches[0]["runs"]["real"].items()}
                if matches[0]["steps"] > results["steps"]:
                    real_note = f", its first {results['steps']:,} steps"
        by_seed_neural, by_seed_real = last_evaluations(results["runs"]["neural_sim"]), last_evaluations(real_runs)
        # The ratio compares like with like: the seeds run in both variants.
        both = sorted(set(by_seed_neural) & set(by_seed_real))
        real_mean = statistics.mean(by_seed_real[s] for s in both) if both else 0.0
        ratio = f"{statistics.mean(by_seed_neural[s] for s in both) / real_mean:.2f}" if real_mean > 0 else "-"
        summary = results.get("summary", {}).get("neural_sim", {})
        shape = (f"{summary['best']:.0f} / {summary['final_over_best']:.2f}"
                 if summary.get("final_over_best") is not None else "-")
        walls = "/".join(f" {statistics.mean(run['wall_time_s'] / 60 for run in runs.values()):.0f} "
                         if runs else " - " for runs in (results["runs"]["neural_sim"], results["runs"]["real"]))
        settings = [f"density penalty {results['density_penalty']}"] if results["density_penalty"] else []
        settings += [f"reset from {results['reset_from']}"] if results.get("reset_from", "buffer") != "buffer" else []
        settings += ([f"{results['max_episode_steps']}-step NeuralSim episodes"]
                     if results.get("max_episode_steps") is not None else [])
        seeds = sorted({int(s) for runs in results["runs"].values() for s in runs})
        neural, real = list(by_seed_neural.values()), list(by_seed_real.values())
        reference_only = "neural_sim" not in trained_variants(results)
        stale = "" if reference_only else earlier_weights(results)
        neural_cell = "- (reference only)" if reference_only else f"{spread(neural)} (n={len(neural)}){stale}"
        (earlier if stale else current).append(f"| `{results['real_env_id']}`{''.join(', ' + x for x in settings)} "
                    f"| {results['algo'].upper()}, {results['steps']:,} | {', '.join(map(str, seeds))} "
                    f"| {neural_cell} | {spread(real)} (n={len(real)}{real_note}) | {ratio} | {shape} "
                    f"|{walls}| `{rl_command(results, seeds, name)}` |")
    if len(earlier) == len(header):
        return "\n".join(current)
    # Kept, apart, because their real-env runs are the reference of current rows and their
    # NeuralSim figures show what retraining the checkpoint changed.
    note = ("Trained in earlier weights of the checkpoint or in a candidate checkpoint (kept for comparison; "
            "their real-env runs are the reference of the rows above run with `--no-reference`):")
    return "\n".join([*current, "", note, "", *earlier])


def few_shot_table() -> str:
    """Few-shot real-sample efficiency: one row per ``benchmarks/results/few-shot/*.json``
    (``neural-sim few-shot``'s ``results.json``, copied)."""
    rows = ["| real task | agent, model steps | collection | seeds | reference: real-trained return after "
            "(real samples) | few-shot: real samples to reach it | fewer real samples | few-shot final return "
            "(real samples) | real-trained at the same real samples | few-shot best, 3 evaluations (real samples) "
            "| real-trained: real samples to reach that | command |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for path in sorted((ROOT / "benchmarks" / "results" / "few-shot").glob("*.json")):
        results = json.loads(path.read_text())
        summary = results["summary"]
        seeds = summary["seeds"]
        needed = summary.get("real_samples_to_target")
        fewer = f"{summary['fewer_real_samples']:.1f}x" if needed else "not reached"
        needed_cell = f"{needed:,}" if needed else "-"
        at_equal = summary.get("reference_at_final_real_samples")
        equal = f"{at_equal:.0f}" if at_equal is not None else "not scored that early"
        best = f"{summary['best_window_return']:.0f} ({summary['real_samples_to_best_window']:,})"
        needed_best = summary["reference_real_samples_to_best_window"]
        best_needed = (f"{needed_best:,} ({summary['fewer_real_samples_at_best']:.1f}x)" if needed_best
                       else "not reached")
        command = (f"neural-sim few-shot {results['env_id']} --reference runs/rl-{path.stem} --algo {results['algo']} "
                   f"--steps {results['steps']} --every {results['every']} --real-steps {results['real_steps']} "
                   f"--finetune-iterations {results['finetune_iterations']} --seeds {' '.join(map(str, seeds))} "
                   f"--out runs/few-shot-{path.stem}")
        rows.append(f"| `{results['real_env_id']}` | {results['algo'].upper()}, {results['steps']:,}"
                    f"{earlier_weights(results)} | {results['real_steps']:,} real steps every {results['every']:,} "
                    f"| {', '.join(map(str, seeds))} "
                    f"| {summary['target_return']:.0f} ({summary['reference_real_samples']:,}, seeds "
                    f"{', '.join(map(str, summary['reference_seeds']))}) | {needed_cell} | {fewer} "
                    f"| {summary['final']:.0f} ({summary['real_samples'][-1]:,}) | {equal} | {best} | {best_needed} "
                    f"| `{command}` |")
    return "\n".join(rows)


def domain_table() -> str:
    """Per robot and margin, the share of held-out real sequences the data domain would cut
    (``neural-sim fit-domain ... --json benchmarks/results/domain/<robot>.json``)."""
    reports = {path.stem: json.loads(path.read_text())
               for path in sorted((ROOT / "benchmarks" / "results" / "domain").glob("*.json"))}
    if not reports:
        return "No data-domain results yet."
    margins = list(next(iter(reports.values()))["held_out"]["random"]["cuts"])
    rows = ["| robot | held-out data | " + " | ".join(f"margin {m}" for m in margins) + " | used |",
            "|---|---|" + "---|" * len(margins) + "---|"]
    for robot, report in reports.items():
        for name, held_out in report["held_out"].items():
            data = held_out["data"]
            cells = " | ".join(f"{held_out['cuts'][m]['sequences']:.2f}" for m in margins)
            rows.append(f"| {robot} | {name} actions, {data['sequences']} x {data['steps']} steps, seed {data['seed']} "
                        f"| {cells} | {report['margin']:g} |")
    commands = sorted({report["command"] for report in reports.values()})
    return "\n".join([*rows, "", "Measured with: " + "; ".join(f"`{c}`" for c in commands) + "."])


def soak_table() -> str:
    """``neural-sim soak`` runs (``benchmarks/results/soak/*.json``)."""
    rows = ["| env id | envs | env-steps | resident memory after warm-up / end (MiB) | step time first / last 10% "
            "(ms per env-step) | episodes | out of domain | divergences |",
            "|---|---|---|---|---|---|---|---|"]
    commands = []
    for path in sorted((ROOT / "benchmarks" / "results" / "soak").glob("*.json")):
        results = json.loads(path.read_text())
        commands.append(results["command"])
        for run in results["runs"]:
            memory, step = run["memory_mib"], run["step_ms"]
            rows.append(f"| `{run['env_id']}` | {run['num_envs']:,} | {run['env_steps']:,} "
                        f"| {memory['after_warm_up']:.0f} / {memory['end']:.0f} ({run['memory_growth']:+.1%}) "
                        f"| {step['first_10pct']:.4f} / {step['last_10pct']:.4f} ({run['step_time_growth']:+.1%}) "
                        f"| {run['episodes']:,} | {run['out_of_domain_truncations']:,} | {len(run['divergences'])} |")
    return "\n".join([*rows, "", "Measured with: " + "; ".join(f"`{c}`" for c in commands) + "."])


def main() -> None:
    tables = (("benchmark-table", accuracy_table()), ("locomotion-table", locomotion_table()),
              ("density-table", density_table()),
              ("flow-comparison", flow_table()), ("speed-table", speed_table()),
              ("envpool-table", envpool_table()),
              ("rl-table", rl_table()), ("few-shot-table", few_shot_table()),
              ("domain-table", domain_table()), ("soak-table", soak_table()))
    filled = set()
    for page in sorted((ROOT / "benchmarks").glob("*.md")):
        text = page.read_text()
        for tag, table in tables:
            text, count = re.subn(f"<!-- {tag} -->.*?<!-- /{tag} -->", f"<!-- {tag} -->\n{table}\n<!-- /{tag} -->",
                                  text, flags=re.S)
            filled |= {tag} if count else set()
        page.write_text(text)
    missing = sorted({tag for tag, _ in tables} - filled)
    if missing:  # a page lost its markers: say so rather than leave a table stale
        raise SystemExit(f"no page of benchmarks/ has the markers of: {', '.join(missing)}")

if __name__ == "__main__":
    main()
