"""The index data model: what an index holds in memory, and how its rows are laid out.

:class:`Index` is everything retrieval needs; :func:`chatbot.build.index_files` makes one
from documents, :func:`chatbot.store.save` writes it and :func:`chatbot.store.load` reads it
back (the folder layout and the crash-safety rules are in :mod:`chatbot.store`).

Rows: passage ``i`` has one row in ``vectors``, its sentences are consecutive rows of
``sentence_vectors`` from ``sentence_start[i]``, and its content tokens are consecutive rows
of ``token_vectors`` from ``token_start[i]`` (``token_counts[i]`` of them). The FAISS index
is a flat inner-product index over ``vectors``: the builder makes it from the vectors (it
holds its own copy of them), the store saves it with each generation and the loader maps
the saved one instead of building it again. A loaded index's arrays are read-only memory
maps: code that derives a new index copies the rows it needs and never writes into them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import faiss
import numpy as np

from .lexical import LexicalIndex
from .types import Document, Passage


@dataclass
class DocRecord:
    """What the manifest keeps about one indexed document."""

    source: str
    path: str
    sha256: str
    passages: int
    chars: int
    bytes: int
    indexed_at: str


RECORD_FIELDS = {f.name: f.type for f in fields(DocRecord)}  # name -> "str" / "int"


@dataclass
class Summary:
    """The outcome of an indexing run, for a one-line report."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    new_passages: int = 0
    total_passages: int = 0
    total_documents: int = 0

    def line(self) -> str:
        """E.g. "added 3 documents, 412 passages (index: 12 documents, 3400 passages);
        skipped 1 unchanged; 1 failed: x.pdf: PDF is password-protected; decrypt it ..."."""
        parts = []
        if self.added:
            parts.append(f"added {_n(len(self.added), 'document')}")
        if self.updated:
            parts.append(f"updated {_n(len(self.updated), 'document')}")
        if self.added or self.updated:
            parts.append(_n(self.new_passages, "passage"))
        if self.removed:
            parts.append(f"removed {_n(len(self.removed), 'document')}")
        head = ", ".join(parts) or "no changes"
        head += (
            f" (index: {_n(self.total_documents, 'document')}, "
            f"{_n(self.total_passages, 'passage')})"
        )
        tail = []
        if self.unchanged:
            tail.append(f"skipped {len(self.unchanged)} unchanged")
        if self.failed:
            reasons = " | ".join(" ".join(reason.split()) for _, reason in self.failed)
            tail.append(f"{len(self.failed)} failed: {reasons}")
        return "; ".join([head, *tail])


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def display_name(source: str) -> str:
    """``source`` for printing on one line: backslashes and unprintable characters escaped
    (a newline as ``\\n``, like ``ls -b``). For display only; the stored name is unchanged."""
    if source.isprintable() and "\\" not in source:
        return source
    return "".join(_ESCAPES.get(c) or (c if c.isprintable() else _escape(c)) for c in source)


def _escape(c: str) -> str:
    code = ord(c)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def match_text(passage: Passage, title: str = "") -> str:
    """The text used for matching: the passage with its document title and heading as context."""
    context = [t for t in dict.fromkeys([title, passage.heading]) if t]
    return " — ".join(context) + "\n" + passage.text if context else passage.text


@dataclass(kw_only=True)
class Index:
    """An in-memory index: everything retrieval needs, plus what a rebuild can reuse.

    Made one way, by keyword (``Index(manifest=..., passages=..., ...)``), by the builder
    and the loader alike; ``sentence_start`` and ``token_start`` are derived from the other
    fields on construction, and so is the FAISS index unless one over exactly ``vectors``
    is passed (the loader passes the stored one).
    """

    manifest: dict
    passages: list[Passage]
    documents: dict[str, Document]
    vectors: np.ndarray  # (passages, dim) float32, L2-normalised: passage with its context
    sentence_vectors: np.ndarray  # (sum of sentences per passage, dim) float32, normalised
    token_vectors: np.ndarray  # (sum of content tokens per passage, dim) float16, normalised
    token_counts: np.ndarray  # content tokens (rows of token_vectors) per passage
    lexical: LexicalIndex  # BM25 over ``terms``
    # BM25 terms of each passage's match text, reused by rebuilds; None for a generation
    # stored without them (tokens.txt came later)
    terms: list[list[str]] | None
    path: Path | None = None  # the index folder it was loaded from or saved to
    sentence_start: np.ndarray = field(init=False)  # row of each passage's first sentence
    token_start: np.ndarray = field(init=False)  # row of each passage's first token
    # inner product over ``vectors``; built from them when not given
    faiss_index: faiss.Index = field(default=None, repr=False)  # type: ignore[assignment]
    _token_matrix: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        counts = np.fromiter(
            (len(p.sentences) for p in self.passages), dtype=np.int64, count=len(self.passages)
        )
        self.sentence_start = segment_offsets(counts)
        self.token_start = segment_offsets(self.token_counts)
        if self.faiss_index is None:
            self.faiss_index = flat_index(self.vectors, self.dim)
        elif self.faiss_index.ntotal != len(self.vectors) or self.faiss_index.d != self.dim:
            raise ValueError(
                f"the FAISS index holds {self.faiss_index.ntotal} vectors of dimension "
                f"{self.faiss_index.d}, not {len(self.vectors)} of dimension {self.dim}"
            )

    def token_matrix(self) -> np.ndarray:
        """``token_vectors`` as float32, converted on first use and kept: converting the rows
        each question needs costs more than matching them. Shared by all retrievers."""
        if self._token_matrix is None:
            self._token_matrix = np.asarray(self.token_vectors, dtype=np.float32)
        return self._token_matrix

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def doc_records(self) -> dict[str, DocRecord]:
        return {
            s: DocRecord(**{k: r[k] for k in RECORD_FIELDS})
            for s, r in self.manifest.get("documents", {}).items()
        }

    def passage_sentences(self, i: int) -> np.ndarray:
        """Sentence vectors of passage ``i``."""
        s = int(self.sentence_start[i])
        return self.sentence_vectors[s : s + len(self.passages[i].sentences)]


def flat_index(vectors: np.ndarray, dim: int) -> faiss.Index:
    """A flat inner-product FAISS index holding a copy of ``vectors``."""
    index = faiss.IndexFlatIP(dim)
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def segment_offsets(counts: np.ndarray) -> np.ndarray:
    """Start of each segment when segments of ``counts`` items are laid end to end."""
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64) if len(counts) else counts


def segment_rows(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """All rows of the segments (a passage's sentences, or its tokens) that start at rows
    ``starts`` and hold ``counts`` rows each, laid end to end in that order."""
    if not len(counts):
        return np.zeros(0, dtype=np.int64)
    return np.repeat(starts - segment_offsets(counts), counts) + np.arange(int(counts.sum()))
