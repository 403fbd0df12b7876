"""llama.cpp in process (llama-cpp-python): the embedded GGUF models, a LoRA adapter as GGUF."""
from __future__ import annotations

import os
from typing import Any

from evolab.backends.base import Backend, Completion, Request, Sampling, register, until_code_block
from evolab.core.cache import ResponseCache


@register("llama_cpp")
class LlamaCppBackend(Backend):
    """An embedded or local GGUF, run in-process by llama.cpp (optionally with a GGUF LoRA adapter)."""

    def __init__(self, config: dict[str, Any], cache: ResponseCache | None = None):
        super().__init__(config, cache)
        self._llm: Any = None

    @property
    def identity(self) -> dict[str, Any]:
        return {"backend": "llama_cpp", "model": str(self.config["model"]),
                "lora": str(self.config.get("lora_path")), "n_ctx": self.config.get("n_ctx", 4096)}

    @property
    def llm(self) -> Any:
        if self._llm is None:
            from llama_cpp import Llama

            from evolab.core.models import resolve_gguf

            self._llm = Llama(
                model_path=str(resolve_gguf(str(self.config["model"]))),
                lora_path=self.config.get("lora_path"),
                n_ctx=int(self.config.get("n_ctx", 4096)),
                n_threads=self.config.get("n_threads") or os.cpu_count(),
                seed=0,
                verbose=False,
            )
        return self._llm

    def _generate(self, request: Request, sampling: Sampling) -> Completion:
        kwargs = {"max_tokens": sampling.max_tokens, "temperature": sampling.temperature, "top_p": sampling.top_p,
                  "seed": sampling.seed, "stop": list(sampling.stop) or None, "stream": sampling.until_code_block}
        if isinstance(request, str):
            out = self.llm.create_completion(prompt=request, **kwargs)
        else:
            out = self.llm.create_chat_completion(messages=request, **kwargs)
        if sampling.until_code_block:
            return until_code_block(out, _llama_text)
        choice = out["choices"][0]
        return Completion(_llama_text(choice), choice["finish_reason"] or "stop", out["usage"]["completion_tokens"])


def _llama_text(choice: dict[str, Any]) -> str:
    """The text of a llama.cpp completion, chat or streamed-chat choice."""
    if "text" in choice:
        return choice["text"] or ""
    if "delta" in choice:
        return choice["delta"].get("content") or ""
    return choice["message"]["content"] or ""
