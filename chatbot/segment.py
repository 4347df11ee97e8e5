"""One index segment: the immutable files holding the documents one write added.

A segment folder (``seg-NNNNNN/``) is written once and never changed; removing or
updating a document only marks it deleted in the manifest (:mod:`chatbot.store`), and a
merge writes a new segment from the live rows of old ones. Files::

    documents.jsonl       one line per document: name, title, headings, pages, regions
                          (front matter, references, captions), its record
                          (path, sha256, sizes, time), where its text is in text.bin and
                          which passages are its (they are consecutive)
    text.bin              the documents' texts, UTF-8, end to end (stored once: passages
                          are byte ranges of it, so overlapping passages cost nothing)
    passages.npy          one row per passage (PASSAGE_DTYPE): document, character and byte
                          span, heading, page, first sentence and token rows
    headings.json         the distinct heading strings the passages name
    sentences.npy         (sentences, 2) int32 spans relative to their passage
    sentence_rows.npy     (sentences,) row of each sentence in sentence_vectors.npy
    vectors.npy           (passages, dim) float16 passage vectors (with their context)
    sentence_vectors.npy  (distinct sentences, dim) float16: overlapping passages share rows
    tokens.npy            content-token vectors: PQ codes (uint8) or float16 rows, per
                          the manifest's ``tokens`` codec
    bm25_*.npy            BM25 postings (:class:`chatbot.lexical.LexicalSegment`)
    words_*.npy, words.json  per-document word counts for the spelling corrector
    vectors.faiss         the FAISS index over vectors.npy (exact below
                          ``ANN_MIN_PASSAGES`` passages, IVF-PQ above, its shortlist
                          re-scored exactly; see :func:`search_index`)

Every array is a ``.npy`` file opened with ``mmap_mode="r"`` and the FAISS index is read
with ``IO_FLAG_MMAP_IFC``: opening a segment reads only documents.jsonl and headings.json.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from .lexical import LexicalSegment, map_array
from .spelling import count_words
from .structure import BODY, KINDS, Region, kind_of, summarize
from .types import Document, Passage, Span

PASSAGE_DTYPE = np.dtype(
    [
        ("doc", "<i4"),  # document number in the segment
        ("start", "<i8"),  # character span in the document
        ("end", "<i8"),
        ("bstart", "<i8"),  # byte span in text.bin
        ("bend", "<i8"),
        ("heading", "<i4"),  # index into headings.json
        ("page", "<i4"),  # -1: none
        ("sent0", "<i8"),  # first row in sentences.npy
        ("nsent", "<i4"),
        ("tok0", "<i8"),  # first row in tokens.npy
        ("ntok", "<i4"),
    ]
)
KIND_CODES = (BODY, *KINDS)  # Passage.kind, by code
ANN_MIN_PASSAGES = 50_000  # from this size a segment's FAISS index is IVF, not exact
_ARRAYS = ("passages", "sentences", "sentence_rows", "vectors", "sentence_vectors", "tokens")
_WORD_ARRAYS = ("indptr", "ids", "counts", "totals")


@dataclass
class SegmentArrays:
    """A segment's contents in memory, ready to write (from a build or a merge)."""

    docs: list[dict[str, Any]]  # documents.jsonl rows
    text: bytes
    passages: np.ndarray  # PASSAGE_DTYPE
    headings: list[str]
    sentences: np.ndarray  # (S, 2) int32
    sentence_rows: np.ndarray  # (S,) int64
    vectors: np.ndarray  # (P, dim) float16
    sentence_vectors: np.ndarray  # (U, dim) float16
    tokens: np.ndarray  # (T, code) uint8 or (T, dim) float16
    lexical: LexicalSegment
    words: list[str]  # speller vocabulary of the segment
    word_indptr: np.ndarray  # (docs + 1,) int64: document d's words at [indptr[d], indptr[d+1])
    word_ids: np.ndarray  # int32 into ``words``
    word_counts: np.ndarray  # int32
    word_totals: np.ndarray = field(default=None)  # type: ignore[assignment]  # int64 per word

    def __post_init__(self) -> None:
        if self.word_totals is None:  # each word's count over the segment's documents
            self.word_totals = np.bincount(
                self.word_ids, weights=self.word_counts, minlength=len(self.words)
            ).astype(np.int64)

    @property
    def size(self) -> int:
        return len(self.passages)


def from_build(
    documents: Sequence[Document],
    records: Sequence[dict[str, Any]],
    passages: Sequence[Passage],
    terms: Sequence[Sequence[str]],
    vectors: np.ndarray,
    sentence_vectors: np.ndarray,
    sentence_rows: np.ndarray,
    tokens: np.ndarray,
    token_counts: np.ndarray,
) -> SegmentArrays:
    """The arrays of freshly built documents. ``passages`` are grouped by document in the
    order of ``documents``; ``sentence_rows`` maps each passage sentence, in order, to a row
    of ``sentence_vectors``; ``tokens`` hold ``token_counts[i]`` rows for passage ``i``."""
    doc_no = {d.source: i for i, d in enumerate(documents)}
    first = np.zeros(len(documents), np.int64)
    count = np.zeros(len(documents), np.int64)
    chunks: list[bytes] = []
    offsets: list[int] = []
    char_to_byte: list[np.ndarray | None] = []
    at = 0
    for d in documents:
        data = d.text.encode("utf-8")
        chunks.append(data)
        offsets.append(at)
        at += len(data)
        char_to_byte.append(None if len(data) == len(d.text) else _byte_offsets(d.text))
    headings: dict[str, int] = {}
    rows = np.zeros(len(passages), PASSAGE_DTYPE)
    spans: list[tuple[int, int]] = []
    sent_at = 0
    tok0 = np.concatenate([[0], np.cumsum(token_counts)[:-1]]) if len(passages) else []
    for i, p in enumerate(passages):
        d = doc_no[p.source]
        if count[d] == 0:
            first[d] = i
        count[d] += 1
        table = char_to_byte[d]
        b0, b1 = (p.start, p.end) if table is None else (int(table[p.start]), int(table[p.end]))
        rows[i] = (
            d,
            p.start,
            p.end,
            offsets[d] + b0,
            offsets[d] + b1,
            headings.setdefault(p.heading, len(headings)),
            -1 if p.page is None else p.page,
            sent_at,
            len(p.sentences),
            tok0[i],
            token_counts[i],
        )
        spans.extend(p.sentences)
        sent_at += len(p.sentences)
    docs = [
        {
            **dict(records[i]),
            "title": d.title,
            "headings": [[h.start, h.end] for h in d.headings],
            "pages": [list(pg) for pg in d.pages],
            "regions": [list(r) for r in d.regions],
            "recognised": recognised(d),
            "text_at": offsets[i],
            "text_bytes": len(chunks[i]),
            "first": int(first[i]),
            "count": int(count[i]),
        }
        for i, d in enumerate(documents)
    ]
    words, indptr, ids, counts = _word_table([count_words(d.text) for d in documents])
    return SegmentArrays(
        docs=docs,
        text=b"".join(chunks),
        passages=rows,
        headings=list(headings),
        sentences=np.asarray(spans, np.int32).reshape(-1, 2),
        sentence_rows=np.asarray(sentence_rows, np.int64),
        vectors=np.asarray(vectors, np.float16),
        sentence_vectors=np.asarray(sentence_vectors, np.float16),
        tokens=np.asarray(tokens),
        lexical=LexicalSegment.build(terms),
        words=words,
        word_indptr=indptr,
        word_ids=ids,
        word_counts=counts,
    )


def _regions(doc: dict[str, Any]) -> list[Region]:
    """The regions of a ``documents.jsonl`` row (none in a segment written before them)."""
    return [Region(*r) for r in doc.get("regions", ())]


def recognised(doc: Document) -> str:
    """What :mod:`chatbot.structure` recognised in ``doc``, for ``index list``."""
    return str(summarize([Region(*r) for r in doc.regions], doc.text))


def _byte_offsets(text: str) -> np.ndarray:
    """UTF-8 byte offset of every character position of ``text`` (len(text) + 1 entries)."""
    cp = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    size = 1 + (cp >= 0x80).astype(np.int64) + (cp >= 0x800) + (cp >= 0x10000)
    out = np.zeros(len(cp) + 1, np.int64)
    np.cumsum(size, out=out[1:])
    return out


def _word_table(
    per_doc: Sequence[Counter[str]],
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    vocab: dict[str, int] = {}
    ids: list[int] = []
    counts: list[int] = []
    indptr = np.zeros(len(per_doc) + 1, np.int64)
    for d, words in enumerate(per_doc):
        for w, c in words.items():
            ids.append(vocab.setdefault(w, len(vocab)))
            counts.append(c)
        indptr[d + 1] = len(ids)
    return list(vocab), indptr, np.asarray(ids, np.int32), np.asarray(counts, np.int32)


# ---------------------------------------------------------------------------- writing


def search_index(vectors: np.ndarray, dim: int) -> tuple[faiss.Index, dict[str, Any]]:
    """The FAISS index for a segment's (float16) passage vectors, and its description.

    Below ``ANN_MIN_PASSAGES`` an exact inner-product scan over the float16 vectors
    (``IndexScalarQuantizer`` QT_fp16: the same numbers vectors.npy holds). From there an
    IVF index with product-quantised codes (``IndexIVFPQ``: ``dim/8`` bytes a vector, so the
    search structure adds little to the float16 vectors kept anyway): ``nlist`` = 4·√n lists
    (a power of two), trained on at most 64 vectors per list, searched with ``nprobe`` =
    nlist/16 lists; its shortlist (``refine`` × k, at least ``shortlist``) is re-scored
    exactly from vectors.npy (:meth:`chatbot.index.Index.search`): on clustered data a
    shortlist of 200 gave recall@10 0.99 against exact search, 40 gave 0.83
    (``bench/scale.py`` prints it per size).
    """
    n = len(vectors)
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if n < ANN_MIN_PASSAGES:
        index = faiss.IndexScalarQuantizer(
            dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
        )
        index.add(x)
        return index, {"kind": "exact"}
    nlist = 1 << round(math.log2(4 * math.sqrt(n)))
    nprobe = max(8, nlist // 16)
    m = max(d for d in range(1, dim // 8 + 1) if dim % d == 0)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFPQ(quantizer, dim, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
    sample = x[np.random.default_rng(0).choice(n, min(n, 64 * nlist), replace=False)]
    index.train(sample)
    index.add(x)
    index.nprobe = nprobe
    search = {"kind": "ivfpq", "nlist": nlist, "nprobe": nprobe, "m": m}
    return index, {**search, "refine": 4, "shortlist": 256}


def write(arrays: SegmentArrays, folder: Path, dim: int) -> dict[str, Any]:
    """Write ``arrays`` into the (new, empty) ``folder`` and fsync every file; returns the
    segment's manifest entry fields (passages, documents, search)."""
    with open(folder / "documents.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(d, ensure_ascii=False) + "\n" for d in arrays.docs)
    (folder / "text.bin").write_bytes(arrays.text)
    _write_json(folder / "headings.json", arrays.headings)
    _write_json(folder / "words.json", arrays.words)
    for name in _ARRAYS:
        np.save(folder / f"{name}.npy", getattr(arrays, name))
    for name in _WORD_ARRAYS:
        np.save(folder / f"words_{name}.npy", getattr(arrays, f"word_{name}"))
    arrays.lexical.save(folder)
    index, search = search_index(arrays.vectors, dim)
    faiss.write_index(index, str(folder / "vectors.faiss"))
    for f in folder.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    return {"passages": arrays.size, "documents": len(arrays.docs), "search": search}


def _write_json(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")


# ---------------------------------------------------------------------------- reading


class Segment:
    """A segment on disk, opened: its arrays memory-mapped, its documents table read."""

    def __init__(self, folder: Path, search: dict[str, Any] | None = None) -> None:
        self.folder = folder
        self.name = folder.name
        with open(folder / "documents.jsonl", encoding="utf-8") as fh:
            self.docs: list[dict[str, Any]] = [json.loads(line) for line in fh]
        self.headings: list[str] = json.loads((folder / "headings.json").read_text("utf-8"))
        for name in _ARRAYS:
            setattr(self, name, map_array(folder / f"{name}.npy"))
        self.passages: np.ndarray
        self.sentences: np.ndarray
        self.sentence_rows: np.ndarray
        self.vectors: np.ndarray
        self.sentence_vectors: np.ndarray
        self.tokens: np.ndarray
        size = os.path.getsize(folder / "text.bin")
        self.text = (
            np.memmap(folder / "text.bin", dtype=np.uint8, mode="r")
            if size
            else np.zeros(0, np.uint8)
        )
        self.lexical = LexicalSegment.load(folder)
        self.faiss = faiss.read_index(str(folder / "vectors.faiss"), faiss.IO_FLAG_MMAP_IFC)
        self.search = search or {"kind": "exact"}
        if self.search.get("kind") in ("ivf", "ivfpq"):
            faiss.extract_index_ivf(self.faiss).nprobe = int(self.search["nprobe"])
        self._words: tuple | None = None
        n = len(self.passages)
        if len(self.vectors) != n or self.faiss.ntotal != n or len(self.lexical.lengths) != n:
            raise ValueError(f"{self.name}: its files hold different numbers of passages")
        if self.passages.dtype != PASSAGE_DTYPE:
            raise ValueError(f"{self.name}: passages.npy has another layout")

    @property
    def size(self) -> int:
        return len(self.passages)

    def doc_text(self, d: int) -> str:
        doc = self.docs[d]
        at = int(doc["text_at"])
        return bytes(self.text[at : at + int(doc["text_bytes"])]).decode("utf-8")

    def document(self, d: int) -> Document:
        doc = self.docs[d]
        return Document(
            source=doc["source"],
            text=self.doc_text(d),
            title=doc["title"],
            headings=[Span(s, e) for s, e in doc["headings"]],
            pages=[tuple(p) for p in doc["pages"]],  # type: ignore[misc]
            regions=[tuple(r) for r in doc.get("regions", ())],  # type: ignore[misc]
        )

    def passage_text(self, i: int) -> str:
        """Passage ``i``'s text alone (cheaper than :meth:`passage`)."""
        row = self.passages[i]
        return bytes(self.text[int(row["bstart"]) : int(row["bend"])]).decode("utf-8")

    def passage(self, i: int) -> Passage:
        row = self.passages[i]
        s0, ns = int(row["sent0"]), int(row["nsent"])
        page = int(row["page"])
        doc = self.docs[int(row["doc"])]
        return Passage(
            text=bytes(self.text[int(row["bstart"]) : int(row["bend"])]).decode("utf-8"),
            source=doc["source"],
            start=int(row["start"]),
            end=int(row["end"]),
            heading=self.headings[int(row["heading"])],
            page=None if page < 0 else page,
            sentences=[(int(a), int(b)) for a, b in self.sentences[s0 : s0 + ns]],
            kind=kind_of(
                [Region(*r) for r in doc.get("regions", ())], int(row["start"]), int(row["end"])
            ),
        )

    def kinds(self) -> np.ndarray:
        """(passages,) int8 code of each passage's kind (:data:`KIND_CODES`)."""
        out = np.zeros(self.size, np.int8)
        starts = self.passages["start"]
        for doc in self.docs:
            regions = doc.get("regions") or ()
            if not regions or not doc["count"]:
                continue
            rows = slice(doc["first"], doc["first"] + doc["count"])
            at = np.asarray([r[0] for r in regions], np.int64)
            ends = np.asarray([r[1] for r in regions], np.int64)
            codes = np.asarray([KIND_CODES.index(r[2]) for r in regions], np.int8)
            s = np.asarray(starts[rows], np.int64)
            k = np.searchsorted(at, s, side="right") - 1
            inside = (k >= 0) & (s < ends[np.maximum(k, 0)])
            out[rows] = np.where(inside, codes[np.maximum(k, 0)], 0)
        return out

    def words(self) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(vocabulary, indptr, word ids, counts, totals): the per-document word counts, and
        each word's total over the segment (arrays memory-mapped)."""
        if self._words is None:
            vocab = json.loads((self.folder / "words.json").read_text("utf-8"))
            arrays = [map_array(self.folder / f"words_{n}.npy") for n in _WORD_ARRAYS]
            self._words = (vocab, *arrays)
        return self._words  # type: ignore[return-value]


# ---------------------------------------------------------------------------- merging


def merge(parts: Sequence[tuple[Segment, Sequence[int]]]) -> SegmentArrays:
    """One segment holding documents ``docs`` of each ``(segment, docs)`` part, in that
    order, copied as stored (vectors, codes, postings): nothing is embedded again."""
    docs: list[dict[str, Any]] = []
    text: list[bytes] = []
    rows_out, sents_out, srows_out, vecs_out, toks_out = [], [], [], [], []
    svec_out: list[np.ndarray] = []
    lex_parts = []
    word_vocab: dict[str, int] = {}
    word_ids: list[np.ndarray] = []
    word_counts: list[np.ndarray] = []
    word_indptr = [0]
    headings: dict[str, int] = {}
    text_at = p_at = s_at = t_at = u_at = 0
    for seg, keep in parts:
        new_ids = np.full(seg.size, -1, np.int64)
        vocab, w_indptr, w_ids, w_counts, _ = seg.words()
        to_vocab = np.asarray(
            [word_vocab.setdefault(w, len(word_vocab)) for w in vocab], np.int32
        ).reshape(-1)
        remap_heading = np.asarray(
            [headings.setdefault(h, len(headings)) for h in seg.headings], np.int32
        )
        for d in keep:
            doc = dict(seg.docs[d])
            first, count = int(doc["first"]), int(doc["count"])
            rows = np.array(seg.passages[first : first + count])
            b0 = int(doc["text_at"])
            data = bytes(seg.text[b0 : b0 + int(doc["text_bytes"])])
            rows["doc"] = len(docs)
            rows["bstart"] += text_at - b0
            rows["bend"] += text_at - b0
            rows["heading"] = remap_heading[rows["heading"]]
            s_first, s_last = int(rows["sent0"][0]), int(rows["sent0"][-1] + rows["nsent"][-1])
            t_first, t_last = int(rows["tok0"][0]), int(rows["tok0"][-1] + rows["ntok"][-1])
            rows["sent0"] += s_at - s_first
            rows["tok0"] += t_at - t_first
            srows = np.asarray(seg.sentence_rows[s_first:s_last])
            uniq, inverse = np.unique(srows, return_inverse=True)
            svec_out.append(np.asarray(seg.sentence_vectors[uniq]))
            srows_out.append(inverse.reshape(-1) + u_at)
            u_at += len(uniq)
            sents_out.append(np.asarray(seg.sentences[s_first:s_last]))
            toks_out.append(np.asarray(seg.tokens[t_first:t_last]))
            vecs_out.append(np.asarray(seg.vectors[first : first + count]))
            rows_out.append(rows)
            new_ids[first : first + count] = np.arange(p_at, p_at + count)
            w0, w1 = int(w_indptr[d]), int(w_indptr[d + 1])
            word_ids.append(to_vocab[w_ids[w0:w1]])
            word_counts.append(w_counts[w0:w1])
            word_indptr.append(word_indptr[-1] + w1 - w0)
            doc.update(text_at=text_at, first=p_at)
            docs.append(doc)
            text.append(data)
            text_at += len(data)
            p_at += count
            s_at += s_last - s_first
            t_at += t_last - t_first
        lex_parts.append((seg.lexical, new_ids))
    dim = seg.vectors.shape[1] if parts else 0
    tok_shape = parts[0][0].tokens.shape[1:] if parts else (0,)
    tok_dtype = parts[0][0].tokens.dtype if parts else np.float16
    return SegmentArrays(
        docs=docs,
        text=b"".join(text),
        passages=np.concatenate(rows_out) if rows_out else np.zeros(0, PASSAGE_DTYPE),
        headings=list(headings),
        sentences=np.concatenate(sents_out) if sents_out else np.zeros((0, 2), np.int32),
        sentence_rows=np.concatenate(srows_out) if srows_out else np.zeros(0, np.int64),
        vectors=np.concatenate(vecs_out) if vecs_out else np.zeros((0, dim), np.float16),
        sentence_vectors=(np.concatenate(svec_out) if svec_out else np.zeros((0, dim), np.float16)),
        tokens=np.concatenate(toks_out) if toks_out else np.zeros((0, *tok_shape), tok_dtype),
        lexical=LexicalSegment.merge(lex_parts),
        words=list(word_vocab),
        word_indptr=np.asarray(word_indptr, np.int64),
        word_ids=np.concatenate(word_ids).astype(np.int32) if word_ids else np.zeros(0, np.int32),
        word_counts=(
            np.concatenate(word_counts).astype(np.int32) if word_counts else np.zeros(0, np.int32)
        ),
    )
