"""Where the stages read and write, in one place (dvc.yaml names the same files; the variable ones, per
round, generator or control, come from evolab/core/derived.py into params.yaml)."""
from __future__ import annotations

SEED = "data/seed.jsonl"
COMBINED = "data/generated/combined.jsonl"
MERGED = "data/merged.jsonl"
VERIFIED = "data/verified.jsonl"  # the merged items that verification keeps (all of them with verify.mode: off)
VERIFICATION = "results/verification.jsonl"  # every merged item with its verdict, tests and attempts
VERIFY_METRICS = "metrics/verify.json"
TRAIN = "data/train.jsonl"
DATA_METRICS = "metrics/data.json"
DECONTAMINATION = "results/decontamination.jsonl"  # what decontamination removed, and why
DECONTAMINATION_METRICS = "metrics/decontamination.json"
SIMILARITY = "results/similarity.jsonl"  # per-item cosines: the report's similarity distributions
SIMILARITY_METRICS = "metrics/similarity.json"
CONTROLS_METRICS = "metrics/controls_data.json"
TUNED = "models/tuned"
TRAIN_METRICS = "metrics/train.json"
TRAIN_LOSS = "metrics/train_loss.csv"
# an evaluation mode -> (the model it scores, its results folder, its metrics file); the metrics file's
# name is the metric prefix (eval.humaneval.pass_at_1, ...)
EVAL_MODES = {"tuned": ("tuned", "results/tuned", "metrics/eval.json"),
              "baseline": ("untuned", "results/baseline", "metrics/baseline.json"),
              "dev": ("tuned", "results/dev", "metrics/dev.json")}
RESPONSES = "responses.sqlite"  # the response cache, under cache_dir() (EVOLAB_CACHE)
SEED_METRICS = "metrics/seed.json"
STAGE_TIMES = "logs/stages.jsonl"  # every stage run: its command, start, end and seconds (not a DVC output)


def calls(stage: str) -> str:
    """A teacher stage's call log (evolab/core/cache.py, CallLog): `seed`, `evolve@r1`, `generate@oss_instruct`..."""
    return f"calls/{stage.replace('@', '_')}.jsonl"


def round_output(k: int) -> str:
    """Round k's file (rounds 0..k); round 0 is the seed data."""
    return SEED if k == 0 else f"data/evolve/r{k}.jsonl"


def generated(generator: str) -> str:
    return f"data/generated/{generator}.jsonl"


def control(name: str) -> dict[str, str]:
    """A control training set's files (controls@sets, control_train@NAME, control_eval@NAME)."""
    return {"data": f"data/controls/{name}.jsonl", "model": f"models/controls/{name}", "results": f"results/controls/{name}",
            "train_metrics": f"metrics/controls/{name}/train.json", "curve": f"metrics/controls/{name}/train_loss.csv",
            "eval_metrics": f"metrics/controls/{name}/eval.json"}
