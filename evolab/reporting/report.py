"""The ablation report: the rounds sweep with the evol-stop rule, the controls, the base models, the
per-round data and their similarity to HumanEval, each beside the paper's figures (conf/report/).

    python -m evolab.reporting.report --source dvc      # from `dvc exp show` (this repository's experiments)
    python -m evolab.reporting.report --source mlflow   # from the MLflow store: the same tables
    python -m evolab.reporting.report --out reports/ablation   # also writes reports/ablation.md, _rounds.csv, _rounds.png

Both sources name metrics as the log stage does (stages/log.py), so the tables are the same.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from statistics import quantiles
from typing import Any, Callable

import yaml

from evolab.core.paths import SIMILARITY
from evolab.core.schema import DERIVED
from evolab.evaluation.diff import BELOW, diff_runs, resolution
from evolab.evaluation.suites import metric_suite
from evolab.reporting.tracking import flatten, numeric, per_problem_path, tracking_uri


@dataclass
class Run:
    name: str
    params: dict[str, str]
    metrics: dict[str, float]
    read: Callable[[str], str] = field(repr=False, compare=False)  # an output file of the experiment, as text

    def param(self, key: str) -> str:
        return self.params.get(key, "")


def from_mlflow(uri: str) -> list[Run]:
    import mlflow

    client = mlflow.MlflowClient(uri)  # not mlflow.set_tracking_uri: that exports the URI to every subprocess
    experiment = client.get_experiment_by_name("evolab")
    runs, token = [], None
    while experiment is not None:
        page = client.search_runs([experiment.experiment_id], page_token=token)
        runs += page
        if not (token := page.token):
            break

    def reader(run_id: str) -> Callable[[str], str]:
        def read(path: str) -> str:  # "" for a run logged without that artifact
            if path not in {f.path for f in client.list_artifacts(run_id, str(Path(path).parent))}:
                return ""
            with tempfile.TemporaryDirectory() as tmp:
                return Path(client.download_artifacts(run_id, path, tmp)).read_text()
        return read

    return [Run(r.info.run_name, dict(r.data.params), dict(r.data.metrics), reader(r.info.run_id))
            for r in runs if "evolab_key" in r.data.tags]  # not a log that a kill left unfinished


def from_dvc(repo: Path) -> list[Run]:
    shown = json.loads(subprocess.run([str(Path(sys.executable).parent / "dvc"), "exp", "show", "--json", "--all-commits"], cwd=repo,
                                      capture_output=True, text=True, check=True).stdout)
    import dvc.api
    from dvc.exceptions import PathMissingError

    def reader(rev: str) -> Callable[[str], str]:
        def read(path: str) -> str:  # "" for an experiment from before that output existed
            try:
                return dvc.api.read(path, repo=str(repo), rev=rev)
            except PathMissingError:
                return ""
        return read

    runs = []
    for baseline in shown:
        for exp in baseline.get("experiments") or []:
            if (exp.get("executor") or {}).get("state") not in (None, "success"):
                continue  # queued, running (its rev is the word "workspace") or failed: no results to read
            for rev in exp["revs"]:
                data = rev["data"]
                params = {k: str(v) for k, v in flatten(data["params"]["params.yaml"]["data"]).items()}
                metrics: dict[str, float] = {}
                for path, content in data["metrics"].items():
                    metrics.update(numeric(content.get("data") or {}, path))
                runs.append(Run(exp.get("name") or rev["rev"][:7], params, metrics, reader(rev["rev"])))
    return runs


def evol_stop(dev_by_round: dict[int, float]) -> int:
    """WizardCoder v2's rule: evolve while the dev set improves; at the first drop, halt and keep the
    round before it."""
    rounds = sorted(dev_by_round)
    for previous, current in zip(rounds, rounds[1:]):
        if dev_by_round[current] < dev_by_round[previous]:
            return previous
    return rounds[-1]


def dev_suite(run: Run) -> str:
    """The metric key of the experiment's dev set (evol_stop.benchmark; evolab-dev for one logged before it was a parameter)."""
    return metric_suite(run.param("evol_stop.benchmark") or "evolab-dev")


def pass_cell(run: Run, prefix: str, suite: str) -> str:
    value = run.metrics.get(f"{prefix}.{suite}.pass_at_1")
    if value is None:
        return "–"
    low, high = run.metrics.get(f"{prefix}.{suite}.pass_at_1_ci95_low"), run.metrics.get(f"{prefix}.{suite}.pass_at_1_ci95_high")
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def per_problem(run: Run, prefix: str) -> dict[str, dict[str, Any]]:
    """The per-problem results behind a pass@1 cell (`eval`, `baseline`, `dev`, `controls.<name>.eval`)."""
    return {row["task_id"]: row for row in map(json.loads, filter(str.strip, run.read(per_problem_path(prefix)).splitlines()))}


def paired_cell(a: Run, a_prefix: str, b: Run, b_prefix: str, suite: str, noise: dict[str, int] | None = None) -> str:
    """b against a on the problems both solved or failed: won / lost, the exact McNemar p and the minimum
    detectable net difference at the benchmark's measured noise (`noise`: problems on which repeated runs
    disagree, conf/report/*.yaml), with "below what this benchmark resolves here" when the difference is under
    it; a dash where either run has no per-problem results (logged before they were recorded)."""
    first, second = per_problem(a, a_prefix), per_problem(b, b_prefix)
    if not first or not second:
        return "–"
    d = diff_runs(first, second, key="base_correct" if not suite.endswith("_plus") else "correct")
    r = resolution(len(d["won"]), len(d["lost"]), (noise or {}).get(suite.removesuffix("_plus"), 0))
    note = f"; {BELOW}" if r["reads"] == BELOW else ""
    return f"{r['won']} / {r['lost']} (p = {r['mcnemar_p']:.2g}; MDE {r['mde'] if r['mde'] is not None else '–'}{note})"


def same_setup(runs: list[Run], vary: str) -> list[list[Run]]:
    """Runs grouped by every setting but `vary` (and the controls): one group per comparable sweep."""
    ignored = {vary, "controls.families"}
    groups: dict[str, list[Run]] = {}
    for run in runs:
        key = json.dumps({k: v for k, v in run.params.items() if k.split(".")[0] not in DERIVED
                          and k not in ignored and not k.startswith(vary + ".")}, sort_keys=True)
        groups.setdefault(key, []).append(run)
    return list(groups.values())


def sweeps(runs: list[Run]) -> list[dict[int, Run]]:
    """Each rounds sweep (runs alike but for rounds and the controls, at least two rounds values) by round."""
    by_setup = [{int(r.param("rounds")): r for r in group} for group in same_setup(runs, "rounds")]
    return [sweep for sweep in by_setup if len(sweep) >= 2]


def rounds_section(runs: list[Run], paper: dict[str, Any]) -> list[str]:
    lines = ["## Rounds", "", f"Paper: {paper['rounds']['note']} {paper['evol_stop']}", ""]
    for by_round in sweeps(runs):
        first = next(iter(by_round.values()))
        suite = metric_suite(first.param("eval.benchmark"))
        dev = {k: r.metrics[f"dev.{dev_suite(r)}.pass_at_1"] for k, r in by_round.items() if f"dev.{dev_suite(r)}.pass_at_1" in r.metrics}
        lines += [f"Model {first.param('model.name')}, teacher {first.param('teacher.model')}, "
                  f"profile {first.param('profile.name')}:", "",
                  "| rounds | merged items (paper) | tuned pass@1 [95% CI] | dev pass@1 [95% CI] | untuned pass@1 | "
                  "tuned vs untuned: won / lost (McNemar p) | vs the row above |",
                  "|---|---|---|---|---|---|---|"]
        previous = None
        for k, run in sorted(by_round.items()):
            paper_items = paper["rounds"]["merged_items"].get(k, "–")
            step = paired_cell(previous, "eval", run, "eval", suite, paper.get("noise")) if previous else "–"
            lines.append(f"| {k} | {run.metrics.get('data.merged_items', 0):.0f} ({paper_items}) | {pass_cell(run, 'eval', suite)} | "
                         f"{pass_cell(run, 'dev', dev_suite(run))} | {pass_cell(run, 'baseline', suite)} | "
                         f"{paired_cell(run, 'baseline', run, 'eval', suite, paper.get('noise'))} | {step} |")
            previous = run
        if len(dev) >= 2:
            lines += ["", f"Evol stop on the dev set picks round **{evol_stop(dev)}** (paper: {paper['rounds']['peak_round']})."]
        lines.append("")
    return lines


def control_names(run: Run) -> list[str]:
    """The controls an experiment trained and evaluated (`controls.<name>.eval.*` metrics)."""
    return sorted({k.split(".")[1] for k in run.metrics if k.startswith("controls.") and k.endswith(".eval.problems")})


def controls_section(runs: list[Run], paper: dict[str, Any]) -> list[str]:
    lines = ["## Complexity vs quantity (controls)", "", f"Paper (Table 5, HumanEval pass@1 %, each round alone): {paper['controls']['note']}", ""]
    with_controls = [(run, names) for run in runs if (names := control_names(run))]
    if not with_controls:
        lines += ["No experiment with controls yet (`dvc exp run -S controls=paper`, or `-S 'controls.families=[seed]'`).", ""]
    for run, names in with_controls:
        suite = metric_suite(run.param("eval.benchmark"))
        lines += [f"Rounds {run.param('rounds')}, model {run.param('model.name')}, teacher {run.param('teacher.model')} (merged set: "
                  f"{pass_cell(run, 'eval', suite)}):", "",
                  "| control | samples | tokens | pass@1 [95% CI] | vs the merged set: won / lost (McNemar p) | "
                  "paper (samples-matched / tokens-matched) |", "|---|---|---|---|---|---|"]
        for name in names:
            family, _, which = name.partition("-")
            row = paper["controls"]["rows"].get(int(which[1:])) if which.startswith("r") else None
            paper_cell = f"{row['samples_matched']} / {row['tokens_matched']}" if row and family in ("samples", "tokens") else "–"
            lines.append(f"| {name} | {run.metrics.get(f'controls_data.{name}.samples', 0):.0f} | "
                         f"{run.metrics.get(f'controls_data.{name}.tokens', 0):.0f} | {pass_cell(run, f'controls.{name}.eval', suite)} | "
                         f"{paired_cell(run, 'eval', run, f'controls.{name}.eval', suite, paper.get('noise'))} | {paper_cell} |")
        lines.append("")
    return lines


def models_section(runs: list[Run], paper: dict[str, Any]) -> list[str]:
    groups = [group for group in same_setup(runs, "model") if len({r.param("model.name") for r in group}) >= 2]
    if not groups:
        return ["## Base models", "", "No experiments that differ only in the model yet (`dvc exp run -S model=gemma-3-270m`, ...).", ""]
    lines = ["## Base models", "", "| model | rounds | untuned pass@1 | tuned pass@1 | tuned vs untuned: won / lost (McNemar p) | "
             "dev pass@1 |", "|---|---|---|---|---|---|"]
    for group in groups:
        by_model = {r.param("model.name"): r for r in sorted(group, key=lambda r: r.param("controls.families") == "[]")}
        for _, run in sorted(by_model.items()):  # one row per model (an experiment with controls trains the same)
            suite = metric_suite(run.param("eval.benchmark"))
            lines.append(f"| {run.param('model.name')} | {run.param('rounds')} | {pass_cell(run, 'baseline', suite)} | "
                         f"{pass_cell(run, 'eval', suite)} | {paired_cell(run, 'baseline', run, 'eval', suite, paper.get('noise'))} | "
                         f"{pass_cell(run, 'dev', dev_suite(run))} |")
    return lines + [""]


def method_groups(runs: list[Run]) -> list[dict[str, Run]]:
    """Experiments alike but for the method (at least two methods), one per method, by name."""
    groups = [{r.param("method.name"): r for r in group} for group in same_setup(runs, "method")]
    return [dict(sorted(g.items())) for g in groups if len(g) >= 2]


def methods_section(runs: list[Run], paper: dict[str, Any]) -> list[str]:
    """The generation methods side by side under one setup: data kept, decontamination, similarity, pass@1."""
    cfg = paper["methods"]
    lines = ["## Methods", "", f"{cfg['note']} {cfg['tfidf_note']}", ""]
    if not method_groups(runs):
        lines += ["No experiments that differ only in the method yet (`dvc exp run -S method=oss_instruct`, ...).", ""]
    for by_method in method_groups(runs):
        first = next(iter(by_method.values()))
        suite = metric_suite(first.param("eval.benchmark"))
        lines += [f"Model {first.param('model.name')}, teacher {first.param('teacher.model')}, profile {first.param('profile.name')}:", "",
                  "| method | trained items | removed by decontamination | similarity to HumanEval, embedding mean (max) "
                  "| TF-IDF mean (paper) | tuned pass@1 [95% CI] | tuned vs untuned: won / lost (McNemar p) | paper "
                  "| teacher tokens per trained item |", "|---|---|---|---|---|---|---|---|---|"]
        for name, run in by_method.items():
            m = run.metrics
            row = cfg["rows"].get(name, {})
            tfidf = f"{m['similarity.all.item_to_test_tfidf.mean']:.3f}" if "similarity.all.item_to_test_tfidf.mean" in m else "–"
            embedding = (f"{m['similarity.all.item_to_test.mean']:.3f} ({m['similarity.all.item_to_test.max']:.3f})"
                         if "similarity.all.item_to_test.mean" in m else "–")
            lines.append(f"| {name} | {m.get('decontamination.kept', 0):.0f} | {m.get('decontamination.removed', 0):.0f} | "
                         f"{embedding} | {tfidf} ({row.get('tfidf_mean') or '–'}) | {pass_cell(run, 'eval', suite)} | "
                         f"{paired_cell(run, 'baseline', run, 'eval', suite, paper.get('noise'))} | {row.get('paper', '–')} | "
                         f"{tokens_per(m, TEACHER_STAGES, m.get('decontamination.kept', 0))} |")
        lines.append("")
    return lines


def verify_groups(metrics: dict[str, float]) -> list[tuple[str, str]]:
    """(label, metric prefix) of verify.json's groups: every item, then each round, then each method (part)."""
    groups = [("all", "verify")]
    for kind in ("round", "part"):
        names = sorted({k.split(".")[2] for k in metrics if k.startswith(f"verify.by_{kind}.") and k.endswith(".items")})
        groups += [(name, f"verify.by_{kind}.{name}") for name in names]
    return groups


def verification_section(runs: list[Run]) -> list[str]:
    """Per experiment that verified its data (verify.mode: tests): the share of answers that passed their tests and
    the teacher calls spent per kept item, over every item, per round and per method (metrics/verify.json)."""
    verified = [run for run in runs if run.param("verify.mode") == "tests" and "verify.items" in run.metrics]
    lines = ["## Verification", ""]
    if not verified:
        return lines + ["No experiment verified its data yet (`dvc exp run -S verify.mode=tests`).", ""]
    lines += ["| experiment | method | rounds | items | passed | pass share | passed at the first answer | "
              "teacher calls per kept item |", "|---|---|---|---|---|---|---|---|"]
    for run in verified:
        m = run.metrics
        for label, prefix in verify_groups(m):
            calls = m.get(f"{prefix}.calls_per_kept")
            lines.append(f"| {run.name} | {run.param('method.name')} | {run.param('rounds')} ({label}) | {m[f'{prefix}.items']:.0f} | "
                         f"{m[f'{prefix}.passed']:.0f} | {m[f'{prefix}.pass_share']:.2f} | {m[f'{prefix}.first_attempt_passed']:.0f} | "
                         f"{f'{calls:.1f}' if calls is not None else '–'} |")
    return lines + [""]


def deepest(runs: list[Run]) -> Run:
    """The Code Evol-Instruct experiment with the most rounds (MagicoderS's round 0 also holds its OSS-Instruct part)."""
    return max(runs, key=lambda r: (r.param("method.name") in ("", "code_evol"), int(r.param("rounds") or 0)))


def statistic(metrics: dict[str, float], key: str) -> str:
    """A similarity statistic, or a dash for a round that kept nothing."""
    return f"{metrics[key]:.3f}" if key in metrics else "–"


TEACHER_STAGES = ("seed", "evolve", "generate", "verify")


def tokens_per(metrics: dict[str, float], prefix: str, items: float) -> str:
    """The teacher tokens (prompt and completion) of the stages under `prefix` per item, or a dash."""
    spent = sum(v for k, v in metrics.items() if k.startswith(prefix) and k.endswith((".prompt_tokens", ".completion_tokens")))
    return f"{spent / items:,.0f}" if spent and items else "–"


def data_section(run: Run, paper: dict[str, Any]) -> list[str]:
    """The experiment's per-round data, their similarity statistics and distributions."""
    rounds = int(run.param("rounds"))
    lines = ["## Per-round data and similarity to HumanEval", "", f"From the experiment with rounds {rounds}, model "
             f"{run.param('model.name')}. {paper['similarity']}", "",
             "| round | evolved | kept | instruction tokens (kept, mean) | cosine to nearest HumanEval prompt: mean / median / p95 | "
             "per HumanEval problem, nearest item: mean / max | teacher tokens per kept item |", "|---|---|---|---|---|---|---|"]
    for k in range(rounds + 1):
        m = run.metrics
        sim = f"similarity.r{k}"
        evolved = f"{m.get(f'evolve.r{k}.items', 0):.0f}" if k else "(seed)"
        kept = f"{m.get(f'evolve.r{k}.kept', 0):.0f}" if k else f"{m.get('data.items_per_round.r0', 0):.0f}"
        tokens = m.get(f"evolve.r{k}.mean_instruction_tokens")
        lines.append(f"| {k} | {evolved} | {kept} | {f'{tokens:.0f}' if tokens else '–'} | "
                     f"{' / '.join(statistic(m, f'{sim}.item_to_test.{s}') for s in ('mean', 'median', 'p95'))} | "
                     f"{' / '.join(statistic(m, f'{sim}.test_to_item.{s}') for s in ('mean', 'max'))} | "
                     f"{tokens_per(m, f'evolve.r{k}.' if k else 'seed.', float(kept))} |")
    items = similarity_items(run)
    if not items:
        return lines + ["", "No per-item similarities recorded in this experiment.", ""]
    lines += ["", "Distribution per round of each item's cosine to its nearest HumanEval prompt (the similarity stage's "
              "per-item rows; the plot is `_similarity.png`):", "",
              "| round | items | min | p25 | median | p75 | max | items ≥ 0.8 |", "|---|---|---|---|---|---|---|---|"]
    for k in sorted({row["round"] for row in items}):
        values = sorted(row["similarity"] for row in items if row["round"] == k)
        p25, median, p75 = quantiles(values, n=4, method="inclusive") if len(values) > 1 else values * 3
        lines.append(f"| {k} | {len(values)} | {values[0]:.3f} | {p25:.3f} | {median:.3f} | {p75:.3f} | {values[-1]:.3f} | "
                     f"{sum(v >= 0.8 for v in values)} |")
    return lines + [""]


def similarity_items(run: Run) -> list[dict[str, Any]]:
    """Per training item: its round, nearest HumanEval problem and cosine (results/similarity.jsonl)."""
    return [json.loads(line) for line in run.read(SIMILARITY).splitlines() if line.strip()]


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
            axis.text(0.5, 0.5, "no experiments for this plot yet", ha="center", va="center", transform=axis.transAxes)
        figure.tight_layout()
        written.append(out.with_name(f"{out.name}_{name}.png"))
        figure.savefig(written[-1], dpi=120, metadata={"Description": PLACEHOLDER if empty else f"evolab {name} plot"})
        plt.close(figure)
    return written


def distinct(runs: list[Run]) -> list[Run]:
    """One run per distinct experiment (DVC keeps a rerun as another experiment; MLflow logs it once)."""
    seen: dict[str, Run] = {}
    for run in runs:
        seen.setdefault(json.dumps([run.params, run.metrics], sort_keys=True), run)
    return sorted(seen.values(), key=lambda r: json.dumps(r.params, sort_keys=True))


def report(runs: list[Run], paper: dict[str, Any], source: str) -> str:
    runs = distinct(runs)
    lines = [f"# Ablations beside {paper['paper']}", "", f"Source: {source}, {len(runs)} experiments. pass@1 with 95 % bootstrap "
             "CIs over problems; a row marked partial in its metrics covers a subset of the benchmark. Each paired test gives "
             "its MDE: the smallest net number of problems (won - lost) it detects with 80 % power at the measured noise "
             "(the larger of its own discordant problems and the benchmark's repeated-run disagreement, "
             f"{paper.get('noise') or 'none recorded'}); a difference under it is noise, whatever its sign.", ""]
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
    text = report(runs, yaml.safe_load(args.paper.read_text()), args.source)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text(text + "\n")
        write_plots(distinct(runs), args.out)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
