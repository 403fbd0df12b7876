"""What the tests and benchmarks run the pipeline against instead of a real model: a scripted, deterministic
OpenAI-compatible teacher on 127.0.0.1 (teacher.py), whose answers, failures included, are known in advance; and
llama.cpp's own server on an embedded GGUF with greedy defaults (serve.py), which the openai backend's tests and
evalplus's own codegen (benchmarks/eval_parity.py) talk to."""
