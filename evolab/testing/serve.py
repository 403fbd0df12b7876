"""A local OpenAI-compatible server (llama-cpp-python's) on an embedded or local GGUF, for the
tests and benchmarks of the openai backend, and for evalplus's own codegen (benchmarks/eval_parity.py).

`python -m evolab.testing.serve [llama_cpp.server arguments]` is llama_cpp.server with one change: a request
that names no repeat penalty gets 1.0 (none), not the server's 1.1. With it, temperature 0 is plain
greedy decoding, as in-process llama.cpp and evalplus's other backends do; clients that cannot send
llama.cpp's own fields (evalplus's openai provider) get the same text as the in-process backend.
"""
from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Iterator

from evolab.backends.base import cpu_threads
from evolab.core.models import resolve_gguf


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def llama_server(model: str, alias: str = "embedded", timeout: float = 120) -> Iterator[str]:
    """Start the server on 127.0.0.1, yield its /v1 base URL, stop it on exit."""
    port = free_port()
    log = tempfile.TemporaryFile("w+")  # not a pipe: the server logs every request and would block on a full one
    proc = subprocess.Popen([sys.executable, "-m", "evolab.testing.serve", "--model", str(resolve_gguf(model)), "--host", "127.0.0.1",
                             "--port", str(port), "--n_ctx", "4096", "--n_threads", str(cpu_threads()), "--model_alias", alias],
                            stdout=log, stderr=log, text=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                urllib.request.urlopen(f"{url}/models", timeout=1)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"llama_cpp.server did not start:\n{log.read()[-2000:]}") from None
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def greedy_defaults() -> None:
    """Set the server's default repeat penalty to 1.0; before its app is imported, which builds its
    routes from these request models."""
    from llama_cpp.server import types

    for request in (types.CreateCompletionRequest, types.CreateChatCompletionRequest):
        request.model_fields["repeat_penalty"].default = 1.0
        request.model_rebuild(force=True)


def main() -> None:
    greedy_defaults()
    from llama_cpp.server.__main__ import main as serve

    serve()


if __name__ == "__main__":
    main()
