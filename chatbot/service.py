"""High-level operations shared by the CLI and the chat app: open, build and update the index."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import shutil
import threading
import unicodedata
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from . import store
from .backends import BACKENDS
from .build import MapFn, default_source, index_files, sha256_bytes
from .config import PROJECT_ROOT, Settings
from .documents import SUPPORTED_SUFFIXES, collect_files
from .embedder import Embedder, LazyEmbedder, get_embedder
from .files import atomic_write
from .index import Index, Summary
from .retrieval import Retriever

log = logging.getLogger(__name__)


def open_retriever(settings: Settings) -> Retriever:
    """Load the index (refusing a model/splitter mismatch) and the embedder, once."""
    index = store.load(settings.index_dir, settings.model, settings.splitter_settings())
    return Retriever(
        index,
        get_embedder(settings.model, index_backend(index.manifest, settings)),
        threshold=settings.threshold,
        possible_threshold=settings.possible_threshold,
        max_word_chars=settings.max_word_chars,
    )


def index_backend(manifest: dict, settings: Settings) -> str:
    """The backend that runs the model for an existing index: the one it was embedded with
    (its manifest's), so questions and additions use the same numerics as its vectors;
    ``settings.backend`` only chooses for a new index."""
    backend = manifest.get("backend")
    return backend if backend in BACKENDS else settings.backend


def load_base(settings: Settings, replace: bool = False) -> Index | None:
    """The current index to build on, or None if there is none yet.

    An index built with another model or splitter, or a damaged one, is only replaced by a
    full build (``replace``); adding to it raises IndexUnusable, so it is never lost by accident.
    """
    try:
        return store.load(settings.index_dir, settings.model, settings.splitter_settings())
    except store.IndexMissing:
        return None
    except store.IndexUnusable as exc:
        if not replace:
            raise store.IndexUnusable(f"cannot add to the existing index: {exc}") from None
        log.warning("replacing the existing index: %s", exc)
        return None


def _records(index: Index) -> dict[str, dict]:
    return {s: asdict(r) for s, r in index.doc_records.items()}


def source_path(source: str, record: dict) -> Path:
    """Where an indexed document's file is now.

    A source named relative to the project root is looked up there (so an index moved
    along with its project keeps working); otherwise the absolute path recorded at indexing.
    """
    if not Path(source).is_absolute():
        return PROJECT_ROOT / source
    return Path(record["path"])


def stale_sources(settings: Settings, records: dict[str, dict]) -> list[str]:
    """Indexed documents whose file changed or disappeared since indexing."""
    out = []
    for source, rec in records.items():
        path = source_path(source, rec)
        try:
            if sha256_bytes(path.read_bytes()) != rec["sha256"]:
                out.append(source)
        except OSError:
            out.append(source)
    return out


def resolve_names(records: dict[str, dict], names: list[str]) -> list[str]:
    """Indexed sources named by ``names``: an indexed name, a file path, or a folder path.

    Raises ValueError naming the first argument that matches nothing.
    """
    wanted: list[str] = []
    for name in names:
        p = Path(name)
        source = default_source(p)
        resolved = str(p.expanduser().resolve())
        prefix = source.rstrip("/") + "/"
        hits = [
            s
            for s, rec in records.items()
            if s in (name, source) or rec.get("path") == resolved or s.startswith(prefix)
        ]
        if not hits:
            raise ValueError(
                f"{name} is not in the index; see `chatbot index list` for indexed names"
            )
        wanted.extend(h for h in hits if h not in wanted)
    return wanted


def remove(settings: Settings, names: list[str]) -> Summary:
    """Remove documents given by indexed name or by path (files or folders)."""
    with store.write_lock(settings.index_dir, settings.lock_timeout):
        base = store.load(settings.index_dir, settings.model, settings.splitter_settings())
        wanted = resolve_names(_records(base), names)
        change, summary = index_files(
            [],
            LazyEmbedder(settings.model, base.dim, index_backend(base.manifest, settings)),
            settings.splitter_settings(),
            base=base,
            remove=wanted,
        )
        store.commit(settings.index_dir, change, base)
        return summary


def update(settings: Settings, progress: bool = False) -> Summary:
    """Re-scan indexed sources: changed files are re-indexed, deleted ones removed.

    Only the files that were indexed are re-read: a name that now leads elsewhere through
    a symbolic link (``docs/a.txt`` replaced by a link to ``/etc/passwd``) is not followed;
    it is reported as failed and keeps its indexed version.
    """
    with store.write_lock(settings.index_dir, settings.lock_timeout):
        base = store.load(settings.index_dir, settings.model, settings.splitter_settings())
        records = _records(base)
        paths = {s: source_path(s, r) for s, r in records.items()}
        gone = [s for s, p in paths.items() if not p.is_file()]
        present: list[Path] = []
        moved: list[tuple[str, str]] = []
        for source, path in paths.items():
            if source in gone:
                continue
            target = default_source(path)
            if target == source:
                present.append(path)
            else:
                moved.append((source, _moved_reason(source, target)))
        return _build_locked(settings, base, present, remove=gone, failed=moved, progress=progress)


def optimize(settings: Settings) -> str:
    """Merge the index's segments into one (``chatbot index optimize``); a one-line report."""
    with store.write_lock(settings.index_dir, settings.lock_timeout):
        before = store.read_manifest(settings.index_dir)
        after = store.optimize(settings.index_dir)
    return (
        f"{len(before['segments'])} segments merged into {len(after['segments'])} "
        f"({after['passages']} passages)"
    )


def _moved_reason(source: str, target: str) -> str:
    return (
        f"{source}: now a link to {target}, not followed; put the file itself back, or "
        f"remove it with `chatbot index remove {source}`"
    )


def stale(settings: Settings, paths: list[Path]) -> list[str]:
    """Sources under ``paths`` that are new, changed, missing or gone relative to the manifest."""
    try:
        manifest = store.read_manifest(settings.index_dir)
        store.check_compatible(
            manifest, settings.model, settings.splitter_settings(), settings.index_dir
        )
    except store.IndexUnusable:
        return ["(index missing or incompatible)"]
    records = store.read_records(settings.index_dir, manifest)
    seen: set[str] = set()
    files, missing = collect_files(paths, allow_outside_links=settings.allow_outside_links)
    out: list[str] = [str(p) for p, _ in missing]
    for path in files:
        source = default_source(path)
        seen.add(source)
        rec = records.get(source)
        try:
            changed = rec is None or rec["sha256"] != sha256_bytes(path.read_bytes())
        except OSError:
            changed = True
        if changed:
            out.append(source)
    out.extend(s for s in records if s not in seen)
    return out


def build(
    settings: Settings,
    paths: list[Path] | None = None,
    *,
    remove: list[str] | None = None,
    replace_all: bool = False,
    progress: bool = False,
) -> Summary:
    """Index ``paths`` (files/folders) into the configured index, incrementally and atomically.

    With ``replace_all`` the index ends up holding exactly ``paths`` (a build); otherwise the
    files are added to or updated in the index. Nothing is written when nothing changed.
    Writers are serialised by the index lock (which also clears leftovers of interrupted
    writes); readers keep the previous index until the new manifest is in place. A link
    inside a folder that leads out of it is refused unless ``settings.allow_outside_links``.
    """
    paths = [settings.corpus_dir] if paths is None else paths
    with store.write_lock(settings.index_dir, settings.lock_timeout):
        base = load_base(settings, replace=replace_all)
        if base is not None and not remove and replace_all and not stale(settings, paths):
            return Summary(
                unchanged=list(base.documents),
                total_passages=base.size,
                total_documents=len(base.documents),
            )
        return _build_locked(
            settings, base, paths, remove=remove, replace_all=replace_all, progress=progress
        )


def _build_locked(
    settings: Settings,
    base: Index | None,
    paths: list[Path],
    *,
    remove: list[str] | None = None,
    replace_all: bool = False,
    failed: list[tuple[str, str]] | None = None,
    progress: bool = False,
) -> Summary:
    """Index ``paths`` on top of ``base`` and save if anything changed (lock held).

    ``failed`` are problems found by the caller, reported with the others.
    """
    dim = base.dim if base is not None else None
    backend = index_backend(base.manifest, settings) if base is not None else settings.backend
    with _build_tools(settings, backend, dim) as (embedder, map_fn):
        change, summary = index_files(
            paths,
            embedder,
            settings.splitter_settings(),
            base=base,
            remove=remove,
            replace_all=replace_all,
            max_bytes=int(settings.max_file_mb * 1e6),
            batch_size=settings.batch_size,
            progress=progress,
            allow_outside_links=settings.allow_outside_links,
            map_fn=map_fn,
        )
    summary.failed.extend(failed or [])
    changed = summary.added or summary.updated or summary.removed
    if changed or (base is None and (replace_all or summary.total_documents)):
        store.commit(settings.index_dir, change, base)
    return summary


@contextlib.contextmanager
def _build_tools(
    settings: Settings, backend: str, dim: int | None
) -> Iterator[tuple[Embedder, MapFn | None]]:
    """The embedder and per-file ``map_fn`` a build uses: this process's (the model loaded
    only if something is embedded), or with ``settings.ray_address`` the Ray cluster's
    (:func:`chatbot.distributed.build_tools`)."""
    if not settings.ray_address:
        yield LazyEmbedder(settings.model, dim, backend), None
        return
    from .distributed import build_tools

    with build_tools(settings, backend, dim) as tools:
        yield tools


class LiveRetriever:
    """A retriever that reloads when the index manifest changes (checked between questions).

    Writers swap the manifest only after the new generation is complete, so a reload never
    sees a half-written index; if a reload fails anyway, the last good index keeps serving.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._stamp = store.manifest_stamp(settings.index_dir)
        self._retriever = open_retriever(settings)

    def get(self) -> Retriever:
        """The retriever for the current index (reloaded first if the manifest changed)."""
        stamp = store.manifest_stamp(self.settings.index_dir)
        if stamp is not None and stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    try:
                        self._retriever = open_retriever(self.settings)
                        log.info("index changed on disk; reloaded")
                    except Exception as exc:  # noqa: BLE001 - keep serving the last good index
                        log.warning("index reload failed, keeping the loaded one: %s", exc)
                    self._stamp = stamp  # retried when the manifest changes again
        return self._retriever


# ---------------------------------------------------------------------------- uploads

_UNSAFE_CHARS = re.compile(r"[^\w.\- ]+")
MAX_NAME_CHARS = 120


def safe_upload_name(name: str) -> str:
    """A safe file name for an upload: its last path part, letters and digits of any script
    plus ``._ -``.

    Folders, drive letters, ``..``, hidden-file dots and control characters are dropped, so
    the name can only ever refer to a file directly inside the upload folder. A name that
    came with folders gets a short hash of the full name (``../../x.txt`` is stored as
    ``x-1a2b3c4d.txt``), so it never replaces the upload named plainly ``x.txt``. Raises
    ValueError if nothing usable is left or the file type is not supported.
    """
    name = unicodedata.normalize("NFKC", name or "")
    parts = re.split(r"[/\\]", name)
    base = _UNSAFE_CHARS.sub("_", parts[-1])
    base = re.sub(r"\s+", " ", base).strip(" ._-")
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    stem = stem.rstrip(" ._-")
    if len(parts) > 1 and stem:
        stem = f"{stem}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:8]}"
        stem = stem[-(MAX_NAME_CHARS - len(suffix) - 1) :].lstrip(" ._-")
    stem = stem[: MAX_NAME_CHARS - len(suffix) - 1]
    suffix = suffix.lower()
    if f".{suffix}" not in SUPPORTED_SUFFIXES:
        kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise ValueError(f"{name!r}: unsupported file type; upload one of {kinds}")
    if not stem:
        raise ValueError(f"{name!r}: no usable file name; rename the file and upload it again")
    return f"{stem}.{suffix}"


def store_upload(settings: Settings, name: str, source: Path, folder: str = "uploads") -> Path:
    """Copy an uploaded file into ``corpus/<folder>/`` under a sanitised name, atomically.

    Raises ValueError if the name is unusable or the file is over ``settings.max_file_mb``.
    """
    safe = safe_upload_name(name)
    size = source.stat().st_size
    limit = int(settings.max_file_mb * 1e6)
    if size > limit:
        raise ValueError(
            f"{safe}: {size / 1e6:.1f} MB is over the {settings.max_file_mb:g} MB limit; "
            "split the file or ask the admin to raise CHATBOT_MAX_FILE_MB"
        )
    target_dir = settings.corpus_dir / folder
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / safe
    if target.resolve().parent != target_dir.resolve():  # belt and braces
        raise ValueError(f"{name!r}: not a plain file name; rename the file and upload it again")
    with open(source, "rb") as src:  # the temp file is hidden: never indexed
        atomic_write(target, lambda out: shutil.copyfileobj(src, out), mode=0o644)
    return target
