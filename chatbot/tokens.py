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


def codec_of(manifest: dict, path: Path | None = None) -> TokenCodec:
    """The codec the manifest names (``tokens``; float16 when it names none)."""
    spec = manifest.get("tokens") or {"kind": "float16"}
    if spec.get("kind") == "float16":
        return Float16Tokens()
    raise ValueError(f"unknown token codec {spec.get('kind')!r}")
