"""vLLM offline batches (GPU): the base model with a LoRA adapter, or a merged / fully fine-tuned model."""
from __future__ import annotations

from typing import Any

from evolab.backends.base import Backend, Completion, Request, Sampling, register
from evolab.core.cache import ResponseCache


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
