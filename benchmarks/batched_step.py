"""Batched env throughput with episodes ending, the case where autoreset work shows.

    python benchmarks/batched_step.py NeuralSim/Cheetah-v0 --num-envs 4096 --mode next_step
    python benchmarks/batched_step.py NeuralSim/Walker-v0 --num-envs 64 --mode same_step
    python benchmarks/batched_step.py NeuralSim/Walker-v0 --num-envs 256 --no-native   # the physics-bridge loop

Random actions; the id's own episode length (cheetah 25 steps, so one step in 26 resets
every env under NEXT_STEP). Prints env-steps/s, the median of ``--repeats`` timed runs; run
it against two versions of the package in one session to compare them (timings vary 2x
between machines).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import gymnasium as gym
import numpy as np
import torch

import neural_sim  # noqa: F401  (registers the ids)

MODES = {"next_step": gym.vector.AutoresetMode.NEXT_STEP, "same_step": gym.vector.AutoresetMode.SAME_STEP}


def throughput(env_id: str, num_envs: int, mode: str, steps: int, repeats: int, seed: int = 0,
               native: bool = True) -> float:
    """Median env-steps/s over ``repeats`` runs of ``steps`` batched steps (``native=False``: the
    task through the physics-bridge loop even where a torch-native one exists)."""
    env = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                       autoreset_mode=MODES[mode], native_tasks=native)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    low, high = env.single_action_space.low, env.single_action_space.high
    actions = [rng.uniform(low, high, size=(num_envs, len(low))) for _ in range(steps)]
    for action in actions[:10]:  # warm-up: tracing
        env.step(action)
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for action in actions:
            env.step(action)
        rates.append(steps * num_envs / (time.perf_counter() - started))
    env.close()
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("env_id")
    parser.add_argument("--num-envs", type=int, default=4096)
    parser.add_argument("--mode", choices=["next_step", "same_step"], default="next_step")
    parser.add_argument("--steps", type=int, default=104, help="batched steps per timed run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-native", action="store_true", help="the physics-bridge loop instead of native tasks")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rate = throughput(args.env_id, args.num_envs, args.mode, args.steps, args.repeats, native=not args.no_native)
    print(json.dumps({"env_id": args.env_id, "num_envs": args.num_envs, "mode": args.mode, "native": not args.no_native,
                      "env_steps_per_s": round(rate), "threads": args.threads}))


if __name__ == "__main__":
    main()
