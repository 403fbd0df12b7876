"""Every GPU path once, short, for a lease on a GPU machine: what each costs in time, tokens/s, MFU, HFU and memory.

    bash benchmarks/gpu_lease.sh --call 1                       # on the lent machine (docs/gpu.md: the exact calls)
    bash benchmarks/gpu_rehearsal.sh                            # the same on this CPU, under the machine's packages
    python benchmarks/gpu_paths.py [--dry-run] [--only STEP,...] [--work DIR] [--model M]

Steps, each in a scratch copy of the project and its own processes, under a time limit (--limit); a step that
fails is recorded with its output's tail and the next one runs; a step whose packages are missing is skipped
with the reason. Each step's figures go to reports/gpu_paths{,_dryrun}.{md,json} and to $OUT as soon as it
ends, so a command stopped at its limit keeps what finished. --work keeps the student, the cache and the
results between commands: `--only` then splits a run into calls of at most 10 minutes.

- env: Python, GPUs and their memory, the versions of torch, transformers, accelerate, peft, trl, datasets, pyarrow, numpy,
  deepspeed, vllm, flash-attn;
- student: --model, or a Qwen2.5-Coder architecture of --size with random weights and the tokenizer of
  --tokenizer (the embedded model's, saved by benchmarks/gpu_carry.py): speed and memory do not depend on
  the weights' values; pass@1 then means nothing;
- lora_ddp: `train=lora_gpu launcher=ddp` on every GPU;
- zero3_full: `train=wizardcoder_full launcher=deepspeed_zero3`, the save loaded back whole;
- fsdp_full: `train=wizardcoder_full launcher=fsdp` (FSDP2), the save loaded back whole;
- magicoder_s: `method=magicoder_s`, two phases (OSS-Instruct data, then Evol-Instruct data) under ZeRO-3,
  each in its own `accelerate launch`, the second from the first's save;
- vllm_teacher: seed answers and one Code Evol-Instruct round with `teacher=vllm`;
- vllm_eval_merged, vllm_eval_adapter: the LoRA run's merged model, then base + adapter, on HumanEval.

The training steps run --steps optimizer steps on rows of the recipe's full length (--max-length tokens:
seed answers repeated, cut there); tokens/s is steady_tokens_per_second, after the first 2 steps
(evolab.training.sft.steady_rate). Full fine-tuning runs bf16 (WizardCoder's recipe says fp16: DeepSpeed's
first loss scale of 2^16 skips the first steps on overflow, which could leave a short run untrained).
MFU counts the model's FLOPs a trained token: 6 x the matrix parameters for full fine-tuning, 4 x for LoRA
(no weight gradients for the frozen weights), plus attention's 12 x layers x hidden x length (PaLM's
count, causal masking ignored); HFU adds what gradient checkpointing recomputes (one more forward). Each
is given against the data sheet's dense bf16 peak (--peak-tflops, 989 for H100/H200 SXM) and against the
bf16 matrix rate measured on the lent H200 (--measured-tflops, 790).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
# Qwen2.5-Coder's published shapes (config.json of each size).
SIZES = {"tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2),
         "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2),
         "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2),
         "7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4)}
STEPS = ["env", "student", "lora_ddp", "zero3_full", "fsdp_full", "magicoder_s", "vllm_teacher", "vllm_eval_merged", "vllm_eval_adapter"]
# A lease's two calls, each within the device tool's 10 minutes (docs/gpu.md): the second rebuilds the student when
# its machine is a fresh one, and finds the first's report in --work when not.
CALLS = {"1": "env,student,lora_ddp,zero3_full",
         "2": "env,student,fsdp_full,magicoder_s,vllm_teacher,vllm_eval_merged,vllm_eval_adapter"}
NEEDS = {"lora_ddp": ["trl", "peft"], "zero3_full": ["trl", "deepspeed"], "fsdp_full": ["trl"], "magicoder_s": ["trl", "deepspeed"],
         "vllm_teacher": ["vllm"], "vllm_eval_merged": ["vllm"], "vllm_eval_adapter": ["vllm"]}
# Left out of a scratch copy: what a clone does not hold.
SKIP = {".git", ".venv", ".gpu", ".dvc/tmp", ".dvc/cache", "mutants", "data", "models", "results", "logs", "mlruns", "mlartifacts"}
VERSIONS = ("torch", "transformers", "accelerate", "peft", "trl", "datasets", "pyarrow", "numpy", "deepspeed", "vllm", "flash_attn")
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def random_student(size: str, tokenizer_ref: str | None, out: Path) -> None:
    """A Qwen2 checkpoint of `size` with random weights (bf16) and the tokenizer of `tokenizer_ref`, or the embedded model's."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    if tokenizer_ref:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_ref)
    else:
        from evolab.core.models import resolve_gguf

        gguf = resolve_gguf("qwen2.5-coder-0.5b-instruct")
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tokenizer), max_position_embeddings=32768, tie_word_embeddings=size in ("tiny", "0.5b", "1.5b"),
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **SIZES[size])
    Qwen2ForCausalLM(config).to(torch.bfloat16 if size != "tiny" else torch.float32).save_pretrained(out)
    tokenizer.save_pretrained(out)


def shape(model: str) -> dict[str, int]:
    """Parameters, the matrix parameters (all but an untied input embedding, a lookup), layers and hidden size."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model)
    with torch.device("meta"):
        parameters = sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
    lookup = 0 if config.tie_word_embeddings else config.vocab_size * config.hidden_size
    return {"parameters": parameters, "matrix_parameters": parameters - lookup, "layers": config.num_hidden_layers,
            "hidden": config.hidden_size}


def flops_per_token(model: dict[str, int], method: str, length: int, recomputed: bool) -> float:
    """Model FLOPs a trained token (recomputed=False: for MFU), or with gradient checkpointing's second forward (HFU)."""
    attention = 4 * model["layers"] * model["hidden"] * length  # forward: QK^T and AV
    forward = 2 * model["matrix_parameters"] + attention
    backward = (4 if method == "full" else 2) * model["matrix_parameters"] + 2 * attention
    return forward + backward + (forward if recomputed else 0)


def utilisation(tokens_per_second: float | None, model: dict[str, int], method: str, length: int, checkpointing: bool,
                gpus: int, peaks: dict[str, float]) -> dict[str, float | None]:
    """MFU and HFU against each peak (TFLOP/s per GPU)."""
    figures: dict[str, float | None] = {}
    for name, peak in peaks.items():
        for kind, recomputed in (("mfu", False), ("hfu", checkpointing)):
            flops = flops_per_token(model, method, length, recomputed)
            figures[f"{kind}_{name}"] = round(flops * tokens_per_second / (gpus * peak * 1e12), 4) if tokens_per_second and gpus else None
    return figures


def scratch(work: Path, name: str) -> Path:
    """A copy of the project as a clone holds it (the machine's copy may have no .git to list files with)."""
    repo = work / name
    shutil.rmtree(repo, ignore_errors=True)

    def skip(folder: str, names: list[str]) -> set[str]:
        here = Path(folder).relative_to(ROOT)
        return {n for n in names if str(here / n) in SKIP or n == "__pycache__"}

    shutil.copytree(ROOT, repo, ignore=skip)
    return repo


def compose(repo: Path, overrides: list[str]) -> dict[str, Any]:
    from evolab.core.config import compose as compose_params

    return compose_params(overrides, conf_dir=repo / "conf", output=repo / "params.yaml")


def run(repo: Path, args: list[str], cache: Path, limit: float) -> tuple[float, str]:
    """A stage's command in the scratch project; (seconds, output), or RuntimeError with the output's tail.
    PYTHONPATH keeps what the caller had (the carried wheels' folder) after the project. Over `limit`, the
    command's whole process group is killed: `accelerate launch`'s workers would hold the GPU for the next step."""
    path = os.pathsep.join(p for p in (str(repo), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "EVOLAB_CACHE": str(cache), "PYTHONPATH": path}
    start = time.perf_counter()
    with subprocess.Popen([sys.executable, *args], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          start_new_session=True) as process:
        try:
            output, _ = process.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise RuntimeError(f"over its {limit:.0f} s limit:\n{process.communicate()[0][-2000:]}") from None
    if process.returncode != 0:
        raise RuntimeError(output[-3000:])
    return time.perf_counter() - start, output


def train_data(repo: Path, rows: int, tokenizer_ref: str, length: int, parts: list[str] | None = None) -> None:
    """`rows` training records of at least `length` tokens (cut there by the trainer): the shipped seed
    instructions that have a reference answer, each answer repeated; with `parts`, the records split evenly
    between them (MagicoderS)."""
    from transformers import AutoTokenizer

    from evolab.core.records import read_jsonl

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_ref)
    seeds = [s for s in read_jsonl(ROOT / "evolab/data/seeds.jsonl") if s["output"]]  # 40 of the 203 have one
    records = []
    for i in range(rows):
        seed = seeds[i % len(seeds)]
        times = length // max(len(tokenizer(seed["output"])["input_ids"]), 1) + 1
        records.append({**seed, "output": "\n".join([seed["output"]] * times), "id": f"gpu-{i:05d}", "round": 0,
                        **({"part": parts[i * len(parts) // rows]} if parts else {})})
    (repo / "data").mkdir(exist_ok=True)
    (repo / "data/train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


class Session:
    """The steps, their settings (GPU or dry run) and their results, saved as each step ends."""

    def __init__(self, args: argparse.Namespace):
        import torch

        self.args, self.work = args, args.work
        self.gpus = torch.cuda.device_count()
        self.cache = self.work / "cache"
        self.cache.mkdir(parents=True, exist_ok=True)
        self.processes = max(self.gpus, 1) if not args.dry_run else 2
        self.student = args.model or str(self.work / "student")
        self.report_file = self.work / ("report_dryrun.json" if args.dry_run else "report.json")
        earlier = json.loads(self.report_file.read_text()) if self.report_file.exists() else {"steps": {}, "commands": []}
        self.results = earlier["steps"]
        command = " ".join(["python benchmarks/gpu_paths.py", *sys.argv[1:]])
        self.commands = [c for c in earlier["commands"] if c != command] + [command]
        self.peaks = {"989": args.peak_tflops, "790": args.measured_tflops}
        self.trained: dict[str, tuple[Path, list[str]]] = {}  # step -> (scratch project, overrides), for the vLLM evaluations

    def step(self, name: str, fn: Callable[[], dict[str, Any]]) -> None:
        missing = [p for p in NEEDS.get(name, []) if find_spec(p) is None]
        if self.args.dry_run and name.startswith("vllm"):
            missing = missing or ["a GPU (vLLM runs on none here)"]
        if missing:
            self.results[name] = {"status": "skipped", "reason": f"missing: {', '.join(missing)}"}
        else:
            print(f"gpu_paths: {name}", flush=True)
            start = time.perf_counter()
            try:
                self.results[name] = {"status": "ok", **fn()}
            except Exception as err:  # noqa: BLE001 - recorded; the next step runs
                self.results[name] = {"status": "failed", "error": f"{type(err).__name__}: {err}"[-3000:]}
            self.results[name]["seconds"] = round(time.perf_counter() - start, 1)
        print(f"gpu_paths: {name} {json.dumps(self.results[name])[:600]}", flush=True)
        self.save()

    def save(self) -> None:
        """The report so far: in --work (for the next --only call), reports/ and $OUT (--out)."""
        report = {"dry_run": self.args.dry_run, "commands": self.commands, "date": time.strftime("%Y-%m-%d %H:%M"),
                  "steps": {k: self.results[k] for k in STEPS if k in self.results}}
        self.report_file.write_text(json.dumps(report, indent=2) + "\n")
        name = "gpu_paths_dryrun" if self.args.dry_run else "gpu_paths"
        for folder in [ROOT / "reports", *([self.args.out] if self.args.out else [])]:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
            (folder / f"{name}.md").write_text(render(report))

    def overrides(self) -> list[str]:
        return ["profile=smoke", f"model.hf={self.student}", "model.gguf=null", "model.kind=base",
                "model.backend=vllm" if not self.args.dry_run else "model.backend=transformers"]

    def env(self) -> dict[str, Any]:
        import torch

        devices = [{"name": torch.cuda.get_device_name(i), "memory_gb": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1)}
                   for i in range(self.gpus)]
        versions = {p: (__import__(p).__version__ if find_spec(p) else None) for p in VERSIONS}
        return {"python": sys.version.split()[0], "gpus": self.gpus, "devices": devices, "versions": versions,
                "offline": {k: os.environ.get(k) for k in OFFLINE}}

    def make_student(self) -> dict[str, Any]:
        if not self.args.model and not (self.work / "student/config.json").is_file():
            random_student(self.args.size, self.args.tokenizer, self.work / "student")
        return {"student": self.args.model or f"random {self.args.size} Qwen2.5-Coder architecture", **shape(self.student)}

    def train(self, name: str, recipe: list[str], method: str, batch: int, phases: list[str] | None = None) -> dict[str, Any]:
        """--steps optimizer steps of `batch` full-length rows (per phase, with `phases`)."""
        if not (Path(self.student) / "config.json").is_file() and not self.args.model:
            raise RuntimeError("the student step did not run: there is no student to train")
        repo = scratch(self.work, name)
        steps = self.args.steps
        overrides = [*self.overrides(), *recipe, f"launcher.accelerate.num_processes={self.processes}",
                     f"train.global_batch_size={batch}", "train.epochs=1", f"train.max_length={self.args.max_length}",
                     "train.save_steps=1000", "train.warmup=0"]
        params = compose(repo, overrides)
        train_data(repo, batch * steps * len(phases or [None]), self.student, self.args.max_length, phases)
        seconds, _ = run(repo, ["-m", "stages.train"], self.cache, self.args.limit * len(phases or [None]))
        metrics = json.loads((repo / "metrics/train.json").read_text())
        model = shape(self.student)
        figures = {"wall_seconds": round(seconds, 1), "overrides": overrides[len(self.overrides()):], **{k: metrics.get(k) for k in (
            "steps", "phases", "processes", "distributed", "tokens", "train_seconds", "tokens_per_second", "steady_tokens_per_second",
            "peak_gpu_memory_gb", "peak_gpu_reserved_gb", "peak_rss_gb", "first_loss", "last_loss")}}
        figures["tokens_per_step"] = round(metrics["tokens"] / metrics["steps"]) if metrics.get("steps") else None
        figures["rows_of_full_length"] = metrics["tokens"] == metrics["steps"] * batch * self.args.max_length
        if not self.args.dry_run:
            figures.update(utilisation(metrics.get("steady_tokens_per_second"), model, method, self.args.max_length,
                                       params["train"]["gradient_checkpointing"], self.gpus, self.peaks))
        if method == "full":
            from transformers import AutoModelForCausalLM

            saved = AutoModelForCausalLM.from_pretrained(str(repo / "models/tuned/model"))
            figures["save_loads_whole"] = sum(p.numel() for p in saved.parameters()) == model["parameters"]
        self.trained[name] = repo, overrides
        return figures

    def full(self, name: str, launcher: str, extra: tuple[str, ...] = (), phases: list[str] | None = None) -> dict[str, Any]:
        """Full fine-tuning under `launcher`: 4 rows a process a step on a GPU, 1 in a dry run."""
        recipe = (["train=lora_cpu", "train.method=full"] if self.args.dry_run else
                  ["train=wizardcoder_full", "train.micro_batch_size=4", "train.mixed_precision=bf16"])
        batch = (4 if not self.args.dry_run else 1) * self.processes
        return self.train(name, [*recipe, f"launcher={launcher}", "train.packing=false", *extra], "full", batch, phases)

    def lora_ddp(self) -> dict[str, Any]:
        flash = find_spec("flash_attn") is not None  # packed rows need FlashAttention (sft.check_packing)
        recipe = ["train=lora_cpu", "train.lora.r=8"] if self.args.dry_run else [
            "train=lora_gpu", "train.micro_batch_size=8", *([] if flash else ["train.packing=false", "train.attn_implementation=null"])]
        batch = (16 if not self.args.dry_run else 1) * self.processes
        return self.train("lora", [*recipe, "launcher=ddp", "train.merge=true"], "lora", batch)

    def zero3_full(self) -> dict[str, Any]:
        return self.full("zero3", "deepspeed_zero3")

    def fsdp_full(self) -> dict[str, Any]:
        return self.full("fsdp", "fsdp")

    def magicoder_s(self) -> dict[str, Any]:
        return self.full("magicoder_s", "deepspeed_zero3", ("method=magicoder_s",), phases=["oss_instruct", "code_evol"])

    def vllm_teacher(self) -> dict[str, Any]:
        repo = scratch(self.work, "teacher")
        seeds = self.args.teacher_seeds
        compose(repo, [*self.overrides(), "teacher=vllm", f"teacher.model={self.student}", f"profile.seeds={seeds}",
                       "rounds=1", "profile.evolve_max_tokens=512", "profile.answer_max_tokens=512"])
        seconds_seed, _ = run(repo, ["-m", "stages.seed"], self.cache, self.args.limit)
        seconds_round, _ = run(repo, ["-m", "stages.evolve", "1"], self.cache, self.args.limit)
        stats = json.loads((repo / "metrics/evolve/r1.json").read_text())
        return {"seeds": seeds, "seed_answers_seconds": round(seconds_seed, 1), "round_seconds": round(seconds_round, 1),
                "round_live_calls": stats["live_calls"], "kept": stats.get("kept")}

    def vllm_eval(self, merged: bool) -> dict[str, Any]:
        if "lora" not in self.trained:
            raise RuntimeError("lora_ddp did not run in this command: there is no adapter to evaluate")
        repo, overrides = self.trained["lora"]
        if not merged:
            shutil.rmtree(repo / "models/tuned/merged", ignore_errors=True)
        compose(repo, [*overrides, "eval.backend=vllm", "eval.limit=null", "eval.max_tokens=768"])
        seconds, _ = run(repo, ["-m", "stages.eval", "tuned"], self.cache, self.args.limit)
        metrics = json.loads((repo / "metrics/eval.json").read_text())
        timing = metrics["seconds"]  # the engine's start apart from generation (evolab.evaluation.harness.evaluate)
        return {"wall_seconds": round(seconds, 1), "problems": metrics["problems"], "generations": metrics["live_generations"],
                "engine_start_seconds": timing["start"], "generate_seconds": timing["generate"],
                "generations_per_second": round(metrics["live_generations"] / timing["generate"], 2) if timing["generate"] else None,
                "pass_at_1": metrics["humaneval"]["pass@1"]}


HEADLINE = {"steady_tokens_per_second": "tokens/s", "mfu_989": "MFU (989)", "mfu_790": "MFU (790)", "hfu_989": "HFU (989)",
            "hfu_790": "HFU (790)", "peak_gpu_memory_gb": "peak allocated GB", "peak_gpu_reserved_gb": "peak reserved GB"}


DRY_RUN = ("Toy sizes on a CPU: a 2-layer student, 2 processes (DeepSpeed's CPU accelerator for ZeRO-3; accelerate runs FSDP "
           "as plain data parallel there), rows of 256 tokens. The figures say that each path runs, not how fast a GPU runs it.")
# In the JSON only: the row's status columns, and what is too long for a table.
LEFT_OUT = ("status", "seconds", "error", "reason", "versions", "offline", "overrides", "phases")


def render(report: dict[str, Any]) -> str:
    """The report as markdown: where and how it ran, then a row per step."""
    steps = report["steps"]
    env = steps.get("env", {})
    counts = {status: sum(row["status"] == status for row in steps.values()) for status in ("ok", "failed", "skipped")}
    lines = [f"# GPU paths{' (dry run on CPU)' if report['dry_run'] else ''}", "",
             f"{report['date']}, by {' then '.join(f'`{c}`' for c in report['commands'])}.", "",
             f"Python {env.get('python', '-')}; {', '.join(f'{k} {v}' for k, v in env.get('versions', {}).items())}; "
             f"GPUs: {', '.join(d['name'] for d in env.get('devices', [])) or 'none'}.", "",
             f"Steps: {counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped.", "",
             *([DRY_RUN, ""] if report["dry_run"] else []),
             "| step | status | seconds | " + " | ".join(HEADLINE.values()) + " | other figures |",
             "|---" * (len(HEADLINE) + 4) + "|"]
    for name, row in steps.items():
        other = {k: v for k, v in row.items() if k not in (*HEADLINE, *LEFT_OUT)}
        detail = row.get("reason") or (row.get("error", "").strip().splitlines() or [""])[-1][:300]
        cells = [str(row[k]) if row.get(k) is not None else "-" for k in HEADLINE]
        lines.append(f"| {name} | {row['status']} | {row.get('seconds', '-')} | {' | '.join(cells)} | {detail or json.dumps(other)} |")
    return "\n".join(lines + [""])


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="on a CPU: a tiny student, 2 CPU processes, 256-token rows, vLLM skipped")
    parser.add_argument("--only", default=",".join(STEPS), help=f"comma-separated steps, of {', '.join(STEPS)}")
    parser.add_argument("--call", choices=CALLS, help=f"a lease's call: its steps ({'; '.join(f'{k}: {v}' for k, v in CALLS.items())})")
    parser.add_argument("--work", type=Path, help="the student, cache, scratch copies and results, kept for the next call")
    parser.add_argument("--out", type=Path, default=os.environ.get("OUT") or None, help="a folder that gets the report too ($OUT)")
    parser.add_argument("--model", help="a local checkpoint (default: random weights of --size)")
    parser.add_argument("--size", choices=SIZES, default="1.5b")
    parser.add_argument("--tokenizer", help="a tokenizer folder for the random student (default: the embedded model's)")
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per training path (per phase): 2 of warm-up, then measured")
    parser.add_argument("--max-length", type=int, default=2048, help="tokens a training row (the recipes' 2048)")
    parser.add_argument("--teacher-seeds", type=int, default=64)
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="the data sheet's dense bf16 peak per GPU")
    parser.add_argument("--measured-tflops", type=float, default=790.0, help="the bf16 matrix rate measured on the lent H200")
    parser.add_argument("--limit", type=float, default=150, help="seconds a stage may run (a training phase)")
    args = parser.parse_args(argv)
    args.only = CALLS[args.call] if args.call else args.only
    unknown = set(args.only.split(",")) - set(STEPS)
    if unknown:
        parser.error(f"unknown step(s) {', '.join(sorted(unknown))}: choose from {', '.join(STEPS)}")
    if args.dry_run:
        args.size, args.max_length, args.limit = "tiny", 256, 900
    args.work = (args.work or Path(tempfile.mkdtemp(prefix="evolab-gpu-"))).resolve()
    args.work.mkdir(parents=True, exist_ok=True)
    return args


def main() -> None:
    args = parse()
    for key, value in OFFLINE.items():  # nothing is reachable there: fail at once instead of waiting on a hub
        os.environ.setdefault(key, value)
    sys.path.insert(0, str(ROOT))
    session = Session(args)
    steps = {"env": session.env, "student": session.make_student, "lora_ddp": session.lora_ddp, "zero3_full": session.zero3_full,
             "fsdp_full": session.fsdp_full, "magicoder_s": session.magicoder_s, "vllm_teacher": session.vllm_teacher,
             "vllm_eval_merged": lambda: session.vllm_eval(merged=True), "vllm_eval_adapter": lambda: session.vllm_eval(merged=False)}
    for name in args.only.split(","):
        session.step(name, steps[name])
    print(render(json.loads(session.report_file.read_text())))


if __name__ == "__main__":
    main()
