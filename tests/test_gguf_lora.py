"""The tuned model runs in llama.cpp (GGUF LoRA adapter on the Q4 base) as it does in transformers."""
import numpy as np
import pytest
import torch

from evolab.training.gguf_lora import peft_to_gguf
from evolab.training.sft import load_student

pytestmark = pytest.mark.slow  # LoRA steps on the embedded model, then llama.cpp and transformers side by side

PROMPTS = [
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "### Instruction:\nWrite a Python function that reverses a list.\n\n### Response:\n",
    "import math\n\ndef area_of_circle(r):\n",
]
STEPS = 8
# llama.cpp multiplies Q4_K weights with 8-bit-quantised activations, transformers uses the
# dequantised fp32 weights: logits differ by quantisation noise, not by the adapter.
LOGIT_TOLERANCE = 1.0


@pytest.fixture(scope="module")
def tuned(embedded_gguf, tmp_path_factory):
    from peft import LoraConfig, get_peft_model

    tokenizer, model = load_student(str(embedded_gguf))
    torch.manual_seed(0)  # before peft draws A: the same adapter whatever ran before in this process
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"]))
    with torch.no_grad():  # peft starts B at zero (a no-op adapter): make it a real change
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.02)
    out = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(str(out))
    model.eval()
    return tokenizer, model, peft_to_gguf(out, embedded_gguf, out / "adapter.gguf")


def hf_greedy(model, tokenizer, prompt):
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits[0, -1].numpy()
        generated = model.generate(ids, max_new_tokens=STEPS, do_sample=False)[0, ids.shape[1]:].tolist()
    return logits, generated


def cpp_greedy(llm, prompt):
    tokens = llm.tokenize(prompt.encode(), add_bos=False, special=True)
    llm.reset()
    llm.eval(tokens)
    logits = np.array(llm.scores[len(tokens) - 1])
    generated = []
    for token in llm.generate(tokens, temp=0.0, reset=True):
        if len(generated) == STEPS:
            break
        generated.append(token)
    return logits, generated


def test_llama_cpp_with_the_gguf_adapter_agrees_with_transformers(tuned, embedded_gguf):
    from llama_cpp import Llama

    tokenizer, model, adapter = tuned
    with_lora = Llama(str(embedded_gguf), lora_path=str(adapter), logits_all=True, n_ctx=512, seed=0, verbose=False)
    base = Llama(str(embedded_gguf), logits_all=True, n_ctx=512, seed=0, verbose=False)
    for prompt in PROMPTS:
        hf_logits, hf_tokens = hf_greedy(model, tokenizer, prompt)
        cpp_logits, cpp_tokens = cpp_greedy(with_lora, prompt)
        base_logits, _ = cpp_greedy(base, prompt)
        vocab = min(len(hf_logits), len(cpp_logits))
        diff = np.abs(hf_logits[:vocab] - cpp_logits[:vocab]).max()
        adapter_effect = np.abs(base_logits[:vocab] - cpp_logits[:vocab]).max()
        print(f"max|hf-cpp|={diff:.3f} max|base-tuned|={adapter_effect:.3f} {hf_tokens} {cpp_tokens}")
        assert cpp_tokens == hf_tokens
        assert diff < LOGIT_TOLERANCE < adapter_effect


def test_batched_decoding_applies_the_adapter(tuned, embedded_gguf):
    """The llama_cpp backend's batched context (eval.parallel) carries the adapter: a lone request there is
    the sequential tuned answer, which differs from the untuned one."""
    from evolab.backends import Sampling, make_backend

    adapter = str(tuned[2])
    config = {"backend": "llama_cpp", "model": str(embedded_gguf), "n_ctx": 512}
    greedy = Sampling(max_tokens=24)
    changed = 0
    for prompt in PROMPTS:
        sequential = make_backend({**config, "lora_path": adapter}).generate(prompt, greedy).text
        [batched] = make_backend({**config, "lora_path": adapter, "parallel": 2}).generate_all([(prompt, greedy)])
        assert batched.text == sequential
        changed += sequential != make_backend(config).generate(prompt, greedy).text
    assert changed  # the adapter changes some answer, so the check above can tell whether it was applied
