"""Shape of the learning curves in ``neural-sim rl`` results: best and final returns over
windows of consecutive evaluations, and how widely one evaluation's episodes spread.

The README's cheetah-run 300k comparison (with and without the density penalty) quotes
these figures, and the README's per-seed reacher returns come from the same command on the
reacher files (``--variant real`` for the real-trained runs):

    python benchmarks/rl_curve_stats.py benchmarks/results/rl/cheetah-run-300k-neural.json \\
        benchmarks/results/rl/cheetah-run-300k-density.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from neural_sim.rl.runs import NEURAL, REAL, last_evaluations_mean, mean_curve, window_means


def curve_stats(results: dict, variant: str = NEURAL, window: int = 3, spread_over: int = 10) -> dict:
    """Figures of one variant's mean curve over seeds.

    :param window: consecutive evaluations averaged for the "window" figures.
    :param spread_over: last evaluations over which the within-evaluation std is averaged.
    """
    runs = list(results["runs"].get(variant, {}).values())
    if not runs:
        raise SystemExit(f"no {variant} runs in these results")
    steps, curve = mean_curve(runs)
    windows = window_means(curve, window)
    best_window = max(windows)
    best_single = max(curve)
    return {
        "seeds": sorted(int(s) for s in results["runs"][variant]),
        # Per seed, as the README's RL table scores it: the mean of the last ``window`` evaluations.
        "last_window_by_seed": {seed: round(last_evaluations_mean(run, window), 1)
                                for seed, run in sorted(results["runs"][variant].items(), key=lambda kv: int(kv[0]))},
        "best_single": round(best_single, 1), "best_single_at": steps[curve.index(best_single)],
        "best_window": round(best_window, 1), "best_window_ends_at": steps[windows.index(best_window) + window - 1],
        "final_window": round(windows[-1], 1),
        "final_over_best_window": round(windows[-1] / best_window, 3),
        "final_window_over_best_single": round(windows[-1] / best_single, 3),
        "within_evaluation_std": round(statistics.mean(
            statistics.mean(e["std"] for e in run["evaluations"][-spread_over:]) for run in runs), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="results.json files of `neural-sim rl`")
    parser.add_argument("--variant", default=NEURAL, choices=(NEURAL, REAL),
                        help="the agents trained in NeuralSim (default) or in the real env")
    parser.add_argument("--window", type=int, default=3)
    args = parser.parse_args()
    for path in args.results:
        print(path, json.dumps(curve_stats(json.loads(path.read_text()), args.variant, args.window)))


if __name__ == "__main__":
    main()
