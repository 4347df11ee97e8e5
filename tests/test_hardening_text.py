"""Hardening against hostile text: over-long words, resuming onto another question file, and
line separators inside JSON Lines records.

Every test here reproduced its problem before the fix: an over-long document word entered the
spelling index (every one-letter deletion of it: quadratic memory), ``--resume`` appended
answers to a file written for other questions, and U+2028/U+2029 left raw in JSONL records
split them for ``str.splitlines``.
"""

from __future__ import annotations

import json
import random
import shutil
import string
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from chatbot import batchio, service
from chatbot.batchio import open_writer
from chatbot.cli import main
from chatbot.config import BUNDLED_MODEL, Settings
from chatbot.embedder import FakeEmbedder, TokenVectors, _batches
from chatbot.lexical import tokenize
from chatbot.spelling import Speller
from chatbot.splitter import sentence_spans

DATA = Path(__file__).parent / "data"
MAX = Settings().max_word_chars


def _letters(n: int, seed: int = 0) -> str:
    """``n`` random lowercase letters: one "word" with no spaces."""
    rng = random.Random(seed)
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(n))


def _ask(settings: Settings, *args: str) -> int:
    return main(["ask", "--index", str(settings.index_dir), "--model", "fake-64", *args])


def _peak_bytes(fn) -> int:  # noqa: ANN001 - any callable
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture
def spelling_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give the fake embedder a tokenizer vocabulary that knows no word, so the retriever
    spell-checks every question as it does with the real model."""
    monkeypatch.setattr(FakeEmbedder, "knows_word", lambda self, word: False, raising=False)


def _long_word_index(settings: Settings, word: str) -> Settings:
    """A fake-embedder index over tests/data/docs plus one file holding ``word`` alone."""
    shutil.copytree(DATA / "docs", settings.corpus_dir)
    (settings.corpus_dir / "long_word.txt").write_text(word + "\n", encoding="utf-8")
    service.build(settings, replace_all=True)
    return settings


# --------------------------------------------------------------------------- 1. long words


def test_speller_vocabulary_leaves_out_words_over_the_limit() -> None:
    long_word = _letters(MAX + 5)
    sp = Speller([f"Vitamin K2 is made in Japan. {long_word} ends here."])
    assert long_word not in sp.counts
    assert all(len(variant) <= MAX for variant in sp._index())
    # one letter missing from the long word: neither a document word nor corrected into one
    typo = long_word[:10] + long_word[11:]
    assert sp.correct(f"vitamn {typo}") == f"vitamin {typo}"


def test_speller_words_up_to_the_limit_are_still_corrected() -> None:
    word = _letters(MAX, seed=1)
    sp = Speller([f"a {word} b"])
    assert word in sp.counts
    assert sp.correct(word[:5] + word[6:]) == word


def test_speller_limit_is_configurable() -> None:
    sp = Speller(["osteoporosis vitamin"], max_word_chars=8)
    assert set(sp.counts) == {"vitamin"}
    assert sp.correct("osteoporsis vitamn") == "osteoporsis vitamin"


def _spell_with(word: str) -> None:
    sp = Speller([f"vitamin K2 {word}"])
    sp.correct("vitamn")  # builds the deletion index
    sp.correct(word[:-1])  # a question word as long: bounded work too


def test_speller_memory_does_not_grow_with_a_long_word() -> None:
    # Before the fix a 5,000-letter word put 5,000 deletions of 4,999 letters (25 MB) in the
    # index (a 200,000-letter one: about 40 GB).
    assert _peak_bytes(lambda: _spell_with(_letters(5_000))) < 1_000_000


def test_speller_memory_with_a_200000_letter_word() -> None:
    assert _peak_bytes(lambda: _spell_with(_letters(200_000))) < 3_000_000  # the text's copies


def test_ask_after_indexing_a_200000_letter_word(
    fake_settings: Settings, spelling_fake: None, capsys: pytest.CaptureFixture[str]
) -> None:
    word = _letters(200_000)
    settings = _long_word_index(fake_settings, word)
    retriever = service.open_retriever(settings)
    assert len(retriever.index.passages) >= 400
    question = "How much calcim do adults need?"
    peak = _peak_bytes(lambda: retriever.ask(question))
    assert peak < 20_000_000, peak  # the first question builds the speller's index
    assert retriever.ask(question).query == "How much calcium do adults need?"
    assert retriever.ask(f"what is {word[:5000]}?").query == f"what is {word[:5000]}?"
    path = settings.corpus_dir.parent / "q.txt"
    path.write_text(f"{question}\nWhat is {word[1:1500]}?\n", encoding="utf-8")
    assert _ask(settings, str(path)) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["question"] for r in records] == [question, f"What is {word[1:1500]}?"]


def test_word_weight_cache_holds_no_long_words(fake_index: Settings) -> None:
    r = service.open_retriever(fake_index)
    long_word = _letters(10_000)
    q = TokenVectors(
        np.zeros((2, 64), np.float32), np.arange(2, dtype=np.int32), ("tea", long_word)
    )
    r.word_weights(q)
    assert "tea" in r._weights.cache
    assert long_word not in r._weights.cache


def test_splitter_and_tokens_are_linear_in_a_long_word() -> None:
    word = _letters(200_000)
    spans = sentence_spans(word, 0, len(word), 500)
    assert len(spans) == 400
    assert all(b.start == a.end for a, b in zip(spans, spans[1:], strict=False))
    assert spans[0].start == 0 and spans[-1].end == len(word)
    assert tokenize(word[:500]) == [word[:500]]  # one BM25 term per passage-sized piece


def _sorted_batches(lengths: list[int], batch_size: int = 64) -> list[list[int]]:
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    runs = list(_batches(order, lengths, batch_size))
    assert [i for run in runs for i in run] == order
    return runs


def test_short_texts_are_not_padded_to_a_long_width() -> None:
    # The corpus's 18 passages (up to 161 tokens) and a long word's 400 passages of 3 tokens
    # ([CLS] [UNK] [SEP]): 46 of those were padded to 161 tokens in the first batch.
    runs = _sorted_batches([161] * 10 + [90] * 8 + [3] * 400)
    assert [len(r) for r in runs] == [18] + [64] * 6 + [16]
    # at most 64 tokens wide (every SQuAD question is), batches are cut by count only
    runs = _sorted_batches([64, 40, 30, 20, 12, 9, 5, 3] * 40)
    assert [len(r) for r in runs] == [64] * 5


@pytest.mark.model
def test_model_batches_keep_short_texts_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    from chatbot import embedder as em

    emb = em.get_embedder(BUNDLED_MODEL)
    seen: list[list[int]] = []
    original = em._batches

    def spy(order: list[int], lengths: list[int], batch_size: int):  # noqa: ANN202
        for run in original(order, lengths, batch_size):
            seen.append([lengths[i] for i in run])
            yield run

    monkeypatch.setattr(em, "_batches", spy)
    long_text = "Vitamin K2 activates osteocalcin, which binds calcium in bone. " * 12
    texts = [long_text, _letters(500), "K2?", _letters(500, seed=2)]
    vecs, tokens = emb.encode_with_tokens(texts, batch_size=64)
    assert seen[0][0] > 64 and len(seen[0]) == 1  # the long text alone
    for text, vec, tv in zip(texts, vecs, tokens, strict=True):
        alone, (alone_tokens,) = emb.encode_with_tokens([text])
        np.testing.assert_allclose(vec, alone[0], atol=1e-5)
        np.testing.assert_allclose(tv.vectors, alone_tokens.vectors, atol=1e-5)


# --------------------------------------------------------------------------- 2. --resume


def _two_question_files(tmp_path: Path) -> tuple[Path, Path]:
    first = tmp_path / "first.txt"
    other = tmp_path / "other.txt"
    first.write_text(
        "How much calcium do adults need?\nHow do I brew green tea?\nWhat is osteoporosis?\n",
        encoding="utf-8",
    )
    other.write_text(
        "How hot should tea water be?\nWhat builds bone?\nWhere does tea grow?\n",
        encoding="utf-8",
    )
    return first, other


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_resume_with_another_question_file_stops(
    fake_index: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    first, other = _two_question_files(tmp_path)
    out = tmp_path / f"out.{fmt}"
    assert _ask(fake_index, str(first), "--out", str(out)) == 0
    # an interrupted run: two complete records and part of the third
    lines = out.read_bytes().splitlines(keepends=True)
    kept = 2 + (fmt == "csv")
    out.write_bytes(b"".join(lines[:kept]) + lines[kept][:20])
    before = out.read_bytes()
    capsys.readouterr()
    # same ids ("1", "2", ...), other questions: refused, and the file is left as it was
    assert _ask(fake_index, str(other), "--out", str(out), "--resume") == 1
    err = capsys.readouterr().err
    line = 2 if fmt == "csv" else 1
    assert err.startswith(f"Error: {out} holds answers to other questions (line {line}: ")
    assert err.endswith("; use a new --out file or run without --resume\n")
    assert err.count("\n") == 1
    assert "How much calcium do adults need?" in err and "How hot should tea water be?" in err
    assert out.read_bytes() == before
    # the right file still resumes
    assert _ask(fake_index, str(first), "--out", str(out), "--resume") == 0
    assert out.read_bytes().startswith(b"".join(lines[:kept]))


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_resume_names_the_first_differing_line(
    fake_index: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    first, _ = _two_question_files(tmp_path)
    out = tmp_path / f"out.{fmt}"
    assert _ask(fake_index, str(first), "--out", str(out)) == 0
    before = out.read_bytes()
    edited = tmp_path / "edited.txt"
    text = first.read_text(encoding="utf-8").replace("green tea", "black tea")
    edited.write_text(text, encoding="utf-8")
    capsys.readouterr()
    assert _ask(fake_index, str(edited), "--out", str(out), "--resume") == 1
    err = capsys.readouterr().err
    # the line where record 2 starts (CSV: after the header and record 1's quoted newlines)
    line = before.split(b"\r\n2,")[0].count(b"\n") + 2 if fmt == "csv" else 2
    assert line > 3 or fmt == "jsonl"
    assert f"holds answers to other questions (line {line}: " in err
    assert "How do I brew green tea?" in err and "How do I brew black tea?" in err
    assert out.read_bytes() == before


def test_resume_with_other_ids_stops(
    fake_index: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.jsonl"
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"id": "a", "question": "What builds bone?"}\n', encoding="utf-8")
    assert _ask(fake_index, str(questions), "--out", str(out)) == 0
    before = out.read_bytes()
    questions.write_text('{"id": "b", "question": "What builds bone?"}\n', encoding="utf-8")
    capsys.readouterr()
    assert _ask(fake_index, str(questions), "--out", str(out), "--resume") == 1
    err = capsys.readouterr().err
    assert err.startswith(f"Error: {out} holds answers to other questions (line 1: ")
    assert "'a'" in err and "'b'" in err
    assert out.read_bytes() == before


# --------------------------------------------------------------------------- 3. JSONL


SEPARATORS = "a\u2028b\u2029c\x85d"  # str.splitlines breaks at each of these


def test_json_line_escapes_line_separators_only() -> None:
    record = {"question": f"Où? {SEPARATORS}", "text": "café \u201cquoted\u201d \\\u2028"}
    line = batchio.json_line(record)
    assert line.endswith("\n") and line.count("\n") == 1
    assert len(line.splitlines()) == 1
    assert "\\u2028" in line and "\\u2029" in line and "\\u0085" in line
    assert "Où?" in line and "café \u201cquoted\u201d" in line  # other text stays readable
    assert json.loads(line) == record


def test_jsonl_writer_keeps_one_line_per_record(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    records = [{"id": str(i), "question": f"q{i} {SEPARATORS}", "answer": "é"} for i in range(3)]
    writer, _ = open_writer("jsonl", str(out))
    for r in records:
        writer.write(r)
    writer.close()
    text = out.read_text(encoding="utf-8")
    assert [json.loads(line) for line in text.splitlines()] == records
    writer, done = open_writer("jsonl", str(out), resume=True)
    writer.close()
    assert done == 3


def test_ask_output_has_one_line_per_record(
    fake_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(DATA / "docs", fake_settings.corpus_dir)
    (fake_settings.corpus_dir / "sep.txt").write_text(
        "Matcha\n\nMatcha is a powdered green tea.\u2028It is whisked with hot water.\u2029"
        "Café culture likes it.\n",
        encoding="utf-8",
    )
    service.build(fake_settings, replace_all=True)
    questions = tmp_path / "q.txt"
    questions.write_text(
        "How is matcha\u2028whisked with hot water?\nWhat is a powdered green tea?\n",
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    assert _ask(fake_settings, str(questions), "--out", str(out)) == 0
    text = out.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) == 2
    records = [json.loads(line) for line in lines]
    assert records[0]["question"] == "How is matcha\u2028whisked with hot water?"
    assert any("\u2028" in p["text"] for r in records for p in r["passages"])
    assert "\u2028" not in text and "\u2029" not in text and "Café" in text
    # stdout too, and a resumed file checks the questions after the round trip
    assert _ask(fake_settings, str(questions)) == 0
    assert capsys.readouterr().out.splitlines() == lines
    assert _ask(fake_settings, str(questions), "--out", str(out), "--resume") == 0
    assert out.read_text(encoding="utf-8") == text
