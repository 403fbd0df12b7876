"""Every GPU path once, short, for a first GPU session: what each costs in time, tokens/s, MFU and memory.

    python benchmarks/gpu_paths.py                # on the GPU machine: reports/gpu_paths.{md,json}
    python benchmarks/gpu_paths.py --dry-run      # on a CPU: the same steps at toy size where a CPU can run
                                                  # them: reports/gpu_paths_dryrun.{md,json}

Steps, each in a scratch copy of the project and its own processes, under a time limit; a step that fails is
recorded with its output's tail and the next one runs, a step whose packages are missing is skipped with the
install that fixes it:

- env: GPUs, their memory, the versions of torch, vllm, deepspeed, flash-attn;
- vllm_teacher: seed answers and one Code Evol-Instruct round with `teacher=vllm` (evolve, answer);
- lora_ddp: `train=lora_gpu` under `launcher=ddp` on every visible GPU, a few optimizer steps;
- zero3_full: `train=wizardcoder_full` under `launcher=deepspeed_zero3`, a few steps, the save loaded back;
- vllm_eval_merged, vllm_eval_adapter: the LoRA run's merged model, then base + adapter (LoRARequest), on
  HumanEval through the eval stage with `eval.backend=vllm`.

The student: --model (a local checkpoint or a hub name), or, where no hub can be reached, a Qwen2.5-Coder
architecture of --size with random weights and the embedded model's tokenizer (--tokenizer to use a copied
one): speed and memory do not depend on the weights' values, pass@1 then means nothing. MFU counts
6 x parameters FLOPs a trained token (full; 4 x for LoRA, whose frozen weights get no gradient), +2 x with
gradient checkpointing, against --peak-tflops per GPU (989: H100/H200 SXM, bf16 dense).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Qwen2.5-Coder's published shapes (config.json of each size).
SIZES = {"tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2),
         "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2),
         "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2),
         "7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4)}
NEEDS = {"vllm_teacher": ["vllm"], "lora_ddp": ["trl", "peft"], "zero3_full": ["trl", "deepspeed"],
         "vllm_eval_merged": ["vllm"], "vllm_eval_adapter": ["vllm"]}


def random_student(size: str, tokenizer_ref: str | None, out: Path) -> Path:
    """A Qwen2 checkpoint of `size` with random weights (bf16) and the embedded model's tokenizer."""
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
    model = Qwen2ForCausalLM(config).to(torch.bfloat16 if size != "tiny" else torch.float32)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def parameters(model: str) -> int:
    from transformers import AutoConfig, AutoModelForCausalLM

    with __import__("torch").device("meta"):
        return sum(p.numel() for p in AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model)).parameters())


def scratch(work: Path, name: str) -> Path:
    """A copy of the tracked files (what a clone holds)."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    repo = work / name
    for file in files:
        (repo / file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / file, repo / file)
    return repo


def compose(repo: Path, overrides: list[str]) -> None:
    from evolab.core.config import compose as compose_params

    compose_params(overrides, conf_dir=repo / "conf", output=repo / "params.yaml")


def run(repo: Path, args: list[str], cache: Path, limit: float) -> tuple[float, str]:
    """A stage's command in the scratch project; (seconds, output), or RuntimeError with the output's tail."""
    env = {**os.environ, "EVOLAB_CACHE": str(cache), "PYTHONPATH": str(repo)}
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, *args], cwd=repo, env=env, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired as err:
        raise RuntimeError(f"over its {limit:.0f} s limit:\n{(err.stdout or '')[-2000:]}") from None
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise RuntimeError(output[-3000:])
    return time.perf_counter() - start, output


def train_data(repo: Path, items: int) -> None:
    """`items` training records: the shipped seed instructions with their reference answers, repeated."""
    from evolab.core.records import read_jsonl

    seeds = read_jsonl(ROOT / "evolab/data/seeds.jsonl")
    rows = [{**seeds[i % len(seeds)], "id": f"gpu-{i:05d}", "round": 0} for i in range(items)]
    (repo / "data").mkdir(exist_ok=True)
    (repo / "data/train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def mfu(tokens_per_second: float | None, params: int, method: str, checkpointing: bool, gpus: int, peak_tflops: float) -> float | None:
    if not tokens_per_second or not gpus:
        return None
    per_token = (6 if method == "full" else 4) * params + (2 * params if checkpointing else 0)
    return round(per_token * tokens_per_second / (gpus * peak_tflops * 1e12), 4)


class Session:
    """The steps, their settings (GPU or dry run) and their results."""

    def __init__(self, args: argparse.Namespace, work: Path):
        import torch

        self.args, self.work, self.results = args, work, {}
        self.gpus = torch.cuda.device_count()
        self.cache = work / "cache"
        self.cache.mkdir()
        self.processes = max(self.gpus, 1) if not args.dry_run else 2

    def step(self, name: str, fn) -> None:  # noqa: ANN001 - a bound method of this class
        missing = [p for p in NEEDS.get(name, []) if find_spec(p) is None]
        if self.args.dry_run and name.startswith("vllm"):
            missing = missing or ["a GPU (vLLM runs on none here)"]
        if missing:
            self.results[name] = {"status": "skipped", "reason": f"missing: {', '.join(missing)} (pip install -e .[distributed] vllm)"}
            return
        print(f"gpu_paths: {name}", flush=True)
        start = time.perf_counter()
        try:
            self.results[name] = {"status": "ok", **fn()}
        except Exception as err:  # noqa: BLE001 - recorded; the next step runs
            self.results[name] = {"status": "failed", "error": f"{type(err).__name__}: {err}"[-3000:]}
        self.results[name]["seconds"] = round(time.perf_counter() - start, 1)
        print(f"gpu_paths: {name} {json.dumps(self.results[name])[:400]}", flush=True)

    def overrides(self) -> list[str]:
        model = [f"model.hf={self.args.model}", "model.gguf=null", "model.kind=base",
                 "model.backend=vllm" if not self.args.dry_run else "model.backend=transformers"]
        return ["profile=smoke", *model]

    def env(self) -> dict[str, Any]:
        import torch

        versions = {p: (__import__(p).__version__ if find_spec(p) else None) for p in ("torch", "vllm", "deepspeed", "flash_attn", "trl", "peft")}
        devices = [{"name": torch.cuda.get_device_name(i), "memory_gb": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1)}
                   for i in range(self.gpus)]
        return {"gpus": self.gpus, "devices": devices, "versions": versions, "model": self.args.model,
                "parameters": parameters(self.args.model)}

    def vllm_teacher(self) -> dict[str, Any]:
        repo = scratch(self.work, "teacher")
        seeds = self.args.teacher_seeds
        compose(repo, [*self.overrides(), "teacher=vllm", f"teacher.model={self.args.model}", f"profile.seeds={seeds}",
                       "rounds=1", "profile.evolve_max_tokens=512", "profile.answer_max_tokens=512"])
        seconds_seed, _ = run(repo, ["-m", "stages.seed"], self.cache, self.args.limit)
        seconds_round, _ = run(repo, ["-m", "stages.evolve", "1"], self.cache, self.args.limit)
        stats = json.loads((repo / "metrics/evolve/r1.json").read_text())
        return {"seeds": seeds, "seed_answers_seconds": round(seconds_seed, 1), "round_seconds": round(seconds_round, 1),
                "round_live_calls": stats["live_calls"], "kept": stats.get("kept"),
                "calls_per_second": round(stats["live_calls"] / seconds_round, 2)}

    def train(self, name: str, overrides: list[str], items: int) -> tuple[Path, dict[str, Any]]:
        repo = scratch(self.work, name)
        compose(repo, [*self.overrides(), *overrides])
        train_data(repo, items)
        seconds, _ = run(repo, ["-m", "stages.train"], self.cache, self.args.limit)
        metrics = json.loads((repo / "metrics/train.json").read_text())
        params = parameters(self.args.model)
        peak = self.args.peak_tflops
        return repo, {"wall_seconds": round(seconds, 1), **{k: metrics.get(k) for k in (
            "steps", "processes", "distributed", "tokens", "train_seconds", "tokens_per_second", "peak_gpu_memory_gb", "peak_rss_gb",
            "first_loss", "last_loss")}, "mfu": mfu(metrics.get("tokens_per_second"), params, metrics["method"], True,
                                                   self.gpus, peak) if not self.args.dry_run else None}

    def lora_ddp(self) -> dict[str, Any]:
        batch = (16 if not self.args.dry_run else 1) * self.processes
        flash = find_spec("flash_attn") is not None  # packed rows need FlashAttention (sft.check_packing)
        recipe = ["train=lora_cpu", "train.lora.r=8"] if self.args.dry_run else [
            "train=lora_gpu", "train.micro_batch_size=8", *([] if flash else ["train.packing=false", "train.attn_implementation=null"])]
        self.lora_overrides = [*recipe, "launcher=ddp", f"launcher.accelerate.num_processes={self.processes}",
                               f"train.global_batch_size={batch}", "train.epochs=1", "train.merge=true",
                               f"train.max_length={self.args.max_length}"]
        self.lora_repo, result = self.train("lora", self.lora_overrides, batch * self.args.steps)
        return result

    def zero3_full(self) -> dict[str, Any]:
        batch = (4 if not self.args.dry_run else 1) * self.processes
        recipe = ["train=lora_cpu", "train.method=full"] if self.args.dry_run else ["train=wizardcoder_full", "train.micro_batch_size=4"]
        repo, result = self.train("zero3", [*recipe, "launcher=deepspeed_zero3", f"launcher.accelerate.num_processes={self.processes}",
                                            f"train.global_batch_size={batch}", "train.epochs=1", "train.packing=false",
                                            f"train.max_length={self.args.max_length}"], batch * self.args.steps)
        from transformers import AutoModelForCausalLM

        saved = AutoModelForCausalLM.from_pretrained(str(repo / "models/tuned/model"))
        result["save_loads_whole"] = sum(p.numel() for p in saved.parameters()) == parameters(self.args.model)
        return result

    def vllm_eval(self, merged: bool) -> dict[str, Any]:
        repo = getattr(self, "lora_repo", None)
        if repo is None:
            raise RuntimeError("lora_ddp did not run: there is no adapter to evaluate")
        if not merged:
            shutil.rmtree(repo / "models/tuned/merged", ignore_errors=True)
        compose(repo, [*self.overrides(), *self.lora_overrides, "eval.backend=vllm", "eval.limit=null", "eval.max_tokens=768"])
        seconds, _ = run(repo, ["-m", "stages.eval", "tuned"], self.cache, self.args.limit)
        metrics = json.loads((repo / "metrics/eval.json").read_text())
        return {"wall_seconds": round(seconds, 1), "problems": metrics["problems"], "generations": metrics["live_generations"],
                "generations_per_second": round(metrics["live_generations"] / seconds, 2),
                "pass_at_1": metrics.get("humaneval", {}).get("pass_at_1", metrics.get("pass_at_1"))}


def render(report: dict[str, Any]) -> str:
    lines = [f"# GPU paths{' (dry run on CPU)' if report['dry_run'] else ''}", "",
             f"`{report['command']}`, {report['date']}, {report['minutes']:.1f} min. Student: {report['student']}.", "",
             "| step | status | seconds | figures |", "|---|---|---|---|"]
    for name, row in report["steps"].items():
        figures = {k: v for k, v in row.items() if k not in ("status", "seconds", "error", "reason")}
        detail = row.get("reason") or (row.get("error", "").splitlines() or [""])[-1][:200]
        lines.append(f"| {name} | {row['status']} | {row.get('seconds', '-')} | {detail or json.dumps(figures)} |")
    return "\n".join(lines + [""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="on a CPU: toy sizes, CPU processes, vLLM skipped")
    parser.add_argument("--model", help="a local checkpoint or hub name (default: random weights of --size)")
    parser.add_argument("--size", choices=SIZES, default="1.5b")
    parser.add_argument("--tokenizer", help="a tokenizer folder for the random student (default: the embedded model's)")
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per training path")
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--teacher-seeds", type=int, default=64)
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    parser.add_argument("--limit", type=float, default=420, help="seconds a stage may run")
    args = parser.parse_args()
    if args.dry_run:
        args.size, args.max_length, args.steps, args.limit = "tiny", 256, 2, 900
    sys.path.insert(0, str(ROOT))
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="evolab-gpu-"))
    student = args.model or f"random {args.size} Qwen2.5-Coder architecture"
    args.model = args.model or str(random_student(args.size, args.tokenizer, work / "student"))
    session = Session(args, work)
    session.step("env", session.env)
    session.step("vllm_teacher", session.vllm_teacher)
    session.step("lora_ddp", session.lora_ddp)
    session.step("zero3_full", session.zero3_full)
    session.step("vllm_eval_merged", lambda: session.vllm_eval(merged=True))
    session.step("vllm_eval_adapter", lambda: session.vllm_eval(merged=False))
    report = {"dry_run": args.dry_run, "command": "python benchmarks/gpu_paths.py" + (" --dry-run" if args.dry_run else ""),
              "date": time.strftime("%Y-%m-%d"), "student": student, "minutes": (time.perf_counter() - started) / 60,
              "steps": session.results}
    out = ROOT / ("reports/gpu_paths_dryrun" if args.dry_run else "reports/gpu_paths")
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(render(report))
    print(render(report))


if __name__ == "__main__":
    main()
