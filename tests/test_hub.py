"""Hub I/O through the real ``huggingface_hub`` code, offline: a hub-layout HF cache built in a
temporary folder from a shipped checkpoint, loaded with offline mode on; push up to the
upload call with a recording client."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import huggingface_hub
import numpy as np
import pytest
from huggingface_hub import HfApi

import neural_sim
from neural_sim.checkpoints import shipped_checkpoints_dir
from neural_sim.cli import main
from neural_sim.errors import CheckpointError, UnknownNameError
from neural_sim.hub import CHECKPOINT_PATTERNS, cached_checkpoints, download
from neural_sim.pipeline.publish import push
from tests.hub_mirror import serve_repo

REPO = "someone/acrobot-neural-sim"
MAIN_COMMIT, TAGGED_COMMIT = "1" * 40, "2" * 40


def add_snapshot(cache: Path, repo_id: str, source: Path, commit: str, refs: tuple[str, ...]) -> Path:
    """Lay ``source``'s files out as the HF cache does: content-addressed blobs, a snapshot of
    symlinks to them, and refs naming the commit."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for file in (f for f in source.rglob("*") if f.is_file()):  # sub-folders too (ablation/)
        blob = repo / "blobs" / hashlib.sha256(file.read_bytes()).hexdigest()
        shutil.copyfile(file, blob)
        link = snapshot / file.relative_to(source)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(blob)
    (repo / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (repo / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An offline HF cache holding the shipped acrobot as ``REPO`` (main) plus a tagged
    revision ``v0.1`` whose config differs (trusted horizon 7)."""
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    source = shipped_checkpoints_dir() / "acrobot"
    add_snapshot(cache, REPO, source, MAIN_COMMIT, ("main",))
    tagged = tmp_path / "tagged"
    shutil.copytree(source, tagged)
    config = json.loads((tagged / "config.json").read_text())
    config["trusted_horizon"] = 7
    (tagged / "config.json").write_text(json.dumps(config))
    add_snapshot(cache, REPO, tagged, TAGGED_COMMIT, ("v0.1",))
    return cache


def test_load_from_the_hub_cache_offline_equals_the_shipped_model(hub_cache: Path) -> None:
    from_hub, shipped = neural_sim.load(REPO), neural_sim.load("acrobot")
    states = np.random.default_rng(0).normal(size=(8, 4))
    actions = np.random.default_rng(1).uniform(-1, 1, size=(8, 1))
    np.testing.assert_array_equal(from_hub.step(states, actions), shipped.step(states, actions))


def test_revisions_pin_branches_tags_and_commits(hub_cache: Path) -> None:
    assert download(REPO).name == MAIN_COMMIT
    assert download(REPO, revision="v0.1").name == TAGGED_COMMIT
    assert download(REPO, revision=MAIN_COMMIT).name == MAIN_COMMIT
    env = gym.make("NeuralSim/Acrobot-v0", checkpoint=REPO, revision="v0.1")
    assert env.unwrapped.config.trusted_horizon == 7
    with pytest.raises(CheckpointError, match=r"not .*in the local Hugging Face cache.*neural-sim download"):
        download(REPO, revision="v9")


def test_gym_make_and_register_checkpoint_take_a_repo_id(hub_cache: Path) -> None:
    env = gym.make("NeuralSim/Acrobot-v0", checkpoint=REPO)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    ids = neural_sim.register_checkpoint(REPO, revision="v0.1")
    try:
        assert ids[0] == "NeuralSim/Acrobot-v0"
        assert gym.spec(ids[0]).kwargs == {"checkpoint": REPO, "task": "swingup", "revision": "v0.1"}
        assert gym.spec(ids[0]).max_episode_steps == 7
        env = gym.make(ids[1])
        env.reset(seed=0)
        env.step(env.action_space.sample())
    finally:
        neural_sim.register_checkpoint("acrobot")  # restore the shipped registration


def test_uncached_repos_bad_ids_and_misplaced_revisions_are_refused(hub_cache: Path) -> None:
    with pytest.raises(CheckpointError, match=r"someone/missing is not .*cache.*HF_HUB_OFFLINE"):
        neural_sim.load("someone/missing")
    with pytest.raises(UnknownNameError, match="not a Hub repo id; expected 'owner/name'"):
        download("no-slash")
    with pytest.raises(UnknownNameError, match=r"not a shipped robot.*not a Hub repo id"):
        neural_sim.load("not-a-robot")
    with pytest.raises(UnknownNameError, match=r"revision='v0.1' applies to Hub repo ids \('owner/name'\) only"):
        neural_sim.load("acrobot", revision="v0.1")


def test_a_repo_holding_pickles_is_refused(hub_cache: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(shipped_checkpoints_dir() / "pendulum", bad)
    (bad / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    add_snapshot(hub_cache, "someone/pickled", bad, "3" * 40, ("main",))
    with pytest.raises(CheckpointError, match=r"refuses to load: \['pytorch_model.bin'\]"):
        neural_sim.load("someone/pickled")


def test_a_hub_repo_that_is_not_a_checkpoint_is_refused(hub_cache: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"hidden_size": 8}))
    add_snapshot(hub_cache, "someone/bert", other, "4" * 40, ("main",))
    with pytest.raises(CheckpointError, match="no 'format_version': not a neural-sim checkpoint"):
        neural_sim.load("someone/bert")
    assert [c.repo_id for c in cached_checkpoints()] == [REPO, REPO]  # bert is skipped


def test_list_and_download_commands_read_the_cache(hub_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {"where": "shipped", "checkpoint": "acrobot", "robot": "acrobot",
            "env_ids": ["NeuralSim/Acrobot-v0", "NeuralSim/acrobot-swingup-v0",
                        "NeuralSim/acrobot-swingup_sparse-v0"]} in listed
    assert {row["checkpoint"] for row in listed if row["where"] == "hub cache"} == {f"{REPO}@main", f"{REPO}@v0.1"}
    assert main(["download", REPO, "--revision", "v0.1", "--local-files-only"]) == 0
    assert TAGGED_COMMIT in capsys.readouterr().out
    assert main(["info", REPO, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["trusted_horizon"] == 131
    assert main(["download", "someone/missing"]) == 2
    assert "neural-sim download someone/missing" in capsys.readouterr().err


class RecordingApi(HfApi):
    """An ``HfApi`` that records the calls ``push`` makes instead of sending them."""

    def __init__(self) -> None:
        super().__init__(token=False)
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def create_repo(self, repo_id: str, **kwargs: Any) -> Any:  # type: ignore[override]
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        return f"https://huggingface.co/{repo_id}"

    def create_branch(self, repo_id: str, **kwargs: Any) -> None:  # type: ignore[override]
        self.calls.append(("create_branch", {"repo_id": repo_id, **kwargs}))

    def upload_folder(self, **kwargs: Any) -> Any:  # type: ignore[override]
        self.calls.append(("upload_folder", kwargs))
        return "https://huggingface.co/commit/0"


def test_push_writes_the_card_then_uploads_only_checkpoint_files(tmp_path: Path) -> None:
    folder = tmp_path / "acrobot"
    shutil.copytree(shipped_checkpoints_dir() / "acrobot", folder)
    api = RecordingApi()
    push(folder, "me/acrobot", private=True, revision="dev", api=api)
    assert [name for name, _ in api.calls] == ["create_repo", "create_branch", "upload_folder"]
    assert api.calls[0][1] == {"repo_id": "me/acrobot", "private": True, "exist_ok": True, "repo_type": "model"}
    upload = api.calls[2][1]
    assert (upload["repo_id"], upload["folder_path"], upload["revision"]) == ("me/acrobot", folder, "dev")
    assert upload["allow_patterns"] == CHECKPOINT_PATTERNS
    card = huggingface_hub.ModelCard.load(folder / "README.md")
    assert card.data.library_name == "neural-sim"
    assert "NeuralSim/acrobot-swingup-v0" in card.data.env_ids
    assert 'neural_sim.register_checkpoint("me/acrobot")' in card.text


def test_push_refuses_pickles_and_broken_checkpoints(tmp_path: Path) -> None:
    folder = tmp_path / "acrobot"
    shutil.copytree(shipped_checkpoints_dir() / "acrobot", folder)
    (folder / "extra.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"extra.pt"):
        push(folder, "me/acrobot", api=RecordingApi())
    (folder / "extra.pt").unlink()
    (folder / "model.safetensors").write_bytes(b"garbage")
    api = RecordingApi()
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        push(folder, "me/acrobot", api=api)
    assert api.calls == []  # nothing was sent


# -- downloads from a local Hub mirror (the real download code over HTTP) ------------------

LOAD = "import neural_sim, sys; sim = neural_sim.load(sys.argv[1]); print(sim.nq, sim.nv)"


def _load_in_process(repo: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", LOAD, repo], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_two_processes_downloading_one_checkpoint_at_once_both_load_it(tmp_path: Path) -> None:
    source = shipped_checkpoints_dir() / "acrobot"
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    env.pop("HF_HUB_OFFLINE", None)
    with serve_repo(REPO, source, delay_s=0.5) as endpoint:  # slow files: the two downloads overlap
        env["HF_ENDPOINT"] = endpoint
        runs = [_load_in_process(REPO, env) for _ in range(2)]
        results = [run.communicate(timeout=300) for run in runs]
    for run, (out, err) in zip(runs, results, strict=True):
        assert run.returncode == 0, err[-2000:]
        assert out.split() == ["2", "2"]
    repo = tmp_path / "hf" / "hub" / f"models--{REPO.replace('/', '--')}"
    assert [p.name for p in (repo / "snapshots").iterdir()] == ["a" * 40]  # one cache entry
    assert not list(repo.rglob("*.incomplete")) and not list(repo.rglob("*.lock"))
    snapshot = repo / "snapshots" / ("a" * 40)
    for file in (f for f in source.rglob("*") if f.is_file()):  # every file intact
        assert (snapshot / file.relative_to(source)).read_bytes() == file.read_bytes()
    offline = {**env, "HF_HUB_OFFLINE": "1"}
    assert subprocess.run([sys.executable, "-c", LOAD, REPO], env=offline, capture_output=True, text=True,
                          timeout=300, check=False).returncode == 0


def test_an_interrupted_download_is_never_taken_for_a_checkpoint(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    env.pop("HF_HUB_OFFLINE", None)
    with serve_repo(REPO, shipped_checkpoints_dir() / "acrobot", cut_file="model.safetensors") as endpoint:
        env["HF_ENDPOINT"] = endpoint
        _out, err = (run := _load_in_process(REPO, env)).communicate(timeout=300)
    assert run.returncode != 0
    assert "CheckpointError: downloading checkpoint someone/acrobot-neural-sim failed" in err
    assert "run the same command again" in err
    offline = subprocess.run([sys.executable, "-c", LOAD, REPO], env={**env, "HF_HUB_OFFLINE": "1"},
                             capture_output=True, text=True, timeout=300, check=False)
    assert offline.returncode != 0
    assert re.search(r"CheckpointError: checkpoint someone/acrobot-neural-sim is not \(completely\) in the local "
                     r"Hugging Face cache.*neural-sim download", offline.stderr)


def test_a_cached_snapshot_missing_a_file_is_refused_with_the_command_that_completes_it(hub_cache: Path,
                                                                                       tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    shutil.copytree(shipped_checkpoints_dir() / "pendulum", partial)
    (partial / "model.safetensors").unlink()  # as an interrupted download leaves it
    add_snapshot(hub_cache, "someone/partial", partial, "5" * 40, ("main",))
    with pytest.raises(CheckpointError, match=r"lacks \['model.safetensors'\].*neural-sim download someone/partial"):
        neural_sim.load("someone/partial")
