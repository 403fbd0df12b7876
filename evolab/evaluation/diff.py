"""Which problems an ablation won or lost: diff the per-problem results of two evaluation runs.

    python -m evolab.evaluation.diff results/baseline results/tuned
    python -m evolab.evaluation.diff exp-rounds1:results/tuned exp-rounds3:results/tuned   # DVC revisions/experiments

A run is a results folder (or its per_problem.jsonl) in the workspace, or REV:PATH for a git
revision or DVC experiment name, read through dvc.api.
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


def read_run(spec: str) -> dict[str, dict[str, Any]]:
    rev, _, path = spec.rpartition(":") if ":" in spec else ("", "", spec)
    if not path.endswith(".jsonl"):
        path = f"{path.rstrip('/')}/per_problem.jsonl"
    if rev:
        import dvc.api

        text = dvc.api.read(path, rev=rev)
    else:
        if not Path(path).is_file():
            raise SystemExit(f"{path} not found: give a results folder (results/tuned), its per_problem.jsonl, or REV:PATH.")
        text = Path(path).read_text()
    return by_task(text)


def by_task(text: str) -> dict[str, dict[str, Any]]:
    """A per_problem.jsonl's rows by their task id (blank lines skipped)."""
    return {row["task_id"]: row for row in map(json.loads, filter(str.strip, text.splitlines()))}


def mcnemar_p(won: int, lost: int) -> float:
    """Exact two-sided McNemar test on the discordant problems."""
    n = won + lost
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(won, lost) + 1)) / 2**n
    return min(1.0, 2 * tail)


def min_detectable_net(discordant: int, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """The smallest net difference (won - lost, in problems) that the exact McNemar test at `alpha` detects with
    probability `power` when two runs differ on `discordant` problems: under a true net difference d, each
    discordant problem goes to the better run with probability (1 + d / discordant) / 2. None when not even a
    one-sided split of every discordant problem would be detected (too few problems differ to resolve anything)."""
    significant = [won for won in range(discordant + 1) if mcnemar_p(won, discordant - won) < alpha]
    if not significant:
        return None
    for net in range(discordant + 1):
        share = (1 + net / discordant) / 2
        detected = sum(math.comb(discordant, won) * share**won * (1 - share) ** (discordant - won) for won in significant)
        if detected >= power:
            return net
    return None


BELOW = "below what this benchmark resolves here"


@dataclass(frozen=True)
class Resolution:
    """A paired comparison's won / lost problems, its exact McNemar p, the minimum detectable net difference (None:
    too few problems differ to resolve any) and how to read it."""
    won: int
    lost: int
    mcnemar_p: float
    mde: int | None
    reads: str          # significant, BELOW or not significant


def resolution(won: int, lost: int, noise: int = 0) -> Resolution:
    """What a paired comparison could have detected: the minimum detectable net difference at the noise it was
    measured under (its own discordant problems, or more where repeated runs of one recipe disagree on more:
    `noise`), and how to read it: significant (p < 0.05), below what the benchmark resolves (|won - lost| under
    the minimum detectable effect: a difference of that size is noise, whatever its sign), or not significant."""
    p = mcnemar_p(won, lost)
    mde = min_detectable_net(max(won + lost, noise))
    reads = "significant" if p < 0.05 else BELOW if mde is None or abs(won - lost) < mde else "not significant"
    return Resolution(won, lost, p, mde, reads)


@dataclass(frozen=True)
class Diff:
    """Run b against run a on the tasks both have: each one's pass@1 over them, the tasks b won and lost (with the kind
    of b's failure on each it lost), the exact McNemar p, and the tasks only one of them has."""
    tasks: int
    only_in_a: list[str]
    only_in_b: list[str]
    pass_at_1_a: float
    pass_at_1_b: float
    won: list[str]
    lost: list[str]
    mcnemar_p: float
    lost_kinds: dict[str, str | None]


def diff_runs(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]], key: str = "correct") -> Diff:
    """Per task: a's and b's pass rate (`key` / n: correct, or base_correct for the base tests alone);
    won = b better, lost = b worse."""
    common = sorted(set(a) & set(b), key=lambda t: (t.split("/")[0], int(t.split("/")[-1]) if t.split("/")[-1].isdigit() else t))
    rate = lambda row: row[key] / row["n"]  # noqa: E731
    won = [t for t in common if rate(b[t]) > rate(a[t])]
    lost = [t for t in common if rate(b[t]) < rate(a[t])]
    return Diff(len(common), sorted(set(a) - set(b)), sorted(set(b) - set(a)),
                sum(rate(a[t]) for t in common) / max(len(common), 1), sum(rate(b[t]) for t in common) / max(len(common), 1),
                won, lost, mcnemar_p(len(won), len(lost)), {t: b[t].get("kind") for t in lost})


def render(d: Diff, name_a: str, name_b: str) -> str:
    lines = [f"{d.tasks} common tasks: pass@1 {d.pass_at_1_a:.3f} ({name_a}) -> {d.pass_at_1_b:.3f} ({name_b})",
             f"won {len(d.won)}, lost {len(d.lost)} (exact McNemar p = {d.mcnemar_p:.3g})",
             "won:  " + (" ".join(d.won) or "-"),
             "lost: " + (" ".join(f"{t}({k})" for t, k in d.lost_kinds.items()) or "-")]
    if d.only_in_a or d.only_in_b:
        lines.append(f"not compared: {len(d.only_in_a)} only in {name_a}, {len(d.only_in_b)} only in {name_b}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--json", action="store_true", help="print the diff as JSON")
    args = parser.parse_args()
    d = diff_runs(read_run(args.a), read_run(args.b))
    print(json.dumps(asdict(d), indent=2) if args.json else render(d, args.a, args.b))


if __name__ == "__main__":
    main()
