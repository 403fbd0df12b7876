"""The complexity-vs-quantity controls (WizardCoder Table 5 and the obvious first question): training
sets that hold the number of samples or of tokens fixed while the data's round changes.

Families (conf/controls/): `alone` (each round's kept data alone; round 0 = the seed data),
`samples` (each round cut to the smallest round's sample count), `tokens` (each round cut to the
smallest round's token count), `seed` (the seed data alone, grown by repetition or cut to the merged
set's sample count and, separately, its token count), `unverified` (the same items with the answers they had
before execution verification: the same prompts, the same count, answers not filtered). Tokens are counted with the student's tokenizer
on the text it trains on (prompt and response).
"""
from __future__ import annotations

import random
from dataclasses import replace
from typing import Callable

from evolab.core.errors import ConfigError
from evolab.core.records import Item


def shuffled(records: list[Item], seed: int) -> list[Item]:
    order = list(records)
    random.Random(seed).shuffle(order)
    return order


def cut_to_tokens(records: list[Item], budget: int, tokens: Callable[[Item], int]) -> list[Item]:
    """Records in order while they fit the budget; one that would overflow is skipped, not split."""
    chosen, total = [], 0
    for record in records:
        if total + tokens(record) <= budget:
            chosen.append(record)
            total += tokens(record)
    return chosen


def grow_or_cut(records: list[Item], samples: int) -> list[Item]:
    """Exactly `samples` records: cycled through (repeats get a distinct id) or cut."""
    return [replace(records[i % len(records)], id=f"{records[i % len(records)].id}#{i // len(records)}")
            for i in range(samples)]


def grow_to_tokens(records: list[Item], budget: int, tokens: Callable[[Item], int]) -> list[Item]:
    """Records cycled through until the next one would pass the token budget."""
    chosen, total, i = [], 0, 0
    while total + tokens(records[i % len(records)]) <= budget:
        record = records[i % len(records)]
        chosen.append(replace(record, id=f"{record.id}#{i // len(records)}"))
        total += tokens(record)
        i += 1
    return chosen


def build_controls(merged: list[Item], rounds: int, families: list[str], tokens: Callable[[Item], int],
                   seed: int) -> dict[str, list[Item]]:
    """Each control's training set, from the merged data (every record carries its round)."""
    by_round = {k: shuffled([r for r in merged if r.round == k], seed + k) for k in range(rounds + 1)}
    empty = [k for k, records in by_round.items() if not records]
    if empty and set(families) & {"alone", "samples", "tokens"}:
        raise ConfigError(f"rounds {empty} kept no item, so no control can match them: run with more seeds "
                          "or a stronger teacher, or drop the round-matched control families.")
    sizes = {k: len(records) for k, records in by_round.items()}
    budgets = {k: sum(tokens(r) for r in records) for k, records in by_round.items()}
    sets: dict[str, list[Item]] = {}
    for k, records in by_round.items():
        if "alone" in families:
            sets[f"alone-r{k}"] = records
        if "samples" in families:
            sets[f"samples-r{k}"] = records[:min(sizes.values())]
        if "tokens" in families:
            sets[f"tokens-r{k}"] = cut_to_tokens(records, min(budgets.values()), tokens)
    if "seed" in families:
        sets["seed-samples"] = grow_or_cut(by_round[0], len(merged))
        sets["seed-tokens"] = grow_to_tokens(by_round[0], sum(budgets.values()), tokens)
    if "unverified" in families:
        sets["unverified-samples"] = [replace(r, output=r.more.get("first_output", r.output)) for r in merged]
    return sets
