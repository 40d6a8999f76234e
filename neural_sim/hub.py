"""Finding checkpoints: shipped names, local folders and the Hugging Face Hub (download,
offline-first; list the cache). Publishing lives in :mod:`neural_sim.pipeline.publish`.

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
from typing import cast

from huggingface_hub import constants, scan_cache_dir, snapshot_download
from huggingface_hub import errors as hub_errors
from huggingface_hub.errors import CacheNotFound, HFValidationError, RepositoryNotFoundError, RevisionNotFoundError

from neural_sim.checkpoints import (
    CONFIG_FILE,
    REQUIRED_FILES,
    CheckpointConfig,
    read_config,
    shipped_checkpoints_dir,
    shipped_names,
)
from neural_sim.errors import CheckpointError, UnknownNameError

# huggingface_hub 2.x caches each commit's full file listing and reports partial snapshots;
# older releases (still pinned by some libraries) do neither, and the folder scan suffices.
try:
    from huggingface_hub import get_cached_repo_tree
except ImportError:  # pragma: no cover - depends on the installed huggingface_hub
    get_cached_repo_tree = None  # type: ignore[assignment]  # the optional-import idiom: None marks it absent
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


def resolve_checkpoint(name_or_path: str | os.PathLike[str], revision: str | None = None) -> Path:
    """Turn a checkpoint reference into a local checkpoint folder.

    Tried in order: an existing folder, a shipped robot name (``"acrobot"``), a Hugging Face
    Hub repo id (``"org/name"``, downloaded into the HF cache, offline-first; see
    :func:`download`).

    :param revision: Hub branch, tag or commit (Hub repo ids only).
    :raises UnknownNameError: none of the three.
    """
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if revision is None:
        if path.is_dir():
            return path
        if text in shipped_names():
            return shipped_checkpoints_dir() / text
    if is_repo_id(text):
        return download(text, revision)
    if revision is not None:
        raise UnknownNameError(f"revision={revision!r} applies to Hub repo ids ('owner/name') only, not {text!r}")
    raise UnknownNameError(
        f"no checkpoint called {text!r}: not a shipped robot (known: {shipped_names()}), not an existing "
        "checkpoint folder, and not a Hub repo id ('owner/name')"
    )


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
                # huggingface_hub annotates ``str | Path`` but takes any os.PathLike (it calls Path() on it).
                cache_dir=cast("str | Path | None", cache_dir),
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
        info = scan_cache_dir(cast("str | Path", cache_dir or constants.HF_HUB_CACHE))  # any os.PathLike works
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
            return [f.path for f in get_cached_repo_tree(repo_id, revision=revision,
                                                         cache_dir=cast("str | Path | None", cache_dir))]
        except (hub_errors.CachedRepoTreeNotFoundError, OSError, ValueError):
            pass
    return [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
