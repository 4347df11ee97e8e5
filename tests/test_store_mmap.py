"""Format 3: the FAISS index is stored with each generation and the large arrays are mapped
at load; a format-2 index is refused with the command that rebuilds it."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from chatbot import service, store
from chatbot.cli import main
from chatbot.config import Settings
from chatbot.index import flat_index

from .conftest import DOCS


def _generation(settings: Settings) -> Path:
    manifest = json.loads((settings.index_dir / store.MANIFEST).read_text())
    return settings.index_dir / manifest["generation"]


def _make_format_2(settings: Settings) -> None:
    """Turn a built index into what the previous version wrote: format 2, no FAISS file."""
    path = settings.index_dir / store.MANIFEST
    manifest = json.loads(path.read_text())
    (settings.index_dir / manifest["generation"] / store.FAISS_FILE).unlink()
    path.write_text(json.dumps(dict(manifest, format=2)))


def test_a_saved_generation_holds_the_faiss_index(fake_index: Settings) -> None:
    gen = _generation(fake_index)
    stored = faiss.read_index(str(gen / store.FAISS_FILE))
    vectors = np.load(gen / "vectors.npy")
    assert isinstance(stored, faiss.IndexFlatIP)
    assert stored.ntotal == len(vectors) > 0 and stored.d == vectors.shape[1]
    np.testing.assert_array_equal(stored.reconstruct_n(0, stored.ntotal), vectors)
    assert json.loads((fake_index.index_dir / store.MANIFEST).read_text())["format"] == 3


def test_a_loaded_index_maps_its_arrays_and_searches_like_a_fresh_flat_index(
    fake_index: Settings,
) -> None:
    index = store.load(fake_index.index_dir)
    for name in ("vectors", "sentence_vectors", "token_vectors"):
        array = getattr(index, name)
        assert isinstance(array, np.memmap) and not array.flags.writeable, name
    fresh = flat_index(np.array(index.vectors), index.dim)
    assert index.faiss_index.ntotal == fresh.ntotal == len(index.passages)
    rng = np.random.default_rng(0)
    queries = np.concatenate([index.vectors[:5], rng.standard_normal((5, index.dim))])
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    k = min(10, fresh.ntotal)
    got, want = index.faiss_index.search(queries, k), fresh.search(queries, k)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])


def test_a_stored_faiss_index_that_does_not_match_the_vectors_is_damaged(
    fake_index: Settings,
) -> None:
    gen = _generation(fake_index)
    vectors = np.load(gen / "vectors.npy")
    faiss.write_index(flat_index(vectors[:-1], vectors.shape[1]), str(gen / store.FAISS_FILE))
    with pytest.raises(store.IndexUnusable, match="damaged.*FAISS index holds"):
        store.load(fake_index.index_dir)
    (gen / store.FAISS_FILE).unlink()
    with pytest.raises(store.IndexUnusable, match="damaged"):
        store.load(fake_index.index_dir)


def test_a_format_2_index_is_refused_with_the_rebuild_command_and_build_replaces_it(
    fake_index: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = fake_index
    before = store.load(settings.index_dir)
    questions = ("How much calcium do adults need?", "What is vitamin K2?")
    want = [service.open_retriever(settings).ask(q).to_dict() for q in questions]
    _make_format_2(settings)
    with pytest.raises(store.IndexUnusable) as refused:
        store.load(settings.index_dir)
    assert "has format 2, this version reads 3" in str(refused.value)
    assert f"rebuild it with `chatbot index build --index {settings.index_dir}`" in str(
        refused.value
    )
    argv = ["--model", settings.model, "--index", settings.index]
    assert main(["index", "build", str(settings.corpus_dir), *argv]) == 0
    capsys.readouterr()
    after = store.load(settings.index_dir)
    assert after.manifest["format"] == 3
    assert (_generation(settings) / store.FAISS_FILE).is_file()
    assert [p.text for p in after.passages] == [p.text for p in before.passages]
    assert [service.open_retriever(settings).ask(q).to_dict() for q in questions] == want


def test_add_and_remove_after_load_reuse_mapped_rows_and_equal_a_fresh_build(
    fake_settings: Settings, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    files = [p.name for p in sorted(DOCS.iterdir())]
    for f in files:
        (docs / f).write_bytes((DOCS / f).read_bytes())
    (docs / "apple.txt").write_text("Apples\n\nApples are rich in fibre. They keep well.\n")
    files.append("apple.txt")
    service.build(fake_settings, [docs / f for f in files[:-1]])
    base = store.load(fake_settings.index_dir)
    mapped = {name: np.array(getattr(base, name)) for name in ("vectors", "sentence_vectors")}
    # Each of these loads the stored (mapped) index and reuses its rows.
    service.build(fake_settings, [docs / files[-1]])
    service.remove(fake_settings, [str(docs / files[0])])
    (docs / files[0]).unlink()
    # The arrays of the generation loaded before are intact (never written into).
    for name, copy in mapped.items():
        np.testing.assert_array_equal(getattr(base, name), copy)
    fresh = Settings(index=str(tmp_path / "fresh"), model=fake_settings.model)
    service.build(fresh, [docs])
    a, b = store.load(fake_settings.index_dir), store.load(fresh.index_dir)
    assert [p.text for p in a.passages] == [p.text for p in b.passages]
    np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-6)
    np.testing.assert_allclose(a.sentence_vectors, b.sentence_vectors, atol=1e-6)
    ra, rb = service.open_retriever(fake_settings), service.open_retriever(fresh)
    for q in ("How much calcium do adults need?", "What is vitamin K2?", "Which fruit has fibre?"):
        assert ra.ask(q).to_dict() == rb.ask(q).to_dict()


def test_a_replaced_generation_stays_readable_while_mapped(fake_index: Settings) -> None:
    old = store.load(fake_index.index_dir)
    gen = _generation(fake_index)
    want = np.array(old.vectors[:3])
    query = np.ascontiguousarray(old.vectors[:1], dtype=np.float32)
    ids = old.faiss_index.search(query, 3)[1]
    # Two saves: the generation ``old`` maps is garbage-collected (deleted) by the second.
    for _ in range(2):
        index = store.load(fake_index.index_dir)
        with store.write_lock(fake_index.index_dir, 5):
            store.save(index, fake_index.index_dir)
    assert not gen.exists()
    np.testing.assert_array_equal(old.vectors[:3], want)
    np.testing.assert_array_equal(old.faiss_index.search(query, 3)[1], ids)
