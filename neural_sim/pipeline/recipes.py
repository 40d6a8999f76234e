"""Per-robot training recipes: the settings that produced each shipped checkpoint.

A recipe is a JSON file (``neural_sim/recipes/<name>.json`` for the shipped ones, or any
path) holding what ``neural-sim train`` needs beyond the output folder::

    {"robot": "hopper",
     "data": {"sequences": 500, "seed": 0},
     "model": {"correctors": [{"blocks": 5, "width": 128}]},
     "integrator": {"method": "rk4"},
     "train": {"iterations": 60000, "stages": [30000, 30000], "learning_rate": 0.002}}

A fine-tuning recipe names the recipe whose checkpoint it starts from (``"fine_tunes":
"cheetah"``) and is run with that checkpoint as ``--init-from``; a distilling recipe names
the recipe whose checkpoint's predictions it learns (``"distills": "cheetah-rollout"``) and
is run with that checkpoint as ``--teacher``.

``model``, ``integrator`` and ``train`` take any keys of :class:`ModelConfig`,
:class:`IntegratorConfig` and :class:`TrainConfig`; missing keys keep their defaults.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neural_sim.errors import NeuralSimError
from neural_sim.model.config import IntegratorConfig, ModelConfig, from_dict, to_dict
from neural_sim.pipeline.train import TrainConfig

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"


@dataclass(frozen=True)
class DataRecipe:
    """The random-action data a recipe trains on.

    :param sequences: sequences to collect.
    :param steps: control steps per sequence.
    :param seed: collection seed.
    :param task: stock task whose initial states start the sequences ("": the robot's default).
    :param agent_sequences: sequences driven by trained agents instead of Poisson random
        actions, one count per agent (``--agent`` names them, in this order).
    :param agent_hint: how to make those agents (shown when ``--agent`` is missing).
    """

    sequences: int = 500
    steps: int = 1000
    seed: int = 0
    task: str = ""
    agent_sequences: tuple[int, ...] = ()
    agent_hint: str = ""


@dataclass(frozen=True)
class Recipe:
    """Everything ``neural-sim train`` needs for one robot."""

    robot: str
    data: DataRecipe = field(default_factory=DataRecipe)
    model: ModelConfig = field(default_factory=ModelConfig)
    integrator: IntegratorConfig = field(default_factory=IntegratorConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    description: str = ""
    #: The recipe whose checkpoint this one fine-tunes ("": trains from scratch); such a
    #: recipe needs that checkpoint as ``--init-from``.
    fine_tunes: str = ""
    #: The recipe whose checkpoint's predictions this one trains on ("": the data's next
    #: states); such a recipe needs that checkpoint as ``--teacher``.
    distills: str = ""

    def to_json(self) -> dict[str, Any]:
        """The recipe as JSON-ready dicts (every setting spelled out)."""
        return to_dict(self)


def recipe_names() -> list[str]:
    """Names of the recipes that ship with neural-sim."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.json"))


def load_recipe(name_or_path: str | os.PathLike[str]) -> Recipe:
    """A shipped recipe by name (``"hopper"``) or a recipe file.

    :raises NeuralSimError: unknown name, unreadable file, or keys the configs do not have.
    """
    path = Path(name_or_path)
    if not path.is_file():
        path = RECIPES_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise NeuralSimError(
            f"unknown recipe {str(name_or_path)!r}: not a file, and not one of the shipped recipes {recipe_names()}"
        )
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise NeuralSimError(f"recipe {path} is not readable JSON: {error}") from error
    data = raw.get("data") if isinstance(raw, dict) else None
    if isinstance(data, dict) and isinstance(data.get("agent_sequences"), int):
        data["agent_sequences"] = [data["agent_sequences"]]  # one agent, as recipes said before several
    try:
        return from_dict(Recipe, raw, where=f"recipe {path.name}")
    except (ValueError, NeuralSimError) as error:
        raise NeuralSimError(str(error)) from error


def with_overrides(recipe: Recipe, **train_overrides: Any) -> Recipe:
    """The recipe with some :class:`TrainConfig` fields replaced (``None`` values ignored)."""
    changes = {k: v for k, v in train_overrides.items() if v is not None}
    if "stages" in changes:
        changes["stages"] = tuple(changes["stages"])
        changes.setdefault("iterations", sum(changes["stages"]))
    elif "iterations" in changes and recipe.train.stages:
        raise NeuralSimError(
            f"recipe for {recipe.robot!r} trains in stages {list(recipe.train.stages)}: give --stages "
            "(iterations per stage) instead of --iterations"
        )
    return dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, **changes))
