"""The index folder: passages, dense vectors (FAISS), BM25 and a manifest, written atomically.

Layout of ``index/``::

    manifest.json        what the index is (model, splitter, documents, versions) and which
                         generation folder holds the data; replaced atomically, last
    gen-000007/          passages.jsonl, documents.jsonl (indexed text), vectors.npy,
                         sentence_vectors.npy, faiss.index, bm25/
    .lock                serialises writers

A write builds a new generation folder, then swaps the manifest with ``os.replace``; a crash
at any point leaves the previous manifest and its generation loadable.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import faiss
import numpy as np

from .documents import DocumentError, find_files, load_document
from .embedder import Embedder
from .lexical import LexicalIndex, tokenize
from .splitter import split_document
from .types import Document, Passage, Span

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


class IndexError_(RuntimeError):
    """The index is missing or unusable; the message says how to fix it."""


IndexMissing = IndexError_


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

    def line(self) -> str:
        parts = []
        if self.added:
            parts.append(f"added {_n(len(self.added), 'document')}")
        if self.updated:
            parts.append(f"updated {_n(len(self.updated), 'document')}")
        if self.removed:
            parts.append(f"removed {_n(len(self.removed), 'document')}")
        head = ", ".join(parts) or "no changes"
        head += f", {_n(self.new_passages, 'new passage')} ({self.total_passages} in index)"
        tail = []
        if self.unchanged:
            tail.append(f"skipped {len(self.unchanged)} unchanged")
        if self.failed:
            tail.append(
                f"{len(self.failed)} failed: " + "; ".join(reason for _, reason in self.failed)
            )
        return "; ".join([head, *tail])


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


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
    lexical: LexicalIndex
    faiss_index: faiss.Index
    path: Path | None = None

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def doc_records(self) -> dict[str, DocRecord]:
        return {s: DocRecord(**r) for s, r in self.manifest.get("documents", {}).items()}

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


def _embed_passages(
    passages: list[Passage],
    docs: dict[str, Document],
    embedder: Embedder,
    batch_size: int,
    progress: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Passage vectors (with heading context) and per-passage sentence vectors."""
    texts = [match_text(p, docs[p.source].title) for p in passages]
    vectors = embedder.encode(texts, batch_size=batch_size, progress=progress)
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
    unique = embedder.encode(sent_texts, batch_size=batch_size, progress=progress)
    sent_vectors = unique[np.asarray(rows, dtype=np.int64)] if rows else unique
    return vectors, sent_vectors


def assemble(
    manifest: dict,
    passages: list[Passage],
    documents: dict[str, Document],
    vectors: np.ndarray,
    sentence_vectors: np.ndarray,
) -> Index:
    """Build the derived structures (BM25, FAISS, sentence offsets) from stored data."""
    counts = np.fromiter((len(p.sentences) for p in passages), dtype=np.int64, count=len(passages))
    sentence_start = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(counts) else counts
    lexical = LexicalIndex.build(
        [tokenize(match_text(p, documents[p.source].title)) for p in passages]
    )
    dim = int(manifest["dim"])
    fi = faiss.IndexFlatIP(dim)
    if len(vectors):
        fi.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return Index(
        manifest, passages, documents, vectors, sentence_vectors, sentence_start, lexical, fi
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
) -> tuple[Index, Summary]:
    """Return a new index: ``base`` plus the given files (new or changed), minus ``remove``.

    Only new or changed files (by content sha256) are split and embedded; unchanged ones keep
    their stored passages and vectors. With ``replace_all`` documents not in ``paths`` are
    dropped (a full build that still reuses unchanged work). Bad files are skipped and
    reported in the summary; they never abort the run.
    """
    source_of = source_of or default_source
    summary = Summary()
    manifest = new_manifest(embedder, splitter)
    old_records = base.doc_records if base is not None else {}
    keep: dict[str, DocRecord] = {} if replace_all else dict(old_records)
    for source in remove or []:
        if keep.pop(source, None) is not None:
            summary.removed.append(source)

    fresh: dict[str, tuple[Document, DocRecord]] = {}
    for path in find_files(paths):
        source = source_of(path)
        try:
            data = path.read_bytes() if path.is_file() else b""
            digest = sha256_bytes(data)
            old = old_records.get(source)
            if old is not None and old.sha256 == digest and source not in fresh:
                keep[source] = old
                summary.unchanged.append(source)
                continue
            doc = load_document(path, source, max_bytes=max_bytes)
        except (DocumentError, ValueError, OSError) as exc:
            log.warning("skipping %s: %s", path, exc)
            summary.failed.append((source, str(exc)))
            continue
        (summary.updated if source in old_records else summary.added).append(source)
        keep.pop(source, None)
        now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        fresh[source] = (
            doc,
            DocRecord(source, str(path), digest, 0, len(doc.text), len(data), now),
        )
    if replace_all:
        summary.removed.extend(s for s in old_records if s not in keep and s not in fresh)

    # Reuse stored passages/vectors of kept documents.
    passages: list[Passage] = []
    documents: dict[str, Document] = {}
    vec_parts: list[np.ndarray] = []
    sent_parts: list[np.ndarray] = []
    if base is not None and keep:
        rows = [i for i, p in enumerate(base.passages) if p.source in keep]
        passages = [base.passages[i] for i in rows]
        documents = {s: base.documents[s] for s in keep}
        idx = np.asarray(rows, dtype=np.int64)
        vec_parts.append(base.vectors[idx])
        sent_rows = [
            np.arange(
                base.sentence_start[i], base.sentence_start[i] + len(base.passages[i].sentences)
            )
            for i in rows
        ]
        sent_idx = np.concatenate(sent_rows) if sent_rows else np.zeros(0, dtype=np.int64)
        sent_parts.append(base.sentence_vectors[sent_idx])

    new_passages: list[Passage] = []
    for source, (doc, record) in fresh.items():
        parts = split_document(doc, **splitter)
        if not parts:
            summary.failed.append((source, f"{source}: no passages found; it holds no prose text"))
            (summary.updated if source in old_records else summary.added).remove(source)
            continue
        record.passages = len(parts)
        documents[source] = doc
        keep[source] = record
        new_passages.extend(parts)
    if new_passages:
        v, sv = _embed_passages(new_passages, documents, embedder, batch_size, progress)
        vec_parts.append(v)
        sent_parts.append(sv)
    passages.extend(new_passages)

    dim = embedder.dim
    vectors = np.concatenate(vec_parts) if vec_parts else np.zeros((0, dim), np.float32)
    sent_vectors = np.concatenate(sent_parts) if sent_parts else np.zeros((0, dim), np.float32)
    manifest["documents"] = {s: asdict(r) for s, r in sorted(keep.items())}
    manifest["passages"] = len(passages)
    summary.new_passages = len(new_passages)
    summary.total_passages = len(passages)
    return assemble(manifest, passages, documents, vectors, sent_vectors), summary


def default_source(path: Path) -> str:
    """A document's name in the index: its path relative to the project root if inside it."""
    from .config import PROJECT_ROOT

    p = path.resolve()
    try:
        return p.relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return p.as_posix()


# ---------------------------------------------------------------------------- storage


@contextlib.contextmanager
def write_lock(index_dir: Path, timeout: float = 600.0) -> Iterator[None]:
    """Serialise writers on ``index_dir/.lock`` (advisory; released if the process dies)."""
    import time

    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / ".lock", "a+") as fh:
        deadline = time.monotonic() + timeout
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
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(index: Index, index_dir: Path) -> Path:
    """Write ``index`` as a new generation, then swap the manifest atomically."""
    index_dir.mkdir(parents=True, exist_ok=True)
    gens = sorted(p.name for p in index_dir.glob("gen-*") if p.is_dir())
    number = int(gens[-1].split("-")[1]) + 1 if gens else 1
    name = f"gen-{number:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=index_dir))
    try:
        with open(tmp / "passages.jsonl", "w", encoding="utf-8") as fh:
            for p in index.passages:
                fh.write(json.dumps(asdict(p), ensure_ascii=False) + "\n")
        with open(tmp / "documents.jsonl", "w", encoding="utf-8") as fh:
            for d in index.documents.values():
                fh.write(json.dumps(asdict(d), ensure_ascii=False) + "\n")
        np.save(tmp / "vectors.npy", index.vectors)
        np.save(tmp / "sentence_vectors.npy", index.sentence_vectors)
        faiss.write_index(index.faiss_index, str(tmp / "faiss.index"))
        index.lexical.save(tmp / "bm25")
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        os.rename(tmp, index_dir / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    manifest = dict(
        index.manifest,
        generation=name,
        written_at=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    )
    tmp_manifest = index_dir / f".{MANIFEST}.tmp"
    with open(tmp_manifest, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, ensure_ascii=False, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp_manifest, index_dir / MANIFEST)
    _fsync_dir(index_dir)
    index.manifest = manifest
    index.path = index_dir
    _collect_garbage(index_dir, keep={name, *gens[-1:]})
    return index_dir / name


def _collect_garbage(index_dir: Path, keep: set[str]) -> None:
    """Drop old generations (keeping the previous one for readers mid-load) and stale temps."""
    for p in index_dir.iterdir():
        ours = p.name.startswith((".tmp-", "gen-"))
        if p.is_dir() and ours and p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)


def read_manifest(index_dir: Path) -> dict:
    path = index_dir / MANIFEST
    if not path.exists():
        raise IndexMissing(
            f"no index at {index_dir}; build it with `chatbot index build` (or `make run`)"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise IndexError_(
            f"index manifest {path} is unreadable ({exc}); rebuild with `chatbot index build`"
        ) from None


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
    """Load the current generation, checking it matches the configured model and splitter."""
    manifest = read_manifest(index_dir)
    check_compatible(manifest, model, splitter, index_dir)
    gen = index_dir / manifest["generation"]
    try:
        with open(gen / "passages.jsonl", encoding="utf-8") as fh:
            passages = [_passage(json.loads(line)) for line in fh]
        with open(gen / "documents.jsonl", encoding="utf-8") as fh:
            docs = [_document(json.loads(line)) for line in fh]
        vectors = np.load(gen / "vectors.npy")
        sentence_vectors = np.load(gen / "sentence_vectors.npy")
        fi = faiss.read_index(str(gen / "faiss.index"))
        lexical = LexicalIndex.load(gen / "bm25", len(passages))
    except (OSError, ValueError, RuntimeError) as exc:
        raise IndexError_(
            f"index at {index_dir} is damaged ({exc}); rebuild with `chatbot index build`"
        ) from None
    counts = np.fromiter((len(p.sentences) for p in passages), dtype=np.int64, count=len(passages))
    sentence_start = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(counts) else counts
    documents = {d.source: d for d in docs}
    return Index(
        manifest,
        passages,
        documents,
        vectors,
        sentence_vectors,
        sentence_start,
        lexical,
        fi,
        path=index_dir,
    )


def _passage(d: dict) -> Passage:
    d["sentences"] = [tuple(s) for s in d.get("sentences", [])]
    return Passage(**d)


def _document(d: dict) -> Document:
    d["headings"] = [Span(**h) for h in d.get("headings", [])]
    d["pages"] = [tuple(p) for p in d.get("pages", [])]
    return Document(**d)


def manifest_stamp(index_dir: Path) -> tuple[int, int] | None:
    """A cheap change marker for the manifest (mtime_ns, size), or None if absent."""
    try:
        st = (index_dir / MANIFEST).stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)
