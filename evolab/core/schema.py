"""The experiment's schema: one dataclass per section of conf/, registered in Hydra's ConfigStore, so that a key
that is not in it or a value of the wrong type fails when the experiment is composed (`dvc exp run -S ...`,
`python -m evolab.core.config ...`), naming the key's path.

The fields carry no defaults (MISSING): conf/*.yaml holds every value and its reason, the schema only says which keys
exist and what type each takes. conf/config.yaml's defaults list starts with `evolab_schema`; the groups whose
options differ in their keys (the teacher's backends, the methods) attach their option's schema from the option's
own file (`defaults: [llama_cpp_schema, _self_]`), as Hydra's structured-config tutorials do. A training setting
that TRL's SFTConfig takes as it is names that field (`sft("num_train_epochs")`): training/sft.py passes those by
field, and a test checks each name against SFTConfig.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

# OmegaConf reads the annotations at run time: Optional/List/Dict, not `X | None` or `list[str]`.
# ruff: noqa: UP006, UP007, UP045


class Section:
    """A section of the experiment, read-only once load() or resolve() has resolved it (freeze): setting a field then
    raises, as on a frozen dataclass, and `dataclasses.replace` makes a changed copy, which is the caller's own.
    Departure from `@dataclass(frozen=True)`: OmegaConf makes a frozen dataclass's nodes read-only, and Hydra could
    not compose `-S` overrides into them."""
    _frozen = False

    def __setattr__(self, name: str, value: Any) -> None:
        if self._frozen:
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r} of the resolved experiment: "
                                                  "use dataclasses.replace for a changed copy")
        object.__setattr__(self, name, value)


def freeze(value: Any) -> Any:
    """`value` and every section in it read-only: a Section's fields, an untyped section (OmegaConf's) as a whole."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(value, DictConfig):
        OmegaConf.set_readonly(value, True)
    elif isinstance(value, Section):
        for f in dataclasses.fields(value):  # type: ignore[arg-type]
            freeze(getattr(value, f.name))
        object.__setattr__(value, "_frozen", True)
    elif isinstance(value, (list, dict)):
        for item in value.values() if isinstance(value, dict) else value:
            freeze(item)
    return value


# --- the student, the training run, the evaluation --------------------------------------------------------------------
@dataclass
class ModelSettings(Section):
    name: str = MISSING
    kind: str = MISSING                    # instruct | base
    gguf: Optional[str] = MISSING
    hf: Optional[str] = MISSING
    parameters: Optional[float] = MISSING
    backend: str = MISSING
    lora_targets: List[str] = MISSING


@dataclass
class Alpaca(Section):
    with_input: str = MISSING
    no_input: str = MISSING


@dataclass
class Lora(Section):
    r: int = MISSING
    alpha: int = MISSING
    dropout: float = MISSING


def sft(name: str) -> Any:
    """A training setting that TRL's SFTConfig takes as its field `name` (training/sft.py passes it by that field)."""
    return field(default=MISSING, metadata={"sft": name})


@dataclass
class TrainSettings(Section):
    alpaca: Alpaca = MISSING
    template: str = MISSING                # auto | chat | wizardcoder
    system_prompt: Optional[str] = MISSING
    method: str = MISSING                  # lora | full
    lora: Lora = MISSING
    dtype: str = MISSING
    mixed_precision: str = MISSING
    learning_rate: float = sft("learning_rate")
    lr_scheduler: str = sft("lr_scheduler_type")
    warmup: Any = sft("warmup_steps")      # a float < 1: a ratio of the steps; an int: a step count
    weight_decay: float = sft("weight_decay")
    optim: str = sft("optim")
    global_batch_size: int = MISSING
    micro_batch_size: int = sft("per_device_train_batch_size")
    gradient_checkpointing: bool = sft("gradient_checkpointing")
    epochs: int = sft("num_train_epochs")
    max_steps: Optional[int] = MISSING     # null: as the epochs make it (SFTConfig's max_steps -1)
    max_length: int = sft("max_length")
    packing: bool = sft("packing")
    attn_implementation: Optional[str] = MISSING
    save_steps: int = sft("save_steps")
    keep_checkpoints: bool = MISSING
    merge: bool = MISSING


@dataclass
class Launcher(Section):
    name: str = MISSING
    accelerate: Optional[Dict[str, Any]] = MISSING


@dataclass
class EvalSampling(Section):
    n: int = MISSING
    temperature: float = MISSING
    top_p: float = MISSING
    seed: int = MISSING


@dataclass
class EvalVllm(Section):
    tensor_parallel_size: int = MISSING
    max_model_len: Optional[int] = MISSING
    gpu_memory_utilization: Optional[float] = MISSING
    max_lora_rank: int = MISSING
    batch_chunk: int = MISSING


@dataclass
class Endpoint(Section):
    base_url: str = MISSING
    model: str = MISSING
    api_key_env: str = MISSING
    concurrency: int = MISSING
    extra_body: Optional[Dict[str, Any]] = MISSING


@dataclass
class EvalSettings(Section):
    benchmark: str = MISSING
    backend: str = MISSING
    limit: Optional[int] = MISSING
    tasks: Optional[List[str]] = MISSING
    max_tokens: int = MISSING
    sampling: EvalSampling = MISSING
    k: List[int] = MISSING
    parallel: int = MISSING
    dtype: str = MISSING
    vllm: EvalVllm = MISSING
    sandbox: str = MISSING
    memory_mb: int = MISSING
    endpoint: Endpoint = MISSING
    system_prompt: str = MISSING
    chat_instruction: str = MISSING
    tuned_instruction: str = MISSING
    base_stop: List[str] = MISSING


@dataclass
class ProfileTrain(Section):
    epochs: int = MISSING
    max_length: int = MISSING
    learning_rate: float = MISSING


@dataclass
class Profile(Section):
    name: str = MISSING
    seeds: int = MISSING
    evolve_max_tokens: int = MISSING
    generate_max_tokens: int = MISSING
    answer_max_tokens: int = MISSING
    train: ProfileTrain = MISSING
    eval_limit: Optional[int] = MISSING
    eval_max_tokens: int = MISSING


@dataclass
class Controls(Section):
    families: List[str] = MISSING


# --- the data: seeds, answers, curation ------------------------------------------------------------------------------
@dataclass
class SeedData(Section):
    path: str = MISSING
    hf_dataset: Optional[str] = MISSING
    hf_split: str = MISSING
    limit: Optional[int] = MISSING
    answer: str = MISSING                  # teacher | reference
    records: Optional[int] = MISSING


@dataclass
class AnswerRules(Section):
    refusal_words: List[str] = MISSING
    refusal_max_words: int = MISSING


@dataclass
class EvolStop(Section):
    benchmark: str = MISSING
    limit: Optional[int] = MISSING


@dataclass
class Similarity(Section):
    model: str = MISSING
    benchmark: str = MISSING


@dataclass
class Sampling(Section):
    temperature: float = MISSING
    top_p: float = MISSING


@dataclass
class Verify(Section):
    mode: str = MISSING                    # off | tests
    attempts: int = MISSING
    sampling: Sampling = MISSING
    timeout: int = MISSING
    memory_mb: int = MISSING
    sandbox: str = MISSING
    tests_max_tokens: int = MISSING
    tests_prompt: str = MISSING


@dataclass
class Substring(Section):
    min_chars: int = MISSING


@dataclass
class Ngram(Section):
    n: int = MISSING
    threshold: float = MISSING
    min_grams: int = MISSING


@dataclass
class Embedding(Section):
    model: str = MISSING
    threshold: Optional[float] = MISSING


@dataclass
class Dedup(Section):
    threshold: float = MISSING
    num_perm: int = MISSING
    shingle: int = MISSING


@dataclass
class Decontamination(Section):
    benchmarks: List[str] = MISSING
    substring: Substring = MISSING
    ngram: Ngram = MISSING
    embedding: Embedding = MISSING
    dedup: Dedup = MISSING


# --- the teacher: one schema per backend (conf/teacher/*.yaml attach theirs) ----------------------------------------
@dataclass
class TeacherSettings(Section):
    backend: str = MISSING
    model: str = MISSING
    system_prompt: Optional[str] = MISSING
    retries: int = MISSING
    budget_tokens: Optional[int] = MISSING


@dataclass
class LlamaCppTeacher(TeacherSettings):
    n_ctx: int = MISSING
    n_threads: Optional[int] = MISSING
    parallel: int = MISSING
    evolve_note: Optional[str] = MISSING


@dataclass
class OpenAITeacher(TeacherSettings):
    base_url: str = MISSING
    api_key_env: str = MISSING
    timeout: float = MISSING
    concurrency: int = MISSING
    extra_body: Optional[Dict[str, Any]] = MISSING
    backoff: float = MISSING


@dataclass
class TransformersTeacher(TeacherSettings):
    dtype: str = MISSING


@dataclass
class VllmTeacher(TeacherSettings):
    dtype: str = MISSING
    tensor_parallel_size: int = MISSING
    max_model_len: Optional[int] = MISSING
    gpu_memory_utilization: Optional[float] = MISSING
    max_lora_rank: Optional[int] = MISSING
    batch_chunk: int = MISSING


TEACHERS = {"llama_cpp": LlamaCppTeacher, "openai": OpenAITeacher, "transformers": TransformersTeacher,
            "vllm": VllmTeacher}


# --- the methods: one schema each (conf/method/*.yaml attach theirs) ------------------------------------------------
@dataclass
class MethodSettings(Section):
    name: str = MISSING
    evolve: bool = MISSING                 # evolution rounds (evolve@r1..rN)
    generator: Optional[str] = MISSING     # generate@NAME from real code
    train_phases: Optional[List[str]] = MISSING
    sampling: Sampling = MISSING


@dataclass
class NotTask(Section):
    max_code_share: float = MISSING
    task_words: List[str] = MISSING
    solution_phrases: List[str] = MISSING
    code_then: List[str] = MISSING
    statement_openers: List[str] = MISSING
    meta_phrases: List[str] = MISSING


@dataclass
class Elimination(Section):
    min_added_words: int = MISSING
    refusal_words: List[str] = MISSING
    refusal_max_words: int = MISSING
    leak_phrases: List[str] = MISSING
    not_task: NotTask = MISSING


@dataclass
class CodeEvol(MethodSettings):
    template: str = MISSING
    heuristics: Dict[str, str] = MISSING
    on_failure: str = MISSING              # parent | drop
    judge: Optional[str] = MISSING
    elimination: Elimination = MISSING


@dataclass
class CodeSource(Section):
    path: str = MISSING
    hf_dataset: Optional[str] = MISSING
    hf_split: str = MISSING
    hf_column: str = MISSING
    min_lines: int = MISSING
    max_lines: int = MISSING


@dataclass
class SnippetSource(CodeSource):
    seed: int = MISSING


@dataclass
class OssInstruct(MethodSettings):
    system_prompt: str = MISSING
    template: str = MISSING
    instruction: str = MISSING
    source: SnippetSource = MISSING
    sampling_seed: int = MISSING
    clean_seed: int = MISSING


@dataclass
class Coreset(Section):
    embedding: str = MISSING
    pool: int = MISSING
    seed: int = MISSING


@dataclass
class SeedCase(Section):
    """A judged case the example bank starts with: WaveCoder's four fields, the verdict and its analysis."""
    task_name: str = MISSING
    instruction: str = MISSING
    information: str = MISSING
    solution: str = MISSING
    keep: bool = MISSING
    analysis: str = ""


@dataclass
class WaveCoder(MethodSettings):
    system_prompt: str = MISSING
    tasks: Dict[str, str] = MISSING
    generator_prompt: str = MISSING
    good_prefix: str = MISSING
    bad_prefix: str = MISSING
    discriminator_prompt: str = MISSING
    seed_cases: List[SeedCase] = MISSING
    discriminate: bool = MISSING
    few_shot: int = MISSING
    wave_size: int = MISSING
    source: CodeSource = MISSING
    coreset: Coreset = MISSING


@dataclass
class MagicoderS(CodeEvol):
    """Code Evol-Instruct's settings, and OSS-Instruct's under `oss_instruct` (the generator)."""
    oss_instruct: OssInstruct = MISSING


METHODS = {"code_evol": CodeEvol, "oss_instruct": OssInstruct, "wavecoder": WaveCoder, "magicoder_s": MagicoderS}

# --- the stages the resolvers derive (evolab/core/derived.py): dvc.yaml's foreach items, each one stage's files ------
@dataclass
class RoundStage(Section):
    round: int = MISSING
    input: str = MISSING                   # round k-1's file
    output: str = MISSING                  # round k's: rounds 0..k
    stats: str = MISSING


@dataclass
class GenerateStage(Section):
    config: str = MISSING                  # where its settings are: method, or method.NAME (MagicoderS's generator)
    output: str = MISSING
    stats: str = MISSING


@dataclass
class CombineStage(Section):
    generated: str = MISSING
    evolved: str = MISSING
    out: str = MISSING


@dataclass
class ControlsStage(Section):
    out: str = MISSING


@dataclass
class ControlRun(Section):
    data: str = MISSING
    model: str = MISSING
    results: str = MISSING
    train_metrics: str = MISSING
    curve: str = MISSING
    eval_metrics: str = MISSING


# The keys evolab's resolvers derive from the others (Experiment's last fields): no setting of their own.
DERIVED = ("evolve_rounds", "last_round", "generate_stages", "combine_stage", "merge_input", "controls_stage",
           "control_runs")


# --- the experiment ---------------------------------------------------------------------------------------------------
@dataclass
class Experiment(Section):
    rounds: int = MISSING
    seed: int = MISSING
    seed_data: SeedData = MISSING
    hub: Any = MISSING
    answer_rules: AnswerRules = MISSING
    evol_stop: EvolStop = MISSING
    similarity: Similarity = MISSING
    verify: Verify = MISSING
    decontamination: Decontamination = MISSING
    model: ModelSettings = MISSING
    teacher: Any = MISSING                 # one of TEACHERS, by its backend
    method: Any = MISSING                  # one of METHODS, by its name
    train: TrainSettings = MISSING
    launcher: Launcher = MISSING
    controls: Controls = MISSING
    eval: EvalSettings = MISSING
    profile: Profile = MISSING
    # Derived from the settings above by evolab's resolvers (evolab/core/derived.py): never set by hand.
    evolve_rounds: Dict[str, RoundStage] = MISSING
    last_round: str = MISSING
    generate_stages: Dict[str, GenerateStage] = MISSING
    combine_stage: Dict[str, CombineStage] = MISSING
    merge_input: str = MISSING
    controls_stage: Dict[str, ControlsStage] = MISSING
    control_runs: Dict[str, ControlRun] = MISSING


def of(params: dict[str, Any]) -> Any:
    """The experiment's schema for composed `params`, with its teacher backend's and its method's sections. A backend
    or method added as its module and its config alone (docs/extending.md) has no schema here: its section is taken
    as it is, untyped, until a dataclass for it joins TEACHERS or METHODS."""
    from omegaconf import OmegaConf

    node = OmegaConf.structured(Experiment)
    if (backend := TEACHERS.get(params["teacher"]["backend"])) is not None:
        node.teacher = OmegaConf.structured(backend)
    if (method := METHODS.get(params["method"]["name"])) is not None:
        node.method = OmegaConf.structured(method)
    return node


def register() -> None:
    """The schemas in Hydra's ConfigStore: `evolab_schema` for the experiment, `NAME_schema` in the teacher and
    method groups for each backend's and each method's settings."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="evolab_schema", node=Experiment)
    for backend, node in TEACHERS.items():
        store.store(group="teacher", name=f"{backend}_schema", node=node)
    for method, node in METHODS.items():
        store.store(group="method", name=f"{method}_schema", node=node)
