"""The student as evaluation sees it: untuned, or tuned with what the train stage wrote, behind eval.backend."""
from __future__ import annotations

from pathlib import Path

from evolab.backends import Backend, make_backend
from evolab.backends.base import backend_class
from evolab.core import paths
from evolab.core.cache import cache_key, response_cache
from evolab.core.models import sha256_of
from evolab.core.schema import EvalSettings, ModelSettings


def student_backend(eval_cfg: EvalSettings, model: ModelSettings, train_method: str | None,
                    tuned: Path = Path(paths.TUNED)) -> Backend:
    """The student behind eval.backend: untuned (train_method None) or tuned, with the result of train
    in the form that backend loads (its `student` settings). Generations are cached (keyed by the tuned files'
    digest too): an interrupted evaluation resumes without generating again."""
    name = eval_cfg.backend
    config = backend_class(name).student(eval_cfg, model, train_method, tuned)
    fingerprint = cache_key(files=[sha256_of(f) for f in sorted(tuned.rglob("*")) if f.is_file()]) if train_method else None
    return make_backend({**config, "backend": name, "fingerprint": fingerprint}, response_cache())
