"""verify: every merged item's answer run against tests in the sandbox (evolab/evaluation/verification.py); with
verify.mode: tests only the items whose answer passes go on to decontamination and training, with mode: off
every item does, marked unverified. Every item, kept or not, with its verdict, tests and attempts goes to
results/verification.jsonl; pass shares per round and per method to metrics/verify.json."""
from __future__ import annotations

from evolab.backends import Sampling, make_backend
from evolab.core import paths
from evolab.core.cache import stage_cache
from evolab.core.config import load
from evolab.core.errors import StageError
from evolab.core.records import read_items, write_rows
from evolab.core.stage import dump_json, run_stage
from evolab.evaluation.verification import verification_stats, verify


def main() -> None:
    params = load()
    cfg = params.verify
    cache = stage_cache("verify")
    backend = make_backend(params.teacher, cache) if cfg.mode == "tests" else None
    sampling = Sampling.of(cfg.sampling, params.profile.answer_max_tokens)
    checks = verify(read_items(paths.MERGED), cfg, backend, params.teacher.system_prompt, sampling, params.seed,
                    log=lambda line: print(f"verify: {line}", flush=True))
    kept = [c.result() for c in checks if c.kept]
    if not kept:
        raise StageError(f"no answer of {paths.MERGED} passed its tests: nothing to train on (results are not written; "
                         "rerun with -S verify.mode=off to see every item unverified, raise -S verify.attempts=..., or use "
                         "a stronger teacher).")
    write_rows(kept, paths.VERIFIED)
    write_rows([c.result() for c in checks], paths.VERIFICATION)
    cache.save()
    stats = {"mode": cfg.mode, "attempts": cfg.attempts, **verification_stats(checks),
             **(backend.ledger() if backend else {})}
    dump_json(stats, paths.VERIFY_METRICS)
    print(f"verify: {stats['passed']}/{stats['items']} kept ({cfg.mode}), by round {stats['by_round']}")


if __name__ == "__main__":
    run_stage(main)
