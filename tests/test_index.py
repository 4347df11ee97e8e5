"""The index folder: manifest, atomic writes, incremental reuse, mismatch refusal, locking."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from chatbot import build, service, store
from chatbot.config import Settings

from .conftest import DOCS

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_build_writes_self_describing_index(fake_index: Settings) -> None:
    manifest = json.loads((fake_index.index_dir / "manifest.json").read_text())
    assert manifest["model"] == "fake-64"
    assert manifest["dim"] == 64
    assert manifest["splitter"] == fake_index.splitter_settings()
    assert manifest["format"] == store.FORMAT_VERSION and manifest["tokens"]["kind"]
    records = store.read_records(fake_index.index_dir)
    assert all(s.endswith(("tea.txt", "bones.md")) for s in records) and len(records) == 2
    for rec in records.values():
        assert len(rec["sha256"]) == 64 and rec["passages"] > 0
    assert "faiss-cpu" in manifest["versions"]
    assert manifest["passages"] == sum(r["passages"] for r in records.values())
    index = store.load(fake_index.index_dir)
    assert index.vectors.shape == (len(index.passages), 64)
    assert sum(seg.faiss.ntotal for seg in index.segments) == len(index.passages)
    for p in index.passages:
        assert index.documents[p.source].text[p.start : p.end] == p.text


def test_mismatched_model_or_splitter_is_refused(fake_index: Settings) -> None:
    with pytest.raises(store.IndexUnusable, match="rebuild"):
        store.load(fake_index.index_dir, model="fake-32")
    with pytest.raises(store.IndexUnusable, match="splitter"):
        store.load(fake_index.index_dir, splitter={"max_chars": 10, "min_chars": 1, "overlap": 0})


def test_missing_index_says_how_to_build(tmp_path: Path) -> None:
    with pytest.raises(store.IndexUnusable, match="chatbot index build"):
        store.load(tmp_path / "nothing")


def test_unchanged_build_is_a_no_op(fake_index: Settings) -> None:
    before = (fake_index.index_dir / "manifest.json").read_text()
    summary = service.build(fake_index, replace_all=True)
    assert summary.added == [] and len(summary.unchanged) == 2
    assert (fake_index.index_dir / "manifest.json").read_text() == before


def test_add_then_remove_equals_fresh_build(fake_index: Settings, tmp_path: Path) -> None:
    extra = tmp_path / "extra.txt"
    extra.write_text("Tea and bones\n\nGreen tea may help bone density in older women.\n")
    before = service.open_retriever(fake_index).ask("calcium per day", k=3).to_dict()
    summary = service.build(fake_index, [extra])
    assert len(summary.added) == 1 and summary.new_passages >= 1
    after_add = service.open_retriever(fake_index).ask("green tea bone density", k=3)
    assert after_add.hits[0].source.endswith("extra.txt")
    service.remove(fake_index, [str(extra)])
    after = service.open_retriever(fake_index).ask("calcium per day", k=3).to_dict()
    assert after == before
    # Same passages, vectors and BM25 scores as a fresh build of the same files.
    fresh = Settings(index=str(tmp_path / "fresh"), corpus=fake_index.corpus, model="fake-64")
    service.build(fresh, replace_all=True)
    a, b = store.load(fake_index.index_dir), store.load(fresh.index_dir)
    assert [p.text for p in a.passages] == [p.text for p in b.passages]
    np.testing.assert_allclose(a.vectors, b.vectors)
    np.testing.assert_allclose(a.lexical.scores(["calcium"]), b.lexical.scores(["calcium"]))


def test_changed_document_is_reembedded_others_reused(fake_index: Settings) -> None:
    tea = fake_index.corpus_dir / "tea.txt"
    tea.write_text(tea.read_text() + "\nOolong\n\nOolong tea is partly oxidised.\n")
    summary = service.build(fake_index, replace_all=True)
    assert [s.rsplit("/", 1)[-1] for s in summary.updated] == ["tea.txt"]
    assert [s.rsplit("/", 1)[-1] for s in summary.unchanged] == ["bones.md"]
    ans = service.open_retriever(fake_index).ask("oolong oxidised")
    assert "Oolong tea is partly oxidised." in ans.hits[0].text


def test_bad_files_are_skipped_and_reported(fake_settings: Settings) -> None:
    corpus = fake_settings.corpus_dir
    shutil.copytree(DOCS, corpus)
    (corpus / "empty.txt").write_text("")
    (corpus / "binary.txt").write_bytes(b"\x00\x01\x02" * 100)
    summary = service.build(fake_settings, replace_all=True)
    assert len(summary.added) == 2
    reasons = " ".join(r for _, r in summary.failed)
    assert "empty.txt: file is empty" in reasons and "binary.txt: looks binary" in reasons
    assert "2 failed" in summary.line()


def test_crash_before_manifest_swap_keeps_previous_index(
    fake_index: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = store.load(fake_index.index_dir)
    (fake_index.corpus_dir / "new.txt").write_text("Coffee\n\nCoffee contains caffeine.\n")

    def boom(*a: object, **k: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(store.os, "replace", boom)
    with pytest.raises(OSError):
        service.build(fake_index, replace_all=True)
    monkeypatch.undo()
    after = store.load(fake_index.index_dir)
    assert [p.text for p in after.passages] == [p.text for p in before.passages]


def test_lock_serialises_writers(fake_index: Settings) -> None:
    with (
        store.write_lock(fake_index.index_dir, fake_index.lock_timeout),
        pytest.raises(store.IndexUnusable, match="another process"),
        store.write_lock(fake_index.index_dir, timeout=0.2),
    ):
        pass


def test_token_vectors_are_stored_per_passage(fake_index: Settings) -> None:
    from chatbot.embedder import get_embedder
    from chatbot.index import match_text

    index = store.load(fake_index.index_dir)
    assert index.manifest["tokens"].items() >= index.codec.params().items()
    assert len(index.token_counts) == len(index.passages)
    assert int(index.token_counts.sum()) == len(index.token_vectors)
    texts = [match_text(p, index.documents[p.source].title) for p in index.passages]
    _, expected = get_embedder("fake-64").encode_with_tokens(texts)
    for i, tv in enumerate(expected):
        s, n = int(index.token_start[i]), int(index.token_counts[i])
        assert n == len(tv.vectors) > 0
        stored = index.token_vectors[s : s + n]
        codec = index.codec  # stored encoded: what the codec makes of the vectors
        np.testing.assert_allclose(stored, codec.decode(codec.encode(tv.vectors)), atol=1e-6)
        assert (np.sum(stored * tv.vectors, axis=1) > 0.9).all()  # close to the originals


def test_fake_late_chunking_embeds_each_span_alone() -> None:
    from chatbot.embedder import get_embedder

    emb = get_embedder("fake-64")
    texts = ["Tea — Green\nGreen tea is calming. Black tea is not.", "Nothing here"]
    spans = [[(12, 32), (33, 51)], []]
    vecs, tokens, pooled = emb.encode_late(texts, spans)
    ref_vecs, ref_tokens = emb.encode_with_tokens(texts)
    np.testing.assert_array_equal(vecs, ref_vecs)
    assert [t.surface for t in tokens] == [t.surface for t in ref_tokens]
    np.testing.assert_array_equal(
        pooled[0], emb.encode(["Green tea is calming.", "Black tea is not."])
    )
    assert pooled[1].shape == (0, 64)


def test_late_chunking_bench_maps_sentences_into_the_match_text(fake_index: Settings) -> None:
    """bench/late_chunk.py's two derivations give the builder's sentence vectors with the
    context-free fake embedder: its "again" is the builder's, and its spans into the match
    text (title and heading first) land on the passages' sentences."""
    import importlib.util

    from chatbot.embedder import get_embedder

    spec = importlib.util.spec_from_file_location("late_chunk", BENCH / "late_chunk.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    index = store.load(fake_index.index_dir)
    assert any(p.heading for p in index.passages)
    emb = get_embedder("fake-64")
    # by default the builder embeds every sentence again (build.ALONE_BELOW); with the
    # context-free fake, late-chunked spans give the same vectors (stored as float16)
    assert build.ALONE_BELOW > 10**6
    for derive in (bench.sentences_again, bench.sentences_late):
        np.testing.assert_allclose(derive(index, emb, 64), index.sentence_vectors, atol=2e-3)


def _sentence_rows(passages, documents, emb) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Each passage-sentence embedded alone, its passage's vector, and its length."""
    from chatbot.index import match_text

    texts = [match_text(p, documents[p.source].title) for p in passages]
    pvecs = emb.encode(texts)
    alone = emb.encode([p.text[s:e] for p in passages for s, e in p.sentences])
    owner = [i for i, p in enumerate(passages) for _ in p.sentences]
    lengths = [e - s for p in passages for s, e in p.sentences]
    return alone, pvecs[owner], lengths


def test_embed_passages_sentence_vectors(fake_index: Settings, monkeypatch) -> None:
    """Late-chunked sentences (the fake reads no context: a span's vector is its text's)
    minus LATE_MINUS_PASSAGE of the passage vector; sentences under ALONE_BELOW characters
    embedded alone; the rest of the return value unchanged by either setting."""
    from chatbot.embedder import get_embedder

    index = store.load(fake_index.index_dir)
    emb = get_embedder("fake-64")
    alone, pvec, lengths = _sentence_rows(index.passages, index.documents, emb)
    short = np.asarray(lengths) < 60
    assert short.any() and (~short).any()

    def run(below: int, minus: float):
        monkeypatch.setattr(build, "ALONE_BELOW", below)
        monkeypatch.setattr(build, "LATE_MINUS_PASSAGE", minus)
        return build.embed_passages(index.passages, index.documents, emb, 16, False)

    v, sv, tv, tc = run(10**9, 0.4)  # every sentence alone: the previous derivation
    np.testing.assert_allclose(sv, alone, atol=1e-6)
    np.testing.assert_allclose(v, index.vectors, atol=1e-3)  # stored as float16
    assert v.dtype == sv.dtype == np.float32 and tv.dtype == np.float16
    np.testing.assert_array_equal(tc, index.token_counts)
    codec = index.codec  # stored as codes
    np.testing.assert_allclose(codec.decode(codec.encode(tv)), index.token_vectors, atol=1e-6)
    _, sv0, _, _ = run(0, 0.0)  # plain late chunking
    np.testing.assert_allclose(sv0, alone, atol=1e-6)
    _, mixed, _, _ = run(60, 0.5)
    late = alone - 0.5 * pvec
    late /= np.linalg.norm(late, axis=1, keepdims=True)
    np.testing.assert_allclose(mixed[short], alone[short], atol=1e-6)
    np.testing.assert_allclose(mixed[~short], late[~short], atol=1e-5)


def test_index_of_an_older_format_is_refused(fake_index: Settings) -> None:
    path = fake_index.index_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps(dict(manifest, format=1)))
    with pytest.raises(store.IndexUnusable, match="format 1.*rebuild"):
        store.load(fake_index.index_dir)
    assert service.stale(fake_index, [fake_index.corpus_dir])  # `make run` rebuilds it


def test_damaged_token_vectors_are_reported(fake_index: Settings) -> None:
    name = json.loads((fake_index.index_dir / "manifest.json").read_text())["segments"][0]["name"]
    np.save(fake_index.index_dir / name / "vectors.npy", np.zeros((3, 64), dtype=np.float16))
    with pytest.raises(store.IndexUnusable, match="damaged.*rebuild"):
        store.load(fake_index.index_dir)
