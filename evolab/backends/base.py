"""The interface every backend implements, its retries and cache, and the registry (evolab/backends/)."""
from __future__ import annotations

import importlib
import os
import pkgutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, Callable

from evolab.core.cache import Cache, cache_key
from evolab.core.errors import BackendUnavailable, BudgetReached, StageError
from evolab.core.prompts import Request
from evolab.core.schema import EvalSettings, ModelSettings, TeacherSettings
from evolab.core.schema import Sampling as SamplingSettings


@dataclass(frozen=True)
class Sampling:
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    # Stop once a fenced code block has closed: evaluation needs nothing after it.
    until_code_block: bool = False

    def with_seed(self, seed: int) -> "Sampling":
        return Sampling(**{**self.__dict__, "seed": seed})

    @classmethod
    def of(cls, settings: SamplingSettings, max_tokens: int) -> "Sampling":
        """A teacher's sampling as a method or verify sets it (their `sampling` section), at a stage's token budget."""
        return cls(max_tokens=max_tokens, temperature=settings.temperature, top_p=settings.top_p)


@dataclass
class Completion:
    text: str
    finish_reason: str  # "stop", "length" or "error"
    completion_tokens: int = 0
    error: str | None = None
    attempts: int = 1
    prompt_tokens: int = 0  # 0 in a response cached before the prompt was counted

    @property
    def ok(self) -> bool:
        return self.finish_reason != "error"


def teacher_tokens(completions: list[Completion], before: dict[str, int] | None = None) -> dict[str, int]:
    """What a record cost the teacher (`before`, plus these calls): its calls and their prompt and completion tokens,
    cached or not (the price of making it once)."""
    before = before or {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
    return {"calls": before["calls"] + len(completions),
            "prompt_tokens": before["prompt_tokens"] + sum(c.prompt_tokens for c in completions),
            "completion_tokens": before["completion_tokens"] + sum(c.completion_tokens for c in completions)}


def cpu_threads() -> int:
    """Threads a model on the CPU may use: OMP_NUM_THREADS when set (torch reads it too, and so do the stages it
    starts), else every core."""
    return int(os.environ.get("OMP_NUM_THREADS", "").split(",")[0] or os.cpu_count() or 1)


def cut_after_code_block(text: str) -> tuple[str, bool]:
    """Text up to the end of the first closed ``` block, and whether one closed."""
    first = text.find("```")
    close = text.find("```", first + 3) if first >= 0 else -1
    return (text[: close + 3], True) if close >= 0 else (text, False)


@dataclass
class Settings:
    """What every backend reads, with the defaults a caller may leave out: from the teacher's section (its schema in
    evolab/core/schema.py) or from a student's (the backend's `student`). A backend subclasses it with its own keys."""
    backend: str = ""
    model: str = ""
    retries: int = 2
    concurrency: int = 1
    budget_tokens: int | None = None  # live tokens a stage may spend (teacher.budget_tokens); past it, the stage stops
    backoff: float = 1.0              # seconds before the first retry, doubled each time
    batch_chunk: int = 256            # requests a batching backend takes at once
    fingerprint: str | None = None    # what the identity's names do not pin, e.g. the digest of a trained adapter

    @classmethod
    def of(cls, config: dict[str, Any]) -> Settings:
        """The keys of `config` that this backend reads, a None as the default (a teacher's section also holds what
        the stages read, its system prompt, and the schema has checked its keys at composition)."""
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in config.items() if key in names and value is not None})


@dataclass
class HubSettings(Settings):
    """A Hugging Face checkpoint's settings (the transformers and vLLM backends)."""
    dtype: str | None = None          # on a GPU; None: bfloat16 (transformers), vLLM's choice (vLLM)
    adapter: str | None = None        # a peft LoRA adapter folder (a tuned student)


class Backend:
    """Subclasses implement `identity` (what determines outputs) and `_generate`; a backend that
    batches (vLLM, llama.cpp with `parallel`) sets `batched` and implements `_generate_batch`; one with settings
    of its own names their class in `settings_type`."""

    batched = False
    settings_type: type[Settings] = Settings

    def __init__(self, config: dict[str, Any], cache: Cache | None = None):
        self.config = self.settings_type.of(config)
        self.cache = cache
        self.cached_calls = 0  # answered from the cache
        self.live_calls = 0  # sent to the model
        self.live_tokens = 0  # prompt and completion tokens of the live calls: what this process paid for
        self.answered: dict[str, int] = teacher_tokens([])  # every answer returned, cached or live (ledger())
        self._lock = threading.Lock()

    @property
    def identity(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def student(cls, eval_cfg: EvalSettings, model: ModelSettings, train_method: str | None, tuned: Path) -> dict[str, Any]:
        """This backend's settings for the student under evaluation: untuned (`train_method` None) or tuned, from
        what the train stage wrote to `tuned`, in the form this backend loads. Each backend says it for itself
        (evolab/evaluation/student.py asks the one eval.backend names)."""
        raise StageError(f"backend {cls.__name__} cannot evaluate a student: set eval.backend to llama_cpp, "
                         "transformers, vllm or openai.")

    def start(self, requests: list[tuple[Request, Sampling]]) -> None:
        """A backend that loads its model at the first request (vLLM) loads it here, where some of `requests` are
        not cached, so that the generation time measured after it is generation alone; the others load nothing."""

    def _generate(self, request: Request, sampling: Sampling) -> Completion:
        raise NotImplementedError

    def _generate_batch(self, requests: list[tuple[Request, Sampling]],
                        done: Callable[[int, Completion], None]) -> None:
        """Answer requests together, calling done(index in requests, completion) as each finishes."""
        raise NotImplementedError

    def _key(self, request: Request, sampling: Sampling) -> str:
        # `fingerprint`: what the identity's names do not pin, e.g. the digest of a trained adapter.
        return cache_key(backend=self.identity, fingerprint=self.config.fingerprint, request=request,
                         sampling=sampling.__dict__)

    def _cached(self, key: str) -> Completion | None:
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            hit = Completion(**hit)
            self._count(hit, live=False)
            return hit
        return None

    def _spend(self) -> None:
        """Stop before a live call once the budget is spent (calls in flight still finish and are cached)."""
        if self.config.budget_tokens is not None and self.live_tokens >= self.config.budget_tokens:
            raise BudgetReached(f"the teacher budget of {self.config.budget_tokens:,} live tokens is spent "
                                f"({self.live_tokens:,} after {self.live_calls} live calls). Every answer so far is cached: raise "
                                "teacher.budget_tokens (e.g. `dvc exp run -S teacher.budget_tokens=...`) or set it to "
                                "null, and rerun to resume.")

    def ledger(self) -> dict[str, int]:
        """What the stage's answers cost (cached or live: the price of the data) and what this run paid (live):
        each stage writes it to its metrics, so that the ledger can be read against the plan."""
        return {**self.answered, "live_calls": self.live_calls, "cached_calls": self.cached_calls,
                "live_tokens": self.live_tokens}

    def _count(self, answer: Completion, live: bool) -> None:
        with self._lock:  # requests finish on many threads (concurrency)
            self.answered = teacher_tokens([answer], self.answered)
            if live:
                self.live_tokens += answer.prompt_tokens + answer.completion_tokens
            else:
                self.cached_calls += 1

    def _finish(self, result: Completion, sampling: Sampling, key: str) -> Completion:
        self._count(result, live=True)
        if sampling.until_code_block:
            result.text, closed = cut_after_code_block(result.text)
            result.finish_reason = "stop" if closed else result.finish_reason
        if self.cache is not None and result.ok:  # failures are not cached: a rerun tries them again
            self.cache.put(key, result.__dict__)
        return result

    def generate(self, request: Request, sampling: Sampling) -> Completion:
        key = self._key(request, sampling)
        if (hit := self._cached(key)) is not None:
            return hit
        self._spend()
        self.live_calls += 1
        errors: list[str] = []
        for attempt in range(1, self.config.retries + 2):
            try:
                result = self._generate(request, sampling)
                result.attempts = attempt
                return self._finish(result, sampling, key)
            except BackendUnavailable:
                raise
            except Exception as err:  # noqa: BLE001 - a failure is retried if it may pass, then recorded
                errors.append(f"{type(err).__name__}: {err}")
                if attempt > self.config.retries or not self.retryable(err):
                    break
                time.sleep(min(2 ** attempt, 30) * self.config.backoff)
        return Completion("", "error", error=" | ".join(errors), attempts=len(errors))

    def retryable(self, err: Exception) -> bool:
        return True

    def _generate_batched(self, requests: list[tuple[Request, Sampling]],
                          progress: Callable[[int], None] | None) -> list[Completion]:
        """A batching engine (vLLM, llama.cpp with `parallel`) gets the uncached requests in chunks of
        `batch_chunk` and reports each answer as it finishes; each is cached at once, so an interrupted run
        loses only what was in flight. A chunk that fails as a whole (one prompt over the context length
        fails vLLM's whole batch) is asked again request by request, so that only the bad request becomes
        a failure record."""
        keys = [self._key(r, s) for r, s in requests]
        results: list[Completion | None] = [self._cached(k) for k in keys]
        missing = [i for i, r in enumerate(results) if r is None]
        chunk = self.config.batch_chunk
        for start in range(0, len(missing), chunk):
            part = missing[start:start + chunk]

            def done(j: int, answer: Completion, part: list[int] = part) -> None:
                i = part[j]
                self.live_calls += 1
                results[i] = self._finish(answer, requests[i][1], keys[i])
                if progress:
                    progress(i)

            self._spend()
            try:
                self._generate_batch([requests[i] for i in part], done)
            except BackendUnavailable:
                raise
            except Exception:  # noqa: BLE001 - isolate the request that failed the batch
                for i in part:
                    if results[i] is None:
                        results[i] = self.generate(*requests[i])
                        if progress:
                            progress(i)
        return results  # type: ignore[return-value]

    def generate_all(self, requests: list[tuple[Request, Sampling]],
                     progress: Callable[[int], None] | None = None) -> list[Completion]:
        """Many requests, in order: in chunks for batching backends (_generate_batched), otherwise up to
        `concurrency` in flight (for remote endpoints)."""
        if self.batched:
            return self._generate_batched(requests, progress)

        def one(index_request: tuple[int, tuple[Request, Sampling]]) -> Completion:
            index, (request, sampling) = index_request
            result = self.generate(request, sampling)
            if progress:
                progress(index)
            return result

        if self.config.concurrency <= 1:
            return [one(item) for item in enumerate(requests)]
        with ThreadPoolExecutor(self.config.concurrency) as pool:
            return list(pool.map(one, enumerate(requests)))


BACKENDS: dict[str, type[Backend]] = {}


def register(name: str) -> Callable[[type[Backend]], type[Backend]]:
    def wrap(cls: type[Backend]) -> type[Backend]:
        BACKENDS[name] = cls
        return cls

    return wrap


def available() -> list[str]:
    """The backend modules of this package: one file per backend, named as in conf/ (llama_cpp.py, ...)."""
    folder = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(folder)]) if m.name != "base")


def backend_class(name: str) -> type[Backend]:
    """The backend registered as `name`: its module evolab/backends/<name>.py registers it on import."""
    if name not in BACKENDS and name in available():
        importlib.import_module(f"evolab.backends.{name}")
    if name not in BACKENDS:
        raise ValueError(f"unknown backend '{name}': choose one of {available()} (teacher.backend or eval.backend in conf/).")
    return BACKENDS[name]


def make_backend(config: TeacherSettings | Any, cache: Cache | None = None) -> Backend:
    """The backend named by its settings' `backend`: the teacher's (a schema.TeacherSettings, or the untyped section
    of a backend with no schema yet) or a student's (its class's `student` settings, made at run time from eval's),
    given to the backend as its own Settings (Backend.settings_type)."""
    if is_dataclass(config):
        config = asdict(config)
    elif not isinstance(config, dict):
        from omegaconf import OmegaConf

        config = OmegaConf.to_container(config)
    return backend_class(config["backend"])(config, cache)


def hub_student(eval_cfg: EvalSettings, model: ModelSettings, train_method: str | None, tuned: Path) -> dict[str, Any]:
    """The student as a checkpoint folder or hub name (the transformers and vLLM backends): the fully fine-tuned
    model, the merged model when train.merge wrote one, or the base with the adapter."""
    from evolab.core.models import student_ref

    if not train_method:
        path, adapter = student_ref(model), None
    elif train_method == "full":
        path, adapter = str(tuned / "model"), None
    elif (tuned / "merged").is_dir():
        path, adapter = str(tuned / "merged"), None
    else:
        path, adapter = student_ref(model), str(tuned / "adapter")
    return {"model": path, "adapter": adapter, "dtype": eval_cfg.dtype}


def until_code_block(stream: Any, text_of: Callable[[dict[str, Any]], str]) -> Completion:
    """Consume a token stream until a fenced code block has closed, then stop generating."""
    text, tokens, reason = "", 0, "length"
    for chunk in stream:  # a stream reports no prompt tokens: the completion's prompt_tokens stay 0
        choice = chunk["choices"][0]
        text += text_of(choice)
        tokens += 1
        if choice.get("finish_reason"):
            reason = choice["finish_reason"]
            break
        if cut_after_code_block(text)[1]:
            reason = "stop"
            break
    return Completion(text, reason, tokens)
