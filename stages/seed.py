"""seed: the seed instructions (round 0), normalised to {id, instruction, input, output}; with
seed_data.answer: teacher (the default) the teacher answers each one, as every round's items are
answered, and the file's own output stays as the reference (evolab/methods/code_evol.py, answer_seeds)."""
from __future__ import annotations

from evolab.backends import Sampling, make_backend
from evolab.core import paths
from evolab.core.cache import stage_cache
from evolab.core.config import load
from evolab.core.errors import StageError, check_teacher
from evolab.core.records import CARRIED, MethodRecord, Record, load_seed_records, write_rows
from evolab.core.stage import dump_json, run_stage
from evolab.methods.code_evol import answer_seeds

ANSWERS = ("teacher", "reference")


def normalise(records: list[Record], limit: int | None) -> list[MethodRecord]:
    chosen = records[:limit] if limit else records
    return [
        MethodRecord(id=str(r.get("id") or f"seed-{i:05d}"), round=0, instruction=str(r["instruction"]).strip(),
                     input=str(r.get("input") or ""), output=str(r.get("output") or ""), kept=True, reason="seed",
                     more={k: r[k] for k in CARRIED if k in r})
        for i, r in enumerate(chosen)
    ]


def main() -> None:
    params = load()
    records = normalise(load_seed_records(params.seed_data.path, params.seed_data.hf_dataset, params.seed_data.hf_split), params.seed_data.limit)
    answer = params.seed_data.answer
    if answer not in ANSWERS:
        raise StageError(f"seed_data.answer must be one of {ANSWERS}, got {answer!r} (conf/config.yaml).")
    cache = stage_cache("seed")
    backend = make_backend(params.teacher, cache)
    if answer == "teacher" and params.method.evolve:  # a method that does not evolve trains on no seed
        sampling = Sampling.of(params.method.sampling, params.profile.answer_max_tokens)
        records = answer_seeds(records, backend, params.teacher.system_prompt, sampling, params.seed,
                               params.answer_rules, log=lambda line: print(f"seed: {line}", flush=True))
        check_teacher([(r.more["answer_reason"], r.errors) for r in records], "the seed answers (round 0)", params.teacher)
    write_rows(records, paths.SEED)
    cache.save()
    dump_json({"records": len(records), **backend.ledger()}, paths.SEED_METRICS)
    print(f"seed: {len(records)} records -> {paths.SEED}")


if __name__ == "__main__":
    run_stage(main)
