"""Publish a checkpoint folder as a Hugging Face Hub model repo, its card written first."""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import HfApi

from neural_sim.checkpoints import load_reset_states, load_simulator, read_config
from neural_sim.errors import CheckpointError, UnknownNameError
from neural_sim.hub import CHECKPOINT_PATTERNS, is_repo_id, refuse_unsafe_files
from neural_sim.pipeline.card import write_card


def push(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    token: str | bool | None = None,
    api: HfApi | None = None,
) -> str:
    """Publish a checkpoint folder as a Hub model repo (created if missing).

    The model card (``README.md``) is written afresh from ``config.json`` first, so its Hub
    metadata, env ids and figures match what is uploaded. Only checkpoint files are sent.

    :param folder: a complete checkpoint folder.
    :param repo_id: ``"org/name"``.
    :param private: create the repo private.
    :param revision: branch to commit to (default: the repo's default branch).
    :param commit_message: the commit message (default names the robot).
    :param token: Hub token (default: the logged-in one).
    :param api: the ``HfApi`` client to use (default: a new one).
    :return: the URL of the commit.
    """
    if not is_repo_id(repo_id):
        raise UnknownNameError(f"{repo_id!r} is not a Hub repo id; expected 'owner/name'")
    path = Path(folder)
    if not path.is_dir():
        raise CheckpointError(f"{path} is not a checkpoint folder")
    refuse_unsafe_files([p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()], str(path))
    config = read_config(path)
    load_simulator(path, config)  # refuse to publish weights that do not load
    load_reset_states(path, config.simulator.layout.state_size)
    write_card(path, config, repo_id=repo_id)
    client = api or HfApi(token=token, library_name="neural-sim")
    client.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    if revision is not None:
        client.create_branch(repo_id, branch=revision, exist_ok=True)
    commit = client.upload_folder(
        repo_id=repo_id,
        folder_path=path,
        revision=revision,
        allow_patterns=CHECKPOINT_PATTERNS,
        commit_message=commit_message or f"neural-sim checkpoint of {config.robot.name}",
    )
    return str(getattr(commit, "commit_url", commit))
