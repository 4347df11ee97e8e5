"""Passages are verbatim slices, bounded, sentence-aware, and never a bare heading."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chatbot.documents import find_headings
from chatbot.splitter import split_document
from chatbot.types import Document

WORDS = st.sampled_from(
    ["Vitamin", "K2", "bone", "the", "μgm/day", "Dr.", "e.g.", "osteo-", "10–25%", "’s", "x" * 30]
)
SENT = st.builds(
    lambda ws, end: " ".join(ws) + end,
    st.lists(WORDS, min_size=1, max_size=40),
    st.sampled_from([".", "?", "!", "", ":"]),
)
SEP = st.sampled_from([" ", "  ", "\n", "\r\n", "\n\n", "\r\n\r\n", "\n \n\n", "\t"])


@st.composite
def documents(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.tuples(SENT, SEP), min_size=0, max_size=30))
    head = draw(st.sampled_from(["", "Title Line\n\n", "# Heading\n\n", "\n\n  "]))
    return head + "".join(s + sep for s, sep in parts)


@settings(max_examples=300, deadline=None)
@given(text=documents(), max_chars=st.integers(40, 500), overlap=st.integers(0, 2))
def test_passages_are_verbatim_and_bounded(text: str, max_chars: int, overlap: int) -> None:
    for markdown in (False, True):
        doc = Document("d.txt", text, headings=find_headings(text, markdown))
        passages = split_document(doc, max_chars=max_chars, min_chars=60, overlap=overlap)
        covered = set()
        for p in passages:
            assert p.text == text[p.start : p.end]
            assert len(p.text) <= max_chars
            assert p.text.strip() == p.text and p.text
            assert not any(h.start < p.end and p.start < h.end for h in doc.headings)
            for s, e in p.sentences:
                assert 0 <= s < e <= len(p.text)
            covered.update(range(p.start, p.end))
        # Every non-space character outside headings is in some passage.
        in_heading = set()
        for h in doc.headings:
            in_heading.update(range(h.start, h.end))
        for i, c in enumerate(text):
            if not c.isspace() and i not in in_heading and i not in covered:
                line = text[text.rfind("\n", 0, i) + 1 : i + 1]
                assert line.lstrip().startswith("#"), (i, c)  # only Markdown heading marks


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=0, max_size=600), st.integers(20, 300))
def test_any_unicode_text_splits_verbatim(text: str, max_chars: int) -> None:
    doc = Document("d.txt", text, headings=find_headings(text, markdown=False))
    for p in split_document(doc, max_chars=max_chars, min_chars=40, overlap=1):
        assert p.text == text[p.start : p.end]
        assert len(p.text) <= max_chars


def test_sentences_are_not_cut() -> None:
    text = "First sentence is here. Second one follows it. Third closes the paragraph."
    doc = Document("d.txt", text)
    passages = split_document(doc, max_chars=50, min_chars=10, overlap=0)
    assert [p.text for p in passages] == [
        "First sentence is here. Second one follows it.",
        "Third closes the paragraph.",
    ]


def test_overlong_sentence_is_cut_at_word_boundaries() -> None:
    text = " ".join(f"word{i}" for i in range(60)) + "."
    doc = Document("d.txt", text)
    passages = split_document(doc, max_chars=50, min_chars=10, overlap=0)
    assert len(passages) > 1
    for p in passages:
        assert len(p.text) <= 50
        assert text[p.start - 1] == " " if p.start else True
        assert p.end == len(text) or text[p.end] == " "


def test_headings_become_passage_headings(tmp_path) -> None:
    from chatbot.config import PROJECT_ROOT
    from chatbot.documents import load_document

    doc = load_document(PROJECT_ROOT / "corpus" / "vitamin_k2.txt")
    heads = [doc.text[h.start : h.end] for h in doc.headings]
    assert heads[:3] == [
        "Vitamin K2 Hidden Vitamin for Osteoporosis Prevention",
        "Vitamin K2",
        "Impact of Vitamin K2 on Bone Health",
    ]
    passages = split_document(doc)
    assert all(p.text not in heads for p in passages)
    dose = next(p for p in passages if "μgm/day" in p.text)
    assert dose.heading == "Use of Vitamin K2 for Treatment of Osteoporosis"
    # The quoted definition is prose, not a heading.
    assert not any(h.startswith("“Osteoporosis") for h in heads)


def test_markdown_headings(tmp_path) -> None:
    text = "# Bone health\n\nBones live.\n\n## Calcium\nCalcium is a mineral. It matters.\n"
    doc = Document("b.md", text, headings=find_headings(text, markdown=True))
    passages = split_document(doc, max_chars=400, min_chars=0, overlap=0)
    assert [(p.heading, p.text) for p in passages] == [
        ("Bone health", "Bones live."),
        ("Calcium", "Calcium is a mineral. It matters."),
    ]


def test_a_short_block_never_joins_the_last_one_across_a_heading_of_the_same_name() -> None:
    # found by test_passages_are_verbatim_and_bounded: two "Vitamin" headings
    text = "Vitamin.\n\nVitamin\n\nVitamin.\n\nVitamin\n\nVitamin. "
    doc = Document("d.txt", text, headings=find_headings(text, False))
    assert len(doc.headings) == 2
    for p in split_document(doc, max_chars=40, min_chars=60, overlap=0):
        assert not any(h.start < p.end and p.start < h.end for h in doc.headings), p
