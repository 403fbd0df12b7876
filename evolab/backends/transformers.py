"""transformers (+ peft) in process: any HF checkpoint, a trained adapter or a fully fine-tuned model."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from evolab.backends.base import Backend, Completion, HubSettings, Request, Sampling, cut_after_code_block, hub_student, register
from evolab.core.cache import Cache
from evolab.core.schema import EvalSettings, ModelSettings


@register("transformers")
class TransformersBackend(Backend):
    """Any Hugging Face checkpoint (hub name or local path) or a GGUF (dequantised), with an
    optional peft adapter applied. fp32 on CPU (no bf16 units here), the config's dtype on GPU."""

    settings_type = HubSettings
    config: HubSettings

    def __init__(self, config: dict[str, Any], cache: Cache | None = None):
        super().__init__(config, cache)
        self._loaded: tuple[Any, Any] | None = None

    @classmethod
    def student(cls, eval_cfg: EvalSettings, model: ModelSettings, train_method: str | None, tuned: Path) -> dict[str, Any]:
        return hub_student(eval_cfg, model, train_method, tuned)

    @property
    def identity(self) -> dict[str, Any]:
        return {"backend": "transformers", "model": str(self.config.model), "adapter": str(self.config.adapter)}

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            from evolab.core.models import resolve_hf

            source, kwargs = resolve_hf(str(self.config.model))
            device = "cuda" if torch.cuda.is_available() else "cpu"
            dtype = getattr(torch, self.config.dtype or "bfloat16") if device == "cuda" else torch.float32
            tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
            if torch.cuda.device_count() > 1:  # the model's layers spread over every visible GPU, not all on cuda:0
                model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, device_map="auto", **kwargs)
            else:
                model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **kwargs).to(device)
            if self.config.adapter:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(self.config.adapter))
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
        return Completion(text, "stop" if ended else "length", len(new), prompt_tokens=prompt_len)
