"""The report's figures: the rounds sweep and the controls as CSV (DVC plots) and PNG with 95 % CIs, the per-item
similarity to HumanEval per round and per method."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from evolab.core.records import Nearest
from evolab.evaluation.suites import metric_suite
from evolab.reporting.runs import Run, control_names, deepest, dev_suite, method_groups, similarity_items, sweeps


@dataclass(frozen=True)
class RoundPoint:
    """An experiment of the rounds sweep: its rounds, and the tuned student's and the dev set's pass@1 with their 95 %
    interval (a row of _rounds.csv, which dvc.yaml's plots read by these names)."""
    rounds: int
    tuned_pass_at_1: float | None
    tuned_low: float | None
    tuned_high: float | None
    dev_pass_at_1: float | None
    dev_low: float | None
    dev_high: float | None

    def interval(self, key: str) -> tuple[float | None, float | None, float | None]:
        """The tuned student's (`tuned`) or the dev set's (`dev`) pass@1 and its interval."""
        return getattr(self, f"{key}_pass_at_1"), getattr(self, f"{key}_low"), getattr(self, f"{key}_high")


@dataclass(frozen=True)
class ControlPoint:
    """A training set of the controls (the merged set first): its samples and pass@1 with its 95 % interval (a row of
    _controls.csv)."""
    training_set: str
    samples: float | None
    pass_at_1: float | None
    low: float | None
    high: float | None


def interval(run: Run, key: str) -> tuple[float | None, float | None, float | None]:
    """pass@1 at a metric key (`eval.humaneval`, `dev.evolab_dev`, ...) and its 95 % interval."""
    return (run.metrics.get(f"{key}.pass_at_1"), run.metrics.get(f"{key}.pass_at_1_ci95_low"),
            run.metrics.get(f"{key}.pass_at_1_ci95_high"))


def rounds_rows(runs: list[Run]) -> list[RoundPoint]:
    """The longest rounds sweep as rows (for the CSV DVC plots and the PNG)."""
    if not (found := sweeps(runs)):
        return []
    by_round = max(found, key=len)
    suite = metric_suite(next(iter(by_round.values())).param("eval.benchmark"))
    return [RoundPoint(k, *interval(r, f"eval.{suite}"), *interval(r, f"dev.{dev_suite(r)}")) for k, r in sorted(by_round.items())]


def controls_rows(runs: list[Run]) -> list[ControlPoint]:
    """The first experiment with controls: the merged set and each control, for the CSV and the PNG."""
    for run in runs:
        if names := control_names(run):
            suite = metric_suite(run.param("eval.benchmark"))
            prefixes = [("merged", "eval", "data.merged_items")] + [(n, f"controls.{n}.eval", f"controls_data.{n}.samples") for n in names]
            return [ControlPoint(name, run.metrics.get(samples), *interval(run, f"{prefix}.{suite}"))
                    for name, prefix, samples in prefixes]
    return []


def write_csv(rows: list[Any], kind: type, path: Path) -> Path:
    """Dataclass rows of `kind` as CSV, a column per field."""
    import csv

    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(kind)])
        writer.writeheader()
        writer.writerows(asdict(row) for row in rows)
    return path


PLACEHOLDER = "no experiments for this plot yet"  # the PNG's Description when it shows no data


def plot_rounds(axis: Any, rounds: list[RoundPoint]) -> None:
    for key, label in (("tuned", "HumanEval (tuned)"), ("dev", "dev set (evol stop)")):
        if points := [(r.rounds, *r.interval(key)) for r in rounds if r.interval(key)[0] is not None]:
            ks, y, low, high = zip(*points)
            errors = [[v - lo for v, lo in zip(y, low)], [hi - v for v, hi in zip(y, high)]]
            axis.errorbar(ks, y, yerr=errors, marker="o", capsize=3, label=label)
            axis.legend()
    axis.set(xlabel="evolution rounds merged", ylabel="pass@1", xticks=[r.rounds for r in rounds])


def plot_controls(axis: Any, controls: list[ControlPoint]) -> None:
    if controls:
        y = [r.pass_at_1 for r in controls]
        axis.barh([f"{r.training_set} ({r.samples:.0f})" for r in controls], y, color=["C1"] + ["C0"] * (len(controls) - 1),
                  xerr=[[v - r.low for v, r in zip(y, controls)], [r.high - v for v, r in zip(y, controls)]], capsize=3)
        axis.invert_yaxis()
    axis.set(xlabel="HumanEval pass@1 (95 % CI)", title="training set (samples)")


def spread(axis: Any, values: dict[str, list[float]]) -> None:
    """A box per group with every value on it (for the groups that hold few)."""
    import numpy as np

    axis.boxplot(list(values.values()), tick_labels=list(values))
    for position, v in enumerate(values.values(), start=1):
        axis.scatter(position + np.linspace(-0.12, 0.12, len(v)), v, s=8, alpha=0.5, color="C0")


def plot_similarity(axis: Any, items: list[Nearest]) -> None:
    if items:
        by_round = {k: [row.similarity for row in items if row.round == k] for k in sorted({row.round for row in items})}
        spread(axis, {f"r{k}\n({len(v)} items)": v for k, v in by_round.items()})
    axis.set(xlabel="round", ylabel="cosine to nearest HumanEval prompt")


def plot_methods(axes: Any, by_method: dict[str, list[Nearest]]) -> None:
    for axis, key, label in zip(axes, ("similarity", "tfidf"), ("embedding cosine", "TF-IDF cosine")):
        values = {name: [x for row in items if (x := getattr(row, key)) is not None] for name, items in by_method.items()}
        if values := {f"{name} ({len(v)})": v for name, v in values.items() if v}:
            spread(axis, values)
            axis.tick_params(axis="x", labelrotation=25)
        axis.set(title=label, ylabel="cosine to nearest HumanEval problem")


def write_plots(runs: list[Run], out: Path) -> list[Path]:
    """Beside <out>.md: _rounds (pass@1 against rounds), _controls (pass@1 per training set), both CSV
    (DVC plots) and PNG with 95 % CIs, _similarity.png (per-item cosines per round) and _methods.png
    (per-item similarity to HumanEval per method, embedding and TF-IDF). A figure with
    no experiments behind it yet says so, so that every declared plot exists."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds, controls = rounds_rows(runs), [r for r in controls_rows(runs) if r.pass_at_1 is not None]
    written = [write_csv(rounds, RoundPoint, out.with_name(f"{out.name}_rounds.csv")),
               write_csv(controls, ControlPoint, out.with_name(f"{out.name}_controls.csv"))]
    methods = method_groups(runs)[0] if method_groups(runs) else {}
    panels = [("rounds", plot_rounds, rounds, {"figsize": (5, 3.5)}),
              ("controls", plot_controls, controls, {"figsize": (6, 0.35 * len(controls) + 1.6)}),
              ("similarity", plot_similarity, similarity_items(deepest(runs)) if runs else [], {"figsize": (5, 3.5)}),
              ("methods", plot_methods, {name: similarity_items(run) for name, run in methods.items()},
               {"ncols": 2, "figsize": (9, 4)})]
    for name, plot, data, size in panels:
        figure, axes = plt.subplots(**size)
        plot(axes, data)
        axis = axes[0] if name == "methods" else axes  # the methods figure says it is empty in its first panel
        empty = not axis.has_data()
        if empty:
            axis.text(0.5, 0.5, PLACEHOLDER, ha="center", va="center", transform=axis.transAxes)
        figure.tight_layout()
        written.append(out.with_name(f"{out.name}_{name}.png"))
        figure.savefig(written[-1], dpi=120, metadata={"Description": PLACEHOLDER if empty else f"evolab {name} plot"})
        plt.close(figure)
    return written
