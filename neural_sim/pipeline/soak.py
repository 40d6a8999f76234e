"""Soak test: a NeuralSim env stepped for a million steps, as a long RL run steps it.

Random actions, episodes ended by the env (time limit, termination, leaving the data) and
reset; resident memory and step time watched from the end of warm-up to the end. A run
of hours must not grow, slow down, or die on a divergence.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import psutil

#: Steps between two time and memory samples.
CHUNK = 1000
#: Share of the run counted as warm-up (tracing, allocator growth), left out of the comparison.
WARM_UP = 0.01
#: Share of the run at each end whose step times are compared.
WINDOW = 0.10
#: Growth allowed from the end of warm-up to the end of the run.
MAX_MEMORY_GROWTH, MAX_STEP_TIME_GROWTH = 0.05, 0.10


def soak(env_id: str, steps: int = 1_000_000, num_envs: int = 1, seed: int = 0,
         max_episode_steps: int | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Step ``env_id`` for ``steps`` env-steps with random actions.

    :param num_envs: 1: ``gymnasium.make`` (with its wrappers, as an agent sees it); more:
        the batched env (``gymnasium.make_vec``, NEXT_STEP autoreset), ``steps`` counting
        env-steps over all envs.
    :param max_episode_steps: episode length (default: the id's). A shorter one makes a
        batched run reset its envs many times: at N=1024 a million env-steps are under
        1,000 steps per env, no episode of a 1,000-step default.
    :return: resident memory (start of the measured part, end, peak), median step time in
        the first and last 10% after warm-up, their growth, episodes, out-of-domain
        truncations, and divergences (exceptions, which should be none).
    """
    if steps < CHUNK * 20 or num_envs < 1:
        raise ValueError(f"a soak needs steps >= {CHUNK * 20} and num_envs >= 1, got {steps} and {num_envs}")
    if max_episode_steps is not None and max_episode_steps < 1:
        raise ValueError(f"max_episode_steps must be a positive number of steps, got {max_episode_steps}")
    batched = num_envs > 1
    # make_vec would take None as "no time limit", not as the id's default.
    length: dict[str, Any] = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    env: Any = gym.make_vec(env_id, num_envs=num_envs, **length) if batched else gym.make(env_id, **length)
    episode_steps = env.max_episode_steps if batched else env.spec.max_episode_steps
    space = env.action_space
    space.seed(seed)
    env.reset(seed=seed)
    process = psutil.Process()
    calls = steps // num_envs
    chunk = max(1, CHUNK // num_envs) if batched else CHUNK
    chunk_times: list[float] = []  # seconds per env-step, one per chunk
    memory: list[int] = []
    episodes = out_of_domain = 0
    divergences: list[str] = []
    done = 0
    started = time.perf_counter()
    while done < calls:
        n = min(chunk, calls - done)
        tick = time.perf_counter()
        for _ in range(n):
            try:
                _, _, terminated, truncated, info = env.step(space.sample())
            except Exception as error:  # what a long run must never meet; counted, then reset
                divergences.append(f"step {done}: {type(error).__name__}: {error}"[:300])
                env.reset()
                continue
            if batched:
                episodes += int(np.sum(terminated | truncated))
                out_of_domain += int(np.sum(info.get("out_of_domain", 0)))
            elif terminated or truncated:
                episodes += 1
                out_of_domain += int(bool(info.get("out_of_domain")))
                env.reset()
        done += n
        chunk_times.append((time.perf_counter() - tick) / (n * num_envs))
        memory.append(process.memory_info().rss)
        if len(chunk_times) % max(1, (calls // chunk) // 10) == 0:
            log(f"{env_id} x{num_envs}: {done * num_envs:,} env-steps, {chunk_times[-1] * 1e6:.1f} us/env-step, "
                f"resident {memory[-1] / 2**20:.0f} MiB")
    env.close()
    skip = max(1, int(len(chunk_times) * WARM_UP))
    window = max(1, int(len(chunk_times) * WINDOW))
    first, last = chunk_times[skip:skip + window], chunk_times[-window:]
    first_ms, last_ms = float(np.median(first)) * 1e3, float(np.median(last)) * 1e3
    start_memory, end_memory = memory[skip - 1], memory[-1]
    report: dict[str, Any] = {
        "env_id": env_id, "num_envs": num_envs, "env_steps": calls * num_envs, "seed": seed,
        "max_episode_steps": episode_steps,
        "wall_time_s": round(time.perf_counter() - started, 1),
        "memory_mib": {"after_warm_up": round(start_memory / 2**20, 1), "end": round(end_memory / 2**20, 1),
                       "peak": round(max(memory) / 2**20, 1)},
        "memory_growth": end_memory / start_memory - 1,
        "step_ms": {"first_10pct": first_ms, "last_10pct": last_ms},
        "step_time_growth": last_ms / first_ms - 1,
        "episodes": episodes, "out_of_domain_truncations": out_of_domain, "divergences": divergences,
    }
    report["passed"] = bool(report["memory_growth"] < MAX_MEMORY_GROWTH
                            and report["step_time_growth"] < MAX_STEP_TIME_GROWTH and not divergences)
    return report
