"""The published figures the report puts ours beside (conf/report/*.yaml), typed: a key the report does not know or a
value of the wrong type fails when the file is read, naming the file and the key."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional

from omegaconf import MISSING

from evolab.core.errors import ConfigError

# OmegaConf reads the annotations at run time: Optional/Dict, not `X | None` or `dict[...]`.
# ruff: noqa: UP006, UP007, UP045


@dataclass
class PaperRounds:
    peak_round: int = MISSING                      # the round after which the paper's pass@1 declines
    merged_items: Dict[int, int] = MISSING         # training items after each round
    note: str = MISSING


@dataclass
class PaperControl:
    samples: int = MISSING
    samples_matched: float = MISSING               # HumanEval pass@1 (%), the round alone, samples-matched
    tokens_matched: float = MISSING


@dataclass
class PaperControls:
    tokens_matched_total: int = MISSING
    rows: Dict[int, PaperControl] = MISSING        # by round
    note: str = MISSING


@dataclass
class PaperMethod:
    paper: str = MISSING                           # the paper's model and its HumanEval pass@1
    tfidf_mean: Optional[float] = None             # its data's mean TF-IDF similarity to HumanEval, where published


@dataclass
class PaperMethods:
    note: str = MISSING
    rows: Dict[str, PaperMethod] = MISSING         # by method name
    tfidf_note: str = MISSING


@dataclass
class Paper:
    paper: str = MISSING
    rounds: PaperRounds = MISSING
    evol_stop: str = MISSING
    controls: PaperControls = MISSING
    similarity: str = MISSING
    methods: PaperMethods = MISSING
    # Problems on which two runs that should score alike disagree, per benchmark: the paired tests' noise floor.
    noise: Dict[str, int] = field(default_factory=dict)


def load_paper(path: Path) -> Paper:
    """conf/report/NAME.yaml as a Paper, or a ConfigError naming the file and the key."""
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from evolab.core.config import composition_error

    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Paper), yaml.safe_load(path.read_text())))
    except OmegaConfBaseException as err:
        raise ConfigError(f"{path}: {composition_error(err)}. Fix the key or value there (evolab/reporting/paper.py "
                          "says what each takes).") from None
