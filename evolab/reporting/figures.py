"""The report's figures: the rounds sweep and the controls as CSV (DVC plots) and PNG with 95 % CIs, the per-item
similarity to HumanEval per round and per method."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from evolab.evaluation.suites import metric_suite
from evolab.reporting.runs import Run, control_names, deepest, dev_suite, method_groups, similarity_items, sweeps


def rounds_rows(runs: list[Run]) -> list[dict[str, Any]]:
    """The longest rounds sweep as rows (for the CSV DVC plots and the PNG)."""
    if not (found := sweeps(runs)):
        return []
    by_round = max(found, key=len)
    suite = metric_suite(next(iter(by_round.values())).param("eval.benchmark"))
    rows = []
    for k, r in sorted(by_round.items()):
        rows.append({"rounds": k, "tuned_pass_at_1": r.metrics.get(f"eval.{suite}.pass_at_1"),
                     "tuned_low": r.metrics.get(f"eval.{suite}.pass_at_1_ci95_low"),
                     "tuned_high": r.metrics.get(f"eval.{suite}.pass_at_1_ci95_high"),
                     "dev_pass_at_1": r.metrics.get(f"dev.{dev_suite(r)}.pass_at_1"),
                     "dev_low": r.metrics.get(f"dev.{dev_suite(r)}.pass_at_1_ci95_low"),
                     "dev_high": r.metrics.get(f"dev.{dev_suite(r)}.pass_at_1_ci95_high")})
    return rows


def controls_rows(runs: list[Run]) -> list[dict[str, Any]]:
    """The first experiment with controls: the merged set and each control, for the CSV and the PNG."""
    for run in runs:
        if names := control_names(run):
            suite = metric_suite(run.param("eval.benchmark"))
            prefixes = [("merged", "eval", "data.merged_items")] + [(n, f"controls.{n}.eval", f"controls_data.{n}.samples") for n in names]
            return [{"training_set": name, "samples": run.metrics.get(samples),
                     "pass_at_1": run.metrics.get(f"{prefix}.{suite}.pass_at_1"),
                     "low": run.metrics.get(f"{prefix}.{suite}.pass_at_1_ci95_low"),
                     "high": run.metrics.get(f"{prefix}.{suite}.pass_at_1_ci95_high")} for name, prefix, samples in prefixes]
    return []


def write_csv(rows: list[dict[str, Any]], fields: list[str], path: Path) -> Path:
    import csv

    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


PLACEHOLDER = "no experiments for this plot yet"  # the PNG's Description when it shows no data


ROUNDS_FIELDS = ["rounds", "tuned_pass_at_1", "tuned_low", "tuned_high", "dev_pass_at_1", "dev_low", "dev_high"]


CONTROLS_FIELDS = ["training_set", "samples", "pass_at_1", "low", "high"]


def write_plots(runs: list[Run], out: Path) -> list[Path]:
    """Beside <out>.md: _rounds (pass@1 against rounds), _controls (pass@1 per training set), both CSV
    (DVC plots) and PNG with 95 % CIs, _similarity.png (per-item cosines per round) and _methods.png
    (per-item similarity to HumanEval per method, embedding and TF-IDF). A figure with
    no experiments behind it yet says so, so that every declared plot exists."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds, controls = rounds_rows(runs), [r for r in controls_rows(runs) if r["pass_at_1"] is not None]
    items = similarity_items(deepest(runs)) if runs else []
    written = [write_csv(rounds, ROUNDS_FIELDS, out.with_name(f"{out.name}_rounds.csv")),
               write_csv(controls, CONTROLS_FIELDS, out.with_name(f"{out.name}_controls.csv"))]
    methods = method_groups(runs)[0] if method_groups(runs) else {}
    figures = {"rounds": plt.subplots(figsize=(5, 3.5)), "controls": plt.subplots(figsize=(6, 0.35 * len(controls) + 1.6)),
               "similarity": plt.subplots(figsize=(5, 3.5)), "methods": plt.subplots(1, 2, figsize=(9, 4))}
    axis = figures["rounds"][1]
    for key, label in (("tuned", "HumanEval (tuned)"), ("dev", "dev set (evol stop)")):
        if points := [r for r in rounds if r[f"{key}_pass_at_1"] is not None]:
            y = [r[f"{key}_pass_at_1"] for r in points]
            errors = [[v - r[f"{key}_low"] for v, r in zip(y, points)], [r[f"{key}_high"] - v for v, r in zip(y, points)]]
            axis.errorbar([r["rounds"] for r in points], y, yerr=errors, marker="o", capsize=3, label=label)
            axis.legend()
    axis.set(xlabel="evolution rounds merged", ylabel="pass@1", xticks=[r["rounds"] for r in rounds])
    axis = figures["controls"][1]
    if controls:
        y = [r["pass_at_1"] for r in controls]
        axis.barh([f"{r['training_set']} ({r['samples']:.0f})" for r in controls], y, color=["C1"] + ["C0"] * (len(controls) - 1),
                  xerr=[[v - r["low"] for v, r in zip(y, controls)], [r["high"] - v for v, r in zip(y, controls)]], capsize=3)
        axis.invert_yaxis()
    axis.set(xlabel="HumanEval pass@1 (95 % CI)", title="training set (samples)")
    axis = figures["similarity"][1]
    if items:
        values = {k: [row["similarity"] for row in items if row["round"] == k] for k in sorted({row["round"] for row in items})}
        axis.boxplot(list(values.values()), tick_labels=[f"r{k}\n({len(v)} items)" for k, v in values.items()])
        for position, v in enumerate(values.values(), start=1):  # every item, for the rounds that kept few
            axis.scatter(position + np.linspace(-0.12, 0.12, len(v)), v, s=8, alpha=0.5, color="C0")
    axis.set(xlabel="round", ylabel="cosine to nearest HumanEval prompt")
    rows = {name: similarity_items(run) for name, run in methods.items()}
    for axis, key, label in zip(figures["methods"][1], ("similarity", "tfidf"), ("embedding cosine", "TF-IDF cosine")):
        if values := {name: v for name, items in rows.items() if (v := [row[key] for row in items if key in row])}:
            axis.boxplot(list(values.values()), tick_labels=[f"{name} ({len(v)})" for name, v in values.items()])
            for position, v in enumerate(values.values(), start=1):
                axis.scatter(position + np.linspace(-0.12, 0.12, len(v)), v, s=8, alpha=0.5, color="C0")
            axis.tick_params(axis="x", labelrotation=25)
        axis.set(title=label, ylabel="cosine to nearest HumanEval problem")
    figures["methods"] = (figures["methods"][0], figures["methods"][1][0])
    for name, (figure, axis) in figures.items():
        empty = not axis.has_data()
        if empty:
            axis.text(0.5, 0.5, PLACEHOLDER, ha="center", va="center", transform=axis.transAxes)
        figure.tight_layout()
        written.append(out.with_name(f"{out.name}_{name}.png"))
        figure.savefig(written[-1], dpi=120, metadata={"Description": PLACEHOLDER if empty else f"evolab {name} plot"})
        plt.close(figure)
    return written
