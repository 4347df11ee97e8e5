"""High-level operations shared by the CLI and the chat app: open, build and update the index."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from . import index as ix
from .config import Settings
from .documents import find_files
from .embedder import LazyEmbedder, get_embedder
from .retrieval import Retriever

log = logging.getLogger(__name__)


def open_retriever(settings: Settings) -> Retriever:
    """Load the index (refusing a model/splitter mismatch) and the embedder, once."""
    index = ix.load(settings.index_dir, settings.model, settings.splitter_settings())
    return Retriever(index, get_embedder(settings.model), threshold=settings.threshold)


def load_base(settings: Settings) -> ix.Index | None:
    """The current index if one exists and was built with the same model and splitter."""
    try:
        return ix.load(settings.index_dir, settings.model, settings.splitter_settings())
    except ix.IndexMissing:
        return None
    except ix.IndexError_ as exc:
        log.warning("ignoring the existing index: %s", exc)
        return None


def stale_sources(settings: Settings, records: dict[str, dict]) -> list[str]:
    """Indexed documents whose file changed or disappeared since indexing."""
    out = []
    for source, rec in records.items():
        path = Path(rec["path"])
        try:
            if ix.sha256_bytes(path.read_bytes()) != rec["sha256"]:
                out.append(source)
        except OSError:
            out.append(source)
    return out


def remove(settings: Settings, names: list[str]) -> ix.Summary:
    """Remove documents given by indexed name or by path (files or folders)."""
    with ix.write_lock(settings.index_dir):
        base = ix.load(settings.index_dir, settings.model, settings.splitter_settings())
        records = base.manifest["documents"]
        wanted: list[str] = []
        for name in names:
            p = Path(name)
            candidates = {name, ix.default_source(p)}
            prefix = ix.default_source(p).rstrip("/") + "/"
            hits = [s for s in records if s in candidates or s.startswith(prefix)]
            if not hits:
                raise ValueError(
                    f"{name} is not in the index; see `chatbot index list` for indexed names"
                )
            wanted.extend(hits)
        index, summary = ix.index_files(
            [],
            LazyEmbedder(settings.model, base.dim),
            settings.splitter_settings(),
            base=base,
            remove=wanted,
        )
        ix.save(index, settings.index_dir)
        return summary


def update(settings: Settings, progress: bool = False) -> ix.Summary:
    """Re-scan indexed sources: changed files are re-indexed, deleted ones removed."""
    manifest = ix.read_manifest(settings.index_dir)
    records = manifest.get("documents", {})
    gone = [s for s, r in records.items() if not Path(r["path"]).exists()]
    present = [Path(r["path"]) for s, r in records.items() if s not in gone]
    return build(settings, present, remove=gone, progress=progress)


def stale(settings: Settings, paths: list[Path]) -> list[str]:
    """Sources under ``paths`` that are new, changed or gone relative to the manifest."""
    try:
        manifest = ix.read_manifest(settings.index_dir)
        ix.check_compatible(
            manifest, settings.model, settings.splitter_settings(), settings.index_dir
        )
    except ix.IndexError_:
        return ["(index missing or incompatible)"]
    records = manifest.get("documents", {})
    seen: set[str] = set()
    out: list[str] = []
    for path in find_files(paths):
        source = ix.default_source(path)
        seen.add(source)
        rec = records.get(source)
        if rec is None or rec["sha256"] != ix.sha256_bytes(path.read_bytes()):
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
) -> ix.Summary:
    """Index ``paths`` (files/folders) into the configured index, incrementally and atomically.

    With ``replace_all`` the index ends up holding exactly ``paths`` (a build); otherwise the
    files are added to or updated in the index. Nothing is written when nothing changed.
    """
    paths = [settings.corpus_dir] if paths is None else paths
    with ix.write_lock(settings.index_dir):
        base = load_base(settings)
        if base is not None and not remove and replace_all and not stale(settings, paths):
            return ix.Summary(
                unchanged=list(base.manifest["documents"]), total_passages=len(base.passages)
            )
        index, summary = ix.index_files(
            paths,
            LazyEmbedder(settings.model, base.dim if base is not None else None),
            settings.splitter_settings(),
            base=base,
            remove=remove,
            replace_all=replace_all,
            max_bytes=int(settings.max_file_mb * 1e6),
            batch_size=settings.batch_size,
            progress=progress,
        )
        if summary.added or summary.updated or summary.removed or base is None:
            ix.save(index, settings.index_dir)
        return summary


class LiveRetriever:
    """A retriever that reloads when the index manifest changes (checked between questions)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._stamp = ix.manifest_stamp(settings.index_dir)
        self._retriever = open_retriever(settings)

    def get(self) -> Retriever:
        stamp = ix.manifest_stamp(self.settings.index_dir)
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    try:
                        self._retriever = open_retriever(self.settings)
                        self._stamp = stamp
                        log.info("index changed on disk; reloaded")
                    except ix.IndexError_ as exc:  # keep serving the last good index
                        log.warning("index reload failed, keeping the loaded one: %s", exc)
        return self._retriever
