"""The generation backends on the real embedded model: in-process llama.cpp, transformers, and a
real OpenAI-compatible server on 127.0.0.1."""
import pytest

from evolab.backends import Sampling, make_backend

QUESTION = [{"role": "user", "content": "Write a Python function `add(a, b)` that returns a + b, in a markdown code block, then explain it."}]
CODE_PROMPT = 'def is_even(n: int) -> bool:\n    """Return True if n is even."""\n'


@pytest.fixture(scope="module")
def llama():
    return make_backend({"backend": "llama_cpp", "model": "qwen2.5-coder-0.5b-instruct"})


@pytest.fixture(scope="module")
def server(llama_server):
    # No llama.cpp fields: evolab.testing.serve makes the server's default repeat penalty 1.0, as in process.
    return make_backend({"backend": "openai", "base_url": llama_server, "model": "embedded", "concurrency": 4})


def test_llama_cpp_is_built_without_its_amx_kernels():
    """scripts/setup.sh leaves them out: on a CPU with AMX they crash in the first decode of the Q4_K_M models
    (docs/models.md). Where the CPU has no AMX, the build has none either way."""
    import llama_cpp

    assert "AMX_INT8 = 1" not in llama_cpp.llama_print_system_info().decode()


@pytest.mark.slow  # the embedded model
def test_chat_stops_once_the_code_block_has_closed(llama):
    full = llama.generate(QUESTION, Sampling(max_tokens=160))
    cut = llama.generate(QUESTION, Sampling(max_tokens=160, until_code_block=True))
    assert cut.text.count("```") == 2 and cut.text.rstrip().endswith("```") and cut.finish_reason == "stop"
    assert full.text.startswith(cut.text) and len(full.text) > len(cut.text)  # the explanation was not generated
    assert cut.completion_tokens < full.completion_tokens


@pytest.mark.slow  # the embedded model
def test_completion_honours_stop_strings(llama):
    out = llama.generate(CODE_PROMPT, Sampling(max_tokens=64, stop=("\n\n",)))
    assert "return" in out.text and "\n\n" not in out.text and out.finish_reason == "stop"


@pytest.mark.slow  # the embedded model
def test_openai_backend_on_a_local_server_matches_llama_cpp_greedy():
    """A client that sends no llama.cpp fields (evalplus's codegen) gets in-process greedy text from
    evolab.testing.serve; under llama-cpp-python's own default repeat penalty (1.1) it would not. Both sides start
    fresh and get the same requests in the same order: llama-cpp-python reuses the prompt prefix its context
    already holds, and a prompt evaluated in another batch shape can move greedy text at a near tie."""
    from evolab.testing.serve import llama_server

    greedy = Sampling(max_tokens=160)
    llama = make_backend({"backend": "llama_cpp", "model": "qwen2.5-coder-0.5b-instruct"})
    in_process = [llama.generate(request, greedy).text for request in (QUESTION, CODE_PROMPT)]
    with llama_server("qwen2.5-coder-0.5b-instruct") as url:
        server = make_backend({"backend": "openai", "base_url": url, "model": "embedded"})
        assert [server.generate(request, greedy).text for request in (QUESTION, CODE_PROMPT)] == in_process
        stock = make_backend({"backend": "openai", "base_url": url, "model": "embedded", "extra_body": {"repeat_penalty": 1.1}})
        assert stock.generate(QUESTION, greedy).text != in_process[0]


@pytest.mark.slow  # the embedded model
def test_concurrent_requests_come_back_in_order(server):
    requests = [([{"role": "user", "content": f"Reply with the number {i} and nothing else."}], Sampling(max_tokens=8))
                for i in range(6)]
    concurrent = [c.text for c in server.generate_all(requests)]
    one_by_one = [server.generate(r, s).text for r, s in requests]
    assert concurrent == one_by_one and len(set(concurrent)) > 1


@pytest.mark.slow  # the embedded model
def test_transformers_backend_agrees_with_llama_cpp_on_greedy_tokens(llama):
    hf = make_backend({"backend": "transformers", "model": "qwen2.5-coder-0.5b-instruct"})
    greedy = Sampling(max_tokens=12)
    assert hf.generate(CODE_PROMPT, greedy).text == llama.generate(CODE_PROMPT, greedy).text
    chat = hf.generate(QUESTION, Sampling(max_tokens=160, until_code_block=True))
    assert chat.text.count("```") == 2 and "def add" in chat.text


def test_vllm_without_vllm_installed_says_what_to_do():
    pytest.importorskip("torch")
    try:
        import vllm  # noqa: F401
        pytest.skip("vLLM is installed here")
    except ImportError:
        pass
    with pytest.raises(RuntimeError, match="pip install vllm"):
        make_backend({"backend": "vllm", "model": "Qwen/Qwen2.5-Coder-0.5B-Instruct"})


def test_unknown_backend_names_the_choices():
    with pytest.raises(ValueError, match="llama_cpp.*openai.*transformers.*vllm"):
        make_backend({"backend": "nope"})


class StandInVLLM:
    """vLLM's interface (LLM.generate, SamplingParams, LoRARequest, RequestOutput) around a scripted engine:
    a prompt with TOO_LONG fails the whole batch, as vLLM does for a prompt over max_model_len; INTERRUPT
    stops the run; otherwise the answer is a fenced block preceded by a bare opening fence line."""

    def __init__(self):
        import types

        stand_in = self
        self.calls: list[list[str]] = []
        self.engine_kwargs: dict = {}
        self.builds, self.build_error = 0, None

        class SamplingParams:
            def __init__(self, **kwargs):
                self.__dict__.update(kwargs)

        class LLM:
            def __init__(self, **kwargs):
                stand_in.builds += 1
                if stand_in.build_error:
                    raise stand_in.build_error
                stand_in.engine_kwargs = kwargs

            def get_tokenizer(self):  # a Llama-like template that writes its BOS into the text
                return types.SimpleNamespace(bos_token="<s>", apply_chat_template=lambda messages, **kw: "<s>" + messages[-1]["content"])

            def generate(self, prompts, params, lora_request=None):
                stand_in.calls.append(list(prompts))
                if any("INTERRUPT" in p for p in prompts):
                    raise KeyboardInterrupt
                if any("TOO_LONG" in p for p in prompts):
                    raise ValueError("prompt longer than max_model_len")
                return [types.SimpleNamespace(outputs=[stand_in.answer(prompt, p)], prompt_token_ids=prompt.split())
                        for prompt, p in zip(prompts, params)]

        self.module = types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams)
        self.lora = types.SimpleNamespace(LoRARequest=lambda *args: args)

    @staticmethod
    def answer(prompt, params):
        import types

        full = "Sure:\n```\nreturn 1\n```\nAnd more text that a stop would spare."
        done = next((k for k in range(len(full), 0, -1) if prompt.endswith(full[:k])), 0)  # a continuation's text so far
        text = full[done:]
        for stop in params.stop or []:
            if stop in text:
                text = text[:text.index(stop) + (len(stop) if params.include_stop_str_in_output else 0)]
                return types.SimpleNamespace(text=text, finish_reason="stop", token_ids=[0] * len(text.split()))
        return types.SimpleNamespace(text=text, finish_reason="length", token_ids=[0] * params.max_tokens)


def stand_in_vllm(monkeypatch) -> StandInVLLM:
    import sys
    import types

    stand_in = StandInVLLM()
    monkeypatch.setitem(sys.modules, "vllm", stand_in.module)
    monkeypatch.setitem(sys.modules, "vllm.lora", types.SimpleNamespace(request=stand_in.lora))
    monkeypatch.setitem(sys.modules, "vllm.lora.request", stand_in.lora)
    return stand_in


def test_vllm_caches_chunk_by_chunk_isolates_a_failing_request_and_stops_at_the_closing_fence(monkeypatch, tmp_path):
    from evolab.core.cache import ResponseCache

    stand_in = stand_in_vllm(monkeypatch)
    cache = ResponseCache(tmp_path / "responses.sqlite")
    config = {"backend": "vllm", "model": "m", "batch_chunk": 3, "max_model_len": 4096, "tensor_parallel_size": 2,
              "gpu_memory_utilization": None, "retries": 0}
    sampling = Sampling(max_tokens=64, until_code_block=True)
    prompts = [f"question {i}" for i in range(7)] + ["question TOO_LONG"] + [f"question {i}" for i in range(8, 10)]

    results = make_backend(config, cache).generate_all([([{"role": "user", "content": p}], sampling) for p in prompts])
    assert stand_in.engine_kwargs["tensor_parallel_size"] == 2 and stand_in.engine_kwargs["max_model_len"] == 4096
    assert "gpu_memory_utilization" not in stand_in.engine_kwargs  # null: vLLM's own default
    assert [r.ok for r in results] == [True] * 7 + [False] + [True] * 2  # only the bad request failed ...
    assert "max_model_len" in results[7].error
    # ... and each stopped at its closing fence (past the bare opening one), not at max_tokens
    assert all(r.text == "Sure:\n```\nreturn 1\n```" and r.completion_tokens < 64 for r in results if r.ok)
    assert len(cache) == 9
    assert all(not prompt.startswith("<s>") for call in stand_in.calls for prompt in call)  # vLLM adds the BOS itself

    # An interrupted run keeps every chunk that finished before it.
    interrupted = make_backend(config, ResponseCache(tmp_path / "other.sqlite"))
    with pytest.raises(KeyboardInterrupt):
        interrupted.generate_all([([{"role": "user", "content": p}], sampling) for p in
                                  ["a", "b", "c", "d", "e", "f", "g INTERRUPT"]])
    assert len(ResponseCache(tmp_path / "other.sqlite")) == 6  # two chunks of three


def test_a_vllm_engine_that_cannot_be_built_stops_the_stage_at_once(monkeypatch, tmp_path):
    """Not one failure record per request, each building the engine again until the stage's time runs out."""
    from evolab.core.cache import ResponseCache
    from evolab.core.errors import BackendUnavailable

    stand_in = stand_in_vllm(monkeypatch)
    stand_in.build_error = ValueError("No available memory for the cache blocks")
    config = {"backend": "vllm", "model": "m", "batch_chunk": 2, "retries": 3, "backoff": 0}
    requests = [([{"role": "user", "content": f"q{i}"}], Sampling(max_tokens=8)) for i in range(5)]
    with pytest.raises(BackendUnavailable, match="vLLM could not build its engine for m: ValueError: No available memory"):
        make_backend(config, ResponseCache(tmp_path / "a.sqlite")).generate_all(requests)
    assert stand_in.builds == 1  # the batch does not fall back to single requests, each building it again
    with pytest.raises(BackendUnavailable):
        make_backend(config, ResponseCache(tmp_path / "b.sqlite")).generate(*requests[0])
    assert stand_in.builds == 2  # nor is it retried
    with pytest.raises(BackendUnavailable):
        make_backend(config, ResponseCache(tmp_path / "b.sqlite")).start(requests)

    stand_in.build_error = None  # start() builds the engine only when some answer is not cached
    backend = make_backend(config, ResponseCache(tmp_path / "c.sqlite"))
    backend.start(requests)
    assert stand_in.builds == 4
    backend.generate_all(requests)
    make_backend(config, ResponseCache(tmp_path / "c.sqlite")).start(requests)
    assert stand_in.builds == 4


@pytest.mark.slow
def test_batched_llama_cpp_decodes_like_one_sequence_and_answers_every_request_once(tmp_path):
    """`parallel`: a lone request decoded in the batched context is the sequential answer, token for token,
    greedy or sampled with the same seed (both on fresh contexts: llama-cpp-python reuses a shared prompt
    prefix across calls); a batch with more
    requests than slots answers each once, in order, stopping where asked, and caches each under its own
    key (batched answers may round differently, so they never share entries with sequential ones)."""
    from evolab.core.cache import ResponseCache

    config = {"backend": "llama_cpp", "model": "qwen2.5-coder-0.5b-instruct", "retries": 0}
    chat, code = Sampling(max_tokens=160, until_code_block=True), Sampling(max_tokens=64, stop=("\n\n",))
    sampled = Sampling(max_tokens=48, temperature=1.0, top_p=0.95, seed=7)
    for request, sampling in ((QUESTION, chat), (CODE_PROMPT, code), (QUESTION, sampled)):
        sequential = make_backend(config).generate(request, sampling)
        [alone] = make_backend({**config, "parallel": 2}).generate_all([(request, sampling)])
        assert (alone.text, alone.finish_reason) == (sequential.text, sequential.finish_reason)

    cache = ResponseCache(tmp_path / "responses.sqlite")
    batched = make_backend({**config, "parallel": 3}, cache)
    questions = [[{"role": "user", "content": f"Write a Python function `add{i}(a, b)` that returns a + b + {i}, in a "
                                              "markdown code block, then explain it."}] for i in range(4)]
    requests = [(q, chat) for q in questions] + [(CODE_PROMPT, code), (QUESTION, sampled)]
    reported: list[int] = []
    results = batched.generate_all(requests, progress=reported.append)
    assert sorted(reported) == list(range(6)) and batched.live_calls == 6
    for i, result in enumerate(results[:4]):
        assert f"def add{i}(a, b)" in result.text and result.text.count("```") == 2 and result.finish_reason == "stop"
    assert "return" in results[4].text and "\n\n" not in results[4].text and results[4].finish_reason == "stop"
    assert results[5].ok and 0 < results[5].completion_tokens <= 48
    [other_seed] = make_backend({**config, "parallel": 3}).generate_all([(QUESTION, sampled.with_seed(8))])
    assert other_seed.text != results[5].text  # each request draws with its own seed
    assert len(cache) == 6
    again = make_backend({**config, "parallel": 3}, cache).generate_all(requests)
    assert [r.text for r in again] == [r.text for r in results]
    assert batched._key(*requests[0]) != make_backend(config)._key(*requests[0])


@pytest.mark.slow
def test_batched_llama_cpp_fails_only_the_request_over_the_context():
    config = {"backend": "llama_cpp", "model": "qwen2.5-coder-0.5b-instruct", "n_ctx": 256, "parallel": 2, "retries": 0}
    short = Sampling(max_tokens=16)
    backend = make_backend(config)
    calls: list[int] = []
    backend._generate = lambda *request: calls.append(1)  # the one-at-a-time path, taken when a whole batch fails
    results = backend.generate_all([(CODE_PROMPT, short), (CODE_PROMPT * 40, short), (CODE_PROMPT, short)])
    assert [r.ok for r in results] == [True, False, True] and not calls
    assert results[0].text == results[2].text and "256" in results[1].error
