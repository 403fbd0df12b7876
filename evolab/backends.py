"""LLM backends behind one interface, chosen by name in conf/ (teacher.backend, eval.backend).

A backend turns a request into text: chat messages (the model's chat template is applied) or a
plain string (raw completion, e.g. a training template or a base model's code prompt). Every call
can be cached by (backend identity, request, sampling), is retried on failure, and a call that
never succeeds is returned as a failure record rather than dropped.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Union

from evolab.cache import ResponseCache, cache_key

Messages = list[dict[str, str]]
Request = Union[str, Messages]  # str: raw completion; messages: chat


@dataclass(frozen=True)
class Sampling:
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    # Stop once a fenced code block has closed: evaluation needs nothing after it.
    until_code_block: bool = False

    def with_seed(self, seed: int) -> "Sampling":
        return Sampling(**{**self.__dict__, "seed": seed})


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


def cut_after_code_block(text: str) -> tuple[str, bool]:
    """Text up to the end of the first closed ``` block, and whether one closed."""
    first = text.find("```")
    close = text.find("```", first + 3) if first >= 0 else -1
    return (text[: close + 3], True) if close >= 0 else (text, False)


class Backend:
    """Subclasses implement `identity` (what determines outputs) and `_generate`; a backend that
    batches (vLLM) sets `batched` and implements `_generate_batch`."""

    batched = False

    def __init__(self, config: dict[str, Any], cache: ResponseCache | None = None):
        self.config = config
        self.cache = cache
        self.retries = int(config.get("retries", 2))
        self.concurrency = int(config.get("concurrency") or 1)
        self.cached_calls = 0  # answered from the cache
        self.live_calls = 0  # sent to the model

    @property
    def identity(self) -> dict[str, Any]:
        raise NotImplementedError

    def _generate(self, request: Request, sampling: Sampling) -> Completion:
        raise NotImplementedError

    def _generate_batch(self, requests: list[tuple[Request, Sampling]]) -> list[Completion]:
        raise NotImplementedError

    def _key(self, request: Request, sampling: Sampling) -> str:
        # `fingerprint`: what the identity's names do not pin, e.g. the digest of a trained adapter.
        return cache_key(backend=self.identity, fingerprint=self.config.get("fingerprint"), request=request,
                         sampling=sampling.__dict__)

    def _cached(self, key: str) -> Completion | None:
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            self.cached_calls += 1
            return Completion(**hit)
        return None

    def _finish(self, result: Completion, sampling: Sampling, key: str) -> Completion:
        if sampling.until_code_block:
            result.text, closed = cut_after_code_block(result.text)
            result.finish_reason = "stop" if closed else result.finish_reason
        if self.cache is not None and result.ok:  # failures are not cached: a rerun tries them again
            self.cache.put(key, result.__dict__)
        return result

    def generate(self, request: Request, sampling: Sampling) -> Completion:
        key = self._key(request, sampling)
        if (hit := self._cached(key)) is not None:
            return hit
        self.live_calls += 1
        errors: list[str] = []
        for attempt in range(1, self.retries + 2):
            try:
                result = self._generate(request, sampling)
                result.attempts = attempt
                return self._finish(result, sampling, key)
            except Exception as err:  # noqa: BLE001 - a failure is retried if it may pass, then recorded
                errors.append(f"{type(err).__name__}: {err}")
                if attempt > self.retries or not self.retryable(err):
                    break
                time.sleep(min(2 ** attempt, 30) * float(self.config.get("backoff", 1.0)))
        return Completion("", "error", error=" | ".join(errors), attempts=len(errors))

    def retryable(self, err: Exception) -> bool:
        return True

    def generate_all(self, requests: list[tuple[Request, Sampling]],
                     progress: Callable[[int], None] | None = None) -> list[Completion]:
        """Many requests, in order: one batch for batching backends, otherwise up to
        `concurrency` in flight (for remote endpoints)."""
        if self.batched:
            keys = [self._key(r, s) for r, s in requests]
            results: list[Completion | None] = [self._cached(k) for k in keys]
            missing = [i for i, r in enumerate(results) if r is None]
            self.live_calls += len(missing)
            for i, result in zip(missing, self._generate_batch([requests[i] for i in missing])):
                results[i] = self._finish(result, requests[i][1], keys[i])
            if progress and requests:
                progress(len(requests) - 1)
            return results  # type: ignore[return-value]

        def one(index_request: tuple[int, tuple[Request, Sampling]]) -> Completion:
            index, (request, sampling) = index_request
            result = self.generate(request, sampling)
            if progress:
                progress(index)
            return result

        if self.concurrency <= 1:
            return [one(item) for item in enumerate(requests)]
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(one, enumerate(requests)))


BACKENDS: dict[str, type[Backend]] = {}


def register(name: str) -> Callable[[type[Backend]], type[Backend]]:
    def wrap(cls: type[Backend]) -> type[Backend]:
        BACKENDS[name] = cls
        return cls

    return wrap


def make_backend(config: dict[str, Any], cache: ResponseCache | None = None) -> Backend:
    name = config["backend"]
    if name not in BACKENDS:
        raise ValueError(f"unknown backend '{name}': choose one of {sorted(BACKENDS)} (teacher.backend or eval.backend in conf/).")
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

    def _generate(self, request: Request, sampling: Sampling) -> Completion:
        kwargs = {"max_tokens": sampling.max_tokens, "temperature": sampling.temperature, "top_p": sampling.top_p,
                  "seed": sampling.seed, "stop": list(sampling.stop) or None, "stream": sampling.until_code_block}
        if isinstance(request, str):
            out = self.llm.create_completion(prompt=request, **kwargs)
        else:
            out = self.llm.create_chat_completion(messages=request, **kwargs)
        if sampling.until_code_block:
            return _until_code_block(out, _llama_text)
        choice = out["choices"][0]
        return Completion(_llama_text(choice), choice["finish_reason"] or "stop", out["usage"]["completion_tokens"])


def _llama_text(choice: dict[str, Any]) -> str:
    """The text of a llama.cpp completion, chat or streamed-chat choice."""
    if "text" in choice:
        return choice["text"] or ""
    if "delta" in choice:
        return choice["delta"].get("content") or ""
    return choice["message"]["content"] or ""


def _until_code_block(stream: Any, text_of: Callable[[dict[str, Any]], str]) -> Completion:
    """Consume a token stream until a fenced code block has closed, then stop generating."""
    text, tokens, reason = "", 0, "length"
    for chunk in stream:
        choice = chunk["choices"][0]
        text += text_of(choice)
        tokens += 1
        if choice.get("finish_reason"):
            reason = choice["finish_reason"]
            break
        if cut_after_code_block(text)[1]:
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

    def retryable(self, err: Exception) -> bool:
        """Timeouts, lost connections, 429 and 5xx; a 4xx such as a wrong key or model name is not."""
        import openai

        if isinstance(err, openai.APIStatusError):
            return err.status_code == 429 or err.status_code >= 500
        return isinstance(err, openai.APIConnectionError)  # includes APITimeoutError

    def _generate(self, request: Request, sampling: Sampling) -> Completion:
        kwargs = {"model": self.config["model"], "max_tokens": sampling.max_tokens, "temperature": sampling.temperature,
                  "top_p": sampling.top_p, "seed": sampling.seed, "stop": list(sampling.stop) or None,
                  "stream": sampling.until_code_block, "extra_body": self.config.get("extra_body")}
        if isinstance(request, str):
            out = self.client.completions.create(prompt=request, **kwargs)
            text_of: Callable[[Any], str] = lambda choice: choice.text or ""
        else:
            out = self.client.chat.completions.create(messages=request, **kwargs)
            text_of = lambda choice: (choice.delta.content if sampling.until_code_block else choice.message.content) or ""
        if sampling.until_code_block:
            chunks = ({"choices": [{"finish_reason": c.choices[0].finish_reason, "text": text_of(c.choices[0])}]}
                      for c in out if c.choices)
            return _until_code_block(chunks, lambda choice: choice["text"])
        choice = out.choices[0]
        return Completion(text_of(choice), choice.finish_reason or "stop", out.usage.completion_tokens if out.usage else 0)


@register("transformers")
class TransformersBackend(Backend):
    """Any Hugging Face checkpoint (hub name or local path) or a GGUF (dequantised), with an
    optional peft adapter applied. fp32 on CPU (no bf16 units here), the config's dtype on GPU."""

    def __init__(self, config: dict[str, Any], cache: ResponseCache | None = None):
        super().__init__(config, cache)
        self._loaded: tuple[Any, Any] | None = None

    @property
    def identity(self) -> dict[str, Any]:
        return {"backend": "transformers", "model": str(self.config["model"]), "adapter": str(self.config.get("adapter"))}

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            from evolab.models import resolve_hf

            source, kwargs = resolve_hf(str(self.config["model"]))
            device = "cuda" if torch.cuda.is_available() else "cpu"
            dtype = getattr(torch, self.config.get("dtype") or "bfloat16") if device == "cuda" else torch.float32
            tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs).to(device)
            if self.config.get("adapter"):
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(self.config["adapter"]))
            self._loaded = tokenizer, model.eval()
        return self._loaded

    def _generate(self, request: Request, sampling: Sampling) -> Completion:
        import torch
        from transformers import StoppingCriteria

        tokenizer, model = self._load()
        if isinstance(request, str):
            # With the tokenizer's special tokens (a BOS for Gemma, Llama), as in training and in llama.cpp.
            ids = tokenizer(request, return_tensors="pt")["input_ids"]
        else:
            ids = tokenizer.apply_chat_template(request, add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
        ids = ids.to(model.device)
        prompt_len = ids.shape[1]

        class CodeBlockClosed(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
                return cut_after_code_block(tokenizer.decode(input_ids[0, prompt_len:]))[1]

        torch.manual_seed(sampling.seed)
        sample = sampling.temperature > 0
        out = model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=sampling.max_tokens, do_sample=sample,
            temperature=sampling.temperature if sample else None, top_p=sampling.top_p if sample else None, top_k=None,
            stop_strings=list(sampling.stop) or None, tokenizer=tokenizer, pad_token_id=tokenizer.eos_token_id,
            stopping_criteria=[CodeBlockClosed()] if sampling.until_code_block else None,
        )
        new = out[0, prompt_len:]
        text = tokenizer.decode(new, skip_special_tokens=True)
        for stop in sampling.stop:  # the OpenAI convention: the stop string is not part of the text
            text = text.split(stop)[0]
        ended = new[-1].item() == tokenizer.eos_token_id or len(new) < sampling.max_tokens
        return Completion(text, "stop" if ended else "length", len(new))


@register("vllm")
class VLLMBackend(Backend):
    """vLLM's offline engine on a GPU machine (`pip install vllm`); a LoRA adapter through LoRARequest.
    All requests of a call to `generate_all` go to the engine as one batch."""

    def __init__(self, config: dict[str, Any], cache: ResponseCache | None = None):
        super().__init__(config, cache)
        try:
            import vllm  # noqa: F401
        except ImportError as err:
            raise RuntimeError("backend 'vllm' needs vLLM on a GPU machine: `pip install vllm` "
                               "(or choose llama_cpp/transformers/openai in conf/).") from err
        self._llm: Any = None

    @property
    def identity(self) -> dict[str, Any]:
        return {"backend": "vllm", "model": str(self.config["model"]), "adapter": str(self.config.get("adapter"))}

    @property
    def llm(self) -> Any:
        if self._llm is None:
            from vllm import LLM

            self._llm = LLM(model=str(self.config["model"]), dtype=self.config.get("dtype") or "auto",
                            tensor_parallel_size=int(self.config.get("tensor_parallel_size") or 1),
                            enable_lora=bool(self.config.get("adapter")), seed=0,
                            max_lora_rank=int(self.config.get("max_lora_rank") or 64))
        return self._llm

    batched = True

    def _generate(self, request: Request, sampling: Sampling) -> Completion:
        return self._generate_batch([(request, sampling)])[0]

    def _generate_batch(self, requests: list[tuple[Request, Sampling]]) -> list[Completion]:
        from vllm import SamplingParams
        from vllm.lora.request import LoRARequest

        tokenizer = self.llm.get_tokenizer()
        prompts = [r if isinstance(r, str) else tokenizer.apply_chat_template(r, add_generation_prompt=True, tokenize=False)
                   for r, _ in requests]
        params = [SamplingParams(max_tokens=s.max_tokens, temperature=s.temperature, top_p=s.top_p, seed=s.seed,
                                 stop=list(s.stop) or None) for _, s in requests]
        lora = LoRARequest("adapter", 1, str(self.config["adapter"])) if self.config.get("adapter") else None
        outputs = self.llm.generate(prompts, params, lora_request=lora)
        return [Completion(o.outputs[0].text, o.outputs[0].finish_reason or "stop", len(o.outputs[0].token_ids))
                for o in outputs]
