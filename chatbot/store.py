"""The index folder on disk: manifest, generations, the writer lock, saving and loading.

Layout of ``index/``::

    manifest.json        what the index is (format, model, dimension, splitter settings,
                         documents with their sha256, package versions) and which
                         generation folder holds the data
    gen-000007/          passages.jsonl, documents.jsonl (indexed text), tokens.txt (BM25
                         terms of each passage, one line each), vectors.npy,
                         sentence_vectors.npy, token_vectors.npy + token_counts.npy
                         (contextual vectors of each passage's content tokens, float16),
                         vectors.faiss (the flat inner-product FAISS index over
                         vectors.npy, written by ``faiss.write_index``), bm25/
    .lock                serialises writers

Loading maps the large files instead of reading them: ``vectors.npy``,
``sentence_vectors.npy`` and ``token_vectors.npy`` with ``np.load(mmap_mode="r")``
(read-only memmaps) and ``vectors.faiss`` with ``faiss.read_index(IO_FLAG_MMAP_IFC)``
(the vectors it holds stay in the file; faiss's ``IO_FLAG_MMAP`` and
``IO_FLAG_READ_ONLY`` would read a flat index's vectors into memory). Start-up therefore
neither reads the vectors nor rebuilds the FAISS index; pages are read when searched.
Passages, documents and terms are still read whole (JSON Lines and text). A generation
that a write replaces stays mapped by the readers that loaded it: on Linux a deleted
file's pages stay readable while mapped, and the previous generation is kept anyway (4).

Crash safety, the rules every writer follows:

1. Writers hold :func:`write_lock` (``flock`` on ``.lock``, released by the kernel if the
   process dies); readers take no lock.
2. A write never changes what the current manifest names. It builds a new generation in a
   ``.tmp-*`` folder, fsyncs every file and the folder, renames it to the next free
   ``gen-NNNNNN``, and only then replaces ``manifest.json`` atomically
   (:func:`chatbot.files.atomic_write`: temp file, fsync, ``os.replace``, fsync of the
   folder). The manifest swap is the moment the new index exists.
3. So a crash (even ``kill -9``) or a failed write at any point leaves the previous
   manifest and the generation it names loadable. A failed write removes what it made;
   what a killed one leaves (``.tmp-*``, a manifest temp file, a generation newer than the
   one named) is removed by the next writer once it holds the lock (:func:`remove_leftovers`).
4. After a swap the previous generation is kept, for readers that read the old manifest a
   moment ago; older ones are deleted. A reader that finds its generation gone reads the
   manifest again (:func:`load`).
5. A write that fails for lack of permission or space raises :class:`IndexWriteError`
   naming the fix, with the index as it was.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from .files import atomic_write, fsync_dir, is_temp_of
from .index import RECORD_FIELDS, Index
from .lexical import LexicalIndex
from .types import Document, Passage, Span

log = logging.getLogger(__name__)

FORMAT_VERSION = 3  # 2: token vectors stored; 3: FAISS index stored (vectors.faiss)
MANIFEST = "manifest.json"
TERMS_FILE = "tokens.txt"  # BM25 terms: one line per passage, space-separated (name kept)
FAISS_FILE = "vectors.faiss"  # the flat inner-product index over vectors.npy


class IndexUnusable(RuntimeError):
    """The index is missing or cannot be used as it is; the message says how to fix it."""


class IndexMissing(IndexUnusable):
    """There is no index (no manifest) at the configured folder."""


class IndexWriteError(IndexUnusable, OSError):
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


# ---------------------------------------------------------------------------- manifest


def package_versions() -> dict[str, str]:
    out = {}
    for name in ("chatbot", "sentence-transformers", "faiss-cpu", "bm25s", "nltk", "torch"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def new_manifest(model: str, dim: int, splitter: dict) -> dict:
    """The manifest of an index with no documents yet (the builder fills in the rest)."""
    return {
        "format": FORMAT_VERSION,
        "model": model,
        "dim": dim,
        "splitter": splitter,
        "documents": {},
        "versions": package_versions(),
    }


def now() -> str:
    """The current UTC time as the manifest records it."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


_GENERATION_RE = re.compile(r"gen-[0-9]{1,12}")


def _gen_number(name: str) -> int:
    return int(name.split("-", 1)[1])


def _current_generation(index_dir: Path) -> str | None:
    """The generation the manifest names, or None if there is no usable manifest."""
    try:
        generation = json.loads((index_dir / MANIFEST).read_text(encoding="utf-8"))["generation"]
    except (OSError, ValueError, RecursionError, LookupError, TypeError):
        return None
    if isinstance(generation, str) and _GENERATION_RE.fullmatch(generation):
        return generation
    return None


def read_manifest(index_dir: Path) -> dict:
    """The manifest, checked for shape: IndexMissing if there is none, IndexUnusable
    (naming the fix) if it is unreadable or not what this version writes."""
    path = index_dir / MANIFEST
    if not path.exists():
        raise IndexMissing(
            f"no index at {index_dir}; build it with `chatbot index build` (or `make run`)"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise IndexUnusable(
            f"index manifest {path} is unreadable ({exc}); rebuild with `chatbot index build`"
        ) from None
    problem = manifest_problem(manifest)
    if problem:
        raise IndexUnusable(
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
        for name, kind in RECORD_FIELDS.items():
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
        raise IndexUnusable(
            f"index at {where} has format {manifest.get('format')}, this version reads "
            f"{FORMAT_VERSION}; {fix}"
        )
    if model is not None and manifest.get("model") != model:
        raise IndexUnusable(
            f"index at {where} was built with model {manifest.get('model')!r}, but {model!r} is "
            f"configured; {fix} (or pass --model {manifest.get('model')})"
        )
    if splitter is not None and manifest.get("splitter") != splitter:
        raise IndexUnusable(
            f"index at {where} was built with splitter settings {manifest.get('splitter')}, "
            f"but {splitter} are configured; {fix}"
        )


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


# ---------------------------------------------------------------------------- the lock


@contextlib.contextmanager
def write_lock(index_dir: Path, timeout: float) -> Iterator[None]:
    """Serialise writers on ``index_dir/.lock`` (advisory; released if the process dies),
    waiting at most ``timeout`` seconds for another writer (``Settings.lock_timeout``).

    Once the lock is held, leftovers of interrupted writes are removed (no other writer can
    be using them). Raises IndexWriteError if the folder cannot be written, IndexUnusable
    if another writer holds the lock for longer than ``timeout``.
    """
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
                    raise IndexUnusable(
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
        elif is_temp_of(MANIFEST, p.name):
            with contextlib.suppress(OSError):
                p.unlink()


# ---------------------------------------------------------------------------- saving


def save(index: Index, index_dir: Path) -> Path:
    """Write ``index`` as a new generation, then swap the manifest atomically.

    Callers hold :func:`write_lock`. See the module docstring for what a crash or a failed
    write leaves (the previous index, loadable); a failed write raises IndexWriteError.
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
    terms = index.terms
    if terms is None:
        from .build import passage_terms  # chatbot.build imports this module

        terms = passage_terms(index.passages, index.documents)
    _write_generation(index, terms, index_dir, name)
    manifest = dict(index.manifest, generation=name, written_at=now())
    try:
        atomic_write(index_dir / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1))
    except BaseException:
        # Unless the swap happened (and only the folder's fsync failed), the manifest
        # still names the previous generation: drop the one it never named.
        if _current_generation(index_dir) != name:
            shutil.rmtree(index_dir / name, ignore_errors=True)
        raise
    index.manifest = manifest
    index.path = index_dir
    index.terms = terms
    # Keep the previous generation for readers that read the old manifest a moment ago.
    _collect_garbage(index_dir, keep={name, previous or ""})
    return index_dir / name


def _write_generation(index: Index, terms: list[list[str]], index_dir: Path, name: str) -> None:
    """Write the data files into ``.tmp-*``, fsync them, and rename it to ``name``."""
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=index_dir))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; readers may run as another user
        with open(tmp / "passages.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(_json_line(_passage_dict(p)) for p in index.passages)
        with open(tmp / "documents.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(_json_line(_document_dict(d)) for d in index.documents.values())
        with open(tmp / TERMS_FILE, "w", encoding="utf-8") as fh:
            fh.write("".join(" ".join(t) + "\n" for t in terms))
        np.save(tmp / "vectors.npy", index.vectors)
        np.save(tmp / "sentence_vectors.npy", index.sentence_vectors)
        np.save(tmp / "token_vectors.npy", np.asarray(index.token_vectors, dtype=np.float16))
        np.save(tmp / "token_counts.npy", np.asarray(index.token_counts, dtype=np.int64))
        faiss.write_index(index.faiss_index, str(tmp / FAISS_FILE))
        index.lexical.save(tmp / "bm25")
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        fsync_dir(tmp)
        os.rename(tmp, index_dir / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _collect_garbage(index_dir: Path, keep: set[str]) -> None:
    """Drop old generations and leftovers of interrupted writes (callers hold the lock)."""
    for p in index_dir.iterdir():
        ours = p.name.startswith((".tmp-", "gen-"))
        if p.is_dir() and ours and p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)


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


# ---------------------------------------------------------------------------- loading


def load(index_dir: Path, model: str | None = None, splitter: dict | None = None) -> Index:
    """Load the current generation, checking it matches the configured model and splitter.

    If a writer replaces the generation while it is being read, the new one is read instead.
    """
    for attempt in range(3):
        manifest = read_manifest(index_dir)
        check_compatible(manifest, model, splitter, index_dir)
        try:
            return _load_generation(index_dir, manifest)
        except IndexUnusable:
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
        terms = _read_terms(gen / TERMS_FILE, len(passages))
        # Memory-mapped, read-only: pages are read when used. Token vectors are read in
        # full when first matched (``Index.token_matrix``).
        vectors = np.load(gen / "vectors.npy", mmap_mode="r")
        sentence_vectors = np.load(gen / "sentence_vectors.npy", mmap_mode="r")
        token_vectors = np.load(gen / "token_vectors.npy", mmap_mode="r")
        token_counts = np.load(gen / "token_counts.npy")
        lexical = LexicalIndex.load(gen / "bm25", len(passages))
        if vectors.shape != (len(passages), int(manifest["dim"])):
            raise ValueError(f"vectors.npy has shape {vectors.shape}")
        if len(token_counts) != len(passages) or int(token_counts.sum()) != len(token_vectors):
            raise ValueError("token_vectors.npy does not match token_counts.npy")
        # The stored flat index, mapped (IO_FLAG_MMAP_IFC: its vectors stay in the file).
        faiss_index = faiss.read_index(str(gen / FAISS_FILE), faiss.IO_FLAG_MMAP_IFC)
        return Index(  # checks that the FAISS index matches the vectors
            manifest=manifest,
            passages=passages,
            documents={d.source: d for d in docs},
            vectors=vectors,
            sentence_vectors=sentence_vectors,
            token_vectors=token_vectors,
            token_counts=token_counts,
            lexical=lexical,
            terms=terms,
            path=index_dir,
            faiss_index=faiss_index,
        )
    except (OSError, ValueError, RuntimeError, LookupError, TypeError, AttributeError) as exc:
        raise IndexUnusable(
            f"index at {index_dir} is damaged ({type(exc).__name__}: {exc}); "
            "rebuild with `chatbot index build`"
        ) from None


def _read_terms(path: Path, count: int) -> list[list[str]] | None:
    """Stored BM25 terms, or None for a generation without them (they are recomputed)."""
    if not path.exists():
        return None
    lines = path.read_text(encoding="utf-8").split("\n")[:-1]
    if len(lines) != count:
        raise ValueError(f"{path.name} has {len(lines)} lines for {count} passages")
    return [line.split(" ") if line else [] for line in lines]


def _passage(d: dict) -> Passage:
    d["sentences"] = [tuple(s) for s in d.get("sentences", [])]
    return Passage(**d)


def _document(d: dict) -> Document:
    d["headings"] = [Span(**h) for h in d.get("headings", [])]
    d["pages"] = [tuple(p) for p in d.get("pages", [])]
    return Document(**d)
