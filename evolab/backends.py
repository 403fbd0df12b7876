"""LLM backends behind one interface, chosen by name in conf/ (teacher.backend).

A backend turns chat messages into text. Every call is cached by (backend identity,
messages, sampling, seed), retried on failure, and a call that never succeeds is returned
as a failure record rather than dropped.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable

from evolab.cache import ResponseCache, cache_key

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Sampling:
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0


@dataclass
class Completion:
    text: str
    finish_reason: str  # "stop", "length" or "error"
    completion_tokens: int = 0
    error: str | None = None
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.finish_reason != "error"


class Backend:
    """Subclasses implement `identity` (what determines outputs) and `_chat`."""

    def __init__(self, config: dict[str, Any], cache: ResponseCache | None = None):
        self.config = config
        self.cache = cache
        self.retries = int(config.get("retries", 2))
        self.cached_calls = 0  # answered from the cache
        self.live_calls = 0  # sent to the model

    @property
    def identity(self) -> dict[str, Any]:
        raise NotImplementedError

    def _chat(self, messages: Messages, sampling: Sampling) -> Completion:
        raise NotImplementedError

    def chat(self, messages: Messages, sampling: Sampling) -> Completion:
        key = cache_key(backend=self.identity, messages=messages, sampling=sampling.__dict__)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            self.cached_calls += 1
            return Completion(**hit)
        self.live_calls += 1
        errors: list[str] = []
        for attempt in range(1, self.retries + 2):
            try:
                result = self._chat(messages, sampling)
                result.attempts = attempt
                break
            except Exception as err:  # noqa: BLE001 - any backend failure is retried, then recorded
                errors.append(f"{type(err).__name__}: {err}")
                if attempt <= self.retries:
                    time.sleep(min(2 ** attempt, 30) * float(self.config.get("backoff", 1.0)))
        else:
            # Failures are not cached: a rerun tries them again.
            return Completion("", "error", error=" | ".join(errors), attempts=len(errors))
        if self.cache is not None:
            self.cache.put(key, result.__dict__)
        return result


BACKENDS: dict[str, type[Backend]] = {}


def register(name: str) -> Callable[[type[Backend]], type[Backend]]:
    def wrap(cls: type[Backend]) -> type[Backend]:
        BACKENDS[name] = cls
        return cls

    return wrap


def make_backend(config: dict[str, Any], cache: ResponseCache | None = None) -> Backend:
    name = config["backend"]
    if name not in BACKENDS:
        raise ValueError(f"unknown backend '{name}': choose one of {sorted(BACKENDS)} in conf/teacher/.")
    return BACKENDS[name](config, cache)


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

            from evolab.models import resolve_gguf

            self._llm = Llama(
                model_path=str(resolve_gguf(str(self.config["model"]))),
                lora_path=self.config.get("lora_path"),
                n_ctx=int(self.config.get("n_ctx", 4096)),
                n_threads=self.config.get("n_threads") or os.cpu_count(),
                seed=0,
                verbose=False,
            )
        return self._llm

    def _chat(self, messages: Messages, sampling: Sampling) -> Completion:
        out = self.llm.create_chat_completion(messages=messages, **self._sampling_kwargs(sampling))
        choice = out["choices"][0]
        return Completion(choice["message"]["content"] or "", choice["finish_reason"] or "stop",
                          out["usage"]["completion_tokens"])

    def complete(self, prompt: str, sampling: Sampling) -> Completion:
        """Raw completion (a training template), stopped once a fenced code block has closed."""
        stream = self.llm.create_completion(prompt=prompt, stream=True, **self._sampling_kwargs(sampling))
        return _until_fence_closes(stream, lambda choice: choice["text"])

    def chat_stream(self, messages: Messages, sampling: Sampling) -> Completion:
        """Chat completion stopped once a fenced code block has closed (evaluation needs no more)."""
        stream = self.llm.create_chat_completion(messages=messages, stream=True, **self._sampling_kwargs(sampling))
        return _until_fence_closes(stream, lambda choice: choice["delta"].get("content") or "")

    @staticmethod
    def _sampling_kwargs(sampling: Sampling) -> dict[str, Any]:
        return {"max_tokens": sampling.max_tokens, "temperature": sampling.temperature,
                "top_p": sampling.top_p, "seed": sampling.seed}


def _until_fence_closes(stream: Any, text_of: Callable[[dict[str, Any]], str]) -> Completion:
    text, tokens, reason = "", 0, "length"
    for chunk in stream:
        choice = chunk["choices"][0]
        text += text_of(choice)
        tokens += 1
        if choice.get("finish_reason"):
            reason = choice["finish_reason"]
            break
        if text.count("```") >= 2:
            reason = "stop"
            break
    return Completion(text, reason, tokens)


@register("openai")
class OpenAIBackend(Backend):
    """Any OpenAI-compatible endpoint (vLLM, llama.cpp server, OpenAI). The key is read from the
    environment variable named by `api_key_env` and never written anywhere."""

    def __init__(self, config: dict[str, Any], cache: ResponseCache | None = None):
        super().__init__(config, cache)
        from openai import OpenAI

        self.client = OpenAI(base_url=config["base_url"], api_key=os.environ.get(config.get("api_key_env") or "", "none"),
                             timeout=float(config.get("timeout", 120)), max_retries=0)

    @property
    def identity(self) -> dict[str, Any]:
        return {"backend": "openai", "base_url": self.config["base_url"], "model": self.config["model"]}

    def _chat(self, messages: Messages, sampling: Sampling) -> Completion:
        out = self.client.chat.completions.create(
            model=self.config["model"], messages=messages, max_tokens=sampling.max_tokens,
            temperature=sampling.temperature, top_p=sampling.top_p, seed=sampling.seed,
        )
        choice = out.choices[0]
        return Completion(choice.message.content or "", choice.finish_reason or "stop",
                          out.usage.completion_tokens if out.usage else 0)
