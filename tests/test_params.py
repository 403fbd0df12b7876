import subprocess

import pytest
import yaml
from helpers import ROOT, compose_params
from omegaconf.errors import OmegaConfBaseException

from evolab.core import config as P
from evolab.core import derived
from evolab.core.errors import ConfigError
from evolab.core.stage import run_stage


def test_committed_params_yaml_is_the_composition_of_conf(tmp_path):
    # The committed file: `dvc exp run -S ...` rewrites the workspace copy for its experiment.
    committed = subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=ROOT, capture_output=True, text=True, check=True)
    composed = compose_params([], tmp_path / "params.yaml")
    assert yaml.safe_load(committed.stdout) == composed, (
        "params.yaml is stale: run `python -m evolab.core.config` and commit it"
    )


def test_rounds_become_one_stage_entry_each_chained_to_the_previous(tmp_path):
    composed = compose_params(["rounds=4"], tmp_path / "p.yaml")
    rounds = composed["evolve_rounds"]
    assert list(rounds) == ["r1", "r2", "r3", "r4"]
    assert rounds["r1"]["input"] == "data/seed.jsonl"
    assert [rounds[f"r{k}"]["input"] for k in (2, 3, 4)] == [rounds[f"r{k}"]["output"] for k in (1, 2, 3)]
    assert composed["last_round"] == rounds["r4"]["output"]


def test_zero_rounds_trains_on_the_seed_answers_alone(tmp_path):
    composed = compose_params(["rounds=0"], tmp_path / "p.yaml")
    assert composed["evolve_rounds"] == {} and composed["merge_input"] == composed["last_round"] == "data/seed.jsonl"


def test_negative_rounds_fail_at_composition_with_the_fix(tmp_path):
    with pytest.raises(OmegaConfBaseException, match=r"rounds must be a non-negative integer.*dvc exp run -S rounds=3"):
        compose_params(["rounds=-2"], tmp_path / "p.yaml")


@pytest.mark.parametrize("override, key", [("rounds=two", "rounds"), ("rounds=2.5", "rounds"),
                                           ("train.epochs=three", "train.epochs"), ("eval.k=[one]", "eval.k"),
                                           ("teacher.parallel=many", "teacher.parallel"),
                                           ("method.elimination.min_added_words=some", "method.elimination.min_added_words")])
def test_a_value_of_the_wrong_type_fails_at_composition_naming_its_key(tmp_path, override, key):
    with pytest.raises(Exception) as failed:
        compose_params([override], tmp_path / "p.yaml")
    assert f"full_key: {key}" in P.composition_error(failed.value) and "could not be converted" in str(failed.value.__cause__)


@pytest.mark.parametrize("override, key, near", [("train.learnig_rate=1e-4", "train.learnig_rate", "learning_rate"),
                                                 ("teacher.base_url=http://x", "teacher.base_url", None),
                                                 ("method.heuristic.x=y", "method.heuristic", "heuristics")])
def test_a_key_not_in_the_schema_fails_at_composition_naming_it(tmp_path, override, key, near):
    """teacher.base_url is the openai backend's: the embedded teacher's schema has no such key."""
    with pytest.raises(Exception) as failed:
        compose_params([override], tmp_path / "p.yaml")
    message = P.composition_error(failed.value)
    assert f"full_key: {key}" in message and (near is None or f"did you mean {near}?" in message)


@pytest.mark.parametrize("group, option", [("teacher", t.stem) for t in sorted((ROOT / "conf/teacher").glob("*.yaml"))]
                         + [("method", m.stem) for m in sorted((ROOT / "conf/method").glob("*.yaml"))])
def test_every_teacher_and_method_config_fits_its_schema(tmp_path, group, option):
    composed = compose_params([f"{group}={option}"], tmp_path / "p.yaml")
    P.typed(composed, tmp_path / "p.yaml")


def test_unknown_model_group_names_the_available_models(tmp_path):
    with pytest.raises(Exception, match=r"(?s)Could not find 'model/nope'.*qwen2.5-coder-0.5b-instruct"):
        compose_params(["model=nope"], tmp_path / "p.yaml")


def test_hand_edited_params_are_validated_before_any_stage_work(tmp_path, monkeypatch):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["rounds"] = -1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match="rounds must be a non-negative integer"):
        P.load(tmp_path / "params.yaml")


def test_the_loaded_experiment_is_read_only_and_a_replaced_copy_is_the_callers(monkeypatch):
    """load() resolves once; a function that changed the experiment it was passed would change what the stages after
    it read. A copy with a change (dataclasses.replace) is the caller's own, as a frozen dataclass's is."""
    from dataclasses import FrozenInstanceError, replace

    from omegaconf import OmegaConf
    from omegaconf.errors import ReadonlyConfigError

    from evolab.core.schema import freeze

    monkeypatch.chdir(ROOT)
    experiment = P.load(ROOT / "params.yaml")
    for change in (lambda: setattr(experiment, "rounds", 3), lambda: setattr(experiment.train, "learning_rate", 1.0),
                   lambda: setattr(experiment.train.lora, "r", 64), lambda: setattr(experiment.evolve_rounds["r1"], "input", "x")):
        with pytest.raises(FrozenInstanceError, match="use dataclasses.replace"):
            change()
    copy = replace(experiment.train, learning_rate=1.0)
    copy.epochs = 7
    assert (copy.learning_rate, copy.epochs) != (experiment.train.learning_rate, experiment.train.epochs)
    untyped = freeze(OmegaConf.create({"backend": "new", "model": "m"}))  # a backend's section with no schema yet
    with pytest.raises(ReadonlyConfigError):
        untyped.model = "other"


def test_every_derived_key_is_checked_against_what_it_derives_from(tmp_path):
    """schema.DERIVED (what the report groups experiments without) is what load() checks, key for key."""
    from evolab.core import derived
    from evolab.core.schema import DERIVED

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    # Another experiment's value of each key (well formed, so that only its disagreement can fail it).
    other = {"evolve_rounds": derived.evolve_rounds(5), "last_round": "stale", "merge_input": "stale",
             "generate_stages": derived.generate_stages("oss_instruct", "oss_instruct"),
             "combine_stage": derived.combine_stage(3, True, "oss_instruct"),
             "controls_stage": derived.controls_stage(["seed"]), "control_runs": derived.control_runs(3, ["alone"])}
    for key in DERIVED:
        assert other[key] != params[key]
        edited = {**params, key: other[key]}
        with pytest.raises(ConfigError, match=f"{key}.*disagree"):
            P.check_derived(P.resolve(edited), edited, tmp_path / "params.yaml")


@pytest.mark.parametrize("edit, message", [
    (lambda p: p.update(rounds=2), r"evolve_rounds, last_round, merge_input disagree with rounds: 2.*"
                                   r"python -m evolab.core.config rounds=2"),
    (lambda p: p["train"].update(epochs="two"), r"params.yaml: Value 'two'.*full_key: train.epochs"),
    (lambda p: p["eval"].update(limt=3), r"params.yaml: Key 'limt' not in 'EvalSettings'.*python -m evolab.core.config"),
    (lambda p: p["verify"].pop("attempts"), r"params.yaml: no value for verify.attempts\..*python -m evolab.core.config"),
])
def test_a_hand_edited_params_yaml_that_disagrees_with_itself_or_the_schema_fails_with_the_fix(tmp_path, edit, message):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    edit(params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match=message):
        P.load(tmp_path / "params.yaml")


@pytest.mark.parametrize("method, evolves, generator, merge_input", [
    ("code_evol", True, None, "data/evolve/r2.jsonl"),
    ("oss_instruct", False, "oss_instruct", "data/generated/oss_instruct.jsonl"),
    ("wavecoder", False, "wavecoder", "data/generated/wavecoder.jsonl"),
    ("magicoder_s", True, "oss_instruct", "data/generated/combined.jsonl"),
])
def test_each_method_composes_its_own_stages(tmp_path, method, evolves, generator, merge_input):
    composed = compose_params([f"method={method}", "rounds=2"], tmp_path / "p.yaml")
    assert bool(composed["evolve_rounds"]) == evolves
    assert list(composed["generate_stages"]) == ([generator] if generator else [])
    assert composed["merge_input"] == merge_input
    assert bool(composed["combine_stage"]) == (evolves and generator is not None)
    if method == "magicoder_s":  # the paper's two settings, each whole: Code Evol-Instruct's and OSS-Instruct's
        code_evol = compose_params(["rounds=2"], tmp_path / "c.yaml")["method"]
        oss = compose_params(["method=oss_instruct"], tmp_path / "o.yaml")["method"]
        assert {k: composed["method"][k] for k in ("template", "heuristics", "sampling", "judge")} == \
            {k: code_evol[k] for k in ("template", "heuristics", "sampling", "judge")}
        assert composed["method"]["oss_instruct"] == oss
        assert composed["generate_stages"]["oss_instruct"]["config"] == "method.oss_instruct"
        assert composed["method"]["train_phases"] == ["oss_instruct", "code_evol"]


def test_the_derived_stage_lists_name_every_file_each_stage_reads_and_writes():
    """What dvc.yaml's foreach loops read: a wrong name or path here is a stage reading the wrong file."""
    assert derived.evolve_rounds(2) == {
        "r1": {"round": 1, "input": "data/seed.jsonl", "output": "data/evolve/r1.jsonl", "stats": "metrics/evolve/r1.json"},
        "r2": {"round": 2, "input": "data/evolve/r1.jsonl", "output": "data/evolve/r2.jsonl", "stats": "metrics/evolve/r2.json"}}
    assert derived.evolve_rounds(2, evolve=False) == {} and derived.last_round(0) == "data/seed.jsonl"
    assert derived.generate_stages("oss_instruct", "oss_instruct") == {"oss_instruct": {
        "config": "method", "output": "data/generated/oss_instruct.jsonl", "stats": "metrics/generate/oss_instruct.json"}}
    assert derived.generate_stages("magicoder_s", "oss_instruct")["oss_instruct"]["config"] == "method.oss_instruct"
    assert derived.generate_stages("code_evol", None) == {}
    assert derived.combine_stage(2, True, "oss_instruct") == {"parts": {
        "generated": "data/generated/oss_instruct.jsonl", "evolved": "data/evolve/r2.jsonl", "out": "data/generated/combined.jsonl"}}
    assert derived.combine_stage(2, False, "oss_instruct") == derived.combine_stage(2, True, None) == {}
    with pytest.raises(ConfigError, match=r"neither evolves nor generates: set method.evolve: true or method.generator "
                                          r"\(see conf/method/\*.yaml\)"):
        derived.merge_input(1, False, None)


def test_controls_are_named_per_family_and_round_and_an_unknown_family_names_the_choices():
    assert derived.control_names(1, ["alone", "tokens", "seed", "unverified"]) == [
        "alone-r0", "alone-r1", "tokens-r0", "tokens-r1", "seed-samples", "seed-tokens", "unverified-samples"]
    assert derived.control_names(0, ["samples"]) == ["samples-r0"] and derived.control_names(2, []) == []
    runs = derived.control_runs(0, ["samples"])
    assert list(runs) == ["samples-r0"] and runs["samples-r0"]["data"] == "data/controls/samples-r0.jsonl"
    assert derived.controls_stage(["seed"]) == {"sets": {"out": "data/controls"}} and derived.controls_stage([]) == {}
    with pytest.raises(ConfigError, match=r"unknown control families \['typo'\]: choose from \['alone', 'samples', 'tokens', "
                                          r"'seed', 'unverified'\] \(controls.families\)"):
        derived.control_names(1, ["alone", "typo"])


def test_composition_resolves_every_derived_entry_for_a_method_that_both_generates_and_evolves(tmp_path):
    composed = compose_params(["method=magicoder_s", "rounds=1", "controls.families=[seed]"], tmp_path / "p.yaml")
    assert composed["evolve_rounds"] == derived.evolve_rounds(1)
    assert composed["generate_stages"] == derived.generate_stages("magicoder_s", "oss_instruct")
    assert composed["combine_stage"] == derived.combine_stage(1, True, "oss_instruct")
    assert (composed["merge_input"], composed["last_round"]) == ("data/generated/combined.jsonl", "data/evolve/r1.jsonl")
    assert composed["controls_stage"] == {"sets": {"out": "data/controls"}}
    assert composed["control_runs"] == derived.control_runs(1, ["seed"])
    assert composed["seed_data"]["records"] == derived.seed_records(str(ROOT / composed["seed_data"]["path"]), None) > 0


def test_params_are_loaded_checked_and_a_bad_stage_input_ends_with_the_message(tmp_path, monkeypatch):
    from evolab.core.errors import StageError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"params.yaml is missing: run `python -m evolab.core.config` to compose it from conf/"):
        P.load()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["seed_data"]["path"] = str(tmp_path / "none.jsonl")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match="none.jsonl does not exist"):
        P.load()
    params["seed_data"]["path"] = str(ROOT / "evolab/data/seeds.jsonl")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert P.load().rounds == params["rounds"]

    def fails():
        raise StageError("the teacher is down")

    with pytest.raises(SystemExit, match="^error: the teacher is down$"):
        run_stage(fails)


def test_the_config_command_writes_params_yaml_from_conf_and_overrides(tmp_path, monkeypatch, capsys):
    for name in ("conf", "evolab"):
        (tmp_path / name).symlink_to(ROOT / name)
    monkeypatch.chdir(tmp_path)
    P.main(["rounds=1"])
    assert capsys.readouterr().out == "wrote params.yaml\n"
    assert yaml.safe_load((tmp_path / "params.yaml").read_text())["last_round"] == "data/evolve/r1.jsonl"


def test_every_resolver_conf_names_is_registered_under_that_name(tmp_path):
    import re

    from omegaconf import OmegaConf

    names = set(re.findall(r"\$\{(evolab_\w+):", (ROOT / "conf/config.yaml").read_text()))
    assert len(names) == 9
    for name in names:
        OmegaConf.clear_resolver(name)
    derived.register_resolvers()
    assert all(OmegaConf.has_resolver(name) for name in names)
    composed = compose_params(["method=oss_instruct"], tmp_path / "p.yaml")
    assert composed["generate_stages"] == derived.generate_stages("oss_instruct", "oss_instruct")  # the method's own settings


PAPER_HUB = {"wizardcoder_paper": ("model.hf=bigcode/starcoder", ["model.hf", "seed_data.hf_dataset"]),
             "magicoder_paper": ("model.hf=codellama/CodeLlama-7b-Python-hf", ["model.hf", "method.source.hf_dataset"]),
             "magicoder_s_paper": ("model.hf=codellama/CodeLlama-7b-Python-hf",
                                   ["model.hf", "method.oss_instruct.source.hf_dataset", "seed_data.hf_dataset"]),
             "wavecoder_paper": ("model.hf=deepseek-ai/deepseek-coder-6.7b-base", ["model.hf", "method.source.hf_dataset"])}


@pytest.mark.parametrize("profile", [pytest.param(name, marks=pytest.mark.slow) if name == "wizardcoder_paper" else name
                                     for name in sorted(PAPER_HUB)])  # the one through `dvc exp run` is slow
def test_a_paper_profile_fails_at_composition_where_its_hub_ids_cannot_be_had(profile, project):
    """Offline (HF_HUB_OFFLINE, as on this machine), a paper profile stops before any stage, naming what it needs;
    the user's command (`dvc exp run -S profile=...`) is checked for one of them."""
    import os
    import sys

    from helpers import dvc, ran

    offline = {**os.environ, "HF_HUB_OFFLINE": "1"}
    params = (project / "params.yaml").read_text()
    if profile == "wizardcoder_paper":
        result = dvc(project, "exp", "run", "-S", f"profile={profile}", check=False, env=offline)
        assert ran(result) == set()
    else:
        result = subprocess.run([sys.executable, "-m", "evolab.core.config", f"profile={profile}"], cwd=project,
                                capture_output=True, text=True, env={**offline, "PYTHONPATH": str(project)})
    assert result.returncode != 0
    assert PAPER_HUB[profile][0] in result.stdout + result.stderr and "download it once" in result.stdout + result.stderr
    assert (project / "params.yaml").read_text() == params


def test_the_paper_profiles_hold_the_papers_values(tmp_path):
    """With a local folder for every hub id, each profile composes with the values its comments cite."""
    def compose(profile: str) -> dict:
        local = [f"{key}={tmp_path}" for key in PAPER_HUB[profile][1]]
        return compose_params([f"profile={profile}", *local], tmp_path / f"{profile}.yaml")

    wizard = compose("wizardcoder_paper")
    assert (wizard["rounds"], wizard["profile"]["seeds"], wizard["seed_data"]["answer"]) == (3, 20000, "reference")
    assert {k: wizard["train"][k] for k in ("learning_rate", "global_batch_size", "epochs", "max_length", "warmup")} == \
        {"learning_rate": 2e-5, "global_batch_size": 512, "epochs": 3, "max_length": 2048, "warmup": 30}
    assert (wizard["teacher"]["model"], wizard["method"]["sampling"]) == ("gpt-3.5-turbo", {"temperature": 1.0, "top_p": 0.95})
    assert wizard["eval"]["sampling"]["n"] == 200 and wizard["launcher"]["name"] == "deepspeed_zero3"
    magicoder = compose("magicoder_paper")
    assert (magicoder["profile"]["seeds"], magicoder["train"]["optim"], magicoder["train"]["max_length"],
            magicoder["train"]["epochs"], magicoder["launcher"]["accelerate"]["num_processes"]) == (80000, "adafactor", 1216, 2, 2)
    magicoder_s = compose("magicoder_s_paper")
    assert magicoder_s["method"]["train_phases"] == ["oss_instruct", "code_evol"] and magicoder_s["seed_data"]["limit"] is None
    assert "source" not in magicoder_s["method"] and magicoder_s["method"]["oss_instruct"]["source"]["hf_column"] == "content"
    wave = compose("wavecoder_paper")
    assert (wave["profile"]["seeds"], wave["train"]["learning_rate"], wave["launcher"]["name"]) == (19915, 5e-5, "fsdp")
    assert all(p["hub"] == [str(tmp_path)] * len(PAPER_HUB[name][1])
               for name, p in [("wizardcoder_paper", wizard), ("wavecoder_paper", wave)])
