"""Sentence boundaries: Punkt trained on the indexed documents plus shipped abbreviations,
stored in the index so later additions split the same way."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from chatbot import service, store
from chatbot.config import Settings
from chatbot.sentences import SentenceSplitter, shipped_abbreviations
from chatbot.splitter import sentence_spans, split_document
from chatbot.types import Document

from .conftest import DOCS

ISSUE = (
    "Patients took approx. 5 mg daily, e.g. with meals. Dr. Smith of the U.S. Navy led the "
    "study. The results were published in Vol. 3 of J. Bone Res. in 2019."
)
SCIENCE = (
    "Transmission was modelled as in Smith et al. (2019) and compared with Fig. 2 of the "
    "earlier study, i.e. the one from Wuhan. Rates differed, vs. 2.5% in controls. "
    "The results agree with Lee et al. They also agree with the U.S. data."
)


def _sentences(splitter: SentenceSplitter, text: str) -> list[str]:
    return [text[s:e] for s, e in splitter.spans(text)]


def test_the_issue_examples_are_three_sentences() -> None:
    for splitter in (SentenceSplitter.default(), SentenceSplitter.train([ISSUE, SCIENCE])):
        assert _sentences(splitter, ISSUE) == [
            "Patients took approx. 5 mg daily, e.g. with meals.",
            "Dr. Smith of the U.S. Navy led the study.",
            "The results were published in Vol. 3 of J. Bone Res. in 2019.",
        ]


def test_an_abbreviation_ends_a_sentence_before_a_sentence_starter() -> None:
    splitter = SentenceSplitter.train([SCIENCE])
    assert _sentences(splitter, SCIENCE) == [
        "Transmission was modelled as in Smith et al. (2019) and compared with Fig. 2 of the "
        "earlier study, i.e. the one from Wuhan.",
        "Rates differed, vs. 2.5% in controls.",
        "The results agree with Lee et al.",
        "They also agree with the U.S. data.",
    ]


def test_an_initial_at_a_sentence_end_still_ends_it() -> None:
    text = "Both forms are vitamin K. It is fat-soluble. We grew E. coli in broth."
    for splitter in (SentenceSplitter.default(), SentenceSplitter.train([text])):
        assert _sentences(splitter, text) == [
            "Both forms are vitamin K.",
            "It is fat-soluble.",
            "We grew E. coli in broth.",
        ]


def test_the_shipped_list_is_punkt_types() -> None:
    types = shipped_abbreviations()
    assert {"al", "e.g", "i.e", "fig", "vs", "approx", "u.s", "vol", "res"} <= types
    assert not any(t.endswith(".") or t != t.lower() for t in types)


def test_stored_parameters_split_exactly_as_the_trained_splitter() -> None:
    trained = SentenceSplitter.train([ISSUE, SCIENCE, (DOCS / "tea.txt").read_text()])
    again = SentenceSplitter.from_dict(json.loads(trained.to_json()))
    assert again.to_json() == trained.to_json()
    for text in (ISSUE, SCIENCE):
        assert again.spans(text) == trained.spans(text)
    with pytest.raises(ValueError, match="not a sentence-splitter file"):
        SentenceSplitter.from_dict({"format": 99})


def test_passages_use_the_splitter_given_and_stay_verbatim() -> None:
    doc = Document(source="s.txt", text=f"Methods\n\n{SCIENCE}\n\n{ISSUE}\n")
    splitter = SentenceSplitter.train([doc.text])
    passages = split_document(doc, max_chars=500, min_chars=0, overlap=0, sentences=splitter)
    for p in passages:
        assert p.text == doc.text[p.start : p.end]
        for s, e in p.sentences:
            assert not p.text[s:e].endswith(("et al. (2019)", "Fig.", "i.e.", "e.g.", "Dr."))
    spans = sentence_spans(doc.text, 0, len(doc.text), 500, splitter)
    assert "Dr. Smith of the U.S. Navy led the study." in [doc.text[s.start : s.end] for s in spans]


def test_the_index_stores_its_splitter_and_additions_reuse_it(
    fake_settings: Settings, tmp_path: Path
) -> None:
    shutil.copytree(DOCS, fake_settings.corpus_dir)
    service.build(fake_settings, replace_all=True)
    index_dir = fake_settings.index_dir
    entry = json.loads((index_dir / "manifest.json").read_text())["sentences"]
    assert entry["documents"] == len(list(fake_settings.corpus_dir.iterdir()))
    assert (index_dir / entry["file"]).is_file()
    trained = store.load(index_dir).sentences
    assert trained.documents == entry["documents"]

    extra = tmp_path / "extra.txt"
    extra.write_text(SCIENCE + "\n")
    service.build(fake_settings, [extra])
    index = store.load(index_dir)
    assert index.manifest["sentences"] == entry  # not trained again: the same parameters
    assert index.sentences.to_json() == trained.to_json()
    added = [
        index.passage(i) for i in range(index.size) if index.passage(i).source.endswith("extra.txt")
    ]
    cuts = [p.text[s:e] for p in added for s, e in p.sentences]
    assert cuts == [text for text in _sentences(trained, SCIENCE)]


def test_a_damaged_splitter_file_is_one_error_that_names_the_fix(fake_index: Settings) -> None:
    index_dir = fake_index.index_dir
    entry = json.loads((index_dir / "manifest.json").read_text())["sentences"]
    (index_dir / entry["file"]).write_text("{}")
    with pytest.raises(store.IndexUnusable, match="rebuild with `chatbot index build`"):
        store.load(index_dir)


def test_training_reads_at_most_max_chars() -> None:
    texts = [SCIENCE] * 50
    capped = SentenceSplitter.train(texts, max_chars=len(SCIENCE) * 3)
    assert capped.documents == 3
    assert SentenceSplitter.train(texts).documents == 50
