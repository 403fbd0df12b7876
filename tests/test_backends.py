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
    # No llama.cpp fields: evolab.backends.serve makes the server's default repeat penalty 1.0, as in process.
    return make_backend({"backend": "openai", "base_url": llama_server, "model": "embedded", "concurrency": 4})


def test_chat_stops_once_the_code_block_has_closed(llama):
    full = llama.generate(QUESTION, Sampling(max_tokens=160))
    cut = llama.generate(QUESTION, Sampling(max_tokens=160, until_code_block=True))
    assert cut.text.count("```") == 2 and cut.text.rstrip().endswith("```") and cut.finish_reason == "stop"
    assert full.text.startswith(cut.text) and len(full.text) > len(cut.text)  # the explanation was not generated
    assert cut.completion_tokens < full.completion_tokens


def test_completion_honours_stop_strings(llama):
    out = llama.generate(CODE_PROMPT, Sampling(max_tokens=64, stop=("\n\n",)))
    assert "return" in out.text and "\n\n" not in out.text and out.finish_reason == "stop"


def test_openai_backend_on_a_local_server_matches_llama_cpp_greedy(llama, server, llama_server):
    """A client that sends no llama.cpp fields (evalplus's codegen) gets in-process greedy text from
    evolab.backends.serve; under llama-cpp-python's own default repeat penalty (1.1) it would not."""
    greedy = Sampling(max_tokens=160)
    for request in (QUESTION, CODE_PROMPT):
        assert server.generate(request, greedy).text == llama.generate(request, greedy).text
    stock = make_backend({"backend": "openai", "base_url": llama_server, "model": "embedded",
                          "extra_body": {"repeat_penalty": 1.1}})
    assert stock.generate(QUESTION, greedy).text != llama.generate(QUESTION, greedy).text


def test_concurrent_requests_come_back_in_order(server):
    requests = [([{"role": "user", "content": f"Reply with the number {i} and nothing else."}], Sampling(max_tokens=8))
                for i in range(6)]
    concurrent = [c.text for c in server.generate_all(requests)]
    one_by_one = [server.generate(r, s).text for r, s in requests]
    assert concurrent == one_by_one and len(set(concurrent)) > 1


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
