"""``neural-sim bench-speed``: is the learned simulator ever the slow part?

Measured in one run, so ratios compare like with like:

- single-env step latency of a NeuralSim id and of the shimmy dm_control id it mirrors;
- one Stable-Baselines3 SAC gradient update (batch 256, default network) on that env, the
  thing a single env step must stay small against;
- batched throughput (env-steps/s including observations and rewards) of
  ``gymnasium.make_vec`` for the NeuralSim id and of a shimmy ``SyncVectorEnv`` at the same N;
- the same batched figures on CUDA when a GPU is present;
- with EnvPool installed (``pip install "neural-sim[bench]"``), EnvPool's C++ thread pool
  over real MuJoCo for the same task (``CheetahRun-v1``, ``HalfCheetah-v5``, ...) at each N,
  with the same threads, and the resident memory per env of both.

Each figure is the median of ``repeats`` timed runs.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import gymnasium as gym
import numpy as np
import torch

T = TypeVar("T")


def _median_time(run: Callable[[], None], repeats: int) -> float:
    run()  # warm-up: first calls trace, allocate and fill caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def single_env_ms(env_id: str, steps: int, repeats: int, **kwargs: Any) -> float:
    """Median per-step latency of one env (ms), random in-bound actions."""
    env = gym.make(env_id, **kwargs).unwrapped  # no TimeLimit: measure stepping alone
    env.reset(seed=0)
    space = cast(gym.spaces.Box, env.action_space)  # the envs measured here all have box action spaces
    actions = np.random.default_rng(0).uniform(space.low, space.high, size=(steps, *space.shape))

    def run() -> None:
        for action in actions:
            env.step(action)

    ms = 1000 * _median_time(run, repeats) / steps
    env.close()
    return ms


def sac_update_ms(env_id: str, repeats: int) -> float:
    """Median time of one SB3 SAC gradient step (batch 256, default MLPs)."""
    from stable_baselines3 import SAC

    # Flattened observations: the same network as MultiInputPolicy's, for any observation
    # space (walker's 0-d height and Gymnasium robots' plain boxes included).
    env = gym.wrappers.FlattenObservation(gym.make(env_id))
    model = SAC("MlpPolicy", env, learning_starts=300, seed=0, verbose=0)
    model.learn(total_timesteps=301)  # fills the replay buffer
    updates = 20
    return 1000 * _median_time(lambda: model.train(gradient_steps=updates, batch_size=256), repeats) / updates


def vector_steps_per_s(make: Callable[[int], Any], num_envs: int, steps: int, repeats: int) -> float:
    """Median batched throughput (env-steps/s) of ``make(num_envs)``."""
    envs = make(num_envs)
    envs.reset(seed=0)
    space = envs.single_action_space
    actions = np.random.default_rng(0).uniform(space.low, space.high, size=(steps, num_envs, *space.shape))

    def run() -> None:
        for batch in actions:
            envs.step(batch)

    rate = num_envs * steps / _median_time(run, repeats)
    envs.close()
    return rate


def _shimmy_vector_steps_per_s(mirror_id: str, num_envs: int, steps: int, repeats: int) -> float:
    import shimmy  # noqa: F401  (registers dm_control/... ids)

    make = lambda k: gym.make_vec(mirror_id, num_envs=k, vectorization_mode="sync")  # noqa: E731
    return vector_steps_per_s(make, num_envs, steps, repeats)


def envpool_id(mirror_id: str) -> str | None:
    """EnvPool's id of the real env a NeuralSim id mirrors (``dm_control/cheetah-run-v0`` ->
    ``CheetahRun-v1``; Gymnasium ids as they are), or ``None`` without EnvPool or a match."""
    try:
        import envpool
    except ImportError:
        return None
    if mirror_id.startswith("dm_control/"):
        domain, task = mirror_id.removeprefix("dm_control/").removesuffix("-v0").split("-", 1)
        candidate = domain.capitalize() + "".join(part.capitalize() for part in task.split("_")) + "-v1"
    else:
        candidate = mirror_id
    return candidate if candidate in envpool.list_all_envs() else None


def _resident_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _envpool_run(task_id: str, num_envs: int, steps: int, repeats: int, threads: int) -> tuple[float, float]:
    """EnvPool's throughput (env-steps/s) and resident memory per env (MiB) at ``num_envs``."""
    import envpool

    before = _resident_mib()
    envs = envpool.make_gymnasium(task_id, num_envs=num_envs, batch_size=num_envs, num_threads=threads, seed=0)
    envs.reset()
    per_env = (_resident_mib() - before) / num_envs
    space = envs.action_space
    actions = np.random.default_rng(0).uniform(space.low, space.high, size=(steps, num_envs, *space.shape))

    def run() -> None:
        for batch in actions:
            envs.step(batch.astype(space.dtype))

    rate = num_envs * steps / _median_time(run, repeats)
    envs.close()
    return rate, per_env


def _neural_memory_per_env(env_id: str, num_envs: int) -> float:
    """Resident memory per env (MiB) of ``gymnasium.make_vec(env_id, num_envs)`` after a reset
    and a step, net of one env (the model, the task's physics and caches are paid once); for
    ``num_envs=1``, all that one env costs."""
    # A spawned process knows the ids: unpickling this function imports the package first.
    def resident_after(k: int) -> float:
        envs = gym.make_vec(env_id, num_envs=k)
        envs.reset(seed=0)
        envs.step(np.asarray(envs.action_space.sample()))
        return _resident_mib()

    before = _resident_mib()
    one = resident_after(1)
    if num_envs == 1:
        return one - before  # a lone env pays for the model and its physics
    return (resident_after(num_envs) - one) / (num_envs - 1)


def _in_child_process(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` in a fresh process, so whatever it allocates is returned after."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(function, *args).result()


def bench_speed(
    env_id: str,
    mirror_id: str,
    batch_sizes: tuple[int, ...] = (1, 16, 256, 4096),
    repeats: int = 5,
    single_steps: int = 300,
    include_shimmy_vector: bool = True,
    shimmy_max_envs: int = 1024,
    include_envpool: bool = True,
    envpool_max_envs: int = 1024,
    command: str = "",
    bfloat16: bool = False,
    gpu_batch_sizes: tuple[int, ...] = (4096, 65_536, 262_144, 1_048_576),
) -> dict[str, Any]:
    """All figures for one NeuralSim id and the shimmy id it mirrors (and EnvPool's, when
    installed and ``include_envpool``).

    :param bfloat16: also measure the batched env with ``precision="bfloat16"`` at each N.
    :param gpu_batch_sizes: the batched env's N on a GPU, when one is present (float32 and,
        with ``bfloat16``, bfloat16).
    """
    import shimmy  # noqa: F401  (registers dm_control/... ids)

    neural_ms = single_env_ms(env_id, single_steps, repeats)
    real_ms = single_env_ms(mirror_id, single_steps, repeats)
    sac_ms = sac_update_ms(env_id, repeats)
    pool_id = envpool_id(mirror_id) if include_envpool else None
    batched: dict[str, dict[str, float | None]] = {}
    for n in batch_sizes:
        steps = max(5, min(200, 20_000 // n))
        neural = vector_steps_per_s(lambda k: gym.make_vec(env_id, num_envs=k), n, steps, repeats)
        neural_bf16 = (vector_steps_per_s(lambda k: gym.make_vec(env_id, num_envs=k, precision="bfloat16"), n, steps,
                                          repeats) if bfloat16 else None)
        # Each dm_control env holds about 6 MB (4096 of them exhaust a 24 GB machine) and a
        # closed one does not give it back, so each shimmy measurement runs in its own process.
        shimmy_rate = (
            _in_child_process(_shimmy_vector_steps_per_s, mirror_id, n, steps, max(1, repeats // 2))
            if include_shimmy_vector and n <= shimmy_max_envs else None
        )
        row: dict[str, float | None] = {
            "neural_steps_per_s": neural,
            "shimmy_sync_steps_per_s": shimmy_rate,
            "ratio": neural / shimmy_rate if shimmy_rate else None,
        }
        if neural_bf16 is not None:
            row["neural_bfloat16_steps_per_s"] = neural_bf16
        if pool_id is not None and n <= envpool_max_envs:
            # Fresh processes: resident memory is read before and after the envs exist.
            pool_rate, pool_mib = _in_child_process(_envpool_run, pool_id, n, steps, max(1, repeats // 2),
                                                    torch.get_num_threads())
            row.update(envpool_steps_per_s=pool_rate, envpool_mib_per_env=pool_mib,
                       neural_over_envpool=neural / pool_rate,
                       neural_mib_per_env=_in_child_process(_neural_memory_per_env, env_id, n))
        batched[str(n)] = row
    gpu: dict[str, float] = {}
    if torch.cuda.is_available():
        for precision in ("float32", "bfloat16") if bfloat16 else ("float32",):
            for n in gpu_batch_sizes:
                gpu[f"{n}" if precision == "float32" else f"{n} bfloat16"] = vector_steps_per_s(
                    lambda k, p=precision: gym.make_vec(env_id, num_envs=k, device="cuda", precision=p),  # type: ignore[misc]
                    n, 50, repeats)
    return {
        "env_id": env_id,
        "mirror_id": mirror_id,
        "envpool_id": pool_id,
        "single_env_ms": {"neural": neural_ms, "shimmy": real_ms},
        "sac_update_ms": sac_ms,
        "sac_update_over_neural_step": sac_ms / neural_ms,
        "batched": batched,
        "gpu_steps_per_s": gpu,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}",
        "repeats": repeats,
        "shimmy_max_envs": shimmy_max_envs,
        "envpool_max_envs": envpool_max_envs,
        "command": command,
    }
