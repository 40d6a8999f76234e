"""Checkpoints on the Hugging Face Hub: download (offline-first), publish, list.

Everything goes through ``huggingface_hub``: downloads land in the standard HF cache
(``HF_HOME`` / ``HF_HUB_CACHE``) and are reused offline (``HF_HUB_OFFLINE=1`` or
``local_files_only=True``). Only a checkpoint's own file kinds are fetched, and a repo
that holds pickled weights is refused: neural-sim never loads pickle, and never runs
downloaded code.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from huggingface_hub import HfApi, constants, scan_cache_dir, snapshot_download
from huggingface_hub import errors as hub_errors
from huggingface_hub.errors import CacheNotFound, HFValidationError, RepositoryNotFoundError, RevisionNotFoundError

from neural_sim.checkpoints import CARD_FILE, CONFIG_FILE, REQUIRED_FILES, CheckpointConfig, read_config
from neural_sim.errors import CheckpointError, UnknownNameError

# huggingface_hub 2.x caches each commit's full file listing and reports partial snapshots;
# older releases (still pinned by some libraries) do neither, and the folder scan suffices.
try:
    from huggingface_hub import get_cached_repo_tree
except ImportError:  # pragma: no cover - depends on the installed huggingface_hub
    get_cached_repo_tree = None
_NOT_CACHED = tuple(
    getattr(hub_errors, name)
    for name in ("LocalEntryNotFoundError", "IncompleteSnapshotError")
    if hasattr(hub_errors, name)
)

#: ``owner/name`` as the Hub spells repo ids.
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
#: The files a checkpoint may hold (a robot's MJCF and its meshes/textures included).
CHECKPOINT_PATTERNS = ["*.json", "*.safetensors", "*.md", "*.xml", "*.stl", "*.obj", "*.msh", "*.png"]
#: File kinds that can carry pickled Python objects: a repo holding any is refused.
UNSAFE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy", ".npz")


def is_repo_id(text: str) -> bool:
    """Whether ``text`` is spelled like a Hub repo id (``"org/name"``)."""
    return bool(_REPO_ID.match(text))


def download(
    repo_id: str,
    revision: str | None = None,
    *,
    local_files_only: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    token: str | bool | None = None,
) -> Path:
    """The local folder of a Hub checkpoint, downloaded into the HF cache if needed.

    Offline-first: with ``HF_HUB_OFFLINE=1`` or ``local_files_only=True`` nothing touches
    the network and the cached snapshot of ``revision`` is used; online,
    ``huggingface_hub`` reuses cached files of an unchanged commit.

    :param repo_id: ``"org/name"``.
    :param revision: branch, tag or commit hash (default: the repo's default branch).
    :param local_files_only: never use the network.
    :param cache_dir: HF cache folder (default: ``HF_HUB_CACHE``).
    :param token: Hub token for private repos (default: the logged-in one).
    :raises UnknownNameError: a malformed id, or a repo or revision the Hub does not have.
    :raises CheckpointError: not cached while offline, pickled files in the repo, or not a
        neural-sim checkpoint.
    """
    if not is_repo_id(repo_id):
        raise UnknownNameError(f"{repo_id!r} is not a Hub repo id; expected 'owner/name'")
    where = f"{repo_id}" + (f"@{revision}" if revision else "")
    try:
        folder = Path(
            snapshot_download(
                repo_id,
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
                allow_patterns=CHECKPOINT_PATTERNS,
                token=token,
                library_name="neural-sim",
            )
        )
    except _NOT_CACHED as error:
        raise CheckpointError(
            f"checkpoint {where} is not (completely) in the local Hugging Face cache and downloading is off "
            f"(HF_HUB_OFFLINE=1, local_files_only, or no network): run `neural-sim download {repo_id}` "
            f"with network access first ({error})"
        ) from error
    except (RepositoryNotFoundError, RevisionNotFoundError, HFValidationError) as error:
        raise UnknownNameError(f"the Hub has no checkpoint {where}: {error}") from error
    except Exception as error:  # a transfer cut off (the connection dropped, a timeout): retrying resumes it
        raise CheckpointError(
            f"downloading checkpoint {where} failed ({type(error).__name__}: {error}); what arrived is kept as "
            "incomplete files that are never loaded: run the same command again to finish the download"
        ) from error
    refuse_unsafe_files(_repo_files(repo_id, revision, folder, cache_dir), where)
    # A download cut off half-way leaves a snapshot with some files linked and the rest as
    # ``.incomplete`` blobs: never taken for a checkpoint.
    if (folder / CONFIG_FILE).is_file():
        read_config(folder)  # a neural-sim checkpoint, of a format this version reads
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(
            f"the cached snapshot of {where} at {folder} lacks {missing} (an interrupted download, or not a "
            f"neural-sim checkpoint): run `neural-sim download {repo_id}` with network access to complete it"
        )
    return folder


def refuse_unsafe_files(files: list[str], where: str) -> None:
    """Raise if a repo holds files in formats that can carry pickle.

    :raises CheckpointError: naming the offending files.
    """
    unsafe = sorted(f for f in files if PurePosixPath(f).suffix.lower() in UNSAFE_SUFFIXES)
    if unsafe:
        raise CheckpointError(
            f"{where} holds files neural-sim refuses to load: {unsafe[:5]} (formats that can hold pickle). A "
            "neural-sim checkpoint holds only config.json, *.safetensors, README.md and MJCF assets"
        )


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
    from neural_sim.checkpoints import load_reset_states, load_simulator
    from neural_sim.pipeline.card import model_card

    if not is_repo_id(repo_id):
        raise UnknownNameError(f"{repo_id!r} is not a Hub repo id; expected 'owner/name'")
    path = Path(folder)
    if not path.is_dir():
        raise CheckpointError(f"{path} is not a checkpoint folder")
    refuse_unsafe_files([p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()], str(path))
    config = read_config(path)
    load_simulator(path, config)  # refuse to publish weights that do not load
    load_reset_states(path, config.simulator.layout.state_size)
    (path / CARD_FILE).write_text(model_card(config, repo_id=repo_id))
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


@dataclass(frozen=True)
class CachedCheckpoint:
    """A neural-sim checkpoint found in the HF cache."""

    repo_id: str
    revision: str
    folder: Path
    config: CheckpointConfig


def cached_checkpoints(cache_dir: str | os.PathLike[str] | None = None) -> list[CachedCheckpoint]:
    """Every neural-sim checkpoint snapshot in the HF cache (other repos are skipped)."""
    try:
        info = scan_cache_dir(cache_dir or constants.HF_HUB_CACHE)
    except CacheNotFound:
        return []
    found = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        for revision in sorted(repo.revisions, key=lambda r: r.commit_hash):
            folder = Path(revision.snapshot_path)
            if not (folder / CONFIG_FILE).is_file():
                continue
            try:
                config = read_config(folder)
            except CheckpointError:
                continue  # some other library's config.json
            refs = sorted(revision.refs)
            found.append(CachedCheckpoint(repo.repo_id, refs[0] if refs else revision.commit_hash, folder, config))
    return found


def _repo_files(
    repo_id: str, revision: str | None, folder: Path, cache_dir: str | os.PathLike[str] | None
) -> list[str]:
    # The cached tree listing names every file of the commit, downloaded or not; without it
    # (a cache filled by other means) the snapshot folder is what there is.
    if get_cached_repo_tree is not None:
        try:
            return [f.path for f in get_cached_repo_tree(repo_id, revision=revision, cache_dir=cache_dir)]
        except (hub_errors.CachedRepoTreeNotFoundError, OSError, ValueError):
            pass
    return [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
