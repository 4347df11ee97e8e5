"""Compact codes for contextual token vectors: product quantisation (FAISS).

A token vector (``dim`` floats, L2-normalised) is cut into ``m`` sub-vectors of ``dim / m``
floats; each is replaced by the number of its nearest centroid among ``2**nbits`` of its
sub-space, so a token takes ``m`` bytes (nbits = 8) instead of ``2 * dim`` as float16.
Decoding puts the centroids back together and re-normalises the row (token match takes
cosines). ``bench/codec.py`` measures the effect on retrieval.

The codebook must not depend on which documents were indexed (an index must answer alike
after any sequence of adds and removes as a fresh build of the same documents), so
:func:`default_codec` trains it on a fixed calibration text shipped with the package
(``chatbot/data/calibration.txt``, see ``chatbot/data/README.md``), embedded with the
index's own model: deterministic per model, independent of the corpus.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

CALIBRATION_TEXT = Path(__file__).parent / "data" / "calibration.txt"
DEFAULT_M = 48  # bytes per token: the smallest within 0.005 hit@1 on SQuAD dev (bench/README.md)
DEFAULT_SEED = 1234
KIND = "pq"


class TokenCodec:
    """Product quantiser of ``dim``-dimensional vectors into ``m`` codes of ``nbits`` bits.

    The codebook is ``centroids``: float32, shape ``(m, 2**nbits, dim // m)``.
    """

    def __init__(self, centroids: np.ndarray) -> None:
        c = np.ascontiguousarray(centroids, dtype=np.float32)
        if c.ndim != 3 or c.shape[1] < 2 or c.shape[1] & (c.shape[1] - 1):
            raise ValueError(f"centroids must be (m, 2**nbits, dsub), not {c.shape}")
        self.centroids = c
        self.m, ksub, self.dsub = (int(x) for x in c.shape)
        self.nbits = ksub.bit_length() - 1
        self.dim = self.m * self.dsub
        self._pq = faiss.ProductQuantizer(self.dim, self.m, self.nbits)
        faiss.copy_array_to_vector(c.ravel(), self._pq.centroids)

    @classmethod
    def train(
        cls, vectors: np.ndarray, m: int, nbits: int = 8, seed: int = DEFAULT_SEED
    ) -> TokenCodec:
        """A codebook fitted to ``vectors`` (rows, float16 or float32) by k-means per sub-space.

        Deterministic: the same rows give byte-identical centroids whatever FAISS's thread
        count (training runs on one thread; at most 256 rows per centroid are sampled, with
        ``seed``).
        """
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        if x.ndim != 2 or not len(x):
            raise ValueError(f"need a non-empty (n, dim) array to train on, not {x.shape}")
        n, dim = x.shape
        if m < 1 or dim % m:
            raise ValueError(f"m = {m} must divide the dimension {dim}")
        if not 1 <= nbits <= 8:  # codes are stored one byte per sub-vector
            raise ValueError(f"nbits = {nbits} must be 1..8")
        if n < 1 << nbits:
            raise ValueError(f"need at least {1 << nbits} rows to train on, got {n}")
        pq = faiss.ProductQuantizer(dim, m, nbits)
        pq.cp.seed = seed
        pq.cp.niter = 25
        pq.verbose = False
        # FAISS warns on stderr below 39 rows per centroid; k-means runs fine with fewer
        pq.cp.min_points_per_centroid = 1
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)  # k-means sums in thread order: one thread, one answer
        try:
            pq.train(x)
        finally:
            faiss.omp_set_num_threads(threads)
        centroids = faiss.vector_to_array(pq.centroids).reshape(m, 1 << nbits, dim // m)
        return cls(centroids)

    @property
    def code_size(self) -> int:
        """Bytes per encoded vector."""
        return self.m

    def encode(self, vectors: np.ndarray) -> np.ndarray:
        """Codes of ``vectors`` (n, dim): uint8, shape (n, m)."""
        x = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if not len(x):
            return np.zeros((0, self.m), np.uint8)
        if self.nbits == 8:
            return self._pq.compute_codes(x)
        # faiss packs codes of fewer bits; keep one byte per sub-vector instead
        codes = np.empty((len(x), self.m), np.uint8)
        for j, c in enumerate(self.centroids):
            sub = x[:, j * self.dsub : (j + 1) * self.dsub]
            codes[:, j] = ((c * c).sum(1) - 2 * sub @ c.T).argmin(1)
        return codes

    def decode(self, codes: np.ndarray, normalize: bool = True) -> np.ndarray:
        """Vectors of ``codes`` (n, m): float32 (n, dim), rows L2-normalised unless not
        ``normalize``."""
        c = np.ascontiguousarray(codes, dtype=np.uint8).reshape(-1, self.m)
        if not len(c):
            return np.zeros((0, self.dim), np.float32)
        if self.nbits == 8:  # FAISS copies each sub-vector's centroid (C++: exact, faster)
            out = self._pq.decode(c)
        else:  # a gather per sub-space: exact, and the same on every machine
            out = self.centroids[np.arange(self.m), c.astype(np.intp)].reshape(len(c), self.dim)
        if normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def params(self) -> dict[str, Any]:
        """What an index manifest records: kind, m, nbits, dim and the centroids' sha256."""
        return {
            "kind": KIND,
            "m": self.m,
            "nbits": self.nbits,
            "dim": self.dim,
            "sha256": hashlib.sha256(self.centroids.astype("<f4").tobytes()).hexdigest(),
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the centroids as one ``.npy`` file (the shape gives m, nbits and dim)."""
        with open(path, "wb") as f:
            np.save(f, self.centroids.astype("<f4"), allow_pickle=False)

    @classmethod
    def load(cls, path: str | os.PathLike[str], mmap: bool = True) -> TokenCodec:
        """A codec from :meth:`save`'s file (mapped, then copied into FAISS's quantiser)."""
        return cls(np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TokenCodec) and np.array_equal(self.centroids, other.centroids)

    def __repr__(self) -> str:
        return f"TokenCodec(m={self.m}, nbits={self.nbits}, dim={self.dim})"


def calibration_texts(path: str | os.PathLike[str] = CALIBRATION_TEXT) -> list[str]:
    """The calibration text's paragraphs (blank-line separated), in file order."""
    text = Path(path).read_text(encoding="utf-8")
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def token_sample(embedder: Any, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """The content-token vectors of ``texts`` as ``embedder`` gives them, rounded to float16
    as an index stores them, laid end to end (float32)."""
    if not texts:
        return np.zeros((0, embedder.dim), np.float32)
    _, tokens = embedder.encode_with_tokens(list(texts), batch_size=batch_size)
    rows = [t.vectors.astype(np.float16) for t in tokens]
    return np.concatenate(rows).astype(np.float32)


def default_codec(
    embedder: Any,
    m: int = DEFAULT_M,
    nbits: int = 8,
    seed: int = DEFAULT_SEED,
    texts: Sequence[str] | None = None,
) -> TokenCodec:
    """The codec an index built with ``embedder`` uses: trained on the token vectors of the
    calibration text (:func:`calibration_texts`, or ``texts``), not on the corpus.

    The same model gives the same codebook, whatever documents the index holds (the same
    hash with 1 or 2 torch threads, measured). Calibration tokens with fewer than ``2**nbits``
    distinct values (the fake test embedder's) still train, into near-duplicate centroids;
    fewer than ``2**nbits`` rows raise ValueError.
    """
    sample = token_sample(embedder, calibration_texts() if texts is None else texts)
    return TokenCodec.train(sample, m, nbits=nbits, seed=seed)


__all__ = [
    "CALIBRATION_TEXT",
    "DEFAULT_M",
    "TokenCodec",
    "calibration_texts",
    "default_codec",
    "token_sample",
]
