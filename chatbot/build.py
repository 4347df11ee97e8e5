"""Building an index from files: read, decide what changed, split, embed, make a segment.

:func:`index_files` turns a base index and a set of files into a
:class:`~chatbot.store.Change`: one new segment holding the new and changed documents (the
only ones split and embedded), and the indexed documents to drop. Writing it is
:func:`chatbot.store.commit`'s job.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .documents import DocumentError, check_size, collect_files, load_document
from .embedder import Embedder
from .index import DocRecord, Index, Summary, match_text
from .lexical import tokenize
from .progress import progress_bar
from .segment import SegmentArrays, from_build
from .store import Change, new_manifest, now, sentences_file
from .tokens import TokenCodec, codebook_file, codec_of, new_codec
from .types import Document, Passage

if TYPE_CHECKING:
    from .sentences import SentenceSplitter

log = logging.getLogger(__name__)

EMBED_CHUNK = 1024  # texts per encode call (the progress bar moves once per chunk)
# Sentence vectors (embed_passages): a sentence shorter than this (characters) is embedded on
# its own, a longer one is late-chunked from its passage's forward pass, minus this much of
# the passage vector. Chosen on SQuAD dev's first 24 articles (bench/sentence_variants.py:
# embedding short sentences alone did not help there; taking 0.4-0.6 of the passage vector off
# did). 10**9 gives the previous derivation (every sentence embedded again), which is the
# default: late chunking kept SQuAD within 0.005 hit@1 but cost the vitamin K2 questions
# top-1 0.938 -> 0.875 (dev) and 0.920 -> 0.840 (held out), with one off-topic question
# answered (bench/README.md, "Faster indexing"); ALONE_BELOW = 0 turns it on.
ALONE_BELOW = 10**9
LATE_MINUS_PASSAGE = 0.4


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def default_source(path: Path) -> str:
    """A document's name in the index: its path relative to the project root if inside it."""
    from .config import PROJECT_ROOT

    p = path.resolve()
    try:
        return p.relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return p.as_posix()


def passage_terms(
    passages: list[Passage], documents: dict[str, Document], progress: bool = False
) -> list[list[str]]:
    """BM25 terms of each passage's match text (passage with title and heading)."""
    terms = []
    with progress_bar(len(passages), "indexing terms", "passage", progress) as bar:
        for p in passages:
            terms.append(tokenize(match_text(p, documents[p.source].title)))
            bar.update()
    return terms


def index_files(
    paths: list[Path],
    embedder: Embedder,
    splitter: dict,
    *,
    base: Index | None = None,
    remove: list[str] | None = None,
    replace_all: bool = False,
    max_bytes: int | None = None,
    batch_size: int = 64,
    progress: bool = False,
    source_of: Callable[[Path], str] | None = None,
    allow_outside_links: bool = False,
    map_fn: MapFn | None = None,
) -> tuple[Change, Summary]:
    """What to write to make ``base`` hold the given files (new or changed), minus ``remove``.

    Only new or changed files (by content sha256) are split and embedded, into one new
    segment; the indexed versions of changed and removed documents are dropped (marked
    deleted); unchanged ones stay where they are. With ``replace_all`` documents not in
    ``paths`` are dropped (a full build that still reuses unchanged work). Bad or missing
    files are skipped and reported in the summary; they never abort the run (a bad file
    that was indexed before keeps its previous version). A link inside a folder that leads
    out of it is refused (reported as failed) unless ``allow_outside_links``.
    :func:`chatbot.store.commit` writes the change.

    ``map_fn(fn, items)`` runs the per-file work (:func:`read_file`, :func:`split_file`)
    and gives the results in order: the built-in loop by default; :mod:`chatbot.distributed`
    passes one that runs it as Ray tasks (and an embedder whose actors embed the passages),
    so a distributed build equals a local one.
    """
    map_fn = map_fn or local_map
    summary = Summary()
    old_records = base.doc_records if base is not None else {}
    if base is not None:
        settings = {k: base.manifest[k] for k in SETTINGS_KEYS if k in base.manifest}
    else:
        settings = new_settings(embedder, splitter)
    # ``keep``: the documents the new index holds, with their records (filled in below).
    keep: dict[str, DocRecord] = {} if replace_all else dict(old_records)
    _remove_named(keep, remove or [], summary)
    fresh = _read_files(
        paths,
        old_records,
        keep,
        summary,
        source_of=source_of or default_source,
        max_bytes=max_bytes,
        allow_outside_links=allow_outside_links,
        progress=progress,
        map_fn=map_fn,
    )
    sentences = base.sentences if base is not None else train_sentences(fresh)
    if base is None:
        settings["sentences"] = sentences_entry(sentences)
    new = _split(fresh, splitter, sentences, old_records, keep, summary, progress, map_fn)
    if replace_all:
        _drop_unlisted(old_records, keep, summary)
    dropped = [s for s in old_records if s not in keep or s in new.documents]
    codec = codec_of(settings, base.path) if base is not None else new_codec(embedder)
    arrays = _segment(new, keep, embedder, codec, batch_size, progress)
    summary.new_passages = len(new.passages)
    kept_passages = sum(r.passages for s, r in old_records.items() if s not in dropped)
    summary.total_passages = kept_passages + len(new.passages)
    summary.total_documents = len(keep)
    change = Change(manifest=settings, new=arrays, dropped=dropped, fresh=base is None)
    if base is None:
        change.codec = codec
        change.sentences = sentences
    return change, summary


SETTINGS_KEYS = ("format", "model", "dim", "splitter", "backend", "tokens", "sentences")


def train_sentences(fresh: dict[str, tuple[Document, DocRecord]]) -> SentenceSplitter:
    """The sentence splitter of a new index: Punkt trained on the documents it starts with
    (:mod:`chatbot.sentences`); later additions reuse it, as stored in the index."""
    from .sentences import SentenceSplitter  # imports nltk (slow): only when splitting

    docs = [doc.text for doc, _ in fresh.values()]
    splitter = SentenceSplitter.train(docs) if docs else SentenceSplitter.default()
    log.info("sentence splitter trained on %d documents", len(docs))
    return splitter


def sentences_entry(sentences: SentenceSplitter) -> dict:
    """The manifest's ``"sentences"`` entry: the file holding the splitter's parameters."""
    digest = sentences.digest()
    return {
        "file": sentences_file(digest),
        "sha256": digest,
        "documents": sentences.documents,
    }


def new_settings(embedder: Embedder, splitter: dict) -> dict:
    """The manifest of a new, empty index for ``embedder`` and ``splitter``: model,
    dimension, backend and the token codec every segment of the index will use."""
    codec = new_codec(embedder)
    tokens = dict(codec.params())
    if (file := codebook_file(codec)) is not None:
        tokens["file"] = file
    backend = getattr(embedder, "backend", "torch")
    return new_manifest(embedder.name, embedder.dim, splitter, tokens, backend)


# ---------------------------------------------------------------------------- phases


def _remove_named(keep: dict[str, DocRecord], remove: list[str], summary: Summary) -> None:
    """Drop the documents named in ``remove`` (an explicit removal)."""
    for source in remove:
        if keep.pop(source, None) is not None:
            summary.removed.append(source)


def _read_files(
    paths: list[Path],
    old_records: dict[str, DocRecord],
    keep: dict[str, DocRecord],
    summary: Summary,
    *,
    source_of: Callable[[Path], str],
    max_bytes: int | None,
    allow_outside_links: bool,
    progress: bool,
    map_fn: MapFn | None = None,
) -> dict[str, tuple[Document, DocRecord]]:
    """Read the files under ``paths``: an unchanged one (same sha256 as its record) is kept
    as it is, a new or changed one is loaded and returned by source, a bad one is reported
    in ``summary.failed``."""
    files, missing = collect_files(paths, allow_outside_links=allow_outside_links)
    for path, reason in missing:
        summary.failed.append((str(path), reason))
    jobs: list[ReadJob] = []
    named: set[str] = set()
    for path in files:
        source = source_of(path)
        if source in named:
            continue  # the same name twice (e.g. via a symlink): first one wins
        named.add(source)
        old = old_records.get(source)
        jobs.append(ReadJob(path, source, old.sha256 if old else None, max_bytes))
    fresh: dict[str, tuple[Document, DocRecord]] = {}
    with progress_bar(len(jobs), "reading", "file", progress) as bar:
        for job, result in zip(jobs, (map_fn or local_map)(read_file, jobs), strict=True):
            bar.update()
            if result.failed is not None:
                summary.failed.append((job.source, result.failed))
            elif result.document is None:
                keep[job.source] = old_records[job.source]
                summary.unchanged.append(job.source)
            else:
                assert result.record is not None
                fresh[job.source] = (result.document, result.record)
    return fresh


MapFn = Callable[[Callable[[Any], Any], Sequence[Any]], Iterable[Any]]


def local_map(fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[Any]:
    """``fn`` over ``items`` in this process, lazily, in order (the default ``map_fn``)."""
    return map(fn, items)


@dataclass(frozen=True)
class ReadJob:
    """One file to read: its path, its name in the index, the sha256 of its indexed
    version (None: not indexed) and the size limit."""

    path: Path
    source: str
    indexed_sha256: str | None = None
    max_bytes: int | None = None


@dataclass
class ReadResult:
    """What reading one file gave: a new or changed document with its record, nothing
    (``document`` None: unchanged), or the reason it ``failed``."""

    document: Document | None = None
    record: DocRecord | None = None
    failed: str | None = None


def read_file(job: ReadJob) -> ReadResult:
    """Read one file (a local build's loop and a Ray task run this): skipped as unchanged
    if its sha256 is the indexed one's, else loaded into a Document; a bad file's reason
    is returned, never raised."""
    path, source = job.path, job.source
    try:
        size = check_size(path, job.max_bytes)
        data = path.read_bytes()
        digest = sha256_bytes(data)
        if job.indexed_sha256 == digest:
            return ReadResult()
        doc = load_document(path, source, data=data)
    except (DocumentError, ValueError, OSError) as exc:
        log.info("skipping %s: %s", path, exc)
        return ReadResult(failed=str(exc))
    except Exception as exc:  # noqa: BLE001 - one odd file must never stop the batch
        log.warning("skipping %s: unexpected error", path, exc_info=True)
        return ReadResult(
            failed=f"{path.name}: could not be read ({type(exc).__name__}: {exc}); check the file"
        )
    record = DocRecord(
        source=source,
        path=str(path.resolve()),
        sha256=digest,
        passages=0,
        chars=len(doc.text),
        bytes=size,
        indexed_at=now(),
    )
    return ReadResult(document=doc, record=record)


@dataclass
class _New:
    """The passages of new and changed documents, before embedding."""

    passages: list[Passage] = field(default_factory=list)
    documents: dict[str, Document] = field(default_factory=dict)


def split_file(job: tuple[Document, dict, SentenceSplitter]) -> list[Passage]:
    """One document's passages (a local build's loop and a Ray task run this): ``job`` is
    (document, splitter settings, sentence splitter)."""
    from .splitter import split_document  # imports nltk (slow): only when splitting

    doc, splitter, sentences = job
    return split_document(doc, **splitter, sentences=sentences)


def _split(
    fresh: dict[str, tuple[Document, DocRecord]],
    splitter: dict,
    sentences: SentenceSplitter,
    old_records: dict[str, DocRecord],
    keep: dict[str, DocRecord],
    summary: Summary,
    progress: bool,
    map_fn: MapFn | None = None,
) -> _New:
    """Split each new or changed document into passages; one without any is reported as
    failed (and an indexed version of it is kept or dropped by the caller's rules)."""
    new = _New()
    jobs = [(doc, splitter, sentences) for doc, _ in fresh.values()]
    with progress_bar(len(fresh), "splitting", "doc", progress) as bar:
        for (source, (doc, record)), parts in zip(
            fresh.items(), (map_fn or local_map)(split_file, jobs), strict=True
        ):
            bar.update()
            if not parts:
                reason = f"{source}: no passages found; it holds no prose text"
                summary.failed.append((source, reason))
                continue
            (summary.updated if source in old_records else summary.added).append(source)
            record.passages = len(parts)
            new.documents[source] = doc
            keep.pop(source, None)
            keep[source] = record
            new.passages.extend(parts)
    return new


def _drop_unlisted(
    old_records: dict[str, DocRecord], keep: dict[str, DocRecord], summary: Summary
) -> None:
    """For a full build: indexed documents not listed now are removed, but a listed file
    that fails now and was indexed before keeps its previous version."""
    for source, _ in summary.failed:
        if source in old_records and source not in keep:
            keep[source] = old_records[source]
    summary.removed.extend(s for s in old_records if s not in keep)


def _segment(
    new: _New,
    keep: dict[str, DocRecord],
    embedder: Embedder,
    codec: TokenCodec,
    batch_size: int,
    progress: bool,
) -> SegmentArrays | None:
    """The new documents' segment: documents by name, passages in document order."""
    if not new.passages:
        return None
    order = sorted(new.documents)
    rank = {s: i for i, s in enumerate(order)}
    passages = sorted(new.passages, key=lambda p: rank[p.source])  # stable: document order
    documents = [new.documents[s] for s in order]
    v, sv, tv, tc = embed_passages(passages, new.documents, embedder, batch_size, progress)
    # embed_passages gives each passage its sentence rows; overlapping passages repeat
    # sentences: store each distinct one once.
    keys: dict[tuple[str, int, int], int] = {}
    first: list[int] = []
    rows: list[int] = []
    at = 0
    for p in passages:
        for s, e in p.sentences:
            key = (p.source, p.start + s, p.start + e)
            if key not in keys:
                keys[key] = len(first)
                first.append(at)
            rows.append(keys[key])
            at += 1
    unique = sv[np.asarray(first, np.int64)] if first else sv
    return from_build(
        documents,
        [asdict(keep[d.source]) for d in documents],
        passages,
        passage_terms(passages, new.documents, progress),
        v,
        unique,
        np.asarray(rows, np.int64),
        codec.encode(tv),
        tc,
    )


# ---------------------------------------------------------------------------- embedding


def embed_passages(
    passages: list[Passage],
    docs: dict[str, Document],
    embedder: Embedder,
    batch_size: int,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Passage vectors (with heading context), per-passage sentence vectors, and the
    passages' content-token vectors (float16) with their count per passage.

    One forward pass per passage gives its vector, its token vectors and ("late chunking",
    :meth:`~chatbot.embedder.Embedder.encode_late`) the vectors of its sentences of at least
    ``ALONE_BELOW`` characters: the mean of the passage's token states over the sentence,
    minus ``LATE_MINUS_PASSAGE`` times the passage vector, normalised. Shorter sentences,
    which their context would drown, are embedded on their own, each distinct one once
    (bench/README.md, "Faster indexing").
    """
    texts: list[str] = []
    spans: list[list[tuple[int, int]]] = []
    keys: dict[tuple[str, int, int], int] = {}
    alone_rows: list[int] = []  # per sentence: row in ``alone_texts``, or -1 (late)
    alone_texts: list[str] = []
    for p in passages:
        text = match_text(p, docs[p.source].title)
        at = len(text) - len(p.text)  # the passage text ends its match text
        texts.append(text)
        late: list[tuple[int, int]] = []
        for s, e in p.sentences:
            if e - s >= ALONE_BELOW:
                late.append((at + s, at + e))
                alone_rows.append(-1)
                continue
            # Sentences repeat across overlapping windows: embed each distinct one once.
            key = (p.source, p.start + s, p.start + e)
            if key not in keys:
                keys[key] = len(alone_texts)
                alone_texts.append(p.text[s:e])
            alone_rows.append(keys[key])
        spans.append(late)
    vectors, token_vectors, token_counts, pooled = _encode_late(
        embedder, texts, spans, batch_size, progress
    )
    alone = _encode(embedder, alone_texts, batch_size, progress, "embedding sentences")
    sent_vectors = np.zeros((len(alone_rows), embedder.dim), np.float32)
    rows = np.asarray(alone_rows, dtype=np.int64)
    is_alone = rows >= 0
    sent_vectors[is_alone] = alone[rows[is_alone]]
    if pooled:
        late_vecs = np.concatenate(pooled)
        if LATE_MINUS_PASSAGE:
            owner = np.repeat(np.arange(len(pooled)), [len(x) for x in pooled])
            late_vecs = late_vecs - LATE_MINUS_PASSAGE * vectors[owner]
            late_vecs /= np.maximum(np.linalg.norm(late_vecs, axis=1, keepdims=True), 1e-12)
        sent_vectors[~is_alone] = late_vecs
    return vectors, sent_vectors, token_vectors, token_counts


def embed_chunk(embedder: Embedder) -> int:
    """Texts per encode call: ``EMBED_CHUNK``, or all at once for an embedder that spreads
    a call over workers itself (one with ``spreads_calls``, :mod:`chatbot.distributed`)."""
    return 1 << 62 if getattr(embedder, "spreads_calls", False) else EMBED_CHUNK


def _encode(
    embedder: Embedder, texts: list[str], batch_size: int, progress: bool, desc: str
) -> np.ndarray:
    """Embed ``texts`` in fixed chunks, with a progress bar on terminals."""
    if not texts:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    parts = []
    size = embed_chunk(embedder)
    with progress_bar(len(texts), desc, "text", progress) as bar:
        for i in range(0, len(texts), size):
            chunk = texts[i : i + size]
            parts.append(embedder.encode(chunk, batch_size=batch_size, progress=False))
            bar.update(len(chunk))
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def _encode_late(
    embedder: Embedder,
    texts: list[str],
    spans: list[list[tuple[int, int]]],
    batch_size: int,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """Passage vectors, their content-token vectors and counts, and the late-chunked vectors
    of ``spans`` (per text), in fixed chunks with a progress bar."""
    vec_parts = [np.zeros((0, embedder.dim), np.float32)]
    tok_parts = [np.zeros((0, embedder.dim), np.float16)]
    counts: list[int] = []
    pooled: list[np.ndarray] = []
    size = embed_chunk(embedder)
    with progress_bar(len(texts), "embedding passages", "text", progress) as bar:
        for i in range(0, len(texts), size):
            chunk = texts[i : i + size]
            vecs, toks, parts = embedder.encode_late(
                chunk, spans[i : i + size], batch_size=batch_size
            )
            vec_parts.append(vecs)
            tok_parts.extend(t.vectors.astype(np.float16) for t in toks)
            counts.extend(len(t.vectors) for t in toks)
            pooled.extend(np.asarray(x, np.float32).reshape(-1, embedder.dim) for x in parts)
            bar.update(len(chunk))
    return (
        np.ascontiguousarray(np.concatenate(vec_parts), dtype=np.float32),
        np.ascontiguousarray(np.concatenate(tok_parts), dtype=np.float16),
        np.asarray(counts, dtype=np.int64),
        pooled,
    )
