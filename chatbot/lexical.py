"""Lexical evidence: BM25 terms (case, accents, stems, stopwords) and BM25 over segments.

Each index segment stores its postings (:class:`LexicalSegment`): term keys (64-bit hashes
of the terms, sorted), for each term the passages holding it with their term frequency, and
every passage's length. :class:`LexicalIndex` scores the live passages of all segments with
statistics (passage count, document frequencies, mean length) taken over the live passages
only, at question time, so an index built by any sequence of adds and removals scores
exactly as a fresh build of the same documents. The formula is bm25s's Lucene BM25
(k1=1.2, b=0.75); ``tests/test_lexical.py`` checks the scores against bm25s itself.
(bm25s stores scores with the statistics of the corpus it indexed: they would go stale the
moment a segment is added or a document removed.)
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import Stemmer

log = logging.getLogger(__name__)

# Function words and question words: they carry no topic, and BM25 would reward them.
_STOPWORD_TEXT = (
    "a about above after again against all also am an and any are as at be because been "
    "before being below between both but by can could did do does doing done down during each "
    "else ever few for from further had has have having he her here hers herself him himself "
    "his how i if in into is it its itself just let me more most much my myself no nor not "
    "now of off on once only or other others our ours ourselves out over own per please same "
    "she should so some such tell than that the their theirs them themselves then there these "
    "they this those through to too under until up us very was we were what whats when where "
    "whether which while who whom whose why will with within would you your yours yourself "
    "yourselves s t d ll m re ve "
)
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_TOKEN_RE = re.compile(r"[^\W_]+", re.UNICODE)
_COMPOUND_RE = re.compile(r"[^\W_]+(?:[-‐–][^\W_]+)+")
_HYPHEN_RE = re.compile(r"[-‐–]")


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def fold(text: str) -> str:
    """Case- and accent-fold text (NFKD without combining marks, then casefold)."""
    if text.isascii():
        return text.casefold()
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c)).casefold()


def tokenize(text: str) -> list[str]:
    """BM25 terms of ``text``: folded words, stopwords dropped, Snowball-stemmed.

    Hyphenated compounds ("MK-4", "omega-3") also yield their joined form, so "mk4" and
    "MK-4" match.
    """
    folded = fold(text)
    words = _TOKEN_RE.findall(folded)
    tokens = [w for w in words if w not in STOPWORDS]
    if "-" in folded or "‐" in folded or "–" in folded:  # the regex below costs ~30 µs
        for m in _COMPOUND_RE.finditer(folded):
            tokens.append(_HYPHEN_RE.sub("", m.group()))
    return _stemmer().stemWords(tokens)


K1, B = 1.2, 0.75  # BM25 parameters (bm25s's defaults)
# np.load parses each .npy header with ast.literal_eval, and CPython 3.11's compiler is not
# safe to run in two threads at once ("AST constructor recursion depth mismatch"): a chat
# reloading the index while a writer in the same process opens it hit that. Index files are
# opened under this lock.
_NPY_LOCK = threading.Lock()


def map_array(path: Path) -> np.ndarray:
    """The ``.npy`` file at ``path``, memory-mapped read-only (header parsed under a lock)."""
    with _NPY_LOCK:
        return np.load(path, mmap_mode="r")


_POSTING_FILES = ("keys", "indptr", "docs", "tfs", "lengths")


def term_key(term: str) -> int:
    """A term's key in the postings: the first 8 bytes of its BLAKE2b hash, as an unsigned
    integer (two different terms share a key with probability ~2^-64 per pair)."""
    return int.from_bytes(hashlib.blake2b(term.encode("utf-8"), digest_size=8).digest(), "little")


def _keys(terms: Sequence[str]) -> np.ndarray:
    return np.fromiter((term_key(t) for t in terms), dtype=np.uint64, count=len(terms))


@dataclass
class LexicalSegment:
    """The BM25 postings of one segment's passages (numbered 0..n-1 within the segment).

    ``keys`` are the sorted term keys; term ``keys[j]`` occurs in passages
    ``docs[indptr[j]:indptr[j+1]]`` (ascending) with frequencies ``tfs[...]``; ``lengths``
    is each passage's number of terms. All arrays, so a loaded segment is memory-mapped.
    """

    keys: np.ndarray  # (terms,) uint64, sorted
    indptr: np.ndarray  # (terms + 1,) int64
    docs: np.ndarray  # (postings,) int32
    tfs: np.ndarray  # (postings,) float32
    lengths: np.ndarray  # (passages,) float32

    @classmethod
    def build(cls, term_lists: Sequence[Sequence[str]]) -> LexicalSegment:
        """Postings of passages given as term lists (a term repeated counts each time).

        An empty list gets length 1, as bm25s's placeholder term gives it.
        """
        vocab: dict[str, int] = {}
        tids: list[int] = []
        pids: list[int] = []
        tfs: list[int] = []
        lengths = np.empty(len(term_lists), np.float32)
        for p, terms in enumerate(term_lists):
            lengths[p] = max(len(terms), 1)
            for term, tf in Counter(terms).items():
                tids.append(vocab.setdefault(term, len(vocab)))
                pids.append(p)
                tfs.append(tf)
        return cls.from_postings(
            _keys(list(vocab)),
            np.asarray(tids, np.int64),
            np.asarray(pids, np.int32),
            np.asarray(tfs, np.float32),
            lengths,
        )

    @classmethod
    def from_postings(
        cls,
        term_keys: np.ndarray,
        tids: np.ndarray,
        pids: np.ndarray,
        tfs: np.ndarray,
        lengths: np.ndarray,
    ) -> LexicalSegment:
        """Postings given as triples (term number into ``term_keys``, passage, tf) in any order;
        the same key may appear under several term numbers (they are merged)."""
        keys, inverse = np.unique(term_keys, return_inverse=True)
        key_ids = inverse.reshape(-1)[tids] if len(tids) else np.zeros(0, np.int64)
        order = np.lexsort((pids, key_ids))
        counts = np.bincount(key_ids, minlength=len(keys))
        indptr = np.zeros(len(keys) + 1, np.int64)
        np.cumsum(counts, out=indptr[1:])
        return cls(
            keys=keys.astype(np.uint64),
            indptr=indptr,
            docs=np.ascontiguousarray(pids[order], np.int32),
            tfs=np.ascontiguousarray(tfs[order], np.float32),
            lengths=np.ascontiguousarray(lengths, np.float32),
        )

    @classmethod
    def merge(cls, parts: Sequence[tuple[LexicalSegment, np.ndarray]]) -> LexicalSegment:
        """One segment from ``(segment, new_ids)`` parts: passage ``p`` of a part becomes
        ``new_ids[p]`` (-1 drops it). Postings are combined as arrays, no text is read."""
        keys, tids, pids, tfs, lengths = [], [], [], [], []
        total = 0
        offset = 0
        for seg, new_ids in parts:
            new_ids = np.asarray(new_ids, np.int64)
            per_term = np.diff(seg.indptr)
            term_of = np.repeat(np.arange(len(seg.keys), dtype=np.int64), per_term)
            mapped = new_ids[np.asarray(seg.docs, np.int64)] if len(seg.docs) else new_ids[:0]
            keep = mapped >= 0
            keys.append(np.asarray(seg.keys))
            tids.append(term_of[keep] + offset)
            pids.append(mapped[keep])
            tfs.append(np.asarray(seg.tfs)[keep])
            offset += len(seg.keys)
            live = new_ids >= 0
            lengths.append((new_ids[live], np.asarray(seg.lengths)[live]))
            total = max(total, int(new_ids.max()) + 1 if live.any() else 0)
        out_lengths = np.zeros(total, np.float32)
        for ids, ls in lengths:
            out_lengths[ids] = ls
        return cls.from_postings(
            np.concatenate(keys) if keys else np.zeros(0, np.uint64),
            np.concatenate(tids) if tids else np.zeros(0, np.int64),
            np.concatenate(pids).astype(np.int32) if pids else np.zeros(0, np.int32),
            np.concatenate(tfs) if tfs else np.zeros(0, np.float32),
            out_lengths,
        )

    def postings(self, key: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(passages, tfs) of the term with ``key``, or None if no passage holds it."""
        j = int(np.searchsorted(self.keys, np.uint64(key)))
        if j >= len(self.keys) or int(self.keys[j]) != key:
            return None
        lo, hi = int(self.indptr[j]), int(self.indptr[j + 1])
        return self.docs[lo:hi], self.tfs[lo:hi]

    def save(self, folder: Path) -> None:
        for name in _POSTING_FILES:
            np.save(folder / f"bm25_{name}.npy", getattr(self, name))

    @classmethod
    def load(cls, folder: Path) -> LexicalSegment:
        """The segment's postings, memory-mapped (read-only)."""
        arrays = {n: map_array(folder / f"bm25_{n}.npy") for n in _POSTING_FILES}
        if len(arrays["indptr"]) != len(arrays["keys"]) + 1:
            raise ValueError("bm25 postings do not match their terms")
        return cls(**arrays)


class LexicalIndex:
    """BM25 (Lucene IDF, k1=1.2, b=0.75) over the live passages of several segments.

    ``parts`` pairs each segment with ``logical``: the id of each of its passages in the
    index (-1 for a removed one). Scores come back over the ``size`` live passages, in id
    order. Statistics are computed from the live passages only, so they are never stale.
    """

    def __init__(self, parts: Sequence[tuple[LexicalSegment, np.ndarray]], size: int) -> None:
        self.parts = [(seg, np.asarray(ids, np.int64)) for seg, ids in parts]
        self.size = size
        total = 0  # lengths are whole numbers: an exact sum, whatever the segmentation
        for seg, ids in self.parts:
            total += int(np.asarray(seg.lengths)[ids >= 0].astype(np.int64).sum())
        self.avgdl = total / size if size else 1.0
        self._df: dict[str, int] = {}
        n = max(size, 1)
        # Lucene's IDF, log(1 + (n - df + 0.5) / (df + 0.5)), for a term in no passage and in one
        self.idf_absent = math.log(1 + (n + 0.5) / 0.5)
        self.idf_single = math.log(1 + (n - 0.5) / 1.5)

    @classmethod
    def build(cls, term_lists: Sequence[Sequence[str]]) -> LexicalIndex:
        """One in-memory segment over ``term_lists`` (passage ``i`` has id ``i``)."""
        seg = LexicalSegment.build(term_lists)
        return cls([(seg, np.arange(len(term_lists)))], len(term_lists))

    def _live_postings(self, term: str) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(ids, tfs, lengths) of the live passages holding ``term``, per segment."""
        key = term_key(term)
        out = []
        for seg, logical in self.parts:
            found = seg.postings(key)
            if found is None:
                continue
            docs, tfs = found
            ids = logical[docs]
            live = ids >= 0
            if not live.all():
                docs, tfs, ids = docs[live], tfs[live], ids[live]
            if len(ids):
                out.append((ids, np.asarray(tfs), np.asarray(seg.lengths)[docs]))
        return out

    def df(self, term: str) -> int:
        """How many live passages hold ``term`` (cached)."""
        df = self._df.get(term)
        if df is None:
            df = sum(len(ids) for ids, _, _ in self._live_postings(term))
            if len(self._df) < 100_000:
                self._df[term] = df
        return df

    def idf(self, term: str, default: float | None = None) -> float:
        """``term``'s IDF; a term no passage holds gets ``default`` (by default
        :attr:`idf_absent`, the highest IDF)."""
        df = self.df(term)
        if df == 0:
            return self.idf_absent if default is None else default
        return self._idf(df)

    def _idf(self, df: int) -> float:
        """Lucene's IDF of a term in ``df`` of the live passages."""
        n = max(self.size, 1)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def sparse_scores(self, terms: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(passages, scores): the BM25 score of every live passage holding a term of the
        query (a repeated term counts each time), passages ascending. The work grows with
        the query terms' postings, not with the index."""
        ids_parts: list[np.ndarray] = []
        val_parts: list[np.ndarray] = []
        norm = K1 / self.avgdl * B
        for term in terms:
            postings = self._live_postings(term)
            df = sum(len(ids) for ids, _, _ in postings)
            if not df:
                continue
            idf = np.float32(self._idf(df))
            for ids, tfs, lengths in postings:
                ids_parts.append(ids)
                val_parts.append(idf * (tfs / (tfs + (K1 * (1 - B) + norm * lengths))))
        if not ids_parts:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        ids = np.concatenate(ids_parts)
        uniq, inverse = np.unique(ids, return_inverse=True)
        # a passage's terms are summed in query order, whatever segments hold it
        sums = np.bincount(inverse.reshape(-1), weights=np.concatenate(val_parts))
        return uniq, sums.astype(np.float32)

    def scores(self, terms: Sequence[str]) -> np.ndarray:
        """BM25 score of every live passage for one query's terms (:meth:`sparse_scores`
        spread over all passages)."""
        out = np.zeros(self.size, np.float32)
        ids, values = self.sparse_scores(terms)
        out[ids] = values
        return out

    def scores_many(self, term_lists: Sequence[Sequence[str]]) -> np.ndarray:
        """(queries, passages) BM25 scores of several queries, equal to :meth:`scores` per
        query."""
        out = np.zeros((len(term_lists), self.size), np.float32)
        for r, terms in enumerate(term_lists):
            ids, values = self.sparse_scores(terms)
            out[r, ids] = values
        return out
