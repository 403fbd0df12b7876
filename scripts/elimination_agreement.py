"""How often the elimination's not-a-task rules agree with hand labels.

    python scripts/elimination_agreement.py sample data/evolve/r3.jsonl   # unlabelled rows to label, on stdout
    python scripts/elimination_agreement.py                               # writes reports/elimination_labels.md

The labels (evolab/data/elimination_labels.jsonl) are evolved instructions from real rounds, each read by
hand and marked `task` (a question a student could answer) or `not_task` (a statement, code, a solution,
or a note on how it was made harder), with the reason in a note. The rules judge the same text with the
code_evol config's `elimination` (evolab/methods/code_evol.py, instruction_failure): the template leaks
and the not-a-task rules, on the text alone, as if the teacher had finished it (truncation is a fact of
the generation, not of the text, and the judge is off by default).
"""
from __future__ import annotations

import json
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from evolab.backends import Completion
from evolab.core.config import compose, resolve
from evolab.core.records import read_jsonl
from evolab.methods.code_evol import instruction_failure

LABELS = Path("evolab/data/elimination_labels.jsonl")
REPORT = Path("reports/elimination_labels.md")
with tempfile.TemporaryDirectory() as _tmp:  # the code_evol config's rules, composed and typed as a stage gets them
    RULES = resolve(compose(["method=code_evol"], output=Path(_tmp) / "params.yaml")).method.elimination


def judge(text: str) -> str:
    return instruction_failure("", Completion(text, "stop"), RULES) or "task"


def agrees(row: dict[str, Any], verdict: str) -> bool:
    return (verdict == "task") == (row["label"] == "task")


def agreement(rows: list[dict[str, Any]]) -> dict[str, Any]:
    verdicts = [(row, judge(row["instruction"])) for row in rows]
    confusion = Counter((row["label"], "task" if v == "task" else "not_task") for row, v in verdicts)
    return {"items": len(rows), "agree": sum(agrees(row, v) for row, v in verdicts), "confusion": confusion, "verdicts": verdicts}


def by_source(verdicts: list[tuple[dict[str, Any], str]]) -> dict[str, tuple[int, int]]:
    """(agreed, items) per run the labelled instructions came from."""
    items = Counter(row["source"] for row, _ in verdicts)
    agreed = Counter(row["source"] for row, verdict in verdicts if agrees(row, verdict))
    return {source: (agreed[source], n) for source, n in items.items()}


def render(result: dict[str, Any]) -> str:
    c = result["confusion"]
    lines = ["# Elimination (template leaks and not-a-task rules) against hand labels", "",
             f"`python scripts/elimination_agreement.py` on {LABELS} ({result['items']} evolved instructions from real "
             "rounds of the embedded 0.5B teacher, each labelled by reading it).", "",
             f"Agreement: {result['agree']} of {result['items']} ({result['agree'] / max(result['items'], 1):.0%}).", "",
             *[f"- {agree} of {items} labelled from: {source}" for source, (agree, items) in by_source(result['verdicts']).items()], "",
             "Which rule was written after which labels: reports/lab_log.md (\"The gain profile, first run\").", "",
             "| hand label \\ rules | task (kept) | not a task (eliminated) |", "|---|---|---|",
             f"| task | {c[('task', 'task')]} | {c[('task', 'not_task')]} |",
             f"| not a task | {c[('not_task', 'task')]} | {c[('not_task', 'not_task')]} |", "",
             "## Disagreements", ""]
    for row, verdict in result["verdicts"]:
        if not agrees(row, verdict):
            lines += [f"- **{row['id']}** labelled {row['label']} ({row['note']}), rules say {verdict}: "
                      f"{row['instruction'][:300]!r}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    if argv[:1] == ["sample"]:
        for record in read_jsonl(argv[1]):
            if record["round"] > 0 and record.get("instruction"):
                # Without the rules' verdict: the labeller reads the text alone.
                print(json.dumps({"id": f"{record['id']}@r{record['round']}", "instruction": record["instruction"],
                                  "label": "", "note": ""}))
        return
    text = render(agreement(read_jsonl(LABELS)))
    REPORT.write_text(text)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
