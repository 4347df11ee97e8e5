"""The index data model: a loaded index as one corpus over its segments.

:class:`Index` is everything retrieval needs. :func:`chatbot.build.index_files` turns files
into a :class:`~chatbot.store.Change` (a new segment, documents to drop),
:func:`chatbot.store.commit` writes it and :func:`chatbot.store.load` opens the live segments
(:mod:`chatbot.segment`) as an Index.

Numbering: the live passages are numbered ``0 .. size-1`` in canonical order (documents by
name, passages in document order), whichever segment holds them, so an index made by any
sequence of writes numbers, scores and answers exactly as a fresh build of the same files.
``seg_of[i]`` and ``local[i]`` say where passage ``i``'s rows are. Arrays stay memory-mapped
in their segments and are gathered per question: passage vectors (:attr:`Index.vectors`),
sentence vectors (:meth:`Index.sentence_matrix`), token vectors decoded by the index's token
codec (:meth:`Index.passage_tokens`); BM25 is scored over the live passages
(:class:`chatbot.lexical.LexicalIndex`), dense search runs per segment and is merged
(:meth:`Index.search`). A loaded index is never written into.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import faiss
import numpy as np

from .lexical import LexicalIndex, tokenize
from .segment import Segment
from .tokens import codec_of
from .types import Document, Passage

if TYPE_CHECKING:
    from .sentences import SentenceSplitter


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


FAISS_THREADS = faiss.omp_get_max_threads()  # what FAISS uses for batches of questions
PARALLEL_QUERIES = 8  # fewer queries than this are searched on one thread


class Index:
    """A loaded index: the live documents of its segments, seen as one corpus.

    Passages are numbered ``0 .. size-1`` in canonical order (documents by name, passages
    in document order), whatever segments hold them, so any sequence of adds, updates and
    removals gives the same numbering, scores and answers as a fresh build of the same
    files. Large arrays stay memory-mapped in their segments; rows are gathered per
    question (:attr:`vectors`, :meth:`sentence_matrix`, :meth:`passage_tokens`).
    """

    def __init__(self, manifest: dict, segments: list[Segment], path: Path | None = None) -> None:
        self.manifest = manifest
        self.segments = segments
        self.path = path
        self.codec = codec_of(manifest, path)
        deleted = {e["name"]: set(e.get("deleted", ())) for e in manifest.get("segments", ())}
        live = []  # (source, segment number, document number)
        for s, seg in enumerate(segments):
            dead = deleted.get(seg.name, set())
            live.extend((doc["source"], s, d) for d, doc in enumerate(seg.docs) if d not in dead)
        live.sort()
        self._where = {source: (s, d) for source, s, d in live}
        if len(self._where) != len(live):
            raise ValueError("a document is live in two segments")
        self._live = live
        self.size = sum(segments[s].docs[d]["count"] for _, s, d in live)
        self.vectors = Rows(self)
        # Everything below is made on first use: a writer that only adds a document needs
        # the document table, not the passage layout or BM25 statistics.

    @cached_property
    def _layout(self) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], list[int]]:
        segments, live = self.segments, self._live
        sizes = [seg.size for seg in segments]
        bases = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        starts = np.fromiter(
            (bases[s] + segments[s].docs[d]["first"] for _, s, d in live), np.int64, len(live)
        )
        counts = np.fromiter(
            (segments[s].docs[d]["count"] for _, s, d in live), np.int64, len(live)
        )
        order = segment_rows(starts, counts)  # passage number -> row across all segments
        seg_of = (np.searchsorted(bases, order, side="right") - 1).astype(np.int64)
        local = order - bases[seg_of]
        ids = []  # per segment: each row's passage number, -1 for a removed one
        for s, seg in enumerate(segments):
            mine = seg_of == s
            row_ids = np.full(seg.size, -1, np.int64)
            row_ids[local[mine]] = np.flatnonzero(mine)
            ids.append(row_ids)
        # removed rows per segment: a question's search asks each segment for that many more
        dead = [seg.size - int(np.count_nonzero(seg_of == s)) for s, seg in enumerate(segments)]
        return seg_of, local, ids, dead

    @property
    def seg_of(self) -> np.ndarray:
        """The segment (its position in :attr:`segments`) holding each passage."""
        return self._layout[0]

    @property
    def local(self) -> np.ndarray:
        """Each passage's row in its segment."""
        return self._layout[1]

    @property
    def _ids(self) -> list[np.ndarray]:
        return self._layout[2]

    @cached_property
    def sentence_counts(self) -> np.ndarray:
        return self._field("nsent")

    @cached_property
    def token_counts(self) -> np.ndarray:
        return self._field("ntok")

    @cached_property
    def kinds(self) -> np.ndarray:
        """(passages,) int8: each passage's kind as a code into
        :data:`chatbot.segment.KIND_CODES` (0: body)."""
        out = np.zeros(self.size, np.int8)
        for s, seg in enumerate(self.segments):
            mine = self.seg_of == s
            if mine.any():
                out[mine] = seg.kinds()[self.local[mine]]
        return out

    @cached_property
    def lexical(self) -> LexicalIndex:
        """BM25 over the live passages of every segment."""
        return LexicalIndex(
            [(seg.lexical, ids) for seg, ids in zip(self.segments, self._ids, strict=True)],
            self.size,
        )

    def _field(self, name: str) -> np.ndarray:
        out = np.zeros(self.size, np.int64)
        for s, seg in enumerate(self.segments):
            mine = self.seg_of == s
            if mine.any():
                out[mine] = np.asarray(seg.passages[name])[self.local[mine]]
        return out

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def passages(self) -> PassageList:
        """The passages, by number (each made from its segment's arrays when asked for)."""
        return PassageList(self)

    @property
    def documents(self) -> DocumentMap:
        """The live documents by name, in name order (texts read when asked for)."""
        return DocumentMap(self)

    @cached_property
    def sentences(self) -> SentenceSplitter:
        """The sentence splitter this index's passages were split with (trained on its
        first documents, :mod:`chatbot.sentences`); the untrained one for an index built
        before splitters were stored. ValueError if its file is missing or damaged."""
        from .sentences import SentenceSplitter

        data = sentences_data(self.manifest, self.path)
        return SentenceSplitter.default() if data is None else SentenceSplitter.from_dict(data)

    @property
    def doc_records(self) -> dict[str, DocRecord]:
        out = {}
        for source, (s, d) in self._where.items():
            r = self.segments[s].docs[d]
            out[source] = DocRecord(**{k: r[k] for k in RECORD_FIELDS})
        return out

    def passage(self, i: int) -> Passage:
        return self.segments[int(self.seg_of[i])].passage(int(self.local[i]))

    def passage_text(self, i: int) -> str:
        """Passage ``i``'s text (what :meth:`passage` gives as ``.text``, built alone)."""
        return self.segments[int(self.seg_of[i])].passage_text(int(self.local[i]))

    def title(self, source: str) -> str:
        s, d = self._where[source]
        return self.segments[s].docs[d]["title"]

    def document(self, source: str) -> Document:
        s, d = self._where[source]
        return self.segments[s].document(d)

    def passage_terms(self, i: int) -> list[str]:
        """BM25 terms of passage ``i``'s match text (as indexed)."""
        p = self.passage(i)
        return tokenize(match_text(p, self.title(p.source)))

    def passage_sentences(self, i: int) -> np.ndarray:
        """Sentence vectors of passage ``i`` (float32)."""
        return self.sentence_matrix(np.array([i]))

    def sentence_matrix(self, ids: np.ndarray) -> np.ndarray:
        """The sentence vectors of passages ``ids``, end to end in that order (float32);
        passage ``ids[j]`` has ``sentence_counts[ids[j]]`` rows. One gather per segment."""
        ids = np.asarray(ids, np.int64)
        counts = self.sentence_counts[ids]
        out = np.empty((int(counts.sum()), self.dim), np.float32)
        at = segment_offsets(counts)
        segs = self.seg_of[ids]
        for s in np.unique(segs):
            mine = np.flatnonzero(segs == s)
            seg = self.segments[int(s)]
            sent0 = np.asarray(seg.passages["sent0"][self.local[ids[mine]]], np.int64)
            rows = np.asarray(seg.sentence_rows[segment_rows(sent0, counts[mine])])
            out[segment_rows(at[mine], counts[mine])] = seg.sentence_vectors[rows]
        return out

    def passage_tokens(self, i: int) -> np.ndarray:
        """Content-token vectors of passage ``i`` (float32, decoded if stored as codes)."""
        s, local = int(self.seg_of[i]), int(self.local[i])
        seg = self.segments[s]
        row = seg.passages[local]
        t0 = int(row["tok0"])
        return self.codec.decode(seg.tokens[t0 : t0 + int(row["ntok"])])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, passage numbers) of the ``k`` passages nearest each query vector, best
        first, over all segments (removed passages skipped; -1 pads a short result)."""
        queries = np.ascontiguousarray(queries, np.float32)
        nq = len(queries)
        if nq < PARALLEL_QUERIES and FAISS_THREADS > 1:
            # FAISS's OpenMP threads cost ~1 ms to wake per search, more than searching a
            # small segment or one question's IVF lists takes: one thread for a question
            faiss.omp_set_num_threads(1)
            try:
                return self._search(queries, k)
            finally:
                faiss.omp_set_num_threads(FAISS_THREADS)
        return self._search(queries, k)

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        nq = len(queries)
        all_scores, all_ids = [], []
        for seg, ids, dead in zip(self.segments, self._ids, self._layout[3], strict=True):
            kk = min(k + dead, seg.size)
            if kk <= 0 or dead == seg.size:
                continue
            refine = int(seg.search.get("refine", 1))
            if refine > 1:  # approximate codes: re-score a longer shortlist exactly
                wanted = max(kk * refine, int(seg.search.get("shortlist", 0)))
                _, short = seg.faiss.search(queries, min(wanted, seg.size))
                scores, rows = _rescore(seg.vectors, queries, short, kk)
            else:
                scores, rows = seg.faiss.search(queries, kk)
            found = np.where(rows >= 0, ids[np.maximum(rows, 0)], -1)
            all_scores.append(np.where(found >= 0, scores, -np.inf))
            all_ids.append(found)
        if not all_ids:
            return np.zeros((nq, 0), np.float32), np.zeros((nq, 0), np.int64)
        scores = np.concatenate(all_scores, axis=1)
        found = np.concatenate(all_ids, axis=1)
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        scores = np.take_along_axis(scores, top, axis=1)
        found = np.take_along_axis(found, top, axis=1)
        found[~np.isfinite(scores)] = -1
        return scores.astype(np.float32), found

    @property
    def sentence_vectors(self) -> np.ndarray:
        """Every passage's sentence vectors end to end, in passage order (float32). Gathers
        every row: for tests and benchmarks, never on a question's path."""
        return self.sentence_matrix(np.arange(self.size))

    @property
    def token_vectors(self) -> np.ndarray:
        """Every passage's content-token vectors end to end, decoded (float32; rows of
        passage ``i`` from ``token_start[i]``). For tests and benchmarks, like
        :attr:`sentence_vectors`."""
        parts = [self.passage_tokens(i) for i in range(self.size)]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)

    @property
    def token_start(self) -> np.ndarray:
        return segment_offsets(self.token_counts)

    def word_counts(self) -> Counter[str]:
        """Speller word counts of the live documents: each segment's stored totals, less
        the counts of its deleted documents (so the work grows with the vocabulary and the
        deletions, not with the corpus)."""
        counts: Counter[str] = Counter()
        deleted = {e["name"]: e.get("deleted", []) for e in self.manifest.get("segments", [])}
        for seg in self.segments:
            vocab, indptr, word_ids, word_counts, totals = seg.words()
            live = np.array(totals, np.int64)
            for d in deleted.get(seg.name, []):
                lo, hi = int(indptr[d]), int(indptr[d + 1])
                np.subtract.at(live, np.asarray(word_ids[lo:hi]), np.asarray(word_counts[lo:hi]))
            counts.update({vocab[j]: int(live[j]) for j in np.flatnonzero(live)})
        return counts


def _rescore(
    vectors: np.ndarray, queries: np.ndarray, short: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best of each query's ``short`` list (-1 = none) by exact inner product with
    the stored (float16) vectors: (scores, rows), best first, -1/-inf padded."""
    scores = np.full((len(queries), k), -np.inf, np.float32)
    rows = np.full((len(queries), k), -1, np.int64)
    for q, cand in enumerate(short):
        cand = cand[cand >= 0]
        if not len(cand):
            continue
        exact = np.asarray(vectors[np.sort(cand)], np.float32) @ queries[q]
        order = np.argsort(-exact, kind="stable")[:k]
        scores[q, : len(order)] = exact[order]
        rows[q, : len(order)] = np.sort(cand)[order]
    return scores, rows


class Rows:
    """The passage vectors of an :class:`Index` by passage number, gathered from the
    segments as float32: ``rows[ids]``, ``np.asarray(rows)`` (all of them), ``len``."""

    def __init__(self, index: Index) -> None:
        self._index = index

    def __len__(self) -> int:
        return self._index.size

    @property
    def shape(self) -> tuple[int, int]:
        return (self._index.size, self._index.dim)

    def __getitem__(self, ids: int | slice | np.ndarray | list[int]) -> np.ndarray:
        idx = self._index
        if isinstance(ids, (int, np.integer)):
            return self[np.array([ids])][0]
        sel = np.arange(idx.size)[ids] if isinstance(ids, slice) else np.asarray(ids, np.int64)
        out = np.empty((len(sel), idx.dim), np.float32)
        segs = idx.seg_of[sel]
        for s in np.unique(segs):
            mine = segs == s
            out[mine] = idx.segments[int(s)].vectors[idx.local[sel[mine]]]
        return out

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        out = self[np.arange(self._index.size)]
        return out if dtype is None else out.astype(dtype)

    def copy(self) -> np.ndarray:
        return np.asarray(self)


class PassageList(Sequence[Passage]):
    """An index's passages by number, made on access."""

    def __init__(self, index: Index) -> None:
        self._index = index

    def __len__(self) -> int:
        return self._index.size

    def __getitem__(self, i):  # type: ignore[no-untyped-def]
        if isinstance(i, slice):
            return [self._index.passage(j) for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._index.passage(int(i))


class DocumentMap(Mapping[str, Document]):
    """An index's live documents by name, in name order, read on access."""

    def __init__(self, index: Index) -> None:
        self._index = index

    def __len__(self) -> int:
        return len(self._index._where)

    def __iter__(self) -> Iterator[str]:
        return iter(self._index._where)

    def __contains__(self, source: object) -> bool:
        return source in self._index._where

    def __getitem__(self, source: str) -> Document:
        if source not in self._index._where:
            raise KeyError(source)
        return self._index.document(source)


def sentences_data(manifest: dict, path: Path | None) -> dict | None:
    """The stored sentence splitter's parameters the manifest names (None if it names
    none); ValueError if the file is missing or not the one named (its sha256)."""
    entry = manifest.get("sentences")
    if not entry or path is None:
        return None
    file = path / entry["file"]
    data = file.read_bytes()
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise ValueError(f"{file.name} does not hold the sentence splitter the manifest names")
    return json.loads(data)


def segment_offsets(counts: np.ndarray) -> np.ndarray:
    """Start of each segment when segments of ``counts`` items are laid end to end."""
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64) if len(counts) else counts


def segment_rows(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """All rows of the segments (a passage's sentences, or its tokens) that start at rows
    ``starts`` and hold ``counts`` rows each, laid end to end in that order."""
    if not len(counts):
        return np.zeros(0, dtype=np.int64)
    return np.repeat(starts - segment_offsets(counts), counts) + np.arange(int(counts.sum()))
