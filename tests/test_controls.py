"""The controls' training sets hold what they claim fixed: samples, or tokens, or the seed data's share."""
from __future__ import annotations

from dataclasses import replace

import pytest
from helpers import compose_params, item

from evolab.core.derived import control_names
from evolab.core.errors import ConfigError
from evolab.core.records import Item
from evolab.curation.controls import build_controls


def merged_data() -> list[Item]:
    """Round 0 (seed): 6 short items; round 1: 4 longer; round 2: 3 longest."""
    data = [item(id=f"s{i}", round=0, instruction="x" * 10, output="y") for i in range(6)]
    data += [item(id=f"a{i}", round=1, instruction="x" * 30, output="y") for i in range(4)]
    data += [item(id=f"b{i}", round=2, instruction="x" * 50, output="y") for i in range(3)]
    return data


def tokens(record: Item) -> int:
    return len(record.instruction) + len(record.output)


def total(records: list[Item]) -> int:
    return sum(tokens(r) for r in records)


def test_each_family_holds_its_quantity_fixed():
    sets = build_controls(merged_data(), 2, ["alone", "samples", "tokens", "seed"], tokens, seed=0)
    assert sorted(sets) == sorted(control_names(2, ["alone", "samples", "tokens", "seed"]))
    assert [len(sets[f"alone-r{k}"]) for k in range(3)] == [6, 4, 3]
    assert all({r.round for r in sets[f"alone-r{k}"]} == {k} for k in range(3))
    assert [len(sets[f"samples-r{k}"]) for k in range(3)] == [3, 3, 3]  # the smallest round's count
    budget = min(total(sets[f"alone-r{k}"]) for k in range(3))  # round 0: 6 x 11 = 66 tokens
    assert budget == 66
    assert [total(sets[f"tokens-r{k}"]) for k in range(3)] == [66, 62, 51]  # as close to 66 as whole items allow
    assert len(sets["seed-samples"]) == 13 and {r.round for r in sets["seed-samples"]} == {0}
    assert len({r.id for r in sets["seed-samples"]}) == 13  # repeats are told apart
    merged_tokens = total(merged_data())
    assert merged_tokens - 11 < total(sets["seed-tokens"]) <= merged_tokens


def test_the_same_seed_gives_the_same_sets_and_another_seed_other_cuts():
    first = build_controls(merged_data(), 2, ["samples"], tokens, seed=0)
    assert first == build_controls(merged_data(), 2, ["samples"], tokens, seed=0)
    others = [build_controls(merged_data(), 2, ["samples"], tokens, seed=s)["samples-r0"] for s in range(1, 6)]
    assert any(o != first["samples-r0"] for o in others)


def test_a_round_that_kept_nothing_is_refused_with_the_fix():
    data = [r for r in merged_data() if r.round != 2]
    with pytest.raises(ConfigError, match="rounds \\[2\\] kept no item"):
        build_controls(data, 2, ["samples"], tokens, seed=0)


def test_the_controls_config_composes_one_train_and_eval_per_control(tmp_path):
    params = compose_params(["controls=paper", "rounds=2"], tmp_path / "params.yaml")
    runs = params["control_runs"]
    assert sorted(runs) == sorted(control_names(2, ["alone", "samples", "tokens", "seed"])) and len(runs) == 11
    assert runs["tokens-r1"]["model"] == "models/controls/tokens-r1"
    assert compose_params(["rounds=2"], tmp_path / "p2.yaml")["control_runs"] == {}
    with pytest.raises(Exception, match="unknown control families"):
        compose_params(["controls.families=[sizes]"], tmp_path / "p3.yaml")


def test_the_unverified_control_is_the_same_items_with_the_answers_they_had_before_verification():
    data = [replace(r, more={"first_output": f"first {r.id}"}) for r in merged_data()]
    data[0].more["first_output"] = data[0].output  # an item whose first answer passed
    sets = build_controls(data, 2, ["unverified"], tokens, seed=0)
    assert list(sets) == ["unverified-samples"] and control_names(2, ["unverified"]) == ["unverified-samples"]
    control = sets["unverified-samples"]
    assert [r.id for r in control] == [r.id for r in data]
    assert [r.output for r in control] == [r.more["first_output"] for r in data]


def test_each_rounds_order_is_drawn_from_its_own_seed_and_cycled_copies_are_numbered():
    from evolab.curation.controls import grow_or_cut, grow_to_tokens, shuffled

    data = merged_data()
    sets = build_controls(data, 2, ["alone", "seed"], tokens, seed=5)
    assert [sets[f"alone-r{k}"] for k in range(3)] == [shuffled([r for r in data if r.round == k], 5 + k) for k in range(3)]
    assert sets["seed-tokens"][0].round == 0 and sets["seed-tokens"][-1].id.startswith("s")
    two = [item(id="a", output="xx"), item(id="b", output="xxx")]
    assert [r.id for r in grow_or_cut(two, 5)] == ["a#0", "b#0", "a#1", "b#1", "a#2"]
    assert [r.id for r in grow_to_tokens(two, 10, lambda r: len(r.output))] == ["a#0", "b#0", "a#1", "b#1"]  # exactly 10


def test_the_seed_and_unverified_controls_need_no_evolved_round_and_an_empty_round_says_what_to_do():
    seeds = [r for r in merged_data() if r.round == 0]
    sets = build_controls(seeds, 1, ["seed", "unverified"], tokens, seed=0)  # round 1 kept nothing
    assert len(sets["seed-samples"]) == 6 and sets["unverified-samples"] == seeds  # no first_output: the output itself
    for family in ("alone", "tokens"):
        with pytest.raises(ConfigError, match=r"rounds \[1\] kept no item, so no control can match them: run with more "
                                              r"seeds or a stronger teacher, or drop the round-matched control families\."):
            build_controls(seeds, 1, [family], tokens, seed=0)
