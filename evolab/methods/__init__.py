"""The data-generation methods, one module each: Code Evol-Instruct (code_evol: seed answers and evolution
rounds, the seed and evolve stages), and the methods that write data from real code (method.generator,
the generate stage): OSS-Instruct (oss_instruct) and WaveCoder (wavecoder); sources and coreset are
what those two draw from.

A generator method's module defines `make_data(cfg, count, max_tokens, seed, backend, log)`, returning
one record per teacher call (evolab.core.records.MethodRecord) and extra statistics; adding one is its
module plus its conf/method/*.yaml (docs/methods.md).
"""
from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Any, Callable

from evolab.core.errors import ConfigError
from evolab.core.records import MethodRecord

MakeData = Callable[..., tuple[list[MethodRecord], dict[str, Any]]]


def generators() -> list[str]:
    """The modules of this package that define make_data."""
    names = [m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)])]
    return sorted(n for n in names if hasattr(importlib.import_module(f"evolab.methods.{n}"), "make_data"))


def data_generator(name: str) -> MakeData:
    """make_data of evolab/methods/<name>.py (method.generator in conf/method/)."""
    if name not in generators():
        raise ConfigError(f"unknown generator '{name}' (method.generator): choose one of {generators()}.")
    return importlib.import_module(f"evolab.methods.{name}").make_data
