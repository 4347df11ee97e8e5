"""Papers indexed end to end: front matter, reference lists and captions become passages of
their own kind, and front matter and references answer only questions about them."""

from __future__ import annotations

import json
import shutil

import pytest

from chatbot import service, store
from chatbot.config import Settings
from chatbot.structure import find_regions

from .conftest import DATA
from .test_hardening_index import cli

PAPERS = DATA / "papers"


@pytest.fixture
def papers(fake_settings: Settings) -> Settings:
    shutil.copytree(PAPERS, fake_settings.corpus_dir)
    service.build(fake_settings, replace_all=True)
    return fake_settings


def _ask(settings: Settings, question: str):
    return service.open_retriever(settings).ask(question, k=3)


def test_passages_never_straddle_a_region_and_carry_its_kind(papers: Settings) -> None:
    index = store.load(papers.index_dir)
    kinds = set()
    for source in index.documents:
        doc = index.document(source)
        assert doc.regions == [(r.start, r.end, r.kind) for r in find_regions(doc)]
        for i in range(index.size):
            p = index.passage(i)
            if p.source != source:
                continue
            assert p.text == doc.text[p.start : p.end]
            inside = [k for s, e, k in doc.regions if s < p.end and p.start < e]
            assert inside in ([], [p.kind]), (p.text, inside)
            if not inside:
                assert p.kind == "body"
            else:
                s, e, _ = next(r for r in doc.regions if r[0] < p.end and p.start < r[1])
                assert s <= p.start and p.end <= e  # wholly inside its region
            kinds.add(p.kind)
    assert kinds == {"body", "front", "references", "caption"}
    assert int(index.kinds.astype(bool).sum()) == sum(
        index.passage(i).kind != "body" for i in range(index.size)
    )


def test_index_list_shows_what_was_recognised(
    papers: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli("index", "list", settings=papers) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "passages\tbytes\tindexed at\trecognised\tdocument"
    row = next(line.split("\t") for line in lines if line.endswith("ventilation.txt"))
    assert "front matter" in row[3] and "references 3 entries" in row[3] and "caption" in row[3]
    plain = next(line.split("\t") for line in lines if line.endswith("plain_notes.txt"))
    assert plain[3] == "no front matter, captions or references"


def test_front_matter_and_references_answer_only_questions_about_them(papers: Settings) -> None:
    # Words of the author line, the affiliation and a reference title: without the rule,
    # BM25 would put those passages first.
    for question in (
        "Maria Rossi Jan Kowalski Aiko Tanaka",
        "Department of Virology University of Padua",
        "Aerosol transmission in schools J Infect Dis",
    ):
        answer = _ask(papers, question)
        assert answer.hits and all(h.kind in ("body", "caption") for h in answer.hits), question
    authors = _ask(papers, "Who are the authors of the paper?")
    assert any(h.kind == "front" for h in authors.hits)
    refs = _ask(papers, "Which references does the paper cite?")
    assert any(h.kind == "references" for h in refs.hits)


def test_the_kind_is_in_the_json_of_a_hit_that_is_not_body(papers: Settings) -> None:
    answer = _ask(papers, "Who are the authors of the paper?")
    records = [h.to_dict() for h in answer.hits]
    for hit, record in zip(answer.hits, records, strict=True):
        assert record.get("kind", "body") == hit.kind
        assert ("kind" in record) == (hit.kind != "body")  # body hits keep the old shape
    assert "front" in [r.get("kind") for r in json.loads(json.dumps(records))]


def test_an_index_of_only_front_matter_answers_nothing_else(fake_settings: Settings) -> None:
    corpus = fake_settings.corpus_dir
    corpus.mkdir(parents=True)
    lines = (PAPERS / "ventilation.txt").read_text().split("\n\nAbstract")[0]
    (corpus / "front.txt").write_text(lines + "\n")
    service.build(fake_settings, replace_all=True)
    answer = _ask(fake_settings, "carbon dioxide in classrooms")
    assert not answer.answered and answer.hits == []


def test_the_chat_names_a_passage_that_is_not_body_text(papers: Settings) -> None:
    from chatbot.app import source_label

    answer = _ask(papers, "Who are the authors of the paper?")
    front = next(h for h in answer.hits if h.kind == "front")
    assert source_label(front).endswith("(front matter)")
    body = next(h for h in _ask(papers, "carbon dioxide proxy for rebreathed air").hits)
    assert body.kind == "body" and "(" not in source_label(body)


def test_a_paper_gets_longer_passages_than_other_documents(tmp_path) -> None:
    from chatbot.config import Settings as S
    from chatbot.documents import load_document
    from chatbot.splitter import split_document

    body = " ".join(
        f"Finding {n} of the cohort study was that ventilation mattered in room {n}."
        for n in range(30)
    )
    front = (PAPERS / "ventilation.txt").read_text().split("\n\nAbstract")[0]
    (tmp_path / "paper.txt").write_text(f"{front}\n\nAbstract\n{body}\n")
    (tmp_path / "notes.txt").write_text(f"Notes\n\n{body}\n")
    settings = S().splitter_settings()
    assert settings["paper_max_chars"] == 800
    paper = split_document(load_document(tmp_path / "paper.txt"), **settings)
    notes = split_document(load_document(tmp_path / "notes.txt"), **settings)
    longest = max(len(p.text) for p in paper if p.kind == "body")
    assert 500 < longest <= 800
    assert max(len(p.text) for p in notes) <= 500
