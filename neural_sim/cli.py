"""``neural-sim`` command line: arguments in, one pipeline call per subcommand."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from neural_sim.errors import NeuralSimError
from neural_sim.model.domain import DEFAULT_MARGIN

CHECKPOINT_HELP = "shipped robot name, checkpoint folder or Hub repo id (owner/name)"


def _command_line(argv: Sequence[str]) -> str:
    return shlex.join(["neural-sim", *argv])


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def _collection_agent(path: Path, robot: str, task: str | None) -> Any:
    """The agent at ``path`` as a collector for ``robot``'s ``task`` (its observations' space)."""
    from neural_sim.rl.real_env import collection_agent
    from neural_sim.robots import collection_bridge

    bridge, _, _ = collection_bridge(robot, task, 0)
    try:
        return collection_agent(path, bridge.observation_space)
    finally:
        bridge.close()


def _cmd_collect(args: argparse.Namespace, argv: Sequence[str]) -> None:
    from neural_sim.pipeline.collect import collect

    agents = [_collection_agent(path, args.robot, args.task) for path in args.agent]
    counts = args.agent_sequences
    if counts is None:  # half the sequences, shared out evenly
        half = args.sequences // 2
        counts = [half // len(agents) + (i < half % len(agents)) for i in range(len(agents))]
    elif len(counts) != len(agents):
        raise NeuralSimError(f"--agent-sequences gives {len(counts)} counts for {len(agents)} --agent files: "
                             "give one count per agent, in the same order")
    dataset = collect(
        args.robot, args.sequences, args.steps, args.seed, args.task, command=_command_line(argv), progress=True,
        agents=list(zip(agents, counts, strict=True)),
    )
    path = dataset.save(args.out)
    print(f"wrote {path}: {dataset.states.shape[0]} sequences x {dataset.actions.shape[1]} steps")


def _cmd_train(args: argparse.Namespace, argv: Sequence[str]) -> None:
    import dataclasses

    from neural_sim.pipeline.collect import Dataset, collect
    from neural_sim.pipeline.recipes import Recipe, load_recipe, with_overrides
    from neural_sim.pipeline.train import train
    from neural_sim.robots import robot_spec

    _set_threads(args.threads)
    if args.recipe is not None:
        recipe = load_recipe(args.recipe)
        if args.robot is not None and args.robot != recipe.robot:
            raise NeuralSimError(f"recipe {args.recipe!r} is for robot {recipe.robot!r}, not {args.robot!r}")
    elif args.robot is None:
        raise NeuralSimError("name the robot to train (e.g. `neural-sim train acrobot --out ...`) or give --recipe")
    else:
        recipe = Recipe(robot=args.robot)
    data = recipe.data
    data = dataclasses.replace(
        data,
        sequences=data.sequences if args.sequences is None else args.sequences,
        steps=data.steps if args.steps is None else args.steps,
        seed=data.seed if args.data_seed is None else args.data_seed,
    )
    model = recipe.model if args.architecture is None else dataclasses.replace(
        recipe.model, architecture=args.architecture)
    integrator = recipe.integrator
    if args.integrator is not None:
        integrator = dataclasses.replace(integrator, method=args.integrator)
    if args.substeps is not None:
        integrator = dataclasses.replace(integrator, substeps=args.substeps)
    recipe = with_overrides(
        dataclasses.replace(recipe, data=data, model=model, integrator=integrator),
        iterations=args.iterations, stages=args.stages, batch_size=args.batch_size, learning_rate=args.lr,
        seed=args.seed, eval_every=args.eval_every, rollout_steps=args.rollout_steps,
    )
    if recipe.fine_tunes and args.init_from is None:
        raise NeuralSimError(
            f"recipe {args.recipe!r} fine-tunes a checkpoint of recipe {recipe.fine_tunes!r}: give that checkpoint "
            f"with --init-from (made by `neural-sim train --recipe {recipe.fine_tunes} --out FOLDER`)"
        )
    if recipe.distills and args.teacher is None:
        raise NeuralSimError(
            f"recipe {args.recipe!r} learns the predictions of a checkpoint of recipe {recipe.distills!r}: give that "
            f"checkpoint with --teacher (made by `neural-sim train --recipe {recipe.distills} --out FOLDER`)"
        )
    if args.data:
        dataset = Dataset.load(args.data)
        if dataset.info.robot != recipe.robot:
            raise NeuralSimError(f"{args.data} holds data of robot {dataset.info.robot!r}, not {recipe.robot!r}")
    else:
        collect_argv = ["collect", recipe.robot, "--sequences", str(data.sequences), "--steps", str(data.steps),
                        "--seed", str(data.seed)] + (["--task", data.task] if data.task else [])
        agents = []
        if data.agent_sequences:
            if len(args.agent) != len(data.agent_sequences):
                raise NeuralSimError(
                    f"recipe {args.recipe!r} collects {' + '.join(map(str, data.agent_sequences))} of its sequences "
                    f"with {len(data.agent_sequences)} trained agent(s): give them with --agent, in order "
                    f"({data.agent_hint or 'SB3 agent .zip files from neural-sim rl'}), or give --data"
                )
            agents = [(_collection_agent(path, recipe.robot, data.task or None), count)
                      for path, count in zip(args.agent, data.agent_sequences, strict=True)]
            collect_argv += ["--agent", *map(str, args.agent), "--agent-sequences", *map(str, data.agent_sequences)]
        elif args.agent:
            raise NeuralSimError(f"--agent: recipe {args.recipe!r} collects no agent-driven sequences")
        dataset = collect(recipe.robot, data.sequences, data.steps, data.seed, data.task or None,
                          command=_command_line(collect_argv), progress=True, agents=agents)
    train(dataset, robot_spec(recipe.robot), args.out, recipe.model, recipe.integrator, recipe.train,
          command=_command_line(argv), resume=args.resume, init_from=args.init_from, teacher=args.teacher)


def _training_data(folder: Path, config: Any) -> Any:
    """A checkpoint's training data, collected again from the command and seed it records."""
    from neural_sim.pipeline.collect import recollect_training_data
    from neural_sim.robots import data_source

    return recollect_training_data(config.training, data_source(config.robot, folder), progress=True,
                                   load_agent=lambda path, task: _collection_agent(
                                       Path(path), data_source(config.robot, folder), task))


def _cmd_fit_density(args: argparse.Namespace, argv: Sequence[str]) -> None:
    from neural_sim.checkpoints import read_config, save_density
    from neural_sim.hub import resolve_checkpoint
    from neural_sim.pipeline.card import write_card
    from neural_sim.pipeline.density_fit import DensityFitConfig, fit_density

    _set_threads(args.threads)
    folder = resolve_checkpoint(args.checkpoint)
    config = read_config(folder)
    dataset = _training_data(folder, config)
    fit_config = DensityFitConfig(kind=args.kind, transforms=args.transforms, hidden=tuple(args.hidden),
                                  iterations=args.iterations, seed=args.seed)
    density = fit_density(dataset, config.simulator, fit_config, command=_command_line(argv), progress=True)
    config = save_density(folder, density)
    write_card(folder, config)
    assert config.density is not None
    print(f"wrote {folder}/density.safetensors (c={config.density.c:.3f}, k={config.density.k:.3f})")


def _cmd_fit_domain(args: argparse.Namespace, argv: Sequence[str]) -> None:
    import dataclasses

    from neural_sim.checkpoints import read_config, write_config
    from neural_sim.hub import resolve_checkpoint
    from neural_sim.pipeline.card import write_card
    from neural_sim.pipeline.collect import collect
    from neural_sim.pipeline.domain import fit_domain
    from neural_sim.robots import data_source

    folder = resolve_checkpoint(args.checkpoint)
    config = read_config(folder)
    if config.training.get("data", {}).get("seed") == args.seed:
        raise NeuralSimError(f"--seed {args.seed} is the seed of this checkpoint's training data; the held-out "
                             f"data needs another (e.g. --seed {args.seed + 1})")
    dataset = _training_data(folder, config)
    source = data_source(config.robot, folder)
    held_out = {"random": collect(source, args.held_out_sequences, 1000, args.seed, progress=True)}
    if args.agent is not None:  # where a trained agent goes, which random actions may not reach
        task = args.task or config.robot.default_task
        held_out["agent"] = collect(source, args.held_out_sequences, 1000, args.seed, task, progress=True,
                                    agents=[(_collection_agent(args.agent, source, task), args.held_out_sequences)])
    domain = fit_domain(dataset, config.simulator.layout, held_out, args.margin, command=_command_line(argv))
    config = dataclasses.replace(config, domain=domain)
    write_config(folder, config)
    write_card(folder, config)
    for name, report in domain.fit["held_out"].items():
        data = report["data"]
        print(f"held-out data, {name} actions: {data['sequences']} sequences x {data['steps']} steps, "
              f"seed {data['seed']}")
        print(f"{'margin':>7} {'steps cut':>10} {'sequences cut':>14}  dimensions most often outside")
        for margin, row in report["cuts"].items():
            print(f"{margin:>7} {row['steps']:>10.2e} {row['sequences']:>14.3f}  {', '.join(row['dims'])}")
    print(f"wrote the data domain (margin {domain.margin:g}, {len(domain.dims)} checked dimensions) into "
          f"{folder}/config.json")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"robot": config.robot.name, "margin": domain.margin, **domain.fit},
                                        indent=1) + "\n")


def _cmd_benchmark_density(args: argparse.Namespace, argv: Sequence[str]) -> None:
    from neural_sim.hub import resolve_checkpoint
    from neural_sim.pipeline.benchmark import write_benchmark
    from neural_sim.pipeline.density_benchmark import benchmark_density

    _set_threads(args.threads)
    folder = resolve_checkpoint(args.checkpoint)
    results = benchmark_density(folder, args.sequences, args.seed, args.rows, _command_line(argv))
    print(f"flow: {results['flow']}")
    for name, value in results["auroc"].items():
        print(f"AUROC in-distribution vs {name}: {value:.4f}")
    print(f"Spearman(penalty, one-step error): {results['spearman_penalty_vs_one_step_error']:.3f}")
    cost = results["step_cost"]
    print(f"env step: {cost['off_ms']:.3f} ms off, {cost['on_ms']:.3f} ms on (+{100 * cost['overhead']:.0f}%)")
    batched = cost["batched"]
    print(f"batched step, {batched['num_envs']} envs: {batched['off_ms']:.2f} ms off, {batched['on_ms']:.2f} ms on "
          f"(+{100 * batched['overhead']:.0f}%)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.write:
        write_benchmark(folder, {"density": results})
        print(f"wrote the figures into {folder}/config.json and its model card")


def _cmd_soak(args: argparse.Namespace, argv: Sequence[str]) -> None:
    import gymnasium as gym

    from neural_sim.envs.registration import registered_ids
    from neural_sim.pipeline.soak import soak

    _set_threads(args.threads)
    if args.env_id not in gym.registry:
        raise NeuralSimError(f"unknown env id {args.env_id!r}; registered: {registered_ids()}")
    try:
        reports = [soak(args.env_id, args.steps, n, args.seed, args.max_episode_steps) for n in args.num_envs]
    except ValueError as error:
        raise NeuralSimError(str(error)) from error
    print(f"{'envs':>6} {'env-steps':>11} {'memory MiB start/end':>22} {'ms/env-step first/last 10%':>28} "
          f"{'episodes':>9} {'out of domain':>14} {'divergences':>12} {'passed':>7}")
    for r in reports:
        memory, step = r["memory_mib"], r["step_ms"]
        print(f"{r['num_envs']:>6} {r['env_steps']:>11,} {memory['after_warm_up']:>10.0f} / {memory['end']:<9.0f} "
              f"{step['first_10pct']:>13.4f} / {step['last_10pct']:<12.4f} {r['episodes']:>9,} "
              f"{r['out_of_domain_truncations']:>14,} {len(r['divergences']):>12} {r['passed']!s:>7}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"command": _command_line(argv), "runs": reports}, indent=1) + "\n")


def _cmd_bench_speed(args: argparse.Namespace, argv: Sequence[str]) -> None:
    import gymnasium as gym

    from neural_sim.checkpoints import read_config
    from neural_sim.envs.ids import mirrored_id
    from neural_sim.envs.registration import registered_ids
    from neural_sim.hub import resolve_checkpoint
    from neural_sim.pipeline.speed import bench_speed

    _set_threads(args.threads)
    env_ids = args.env_ids or [i for i in registered_ids() if i.split("/")[1][0].isupper()]  # the short ids
    results = []
    for env_id in env_ids:
        if env_id not in gym.registry:
            raise NeuralSimError(f"unknown env id {env_id!r}; registered: {registered_ids()}")
        spec = gym.spec(env_id)
        robot = read_config(resolve_checkpoint(spec.kwargs["checkpoint"])).robot
        mirror = mirrored_id(robot, spec.kwargs["task"])
        result = bench_speed(env_id, mirror, tuple(args.batch_sizes), args.repeats,
                             include_shimmy_vector=not args.no_shimmy_vector, shimmy_max_envs=args.shimmy_max_envs,
                             include_envpool=not args.no_envpool, envpool_max_envs=args.envpool_max_envs,
                             command=_command_line(argv), bfloat16=args.bfloat16)
        results.append(result)
        single = result["single_env_ms"]
        print(f"{env_id}: step {single['neural']:.3f} ms (shimmy {mirror}: {single['shimmy']:.3f} ms); "
              f"SAC update {result['sac_update_ms']:.2f} ms = {result['sac_update_over_neural_step']:.1f} steps")
        for n, row in result["batched"].items():
            shimmy_rate = row["shimmy_sync_steps_per_s"]
            versus = f", shimmy sync {shimmy_rate:,.0f} (x{row['ratio']:.1f})" if shimmy_rate else ", shimmy not run"
            if row.get("envpool_steps_per_s"):
                versus += (f", EnvPool {result['envpool_id']} {row['envpool_steps_per_s']:,.0f} "
                           f"(x{row['neural_over_envpool']:.2f}); MiB per env {row['neural_mib_per_env']:.3f} "
                           f"vs EnvPool {row['envpool_mib_per_env']:.3f}")
            if row.get("neural_bfloat16_steps_per_s"):
                versus += f"; bfloat16 {row['neural_bfloat16_steps_per_s']:,.0f}"
            print(f"  N={n:>5}: {row['neural_steps_per_s']:,.0f} env-steps/s{versus}")
        for n, rate in result["gpu_steps_per_s"].items():
            print(f"  GPU N={n}: {rate:,.0f} env-steps/s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


def _cmd_info(args: argparse.Namespace, argv: Sequence[str]) -> None:
    from neural_sim.checkpoints import ABLATION_DIR, CONFIG_FILE, read_config
    from neural_sim.envs.ids import env_ids
    from neural_sim.hub import resolve_checkpoint
    from neural_sim.model.config import to_dict

    folder = resolve_checkpoint(args.checkpoint, args.revision)
    config = read_config(folder)
    summary: dict[str, Any] = {
        "path": str(folder),
        "robot": to_dict(config.robot),
        "env_ids": env_ids(config.robot),
        "layout": to_dict(config.simulator.layout),
        "architecture": config.simulator.model.architecture,
        "integrator": to_dict(config.simulator.integrator),
        "trusted_horizon": config.trusted_horizon,
        "default_episode_steps": config.default_episode_steps,
        "episode_length_rule": {k: v for k, v in config.episode_length.items()
                                if k in ("steps", "task", "policy", "tolerance", "command")},
        "density": config.density is not None,
        "ablation": (read_config(folder / ABLATION_DIR).simulator.model.architecture
                     if (folder / ABLATION_DIR / CONFIG_FILE).is_file() else None),
        "benchmark": config.benchmark,
        "training": {k: v for k, v in config.training.items() if k != "history"},
        "domain": to_dict(config.domain) if config.domain is not None else None,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    robot, layout = config.robot, config.simulator.layout
    integrator = config.simulator.integrator
    lines = [
        f"{robot.name}: a learned {robot.source} {robot.domain!r} ({folder})",
        f"  env ids       {', '.join(summary['env_ids'])}",
        f"  state         nq {layout.nq}, nv {layout.nv}, nu {layout.nu}, dt {layout.dt} s",
        *(f"  rotation      {joint.describe()}" for joint in layout.rotation_joints),
        *([f"  activations   {layout.na} actuator activations ({', '.join(sorted(set(layout.activations.kinds)))}), "
           "model inputs beside the action"] if layout.activations is not None else []),
        f"  model         {summary['architecture']}, {integrator.method}"
        + (f" x{integrator.substeps}" if integrator.method != "dopri5" else "")
        + (f"; ablation: {summary['ablation']}" if summary["ablation"] else ""),
    ]
    horizons = config.benchmark.get("horizons", {})
    if horizons:
        lines.append("  accuracy      " + ", ".join(f"H={h} {row['mse']:.3g}" for h, row in horizons.items())
                     + " (open-loop MSE, held-out random actions)")
    rule = config.episode_length
    lines.append(f"  episodes      {config.default_episode_steps} steps ("
                 + (f"task-reward rule on {rule.get('task')}" if rule else "the trusted horizon")
                 + f"); trusted horizon {config.trusted_horizon} steps")
    if config.domain is not None:
        lines.append(f"  data domain   {len(config.domain.dims)} checked dimensions, margin {config.domain.margin:g}")
    lines.append(f"  density       {'fitted (density_penalty=w)' if config.density is not None else 'none'}")
    training = config.training
    lines.append(f"  trained by    {training.get('command', 'not recorded')} (seed {training.get('seed')}, "
                 f"{training.get('samples', 0):,} samples, {training.get('wall_time_s', 0)} s)")
    lines.append("  (all fields: --json)")
    print("\n".join(lines))


def _cmd_benchmark_task(args: argparse.Namespace, argv: Sequence[str]) -> None:
    from neural_sim.checkpoints import read_config
    from neural_sim.hub import resolve_checkpoint
    from neural_sim.pipeline.card import sequences_driven_by
    from neural_sim.pipeline.task_fidelity import task_fidelity, write_episode_length
    from neural_sim.robots import data_source

    _set_threads(args.threads)
    folder = resolve_checkpoint(args.checkpoint)
    config = read_config(folder)
    task = args.task or config.robot.default_task
    policy, described = None, "Poisson random actions (the training data's protocol)"
    if args.agent is not None:
        agent = _collection_agent(args.agent, data_source(config.robot, folder), task)
        policy = agent.act
        described = f"the stochastic policy of the SB3 agent {args.agent.name}"
        driven = sequences_driven_by(config.training, agent.sha256)
        if driven:
            described += f", which also drove {driven} of the training data's sequences: not an independent check"
    fidelity = task_fidelity(folder, task, args.episodes, args.steps, args.seed, policy)
    summary = {"task": task, "policy": described, **fidelity.summary(), "command": _command_line(argv)}
    print(f"{config.robot.name} {task}, {summary['episodes']} real episodes driven by {described}")
    print(f"{'steps':>6} {'return error/step':>18} {'reward error':>13} {'state MSE':>11}")
    for h in summary["return_error_per_step"]:
        print(f"{h:>6} {summary['return_error_per_step'][h]:>18.4f} {summary['reward_error'][h]:>13.4f} "
              f"{summary['state_mse'][h]:>11.4g}")
    print(f"real return {summary['real_return_mean']:.1f}, model open loop {summary['model_return_mean']:.1f}; "
          f"{summary['diverged']} diverged; reward range {summary['reward_range']:.3g}")
    if "closed_loop_return_mean" in summary:
        errors = summary["closed_loop_return_error_per_step"]
        print(f"closed loop (the policy acting in the model): return {summary['closed_loop_return_mean']:.1f}; "
              "return error per step " + ", ".join(f"{h} steps {e:.4f}" for h, e in errors.items()))
    print(f"episode length by the rule ({'closed-loop' if policy is not None else 'open-loop'} return error per step "
          f"<= {summary['tolerance']:g} x reward range): "
          f"{summary['episode_length']} steps")
    if policy is None:
        print("note: random actions seldom earn a locomotion task's reward, so its error stays small whatever the "
              "model does; give --agent (a trained agent) for the episodes agents have")
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    if args.write:
        write_episode_length(folder, fidelity, task, described, _command_line(argv))
        print(f"default episode length of {folder} set to {fidelity.episode_length} steps")


def _cmd_download(args: argparse.Namespace, argv: Sequence[str]) -> None:
    from neural_sim.checkpoints import read_config
    from neural_sim.envs.ids import env_ids
    from neural_sim.hub import download

    folder = download(args.repo_id, args.revision, local_files_only=args.local_files_only)
    ids = env_ids(read_config(folder).robot)
    print(f"{args.repo_id}: {folder}")
    print(f"use: neural_sim.register_checkpoint({args.repo_id!r}) registers {', '.join(ids)}")


def _cmd_push(args: argparse.Namespace, argv: Sequence[str]) -> None:
    from neural_sim.pipeline.publish import push

    url = push(args.folder, args.repo_id, private=args.private, revision=args.revision,
               commit_message=args.message)
    print(f"pushed {args.folder} to {args.repo_id}: {url}")


def _cmd_list(args: argparse.Namespace, argv: Sequence[str]) -> None:
    from neural_sim.checkpoints import read_config, shipped_checkpoints_dir, shipped_names
    from neural_sim.envs.ids import env_ids
    from neural_sim.hub import cached_checkpoints

    rows = [("shipped", name, read_config(shipped_checkpoints_dir() / name)) for name in shipped_names()]
    rows += [("hub cache", f"{c.repo_id}@{c.revision}", c.config) for c in cached_checkpoints()]
    if args.json:
        print(json.dumps([{"where": where, "checkpoint": name, "robot": config.robot.name,
                           "env_ids": env_ids(config.robot)} for where, name, config in rows], indent=2))
        return
    for where, name, config in rows:
        robot = f"{config.robot.source}/{config.robot.domain}"
        print(f"{where:<10} {name:<32} {robot:<32} {' '.join(env_ids(config.robot))}")


def _cmd_benchmark(args: argparse.Namespace, argv: Sequence[str]) -> None:
    from neural_sim.hub import resolve_checkpoint
    from neural_sim.pipeline.benchmark import PLOT_FILE, benchmark, plot_benchmark, write_benchmark
    from neural_sim.pipeline.card import lyapunov_summary

    _set_threads(args.threads)
    if args.write and args.precision != "float32":
        raise NeuralSimError("--write stores the float32 figures a card shows; measure --precision without it")
    folder = resolve_checkpoint(args.checkpoint)
    results = benchmark(
        folder, args.sequences, args.seed, tuple(args.horizons), args.windows, _command_line(argv), progress=True,
        ablation=args.ablation, lyapunov=not args.no_lyapunov, lyapunov_trajectories=args.lyapunov_trajectories,
        lyapunov_steps=args.lyapunov_steps, precision=args.precision,
    )
    ablation = results.get("ablation")
    columns = ["model MSE", f"fast path ({args.precision})" if args.precision != "float32" else "fast path (env) MSE",
               "hold-last-state"] + (
        [f"ablation ({ablation['architecture']})"] if ablation else [])
    print(f"{'H':>5} " + " ".join(f"{c:>20}" for c in columns))
    for h, row in results["horizons"].items():
        values = [row["mse"], row["fast_path_mse"], row["hold_last_state_mse"]] + (
            [row["ablation_mse"]] if ablation else [])
        print(f"{h:>5} " + " ".join(f"{v:>20.4g}" for v in values))
    if ablation:
        print(f"ablation: {ablation['command']} ({ablation['wall_time_s']} s)")
    else:
        print("ablation: none (the checkpoint has no ablation/ folder; --ablation names one)")
    if "lyapunov" in results:
        lyapunov = results["lyapunov"]
        print(f"largest Lyapunov exponent (1/s): {lyapunov_summary(lyapunov)}")
    elif "lyapunov_skipped" in results:
        print(f"largest Lyapunov exponent: {results['lyapunov_skipped']}")
    for horizon, row in results["horizons"].items():
        if "orientation_error_deg" in row:
            held = row["hold_last_state_orientation_error_deg"]
            angles = ", ".join(f"{joint} {deg:.2f} (hold-last-state {held[joint]:.2f})"
                               for joint, deg in row["orientation_error_deg"].items())
            print(f"orientation error H={horizon} (degrees): {angles}")
    print(f"model cost: {results['ms_per_step_batch1']:.3f} ms per step at batch 1 (torchdiffeq), "
          f"{results['fast_ms_per_step_batch1']:.3f} ms (traced, as environments step)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.plot:
        plot_benchmark(results, args.plot, title=f"neural-sim benchmark {args.checkpoint}")
        print(f"wrote {args.plot}")
    if args.write:
        write_benchmark(folder, results)
        print(f"wrote the figures into {folder}/config.json, {PLOT_FILE} and its model card")


def _cmd_rl(args: argparse.Namespace, argv: Sequence[str]) -> None:
    from neural_sim.rl import zero_shot

    _set_threads(args.threads)
    results = zero_shot(
        args.env_id, args.algo, args.steps, tuple(args.seeds), args.eval_every, args.eval_episodes,
        args.density_penalty, reference=not args.no_reference, neural_sim=not args.reference_only,
        reset_from=args.reset_from, max_episode_steps=args.max_episode_steps, device=args.device, out=args.out,
        command=_command_line(argv), progress=not args.no_progress, checkpoint=args.checkpoint,
    )
    for variant, row in results["summary"].items():
        if isinstance(row, dict):
            print(f"{variant}: final real return {row['final']:.1f} (mean of seeds {row['seeds']}), "
                  f"best {row['best']:.1f}")
    ratio = results["summary"].get("final_ratio_neural_over_real")
    if ratio is not None:
        print(f"NeuralSim-trained / real-trained final return: {ratio:.2f}")
    print(f"wrote {args.out}/results.json and {args.out}/learning_curve.png")


def _cmd_few_shot(args: argparse.Namespace, argv: Sequence[str]) -> None:
    from neural_sim.rl import few_shot

    _set_threads(args.threads)
    results = few_shot(
        args.env_id, args.reference, args.algo, args.steps, tuple(args.seeds), args.every, args.real_steps,
        args.finetune_iterations, args.density_penalty, device=args.device, out=args.out,
        command=_command_line(argv), progress=not args.no_progress,
    )
    summary = results["summary"]
    if summary["target_return"] is None:
        print(f"target: none yet, {args.reference} has no finished real-env run; rerun this command once it has "
              "(finished seeds are kept)")
    else:
        print(f"target: {summary['target_return']:.1f}, the real-trained agent's return after "
              f"{summary['reference_real_samples']:,} real samples (seeds {summary['reference_seeds']})")
    if "final" in summary:
        print(f"few-shot (seeds {summary['seeds']}): final real return {summary['final']:.1f} after "
              f"{summary['real_samples'][-1]:,} real samples, best {summary['best']:.1f}")
    needed = summary.get("real_samples_to_target")
    if summary.get("best_window_return") is not None:
        needed_best = summary["reference_real_samples_to_best_window"]
        print(f"few-shot best (over 3 evaluations): {summary['best_window_return']:.1f} with "
              f"{summary['real_samples_to_best_window']:,} real samples; "
              + (f"the real-trained agents needed {needed_best:,} ({summary['fewer_real_samples_at_best']:.1f}x)"
                 if needed_best else "the real-trained agents did not reach it"))
    if summary.get("reference_at_final_real_samples") is not None:
        print(f"real-trained agents over the same real samples: {summary['reference_at_final_real_samples']:.1f}")
    if summary["target_return"] is not None:
        print(f"reached the target with {needed:,} real samples: {summary['fewer_real_samples']:.1f}x fewer"
              if needed else "the few-shot agents did not reach the target")
    print(f"wrote {args.out}/results.json and {args.out}/learning_curve.png")


def _add_agent_run_arguments(p: argparse.ArgumentParser) -> None:
    """The options ``rl`` and ``few-shot`` share: where agents run and results go."""
    p.add_argument("--device", default="auto", help="torch device of the agent (default: cuda if present)")
    p.add_argument("--out", type=Path, required=True, help="results folder (finished runs there are kept)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``neural-sim``."""
    parser = argparse.ArgumentParser(prog="neural-sim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("collect", help="collect random-action (Poisson) data from the real simulator")
    p.add_argument("robot", help="dm_control robot (acrobot, cheetah, ...) or Gymnasium MuJoCo id (HalfCheetah-v5)")
    p.add_argument("--sequences", type=int, default=100, help="number of sequences (default 100)")
    p.add_argument("--steps", type=int, default=1000, help="control steps per sequence (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of initial states and actions (default 0)")
    p.add_argument("--task", default=None, help="stock task giving initial states (default: the robot's default)")
    p.add_argument("--agent", type=Path, nargs="+", default=[],
                   help="SB3 agent .zip files from `neural-sim rl` whose stochastic policies drive the first "
                   "sequences, each in turn (data where agents go)")
    p.add_argument("--agent-sequences", type=int, nargs="+", default=None,
                   help="sequences each agent drives, in --agent order (default: half of all, shared evenly)")
    p.add_argument("--out", type=Path, required=True, help="output .safetensors file")
    p.set_defaults(func=_cmd_collect)

    p = sub.add_parser("train", help="train a simulator and write a checkpoint folder",
                       description="Train a simulator. Settings come from --recipe (the shipped per-robot "
                       "recipes are in neural_sim/recipes/) and the options below, which override it; "
                       "without a recipe, the defaults shown apply.")
    p.add_argument("robot", nargs="?", default=None,
                   help="dm_control robot (acrobot, cheetah, ...), Gymnasium MuJoCo id (HalfCheetah-v5) or MJCF "
                   "file (optional with --recipe)")
    p.add_argument("--recipe", default=None, help="shipped recipe name (e.g. hopper) or recipe JSON file")
    p.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    p.add_argument("--data", type=Path, default=None, help="data set from `neural-sim collect` (default: collect now)")
    p.add_argument("--sequences", type=int, default=None, help="sequences to collect without --data (default 500)")
    p.add_argument("--steps", type=int, default=None, help="steps per collected sequence (default 1000)")
    p.add_argument("--data-seed", type=int, default=None, help="seed of the collected data (default 0)")
    p.add_argument("--agent", type=Path, nargs="+", default=[],
                   help="the trained agents (SB3 .zip) a recipe's agent-driven sequences need, in its order")
    p.add_argument("--architecture", choices=["mosim", "residual"], default=None, help="default mosim")
    p.add_argument("--integrator", choices=["rk4", "dopri5", "euler"], default=None,
                   help="default rk4; euler is the discrete-time head (semi-implicit Euler, MuJoCo's default)")
    p.add_argument("--substeps", type=int, default=None,
                   help="rk4 or euler substeps per control step (default 1)")
    p.add_argument("--iterations", type=int, default=None, help="end-to-end iterations (default 20000)")
    p.add_argument("--stages", type=int, nargs="+", default=None,
                   help="multi-stage training: iterations of the predictor, then of each corrector")
    p.add_argument("--batch-size", type=int, default=None, help="default 512")
    p.add_argument("--lr", type=float, default=None, help="Adam's initial learning rate (default 1e-3)")
    p.add_argument("--seed", type=int, default=None, help="training seed (default 0)")
    p.add_argument("--eval-every", type=int, default=None, help="iterations between validations (default 1000)")
    p.add_argument("--rollout-steps", type=int, default=None,
                   help="open-loop steps the loss unrolls (default 1: the one-step loss)")
    p.add_argument("--init-from", type=Path, default=None,
                   help="checkpoint folder to fine-tune (same robot and architecture): start from its weights")
    p.add_argument("--teacher", type=Path, default=None,
                   help="checkpoint folder of the same robot whose predictions are the targets (distillation, e.g. "
                   "a one-evaluation euler student of an rk4 model); the best model is still chosen on real data")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("benchmark", help="prediction accuracy on fresh held-out data (the MoSim paper's protocol)")
    p.add_argument("checkpoint", help=CHECKPOINT_HELP)
    p.add_argument("--sequences", type=int, default=20, help="test sequences of 1000 steps (default 20)")
    p.add_argument("--seed", type=int, default=1, help="test data seed, not the training one (default 1)")
    p.add_argument("--horizons", type=int, nargs="+", default=[3, 16, 100])
    p.add_argument("--windows", type=int, default=50, help="windows per sequence (default 50)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--ablation", type=Path, default=None,
                   help="checkpoint of the other architecture to compare (default: the checkpoint's ablation/)")
    p.add_argument("--no-lyapunov", action="store_true", help="skip the Lyapunov exponent check")
    p.add_argument("--lyapunov-trajectories", type=int, default=60,
                   help="held-out sequences the Lyapunov exponent averages over (default 60)")
    p.add_argument("--lyapunov-steps", type=int, default=2000,
                   help="steps of each, from step 100 (default 2000)")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    p.add_argument("--plot", type=Path, default=None, help="also write the error plot to this PNG file")
    p.add_argument("--precision", choices=["float32", "bfloat16"], default="float32",
                   help="precision of the fast path (the environments' step) whose column is measured")
    p.add_argument("--write", action="store_true",
                   help="store the figures in the checkpoint, its card and benchmark.png")
    p.set_defaults(func=_cmd_benchmark)

    p = sub.add_parser("fit-density", help="fit and calibrate the density model of a checkpoint")
    p.add_argument("checkpoint", help=CHECKPOINT_HELP)
    p.add_argument("--kind", choices=["nsf", "maf"], default="maf",
                   help="zuko flow (default maf; see benchmarks/compare_density.py)")
    p.add_argument("--transforms", type=int, default=1, help="flow transforms (default 1: the cheapest env step)")
    p.add_argument("--hidden", type=int, nargs="+", default=[64, 64], help="conditioner hidden widths (default 64 64)")
    p.add_argument("--iterations", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.set_defaults(func=_cmd_fit_density)

    p = sub.add_parser("fit-domain", help="measure the state region a checkpoint's data covers; episodes that "
                       "leave it are truncated")
    p.add_argument("checkpoint", help=CHECKPOINT_HELP)
    p.add_argument("--margin", type=float, default=DEFAULT_MARGIN,
                   help=f"widening on each side, a fraction of each dimension's range (default {DEFAULT_MARGIN})")
    p.add_argument("--held-out-sequences", type=int, default=100,
                   help="1000-step random-action sequences the margin is checked on")
    p.add_argument("--seed", type=int, default=1, help="seed of the held-out data (not the training data's)")
    p.add_argument("--agent", type=Path, default=None,
                   help="also check the margin on held-out episodes of this SB3 agent (.zip from `neural-sim rl`)")
    p.add_argument("--task", default=None, help="the agent's task (default: the robot's default task)")
    p.add_argument("--json", type=Path, default=None, help="also write the held-out report to this JSON file")
    p.set_defaults(func=_cmd_fit_domain)

    p = sub.add_parser("benchmark-density", help="separation, error prediction and cost of the density penalty")
    p.add_argument("checkpoint", help=CHECKPOINT_HELP)
    p.add_argument("--sequences", type=int, default=10, help="held-out random-action sequences (default 10)")
    p.add_argument("--seed", type=int, default=1, help="held-out data seed, not the training one (default 1)")
    p.add_argument("--rows", type=int, default=5000, help="rows per evaluation set (default 5000)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    p.add_argument("--write", action="store_true", help="store the figures in the checkpoint and its card")
    p.set_defaults(func=_cmd_benchmark_density)

    p = sub.add_parser("bench-speed", help="env step latency and batched throughput next to shimmy's dm_control")
    p.add_argument("env_ids", nargs="*", help="NeuralSim ids (default: every shipped short id)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 256, 4096])
    p.add_argument("--bfloat16", action="store_true",
                   help="also measure the batched env with precision='bfloat16' (hidden layers in bfloat16)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per figure; the median is reported")
    p.add_argument("--no-shimmy-vector", action="store_true", help="skip shimmy SyncVectorEnv entirely")
    p.add_argument("--no-envpool", action="store_true",
                   help="skip EnvPool (measured when installed: pip install 'neural-sim[bench]')")
    p.add_argument("--envpool-max-envs", type=int, default=1024,
                   help="largest N for EnvPool (about 12 MB per env for cheetah-run: N=4096 exhausts 24 GB)")
    p.add_argument("--shimmy-max-envs", type=int, default=1024,
                   help="largest N for shimmy SyncVectorEnv (each dm_control env holds ~6 MB; default 1024)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    p.set_defaults(func=_cmd_bench_speed)

    p = sub.add_parser("soak", help="step an env a million times: memory, step time and divergences from start "
                       "to end")
    p.add_argument("env_id", nargs="?", default="NeuralSim/Cheetah-v0")
    p.add_argument("--steps", type=int, default=1_000_000, help="env-steps per run (all envs together)")
    p.add_argument("--num-envs", type=int, nargs="+", default=[1, 1024],
                   help="one run per value: 1 = gymnasium.make, more = the batched env (default 1 1024)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-episode-steps", type=int, default=None,
                   help="episode length (default: the id's); shorter episodes reset the envs more often")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    p.set_defaults(func=_cmd_soak)

    p = sub.add_parser("benchmark-task", help="predicted rewards along real task episodes; sets the episode length",
                       description="Real episodes from the task's own initial states, driven by Poisson random "
                       "actions or a trained agent, replayed open loop in the model (and, with an agent, the agent "
                       "acting in the model); the task's reward on all. The default episode length it sets is the "
                       "longest horizon whose return error per step stays within 10 percent of the reward range "
                       "(closed loop when an agent drives).")
    p.add_argument("checkpoint", help=CHECKPOINT_HELP)
    p.add_argument("--task", default=None, help="stock task (default: the checkpoint's default task)")
    p.add_argument("--episodes", type=int, default=20, help="real episodes (default 20)")
    p.add_argument("--steps", type=int, default=None, help="steps per episode (default: the stock episode)")
    p.add_argument("--seed", type=int, default=1, help="seed of initial states and random actions (default 1)")
    p.add_argument("--agent", type=Path, default=None,
                   help="an SB3 agent .zip written by `neural-sim rl` to drive the episodes (default: random actions)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    p.add_argument("--write", action="store_true",
                   help="make the rule's episode length the checkpoint's default and update its card")
    p.set_defaults(func=_cmd_benchmark_task)

    p = sub.add_parser("info", help="describe a checkpoint: robot, env ids, dims, accuracy, provenance")
    p.add_argument("checkpoint", help=CHECKPOINT_HELP)
    p.add_argument("--revision", default=None, help="Hub branch, tag or commit (Hub repo ids only)")
    p.add_argument("--json", action="store_true", help="every field, as JSON")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("download", help="download a Hub checkpoint into the Hugging Face cache")
    p.add_argument("repo_id", help="Hub repo id, owner/name")
    p.add_argument("--revision", default=None, help="branch, tag or commit (default: the default branch)")
    p.add_argument("--local-files-only", action="store_true", help="only check the cache, no network")
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser("push", help="publish a checkpoint folder on the Hub (creates the repo, writes the card)")
    p.add_argument("folder", type=Path, help="checkpoint folder")
    p.add_argument("repo_id", help="Hub repo id, owner/name")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--revision", default=None, help="branch to commit to (created if missing)")
    p.add_argument("--message", default=None, help="commit message")
    p.set_defaults(func=_cmd_push)

    p = sub.add_parser("rl", help="zero-shot RL: train an agent in a NeuralSim env, score it in the real env")
    p.add_argument("env_id", help="NeuralSim env id, e.g. NeuralSim/Reacher-v0")
    p.add_argument("--algo", choices=["sac", "tqc"], default="sac")
    p.add_argument("--steps", type=int, default=100_000, help="agent steps per run (default 100000)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one run per seed (default 0 1 2)")
    p.add_argument("--eval-every", type=int, default=10_000, help="agent steps between real-env evaluations")
    p.add_argument("--eval-episodes", type=int, default=10, help="full-length real episodes per evaluation")
    p.add_argument("--density-penalty", type=float, default=0.0, help="density penalty weight (default 0: off)")
    only = p.add_mutually_exclusive_group()
    only.add_argument("--no-reference", action="store_true", help="skip the agent trained on the real env")
    only.add_argument("--reference-only", action="store_true",
                      help="train only the agent on the real env (e.g. a longer reference for `few-shot`)")
    p.add_argument("--reset-from", choices=["buffer", "task"], default="buffer",
                   help="where NeuralSim episodes start: the checkpoint's real-buffer states (default) or the "
                   "stock task's initial states")
    p.add_argument("--max-episode-steps", type=int, default=None,
                   help="NeuralSim episode length (default: the id's, set by the checkpoint's reward rule or "
                   "trusted horizon; see `neural-sim info`)")
    p.add_argument("--checkpoint", default=None,
                   help="train in this checkpoint (folder or Hub repo id, same robot) instead of the id's own; the "
                   "id still names the task and the real env")
    _add_agent_run_arguments(p)
    p.set_defaults(func=_cmd_rl)

    p = sub.add_parser("few-shot", help="few-shot RL: real-sample efficiency of the paper's fine-tuning loop",
                       description="Train an agent in a NeuralSim env with the few-shot loop (real steps with "
                       "the current policy, model fine-tuned on them, resets from them) and count the real "
                       "samples it needs to reach the final return of the agents trained on the real env in "
                       "a `neural-sim rl` results folder.")
    p.add_argument("env_id", help="NeuralSim env id, e.g. NeuralSim/Cheetah-v0")
    p.add_argument("--reference", type=Path, required=True,
                   help="`neural-sim rl` --out folder whose real-env runs are the reference (same --algo)")
    p.add_argument("--algo", choices=["sac", "tqc"], default="sac")
    p.add_argument("--steps", type=int, default=50_000, help="agent steps in the learned simulator per run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one run per seed (default 0 1 2)")
    p.add_argument("--every", type=int, default=5_000, help="agent steps between real collections")
    p.add_argument("--real-steps", type=int, default=1_000, help="real-env steps per collection")
    p.add_argument("--finetune-iterations", type=int, default=200, help="fine-tuning steps per collection")
    p.add_argument("--density-penalty", type=float, default=0.0, help="density penalty weight (default 0: off)")
    _add_agent_run_arguments(p)
    p.set_defaults(func=_cmd_few_shot)

    p = sub.add_parser("list", help="shipped and cached checkpoints with their env ids")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``neural-sim`` console command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        args.func(args, argv)
    except NeuralSimError as error:
        print(f"neural-sim: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
