"""The student as evaluation sees it: untuned, or tuned with what the train stage wrote, behind eval.backend."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from evolab.backends import Backend, make_backend
from evolab.core import paths
from evolab.core.cache import cache_key, response_cache
from evolab.core.errors import StageError
from evolab.core.models import sha256_of, student_ref


def tuned_checkpoint(model: dict[str, Any], method: str, tuned: Path) -> tuple[str, str | None]:
    """(model, adapter) for the transformers and vLLM backends: the fully fine-tuned model, the merged
    model when train.merge wrote one, or the base with the adapter."""
    if method == "full":
        return str(tuned / "model"), None
    if (tuned / "merged").is_dir():
        return str(tuned / "merged"), None
    return student_ref(model), str(tuned / "adapter")


def student_backend(eval_cfg: dict[str, Any], model: dict[str, Any], train_method: str | None,
                    tuned: Path = Path(paths.TUNED)) -> Backend:
    """The student behind eval.backend: untuned (train_method None) or tuned, with the result of train
    in the form that backend loads. Generations are cached (keyed by the tuned files' digest too): an
    interrupted evaluation resumes without generating again."""
    name = eval_cfg["backend"]
    if name == "llama_cpp":
        if not model.get("gguf") or train_method == "full":
            raise StageError("eval.backend=llama_cpp runs a GGUF model with a LoRA adapter; for a hub model or a "
                             "fully fine-tuned one use -S eval.backend=transformers (CPU) or vllm (GPU).")
        adapter = str(tuned / "adapter.gguf") if train_method else None
        config = {"model": model["gguf"], "lora_path": adapter, "n_ctx": 4096, "parallel": eval_cfg.get("parallel")}
    elif name in ("transformers", "vllm"):
        path, adapter = tuned_checkpoint(model, train_method, tuned) if train_method else (student_ref(model), None)
        config = {"model": path, "adapter": adapter, "dtype": eval_cfg.get("dtype"),
                  **((eval_cfg.get("vllm") or {}) if name == "vllm" else {})}
    else:  # an endpoint serving the student (for the tuned model: serving the adapter, e.g. vLLM --lora-modules)
        config = dict(eval_cfg["endpoint"])
    fingerprint = cache_key(files=[sha256_of(f) for f in sorted(tuned.rglob("*")) if f.is_file()]) if train_method else None
    return make_backend({**config, "backend": name, "fingerprint": fingerprint}, response_cache())
