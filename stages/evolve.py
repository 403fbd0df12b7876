"""evolve@rK: round K of Code Evol-Instruct over round K-1's items; answers from the teacher.

Output: round K's file holds the records of rounds 0..K (earlier rounds copied through), so
that merge can depend on the last round alone.
"""
from __future__ import annotations

import sys
from dataclasses import replace

from evolab.backends import Backend, Sampling, make_backend
from evolab.core.cache import stage_cache
from evolab.core.config import load
from evolab.core.errors import check_teacher
from evolab.core.records import MethodRecord, read_records, write_rows
from evolab.core.schema import Experiment
from evolab.core.stage import dump_json, run_stage
from evolab.methods.code_evol import Evolution, evolution_template, evolve_items, pool_for_next_round, round_stats


def evolve_round(previous: list[MethodRecord], round_k: int, params: Experiment, backend: Backend) -> list[Evolution]:
    """Round `round_k`'s evolutions of round `round_k - 1`'s records in `previous`."""
    method, profile = params.method, params.profile
    pool = pool_for_next_round([r for r in previous if r.round == round_k - 1], method.on_failure)
    evolve_sampling = Sampling.of(method.sampling, profile.evolve_max_tokens)
    answer_sampling = Sampling.of(method.sampling, profile.answer_max_tokens)
    method = replace(method, template=evolution_template(method, getattr(params.teacher, "evolve_note", None)))
    evolutions = evolve_items(pool, round_k, method, backend, params.teacher.system_prompt, evolve_sampling,
                              answer_sampling, params.seed, log=lambda line: print(f"evolve@r{round_k}: {line}", flush=True))
    for e in evolutions:
        print(f"evolve@r{round_k}: {e.id} {e.heuristic} -> {e.reason or 'kept'}", flush=True)
    check_teacher([(e.reason, e.errors) for e in evolutions], f"round {round_k}", params.teacher)
    return evolutions


def main() -> None:
    round_k = int(sys.argv[1])
    params = load()
    spec = params.evolve_rounds[f"r{round_k}"]
    previous = read_records(spec.input)
    cache = stage_cache(f"evolve@r{round_k}")
    backend = make_backend(params.teacher, cache)
    evolutions = evolve_round(previous, round_k, params, backend)
    write_rows(previous + [e.record(round_k) for e in evolutions], spec.output)
    cache.save()
    dump_json({**round_stats(evolutions), **backend.ledger()}, spec.stats)


if __name__ == "__main__":
    run_stage(main)
