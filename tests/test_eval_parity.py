"""The evaluation asks as evalplus's codegen asks, and as reports/eval_parity.md was made: these fail when
the prompt, the token budget or the stop rules drift from either."""
from __future__ import annotations

import inspect
import json

import pytest
from helpers import ROOT, default_experiment

from evolab.core.prompts import eval_request
from evolab.core.schema import EvalSettings
from evolab.evaluation.harness import sampling_for
from evolab.evaluation.suites import human_eval_problems

REPORT = ROOT / "reports/eval_parity.json"


@pytest.fixture(scope="module")
def default_eval() -> EvalSettings:
    return default_experiment().eval


def test_the_default_eval_is_the_configuration_the_parity_report_was_made_with(default_eval):
    """Change the system prompt, instruction, budget or stops and this fails until eval_parity is rerun."""
    made_with = json.loads(REPORT.read_text())
    config = made_with["config"]
    assert made_with["max_new_tokens"] == default_eval.max_tokens == config["max_tokens"]
    for key in ("system_prompt", "chat_instruction", "base_stop"):
        assert getattr(default_eval, key) == config[key], key
    assert default_eval.sampling.temperature == config["temperature"] == 0.0
    problem = human_eval_problems()[0]
    assert eval_request(problem, "instruct", default_eval) == config["example_request"]
    chat = sampling_for("instruct", default_eval)
    assert chat.until_code_block == config["until_code_block"] and chat.stop == ()
    assert chat.max_tokens == config["max_tokens"]


def test_the_default_eval_asks_as_the_installed_evalplus_codegen_does(default_eval):
    """Read against evalplus itself: its openai path's system message and instruction, its token budget,
    its direct-completion prompt and stop words (a new evalplus release that changes them fails here)."""
    from evalplus import codegen
    from evalplus.gen.util import openai_request
    from evalplus.provider.base import DecoderBase
    from evalplus.provider.utility import EOS, extra_eos_for_direct_completion

    assert f'system_msg = "{default_eval.system_prompt}"' in inspect.getsource(openai_request.make_request)
    instruction_prefix = default_eval.chat_instruction.split("\n```python")[0]
    assert f'instruction_prefix = "{instruction_prefix}"' in inspect.getsource(codegen.run_codegen)
    assert inspect.signature(DecoderBase.__init__).parameters["max_new_tokens"].default == default_eval.max_tokens
    assert default_eval.base_stop == EOS + extra_eos_for_direct_completion("humaneval")

    problem = human_eval_problems()[0]
    # evalplus: codegen passes prompt.strip() + "\n"; the openai provider strips it again and fences it.
    evalplus_user = instruction_prefix + f"\n```python\n{(problem.prompt.strip() + chr(10)).strip()}\n```"
    assert eval_request(problem, "instruct", default_eval) == [
        {"role": "system", "content": default_eval.system_prompt}, {"role": "user", "content": evalplus_user}]
    assert eval_request(problem, "base", default_eval, {}) == problem.prompt.strip() + "\n"
    base = sampling_for("base", default_eval)
    assert list(base.stop) == default_eval.base_stop and not base.until_code_block
