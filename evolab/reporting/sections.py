"""The report's markdown sections, each beside the paper's figures (conf/report/): the rounds sweep with the evol-stop
rule, the controls, the base models, the methods, the verification and the per-round data, with paired tests."""
from __future__ import annotations

from statistics import quantiles

from evolab.evaluation.diff import BELOW, diff_runs, resolution
from evolab.evaluation.suites import metric_suite
from evolab.reporting.paper import Paper, PaperMethod
from evolab.reporting.runs import Run, control_names, dev_suite, method_groups, per_problem, same_setup, similarity_items, sweeps


def evol_stop(dev_by_round: dict[int, float]) -> int:
    """WizardCoder v2's rule: evolve while the dev set improves; at the first drop, halt and keep the
    round before it."""
    rounds = sorted(dev_by_round)
    for previous, current in zip(rounds, rounds[1:]):
        if dev_by_round[current] < dev_by_round[previous]:
            return previous
    return rounds[-1]


def pass_cell(run: Run, prefix: str, suite: str) -> str:
    value = run.metrics.get(f"{prefix}.{suite}.pass_at_1")
    if value is None:
        return "–"
    low, high = run.metrics.get(f"{prefix}.{suite}.pass_at_1_ci95_low"), run.metrics.get(f"{prefix}.{suite}.pass_at_1_ci95_high")
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def paired_cell(a: Run, a_prefix: str, b: Run, b_prefix: str, suite: str, noise: dict[str, int] | None = None) -> str:
    """b against a on the problems both solved or failed: won / lost, the exact McNemar p and the minimum
    detectable net difference at the benchmark's measured noise (`noise`: problems on which repeated runs
    disagree, conf/report/*.yaml), with "below what this benchmark resolves here" when the difference is under
    it; a dash where either run has no per-problem results (logged before they were recorded)."""
    first, second = per_problem(a, a_prefix), per_problem(b, b_prefix)
    if not first or not second:
        return "–"
    d = diff_runs(first, second, key="base_correct" if not suite.endswith("_plus") else "correct")
    r = resolution(len(d.won), len(d.lost), (noise or {}).get(suite.removesuffix("_plus"), 0))
    note = f"; {BELOW}" if r.reads == BELOW else ""
    return f"{r.won} / {r.lost} (p = {r.mcnemar_p:.2g}; MDE {r.mde if r.mde is not None else '–'}{note})"


def rounds_section(runs: list[Run], paper: Paper) -> list[str]:
    lines = ["## Rounds", "", f"Paper: {paper.rounds.note} {paper.evol_stop}", ""]
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
            paper_items = paper.rounds.merged_items.get(k, "–")
            step = paired_cell(previous, "eval", run, "eval", suite, paper.noise) if previous else "–"
            lines.append(f"| {k} | {run.metrics.get('data.merged_items', 0):.0f} ({paper_items}) | {pass_cell(run, 'eval', suite)} | "
                         f"{pass_cell(run, 'dev', dev_suite(run))} | {pass_cell(run, 'baseline', suite)} | "
                         f"{paired_cell(run, 'baseline', run, 'eval', suite, paper.noise)} | {step} |")
            previous = run
        if len(dev) >= 2:
            lines += ["", f"Evol stop on the dev set picks round **{evol_stop(dev)}** (paper: {paper.rounds.peak_round})."]
        lines.append("")
    return lines


def controls_section(runs: list[Run], paper: Paper) -> list[str]:
    lines = ["## Complexity vs quantity (controls)", "", f"Paper (Table 5, HumanEval pass@1 %, each round alone): {paper.controls.note}", ""]
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
            row = paper.controls.rows.get(int(which[1:])) if which.startswith("r") else None
            paper_cell = f"{row.samples_matched} / {row.tokens_matched}" if row and family in ("samples", "tokens") else "–"
            lines.append(f"| {name} | {run.metrics.get(f'controls_data.{name}.samples', 0):.0f} | "
                         f"{run.metrics.get(f'controls_data.{name}.tokens', 0):.0f} | {pass_cell(run, f'controls.{name}.eval', suite)} | "
                         f"{paired_cell(run, 'eval', run, f'controls.{name}.eval', suite, paper.noise)} | {paper_cell} |")
        lines.append("")
    return lines


def models_section(runs: list[Run], paper: Paper) -> list[str]:
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
                         f"{pass_cell(run, 'eval', suite)} | {paired_cell(run, 'baseline', run, 'eval', suite, paper.noise)} | "
                         f"{pass_cell(run, 'dev', dev_suite(run))} |")
    return lines + [""]


def methods_section(runs: list[Run], paper: Paper) -> list[str]:
    """The generation methods side by side under one setup: data kept, decontamination, similarity, pass@1."""
    cfg = paper.methods
    lines = ["## Methods", "", f"{cfg.note} {cfg.tfidf_note}", ""]
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
            row = cfg.rows.get(name, PaperMethod("–"))
            tfidf = f"{m['similarity.all.item_to_test_tfidf.mean']:.3f}" if "similarity.all.item_to_test_tfidf.mean" in m else "–"
            embedding = (f"{m['similarity.all.item_to_test.mean']:.3f} ({m['similarity.all.item_to_test.max']:.3f})"
                         if "similarity.all.item_to_test.mean" in m else "–")
            lines.append(f"| {name} | {m.get('decontamination.kept', 0):.0f} | {m.get('decontamination.removed', 0):.0f} | "
                         f"{embedding} | {tfidf} ({row.tfidf_mean or '–'}) | {pass_cell(run, 'eval', suite)} | "
                         f"{paired_cell(run, 'baseline', run, 'eval', suite, paper.noise)} | {row.paper} | "
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


def statistic(metrics: dict[str, float], key: str) -> str:
    """A similarity statistic, or a dash for a round that kept nothing."""
    return f"{metrics[key]:.3f}" if key in metrics else "–"


TEACHER_STAGES = ("seed", "evolve", "generate", "verify")


def tokens_per(metrics: dict[str, float], prefix: str, items: float) -> str:
    """The teacher tokens (prompt and completion) of the stages under `prefix` per item, or a dash."""
    spent = sum(v for k, v in metrics.items() if k.startswith(prefix) and k.endswith((".prompt_tokens", ".completion_tokens")))
    return f"{spent / items:,.0f}" if spent and items else "–"


def data_section(run: Run, paper: Paper) -> list[str]:
    """The experiment's per-round data, their similarity statistics and distributions."""
    rounds = int(run.param("rounds"))
    lines = ["## Per-round data and similarity to HumanEval", "", f"From the experiment with rounds {rounds}, model "
             f"{run.param('model.name')}. {paper.similarity}", "",
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
    for k in sorted({row.round for row in items}):
        values = sorted(row.similarity for row in items if row.round == k)
        p25, median, p75 = quantiles(values, n=4, method="inclusive") if len(values) > 1 else values * 3
        lines.append(f"| {k} | {len(values)} | {values[0]:.3f} | {p25:.3f} | {median:.3f} | {p75:.3f} | {values[-1]:.3f} | "
                     f"{sum(v >= 0.8 for v in values)} |")
    return lines + [""]
