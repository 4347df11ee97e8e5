"""The index folder: passages, dense vectors (FAISS), BM25 and a manifest, written atomically.

Layout of ``index/``::

    manifest.json        what the index is (model, splitter, documents, versions) and which
                         generation folder holds the data; replaced atomically, last
    gen-000007/          passages.jsonl, documents.jsonl (indexed text), tokens.txt (BM25
                         tokens per passage), vectors.npy, sentence_vectors.npy,
                         token_vectors.npy + token_counts.npy (contextual vectors of each
                         passage's content tokens, float16), bm25/
    .lock                serialises writers

A write builds a new generation folder (``.tmp-*`` until complete), then swaps the manifest
with ``os.replace``; a crash at any point leaves the previous manifest and its generation
loadable. The FAISS index is rebuilt from ``vectors.npy`` on load (a flat index: a copy).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from .documents import DocumentError, check_size, collect_files, load_document
from .embedder import Embedder
from .lexical import LexicalIndex, tokenize
from .types import Document, Passage, Span

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: token vectors stored
MANIFEST = "manifest.json"
TOKENS = "tokens.txt"  # BM25 tokens: one line per passage, space-separated


class IndexError_(RuntimeError):
    """The index is missing or unusable; the message says how to fix it."""


class IndexMissing(IndexError_):
    """There is no index (no manifest) at the configured folder."""


class IndexWriteError(IndexError_, OSError):
    """The index folder cannot be written (permissions, full disk); nothing was changed.

    Also an OSError, so callers that handle failed writes as OSError keep doing so.
    """


_NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}
_FULL = {errno.ENOSPC, errno.EDQUOT}


def write_error(index_dir: Path, exc: OSError) -> IndexWriteError:
    """An IndexWriteError for ``exc`` raised while writing ``index_dir``, naming the fix."""
    why = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in _NOT_WRITABLE:
        problem, fix = "is not writable", "fix its permissions or use --index DIR"
    elif exc.errno in _FULL:
        problem, fix = "is on a full disk", "free some space or use --index DIR"
    else:
        problem, fix = "cannot be written", "check the folder or use --index DIR"
    return IndexWriteError(f"index folder {index_dir} {problem} ({why}); {fix}")


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


_RECORD_FIELDS = {f.name: f.type for f in fields(DocRecord)}  # name -> "str" / "int"


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
        skipped 1 unchanged; 1 failed: x.pdf: PDF is encrypted; decrypt it ..."."""
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


@dataclass
class Index:
    """An in-memory index: everything retrieval needs, plus what a rebuild can reuse."""

    manifest: dict
    passages: list[Passage]
    documents: dict[str, Document]
    vectors: np.ndarray  # (passages, dim), L2-normalised
    sentence_vectors: np.ndarray  # (sum of sentences per passage, dim)
    sentence_start: np.ndarray  # row in sentence_vectors of each passage's first sentence
    token_vectors: np.ndarray  # (sum of content tokens per passage, dim) float16, normalised
    token_counts: np.ndarray  # content tokens per passage
    lexical: LexicalIndex
    faiss_index: faiss.Index
    path: Path | None = None
    terms: list[list[str]] | None = None  # BM25 terms per passage, reused by rebuilds
    token_start: np.ndarray = field(init=False)  # row in token_vectors of each passage's first
    _token_matrix: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.token_start = segment_offsets(self.token_counts)

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
            s: DocRecord(**{k: r[k] for k in _RECORD_FIELDS})
            for s, r in self.manifest.get("documents", {}).items()
        }

    def passage_sentences(self, i: int) -> np.ndarray:
        """Sentence vectors of passage ``i``."""
        s = int(self.sentence_start[i])
        return self.sentence_vectors[s : s + len(self.passages[i].sentences)]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def package_versions() -> dict[str, str]:
    out = {}
    for name in ("chatbot", "sentence-transformers", "faiss-cpu", "bm25s", "nltk", "torch"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


# ---------------------------------------------------------------------------- building


EMBED_CHUNK = 1024  # texts per encode call (the progress bar moves once per chunk)


def _bar(total: int, desc: str, unit: str, enabled: bool) -> Any:
    """A tqdm bar on stderr when ``enabled`` (a terminal), else None."""
    if not enabled or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False)


def _encode(
    embedder: Embedder, texts: list[str], batch_size: int, progress: bool, desc: str
) -> np.ndarray:
    """Embed ``texts`` in fixed chunks, with a progress bar on terminals."""
    if not texts:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    bar = _bar(len(texts), desc, "text", progress)
    parts = []
    for i in range(0, len(texts), EMBED_CHUNK):
        chunk = texts[i : i + EMBED_CHUNK]
        parts.append(embedder.encode(chunk, batch_size=batch_size, progress=False))
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


def _embed_passages(
    passages: list[Passage],
    docs: dict[str, Document],
    embedder: Embedder,
    batch_size: int,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Passage vectors (with heading context), per-passage sentence vectors, and the
    passages' content-token vectors (float16) with their count per passage."""
    texts = [match_text(p, docs[p.source].title) for p in passages]
    vectors, token_vectors, token_counts = _encode_with_tokens(
        embedder, texts, batch_size, progress
    )
    # Sentences repeat across overlapping windows: embed each distinct span once.
    keys: dict[tuple[str, int, int], int] = {}
    rows: list[int] = []
    sent_texts: list[str] = []
    for p in passages:
        for s, e in p.sentences:
            key = (p.source, p.start + s, p.start + e)
            if key not in keys:
                keys[key] = len(sent_texts)
                sent_texts.append(p.text[s:e])
            rows.append(keys[key])
    unique = _encode(embedder, sent_texts, batch_size, progress, "embedding sentences")
    sent_vectors = unique[np.asarray(rows, dtype=np.int64)] if rows else unique
    return vectors, sent_vectors, token_vectors, token_counts


def _encode_with_tokens(
    embedder: Embedder, texts: list[str], batch_size: int, progress: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Passage vectors plus their content-token vectors, in fixed chunks with a progress bar."""
    bar = _bar(len(texts), "embedding passages", "text", progress)
    vec_parts = [np.zeros((0, embedder.dim), np.float32)]
    tok_parts = [np.zeros((0, embedder.dim), np.float16)]
    counts: list[int] = []
    for i in range(0, len(texts), EMBED_CHUNK):
        chunk = texts[i : i + EMBED_CHUNK]
        vecs, toks = embedder.encode_with_tokens(chunk, batch_size=batch_size)
        vec_parts.append(vecs)
        tok_parts.extend(t.vectors.astype(np.float16) for t in toks)
        counts.extend(len(t.vectors) for t in toks)
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return (
        np.ascontiguousarray(np.concatenate(vec_parts), dtype=np.float32),
        np.ascontiguousarray(np.concatenate(tok_parts), dtype=np.float16),
        np.asarray(counts, dtype=np.int64),
    )


def passage_tokens(passages: list[Passage], documents: dict[str, Document]) -> list[list[str]]:
    """BM25 tokens of each passage's match text (passage with title and heading)."""
    return [tokenize(match_text(p, documents[p.source].title)) for p in passages]


def segment_offsets(counts: np.ndarray) -> np.ndarray:
    """Start of each segment when segments of ``counts`` items are laid end to end."""
    return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64) if len(counts) else counts


def _sentence_start(passages: list[Passage]) -> np.ndarray:
    counts = np.fromiter((len(p.sentences) for p in passages), dtype=np.int64, count=len(passages))
    return segment_offsets(counts)


def segment_rows(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """All rows of the segments (a passage's sentences, or its tokens) that start at rows
    ``starts`` and hold ``counts`` rows each, laid end to end in that order."""
    if not len(counts):
        return np.zeros(0, dtype=np.int64)
    return np.repeat(starts - segment_offsets(counts), counts) + np.arange(int(counts.sum()))


def _flat_index(vectors: np.ndarray, dim: int) -> faiss.Index:
    fi = faiss.IndexFlatIP(dim)
    if len(vectors):
        fi.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return fi


def assemble(
    manifest: dict,
    passages: list[Passage],
    documents: dict[str, Document],
    vectors: np.ndarray,
    sentence_vectors: np.ndarray,
    token_vectors: np.ndarray,
    token_counts: np.ndarray,
    tokens: list[list[str]] | None = None,
) -> Index:
    """Build the derived structures (BM25, FAISS, sentence offsets) from stored data.

    ``tokens`` (one list per passage, as :func:`passage_tokens` makes them) saves
    re-tokenising every passage; BM25 statistics are always recomputed over all passages,
    so they are never stale.
    """
    if tokens is None:
        tokens = passage_tokens(passages, documents)
    lexical = LexicalIndex.build(tokens)
    fi = _flat_index(vectors, int(manifest["dim"]))
    return Index(
        manifest,
        passages,
        documents,
        vectors,
        sentence_vectors,
        _sentence_start(passages),
        token_vectors,
        token_counts,
        lexical,
        fi,
        terms=tokens,
    )


def new_manifest(embedder: Embedder, splitter: dict) -> dict:
    return {
        "format": FORMAT_VERSION,
        "model": embedder.name,
        "dim": embedder.dim,
        "splitter": splitter,
        "documents": {},
        "versions": package_versions(),
    }


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


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
) -> tuple[Index, Summary]:
    """Return a new index: ``base`` plus the given files (new or changed), minus ``remove``.

    Only new or changed files (by content sha256) are split and embedded; unchanged ones keep
    their stored passages, vectors and tokens. With ``replace_all`` documents not in ``paths``
    are dropped (a full build that still reuses unchanged work). Bad or missing files are
    skipped and reported in the summary; they never abort the run (a bad file that was
    indexed before keeps its previous version). A link inside a folder that leads out of it
    is refused (reported as failed) unless ``allow_outside_links``.
    """
    source_of = source_of or default_source
    summary = Summary()
    manifest = new_manifest(embedder, splitter)
    old_records = base.doc_records if base is not None else {}
    keep: dict[str, DocRecord] = {} if replace_all else dict(old_records)
    for source in remove or []:
        if keep.pop(source, None) is not None:
            summary.removed.append(source)

    files, missing = collect_files(paths, allow_outside_links=allow_outside_links)
    for path, reason in missing:
        summary.failed.append((str(path), reason))
    fresh: dict[str, tuple[Document, DocRecord]] = {}
    bar = _bar(len(files), "reading", "file", progress)
    for path in files:
        if bar is not None:
            bar.update()
        source = source_of(path)
        if source in fresh:
            continue  # the same name twice (e.g. via a symlink): first one wins
        try:
            size = check_size(path, max_bytes)
            data = path.read_bytes()
            digest = sha256_bytes(data)
            old = old_records.get(source)
            if old is not None and old.sha256 == digest:
                keep[source] = old
                summary.unchanged.append(source)
                continue
            doc = load_document(path, source, data=data)
        except (DocumentError, ValueError, OSError) as exc:
            log.info("skipping %s: %s", path, exc)
            summary.failed.append((source, str(exc)))
            continue
        except Exception as exc:  # noqa: BLE001 - one odd file must never stop the batch
            log.warning("skipping %s: unexpected error", path, exc_info=True)
            reason = f"{path.name}: could not be read ({type(exc).__name__}: {exc}); check the file"
            summary.failed.append((source, reason))
            continue
        record = DocRecord(source, str(path.resolve()), digest, 0, len(doc.text), size, _now())
        fresh[source] = (doc, record)
    if bar is not None:
        bar.close()

    from .splitter import split_document  # imports nltk (slow): only when splitting

    new_passages: list[Passage] = []
    new_docs: dict[str, Document] = {}
    bar = _bar(len(fresh), "splitting", "doc", progress)
    for source, (doc, record) in fresh.items():
        parts = split_document(doc, **splitter)
        if bar is not None:
            bar.update()
        if not parts:
            summary.failed.append((source, f"{source}: no passages found; it holds no prose text"))
            continue
        (summary.updated if source in old_records else summary.added).append(source)
        record.passages = len(parts)
        new_docs[source] = doc
        keep.pop(source, None)
        keep[source] = record
        new_passages.extend(parts)
    if bar is not None:
        bar.close()
    if replace_all:
        # Listed files that fail now but were indexed before keep their previous version.
        for source, _ in summary.failed:
            if source in old_records and source not in keep:
                keep[source] = old_records[source]
        summary.removed.extend(s for s in old_records if s not in keep)

    # Reuse stored passages/vectors/tokens of kept documents (in their stored order).
    passages: list[Passage] = []
    documents: dict[str, Document] = {}
    tokens: list[list[str]] = []
    vec_parts: list[np.ndarray] = []
    sent_parts: list[np.ndarray] = []
    tok_parts: list[np.ndarray] = []
    count_parts: list[np.ndarray] = []
    kept = {s for s in keep if s not in new_docs}
    if base is not None and kept:
        rows = [i for i, p in enumerate(base.passages) if p.source in kept]
        passages = [base.passages[i] for i in rows]
        documents = {s: base.documents[s] for s in base.documents if s in kept}
        if base.terms is None:  # a generation written before tokens were stored
            tokens = passage_tokens(passages, documents)
        else:
            tokens = [base.terms[i] for i in rows]
        idx = np.asarray(rows, dtype=np.int64)
        vec_parts.append(base.vectors[idx])
        counts = np.fromiter(
            (len(base.passages[i].sentences) for i in rows), dtype=np.int64, count=len(rows)
        )
        rows_of_sentences = segment_rows(base.sentence_start[idx], counts)
        sent_parts.append(base.sentence_vectors[rows_of_sentences])
        tcounts = base.token_counts[idx]
        token_rows = segment_rows(base.token_start[idx], tcounts)
        tok_parts.append(np.asarray(base.token_vectors[token_rows]))
        count_parts.append(tcounts)

    if new_passages:
        v, sv, tv, tc = _embed_passages(new_passages, new_docs, embedder, batch_size, progress)
        vec_parts.append(v)
        sent_parts.append(sv)
        tok_parts.append(tv)
        count_parts.append(tc)
    passages.extend(new_passages)
    documents.update(new_docs)
    bar = _bar(len(new_passages), "indexing terms", "passage", progress)
    for p in new_passages:
        tokens.append(tokenize(match_text(p, new_docs[p.source].title)))
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()

    dim = embedder.dim
    vectors = np.concatenate(vec_parts) if vec_parts else np.zeros((0, dim), np.float32)
    sent_vectors = np.concatenate(sent_parts) if sent_parts else np.zeros((0, dim), np.float32)
    tok_vectors = np.concatenate(tok_parts) if tok_parts else np.zeros((0, dim), np.float16)
    tok_counts = np.concatenate(count_parts) if count_parts else np.zeros(0, np.int64)
    # Canonical order (documents by name, passages in document order), so any sequence of
    # adds, updates and removals gives the same index as a fresh build of the same files.
    order = sorted(range(len(passages)), key=lambda i: passages[i].source)
    if order != list(range(len(passages))):
        counts = np.fromiter((len(p.sentences) for p in passages), np.int64, len(passages))
        idx = np.asarray(order, dtype=np.int64)
        sent_vectors = sent_vectors[segment_rows(_sentence_start(passages)[idx], counts[idx])]
        tok_vectors = tok_vectors[segment_rows(segment_offsets(tok_counts)[idx], tok_counts[idx])]
        tok_counts = tok_counts[idx]
        vectors = vectors[idx]
        passages = [passages[i] for i in order]
        tokens = [tokens[i] for i in order]
    documents = {s: documents[s] for s in sorted(documents)}
    manifest["documents"] = {s: asdict(keep[s]) for s in sorted(documents)}
    manifest["passages"] = len(passages)
    summary.new_passages = len(new_passages)
    summary.total_passages = len(passages)
    summary.total_documents = len(documents)
    index = assemble(
        manifest, passages, documents, vectors, sent_vectors, tok_vectors, tok_counts, tokens
    )
    return index, summary


def default_source(path: Path) -> str:
    """A document's name in the index: its path relative to the project root if inside it."""
    from .config import PROJECT_ROOT

    p = path.resolve()
    try:
        return p.relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return p.as_posix()


# ---------------------------------------------------------------------------- storage


LOCK_TIMEOUT = 600.0  # seconds a writer waits for another (env CHATBOT_LOCK_TIMEOUT)


def lock_timeout() -> float:
    raw = os.environ.get("CHATBOT_LOCK_TIMEOUT", "")
    try:
        return float(raw) if raw else LOCK_TIMEOUT
    except ValueError:
        raise IndexError_(
            f"CHATBOT_LOCK_TIMEOUT={raw!r} is not a number of seconds; fix or unset it"
        ) from None


@contextlib.contextmanager
def write_lock(index_dir: Path, timeout: float | None = None) -> Iterator[None]:
    """Serialise writers on ``index_dir/.lock`` (advisory; released if the process dies).

    Once the lock is held, leftovers of interrupted writes are removed (no other writer can
    be using them). Raises IndexWriteError if the folder cannot be written.
    """
    timeout = lock_timeout() if timeout is None else timeout
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        lock_file = open(index_dir / ".lock", "a+")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise write_error(index_dir, exc) from None
    with lock_file as fh:
        deadline = time.monotonic() + timeout
        waiting = False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise IndexError_(
                        f"another process is writing the index at {index_dir}; "
                        "wait for it to finish and try again"
                    ) from None
                if not waiting:
                    log.warning("another process is writing the index; waiting for it to finish")
                    waiting = True
                time.sleep(0.1)
        try:
            remove_leftovers(index_dir)
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_GENERATION_RE = re.compile(r"gen-[0-9]{1,12}")


def _current_generation(index_dir: Path) -> str | None:
    """The generation the manifest names, or None if there is no usable manifest."""
    try:
        generation = json.loads((index_dir / MANIFEST).read_text(encoding="utf-8"))["generation"]
    except (OSError, ValueError, RecursionError, LookupError, TypeError):
        return None
    if isinstance(generation, str) and _GENERATION_RE.fullmatch(generation):
        return generation
    return None


def remove_leftovers(index_dir: Path) -> None:
    """Remove what interrupted writes left behind: ``.tmp-*`` folders, a half-written
    manifest, and generations newer than the live one (written, but never named by the
    manifest). The live generation and older ones are kept. Callers hold the lock.
    """
    live = _current_generation(index_dir)
    try:
        entries = list(index_dir.iterdir())
    except OSError:
        return
    for p in entries:
        newer = (
            live is not None
            and _GENERATION_RE.fullmatch(p.name)
            and _gen_number(p.name) > _gen_number(live)
        )
        if p.name.startswith(".tmp-") or newer:
            if p.is_dir() and not p.is_symlink():
                log.info("removing %s, left by an interrupted write", p)
                shutil.rmtree(p, ignore_errors=True)
        elif p.name == f".{MANIFEST}.tmp":
            with contextlib.suppress(OSError):
                p.unlink()


def _gen_number(name: str) -> int:
    return int(name.split("-", 1)[1])


def save(index: Index, index_dir: Path) -> Path:
    """Write ``index`` as a new generation, then swap the manifest atomically.

    Callers hold :func:`write_lock`. A crash (even ``kill -9``) at any point leaves the
    previous manifest and the generation it names untouched; leftovers of the interrupted
    write are removed by the next writer. A failed write (an unwritable folder, a full
    disk) raises IndexWriteError and leaves the index as it was.
    """
    try:
        return _save(index, index_dir)
    except OSError as exc:
        if isinstance(exc, IndexWriteError):
            raise
        raise write_error(index_dir, exc) from exc


def _save(index: Index, index_dir: Path) -> Path:
    index_dir.mkdir(parents=True, exist_ok=True)
    previous = _current_generation(index_dir)
    gens = sorted(
        _gen_number(p.name)
        for p in index_dir.glob("gen-*")
        if p.is_dir() and _GENERATION_RE.fullmatch(p.name)
    )
    name = f"gen-{(gens[-1] if gens else 0) + 1:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=index_dir))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; readers may run as another user
        with open(tmp / "passages.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(_json_line(_passage_dict(p)) for p in index.passages)
        with open(tmp / "documents.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(_json_line(_document_dict(d)) for d in index.documents.values())
        tokens = index.terms
        if tokens is None:
            tokens = passage_tokens(index.passages, index.documents)
        with open(tmp / TOKENS, "w", encoding="utf-8") as fh:
            fh.write("".join(" ".join(t) + "\n" for t in tokens))
        np.save(tmp / "vectors.npy", index.vectors)
        np.save(tmp / "sentence_vectors.npy", index.sentence_vectors)
        np.save(tmp / "token_vectors.npy", np.asarray(index.token_vectors, dtype=np.float16))
        np.save(tmp / "token_counts.npy", np.asarray(index.token_counts, dtype=np.int64))
        index.lexical.save(tmp / "bm25")
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        _fsync_dir(tmp)
        os.rename(tmp, index_dir / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    manifest = dict(index.manifest, generation=name, written_at=_now())
    tmp_manifest = index_dir / f".{MANIFEST}.tmp"
    try:
        with open(tmp_manifest, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, ensure_ascii=False, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_manifest, index_dir / MANIFEST)
    except BaseException:
        # The manifest still names the previous generation: drop the one it never named.
        with contextlib.suppress(OSError):
            tmp_manifest.unlink()
        shutil.rmtree(index_dir / name, ignore_errors=True)
        raise
    _fsync_dir(index_dir)
    index.manifest = manifest
    index.path = index_dir
    index.terms = tokens
    # Keep the previous generation for readers that read the old manifest a moment ago.
    _collect_garbage(index_dir, keep={name, previous or ""})
    return index_dir / name


def _collect_garbage(index_dir: Path, keep: set[str]) -> None:
    """Drop old generations and leftovers of interrupted writes (callers hold the lock)."""
    for p in index_dir.iterdir():
        ours = p.name.startswith((".tmp-", "gen-"))
        if p.is_dir() and ours and p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)


def read_manifest(index_dir: Path) -> dict:
    """The manifest, checked for shape: IndexMissing if there is none, IndexError_ (naming
    the fix) if it is unreadable or not what this version writes."""
    path = index_dir / MANIFEST
    if not path.exists():
        raise IndexMissing(
            f"no index at {index_dir}; build it with `chatbot index build` (or `make run`)"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise IndexError_(
            f"index manifest {path} is unreadable ({exc}); rebuild with `chatbot index build`"
        ) from None
    problem = manifest_problem(manifest)
    if problem:
        raise IndexError_(
            f"index manifest {path} is damaged ({problem}); rebuild with `chatbot index build`"
        )
    return manifest


def manifest_problem(manifest: Any) -> str | None:
    """What is wrong with the shape of a parsed manifest, or None if nothing is."""
    if not isinstance(manifest, dict):
        return f"a JSON {_json_kind(manifest)}, not an object"
    generation = manifest.get("generation")
    if not isinstance(generation, str) or not _GENERATION_RE.fullmatch(generation):
        return f"generation {generation!r} is not a generation folder name like 'gen-000001'"
    dim = manifest.get("dim")
    if not _is_int(dim) or dim < 1:
        return f"dim {dim!r} is not a positive whole number"
    if "passages" in manifest and (not _is_int(manifest["passages"]) or manifest["passages"] < 0):
        return f"passages {manifest['passages']!r} is not a count"
    if not isinstance(manifest.get("model"), str):
        return f"model {manifest.get('model')!r} is not a name"
    if not isinstance(manifest.get("splitter"), dict):
        return f"splitter is a JSON {_json_kind(manifest.get('splitter'))}, not an object"
    documents = manifest.get("documents")
    if not isinstance(documents, dict):
        return f"documents is a JSON {_json_kind(documents)}, not an object"
    for source, record in documents.items():
        if not isinstance(record, dict):
            return f"document {source!r} is a JSON {_json_kind(record)}, not an object"
        for name, kind in _RECORD_FIELDS.items():
            value = record.get(name)
            ok = _is_int(value) and value >= 0 if kind == "int" else isinstance(value, str)
            if not ok:
                return f"document {source!r} has {name} {value!r}"
        if record["source"] != source:
            return f"document {source!r} is recorded as {record['source']!r}"
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_kind(value: Any) -> str:
    kinds = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return kinds.get(type(value), "number")


def check_compatible(manifest: dict, model: str | None, splitter: dict | None, where: Path) -> None:
    """Refuse an index built with another model, splitter setting or format."""
    fix = f"rebuild it with `chatbot index build --index {where}`"
    if manifest.get("format") != FORMAT_VERSION:
        raise IndexError_(
            f"index at {where} has format {manifest.get('format')}, this version reads "
            f"{FORMAT_VERSION}; {fix}"
        )
    if model is not None and manifest.get("model") != model:
        raise IndexError_(
            f"index at {where} was built with model {manifest.get('model')!r}, but {model!r} is "
            f"configured; {fix} (or pass --model {manifest.get('model')})"
        )
    if splitter is not None and manifest.get("splitter") != splitter:
        raise IndexError_(
            f"index at {where} was built with splitter settings {manifest.get('splitter')}, "
            f"but {splitter} are configured; {fix}"
        )


def load(index_dir: Path, model: str | None = None, splitter: dict | None = None) -> Index:
    """Load the current generation, checking it matches the configured model and splitter.

    If a writer replaces the generation while it is being read, the new one is read instead.
    """
    for attempt in range(3):
        manifest = read_manifest(index_dir)
        check_compatible(manifest, model, splitter, index_dir)
        try:
            return _load_generation(index_dir, manifest)
        except IndexError_:
            if attempt == 2 or _current_generation(index_dir) == manifest.get("generation"):
                raise
            log.info("index at %s changed while loading; loading the new one", index_dir)
    raise AssertionError("unreachable")


def _load_generation(index_dir: Path, manifest: dict) -> Index:
    try:
        gen = index_dir / manifest["generation"]
        with open(gen / "passages.jsonl", encoding="utf-8") as fh:
            passages = [_passage(json.loads(line)) for line in fh]
        with open(gen / "documents.jsonl", encoding="utf-8") as fh:
            docs = [_document(json.loads(line)) for line in fh]
        tokens = _read_tokens(gen / TOKENS, len(passages))
        vectors = np.load(gen / "vectors.npy")
        sentence_vectors = np.load(gen / "sentence_vectors.npy")
        # Memory-mapped: read in full only when first matched (``Index.token_matrix``).
        token_vectors = np.load(gen / "token_vectors.npy", mmap_mode="r")
        token_counts = np.load(gen / "token_counts.npy")
        lexical = LexicalIndex.load(gen / "bm25", len(passages))
        if vectors.shape != (len(passages), int(manifest["dim"])):
            raise ValueError(f"vectors.npy has shape {vectors.shape}")
        if len(token_counts) != len(passages) or int(token_counts.sum()) != len(token_vectors):
            raise ValueError("token_vectors.npy does not match token_counts.npy")
    except (OSError, ValueError, RuntimeError, LookupError, TypeError, AttributeError) as exc:
        raise IndexError_(
            f"index at {index_dir} is damaged ({type(exc).__name__}: {exc}); "
            "rebuild with `chatbot index build`"
        ) from None
    return Index(
        manifest,
        passages,
        {d.source: d for d in docs},
        vectors,
        sentence_vectors,
        _sentence_start(passages),
        token_vectors,
        token_counts,
        lexical,
        _flat_index(vectors, int(manifest["dim"])),
        path=index_dir,
        terms=tokens,
    )


def _read_tokens(path: Path, count: int) -> list[list[str]] | None:
    """Stored BM25 tokens, or None for a generation without them (they are recomputed)."""
    if not path.exists():
        return None
    lines = path.read_text(encoding="utf-8").split("\n")[:-1]
    if len(lines) != count:
        raise ValueError(f"{path.name} has {len(lines)} lines for {count} passages")
    return [line.split(" ") if line else [] for line in lines]


def _json_line(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False) + "\n"


def _passage_dict(p: Passage) -> dict:
    """``asdict(p)`` without its deep copies (much faster for many passages)."""
    return {
        "text": p.text,
        "source": p.source,
        "start": p.start,
        "end": p.end,
        "heading": p.heading,
        "page": p.page,
        "sentences": [list(s) for s in p.sentences],
    }


def _document_dict(d: Document) -> dict:
    return {
        "source": d.source,
        "text": d.text,
        "title": d.title,
        "headings": [{"start": h.start, "end": h.end} for h in d.headings],
        "pages": [list(p) for p in d.pages],
    }


def _passage(d: dict) -> Passage:
    d["sentences"] = [tuple(s) for s in d.get("sentences", [])]
    return Passage(**d)


def _document(d: dict) -> Document:
    d["headings"] = [Span(**h) for h in d.get("headings", [])]
    d["pages"] = [tuple(p) for p in d.get("pages", [])]
    return Document(**d)


def manifest_stamp(index_dir: Path) -> tuple[int, int, int] | None:
    """A cheap change marker for the manifest (inode, mtime_ns, size), or None if absent.

    Every save replaces the manifest with a new file, so its inode changes even when two
    saves land within one mtime tick.
    """
    try:
        st = (index_dir / MANIFEST).stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)
