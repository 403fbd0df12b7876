"""The ablation report: the rounds sweep with the evol-stop rule, the controls, the base models, the
per-round data and their similarity to HumanEval, each beside the paper's figures (conf/report/).

    python -m evolab.reporting.report --source dvc      # from `dvc exp show` (this repository's experiments)
    python -m evolab.reporting.report --source mlflow   # from the MLflow store: the same tables
    python -m evolab.reporting.report --out reports/ablation   # also writes reports/ablation.md, _rounds.csv, _rounds.png

Both sources name metrics as the log stage does (stages/log.py), so the tables are the same.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evolab.reporting.figures import write_plots
from evolab.reporting.paper import Paper, load_paper
from evolab.reporting.runs import Run, deepest, distinct, from_dvc, from_mlflow
from evolab.reporting.sections import controls_section, data_section, methods_section, models_section, rounds_section, verification_section
from evolab.reporting.tracking import tracking_uri


def report(runs: list[Run], paper: Paper, source: str) -> str:
    runs = distinct(runs)
    lines = [f"# Ablations beside {paper.paper}", "", f"Source: {source}, {len(runs)} experiments. pass@1 with 95 % bootstrap "
             "CIs over problems; a row marked partial in its metrics covers a subset of the benchmark. Each paired test gives "
             "its MDE: the smallest net number of problems (won - lost) it detects with 80 % power at the measured noise "
             "(the larger of its own discordant problems and the benchmark's repeated-run disagreement, "
             f"{paper.noise or 'none recorded'}); a difference under it is noise, whatever its sign.", ""]
    lines += (rounds_section(runs, paper) + controls_section(runs, paper) + models_section(runs, paper) + methods_section(runs, paper)
              + verification_section(runs))
    if runs:
        lines += data_section(deepest(runs), paper)
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m evolab.reporting.report")
    parser.add_argument("--source", choices=["dvc", "mlflow"], default="dvc")
    parser.add_argument("--paper", type=Path, default=Path("conf/report/wizardcoder.yaml"))
    parser.add_argument("--out", type=Path, help="e.g. reports/ablation: writes .md, _rounds.csv and _rounds.png (default: print)")
    args = parser.parse_args(argv)
    runs = from_dvc(Path(".")) if args.source == "dvc" else from_mlflow(tracking_uri())
    text = report(runs, load_paper(args.paper), args.source)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text(text + "\n")
        write_plots(distinct(runs), args.out)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
