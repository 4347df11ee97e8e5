"""How an index stores its content-token vectors: the token codec named by the manifest.

Token match (:mod:`chatbot.retrieval.ranking`) needs each candidate passage's contextual
token vectors. They are most of an index's size, so they are stored encoded; the codec is
chosen when an index is first built, recorded in the manifest (``tokens``) and used by every
later write, and only the rows of the passages being re-scored are decoded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np


class TokenCodec(Protocol):
    """Encodes token vectors for storage and decodes stored rows to float32."""

    def encode(self, vectors: np.ndarray) -> np.ndarray: ...

    def decode(self, rows: np.ndarray) -> np.ndarray: ...

    def params(self) -> dict[str, Any]: ...


class Float16Tokens:
    """Token vectors stored as float16 rows (2 bytes per dimension)."""

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        return np.asarray(vectors, np.float16)

    def decode(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(rows, np.float32)

    def params(self) -> dict[str, Any]:
        return {"kind": "float16"}


PQ_FILE = "tokens-{sha}.npy"  # the codebook, in the index folder, named by its hash


def codec_of(manifest: dict, path: Path | None = None) -> TokenCodec:
    """The codec the manifest names (``tokens``; float16 when it names none). A product
    quantiser's codebook is read from the index folder ``path``."""
    spec = manifest.get("tokens") or {"kind": "float16"}
    kind = spec.get("kind")
    if kind == "float16":
        return Float16Tokens()
    if kind == "pq":
        from .codec import TokenCodec as PQCodec

        if path is None:
            raise ValueError("a product-quantised index needs its folder to read the codebook")
        from .lexical import map_array

        codec = PQCodec(map_array(path / spec["file"]))
        if codec.params()["sha256"] != spec.get("sha256"):
            raise ValueError(f"{spec['file']} is not the codebook the manifest names")
        return codec
    raise ValueError(f"unknown token codec {kind!r}")


def codebook_file(codec: TokenCodec) -> str | None:
    """The file name a codec's codebook is stored under in the index folder (None for a
    codec without one)."""
    params = codec.params()
    return PQ_FILE.format(sha=params["sha256"][:16]) if params.get("kind") == "pq" else None


_TRAINED: dict[tuple, TokenCodec] = {}


def new_codec(embedder: Any, kind: str = "pq", m: int | None = None) -> TokenCodec:
    """The token codec of a new index built with ``embedder``: product quantisation trained
    on the package's calibration text (:func:`chatbot.codec.default_codec`: the same model
    gives the same codebook, whatever documents are indexed), kept for the process."""
    if kind == "float16":
        return Float16Tokens()
    from .codec import DEFAULT_M, default_codec

    # the most sub-spaces up to DEFAULT_M that divide the dimension (48 for MiniLM's 384)
    m = m or max(d for d in range(1, DEFAULT_M + 1) if embedder.dim % d == 0)
    key = (embedder.name, embedder.dim, getattr(embedder, "backend", "torch"), m)
    codec = _TRAINED.get(key)
    if codec is None:
        codec = _TRAINED[key] = default_codec(embedder, m)
    return codec
