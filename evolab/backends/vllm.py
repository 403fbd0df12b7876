"""vLLM offline batches (GPU): the base model with a LoRA adapter, or a merged / fully fine-tuned model."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable

from evolab.backends.base import Backend, Completion, HubSettings, Request, Sampling, cut_after_code_block, hub_student, register
from evolab.core.cache import Cache
from evolab.core.errors import BackendUnavailable
from evolab.core.schema import EvalSettings, ModelSettings


@dataclass
class VllmSettings(HubSettings):
    """The checkpoint's settings, then the engine's (conf/teacher/vllm.yaml, eval.vllm): None leaves vLLM's default."""
    tensor_parallel_size: int | None = None
    max_model_len: int | None = None
    gpu_memory_utilization: float | None = None
    max_lora_rank: int | None = None


# The engine's settings: VllmSettings' own fields.
ENGINE = tuple(f.name for f in fields(VllmSettings) if f.name not in {g.name for g in fields(HubSettings)})

# A fenced block closes with a line of three backticks; an opening fence carries a language name, or is
# passed by one continuation (below).
FENCE_STOP = "\n```\n"


def chat_text(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The chat template's text without its leading BOS: vLLM tokenizes a text prompt with the special tokens,
    so a template that writes BOS itself (Llama's) would start the prompt with two."""
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    bos = getattr(tokenizer, "bos_token", None)
    return text[len(bos):] if bos and text.startswith(bos) else text


@register("vllm")
class VLLMBackend(Backend):
    """vLLM's offline engine on a GPU machine (`pip install vllm`); a LoRA adapter through LoRARequest.
    Requests go to the engine in chunks (Backend._generate_batched): cached chunk by chunk, a failing
    request isolated."""

    batched = True
    settings_type = VllmSettings
    config: VllmSettings

    def __init__(self, config: dict[str, Any], cache: Cache | None = None):
        super().__init__(config, cache)
        try:
            import vllm  # noqa: F401
        except ImportError as err:
            raise RuntimeError("backend 'vllm' needs vLLM on a GPU machine: `pip install vllm` "
                               "(or choose llama_cpp/transformers/openai in conf/).") from err
        self._llm: Any = None

    @classmethod
    def student(cls, eval_cfg: EvalSettings, model: ModelSettings, train_method: str | None, tuned: Path) -> dict[str, Any]:
        """The student as the transformers backend loads it, with eval.vllm's engine settings."""
        return {**hub_student(eval_cfg, model, train_method, tuned), **asdict(eval_cfg.vllm)}

    @property
    def identity(self) -> dict[str, Any]:
        return {"backend": "vllm", "model": str(self.config.model), "adapter": str(self.config.adapter)}

    @property
    def llm(self) -> Any:
        """The engine, built at the first request (or by start()). An engine that fails to build (no GPU, no
        room for the KV cache, a model vLLM cannot load) stops the stage: it would fail again for every request."""
        if self._llm is None:
            from vllm import LLM

            engine = {key: getattr(self.config, key) for key in ENGINE if getattr(self.config, key) is not None}
            try:
                self._llm = LLM(model=str(self.config.model), dtype=self.config.dtype or "auto",
                                enable_lora=bool(self.config.adapter), seed=0, **engine)
            except Exception as err:  # noqa: BLE001 - vLLM raises many kinds; each means no engine
                raise BackendUnavailable(f"vLLM could not build its engine for {self.config.model}: "
                                         f"{type(err).__name__}: {err}") from err
        return self._llm

    def start(self, requests: list[tuple[Request, Sampling]]) -> None:
        if any(self._cached(self._key(r, s)) is None for r, s in requests):
            self.llm  # noqa: B018 - builds the engine

    def _generate(self, request: Request, sampling: Sampling) -> Completion:
        return self._answers([(request, sampling)])[0]

    def _generate_batch(self, requests: list[tuple[Request, Sampling]],
                        done: Callable[[int, Completion], None]) -> None:
        for j, answer in enumerate(self._answers(requests)):
            done(j, answer)

    def _answers(self, requests: list[tuple[Request, Sampling]]) -> list[Completion]:
        """One engine call; for `until_code_block`, generation stops at a closing fence instead of running to
        max_tokens, and an answer stopped at a bare opening fence continues once."""
        from vllm import SamplingParams
        from vllm.lora.request import LoRARequest

        tokenizer = self.llm.get_tokenizer()
        prompts = [r if isinstance(r, str) else chat_text(tokenizer, r) for r, _ in requests]

        def params(s: Sampling, used: int = 0) -> Any:
            stop = list(s.stop) + ([FENCE_STOP] if s.until_code_block else [])
            return SamplingParams(max_tokens=s.max_tokens - used, temperature=s.temperature, top_p=s.top_p, seed=s.seed,
                                  stop=stop or None, include_stop_str_in_output=s.until_code_block)

        lora = LoRARequest("adapter", 1, str(self.config.adapter)) if self.config.adapter else None
        generated = self.llm.generate(prompts, [params(s) for _, s in requests], lora_request=lora)
        results = [Completion(o.outputs[0].text, o.outputs[0].finish_reason or "stop", len(o.outputs[0].token_ids),
                              prompt_tokens=len(o.prompt_token_ids or [])) for o in generated]
        again = [i for i, (r, (_, s)) in enumerate(zip(results, requests))
                 if s.until_code_block and r.finish_reason == "stop" and r.completion_tokens < s.max_tokens
                 and not cut_after_code_block(r.text)[1] and r.text.endswith(FENCE_STOP)]
        if again:  # stopped at an opening fence without a language name: go on to the closing one
            more = self.llm.generate([prompts[i] + results[i].text for i in again],
                                     [params(requests[i][1], results[i].completion_tokens) for i in again], lora_request=lora)
            for i, o in zip(again, more):
                out = o.outputs[0]
                results[i] = Completion(results[i].text + out.text, out.finish_reason or "stop",
                                        results[i].completion_tokens + len(out.token_ids),
                                        prompt_tokens=results[i].prompt_tokens + len(o.prompt_token_ids or []))
        return results
