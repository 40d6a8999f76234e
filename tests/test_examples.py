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
