import subprocess

import pytest
import yaml
from helpers import ROOT, compose_params
from omegaconf.errors import OmegaConfBaseException

from evolab.core import config as P
from evolab.core.errors import ConfigError


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


@pytest.mark.parametrize("bad", ["-2", "2.5", "three", "true"])
def test_bad_rounds_fail_at_composition_with_the_fix(tmp_path, bad):
    with pytest.raises(OmegaConfBaseException, match=r"rounds must be a non-negative integer.*dvc exp run -S rounds=3"):
        compose_params([f"rounds={bad}"], tmp_path / "p.yaml")


def test_unknown_model_group_names_the_available_models(tmp_path):
    with pytest.raises(Exception, match=r"(?s)Could not find 'model/nope'.*qwen2.5-coder-0.5b-instruct"):
        compose_params(["model=nope"], tmp_path / "p.yaml")


def test_hand_edited_params_are_validated_before_any_stage_work(tmp_path, monkeypatch):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["rounds"] = -1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match="rounds must be a non-negative integer"):
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
