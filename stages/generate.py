"""generate@NAME: instruction data written by the teacher from real code, for the methods that do not
(only) evolve seed instructions: OSS-Instruct (Magicoder) from random snippets, WaveCoder's
generator-discriminator from (docstring, function) pairs chosen by KCenterGreedy.

The output holds one record per teacher call, kept or not and why; merge keeps the kept ones.
An interrupted run resumes: every answer already received comes from the response cache.
"""
from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from evolab.backends import Backend, make_backend
from evolab.core.cache import stage_cache
from evolab.core.config import load
from evolab.core.errors import check_teacher
from evolab.core.records import MethodRecord, write_rows
from evolab.core.schema import Experiment, MethodSettings
from evolab.core.stage import dump_json, run_stage
from evolab.methods import data_generator


def generate(name: str, cfg: MethodSettings, params: Experiment, backend: Backend) -> tuple[list[MethodRecord], dict[str, Any]]:
    profile = params.profile
    records, extra = data_generator(name)(cfg, profile.seeds, profile.generate_max_tokens, params.seed, backend,
                                      lambda line: print(f"generate@{name}: {line}", flush=True))
    check_teacher([(r.reason, r.errors) for r in records], f"generate@{name}", params.teacher)
    for r in records:
        r.part = name
    stats = {"items": len(records), "kept": sum(r.kept for r in records), "reasons": dict(Counter(r.reason for r in records)),
             "failed_calls": [r.id for r in records if r.errors], **extra}
    return records, stats


def main() -> None:
    name = sys.argv[1]
    params = load()
    spec = params.generate_stages[name]
    cfg = params.method if spec.config == "method" else getattr(params.method, name)
    cache = stage_cache(f"generate@{name}")
    backend = make_backend(params.teacher, cache)
    if params.teacher.system_prompt and params.teacher.system_prompt != getattr(cfg, "system_prompt", None):
        print(f"generate@{name}: asks under {name}'s own system prompt (method's system_prompt, the paper's); "
              "teacher.system_prompt applies to the seed, evolve and verify stages only", flush=True)
    records, stats = generate(name, cfg, params, backend)
    write_rows(records, spec.output)
    cache.save()
    dump_json({**stats, **backend.ledger()}, spec.stats)
    print(f"generate@{name}: kept {stats['kept']} of {stats['items']} {stats['reasons']}")


if __name__ == "__main__":
    run_stage(main)
