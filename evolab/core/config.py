"""Parameters: the Hydra resolvers that derive per-round lists, loading and validating params.yaml.

`python -m evolab.core.config [overrides...]` composes conf/ exactly as `dvc exp run` does and
writes params.yaml, so that a plain `dvc repro` sees the same parameters.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import yaml

from evolab.core import schema
from evolab.core.errors import ConfigError, StageError
from evolab.core.paths import COMBINED, STAGE_TIMES, control, generated, round_output
from evolab.core.records import write_whole


def check_rounds(rounds: Any) -> int:
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
        raise ConfigError(
            f"rounds must be a non-negative integer (got {rounds!r}): "
            "use e.g. `dvc exp run -S rounds=3` (WizardCoder used 3; 0 trains on the seed answers alone)."
        )
    return rounds


def evolve_rounds(rounds: Any, evolve: bool = True) -> dict[str, dict[str, Any]]:
    """One entry per round for dvc.yaml's foreach; round k reads round k-1's output. None for a
    method that does not evolve (method.evolve)."""
    n = check_rounds(rounds)
    if not evolve:
        return {}
    return {
        f"r{k}": {"round": k, "input": round_output(k - 1), "output": round_output(k),
                  "stats": f"metrics/evolve/r{k}.json"}
        for k in range(1, n + 1)
    }


def last_round(rounds: Any) -> str:
    """Round k's file holds rounds 0..k (0 = the seed data), so merge needs only the last one.
    (dvc.yaml cannot take a variable-length list of deps.)"""
    return round_output(check_rounds(rounds))


def generate_stages(method: str, generator: str | None) -> dict[str, dict[str, str]]:
    """generate@NAME for a method that generates from real code (method.generator); its settings are
    the method's own, or, for a method that also evolves (MagicoderS), the method's NAME section."""
    if not generator:
        return {}
    return {generator: {"config": "method" if generator == method else f"method.{generator}",
                        "output": generated(generator), "stats": f"metrics/generate/{generator}.json"}}


def combine_stage(rounds: Any, evolve: bool, generator: str | None) -> dict[str, dict[str, str]]:
    """combine@parts for a method with both generated and evolved data: one file for merge (dvc.yaml
    gives each stage a fixed number of deps)."""
    if not (evolve and generator):
        return {}
    return {"parts": {"generated": generated(generator), "evolved": last_round(rounds), "out": COMBINED}}


def merge_input(rounds: Any, evolve: bool, generator: str | None) -> str:
    if evolve and generator:
        return COMBINED
    if generator:
        return generated(generator)
    if evolve:
        return last_round(rounds)
    raise ConfigError("the method neither evolves nor generates: set method.evolve: true or method.generator "
                      "(see conf/method/*.yaml).")


ROUND_FAMILIES = ("alone", "samples", "tokens")  # one control per round
FAMILIES = (*ROUND_FAMILIES, "seed", "unverified")


def control_names(rounds: int, families: list[str]) -> list[str]:
    """The control training sets of conf/controls/ (evolab/curation/controls.py builds them), by name."""
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ConfigError(f"unknown control families {unknown}: choose from {list(FAMILIES)} (controls.families).")
    names = [f"{family}-r{k}" for family in families if family in ROUND_FAMILIES for k in range(rounds + 1)]
    names += ["seed-samples", "seed-tokens"] if "seed" in families else []
    return names + (["unverified-samples"] if "unverified" in families else [])


def control_runs(rounds: Any, families: Any) -> dict[str, dict[str, str]]:
    """One entry per control for dvc.yaml's foreach (control_train@NAME, control_eval@NAME)."""
    return {name: control(name) for name in control_names(check_rounds(rounds), list(families))}


def controls_stage(families: Any) -> dict[str, dict[str, str]]:
    """The controls' data stage exists only when a control is configured (dvc.yaml has no `if`), so
    that with none, a model switch reruns nothing but training and evaluation."""
    return {"sets": {"out": "data/controls"}} if list(families) else {}


def seed_records(path: str, hf_dataset: str | None) -> int | None:
    """Checks the seed file at composition time, so bad seed data fails before any stage runs."""
    from evolab.core.records import check_seed_source

    return check_seed_source({"path": path, "hf_dataset": hf_dataset})


def hub_ids(model: str | None, source: str | None, generator_source: str | None, seeds: str | None) -> list[str]:
    """The student, a method's source code and the seed set, when named by a hub id: each must be here or reachable
    (evolab/core/hub.py), checked at composition."""
    from evolab.core.hub import check_hub

    return check_hub({"model.hf": model, "method.source.hf_dataset": source,
                      "method.oss_instruct.source.hf_dataset": generator_source, "seed_data.hf_dataset": seeds})


def register_resolvers() -> None:
    from omegaconf import OmegaConf

    # Wrapped in OmegaConf containers: OmegaConf.resolve() cannot store a plain dict or list.
    OmegaConf.register_new_resolver("evolab_rounds", lambda n, e: OmegaConf.create(evolve_rounds(n, e)), replace=True)
    OmegaConf.register_new_resolver("evolab_generate", lambda m, g: OmegaConf.create(generate_stages(m, g)), replace=True)
    OmegaConf.register_new_resolver("evolab_combine", lambda n, e, g: OmegaConf.create(combine_stage(n, e, g)), replace=True)
    OmegaConf.register_new_resolver("evolab_merge_input", merge_input, replace=True)
    OmegaConf.register_new_resolver("evolab_last_round", last_round, replace=True)
    OmegaConf.register_new_resolver("evolab_seed_records", seed_records, replace=True)
    OmegaConf.register_new_resolver("evolab_hub", lambda *ids: OmegaConf.create(hub_ids(*ids)), replace=True)
    OmegaConf.register_new_resolver("evolab_controls", lambda n, f: OmegaConf.create(control_runs(n, f)), replace=True)
    OmegaConf.register_new_resolver("evolab_controls_stage", lambda f: OmegaConf.create(controls_stage(f)), replace=True)


def compose(overrides: list[str] | None = None, conf_dir: str | Path = "conf",
            output: str | Path = "params.yaml") -> dict[str, Any]:
    """Compose conf/ into `output` with DVC's own Hydra composition, as `dvc exp run` does."""
    from dvc.utils.hydra import compose_and_dump

    register_resolvers()
    schema.register()
    compose_and_dump(Path(output), str(Path(conf_dir).resolve()), None, "config", ".", overrides or [])
    return yaml.safe_load(Path(output).read_text())


def load(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Read and validate params.yaml before any stage does real work: its keys and types against the schema, its
    derived keys against the settings they derive from, its seed file."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path} is missing: run `python -m evolab.core.config` to compose it from conf/.")
    params = yaml.safe_load(path.read_text())
    check_rounds(params.get("rounds"))
    check_types(params, path)
    check_derived(params, path)
    from evolab.core.records import check_seed_source

    check_seed_source(params["seed_data"])
    return resolve(params)


def resolve(params: dict[str, Any]) -> dict[str, Any]:
    """The settings a run derives from others, decided here once: train.template's `auto` (the student's kind picks
    chat or wizardcoder, evolab/core/prompts.py). Stages get them through load(); a script that composes its own
    parameters passes them through here."""
    from evolab.core.prompts import template_kind

    return {**params, "train": {**params["train"], "template": template_kind(params["train"], params["model"]["kind"])}}


def check_types(params: dict[str, Any], path: Path) -> None:
    """Every key of `params` in the schema (evolab/core/schema.py), each value of its type."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        OmegaConf.merge(schema.of(params), params)
    except (OmegaConfBaseException, KeyError) as err:
        raise ConfigError(f"{path}: {composition_error(err)}. Set the value in conf/ (or with `dvc exp run -S`) and "
                          "compose params.yaml again: `python -m evolab.core.config`.") from None


def check_derived(params: dict[str, Any], path: Path) -> None:
    """The keys the resolvers derive (evolve_rounds and the rest, conf/config.yaml's end) as `rounds`, the method
    and the controls give them: a params.yaml edited by hand would otherwise run the rounds it had before."""
    method, families = params["method"], params["controls"]["families"]
    rounds, evolve, generator = params["rounds"], method["evolve"], method["generator"]
    derived = {"evolve_rounds": evolve_rounds(rounds, evolve), "last_round": last_round(rounds),
               "generate_stages": generate_stages(method["name"], generator),
               "combine_stage": combine_stage(rounds, evolve, generator),
               "merge_input": merge_input(rounds, evolve, generator), "controls_stage": controls_stage(families),
               "control_runs": control_runs(rounds, families)}
    if stale := [key for key, value in derived.items() if params.get(key) != value]:
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


def dump_json(obj: Any, path: str | Path) -> None:
    """A metrics file, written whole or not at all (write_whole)."""
    write_whole(path, [json.dumps(obj, indent=2, sort_keys=True) + "\n"])


def stage_command() -> str:
    """This stage's command as dvc.yaml writes it (`python -m stages.evolve 1`)."""
    return " ".join(["python -m", f"stages.{Path(sys.argv[0]).stem}", *sys.argv[1:]])


def run(main: Callable[[], None]) -> None:
    """Run a stage's main(); bad input ends it with the message, not a traceback. When it ran and how long goes to
    paths.STAGE_TIMES (the ledger's stage times, the MLflow run's start)."""
    start, ok = time.time(), False
    try:
        main()
        ok = True
    except (ConfigError, StageError) as err:
        sys.exit(f"error: {err}")
    finally:
        end = time.time()
        Path(STAGE_TIMES).parent.mkdir(parents=True, exist_ok=True)
        with open(STAGE_TIMES, "a") as log:
            log.write(json.dumps({"cmd": stage_command(), "start": start, "end": end, "seconds": round(end - start, 2),
                                  "ok": ok}) + "\n")


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
