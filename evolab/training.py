"""LoRA fine-tuning of a GGUF student through transformers (dequantised to fp32) and peft."""
from __future__ import annotations

import resource
import time
from pathlib import Path
from typing import Any

from evolab.datasets import Record


def format_prompt(template: dict[str, str], instruction: str, input_text: str = "") -> str:
    if input_text.strip():
        return template["with_input"].format(instruction=instruction, input=input_text)
    return template["no_input"].format(instruction=instruction)


def tokenize_example(tokenizer: Any, template: dict[str, str], record: Record, max_length: int) -> dict[str, list[int]]:
    """Prompt + response + EOS; labels are -100 on the prompt so the loss covers the response only."""
    prompt = format_prompt(template, record["instruction"], record.get("input", ""))
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer("\n" + record["output"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    input_ids = (prompt_ids + response_ids)[:max_length]
    labels = ([-100] * len(prompt_ids) + response_ids)[:max_length]
    return {"input_ids": input_ids, "attention_mask": [1] * len(input_ids), "labels": labels}


def load_gguf_for_training(gguf_path: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf_path.name}
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), **kwargs)
    # fp32: this CPU has no bf16 units, where bf16 matmuls run ~100x slower.
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), dtype=torch.float32, **kwargs)
    # The weights are dequantised on load; clear the GGUF quantizer marks, which make Trainer
    # refuse to train and save_pretrained refuse to save the plain fp32 model this is.
    model.hf_quantizer = None
    if "is_quantized" in vars(model):
        model.is_quantized = False
    vars(model.config).pop("quantization_config", None)
    return tokenizer, model


def train_lora(records: list[Record], gguf_path: Path, model_cfg: dict[str, Any], train_cfg: dict[str, Any],
               out_dir: Path, seed: int) -> dict[str, Any]:
    """Train a LoRA adapter on `records`; write it to out_dir/adapter and return metrics and the loss curve."""
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments, set_seed

    set_seed(seed)
    tokenizer, model = load_gguf_for_training(gguf_path)
    lora = train_cfg["lora"]
    model = get_peft_model(model, LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                                             target_modules=list(model_cfg["lora_targets"]), task_type="CAUSAL_LM"))
    examples = [tokenize_example(tokenizer, train_cfg["template"], r, train_cfg["max_length"]) for r in records]
    args = TrainingArguments(
        output_dir=str(out_dir / "checkpoints"),
        per_device_train_batch_size=train_cfg["micro_batch_size"],
        gradient_accumulation_steps=train_cfg["gradient_accumulation_steps"],
        num_train_epochs=train_cfg["epochs"],
        learning_rate=train_cfg["learning_rate"],
        lr_scheduler_type=train_cfg["lr_scheduler"],
        warmup_steps=train_cfg["warmup"],
        gradient_checkpointing=train_cfg["gradient_checkpointing"],
        gradient_checkpointing_kwargs={"use_reentrant": False},
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=seed,
        data_seed=seed,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_list(examples),
                      data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100))
    start = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - start
    model.save_pretrained(str(out_dir / "adapter"))
    tokens = sum(len(e["input_ids"]) for e in examples) * train_cfg["epochs"]
    losses = [{"step": h["step"], "loss": h["loss"]} for h in trainer.state.log_history if "loss" in h]
    return {
        "metrics": {
            "train_loss": result.training_loss,
            "first_loss": losses[0]["loss"] if losses else None,
            "last_loss": losses[-1]["loss"] if losses else None,
            "steps": trainer.state.global_step,
            "examples": len(examples),
            "train_seconds": round(seconds, 1),
            "tokens_per_second": round(tokens / seconds, 1),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        },
        "losses": losses,
    }
