"""NeuralSim ids in worker processes: SB3's SubprocVecEnv and Gymnasium's async vector env,
with the forkserver and spawn start methods, from a script and from a process without one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import SubprocVecEnv

# A user's training script, as the README shows it: the workers it starts step NeuralSim.
SCRIPT = '''
import json
import sys

import gymnasium as gym
import numpy as np
import neural_sim
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import SubprocVecEnv

if __name__ == "__main__":
    found = {}
    for method in ("forkserver", "spawn"):
        vec = make_vec_env("NeuralSim/Acrobot-v0", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv,
                           vec_env_kwargs={"start_method": method})
        vec.reset()
        obs, rewards, dones, infos = vec.step(np.full((2, 1), 0.5, dtype=np.float32))
        found[method] = obs["velocity"].tolist()
        vec.close()
    env = gym.make_vec("NeuralSim/Acrobot-v0", num_envs=2, vectorization_mode="async",
                       vector_kwargs={"context": "spawn"})
    env.reset(seed=0)
    obs, *_ = env.step(np.full((2, 1), 0.5, dtype=np.float32))
    found["async"] = obs["velocity"].tolist()
    env.close()
    print(json.dumps(found))
'''


def _expected_velocities() -> list[list[float]]:
    """Env ``i`` seeded with ``i``, one step of action 0.5, in this process."""
    rows = []
    for seed in (0, 1):
        env = gym.make("NeuralSim/Acrobot-v0")
        env.reset(seed=seed)
        rows.append(env.step(np.full(1, 0.5, dtype=np.float32))[0]["velocity"].tolist())
    return rows


def test_a_training_script_steps_neural_sim_in_forkserver_spawn_and_async_workers(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    expected = _expected_velocities()
    for method in ("forkserver", "spawn", "async"):
        np.testing.assert_allclose(found[method], expected, rtol=1e-6, err_msg=method)  # the same seeded steps


def _two_subprocess_steps(env_id: str, start_method: str) -> np.ndarray:
    """Velocities after one step of action 0.5 in two SubprocVecEnv workers seeded 0 and 1."""
    vec = make_vec_env(env_id, n_envs=2, seed=0, vec_env_cls=SubprocVecEnv,
                       vec_env_kwargs={"start_method": start_method})
    try:
        vec.reset()
        obs, *_ = vec.step(np.full((2, 1), 0.5, dtype=np.float32))
    finally:
        vec.close()
    return obs["velocity"]


def test_forkserver_workers_know_the_ids_without_a_main_script() -> None:
    # pytest, like a notebook or `python -c`, has no main module that imports neural_sim:
    # the package asks the forkserver to preload it.
    found = _two_subprocess_steps("NeuralSim/Acrobot-v0", "forkserver")
    np.testing.assert_allclose(found, _expected_velocities(), rtol=1e-6)


def test_spawn_workers_without_a_main_script_take_the_module_prefixed_id() -> None:
    found = _two_subprocess_steps("neural_sim:NeuralSim/Acrobot-v0", "spawn")
    np.testing.assert_allclose(found, _expected_velocities(), rtol=1e-6)
