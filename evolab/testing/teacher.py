"""A scripted teacher: an OpenAI-compatible server on 127.0.0.1 whose every answer is a function of the request,
so that a test of the pipeline's mechanics (DVC, Hydra, MLflow, elimination, verification) knows in advance
which records each stage keeps, on any machine.

    python -m evolab.testing.teacher --port 8000      # then: dvc exp run -S teacher=openai -S teacher.base_url=...

What it answers, by the request it recognises:
- an evolution (Code Evol-Instruct's template): by the heuristic it is asked to apply (EVOLUTION): a harder
  question that elimination keeps (`constraints`), one the judge finds equal to its parent (`reasoning`), a
  template leak (`specific`), a solution instead of a question (`misdirection`), or a text longer than the
  request's max_tokens, cut there (`complexity`);
- the judge: "Equal" for a `reasoning` evolution, "Not Equal" otherwise;
- OSS-Instruct: a problem and its solution, unique to the snippet; WaveCoder: a case, unique to the raw code, and
  a discriminator that rejects every `code_translation` case;
- a request for tests (verify.tests_prompt): asserts that a `solution` returning its input passes, plus one it
  fails when the task asks to reject negative numbers (the `constraints` evolution's sentence);
- a task of evolab's suite (evolab/evaluation/task_suite.py): the reference solution, or, when `answers_right`
  says so, a function that returns None;
- anything else: a short answer with a `solution` function that returns its input, and a sentence about it.
Every answer is cut at the request's max_tokens (a word counted as a token), with finish_reason "length"; the usage it
reports counts the prompt's words and the answer's.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from evolab.core.records import read_jsonl

# Code Evol-Instruct's heuristics (conf/method/code_evol.yaml), recognised by a phrase of each, and what the
# teacher does under each.
HEURISTICS = {"constraints": "new constraints", "specific": "less common and more specific",
              "reasoning": "more reasoning steps", "misdirection": "erroneous code", "complexity": "time or space complexity"}
EVOLUTION = {"constraints": "harder", "reasoning": "equal", "specific": "template_leak", "misdirection": "solution",
             "complexity": "too_long"}
CONSTRAINTS = ("It must reject negative numbers with a ValueError.", "It must also run in linear time.",
               "It must also ignore None values.")
REASONING = "Before returning, it must check each intermediate result."
TASK_PROMPT = re.compile(r"```python\n(def (?:transform|process)\(.*?\n    \"\"\"\n)", re.S)


def cut(text: str, max_tokens: int) -> tuple[str, int, str]:
    """The answer as a model with this budget gives it, a word counted as a token: (text, tokens, finish_reason)."""
    words = list(re.finditer(r"\S+", text))
    if len(words) <= max_tokens:
        return text, len(words), "stop"
    return text[:words[max_tokens - 1].end()], max_tokens, "length"


def digest(*parts: Any) -> int:
    return int(hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:12], 16)


def answers_right(prompt: str, seed: int) -> bool:
    """Whether the teacher answers a suite task correctly under this sampling seed: two times in three."""
    return digest(prompt.strip(), seed) % 3 != 0


def heuristic_of(text: str) -> str | None:
    return next((name for name, phrase in HEURISTICS.items() if phrase in text), None)


def evolve(question: str, heuristic: str) -> str:
    outcome = EVOLUTION[heuristic]
    added = next((c for c in CONSTRAINTS if c not in question), CONSTRAINTS[-1])
    if outcome == "harder":
        return f"{question} {added}"
    if outcome == "equal":
        return f"{question} {REASONING}"
    if outcome == "template_leak":
        return f"#Rewritten Prompt#:\n{question} {added}"
    if outcome == "solution":
        return "```python\ndef solution(value):\n    return value\n```\nThis function returns its input."
    return f"{question} " + "Consider every case of the input with care. " * 120


def generic_answer(instruction: str) -> str:
    first = instruction.strip().splitlines()[0][:80].replace('"', "'")
    return (f"Here is a function that does it:\n\n```python\ndef solution(value):\n    \"\"\"{first}\"\"\"\n    return value\n```"
            "\n\nThe function `solution` takes the input and returns the result.")


def tests_answer(request: str) -> str:
    name = (re.search(r"function `(\w+)`", request) or re.search(r"def (\w+)\(", request))
    name_text = name.group(1) if name else "solution"
    asserts = [f"assert {name_text}(1) == 1", f"assert {name_text}('ab') == 'ab'"]
    if CONSTRAINTS[0] in request:
        asserts.append(f"assert {name_text}(-1) is None")
    return "```python\n" + "\n".join(asserts) + "\n```"


class JsonHandler(BaseHTTPRequestHandler):
    """An HTTP/1.1 handler that answers JSON and stays quiet: the scripted teacher's and benchmarks' fake servers."""

    protocol_version = "HTTP/1.1"

    def reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout) or was killed

    def log_message(self, *args: Any) -> None:
        pass


class ScriptedTeacher:
    """The server (a thread of this process). `latency`: seconds before each answer (a kill can land mid-stage).
    `requests` counts the requests received by kind; `bodies` the distinct request bodies."""

    def __init__(self, latency: float = 0.0, port: int = 0):
        teacher = self
        self.latency = latency
        self.lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.bodies: set[str] = set()
        self.references = self._suite_references()

        class Handler(JsonHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path not in ("/v1/chat/completions", "/v1/completions"):
                    return self.reply(404, {"error": {"message": f"no route {self.path}"}})
                if body.get("stream"):
                    return self.reply(400, {"error": {"message": "the scripted teacher does not stream"}})
                time.sleep(teacher.latency)
                chat = self.path.endswith("/chat/completions")
                text, kind = teacher.answer(body, chat)
                text, tokens, finish = cut(text, int(body.get("max_tokens") or 10**6))
                with teacher.lock:
                    teacher.requests[kind] += 1
                    teacher.bodies.add(json.dumps(body, sort_keys=True))
                choice = ({"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": text}} if chat
                          else {"index": 0, "finish_reason": finish, "text": text})
                prompt = len(" ".join(m["content"] for m in body["messages"]).split() if chat else body["prompt"].split())
                self.reply(200, {"id": "scripted", "object": "chat.completion" if chat else "text_completion",
                                 "created": 0, "model": body.get("model", "scripted"), "choices": [choice],
                                 "usage": {"prompt_tokens": prompt, "completion_tokens": tokens,
                                           "total_tokens": prompt + tokens}})

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a connection a killed client dropped

        self.server = Server(("127.0.0.1", port), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def _suite_references() -> dict[str, str]:
        """Every task of the suite: its prompt -> its reference solution (prompt and body)."""
        from evolab.evaluation.task_suite import FOLDER

        references = {}
        for split in ("train", "dev", "test"):
            for task in read_jsonl(FOLDER / f"{split}.jsonl"):
                code = task.get("reference") or task["prompt"] + task["canonical_solution"]
                references[code[:code.index('    """\n', code.index('"""') + 3) + 8].strip()] = code
        return references

    def answer(self, body: dict[str, Any], chat: bool) -> tuple[str, str]:
        """(the answer, the kind of request) for a request body."""
        if not chat:
            return "    return None\n", "completion"
        text = body["messages"][-1]["content"]
        seed = int(body.get("seed") or 0)
        if "increase the difficulty of the given programming test question" in text:
            heuristic = heuristic_of(text) or "constraints"
            lines = text.split("\n")
            at = next(i for i, line in enumerate(lines) if HEURISTICS[heuristic] in line)
            return evolve("\n".join(lines[at + 2:]), heuristic), "evolve"
        if "Your Judgement" in text:
            return ("Equal" if REASONING in text else "Not Equal"), "judge"
        if "[Problem Description] and [Solution]" in text:
            n = digest(text) % 1000
            return (f"[Problem Description]\nWrite a function `f_{n}(x)` that returns x plus {n}.\n\n"
                    f"[Solution]\n```python\ndef f_{n}(x):\n    return x + {n}\n```"), "oss_instruct"
        if "Translate a given task summary into a functional code" in text:
            n = digest(text.rsplit("Raw code:", 1)[-1]) % 1000
            task = re.findall(r"Task: (\w+)\.", text)[-1]
            return (f"task_name: {task}\ninstruction: Write a Python function f_{n} that doubles a number.\n"
                    f"information: <noinput>\nsolution: def f_{n}(x):\n    return 2 * x"), "wavecoder"
        if "Please analyze and judge" in text:
            verdict = "no" if "task_name: code_translation" in text else "yes"
            return f"- Overall answer: {verdict}\n- reasons: scripted", "discriminator"
        if "assert statements" in text:
            return tests_answer(text), "tests"
        if found := TASK_PROMPT.search(text):
            reference = self.references.get(found.group(1).strip())
            if reference is not None:
                right = answers_right(found.group(1), seed)
                code = reference if right else found.group(1) + "    return None\n"
                return f"```python\n{code}```", "task"
        return generic_answer(text), "answer"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    teacher = ScriptedTeacher(args.latency, args.port)
    print(f"scripted teacher at {teacher.base_url}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
