"""Supervised fine-tuning of the student with TRL's SFTTrainer: LoRA (peft) or full fine-tuning, on one
CPU or under `accelerate launch` across GPUs, resumable from its last checkpoint.

The student is an embedded GGUF (dequantised to float weights), a hub name or a local checkpoint.
"""
from __future__ import annotations

import resource
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable

from evolab.core.errors import StageError
from evolab.core.models import student_ref
from evolab.core.prompts import sft_example
from evolab.core.records import Item
from evolab.core.schema import Launcher, ModelSettings, TrainSettings

PRECISIONS = ("no", "bf16", "fp16")
WARMUP_STEPS = 2  # steps left out of the steady tokens/s (steady_rate)


def example_text(tokenizer: Any, example: dict[str, Any]) -> str:
    """The whole text a prompt-completion example trains on (chat messages through the tokenizer's template)."""
    if isinstance(example["prompt"], str):
        return example["prompt"] + example["completion"]
    return tokenizer.apply_chat_template(example["prompt"] + example["completion"], tokenize=False)


def check_chat_template(tokenizer: Any, kind: str, ref: str) -> None:
    if kind == "chat" and not getattr(tokenizer, "chat_template", None):
        raise StageError(f"train.template=chat, but the student '{ref}' has no chat template: use "
                         "-S train.template=wizardcoder (or auto, which picks it for model.kind: base).")


def load_tokenizer(ref: str) -> Any:
    from transformers import AutoTokenizer

    from evolab.core.models import resolve_hf

    path, kwargs = resolve_hf(ref)
    return AutoTokenizer.from_pretrained(path, **kwargs)


def load_student(ref: str, dtype: str = "float32", attn_implementation: str | None = None) -> tuple[Any, Any]:
    """(tokenizer, model) for training. fp32 on CPU: without bf16 units, bf16 matmuls run ~100x slower.
    attn_implementation: None for transformers' default (sdpa), flash_attention_2 for packed rows."""
    import torch
    from transformers import AutoModelForCausalLM

    from evolab.core.models import resolve_hf

    path, kwargs = resolve_hf(ref)
    try:
        tokenizer = load_tokenizer(ref)
        attention = {"attn_implementation": attn_implementation} if attn_implementation else {}
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype), **attention, **kwargs)
    except OSError as err:
        raise StageError(f"Cannot load the student '{ref}': {err}. Set model.hf to a local checkpoint folder or, "
                         "online, a hub name (e.g. Qwen/Qwen2.5-Coder-1.5B), or model.gguf to a .gguf file.") from err
    if kwargs.get("gguf_file"):
        # The weights were dequantised on load; the GGUF quantizer marks would make Trainer refuse
        # to train and save_pretrained refuse to save the plain float model this now is.
        model.hf_quantizer = None
        if "is_quantized" in vars(model):
            model.is_quantized = False
        vars(model.config).pop("quantization_config", None)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, model


def accumulation_steps(global_batch: int, micro_batch: int, world_size: int) -> int:
    per_step = micro_batch * world_size
    if global_batch % per_step:
        raise StageError(f"train.global_batch_size={global_batch} is not a multiple of micro_batch_size x processes "
                         f"= {micro_batch} x {world_size}: change one of them so that it divides.")
    return global_batch // per_step


def lora_config(train_cfg: TrainSettings, model_cfg: ModelSettings) -> Any:
    from peft import LoraConfig

    lora = train_cfg.lora
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=list(model_cfg.lora_targets), task_type="CAUSAL_LM")


def sft_fields(train_cfg: TrainSettings) -> dict[str, Any]:
    """The training settings that TRL's SFTConfig takes as they are, under the field names the schema gives them
    (core/schema.py's TrainSettings: `sft("...")`)."""
    return {f.metadata["sft"]: getattr(train_cfg, f.name) for f in fields(TrainSettings) if "sft" in f.metadata}


def sft_config(train_cfg: TrainSettings, checkpoint_dir: Path, seed: int, world_size: int, use_cpu: bool) -> Any:
    from trl import SFTConfig

    precision = train_cfg.mixed_precision
    if precision not in PRECISIONS:
        raise StageError(f"train.mixed_precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp16" and use_cpu:
        raise StageError("train.mixed_precision=fp16 needs a GPU: on a CPU use -S train=lora_cpu "
                         "or -S train.mixed_precision=no.")
    return SFTConfig(
        **sft_fields(train_cfg),
        output_dir=str(checkpoint_dir),
        gradient_accumulation_steps=accumulation_steps(train_cfg.global_batch_size, train_cfg.micro_batch_size,
                                                       world_size),
        max_steps=train_cfg.max_steps or -1,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        gradient_checkpointing_kwargs={"use_reentrant": False},
        completion_only_loss=True,
        logging_steps=1,
        save_strategy="steps",
        save_total_limit=2,
        include_num_input_tokens_seen="non_padding",
        report_to=[],
        use_cpu=use_cpu,
        seed=seed,
        data_seed=seed,
        disable_tqdm=True,
    )


def progress_callback(clock: list[list[float]]) -> Any:
    """Prints one line per optimizer step and per checkpoint (what a researcher, and the resume test, watches),
    and appends [step, seconds, tokens seen] to `clock` at the end of each step, for steady_rate."""
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
            if state.is_world_process_zero and logs and "loss" in logs:
                print(f"train: step {state.global_step}/{state.max_steps} loss {logs['loss']:.4f}", flush=True)

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            clock.append([state.global_step, time.perf_counter(), state.num_input_tokens_seen])

        def on_save(self, args, state, control, **kwargs):  # noqa: ANN001
            if state.is_world_process_zero:
                print(f"train: saved checkpoint-{state.global_step}", flush=True)

    return Progress()


def steady_rate(clocks: list[list[list[float]]], warmup: int = WARMUP_STEPS) -> float | None:
    """Tokens per second after each phase's first `warmup` steps (kernel compilation, allocator growth, the
    first DeepSpeed/FSDP gathers): the tokens seen from the end of step `warmup` to the end of the last step,
    over that time, summed over the phases; None when no phase ran more than `warmup` steps."""
    tokens = seconds = 0.0
    for clock in clocks:
        if len(clock) > warmup:
            (_, start, seen), (_, end, last) = clock[warmup - 1], clock[-1]
            tokens, seconds = tokens + last - seen, seconds + end - start
    return round(tokens / seconds, 1) if seconds else None


def split_phases(items: list[Item], order: list[str] | None) -> list[list[Item]]:
    """The training phases: all items at once, or one phase per part in `order` (MagicoderS: OSS-Instruct
    data, then Evol-Instruct data); a part with no items is no phase."""
    if not order:
        return [items]
    unknown = sorted({item.part for item in items} - set(order))
    if unknown:
        raise StageError(f"records of part(s) {unknown} are in no training phase: add them to method.train_phases {order}.")
    return [phase for part in order if (phase := [item for item in items if item.part == part])]


def check_devices(train_cfg: TrainSettings, launcher: Launcher, gpus: int, recipe: str = "the train recipe") -> None:
    """Refuse what would silently run differently from the recipe (the fix in each message): a bf16/fp16
    recipe with no GPU (it would train on the CPU, ~100x slower), several GPUs under launcher=none
    (transformers would wrap the model in DataParallel and multiply the batch by the GPU count), and more
    visible GPUs than launched processes (the rest would idle while the metrics say nothing of it)."""
    half = train_cfg.mixed_precision in ("bf16", "fp16") or train_cfg.dtype in ("bfloat16", "float16")
    if half and gpus == 0:
        raise StageError(f"{recipe} is a GPU recipe (dtype {train_cfg.dtype}, mixed_precision {train_cfg.mixed_precision}) "
                         "but no GPU is visible: on this CPU it would train ~100x slower. Use -S train=lora_cpu, or run "
                         "where torch sees CUDA.")
    processes = int((launcher.accelerate or {}).get("num_processes") or 1)
    if launcher.name == "none" and gpus > 1:
        raise StageError(f"{gpus} GPUs are visible but launcher=none: transformers would train with DataParallel and a "
                         f"global batch {gpus}x the recipe's. Use -S launcher=ddp -S launcher.accelerate.num_processes={gpus}, "
                         "or CUDA_VISIBLE_DEVICES=0 for one GPU.")
    if launcher.name != "none" and gpus > processes:
        raise StageError(f"{gpus} GPUs are visible but launcher {launcher.name} starts {processes} processes: "
                         f"{gpus - processes} would idle. Set -S launcher.accelerate.num_processes={gpus}, or "
                         f"CUDA_VISIBLE_DEVICES to {processes} GPUs.")


def check_packing(train_cfg: TrainSettings) -> None:
    """TRL packs examples best-fit into one padding-free row with position_ids (trl 1.16, SFTTrainer:
    packing with bfd implies padding_free); only FlashAttention reads position_ids as sequence boundaries.
    Under sdpa or eager attention, each example would attend to the others packed in its row."""
    if train_cfg.packing and not str(train_cfg.attn_implementation or "").startswith("flash_attention"):
        raise StageError("train.packing flattens several examples into one row, which only FlashAttention keeps apart "
                         f"(attn_implementation is {train_cfg.attn_implementation or 'the default, sdpa'}): set "
                         "-S train.attn_implementation=flash_attention_2 (pip install flash-attn, on a GPU) or -S train.packing=false.")


def last_complete_checkpoint(phase_dir: Path) -> str | None:
    """The highest checkpoint-N whose save finished, or None. transformers' get_last_checkpoint takes the
    highest folder even when a kill cut its save short (a multi-GB ZeRO-3 save takes minutes); its Trainer
    writes trainer_state.json after the weights, optimizer, scheduler and RNG state, so that file marks a
    complete checkpoint (transformers 5.23, Trainer._save_checkpoint)."""
    found = sorted((int(p.name.split("-")[1]), p) for p in phase_dir.glob("checkpoint-*")
                   if p.is_dir() and p.name.split("-")[1].isdigit()) if phase_dir.is_dir() else []
    for _, path in reversed(found):
        if (path / "trainer_state.json").is_file():
            return str(path)
        print(f"train: skipping {path.name}: its save did not finish (no trainer_state.json)", flush=True)
    return None


def phase_dirs(checkpoint_dir: Path, phases: int) -> list[Path]:
    """Where each phase keeps its checkpoints, its finished save (`final`) and its result (`result.json`)."""
    return [checkpoint_dir / f"phase{k + 1}" for k in range(phases)] if phases > 1 else [checkpoint_dir]


def saved_as(train_cfg: TrainSettings) -> str:
    return "adapter" if train_cfg.method == "lora" else "model"


@dataclass
class PhaseResult:
    """What one phase's training did: its result.json, written last (what marks the phase done)."""
    examples: int
    steps: int
    losses: list[dict[str, float]]     # {step, loss} of each logged step, as result.json has always held them
    resumed_from: int                  # the checkpoint step it resumed from; 0 for none
    seconds: float
    tokens: int
    processes: int
    distributed: str                   # accelerate's: NO, MULTI_CPU, MULTI_GPU, FSDP, DEEPSPEED
    peak_rss_gb: float
    clock: list[list[float]]           # [step, seconds, tokens seen] of each step
    peak_gpu_memory_gb: float | None
    # What the caching allocator held at most: what the GPU had to have free (absent from older results).
    peak_gpu_reserved_gb: float | None = None


def train_phase(k: int, phases: list[list[Item]], model_cfg: ModelSettings, train_cfg: TrainSettings, out_dir: Path,
                checkpoint_dir: Path, seed: int) -> PhaseResult:
    """Fine-tune phase k in this process (and the other processes of its `accelerate launch`): from the
    student, or from phase k-1's save; resume from the phase's last complete checkpoint; save the adapter
    (LoRA) or the model (full) to out_dir when it is the last phase, else to its `final` folder, and write
    its `result.json` last (what marks the phase done). Each phase gets processes of its own because
    accelerate allows one Accelerator with a DeepSpeed plugin per process (accelerate 1.15,
    AcceleratorState): MagicoderS's second SFTTrainer could not be made in the first one's process."""
    import torch
    from accelerate import PartialState
    from datasets import Dataset
    from transformers import PrinterCallback, set_seed
    from trl import SFTTrainer

    from evolab.core.stage import dump_json

    if train_cfg.method not in ("lora", "full"):
        raise StageError(f"train.method must be lora or full, got {train_cfg.method!r}")
    set_seed(seed)
    use_cpu = not torch.cuda.is_available()
    state = PartialState(cpu=use_cpu)
    dirs = phase_dirs(checkpoint_dir, len(phases))
    previous = dirs[k - 1] / "final" if k else None
    # The training arguments before the model: under a ZeRO-3 launcher they switch on transformers'
    # is_deepspeed_zero3_enabled(), and only then does from_pretrained load each rank's shard (zero.Init)
    # instead of the whole model on every rank.
    args = sft_config(train_cfg, dirs[k], seed, state.num_processes, use_cpu)
    check_packing(train_cfg)
    full_from_previous = previous is not None and train_cfg.method == "full"
    tokenizer, model = load_student(str(previous) if full_from_previous else student_ref(model_cfg), train_cfg.dtype,
                                    train_cfg.attn_implementation)
    if previous is not None and train_cfg.method == "lora":
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(previous), is_trainable=True)  # the same adapter trains on
    if state.is_main_process:
        from transformers.integrations import is_deepspeed_zero3_enabled

        print(f"train: student loaded, partitioned by ZeRO-3 at load: {is_deepspeed_zero3_enabled()}", flush=True)
    kind = train_cfg.template
    check_chat_template(tokenizer, kind, student_ref(model_cfg))
    dataset = Dataset.from_list([sft_example(kind, train_cfg, r) for r in phases[k]])
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=lora_config(train_cfg, model_cfg) if train_cfg.method == "lora" and k == 0 else None,
                         callbacks=[progress_callback(clock := [])])
    trainer.remove_callback(PrinterCallback)  # its raw dicts; progress_callback prints one line a step
    resume = last_complete_checkpoint(dirs[k])
    phase = f" phase {k + 1}" if len(phases) > 1 else ""
    if resume and state.is_main_process:
        print(f"train: resuming{phase} from {Path(resume).name}", flush=True)
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - start
    save = out_dir / saved_as(train_cfg) if k == len(phases) - 1 else dirs[k] / "final"
    trainer.save_model(str(save))
    if train_cfg.method == "full" and state.is_main_process:
        tokenizer.save_pretrained(str(save))
    result = PhaseResult(
        examples=len(dataset), steps=trainer.state.global_step,
        losses=[{"step": h["step"], "loss": h["loss"]} for h in trainer.state.log_history if "loss" in h],
        resumed_from=int(Path(resume).name.split("-")[-1]) if resume else 0, seconds=round(seconds, 1),
        tokens=trainer.state.num_input_tokens_seen, processes=state.num_processes,
        distributed=trainer.accelerator.distributed_type.value,
        peak_rss_gb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        clock=[[step, round(t - start, 3), seen] for step, t, seen in clock],
        peak_gpu_memory_gb=round(torch.cuda.max_memory_allocated() / 2**30, 2) if not use_cpu else None,
        peak_gpu_reserved_gb=round(torch.cuda.max_memory_reserved() / 2**30, 2) if not use_cpu else None)
    if state.is_main_process:
        dump_json(asdict(result), dirs[k] / "result.json")
    return result


@dataclass
class TrainResult:
    """What training did over all phases: metrics/train.json, and the loss curve ((step, loss) of each logged step)."""
    metrics: dict[str, Any]
    losses: list[tuple[int, float]]


def train(phases: list[list[Item]], model_cfg: ModelSettings, train_cfg: TrainSettings, out_dir: Path,
          checkpoint_dir: Path, seed: int, launch: Callable[[int], None] | None = None) -> TrainResult:
    """Fine-tune on each phase's records in turn, the next phase continuing from the last one's save: in this
    process, or, with `launch`, each phase in an `accelerate launch` of its own (train_phase). A phase done
    before an interruption is not trained again. Returns the metrics and the loss curve over all phases."""
    import json

    dirs = phase_dirs(checkpoint_dir, len(phases))
    earlier = set()  # phases an earlier session finished
    for k in range(len(phases)):
        if k < len(phases) - 1 and (dirs[k] / "result.json").is_file() and (dirs[k] / "final").is_dir():
            earlier.add(k)
            print(f"train: phase {k + 1} already trained", flush=True)
            continue
        launch(k) if launch else train_phase(k, phases, model_cfg, train_cfg, out_dir, checkpoint_dir, seed)
    results = [PhaseResult(**json.loads((d / "result.json").read_text())) for d in dirs]
    losses, offset, resumed = [], 0, 0
    for k, result in enumerate(results):
        losses += [(offset + h["step"], h["loss"]) for h in result.losses]
        if k in earlier:  # where this session started: after the phases done before it ...
            resumed = offset + result.steps
        elif result.resumed_from:  # ... and at the checkpoint it resumed from
            resumed = offset + result.resumed_from
        offset += result.steps
    seconds, tokens = sum(r.seconds for r in results), sum(r.tokens for r in results)
    metrics = {
        "method": train_cfg.method,
        "template": train_cfg.template,
        # Over every logged step, including those before a resume (the checkpoint keeps the history).
        "train_loss": sum(loss for _, loss in losses) / len(losses) if losses else None,
        "first_loss": losses[0][1] if losses else None,
        "last_loss": losses[-1][1] if losses else None,
        "steps": offset,
        "examples": sum(r.examples for r in results),
        "phases": [{"examples": r.examples, "steps": r.steps} for r in results],
        "processes": results[-1].processes,
        "distributed": results[-1].distributed,
        "resumed_from_step": resumed,
        "train_seconds": round(seconds, 1),
        "tokens": tokens,
        # Tokens of this session only: a resumed run's clock started at the checkpoint.
        "tokens_per_second": round(tokens / seconds, 1) if not resumed and seconds else None,
        "steady_tokens_per_second": steady_rate([r.clock for r in results]) if not resumed else None,
        "peak_rss_gb": max(r.peak_rss_gb for r in results),  # of the main process, over the phases
        "peak_gpu_memory_gb": max((r.peak_gpu_memory_gb for r in results if r.peak_gpu_memory_gb is not None), default=None),
        "peak_gpu_reserved_gb": max((r.peak_gpu_reserved_gb for r in results if r.peak_gpu_reserved_gb is not None),
                                    default=None),
    }
    return TrainResult(metrics, losses)


def merge_adapter(model_cfg: ModelSettings, train_cfg: TrainSettings, adapter_dir: Path, out_dir: Path) -> Path:
    """Base + adapter folded into one checkpoint, for servers that take no adapter or run faster without."""
    from peft import PeftModel

    tokenizer, base = load_student(student_ref(model_cfg), train_cfg.dtype)
    PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload().save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return out_dir
