from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def embedded_gguf() -> Path:
    """The real embedded model, assembled (once) into the evolab cache."""
    from evolab.models import resolve_gguf

    return resolve_gguf("qwen2.5-coder-0.5b-instruct")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh git + DVC repository holding this project's tracked files."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    repo = tmp_path / "repo"
    for name in files:
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "test@localhost"],
                ["git", "config", "user.name", "evolab test"], ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=repo, check=True)
    return repo



@pytest.fixture(scope="session")
def llama_server(embedded_gguf: Path):
    """A real OpenAI-compatible server (llama-cpp-python's) on 127.0.0.1, serving the embedded model."""
    from evolab.serve import llama_server

    with llama_server("qwen2.5-coder-0.5b-instruct") as url:
        yield url
