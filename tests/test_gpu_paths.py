"""benchmarks/gpu_paths.py's parts that a lease depends on and a CPU can check: the FLOP counts behind MFU and
HFU, the scratch copy without git, the stage runner's PYTHONPATH and time limit, full-length training rows.
The whole script runs in the CPU rehearsal (benchmarks/gpu_rehearsal.sh, reports/gpu_paths_dryrun.md)."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_paths  # noqa: E402

MODEL = {"parameters": 1_100_000_000, "matrix_parameters": 1_000_000_000, "layers": 10, "hidden": 1000}


def test_mfu_counts_the_models_flops_and_hfu_adds_the_recomputed_forward():
    attention = 12 * 10 * 1000 * 2048  # PaLM's 12 x layers x hidden x length, forward and backward
    assert gpu_paths.flops_per_token(MODEL, "full", 2048, recomputed=False) == 6e9 + attention
    assert gpu_paths.flops_per_token(MODEL, "lora", 2048, recomputed=False) == 4e9 + attention  # no weight gradients
    assert gpu_paths.flops_per_token(MODEL, "full", 2048, recomputed=True) == 8e9 + attention * 4 / 3  # one more forward
    figures = gpu_paths.utilisation(1000.0, MODEL, "full", 2048, True, 2, {"989": 989.0, "790": 790.0})
    assert figures["mfu_989"] == round((6e9 + attention) * 1000 / (2 * 989e12), 4)
    assert figures["hfu_790"] == round((8e9 + attention * 4 / 3) * 1000 / (2 * 790e12), 4)
    assert gpu_paths.utilisation(1000.0, MODEL, "full", 2048, False, 1, {"989": 989.0})["hfu_989"] == round(
        (6e9 + attention) * 1000 / 989e12, 4)  # no checkpointing: nothing recomputed
    assert set(gpu_paths.utilisation(None, MODEL, "lora", 2048, True, 1, {"989": 989.0}).values()) == {None}


def test_the_scratch_copy_holds_what_a_clone_holds_with_no_git_to_ask(tmp_path, monkeypatch):
    project = tmp_path / "project"
    for file in ["conf/config.yaml", "evolab/data/seeds.jsonl", "data/train.jsonl", ".venv/bin/python", ".gpu/wheels/a.whl",
                 "models/tuned/x", "evolab/__pycache__/a.pyc", ".dvc/config", ".dvc/cache/x"]:
        (project / file).parent.mkdir(parents=True, exist_ok=True)
        (project / file).write_text("x")
    monkeypatch.setattr(gpu_paths, "ROOT", project)
    repo = gpu_paths.scratch(tmp_path / "work", "lora")
    copied = sorted(str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file())
    assert copied == [".dvc/config", "conf/config.yaml", "evolab/data/seeds.jsonl"]  # a nested data/ folder is kept
    (repo / "stale").write_text("x")
    assert not (gpu_paths.scratch(tmp_path / "work", "lora") / "stale").exists()  # made afresh


def test_a_stage_keeps_the_callers_pythonpath_and_its_workers_die_at_the_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/carried/site")
    seconds, output = gpu_paths.run(tmp_path, ["-c", "import os, sys; print(os.environ['PYTHONPATH'], os.environ['EVOLAB_CACHE'])"],
                                    tmp_path / "cache", 60)
    assert output.split() == [f"{tmp_path}:/carried/site", str(tmp_path / "cache")] and seconds < 60
    with pytest.raises(RuntimeError, match="exit 3"):
        gpu_paths.run(tmp_path, ["-c", "import sys; sys.exit('exit 3')"], tmp_path, 60)
    worker = "import subprocess, sys, time; print(subprocess.Popen(['sleep', '30']).pid, flush=True); time.sleep(30)"
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="over its 2 s limit") as stopped:
        gpu_paths.run(tmp_path, ["-c", worker], tmp_path, 2)
    assert time.perf_counter() - start < 20  # not waiting for the worker, which holds the output pipe
    pid = stopped.value.args[0].split()[-1]
    time.sleep(0.5)
    state = subprocess.run(["ps", "-o", "stat=", "-p", pid], capture_output=True, text=True).stdout.strip()
    assert state in ("", "Z")  # the launcher's child went with it


@pytest.mark.slow  # the tiny model's tokenizer: 25 s to read from the GGUF file
def test_training_rows_fill_the_recipe_length_and_split_between_the_phases(tmp_path, tiny_model):
    from transformers import AutoTokenizer

    gpu_paths.train_data(tmp_path, 50, str(tiny_model), 300, parts=["oss_instruct", "code_evol"])
    rows = [json.loads(line) for line in (tmp_path / "data/train.jsonl").read_text().splitlines()]
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    assert len(rows) == 50 and len({r["id"] for r in rows}) == 50
    assert min(len(tokenizer(r["output"])["input_ids"]) for r in rows) >= 300  # the answer alone reaches the length
    assert [r["part"] for r in rows] == ["oss_instruct"] * 25 + ["code_evol"] * 25
    gpu_paths.train_data(tmp_path, 3, str(tiny_model), 300)
    assert "part" not in json.loads((tmp_path / "data/train.jsonl").read_text().splitlines()[0])
