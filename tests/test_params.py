import subprocess
from pathlib import Path

import pytest
import yaml
from omegaconf.errors import OmegaConfBaseException

from evolab.core import config as P
from evolab.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_committed_params_yaml_is_the_composition_of_conf(tmp_path):
    # The committed file: `dvc exp run -S ...` rewrites the workspace copy for its experiment.
    committed = subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=ROOT, capture_output=True, text=True, check=True)
    composed = P.compose(conf_dir=ROOT / "conf", output=tmp_path / "params.yaml")
    assert yaml.safe_load(committed.stdout) == composed, (
        "params.yaml is stale: run `python -m evolab.core.config` and commit it"
    )


def test_rounds_become_one_stage_entry_each_chained_to_the_previous(tmp_path):
    composed = P.compose(["rounds=4"], conf_dir=ROOT / "conf", output=tmp_path / "p.yaml")
    rounds = composed["evolve_rounds"]
    assert list(rounds) == ["r1", "r2", "r3", "r4"]
    assert rounds["r1"]["input"] == "data/seed.jsonl"
    assert [rounds[f"r{k}"]["input"] for k in (2, 3, 4)] == [rounds[f"r{k}"]["output"] for k in (1, 2, 3)]
    assert composed["last_round"] == rounds["r4"]["output"]


@pytest.mark.parametrize("bad", ["0", "-2", "2.5", "three", "true"])
def test_bad_rounds_fail_at_composition_with_the_fix(tmp_path, bad):
    with pytest.raises(OmegaConfBaseException, match=r"rounds must be a positive integer.*dvc exp run -S rounds=3"):
        P.compose([f"rounds={bad}"], conf_dir=ROOT / "conf", output=tmp_path / "p.yaml")


def test_unknown_model_group_names_the_available_models(tmp_path):
    with pytest.raises(Exception, match=r"(?s)Could not find 'model/nope'.*qwen2.5-coder-0.5b-instruct"):
        P.compose(["model=nope"], conf_dir=ROOT / "conf", output=tmp_path / "p.yaml")


def test_hand_edited_params_are_validated_before_any_stage_work(tmp_path, monkeypatch):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["rounds"] = 0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match="rounds must be a positive integer"):
        P.load(tmp_path / "params.yaml")


@pytest.mark.parametrize("method, evolves, generator, merge_input", [
    ("code_evol", True, None, "data/evolve/r2.jsonl"),
    ("oss_instruct", False, "oss_instruct", "data/generated/oss_instruct.jsonl"),
    ("wavecoder", False, "wavecoder", "data/generated/wavecoder.jsonl"),
    ("magicoder_s", True, "oss_instruct", "data/generated/combined.jsonl"),
])
def test_each_method_composes_its_own_stages(tmp_path, method, evolves, generator, merge_input):
    composed = P.compose([f"method={method}", "rounds=2"], conf_dir=ROOT / "conf", output=tmp_path / "p.yaml")
    assert bool(composed["evolve_rounds"]) == evolves
    assert list(composed["generate_stages"]) == ([generator] if generator else [])
    assert composed["merge_input"] == merge_input
    assert bool(composed["combine_stage"]) == (evolves and generator is not None)
    if method == "magicoder_s":  # the paper's two settings, each whole: Code Evol-Instruct's and OSS-Instruct's
        code_evol = P.compose(["rounds=2"], conf_dir=ROOT / "conf", output=tmp_path / "c.yaml")["method"]
        oss = P.compose(["method=oss_instruct"], conf_dir=ROOT / "conf", output=tmp_path / "o.yaml")["method"]
        assert {k: composed["method"][k] for k in ("template", "heuristics", "sampling", "judge")} == \
            {k: code_evol[k] for k in ("template", "heuristics", "sampling", "judge")}
        assert composed["method"]["oss_instruct"] == oss
        assert composed["generate_stages"]["oss_instruct"]["config"] == "method.oss_instruct"
        assert composed["method"]["train_phases"] == ["oss_instruct", "code_evol"]
