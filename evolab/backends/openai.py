"""Any OpenAI-compatible endpoint (vLLM or llama.cpp servers, hosted APIs), with retries and concurrency."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from evolab.backends.base import Backend, Completion, Request, Sampling, Settings, register, until_code_block
from evolab.core.cache import Cache
from evolab.core.schema import EvalSettings, ModelSettings


@dataclass
class OpenAISettings(Settings):
    base_url: str = ""
    api_key_env: str = ""             # the environment variable that holds the key
    timeout: float = 120.0
    extra_body: dict[str, Any] | None = None  # server-specific sampling settings (llama.cpp's repeat_penalty)


@register("openai")
class OpenAIBackend(Backend):
    """Any OpenAI-compatible endpoint (vLLM, llama.cpp server, OpenAI). The key is read from the
    environment variable named by `api_key_env` and never written anywhere."""

    settings_type = OpenAISettings
    config: OpenAISettings

    def __init__(self, config: dict[str, Any], cache: Cache | None = None):
        super().__init__(config, cache)
        from openai import OpenAI

        self.client = OpenAI(base_url=self.config.base_url, api_key=os.environ.get(self.config.api_key_env, "none"),
                             timeout=self.config.timeout, max_retries=0)

    @classmethod
    def student(cls, eval_cfg: EvalSettings, model: ModelSettings, train_method: str | None, tuned: Path) -> dict[str, Any]:
        """eval.endpoint, a server of the student (for the tuned model: serving the adapter, e.g. vLLM's --lora-modules)."""
        return asdict(eval_cfg.endpoint)

    @property
    def identity(self) -> dict[str, Any]:
        return {"backend": "openai", "base_url": self.config.base_url, "model": self.config.model}

    def retryable(self, err: Exception) -> bool:
        """Timeouts, lost connections, 429 and 5xx; a 4xx such as a wrong key or model name is not."""
        import openai

        if isinstance(err, openai.APIStatusError):
            return err.status_code == 429 or err.status_code >= 500
        return isinstance(err, openai.APIConnectionError)  # includes APITimeoutError

    def _generate(self, request: Request, sampling: Sampling) -> Completion:
        kwargs = {"model": self.config.model, "max_tokens": sampling.max_tokens, "temperature": sampling.temperature,
                  "top_p": sampling.top_p, "seed": sampling.seed, "stop": list(sampling.stop) or None,
                  "stream": sampling.until_code_block, "extra_body": self.config.extra_body}
        if isinstance(request, str):
            out = self.client.completions.create(prompt=request, **kwargs)
            text_of: Callable[[Any], str] = lambda choice: choice.text or ""
        else:
            out = self.client.chat.completions.create(messages=request, **kwargs)
            text_of = lambda choice: (choice.delta.content if sampling.until_code_block else choice.message.content) or ""
        if sampling.until_code_block:
            chunks = ({"choices": [{"finish_reason": c.choices[0].finish_reason, "text": text_of(c.choices[0])}]}
                      for c in out if c.choices)
            return until_code_block(chunks, lambda choice: choice["text"])
        choice = out.choices[0]
        usage = out.usage
        return Completion(text_of(choice), choice.finish_reason or "stop", usage.completion_tokens if usage else 0,
                          prompt_tokens=usage.prompt_tokens if usage else 0)
