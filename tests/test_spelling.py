"""Spelling correction against the documents' words: only unknown words one edit away."""

from __future__ import annotations

import pytest

from chatbot import service
from chatbot.config import Settings
from chatbot.spelling import Speller, _one_edit

TEXT = "Vitamin K2 is made in Japan. Controlled trials of vitamin K2; osteoclasts break bone."


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("vitamn", "vitamin", True),  # insert
        ("vitamiin", "vitamin", True),  # delete
        ("vitamon", "vitamin", True),  # substitute
        ("vitmain", "vitamin", True),  # swap neighbours
        ("vtmain", "vitamin", False),
        ("vitamin", "vitamin", False),
        ("japn", "japanese", False),
    ],
)
def test_one_edit(a: str, b: str, expected: bool) -> None:
    assert _one_edit(a, b) is expected


def test_corrects_only_unknown_words_one_edit_away() -> None:
    sp = Speller([TEXT])
    assert sp.correct("vitamn k2 made in japn") == "vitamin k2 made in japan"
    assert sp.correct("controled trials") == "controlled trials"
    assert sp.correct("Vitmain K2, osteoclast!") == "vitamin K2, osteoclasts!"
    assert sp.correct("bone cells in Japan") == "bone cells in Japan"  # nothing to fix
    assert Speller(["such bones"]).correct("much bones") == "much bones"  # stopwords stay
    assert sp.correct("warfarin and pregnancy") == "warfarin and pregnancy"  # no near word
    assert sp.correct("vtmain") == "vtmain"  # two edits away


def test_known_words_are_never_corrected() -> None:
    sp = Speller(["The bone is strong."])
    assert sp.correct("bond") == "bone"
    assert sp.correct("bond", known=lambda w: w == "bond") == "bond"


def test_most_frequent_document_word_wins() -> None:
    sp = Speller(["cells cells cells calls"])
    assert sp.correct("cellz") == "cells"


def test_no_correction_without_a_tokenizer_vocabulary(fake_index: Settings) -> None:
    # The fake embedder cannot tell "help" (a word) from "calcim" (a typo): nothing changes.
    r = service.open_retriever(fake_index)
    assert r.ask("How much calcim does walking help?").query == "How much calcim does walking help?"
