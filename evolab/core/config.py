"""Parameters: composing conf/ into params.yaml, and loading it, checked (its schema, its derived keys) and resolved.

`python -m evolab.core.config [overrides...]` composes conf/ exactly as `dvc exp run` does and
writes params.yaml, so that a plain `dvc repro` sees the same parameters.
"""
from __future__ import annotations

import dataclasses
import difflib
import sys
from pathlib import Path
from typing import Any

import yaml

from evolab.core import derived, schema
from evolab.core.errors import ConfigError


def compose(overrides: list[str] | None = None, conf_dir: str | Path = "conf",
            output: str | Path = "params.yaml") -> dict[str, Any]:
    """Compose conf/ into `output` with DVC's own Hydra composition, as `dvc exp run` does."""
    from dvc.utils.hydra import compose_and_dump

    derived.register_resolvers()
    schema.register()
    compose_and_dump(Path(output), str(Path(conf_dir).resolve()), None, "config", ".", overrides or [])
    return yaml.safe_load(Path(output).read_text())


def load(path: str | Path = "params.yaml") -> schema.Experiment:
    """params.yaml as the typed experiment (evolab/core/schema.py), read and validated before any stage does real
    work: its keys and types against the schema, its derived keys against the settings they derive from, its seed
    file. Stages pass on the sections a function needs (`params.train`, `params.method`); the training run, the log
    and the plan, which read many sections, take the whole experiment."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path} is missing: run `python -m evolab.core.config` to compose it from conf/.")
    params = yaml.safe_load(path.read_text())
    derived.check_rounds(params.get("rounds"))
    experiment = resolve(params, path)
    check_derived(experiment, params, path)
    from evolab.core.records import check_seed_source

    check_seed_source(experiment.seed_data.path, experiment.seed_data.hf_dataset)
    return experiment


def resolve(params: dict[str, Any], path: str | Path = "params.yaml") -> schema.Experiment:
    """Composed parameters as the typed experiment, read-only (schema.Section), with the settings a run derives from
    others decided here once: train.template's `auto` (the student's kind picks chat or wizardcoder,
    evolab/core/prompts.py). Stages get it through load(); a script that composes its own parameters passes them
    through here."""
    from evolab.core.prompts import template_kind

    experiment = typed(params, Path(path))
    experiment.train.template = template_kind(experiment.train.template, experiment.model.kind)
    return schema.freeze(experiment)


def typed(params: dict[str, Any], path: Path) -> schema.Experiment:
    """`params` as the schema's dataclasses (evolab/core/schema.py): every key in the schema, each value of its type."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    fix = "Set the value in conf/ (or with `dvc exp run -S`) and compose params.yaml again: `python -m evolab.core.config`."
    try:
        merged = OmegaConf.merge(schema.of(params), params)
    except OmegaConfBaseException as err:
        raise ConfigError(f"{path}: {composition_error(err)}. {fix}") from None
    if missing := sorted(OmegaConf.missing_keys(merged)):
        raise ConfigError(f"{path}: no value for {', '.join(missing)}. {fix}")
    experiment = OmegaConf.to_object(merged)
    # A backend or method with no schema yet (schema.of) keeps its section untyped, read by attribute all the same.
    experiment.teacher, experiment.method = (OmegaConf.create(section) if isinstance(section, dict) else section
                                             for section in (experiment.teacher, experiment.method))
    return experiment


def plain(experiment: schema.Experiment) -> dict[str, Any]:
    """The typed experiment as params.yaml's mapping (MLflow's params, the key that marks an experiment logged)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.structured(experiment))


def check_derived(params: schema.Experiment, written: dict[str, Any], path: Path) -> None:
    """The keys the resolvers derive (evolve_rounds and the rest, conf/config.yaml's end), as params.yaml holds them
    (`written`), against what `rounds`, the method and the controls give: a params.yaml edited by hand would otherwise
    run the rounds it had before."""
    method, families = params.method, params.controls.families
    rounds, evolve, generator = params.rounds, method.evolve, method.generator
    expected = {"evolve_rounds": derived.evolve_rounds(rounds, evolve), "last_round": derived.last_round(rounds),
               "generate_stages": derived.generate_stages(method.name, generator),
               "combine_stage": derived.combine_stage(rounds, evolve, generator),
               "merge_input": derived.merge_input(rounds, evolve, generator),
               "controls_stage": derived.controls_stage(families), "control_runs": derived.control_runs(rounds, families)}
    if stale := [key for key, value in expected.items() if written.get(key) != value]:
        raise ConfigError(f"{path}: {', '.join(stale)} disagree with rounds: {rounds} (and the method and controls they "
                          "derive from): params.yaml was edited by hand. Compose it again with the value you want, "
                          f"`python -m evolab.core.config rounds={rounds}` or `dvc exp run -S rounds={rounds}`.")


def composition_error(err: BaseException) -> str:
    """An OmegaConf or Hydra error on one line, with its cause (the key's path and the type it takes)."""
    cause = err.__cause__ or err
    text = str(err) + (f": {cause}" if cause is not err else "")
    key, kind = getattr(cause, "key", None), getattr(cause, "object_type", None)
    if key and dataclasses.is_dataclass(kind) and (near := difflib.get_close_matches(str(key), [f.name for f in dataclasses.fields(kind)], 1)):
        text += f" (did you mean {near[0]}?)"
    return " ".join(text.split())


def main(argv: list[str]) -> None:
    compose(argv)
    print("wrote params.yaml")


if __name__ == "__main__":
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        main(sys.argv[1:])
    except (ConfigError, HydraException, OmegaConfBaseException) as err:
        sys.exit(f"error: {composition_error(err)}")
