from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import ROOT

# A test that runs a real model, trains, or runs a DVC experiment is marked `slow` where it is written
# (`@pytest.mark.slow` or a module's `pytestmark`): `python -m pytest -m "not slow"` is the fast lane.


@pytest.fixture(scope="session")
def embedded_gguf() -> Path:
    """The real embedded model, assembled (once) into the evolab cache."""
    from evolab.core.models import resolve_gguf

    return resolve_gguf("qwen2.5-coder-0.5b-instruct")


@pytest.fixture(autouse=True)
def fresh_mlflow_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI to this process's environment, which every
    later subprocess (dvc, the stages) would inherit: each test starts without it, as a shell does."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


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
    from evolab.backends.serve import llama_server

    with llama_server("qwen2.5-coder-0.5b-instruct") as url:
        yield url


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, embedded_gguf: Path) -> Path:
    """A random-weight two-layer Qwen2 checkpoint with the embedded model's tokenizer: seconds per step."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    path = tmp_path_factory.mktemp("tiny-qwen2")
    tokenizer = AutoTokenizer.from_pretrained(str(embedded_gguf.parent), gguf_file=embedded_gguf.name)
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    Qwen2ForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def scripted_teacher():
    """The scripted OpenAI-compatible teacher on 127.0.0.1 (evolab/testing/teacher.py): known answers, no model."""
    from evolab.testing.teacher import ScriptedTeacher

    teacher = ScriptedTeacher()
    yield teacher
    teacher.server.shutdown()
