"""Which flow should ship as the density model? NSF and MAF (zuko) vs a residual flow (normflows).

Each flow is fitted to a checkpoint's training data (regenerated from its recorded seed)
with the same budget, then scored on the density benchmark's sets (held-out random data,
perturbed states, controller states): AUROCs, Spearman(log p, one-step error), and the
median cost of one log-density evaluation at batch 1 (what an env step pays).

The residual flow (i-ResNet blocks with Lipschitz MLPs, ActNorm, Gaussian base, as in the
MoSim paper) is trained with normflows' stochastic log-det estimator; for scoring, its
log-density is made exact and deterministic by computing each block's log|det(I + J)| from
the full Jacobian (the dimensions are small). Needs the extra: pip install ".[compare]".

    python benchmarks/compare_density.py acrobot pendulum --out benchmarks/results/density_comparison.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

import normflows as nf
import torch

from neural_sim.checkpoints import load_simulator, read_config
from neural_sim.density.model import DensityConfig, DensityModel, feature_size
from neural_sim.hub import resolve_checkpoint
from neural_sim.pipeline.collect import recollect_training_data
from neural_sim.pipeline.density_benchmark import density_figures, evaluation_sets
from neural_sim.pipeline.density_fit import DensityFitConfig, fit_density, transitions


def residual_flow(features: int, blocks: int, width: int) -> nf.NormalizingFlow:
    """i-ResNet flow: blocks of (residual Lipschitz MLP, Lipschitz constant 0.9; ActNorm)."""
    flows: list[nf.flows.Flow] = []
    for _ in range(blocks):
        net = nf.nets.LipschitzMLP([features, width, width, features], lipschitz_const=0.9, init_zeros=True)
        flows += [nf.flows.Residual(net, reduce_memory=True), nf.flows.ActNorm(features)]
    return nf.NormalizingFlow(nf.distributions.DiagGaussian(features, trainable=False), flows)


def exact_log_prob(model: nf.NormalizingFlow, x: torch.Tensor) -> torch.Tensor:
    """Deterministic log p(x): exact log|det(I + J)| of every residual block."""
    z, log_q = x, torch.zeros(len(x))
    eye = torch.eye(x.shape[1])
    for flow in reversed(model.flows):
        if isinstance(flow, nf.flows.Residual):
            net = flow.iresblock.nnet
            # Row k of each sample's Jacobian is the gradient of output k (rows are independent).
            with torch.enable_grad():
                inputs = z.detach().requires_grad_(True)
                outputs = net(inputs)
                jacobian = torch.stack(
                    [torch.autograd.grad(outputs[:, k].sum(), inputs, retain_graph=True)[0]
                     for k in range(x.shape[1])], dim=1)
            log_q = log_q + torch.linalg.slogdet(eye + jacobian).logabsdet
            z = z + outputs.detach()
        else:
            z, log_det = flow.inverse(z)
            log_q = log_q + log_det
    return log_q + model.q0.log_prob(z)


def batch1_cost_ms(log_density, states: torch.Tensor, actions: torch.Tensor, repeats: int = 300) -> float:  # type: ignore[no-untyped-def]
    times = []
    with torch.no_grad():
        for i in range(repeats):
            j = i % len(states)
            s, a = states[j : j + 1], actions[j : j + 1]
            start = time.perf_counter()
            log_density(s, a)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def compare(name: str, iterations: int, rows: int, blocks: int, width: int, seed: int) -> dict[str, object]:
    folder = resolve_checkpoint(name)
    config = read_config(folder)
    simulator = load_simulator(folder, config)
    data = recollect_training_data(config.training)
    sets = evaluation_sets(config, folder, sequences=10, seed=seed, rows=rows)
    probe_s = torch.as_tensor(sets["in_distribution"][0], dtype=torch.float32)
    probe_a = torch.as_tensor(sets["in_distribution"][1], dtype=torch.float32)
    results: dict[str, object] = {}
    for kind in ("nsf", "maf"):
        start = time.time()
        density = fit_density(data, config.simulator, DensityFitConfig(kind=kind, iterations=iterations),
                              log=lambda _: None)
        results[kind] = {
            **density_figures(density.log_density, simulator, sets),
            "fit_s": round(time.time() - start, 1),
            "log_density_ms_batch1": batch1_cost_ms(density.log_density, probe_s, probe_a),
            "parameters": sum(p.numel() for p in density.flow.parameters()),
        }
        print(name, kind, json.dumps(results[kind]))

    # Residual flow on the same standardised features, same iterations and batch size.
    start = time.time()
    torch.manual_seed(0)
    layout, normalisation = config.simulator.layout, config.simulator.normalisation
    size = feature_size(layout, normalisation)
    features_of = DensityModel(layout, normalisation, DensityConfig("nsf", 1, (8,), (0.0,) * size, (1.0,) * size))
    states, actions = transitions(data)
    with torch.no_grad():
        raw = features_of.raw_features(states, actions)
    mean, std = raw.mean(0), raw.std(0).clamp_min(1e-6)
    x = (raw - mean) / std
    model = residual_flow(size, blocks, width)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda i: 0.5 * (1 + math.cos(math.pi * i / iterations)))
    generator = torch.Generator().manual_seed(0)
    for _ in range(iterations):
        loss = model.forward_kld(x[torch.randint(len(x), (1024,), generator=generator)])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        nf.utils.update_lipschitz(model, 1)
    model.eval()

    def residual_log_density(s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            feats = (features_of.raw_features(s, a) - mean) / std
        return torch.cat([exact_log_prob(model, feats[i : i + 2048]).detach() for i in range(0, len(feats), 2048)])

    results["residual"] = {
        **density_figures(residual_log_density, simulator, sets),
        "fit_s": round(time.time() - start, 1),
        "log_density_ms_batch1": batch1_cost_ms(residual_log_density, probe_s, probe_a, repeats=100),
        "parameters": sum(p.numel() for p in model.parameters()),
        "blocks": blocks,
        "width": width,
    }
    print(name, "residual", json.dumps(results["residual"]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", help="shipped names or checkpoint folders")
    parser.add_argument("--iterations", type=int, default=3000, help="training steps of every flow")
    parser.add_argument("--rows", type=int, default=3000, help="rows per evaluation set")
    parser.add_argument("--blocks", type=int, default=8, help="residual-flow blocks")
    parser.add_argument("--width", type=int, default=64, help="residual-flow Lipschitz MLP width")
    parser.add_argument("--seed", type=int, default=1, help="evaluation data seed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {
        "command": "python benchmarks/compare_density.py " + " ".join(__import__("sys").argv[1:]),
        "torch_threads": args.threads,
        "results": {n: compare(n, args.iterations, args.rows, args.blocks, args.width, args.seed)
                    for n in args.checkpoints},
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
