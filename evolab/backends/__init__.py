"""LLM backends behind one interface, chosen by name in conf/ (teacher.backend, eval.backend): one module
per backend (llama_cpp, openai, transformers, vllm), each registering itself, in the style of evalplus's
provider/.

A backend turns a request into text: chat messages (the model's chat template is applied) or a
plain string (raw completion, e.g. a training template or a base model's code prompt). Every call
can be cached by (backend identity, request, sampling), is retried on failure, and a call that
never succeeds is returned as a failure record rather than dropped.
"""
from evolab.backends.base import Backend, Completion, Sampling, make_backend, register, teacher_tokens
from evolab.core.prompts import Messages, Request

__all__ = ["Backend", "Completion", "Messages", "Request", "Sampling", "make_backend", "register", "teacher_tokens"]
