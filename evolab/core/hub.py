"""Hugging Face hub ids in a composition (the student, the seed set, a method's source code): checked when the
experiment is composed, so that a paper profile on a machine that can neither find them nor reach the hub fails
before any stage runs, not hours in, after the teacher has been paid."""
from __future__ import annotations

from pathlib import Path

from evolab.core.errors import ConfigError


def unavailable(repo_id: str, repo_type: str) -> str | None:
    """Why `repo_id` cannot be had here, or None: a local folder, a copy in the hub cache, or a reachable hub."""
    from huggingface_hub import HfApi, snapshot_download

    if Path(repo_id).exists():
        return None
    try:
        snapshot_download(repo_id, repo_type=repo_type, local_files_only=True)
        return None
    except Exception:  # noqa: BLE001 - not in the cache: ask the hub
        pass
    try:
        HfApi().repo_info(repo_id, repo_type=repo_type, timeout=10)
        return None
    except Exception as err:  # noqa: BLE001 - offline, unknown, gated: each says why
        return f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"


def check_hub(named: dict[str, str | None]) -> list[str]:
    """Each key's hub id (a dataset for keys that name one, else a model) available, or a ConfigError naming the
    key and the fix; returns the ids checked (params.yaml's `hub`)."""
    checked = []
    for key, repo_id in named.items():
        if not repo_id:
            continue
        repo_type = "dataset" if "dataset" in key else "model"
        if why := unavailable(str(repo_id), repo_type):
            raise ConfigError(f"{key}={repo_id} is neither a local folder nor in the Hugging Face cache, and the hub "
                              f"cannot be reached ({why}). On a machine with the hub, download it once "
                              f"(`huggingface-cli download {'--repo-type dataset ' if repo_type == 'dataset' else ''}"
                              f"{repo_id}`), or set {key} to a local copy.")
        checked.append(str(repo_id))
    return checked
