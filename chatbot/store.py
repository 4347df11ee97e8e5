"""The index folder on disk: manifest, segments, the writer lock, committing and loading.

Layout of ``index/``::

    manifest.json     what the index is (format, model, dimension, splitter settings, token
                      codec, package versions), its commit number (``generation``), and the
                      live segments, each with its documents marked deleted (tombstones)
    seg-000003/       an immutable segment: the documents one write added, with their
                      passages, vectors, token codes, BM25 postings and FAISS index
                      (:mod:`chatbot.segment` lists its files)
    .lock             serialises writers

Append-only, as Lucene and tantivy are: ``index add`` writes one new segment holding only
the new documents; ``remove`` and ``update`` mark the old version deleted in the manifest
(a document number in the segment's ``deleted`` list); nothing already written is copied.
A merge policy keeps the number of segments logarithmic: when ``MERGE_FACTOR`` segments
have live sizes of the same order of magnitude (or a segment is mostly deleted), they are
merged into one, copying their live rows as stored (nothing is embedded again);
``chatbot index optimize`` merges everything into one segment. The index a reader sees
does not depend on the segmentation: :class:`chatbot.index.Index` numbers passages in
canonical order and computes BM25 statistics over live passages only.

Loading reads the manifest and each segment's documents table and maps everything else
(``np.load(mmap_mode="r")``, ``faiss.read_index(IO_FLAG_MMAP_IFC)``): pages are read when
a question needs them, so several processes serving one index share them. A reader
notices a new manifest by its stamp (:func:`manifest_stamp`) between questions.

Crash safety, the rules every writer follows:

1. Writers hold :func:`write_lock` (``flock`` on ``.lock``, released by the kernel if the
   process dies); readers take no lock.
2. A write never changes a file the current manifest names. New segments are written in
   ``.tmp-*`` folders, fsynced, and renamed to the next free ``seg-NNNNNN``; only then is
   ``manifest.json`` replaced atomically (:func:`chatbot.files.atomic_write`: temp file,
   fsync, ``os.replace``, fsync of the folder). The swap is the moment the change exists.
3. So a crash (even ``kill -9``) or a failed write at any point leaves the previous
   manifest and the segments it names loadable. A failed write removes what it made; what
   a killed one leaves (``.tmp-*``, a manifest temp file, a segment no manifest names) is
   removed by the next writer once it holds the lock (:func:`remove_leftovers`).
4. Segments that a commit stops naming (merged or wholly deleted) are kept until the next
   commit (listed as ``retired``), for readers that read the old manifest a moment ago; a
   reader that finds a segment gone reads the manifest again (:func:`load`).
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
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from . import segment as seg
from .files import atomic_write, fsync_dir, is_temp_of
from .index import RECORD_FIELDS, Index, sentences_data

log = logging.getLogger(__name__)

FORMAT_VERSION = 4  # 2: token vectors; 3: FAISS index stored; 4: segments
MANIFEST = "manifest.json"
MERGE_FACTOR = 10  # this many segments of one size tier (a power of 10) are merged


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


def new_manifest(
    model: str, dim: int, splitter: dict, tokens: dict | None = None, backend: str = "torch"
) -> dict:
    """The manifest of an index with no documents yet."""
    return {
        "format": FORMAT_VERSION,
        "model": model,
        "dim": dim,
        "splitter": splitter,
        "backend": backend,
        "tokens": tokens or {"kind": "float16"},
        "generation": "gen-000000",
        "segments": [],
        "retired": [],
        "passages": 0,
        "document_count": 0,
        "versions": package_versions(),
    }


def now() -> str:
    """The current UTC time as the manifest records it."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


_GENERATION_RE = re.compile(r"gen-[0-9]{1,12}")
_SEGMENT_RE = re.compile(r"seg-[0-9]{6,12}")
_CODEBOOK_RE = re.compile(r"tokens-[0-9a-f]{16}\.npy")
_SENTENCES_RE = re.compile(r"sentences-[0-9a-f]{16}\.json")


def sentences_file(digest: str) -> str:
    """The file name of a sentence splitter's parameters (named by their sha256)."""
    return f"sentences-{digest[:16]}.json"


def _number(name: str) -> int:
    return int(name.split("-", 1)[1])


def _named_segments(index_dir: Path) -> set[str] | None:
    """The files and folders the manifest names (live and retired segments, the token
    codebook), or None without a usable manifest."""
    manifest = _read_raw_manifest(index_dir)
    if manifest is None:
        return None
    named = {e["name"] for e in manifest["segments"]} | set(manifest.get("retired", []))
    named |= {(manifest.get("sentences") or {}).get("file", "")}
    return named | {manifest["tokens"].get("file", "")}


def read_manifest(index_dir: Path, any_format: bool = False) -> dict:
    """The manifest, checked for shape: IndexMissing if there is none, IndexUnusable
    (naming the fix) if it is unreadable or not what this version writes (another format
    too, unless ``any_format``: then only its shape is checked)."""
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
    if not any_format and isinstance(manifest, dict) and manifest.get("format") != FORMAT_VERSION:
        raise IndexUnusable(
            f"index at {index_dir} has format {manifest.get('format')}, this version reads "
            f"{FORMAT_VERSION}; rebuild it with `chatbot index build --index {index_dir}`"
        )
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
    tokens = manifest.get("tokens")
    if not isinstance(tokens, dict):
        return f"tokens is a JSON {_json_kind(tokens)}, not an object"
    segments = manifest.get("segments")
    if not isinstance(segments, list):
        return f"segments is a JSON {_json_kind(segments)}, not an array"
    for entry in segments:
        problem = _segment_problem(entry)
        if problem:
            return problem
    if len({e["name"] for e in segments}) != len(segments):
        return "a segment is listed twice"
    retired = manifest.get("retired", [])
    if not isinstance(retired, list) or not all(
        isinstance(r, str) and _SEGMENT_RE.fullmatch(r) for r in retired
    ):
        return f"retired {retired!r} is not a list of segment names"
    return None


def _segment_problem(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return f"a segment is a JSON {_json_kind(entry)}, not an object"
    name = entry.get("name")
    if not isinstance(name, str) or not _SEGMENT_RE.fullmatch(name):
        return f"segment {name!r} is not a segment folder name like 'seg-000001'"
    for key in ("passages", "documents"):
        if not _is_int(entry.get(key)) or entry[key] < 0:
            return f"segment {name} has {key} {entry.get(key)!r}"
    deleted = entry.get("deleted", [])
    if not isinstance(deleted, list) or not all(
        _is_int(d) and 0 <= d < entry["documents"] for d in deleted
    ):
        return f"segment {name} has deleted {deleted!r}"
    if not isinstance(entry.get("search", {}), dict):
        return f"segment {name} has search {entry.get('search')!r}"
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_kind(value: Any) -> str:
    kinds = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return kinds.get(type(value), "number")


def check_compatible(
    manifest: dict,
    model: str | None,
    splitter: dict | None,
    where: Path,
    backend: str | None = None,
) -> None:
    """Refuse an index built with another model, splitter setting, backend or format."""
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
    if backend is not None and manifest.get("backend", "torch") != backend:
        raise IndexUnusable(
            f"index at {where} was embedded with the {manifest.get('backend')!r} backend, but "
            f"{backend!r} is configured; {fix} (or set CHATBOT_BACKEND={manifest.get('backend')})"
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
    manifest, segments no manifest names, and the folders of older formats. Only with a
    usable manifest (callers hold the lock): without one nothing is known to be garbage."""
    named = _named_segments(index_dir)
    try:
        entries = list(index_dir.iterdir())
    except OSError:
        return
    for p in entries:
        if is_temp_of(MANIFEST, p.name):
            with contextlib.suppress(OSError):
                p.unlink()
            continue
        ours = (
            _SEGMENT_RE.fullmatch(p.name)
            or _GENERATION_RE.fullmatch(p.name)
            or _CODEBOOK_RE.fullmatch(p.name)
            or _SENTENCES_RE.fullmatch(p.name)
        )
        garbage = p.name.startswith(".tmp-") or (named is not None and ours and p.name not in named)
        if garbage and p.is_file() and not p.is_symlink():
            with contextlib.suppress(OSError):
                p.unlink()
        elif garbage and p.is_dir() and not p.is_symlink():
            log.info("removing %s, left by an interrupted write or an older format", p)
            shutil.rmtree(p, ignore_errors=True)


# ---------------------------------------------------------------------------- committing


@dataclass
class Change:
    """What a write does to an index: the documents it adds (one new segment), and the
    indexed documents it drops (removed, or replaced by their new version).

    ``fresh``: start a new index, dropping every existing segment (a first build, or a
    build replacing an index made with other settings). ``manifest`` holds the settings
    (model, dim, splitter, backend, token codec) of the index written.
    """

    manifest: dict
    new: seg.SegmentArrays | None = None
    dropped: list[str] = field(default_factory=list)
    fresh: bool = False
    codec: Any = None  # a new index's token codec, whose codebook file the commit writes
    sentences: Any = None  # a new index's sentence splitter, whose file the commit writes


def commit(index_dir: Path, change: Change, base: Index | None) -> dict:
    """Apply ``change`` to the index whose loaded state is ``base``: write the new segment,
    mark dropped documents deleted, merge by the merge policy, and swap the manifest.
    Returns the new manifest. Callers hold :func:`write_lock`. A failed write raises
    IndexWriteError and leaves the index as it was (see the module docstring).
    """
    try:
        return _commit(index_dir, change, base)
    except OSError as exc:
        if isinstance(exc, IndexWriteError):
            raise
        raise write_error(index_dir, exc) from exc


def _commit(index_dir: Path, change: Change, base: Index | None) -> dict:
    index_dir.mkdir(parents=True, exist_ok=True)
    old = base.manifest if base is not None and not change.fresh else None
    segments = [
        dict(e, deleted=list(e.get("deleted", []))) for e in (old or {}).get("segments", [])
    ]
    by_name = {e["name"]: e for e in segments}
    for source in change.dropped:
        assert base is not None
        s, d = base._where[source]
        entry = by_name[base.segments[s].name]
        if d not in entry["deleted"]:
            entry["deleted"] = sorted([*entry["deleted"], d])
            entry["deleted_passages"] = (
                entry.get("deleted_passages", 0) + base.segments[s].docs[d]["count"]
            )
    made: list[str] = []
    try:
        _write_codebook(index_dir, change)
        _write_sentences(index_dir, change)
        if change.new is not None and change.new.size:
            entry = _write_segment(index_dir, change.new, change.manifest["dim"])
            made.append(entry["name"])
            segments.append(entry)
        segments = [e for e in segments if len(e["deleted"]) < e["documents"]]
        segments = _merge_by_policy(index_dir, segments, change.manifest["dim"], made)
        manifest = _next_manifest(index_dir, change.manifest, old, segments)
        atomic_write(index_dir / MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1))
    except BaseException:
        # Unless the swap happened (and only the folder's fsync failed), the manifest does
        # not name what this write made: drop it.
        named = _named_segments(index_dir) or set()
        for name in made:
            if name not in named:
                shutil.rmtree(index_dir / name, ignore_errors=True)
        raise
    remove_leftovers(index_dir)  # what the previous commit retired, older formats
    return manifest


def _write_codebook(index_dir: Path, change: Change) -> None:
    """Write the token codebook the manifest names, if it is not there yet (atomically:
    its name is its hash, so an existing file is the same codebook)."""
    name = change.manifest.get("tokens", {}).get("file")
    if not name or change.codec is None or (index_dir / name).exists():
        return
    if not _CODEBOOK_RE.fullmatch(name):
        raise IndexUnusable(f"token codebook name {name!r} is not one this version writes")
    centroids = change.codec.centroids.astype("<f4")
    atomic_write(index_dir / name, lambda fh: np.save(fh, centroids), mode=0o644)


def _write_sentences(index_dir: Path, change: Change) -> None:
    """Write the sentence splitter's parameters the manifest names, if not there yet (its
    name is its hash, so an existing file holds the same parameters)."""
    name = (change.manifest.get("sentences") or {}).get("file")
    if not name or change.sentences is None or (index_dir / name).exists():
        return
    if not _SENTENCES_RE.fullmatch(name):
        raise IndexUnusable(f"sentence splitter file name {name!r} is not one this version writes")
    atomic_write(index_dir / name, change.sentences.to_json(), mode=0o644)


def _next_manifest(index_dir: Path, settings: dict, old: dict | None, segments: list) -> dict:
    previous = _read_raw_manifest(index_dir)
    number = _number(previous["generation"]) + 1 if previous else 1
    live = {e["name"] for e in segments}
    # Segments the previous manifest named but this one does not: kept for one commit.
    before = [e["name"] for e in previous.get("segments", [])] if previous else []
    manifest = dict(settings)
    manifest.update(
        format=FORMAT_VERSION,
        generation=f"gen-{number:06d}",
        segments=segments,
        retired=[n for n in before if n not in live],
        passages=sum(e["passages"] - e.get("deleted_passages", 0) for e in segments),
        document_count=sum(e["documents"] - len(e["deleted"]) for e in segments),
        versions=package_versions(),
        written_at=now(),
    )
    return manifest


def _read_raw_manifest(index_dir: Path) -> dict | None:
    """The current manifest if it is one this version wrote, else None."""
    try:
        manifest = json.loads((index_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if manifest_problem(manifest) is not None or manifest.get("format") != FORMAT_VERSION:
        return None
    return manifest


def _write_segment(index_dir: Path, arrays: seg.SegmentArrays, dim: int) -> dict:
    """Write ``arrays`` as the next free ``seg-NNNNNN`` (via ``.tmp-*``); its manifest entry."""
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=index_dir))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; readers may run as another user
        fields = seg.write(arrays, tmp, dim)
        fsync_dir(tmp)
        numbers = [_number(p.name) for p in index_dir.iterdir() if _SEGMENT_RE.fullmatch(p.name)]
        name = f"seg-{max(numbers, default=0) + 1:06d}"
        os.rename(tmp, index_dir / name)
        fsync_dir(index_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"name": name, **fields, "deleted": [], "deleted_passages": 0}


def _live(entry: dict) -> int:
    return entry["passages"] - entry.get("deleted_passages", 0)


def _tier(entry: dict) -> int:
    return int(math.log10(max(_live(entry), 1)))


def _merge_by_policy(index_dir: Path, segments: list, dim: int, made: list[str]) -> list:
    """Merge while the policy asks: ``MERGE_FACTOR`` segments of one size tier (live
    passages, by powers of ten) become one; a segment with more deleted than live passages
    is rewritten without them. Each passage is so copied about once per tier it climbs."""
    while True:
        tiers: dict[int, list[dict]] = {}
        for e in segments:
            tiers.setdefault(_tier(e), []).append(e)
        group = next((g for _, g in sorted(tiers.items()) if len(g) >= MERGE_FACTOR), None)
        if group is None:
            group = next(([e] for e in segments if e.get("deleted_passages", 0) > _live(e)), None)
        if group is None:
            return segments
        merged = merge_segments(index_dir, group, dim)
        made.append(merged["name"])
        names = {e["name"] for e in group}
        at = min(i for i, e in enumerate(segments) if e["name"] in names)
        segments = [e for e in segments if e["name"] not in names]
        segments.insert(at, merged)


def merge_segments(index_dir: Path, group: list[dict], dim: int) -> dict:
    """Write one new segment holding the live documents of the ``group`` segments."""
    parts = []
    for e in group:
        opened = seg.Segment(index_dir / e["name"], e.get("search"))
        dead = set(e.get("deleted", []))
        parts.append((opened, [d for d in range(len(opened.docs)) if d not in dead]))
    log.info("merging %d segments (%d passages)", len(group), sum(_live(e) for e in group))
    return _write_segment(index_dir, seg.merge(parts), dim)


def optimize(index_dir: Path) -> dict:
    """Merge every segment into one (dropping deleted rows); returns the new manifest.
    Callers hold :func:`write_lock`."""
    manifest = read_manifest(index_dir)
    segments = manifest["segments"]
    if len(segments) <= 1 and not any(e.get("deleted") for e in segments):
        return manifest
    made: list[str] = []
    try:
        merged = merge_segments(index_dir, segments, manifest["dim"])
        made.append(merged["name"])
        settings = {k: v for k, v in manifest.items() if k not in ("segments", "retired")}
        new = _next_manifest(index_dir, settings, manifest, [merged])
        atomic_write(index_dir / MANIFEST, json.dumps(new, ensure_ascii=False, indent=1))
    except OSError as exc:
        for name in made:
            shutil.rmtree(index_dir / name, ignore_errors=True)
        raise write_error(index_dir, exc) from exc
    remove_leftovers(index_dir)
    return new


# ---------------------------------------------------------------------------- loading


def load(
    index_dir: Path,
    model: str | None = None,
    splitter: dict | None = None,
    backend: str | None = None,
) -> Index:
    """Load the index, checking it matches the configured model, splitter and backend.

    If a writer replaces a segment while it is being opened, the new manifest is read.
    """
    for attempt in range(3):
        manifest = read_manifest(index_dir)
        check_compatible(manifest, model, splitter, index_dir, backend)
        try:
            return _open(index_dir, manifest)
        except IndexUnusable:
            if attempt == 2 or manifest_stamp(index_dir) is None:
                raise
            if json.loads((index_dir / MANIFEST).read_text("utf-8")) == manifest:
                raise
            log.info("index at %s changed while loading; loading the new one", index_dir)
    raise AssertionError("unreachable")


def _open(index_dir: Path, manifest: dict) -> Index:
    try:
        segments = [
            seg.Segment(index_dir / e["name"], e.get("search")) for e in manifest["segments"]
        ]
        sentences_data(manifest, index_dir)  # the splitter's file is there and intact
        for s, e in zip(segments, manifest["segments"], strict=True):
            if s.size != e["passages"] or len(s.docs) != e["documents"]:
                raise ValueError(f"{s.name} does not hold what the manifest says")
            for doc in s.docs:
                _check_record(doc)
        return Index(manifest, segments, index_dir)
    except (OSError, ValueError, RuntimeError, LookupError, TypeError, AttributeError) as exc:
        raise IndexUnusable(
            f"index at {index_dir} is damaged ({type(exc).__name__}: {exc}); "
            "rebuild with `chatbot index build`"
        ) from None


def read_records(index_dir: Path, manifest: dict | None = None) -> dict[str, dict]:
    """The live documents' records (source, path, sha256, passages, ...) by name, read from
    the segments' document tables without opening the rest of the index; ``"recognised"``
    says what :mod:`chatbot.structure` found in each (front matter, captions, references)."""
    manifest = manifest or read_manifest(index_dir)
    out: dict[str, dict] = {}
    try:
        for e in manifest["segments"]:
            dead = set(e.get("deleted", []))
            with open(index_dir / e["name"] / "documents.jsonl", encoding="utf-8") as fh:
                for d, line in enumerate(fh):
                    if d not in dead:
                        doc = json.loads(line)
                        out[doc["source"]] = {k: doc[k] for k in RECORD_FIELDS}
                        out[doc["source"]]["recognised"] = doc.get("recognised", "")
    except (OSError, ValueError, LookupError, TypeError) as exc:
        raise IndexUnusable(
            f"index at {index_dir} is damaged ({type(exc).__name__}: {exc}); "
            "rebuild with `chatbot index build`"
        ) from None
    return dict(sorted(out.items()))


def _check_record(doc: Any) -> None:
    if not isinstance(doc, dict):
        raise ValueError(f"a document is a JSON {_json_kind(doc)}, not an object")
    for name, kind in RECORD_FIELDS.items():
        value = doc.get(name)
        ok = _is_int(value) and value >= 0 if kind == "int" else isinstance(value, str)
        if not ok:
            raise ValueError(f"document {doc.get('source')!r} has {name} {value!r}")
