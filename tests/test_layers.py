"""The package's layers: imports only run downward, so there is no circle, and importing
``neural_sim`` stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import neural_sim

PACKAGE = Path(neural_sim.__file__).parent
#: Lowest first: a module may import from its own layer and the layers before it.
LAYERS = ["errors", "model", "robots", "density", "checkpoints", "hub", "envs", "sb3", "pipeline", "rl", "cli",
          "__init__"]


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports() -> list[tuple[str, str]]:
    """``(importing module, imported module)`` for every neural_sim import, at any depth."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(("neural_sim", *path.relative_to(PACKAGE).with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("neural_sim"):
                found.append((module, node.module))
            elif isinstance(node, ast.Import):
                found += [(module, alias.name) for alias in node.names if alias.name.startswith("neural_sim")]
    return found


def test_imports_only_run_down_the_layers() -> None:
    upward = [f"{source} imports {target}" for source, target in _imports()
              if LAYERS.index(_layer(target) if target != "neural_sim" else "__init__")
              > LAYERS.index(_layer(source.removesuffix(".__init__")))]
    assert not upward, upward


def test_importing_the_package_loads_no_simulator_or_solver_library() -> None:
    code = ("import sys, neural_sim; print(' '.join(m for m in ('dm_control', 'shimmy', 'mujoco', 'scipy', "
            "'torchdiffeq', 'stable_baselines3', 'matplotlib') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            timeout=300).stdout.split()
    assert loaded == []
    assert "NeuralSim/Acrobot-v0" in neural_sim.ENV_IDS
