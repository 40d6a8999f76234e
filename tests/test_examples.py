"""Every example runs as is (with a tiny budget)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_sac_example_trains_in_neuralsim_and_scores_in_the_real_env() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "sac_acrobot.py"), "--steps", "200", "--eval-episodes", "1"],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "real dm_control/acrobot-swingup-v0 return" in result.stdout


def test_batched_ppo_example_trains_on_the_sb3_adapter() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "ppo_batched_acrobot.py"), "--steps", "512", "--n-envs", "8",
         "--eval-episodes", "1"],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "batched NeuralSim/Acrobot-v0 envs; real dm_control/acrobot-swingup-v0 return" in result.stdout


def _run(script: str, *args: str) -> str:
    result = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True,
                            timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_tqc_with_density_penalty_example_scores_in_the_real_cheetah() -> None:
    out = _run("tqc_density_cheetah.py", "--steps", "60", "--eval-every", "60", "--eval-episodes", "1")
    assert "60 steps: real dm_control/cheetah-run-v0 return" in out


def test_few_shot_example_collects_real_steps_and_fine_tunes() -> None:
    out = _run("few_shot_cheetah.py", "--steps", "60", "--every", "30", "--real-steps", "20",
               "--finetune-iterations", "5", "--eval-every", "60", "--eval-episodes", "1")
    assert "60 steps: 40 real steps so far" in out and "60 steps (40 real): real return" in out


def test_sb3_halfcheetah_v5_script_runs_with_only_the_id_changed() -> None:
    out = _run("sac_halfcheetah_v5.py", "--steps", "60", "--eval-episodes", "1")
    assert "trained 60 steps in neural_sim:NeuralSim/HalfCheetah-v5; real HalfCheetah-v5 return" in out
