"""llama.cpp in process (llama-cpp-python): the embedded GGUF models, a LoRA adapter as GGUF.

With `parallel` > 1, requests are decoded together (continuous batching on one context with one KV
stream per sequence, as llama.cpp's own server does with `-np`): on 2 CPU cores 1.4x the tokens/s of one
sequence at a time at 16 (reports/batched_decoding.md). Each sequence draws its tokens from its own
sampler chain, the one llama-cpp-python's create_completion builds (greedy at temperature 0; else top-k 40,
top-p, min-p 0.05, temperature, seeded with the request's seed). Batched matrix products may round
differently from single-sequence ones, so an answer can differ from the sequential one; the backend's
identity carries `parallel`, so the two never share cache entries."""
from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

from evolab.backends.base import Backend, Completion, Request, Sampling, Settings, cpu_threads, cut_after_code_block, register, until_code_block
from evolab.core.cache import Cache
from evolab.core.errors import StageError
from evolab.core.schema import EvalSettings, ModelSettings


@dataclass
class LlamaCppSettings(Settings):
    n_ctx: int = 4096                 # context length of each sequence
    n_threads: int | None = None      # None: every core (cpu_threads)
    parallel: int = 1                 # decoding slots: above 1, requests are batched
    lora_path: str | None = None      # a GGUF LoRA adapter (a tuned student)


@register("llama_cpp")
class LlamaCppBackend(Backend):
    """An embedded or local GGUF, run in-process by llama.cpp (optionally with a GGUF LoRA adapter)."""

    settings_type = LlamaCppSettings
    config: LlamaCppSettings

    def __init__(self, config: dict[str, Any], cache: Cache | None = None):
        super().__init__(config, cache)
        self._llm: Any = None

    @classmethod
    def student(cls, eval_cfg: EvalSettings, model: ModelSettings, train_method: str | None, tuned: Path) -> dict[str, Any]:
        """The student's GGUF, with the train stage's adapter converted to GGUF when tuned (a LoRA only)."""
        if not model.gguf or train_method == "full":
            raise StageError("eval.backend=llama_cpp runs a GGUF model with a LoRA adapter; for a hub model or a "
                             "fully fine-tuned one use -S eval.backend=transformers (CPU) or vllm (GPU).")
        adapter = str(tuned / "adapter.gguf") if train_method else None
        return {"model": model.gguf, "lora_path": adapter, "n_ctx": 4096, "parallel": eval_cfg.parallel}

    @property
    def parallel(self) -> int:
        return self.config.parallel

    @property
    def batched(self) -> bool:  # type: ignore[override]
        return self.parallel > 1

    @property
    def n_ctx(self) -> int:
        """Context length of each sequence."""
        return self.config.n_ctx

    @property
    def identity(self) -> dict[str, Any]:
        ident = {"backend": "llama_cpp", "model": str(self.config.model), "lora": str(self.config.lora_path),
                 "n_ctx": self.config.n_ctx}
        return {**ident, "parallel": self.parallel} if self.batched else ident

    @property
    def n_threads(self) -> int:
        return self.config.n_threads or cpu_threads()

    @property
    def llm(self) -> Any:
        if self._llm is None:
            from llama_cpp import Llama

            from evolab.core.models import resolve_gguf

            self._llm = Llama(
                model_path=str(resolve_gguf(str(self.config.model))),
                lora_path=self.config.lora_path,
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
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
        return Completion(_llama_text(choice), choice["finish_reason"] or "stop", out["usage"]["completion_tokens"],
                          prompt_tokens=out["usage"]["prompt_tokens"])

    def _generate_batch(self, requests: list[tuple[Request, Sampling]],
                        done: Callable[[int, Completion], None]) -> None:
        """Requests decoded `parallel` at a time, each reported as it finishes."""
        sequences = []
        for j, (request, sampling) in enumerate(requests):
            tokens, stops = self._prompt(request)
            if len(tokens) >= self.n_ctx:  # fails alone, as llama-cpp-python fails it
                done(j, Completion("", "error", error=f"ValueError: prompt of {len(tokens)} tokens exceeds n_ctx {self.n_ctx}"))
            else:
                sequences.append(_Sequence(j, tokens, sampling, stops))
        if sequences:
            self._decode_together(sequences, lambda seq: done(seq.index, seq.completion()))

    def _prompt(self, request: Request) -> tuple[list[int], tuple[str, ...]]:
        """The prompt's tokens and extra stop strings, as llama-cpp-python's create_completion and its
        chat handler for the GGUF's own template (`chat_template.default`) make them."""
        llm = self.llm
        if isinstance(request, str):
            model = llm._model
            bos = [model.token_cls() if model.token_cls() != -1 else llm.token_bos()] if model.add_bos_token() else []
            return bos + llm.tokenize(request.encode("utf-8"), add_bos=False, special=True), ()
        result = self._chat_formatter(messages=request)
        stops = result.stop if isinstance(result.stop, list) else [result.stop] if result.stop else []
        tokens = llm.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True)
        return tokens, tuple(stops)

    @cached_property
    def _chat_formatter(self) -> Any:
        """The GGUF's own chat template, built once, as llama-cpp-python builds its `chat_template.default`."""
        llm = self.llm
        if llm.chat_format != "chat_template.default":
            raise ValueError(f"batched chat needs the GGUF's chat template; this model's format is {llm.chat_format}")
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        return Jinja2ChatFormatter(template=llm.metadata["tokenizer.chat_template"],
                                   eos_token=llm._model.token_get_text(llm.token_eos()),
                                   bos_token=llm._model.token_get_text(llm.token_bos()),
                                   stop_token_ids=[llm.token_eos()])

    def _sampler(self, sampling: Sampling) -> Any:
        """The sampler chain create_completion would use for this request (its defaults beside temperature and
        top-p: top-k 40, min-p 0.05, no penalties), seeded as create_completion seeds it."""
        self.llm.set_seed(sampling.seed)
        return self.llm._init_sampler(temp=sampling.temperature, top_p=sampling.top_p)

    def _decode_together(self, sequences: list["_Sequence"], finished: Callable[["_Sequence"], None]) -> None:
        """Continuous batching: up to `parallel` sequences in flight; a finished one frees its slot for the
        next prompt, whose prefill shares a batch with the others' next tokens."""
        import llama_cpp as L

        llm, slots, n_ctx = self.llm, self.parallel, self.n_ctx
        params = type(llm.context_params).from_buffer_copy(llm.context_params)  # the sequential path's settings
        params.n_ctx, params.n_seq_max, params.kv_unified = n_ctx * slots, slots, False
        params.n_batch = n_ctx + slots
        ctx = L.llama_init_from_model(llm._model.model, params)
        if not ctx:
            raise RuntimeError("llama.cpp could not make a batched context")
        batch = L.llama_batch_init(params.n_batch, 0, 1)
        try:
            if llm._lora_adapter is not None:
                adapters = (L.llama_adapter_lora_p_ctypes * 1)(llm._lora_adapter)
                if L.llama_set_adapters_lora(ctx, adapters, 1, (ctypes.c_float * 1)(llm.lora_scale)):
                    raise RuntimeError("llama.cpp could not apply the LoRA adapter to the batched context")
            memory, vocab = L.llama_get_memory(ctx), L.llama_model_get_vocab(llm._model.model)
            waiting, active = list(reversed(sequences)), {}
            while waiting or active:
                batch.n_tokens = 0
                for slot in range(slots):  # admit waiting prompts into free slots while the batch has room
                    if slot in active or not waiting or batch.n_tokens + len(waiting[-1].prompt) + slots > params.n_batch:
                        continue
                    active[slot] = seq = waiting.pop()
                    L.llama_memory_seq_rm(memory, slot, -1, -1)
                    for pos, token in enumerate(seq.prompt):
                        _add(batch, token, pos, slot, pos == len(seq.prompt) - 1)
                    seq.logit_at, seq.pos = batch.n_tokens - 1, len(seq.prompt)
                    seq.budget = min(seq.sampling.max_tokens, n_ctx - len(seq.prompt))
                    seq.sampler = self._sampler(seq.sampling)
                for slot, seq in active.items():
                    if seq.next is not None:  # a sequence already decoding feeds its last token
                        _add(batch, seq.next, seq.pos, slot, True)
                        seq.logit_at, seq.pos = batch.n_tokens - 1, seq.pos + 1
                if (code := L.llama_decode(ctx, batch)) != 0:
                    raise RuntimeError(f"llama_decode failed ({code})")
                for slot in list(active):
                    seq = active[slot]
                    token = L.llama_sampler_sample(seq.sampler.sampler, ctx, seq.logit_at)
                    if L.llama_vocab_is_eog(vocab, token):
                        seq.finish_reason = "stop"
                    else:
                        seq.take(token, llm.detokenize([token]))
                    if seq.finish_reason is not None:
                        del active[slot]
                        finished(seq)
        finally:
            L.llama_batch_free(batch)
            L.llama_free(ctx)


@dataclass
class _Sequence:
    """One request in flight: its prompt, its sampler, its tokens so far and why it stopped."""
    index: int
    prompt: list[int]
    sampling: Sampling
    extra_stops: tuple[str, ...] = ()
    data: bytearray = field(default_factory=bytearray)
    tokens: int = 0
    next: int | None = None
    pos: int = 0
    logit_at: int = 0
    budget: int = 0
    finish_reason: str | None = None
    text: str = ""
    sampler: Any = None

    def take(self, token: int, piece: bytes) -> None:
        self.data += piece
        self.tokens += 1
        self.next = token
        self.text = self.data.decode("utf-8", errors="ignore")
        stops = [self.text.find(s) for s in (*self.sampling.stop, *self.extra_stops) if s in self.text]
        if stops:
            self.text = self.text[:min(stops)]
            self.finish_reason = "stop"
        elif self.sampling.until_code_block and cut_after_code_block(self.text)[1]:
            self.finish_reason = "stop"
        elif self.tokens >= self.budget:
            self.finish_reason = "length"

    def completion(self) -> Completion:
        return Completion(self.text, self.finish_reason or "stop", self.tokens, prompt_tokens=len(self.prompt))


def _add(batch: Any, token: int, pos: int, seq_id: int, logits: bool) -> None:
    i = batch.n_tokens
    batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, pos, 1, logits
    batch.seq_id[i][0] = seq_id
    batch.n_tokens = i + 1


def _llama_text(choice: dict[str, Any]) -> str:
    """The text of a llama.cpp completion, chat or streamed-chat choice."""
    if "text" in choice:
        return choice["text"] or ""
    if "delta" in choice:
        return choice["delta"].get("content") or ""
    return choice["message"]["content"] or ""
