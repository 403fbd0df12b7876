"""OSS-Instruct with the real embedded teacher on real standard-library snippets."""
from __future__ import annotations

from pathlib import Path

import yaml

from evolab.backends import Sampling, make_backend
from evolab.methods.oss_instruct import generate
from evolab.methods.sources import Files, python_files, snippets

METHOD = yaml.safe_load((Path(__file__).resolve().parents[1] / "conf/method/oss_instruct.yaml").read_text())


def test_the_embedded_teacher_writes_problems_from_snippets_and_every_outcome_is_recorded(embedded_gguf):
    seeds = snippets(Files(python_files("stdlib")), 3, seed=METHOD["source"]["seed"])
    backend = make_backend({"backend": "llama_cpp", "model": "qwen2.5-coder-0.5b-instruct"})
    records = generate(seeds, METHOD, backend, METHOD["system_prompt"], Sampling(max_tokens=768, **METHOD["sampling"]))
    assert [r["id"] for r in records] == [s["id"] for s in seeds]
    assert all(r["reason"] in {"kept", "truncated", "unparsed", "teacher_error"} for r in records)
    kept = [r for r in records if r["kept"]]
    assert kept, [r["reason"] for r in records]
    for r in kept:
        assert r["instruction"].startswith("Write a solution to the following coding problem:\n") and r["problem"] in r["instruction"]
        assert r["output"] == r["solution"] and "[Solution]" not in r["problem"]
    for r in records:
        if not r["kept"]:
            assert r["instruction"] == "" and r["reason"] != "kept"
