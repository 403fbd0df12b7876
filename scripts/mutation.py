"""Mutation testing of the core logic with mutmut (pinned in the test extras; what it mutates and the tests it runs
are `[tool.mutmut]` in pyproject.toml: the listed modules, each mutant against the fast lane's tests of them), then
reports/mutation.md: the kill rate per module, the mutants not killed counted by function, and each survivor
explained as equivalent (reports/mutation_equivalent.yaml, written by hand after reading it) with its diff.

    python scripts/mutation.py              # mutmut run, then the report
    python scripts/mutation.py --report     # the report from the last run (mutants/ holds it)

mutmut 3 mutates inside functions only and runs, for each mutant, the tests that called its function.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "reports/mutation"
REASONS = ROOT / "reports/mutation_equivalent.yaml"
MUTMUT = str(Path(sys.executable).parent / "mutmut")
DETECTED = {"killed", "timeout", "caught by type check"}  # a hang is a detected change


def module_of(mutant: str) -> str:
    """evolab.core.cache.x_cache_key__mutmut_3 or evolab.backends.base.xǁBackendǁ_key__mutmut_1 -> its file."""
    return re.split(r"\.x[_ǁ]", mutant, maxsplit=1)[0].replace(".", "/") + ".py"


def results() -> dict[str, str]:
    out = subprocess.run([MUTMUT, "results", "--all", "true"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return dict(line.strip().rsplit(": ", 1) for line in out.splitlines() if line.startswith("    ") and ": " in line)


def diff_of(mutant: str) -> str:
    shown = subprocess.run([MUTMUT, "show", mutant], cwd=ROOT, capture_output=True, text=True).stdout
    return "\n".join(line for line in shown.splitlines()[1:] if line.startswith(("+", "-")) and not line.startswith(("+++", "---")))


def function_of(mutant: str) -> str:
    """evolab.core.cache.xǁResponseCacheǁget__mutmut_2 -> evolab.core.cache ResponseCache.get."""
    module, _, name = re.split(r"__mutmut_\d+$", mutant)[0].partition(".x")
    return f"{module} {name.lstrip('_ǁ').replace('ǁ', '.')}"


def table_row(label: str, counts: Counter) -> str:
    killed = sum(counts[s] for s in DETECTED)
    size = sum(counts.values())
    return (f"| {label} | {size} | {killed} | {counts['equivalent']} | {counts['survived']} | {counts['no tests']} "
            f"| {counts['not checked']} | {killed / max(size - counts['equivalent'], 1):.2%} |")


def render(status: dict[str, str], reasons: dict[str, str], minutes: float | None) -> str:
    """The table per module (the kill rate over the mutants that are not equivalent, the standard mutation score),
    then every mutant neither killed nor explained, then every equivalent one with its reason, each with its diff."""
    state_of = {m: "equivalent" if s not in DETECTED and m in reasons else s for m, s in status.items()}
    by_module: dict[str, Counter] = defaultdict(Counter)
    for mutant, state in state_of.items():
        by_module[module_of(mutant)][state] += 1
    lines = ["# Mutation testing of the core logic", "",
             "`python scripts/mutation.py` (mutmut 3.8.1, `[tool.mutmut]` in pyproject.toml: every mutant of the modules "
             "below against the fast lane's tests of them)"
             + (f", {minutes:.0f} min on this 2-core machine." if minutes else "."), "",
             "A mutant is killed when a test fails on it (a timeout counts: the change made a test hang). `no tests`: no "
             "test of the fast lane calls the function in process. `equivalent`: a survivor with a reason in "
             "reports/mutation_equivalent.yaml, listed below with its diff: it cannot change what the code does for any "
             "input the pipeline gives it. Kill rate: killed / (mutants - equivalent).", "",
             "| module | mutants | killed | equivalent | survived | no tests | not checked | kill rate |",
             "|---|---|---|---|---|---|---|---|"]
    total: Counter = sum(by_module.values(), Counter())
    lines += [table_row(f"`{module}`", counts) for module, counts in sorted(by_module.items())]
    lines.append(table_row("**all**", total))
    lines += ["", f"States: {dict(sorted(total.items()))}.", ""]
    open_ones = sorted(m for m, state in state_of.items() if state not in DETECTED and state != "equivalent")
    lines += ["## Not killed and not explained", "",
              f"{len(open_ones)} mutants: each is a test still to write (`mutmut show NAME` prints one).", ""]
    for name, count in Counter(function_of(m) for m in open_ones).most_common():
        lines += [f"### `{name}` ({count})", ""]
        for mutant in (m for m in open_ones if function_of(m) == name):
            lines += [f"`{mutant}` ({state_of[mutant]})", "", "```diff", diff_of(mutant), "```", ""]
    lines += ["## Equivalent survivors", ""]
    for mutant in sorted(m for m, state in state_of.items() if state == "equivalent"):
        lines += [f"### `{mutant}`", "", "```diff", diff_of(mutant), "```", "", reasons[mutant], ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", action="store_true", help="only write the report from the last run")
    parser.add_argument("--max-children", type=int, default=2)
    args = parser.parse_args()
    minutes = None
    if not args.report:
        start = time.monotonic()
        subprocess.run([MUTMUT, "run", "--max-children", str(args.max_children)], cwd=ROOT, check=True)
        minutes = (time.monotonic() - start) / 60
    status = results()
    reasons = yaml.safe_load(REASONS.read_text()) if REASONS.exists() else {}
    REPORT.with_suffix(".md").write_text(render(status, reasons or {}, minutes) + "\n")
    counts = Counter(status.values())
    REPORT.with_suffix(".json").write_text(json.dumps({"states": dict(counts), "minutes": minutes,
                                                       "survivors": sorted(m for m, s in status.items() if s not in DETECTED)},
                                                      indent=2) + "\n")
    print(f"{sum(counts[s] for s in DETECTED)}/{sum(counts.values())} killed -> {REPORT.with_suffix('.md')}")


if __name__ == "__main__":
    main()
