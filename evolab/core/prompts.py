"""How an instruction reaches the student: one renderer for training examples and evaluation requests,
so that a tuned model is asked exactly as it was trained and the untuned one exactly as evalplus asks.

`train.template` picks the format: `chat` (the student's own chat template, from its tokenizer; the
system prompt is `train.system_prompt`, by default evalplus's), `wizardcoder` (WizardCoder's Alpaca
template, as the paper trained its base StarCoder) or `auto` (chat for `model.kind: instruct`,
wizardcoder for `model.kind: base`). An instruct student trained on the Alpaca template it never saw
is asked a new way at evaluation: its tuned-vs-untuned difference would measure the template switch,
not the data (reports/finetune_diagnosis.md).
"""
from __future__ import annotations

from typing import Any, Union

from evolab.core.errors import StageError
from evolab.core.records import Item, Problem
from evolab.core.schema import EvalSettings, TrainSettings

Messages = list[dict[str, str]]
Request = Union[str, Messages]  # what a backend is asked: str, a raw completion; messages, a chat

TEMPLATES = ("auto", "chat", "wizardcoder")


def template_kind(name: str, model_kind: str) -> str:
    """`chat` or `wizardcoder`: train.template `name`, with `auto` decided by the student's kind. Called once, when
    the parameters are loaded (evolab/core/config.py, resolve): everything after reads train.template."""
    if name not in TEMPLATES:
        raise StageError(f"train.template must be one of {TEMPLATES}, got {name!r} (conf/train/*.yaml or "
                         "-S train.template=chat).")
    if name == "auto":
        return "chat" if model_kind == "instruct" else "wizardcoder"
    return name


def question_of(instruction: str, input_text: str | None = "") -> str:
    """What the teacher is asked for a record: its instruction, and its input on the next line when it has one."""
    extra = str(input_text or "").strip()
    return f"{instruction.strip()}\n{extra}" if extra else instruction.strip()


def chat_messages(system_prompt: str | None, user: str) -> list[dict[str, str]]:
    return ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [{"role": "user", "content": user}]


def instruction_prompt(kind: str, train_cfg: TrainSettings, instruction: str, input_text: str = "") -> Request:
    """The prompt of an instruction (and its optional input) in the training format `kind`: chat
    messages (the backend or TRL applies the tokenizer's chat template) or the Alpaca text."""
    if kind == "chat":
        user = f"{instruction}\n\n{input_text.strip()}" if input_text.strip() else instruction
        return chat_messages(train_cfg.system_prompt, user)
    if kind != "wizardcoder":
        raise StageError(f"a training template must be chat or wizardcoder, got {kind!r}: pass the parameters "
                         "through evolab.core.config.load() or resolve(), which decide train.template: auto.")
    alpaca = train_cfg.alpaca
    if input_text.strip():
        return alpaca.with_input.format(instruction=instruction, input=input_text)
    return alpaca.no_input.format(instruction=instruction)


def sft_example(kind: str, train_cfg: TrainSettings, item: Item) -> dict[str, Any]:
    """A prompt-completion pair: TRL masks the prompt, so the loss covers the response (and the end of
    turn or EOS) only. Chat: conversational messages; Alpaca: text whose final newline is the token
    boundary, so the response starts with no whitespace."""
    prompt = instruction_prompt(kind, train_cfg, item.instruction, item.input)
    output = item.output.strip()
    if kind == "chat":
        return {"prompt": prompt, "completion": [{"role": "assistant", "content": output}]}
    return {"prompt": prompt, "completion": output}


def eval_request(problem: Problem, style: str, eval_cfg: EvalSettings, train_cfg: TrainSettings | None = None) -> Request:
    """The evaluation request for a problem.

    base (untuned base model): evalplus's direct completion, the prompt stripped plus a newline.
    instruct (untuned instruct model): evalplus's openai path, its system prompt and instruction.
    tuned: the training format; under chat it is the instruct request with the training's system
    prompt (the same by default), under wizardcoder WizardCoder's humaneval_gen.py instruction.
    """
    prompt = problem.prompt.strip()
    if style == "base":
        return prompt + "\n"
    if style == "instruct":
        return chat_messages(eval_cfg.system_prompt, eval_cfg.chat_instruction.format(prompt=prompt))
    if style == "tuned":
        kind = train_cfg.template
        instruction = eval_cfg.chat_instruction if kind == "chat" else eval_cfg.tuned_instruction
        return instruction_prompt(kind, train_cfg, instruction.format(prompt=prompt))
    raise ValueError(f"unknown prompt style '{style}': tuned, instruct or base (model.kind)")
