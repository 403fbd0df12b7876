"""The keys the DAG derives from the settings: Hydra resolvers (registered through hydra_plugins/ for `dvc exp run`)
that turn `rounds`, the method and the controls into dvc.yaml's per-round, per-generator and per-control stage
lists (conf/config.yaml's end), and check the seed file and hub ids when the experiment is composed."""
from __future__ import annotations

from typing import Any

from evolab.core.errors import ConfigError
from evolab.core.paths import COMBINED, control, generated, round_output


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

    return check_seed_source(path, hf_dataset)


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
