"""Format 4: append-only segments, tombstones, merges; mapped arrays; equality with a fresh
build after any sequence of changes; a format-3 index is refused with its rebuild command."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import bm25s
import numpy as np
import pytest

from chatbot import service, store
from chatbot.cli import main
from chatbot.config import Settings
from chatbot.lexical import LexicalIndex, LexicalSegment

QUESTIONS = (
    "How much calcium do adults need?",
    "What is vitamin K2?",
    "Which fruit has fibre?",
    "Is black tea oxidised?",
)


def _manifest(settings: Settings) -> dict:
    return json.loads((settings.index_dir / store.MANIFEST).read_text())


def _answers(settings: Settings) -> list[dict]:
    r = service.open_retriever(settings)
    return [r.ask(q, k=5).to_dict() for q in QUESTIONS]


def _state(settings: Settings) -> tuple:
    index = store.load(settings.index_dir)
    passages = [(p.source, p.text, p.start, p.end, p.heading, p.page) for p in index.passages]
    return passages, np.asarray(index.vectors), list(index.documents)


def test_a_loaded_index_maps_its_arrays(fake_index: Settings) -> None:
    index = store.load(fake_index.index_dir)
    for seg in index.segments:
        for name in ("vectors", "sentence_vectors", "tokens", "passages"):
            array = getattr(seg, name)
            assert isinstance(array, np.memmap) and not array.flags.writeable, name
        assert isinstance(seg.lexical.docs, np.memmap)
    assert index.vectors.shape == (index.size, index.dim)


def test_search_is_exact_over_the_stored_vectors(fake_index: Settings) -> None:
    index = store.load(fake_index.index_dir)
    vectors = np.asarray(index.vectors)
    rng = np.random.default_rng(0)
    queries = np.concatenate([vectors[:3], rng.standard_normal((3, index.dim))]).astype(np.float32)
    k = min(4, index.size)
    scores, ids = index.search(queries, k)
    want = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :k]
    assert (ids == want).all()
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ vectors.T, want, 1), atol=1e-5)


def test_add_writes_a_segment_of_the_new_document_only(
    fake_index: Settings, tmp_path: Path
) -> None:
    first = _manifest(fake_index)["segments"][0]["name"]
    seg_dir = fake_index.index_dir / first
    stamps = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in seg_dir.iterdir()}
    doc = tmp_path / "apple.txt"
    doc.write_text("Apples\n\nApples are rich in fibre. They keep well.\n")
    service.build(fake_index, [doc])
    segments = _manifest(fake_index)["segments"]
    assert [e["name"] for e in segments][0] == first and len(segments) == 2
    assert segments[1]["documents"] == 1
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in seg_dir.iterdir()} == stamps
    # An update marks the old version deleted and adds the new one; a remove only marks.
    doc.write_text("Apples\n\nApples are rich in fibre and vitamin C.\n")
    service.build(fake_index, [doc])
    segments = _manifest(fake_index)["segments"]
    assert len(segments) == 2 and segments[-1]["documents"] == 1  # the old one: all deleted
    service.remove(fake_index, [str(doc)])
    assert [e["name"] for e in _manifest(fake_index)["segments"]] == [first]
    assert _manifest(fake_index)["document_count"] == len(
        store.load(fake_index.index_dir).documents
    )


def test_tombstoned_documents_are_not_found_and_optimize_drops_them(
    fake_index: Settings, tmp_path: Path
) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    for n in range(3):
        (extra / f"e{n}.txt").write_text(f"Extra {n}\n\nExtra note {n} on tea and calcium.\n")
    service.build(fake_index, [fake_index.corpus_dir, extra], replace_all=True)
    service.optimize(fake_index)  # one segment of five documents
    names = sorted(store.load(fake_index.index_dir).documents)
    service.remove(fake_index, [names[0]])
    manifest = _manifest(fake_index)
    assert manifest["segments"][0]["deleted"] == [0]  # a tombstone: nothing rewritten
    index = store.load(fake_index.index_dir)
    assert names[0] not in index.documents
    assert all(p.source != names[0] for p in index.passages)
    before = _answers(fake_index)
    for a in before:
        assert all(h["source"] != names[0] for h in a["passages"])
    assert main(["index", "optimize", "--index", fake_index.index, "--model", "fake-64"]) == 0
    manifest = _manifest(fake_index)
    assert len(manifest["segments"]) == 1 and manifest["segments"][0]["deleted"] == []
    assert _answers(fake_index) == before


def test_the_merge_policy_keeps_few_segments(
    fake_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "MERGE_FACTOR", 3)
    docs = tmp_path / "many"
    docs.mkdir()
    for n in range(7):
        doc = docs / f"n{n}.txt"
        doc.write_text(f"Note {n}\n\nNote number {n} mentions calcium and tea.\n")
        service.build(fake_settings, [doc])
        assert len(_manifest(fake_settings)["segments"]) < 3
    fresh = Settings(index=str(tmp_path / "fresh"), model=fake_settings.model)
    service.build(fresh, [docs])
    assert _state(fake_settings)[0] == _state(fresh)[0]
    assert _answers(fake_settings) == _answers(fresh)
    # Only the live segments and the ones the last commit retired are on disk.
    manifest = _manifest(fake_settings)
    named = {e["name"] for e in manifest["segments"]} | set(manifest["retired"])
    on_disk = {p.name for p in fake_settings.index_dir.iterdir() if p.name.startswith("seg-")}
    assert on_disk == named


def test_a_retired_segment_stays_readable_while_mapped(
    fake_index: Settings, tmp_path: Path
) -> None:
    old = store.load(fake_index.index_dir)
    want = np.array(old.vectors[:3])
    r = service.open_retriever(fake_index)
    answer = r.ask(QUESTIONS[0]).to_dict()
    names = sorted(old.documents)
    for n in range(3):  # the first segment is retired, then deleted
        doc = tmp_path / f"x{n}.txt"
        doc.write_text(f"Extra {n}\n\nExtra note {n} on tea.\n")
        service.build(fake_index, [doc])
        service.remove(fake_index, [names[0]] if n == 0 else [str(doc)])
        service.optimize(fake_index)
    assert not (fake_index.index_dir / old.segments[0].name).exists()
    np.testing.assert_array_equal(old.vectors[:3], want)
    assert r.ask(QUESTIONS[0]).to_dict() == answer


def test_any_random_sequence_of_changes_equals_a_fresh_build(
    fake_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "MERGE_FACTOR", 3)  # merges happen within a short sequence
    rng = random.Random(7)
    topics = ["calcium", "tea", "bone", "vitamin", "iron", "fibre", "sleep", "walking"]
    docs = tmp_path / "docs"
    docs.mkdir()
    for step in range(14):
        present = sorted(docs.iterdir())
        action = rng.choice(["add", "add", "update", "remove", "optimize"])
        if action == "add" or not present:
            n = len(list(docs.iterdir())) + step
            words = rng.sample(topics, 3)
            doc = docs / f"d{n:02d}.txt"
            body = " ".join(f"The {w} note {n} says {w} matters." for w in words)
            doc.write_text(f"Doc {n}\n\n{body}\n\nMore on {words[0]} and {words[1]}.\n")
            service.build(fake_settings, [doc])
        elif action == "update":
            doc = rng.choice(present)
            doc.write_text(doc.read_text() + f"\nAlso {rng.choice(topics)} at step {step}.\n")
            service.build(fake_settings, [doc])
        elif action == "remove":
            doc = rng.choice(present)
            service.remove(fake_settings, [str(doc)])
            doc.unlink()
        else:
            service.optimize(fake_settings)
        fresh = Settings(index=str(tmp_path / f"fresh{step}"), model=fake_settings.model)
        service.build(fresh, [docs], replace_all=True)
        a, b = _state(fake_settings), _state(fresh)
        assert a[0] == b[0] and a[2] == b[2], step
        np.testing.assert_array_equal(a[1], b[1])
        assert _answers(fake_settings) == _answers(fresh), step


def test_bm25_equals_bm25s_and_uses_live_statistics() -> None:
    corpus = [
        ["tea", "green", "tea"],
        ["tea", "black"],
        ["coffe", "black", "bean"],
        [],
        ["tea", "calcium", "bone", "bone"],
    ]
    ref = bm25s.BM25(k1=1.2, b=0.75)
    ref.index([t or ["\x00"] for t in corpus], show_progress=False)
    ours = LexicalIndex.build(corpus)
    for query in (["tea"], ["black", "tea"], ["bone", "bone"], ["nothing"]):
        np.testing.assert_allclose(ours.scores(query), ref.get_scores(query), rtol=1e-5)
    # Two segments with a removed passage score as one segment without it.
    a, b = LexicalSegment.build(corpus[:2]), LexicalSegment.build(corpus[2:])
    split = LexicalIndex([(a, np.array([0, -1])), (b, np.array([1, 2, 3]))], 4)
    whole = LexicalIndex.build([corpus[0], *corpus[2:]])
    for query in (["tea"], ["black"], ["bone", "tea"]):
        np.testing.assert_array_equal(split.scores(query), whole.scores(query))
        assert split.idf(query[0]) == whole.idf(query[0])
    merged = LexicalSegment.merge([(a, np.array([0, -1])), (b, np.array([1, 2, 3]))])
    one = LexicalIndex([(merged, np.arange(4))], 4)
    np.testing.assert_array_equal(one.scores(["tea", "bone"]), whole.scores(["tea", "bone"]))


def test_a_format_3_index_is_refused_with_the_rebuild_command_and_build_replaces_it(
    fake_index: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = fake_index
    want = _answers(settings)
    path = settings.index_dir / store.MANIFEST
    path.write_text(json.dumps({"format": 3, "generation": "gen-000001", "documents": {}}))
    (settings.index_dir / "gen-000001").mkdir()
    with pytest.raises(store.IndexUnusable) as refused:
        store.load(settings.index_dir)
    assert "has format 3, this version reads 4" in str(refused.value)
    assert f"rebuild it with `chatbot index build --index {settings.index_dir}`" in str(
        refused.value
    )
    argv = ["--model", settings.model, "--index", settings.index]
    assert main(["index", "build", str(settings.corpus_dir), *argv]) == 0
    capsys.readouterr()
    assert store.load(settings.index_dir).manifest["format"] == 4
    assert _answers(settings) == want
    assert not (settings.index_dir / "gen-000001").exists()


def test_a_damaged_segment_is_reported_with_the_rebuild_command(fake_index: Settings) -> None:
    name = _manifest(fake_index)["segments"][0]["name"]
    os.remove(fake_index.index_dir / name / "vectors.npy")
    with pytest.raises(store.IndexUnusable, match="damaged.*rebuild with `chatbot index build`"):
        store.load(fake_index.index_dir)


def test_index_status_names_the_segments(
    fake_index: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["index", "status", "--index", fake_index.index, "--model", "fake-64"]) == 0
    assert "segments: 1" in capsys.readouterr().out


def test_speller_counts_are_those_of_the_live_documents(
    fake_index: Settings, tmp_path: Path
) -> None:
    from collections import Counter

    from chatbot.spelling import count_words

    extra = tmp_path / "extra.txt"
    extra.write_text("Rooibos\n\nRooibos tisane grows in the Cederberg mountains.\n")
    service.build(fake_index, [extra])
    names = sorted(store.load(fake_index.index_dir).documents)
    service.remove(fake_index, [names[0]])  # a tombstone in the first segment
    index = store.load(fake_index.index_dir)
    want: Counter[str] = Counter()
    for doc in index.documents.values():
        want.update(count_words(doc.text))
    assert index.word_counts() == want and "cederberg" in want


def test_a_large_segment_is_searched_approximately_with_an_exact_rescore(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chatbot import segment
    from chatbot.index import _rescore

    monkeypatch.setattr(segment, "ANN_MIN_PASSAGES", 1000)
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((20, 32)).astype(np.float32)
    x = centres[rng.integers(0, 20, 3000)] + 0.3 * rng.standard_normal((3000, 32))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)
    index, search = segment.search_index(x, 32)
    assert search["kind"] == "ivfpq" and search["shortlist"] >= 200
    index.nprobe = search["nprobe"]
    queries = np.asarray(x[:50], np.float32)
    _, short = index.search(queries, search["shortlist"])
    scores, rows = _rescore(x, queries, short, 10)
    exact = np.argsort(-(queries @ np.asarray(x, np.float32).T), axis=1)[:, :10]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, exact, strict=True)])
    assert recall >= 0.95
    np.testing.assert_allclose(
        scores[:, 0], (queries * np.asarray(x[rows[:, 0]], np.float32)).sum(1), rtol=1e-5
    )
