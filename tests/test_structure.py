"""Front matter, captions and reference lists found per document (chatbot.structure)."""

from __future__ import annotations

import json
import os
import time
from functools import lru_cache
from pathlib import Path

import pytest

from chatbot.config import PROJECT_ROOT
from chatbot.structure import (
    Region,
    Summary,
    asks_about,
    cut_points,
    describe,
    find_regions,
    kind_of,
    summarize,
)
from chatbot.types import Document

PAPERS = Path(__file__).parent / "data" / "papers"
COVID_DEV = 49  # articles 0..48: the development half (the rest is never tuned on)


def _covid_path() -> Path | None:
    candidates = [
        os.environ.get("CHATBOT_COVID_QA", ""),
        PROJECT_ROOT.parent / "shared" / "datasets" / "covid-qa" / "200423_covidQA.json",
        "/work/shared/datasets/covid-qa/200423_covidQA.json",
    ]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


@lru_cache(maxsize=1)
def _covid_dev() -> list[dict]:
    path = _covid_path()
    if path is None:
        pytest.skip("COVID-QA (200423_covidQA.json) not found: set CHATBOT_COVID_QA to its path")
    return json.loads(path.read_text(encoding="utf-8"))["data"][:COVID_DEV]


def _doc(text: str, source: str = "paper.txt") -> Document:
    return Document(source=source, text=text)


def _paper(name: str) -> Document:
    return _doc((PAPERS / name).read_text(encoding="utf-8"), name)


def _lines_of(doc: Document, regions: list[Region]) -> list[tuple[str, int, int]]:
    """Each region as (kind, first line number, last line number), lines counted from 0."""
    t = doc.text
    return [(r.kind, t.count("\n", 0, r.start), t.count("\n", 0, r.end)) for r in regions]


def _check_invariants(doc: Document, regions: list[Region]) -> None:
    text = doc.text
    prev_end = -1
    for r in regions:
        assert r.kind in {"front", "references", "caption"}
        assert 0 <= r.start < r.end <= len(text)
        assert r.start > prev_end, "regions must be sorted and non-overlapping"
        assert r.start == 0 or text[r.start - 1] == "\n", "a region starts at a line start"
        assert r.end == len(text) or text[r.end] in "\r\n", "a region ends at a line end"
        assert not text[r.start : r.end].endswith(("\n", "\r"))
        prev_end = r.end


# --- the test papers ------------------------------------------------------------------------


def test_journal_paper_front_matter_captions_and_headed_references() -> None:
    doc = _paper("ventilation.txt")
    regions = find_regions(doc)
    _check_invariants(doc, regions)
    assert _lines_of(doc, regions) == [
        ("front", 1, 7),  # authors .. keywords; the title line (0) is left out
        ("caption", 17, 17),
        ("caption", 19, 19),
        ("references", 23, 26),  # the heading and its three entries
    ]
    text = doc.text
    front = text[regions[0].start : regions[0].end]
    assert front.startswith("Maria Rossi1, Jan Kowalski2 and Aiko Tanaka1*")
    assert front.endswith("Keywords: coronavirus; ventilation; schools")
    assert text[regions[1].start : regions[1].end].startswith("Figure 1. Mean carbon dioxide")
    assert text[regions[3].start : regions[3].end].startswith("References\n[1] Rossi M")
    # The prose paragraph with "et al.", an inline DOI and a year is body; so is the one
    # that starts "Table 1 shows", the abstract and the acknowledgements after the list.
    for needle in (
        "Rossi et al. reported a cluster",
        "Table 1 shows that classrooms",
        "Poorly ventilated classrooms",
        "We thank the head teachers",
    ):
        pos = text.index(needle)
        assert kind_of(regions, pos, pos + len(needle)) == "body", needle
    assert describe(regions, text) == "front matter 7 lines, 2 captions, references 3 entries"


def test_unlabelled_front_matter_and_unheaded_trailing_references() -> None:
    doc = _paper("field_outbreak.txt")
    regions = find_regions(doc)
    _check_invariants(doc, regions)
    assert _lines_of(doc, regions) == [
        ("front", 1, 3),  # author names, journal citation line, DOI URL
        ("caption", 10, 10),  # Fig. 2:
        ("caption", 12, 12),  # Supplementary Table 2
        ("references", 16, 19),  # four numbered entries closing the paper, no heading
    ]
    # "Table 1." continuing a sentence from the line above is not a caption.
    pos = doc.text.index("Table 1. Most cases")
    assert kind_of(regions, pos, pos + 20) == "body"
    assert summarize(regions, doc.text) == Summary(front_lines=3, captions=2, references=4)


def test_web_page_furniture_labelled_metadata_and_bibliography() -> None:
    doc = _paper("mask_news.txt")
    regions = find_regions(doc)
    _check_invariants(doc, regions)
    assert _lines_of(doc, regions) == [
        ("front", 1, 7),  # URL, "Skip to main content", "Menu", "Share", authors, date, licence
        ("references", 15, 17),  # "Bibliography" and two APA entries; "Related articles" ends it
    ]
    text = doc.text
    for needle in ("Summary: Cloth masks", "Figure 3 shows filtration", "Related articles"):
        pos = text.index(needle)
        assert kind_of(regions, pos, pos + len(needle)) == "body", needle


def test_plain_document_has_no_regions() -> None:
    # A heading pair ("Materials and Methods"), "et al.", an e-mail address, a DOI and years
    # inside prose, and a paragraph starting "Figure 3 shows": all body.
    doc = _paper("plain_notes.txt")
    assert find_regions(doc) == []
    assert describe([], doc.text) == "no front matter, captions or references"
    for name in ("bones.md", "tea.txt"):
        other = Path(__file__).parent / "data" / "docs" / name
        assert find_regions(_doc(other.read_text(encoding="utf-8"), name)) == []


def test_prose_never_front_matter() -> None:
    text = (
        "A title\n\n"
        "Published in 2020, the report found that masks reduced transmission in households.\n\n"
        "Smith et al. (2019) showed that the virus spreads by droplets; see doi:10.1000/x1.\n"
    )
    assert find_regions(_doc(text)) == []


def test_crlf_lines_and_line_boundaries() -> None:
    text = "Title\r\nDOI: 10.1000/abc.123\r\nLicense: cc-by\r\n\r\nAbstract: Body text here.\r\n"
    doc = _doc(text)
    regions = find_regions(doc)
    _check_invariants(doc, regions)
    assert [(r.kind, text[r.start : r.end]) for r in regions] == [
        ("front", "DOI: 10.1000/abc.123\r\nLicense: cc-by")
    ]


def test_kind_of_and_cut_points() -> None:
    regions = [Region(10, 20, "front"), Region(30, 60, "references")]
    assert kind_of(regions, 0, 10) == "body"
    assert kind_of(regions, 12, 18) == "front"
    assert kind_of(regions, 15, 26) == "body"  # 5 of 11 characters inside: not mostly
    assert kind_of(regions, 15, 22) == "front"
    assert kind_of(regions, 25, 70) == "references"
    assert kind_of(regions, 5, 5) == "body"
    assert cut_points(regions) == [10, 20, 30, 60]
    assert cut_points([]) == []


def test_speed_on_a_40k_paper() -> None:
    base = (PAPERS / "ventilation.txt").read_text(encoding="utf-8")
    head, _, rest = base.partition("1. Introduction")
    body = rest.split("References")[0]
    text = (
        head
        + "1. Introduction"
        + body * (40_000 // len(body))
        + "References"
        + base.split("References")[1]
    )
    assert len(text) > 40_000
    doc = _doc(text)
    find_regions(doc)
    best = min(_timed(lambda: find_regions(doc)) for _ in range(5))
    assert best < 0.010, f"{best * 1000:.1f} ms for {len(text)} characters"


def _timed(fn) -> float:  # noqa: ANN001
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# --- COVID-QA development half --------------------------------------------------------------


def test_covid_qa_standard_front_matter() -> None:
    article = _covid_dev()[2]["paragraphs"][0]["context"]
    doc = _doc(article)
    regions = find_regions(doc)
    _check_invariants(doc, regions)
    assert [r.kind for r in regions] == ["front"]
    front = article[regions[0].start : regions[0].end]
    assert front.startswith("https://www.ncbi.nlm.nih.gov/pmc/articles/PMC5477389/")
    assert front.endswith("License: cc-by")
    assert "SHA: " in front and "Authors: Kin, Nathalie;" in front and "DOI: " in front
    # The abstract is the first body paragraph.
    pos = article.index("Abstract:")
    assert kind_of(regions, pos, pos + 40) == "body"


def test_covid_qa_web_page_with_reference_lists() -> None:
    article = _covid_dev()[10]["paragraphs"][0]["context"]  # a JAMA web page
    doc = _doc(article)
    regions = find_regions(doc)
    _check_invariants(doc, regions)
    lines = article.split("\n")

    def kind_at_line(i: int) -> str:
        start = sum(len(x) + 1 for x in lines[:i])
        return kind_of(regions, start, start + len(lines[i]))

    assert [kind_at_line(i) for i in range(14)] == ["body"] * 2 + ["front"] * 11 + ["body"]
    assert lines[44] == "References" and kind_at_line(44) == "references"
    assert all(kind_at_line(i) == "references" for i in range(45, 66))
    assert kind_at_line(66) == "body"  # "Comment" ends the list
    assert lines[87] == "REFERENCE" and kind_at_line(89) == "references"
    assert kind_at_line(90) == "body"  # "See More About"
    assert kind_at_line(36) == "front"  # "Published Online: ... doi:..."
    assert kind_at_line(40) == "body"  # "Funding/Support: ..." is answerable prose
    assert summarize(regions, article).references == 11


def test_covid_qa_dev_gold_answers_are_body() -> None:
    articles = _covid_dev()
    inside = total = 0
    counts: dict[str, int] = {}
    for article in articles:
        paragraph = article["paragraphs"][0]
        context = paragraph["context"]
        regions = find_regions(_doc(context))
        _check_invariants(_doc(context), regions)
        for r in regions:
            counts[r.kind] = counts.get(r.kind, 0) + 1
        for qa in paragraph["qas"]:
            for answer in qa["answers"]:
                total += 1
                start = answer["answer_start"]
                inside += kind_of(regions, start, start + 1) != "body"
    print(f"COVID-QA dev: regions {counts}; gold answers in non-body regions {inside}/{total}")
    assert inside == 0
    # Every article of the dev half opens with metadata that is recognised.
    assert counts["front"] >= len(articles)


# --- questions about the non-body parts ------------------------------------------------------

FRONT_QUESTIONS = [
    "Who are the authors?",
    "Who wrote this paper?",
    "Who is the author of the article?",
    "When was it published?",
    "When was the study published?",
    "What is the publication date?",
    "What is the DOI?",
    "What is the doi of this article?",
    "Which journal?",
    "In which journal was the paper published?",
    "Under what licence?",
    "Under which license is the article distributed?",
    "What is the title of the paper?",
    "Which authors contributed?",
    "What are the affiliations of the authors?",
    "Who is the corresponding author?",
    "What are the keywords?",
]
REFERENCE_QUESTIONS = [
    "Which studies are cited?",
    "What references does the paper use?",
    "Show me the references",
    "What is reference 12?",
    "What does the paper cite?",
    "List the bibliography",
    "Which sources are cited?",
    "What are the citations?",
    "What sources does the article rely on?",
    "Which papers are referenced in the review?",
    "Which authors are cited most?",
    "How many references are there?",
]
BODY_QUESTIONS = [
    "Who is at risk of severe disease?",
    "When did the outbreak start?",
    "Who discovered the virus?",
    "What did the authors conclude?",
    "What do the authors suggest about masks?",
    "According to the authors, what is the main cause of MTCT?",
    "Is there a licensed vaccine for MERS?",
    "What is the date of the first reported case?",
    "When was the virus first identified?",
    "What is the role of the corresponding receptor?",
    "What is the reference standard for diagnosis?",
    "What is the source of the outbreak?",
    "What is the most commonly cited reason for vaccine hesitancy?",
    "What was published about hydroxychloroquine in March?",
    "Who funded the vaccine trial?",
    "What is the reference genome used?",
    "The Roots miniseries was based on a novel by what author?",
    "Who are the authors of the WHO guidance on masks?",
    "Which Family Guy episodes contain Doctor Who references?",
    "What did DFDS cite as the reasons it terminated operations?",
    "What is it called when steam propels a turbo generator?",
]


@pytest.mark.parametrize("question", FRONT_QUESTIONS)
def test_asks_about_front_matter(question: str) -> None:
    assert asks_about(question) == {"front"}


@pytest.mark.parametrize("question", REFERENCE_QUESTIONS)
def test_asks_about_references(question: str) -> None:
    assert asks_about(question) == {"references"}


@pytest.mark.parametrize("question", BODY_QUESTIONS)
def test_asks_about_neither(question: str) -> None:
    assert asks_about(question) == set()


def test_markdown_front_matter_licence_boilerplate_and_preprint_footers() -> None:
    text = (
        "# Masks in schools\n"
        "**Authors:** Lee, Min; Park, Ji-woo\n"
        "arXiv:2103.01234v2 [q-bio.PE] 2 Mar 2021\n"
        "This is an open access article distributed under the terms of the Creative Commons "
        "Attribution License, which permits unrestricted use, provided the original work is "
        "properly cited.\n"
        "\n"
        "## Abstract\n"
        "Images in this guide are shared under a Creative Commons licence, which lets readers "
        "reuse them with attribution; the masks study is summarised below.\n"
        "\n"
        "medRxiv preprint doi: https://doi.org/10.1101/2020.03.03.20030593; this version "
        "posted March 6, 2020. The copyright holder for this preprint is the author/funder.\n"
        "\n"
        "Masks reduced transmission in classrooms by a third when worn by every pupil.\n"
        "\n"
        "© 2021 The Authors\n"
    )
    doc = _doc(text, "masks.md")
    regions = find_regions(doc)
    _check_invariants(doc, regions)
    assert _lines_of(doc, regions) == [("front", 1, 3), ("front", 8, 8), ("front", 12, 12)]
    pos = text.index("Images in this guide")  # prose mentioning a licence: body
    assert kind_of(regions, pos, pos + 50) == "body"


def test_document_opening_with_prose_has_no_front_matter() -> None:
    # No title line: the first paragraph is body, so the short lines after it are not
    # taken for front matter (only a labelled metadata line is).
    text = (
        "Paris, London and Rome were the first cities to report cases in the same week.\n"
        "Paris, London and Rome\n"
        "Keywords: travel; importation\n"
    )
    doc = _doc(text)
    assert _lines_of(doc, find_regions(doc)) == [("front", 2, 2)]
    # A long title line (even one ending "spp.") is still a title, and the metadata after it
    # is found.
    text = (
        "Controlled efficacy trial confirming toltrazuril resistance in a field isolate of "
        "ovine Eimeria spp.\n\nAuthors: Bouvier, Monique; Chen, Wei-Ju\n"
        "\nAbstract: Human coronaviruses cause colds.\n"
    )
    doc = _doc(text)
    assert _lines_of(doc, find_regions(doc)) == [("front", 2, 2)]
