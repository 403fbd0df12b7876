"""The evol-stop rule as WizardCoder v2 states it: evolve while the dev set improves."""
from evolab.report import evol_stop


def test_evol_stop_keeps_the_round_before_the_first_drop():
    assert evol_stop({1: 0.2, 2: 0.3, 3: 0.35, 4: 0.3}) == 3
    assert evol_stop({1: 0.4, 2: 0.3, 3: 0.5}) == 1  # halted at the first drop, even if a later round recovers
    assert evol_stop({1: 0.1, 2: 0.1, 3: 0.2}) == 3  # no drop: the last round
    assert evol_stop({2: 0.5}) == 2
