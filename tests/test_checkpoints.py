"""Checkpoint folders: round trip, loading by name, and a clear error for each kind of damage."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import neural_sim
from neural_sim.checkpoints import FORMAT_VERSION, load_reset_states, read_config, weights_fingerprint
from neural_sim.errors import CheckpointError, UnknownNameError


def test_load_by_shipped_name_gives_the_robot_dimensions() -> None:
    sim = neural_sim.load("acrobot")
    assert (sim.nq, sim.nv, sim.nu, sim.dt) == (2, 2, 1, 0.01)
    sim = neural_sim.load("pendulum")
    assert (sim.nq, sim.nv, sim.nu, sim.dt) == (1, 1, 1, 0.02)
    sim = neural_sim.load("cheetah")
    assert (sim.nq, sim.nv, sim.nu, sim.dt) == (9, 9, 6, 0.01)
    assert sim.config.layout.invariant_qpos == (0,) and sim.config.layout.velocity_lag == 0.005


def test_shipped_checkpoints_are_complete_and_hold_no_pickle() -> None:
    for name in ("acrobot", "pendulum", "cheetah"):
        folder = Path(neural_sim.hub.resolve_checkpoint(name))
        files = {p.name for p in folder.iterdir()}
        assert {"config.json", "model.safetensors", "reset_states.safetensors", "README.md"} <= files
        assert not any(f.endswith((".pt", ".pth", ".pkl", ".bin", ".ckpt")) for f in files)
        config = read_config(folder)
        assert config.format_version == FORMAT_VERSION
        assert config.training["command"].startswith("neural-sim train")
        assert "seed" in config.training and "wall_time_s" in config.training
        assert config.training["complete"] is True
        assert config.density is not None and (folder / "density.safetensors").is_file()
        assert {"3", "16", "100"} <= set(config.benchmark["horizons"]) and "density" in config.benchmark


def test_saved_checkpoint_reloads_to_identical_predictions(tiny_checkpoint: Path) -> None:
    sim_a, sim_b = neural_sim.load(tiny_checkpoint), neural_sim.load(str(tiny_checkpoint))
    rng = np.random.default_rng(0)
    states, actions = rng.normal(size=(4, 4)), rng.uniform(-1, 1, size=(4, 10, 1))
    np.testing.assert_array_equal(sim_a.rollout(states, actions), sim_b.rollout(states, actions))


def test_checkpoint_records_its_provenance(tiny_checkpoint: Path) -> None:
    config = read_config(tiny_checkpoint)
    assert config.training["command"] == "pytest"
    assert config.training["seed"] == 5
    assert config.training["data"]["seed"] == 123 and config.training["data"]["protocol"] == "poisson"
    assert config.training["samples"] == 20 * 64
    assert 1 <= config.trusted_horizon <= config.robot.episode_steps
    assert "## Provenance" in (tiny_checkpoint / "README.md").read_text()


def test_unknown_name_lists_the_shipped_checkpoints() -> None:
    with pytest.raises(UnknownNameError, match=r"no checkpoint called 'nosuchbot'.*acrobot.*pendulum"):
        neural_sim.load("nosuchbot")


@pytest.mark.parametrize("missing", ["config.json", "model.safetensors"])
def test_missing_file_is_named(checkpoint_copy: Path, missing: str) -> None:
    (checkpoint_copy / missing).unlink()
    with pytest.raises(CheckpointError, match=re.escape(f"missing ['{missing}']")):
        neural_sim.load(checkpoint_copy)


def test_missing_reset_states_is_named(checkpoint_copy: Path) -> None:
    (checkpoint_copy / "reset_states.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"reset_states.safetensors"):
        load_reset_states(checkpoint_copy, 4)


def test_corrupted_safetensors_is_reported(checkpoint_copy: Path) -> None:
    path = checkpoint_copy / "model.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        neural_sim.load(checkpoint_copy)


def test_weights_fingerprint_follows_the_weights_not_the_figures(checkpoint_copy: Path) -> None:
    before = weights_fingerprint(checkpoint_copy)
    config = checkpoint_copy / "config.json"
    config.write_text(config.read_text().replace("{", '{"note": "benchmark figures rewritten", ', 1))
    assert weights_fingerprint(checkpoint_copy) == before
    states = checkpoint_copy / "reset_states.safetensors"
    data = bytearray(states.read_bytes())
    data[-1] ^= 1
    states.write_bytes(bytes(data))
    assert len(before) == 12 and weights_fingerprint(checkpoint_copy) != before
    (checkpoint_copy / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=re.escape("missing ['model.safetensors']")):
        weights_fingerprint(checkpoint_copy)


def test_newer_format_version_asks_for_an_upgrade(checkpoint_copy: Path) -> None:
    path = checkpoint_copy / "config.json"
    raw = json.loads(path.read_text())
    raw["format_version"] = FORMAT_VERSION + 1
    path.write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match=r"newer than this neural-sim supports.*upgrade"):
        neural_sim.load(checkpoint_copy)


def test_invalid_json_is_reported(checkpoint_copy: Path) -> None:
    (checkpoint_copy / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        neural_sim.load(checkpoint_copy)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["simulator"]["layout"].pop("nq"), "missing required key 'nq'"),
        (lambda c: c["simulator"]["model"].update(blocks=3), "unknown keys \\['blocks'\\]"),
        (lambda c: c["simulator"]["layout"].update(nv="two"), "layout.nv: expected int"),
        (lambda c: c["simulator"]["integrator"].update(method="leapfrog"), "'leapfrog' is not one of"),
    ],
)
def test_invalid_config_names_the_offending_key(checkpoint_copy: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    path = checkpoint_copy / "config.json"
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match=message):
        neural_sim.load(checkpoint_copy)


def test_weights_that_do_not_match_the_architecture_are_rejected(checkpoint_copy: Path) -> None:
    path = checkpoint_copy / "config.json"
    raw = json.loads(path.read_text())
    raw["simulator"]["model"]["state_encoder"]["width"] = 32
    path.write_text(json.dumps(raw))
    with pytest.raises(CheckpointError, match=r"has shape .* needs"):
        neural_sim.load(checkpoint_copy)
