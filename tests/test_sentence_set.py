"""The labelled sentence set (tests/data/sentences.jsonl) is well-formed and has real traps."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import DATA

SET = DATA / "sentences.jsonl"
HELDOUT = DATA / "sentences_heldout.jsonl"  # labelled without looking at any splitter
# each set with its minimum numbers of items and sentences
SETS = pytest.mark.parametrize(
    ("path", "min_items", "min_sentences"),
    [(SET, 200, 500), (HELDOUT, 150, 300)],
    ids=["set", "heldout"],
)
BENCH = Path(__file__).resolve().parent.parent / "bench" / "sentences.py"
COVID_QA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "covid-qa"
KINDS = {
    "abbreviation",
    "decimal",
    "initials",
    "ellipsis",
    "quote",
    "list",
    "citation",
    "caption",
    "plain",
}
# The list and the common ones the set must exercise (as written in some text).
ABBREVIATIONS = (
    "et al.",
    "e.g.",
    "i.e.",
    "Fig.",
    "Figs.",
    "Tab.",
    "Eq.",
    "Ref.",
    "vs.",
    "approx.",
    "ca.",
    "cf.",
    "Dr.",
    "Prof.",
    "No.",
    "Vol.",
    "U.S.",
    "Mr.",
    "Mrs.",
    "Ms.",
    "St.",
    "Jr.",
    "Inc.",
    "Ltd.",
    "Co.",
    "Corp.",
    "vol.",
    "pp.",
    "p.",
    "ed.",
    "eds.",
    "min.",
    "max.",
    "no.",
    "nos.",
    "resp.",
    "incl.",
    "viz.",
    "etc.",
    "sp.",
    "spp.",
    "E. coli",
    "S. aureus",
    "J. R. R. Tolkien",
)


def _rows(path: Path = SET) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_sentences", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@SETS
def test_items_are_well_formed(path: Path, min_items: int, min_sentences: int) -> None:
    rows = _rows(path)
    assert len(rows) >= min_items
    ids = [r["id"] for r in rows]
    assert len(set(ids)) == len(ids)
    for r in rows:
        assert set(r) == {"id", "kind", "source", "sentences", "sep"}, r["id"]
        assert r["source"] == "constructed" or re.fullmatch(
            r"covid-qa-dev article \d+", r["source"]
        )
        assert r["sep"] in (" ", "\n"), r["id"]
        assert 1 <= len(r["sentences"]) <= 5, r["id"]
        for s in r["sentences"]:
            assert isinstance(s, str) and s and s == s.strip(), r["id"]
            assert "\n" not in s, r["id"]
    assert sum(len(r["sentences"]) for r in rows) >= min_sentences


def test_set_covers_the_kinds_and_abbreviations() -> None:
    rows = _rows()
    assert {r["kind"] for r in rows} >= KINDS
    text = "\n".join(r["sep"].join(r["sentences"]) for r in rows)
    for abbr in ABBREVIATIONS:
        assert re.search(r"(?<![\w.])" + re.escape(abbr), text), abbr
    # etc., et al. and U.S. also end sentences, before a capitalised word
    for abbr in ("etc.", "et al.", "U.S."):
        assert any(
            abbr in r["sentences"][i] and r["sentences"][i].endswith(abbr)
            for r in rows
            for i in range(len(r["sentences"]) - 1)
        ), abbr


@pytest.mark.parametrize("path", [SET, HELDOUT], ids=["set", "heldout"])
def test_covid_items_come_from_the_dev_half_verbatim(path: Path) -> None:
    rows = [r for r in _rows(path) if r["source"] != "constructed"]
    assert len(rows) >= 60
    articles = {int(r["source"].rsplit(" ", 1)[1]) for r in rows}
    assert articles <= set(range(49))  # articles 49 and later are the held-out half
    path = COVID_QA / "200423_covidQA.json"
    if not path.exists():
        pytest.skip("the shared COVID-QA file is not here")
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    for r in rows:
        art = int(r["source"].rsplit(" ", 1)[1])
        assert r["sep"].join(r["sentences"]) in data[art]["paragraphs"][0]["context"], r["id"]


def test_gold_boundaries_and_untrained_punkt_figures() -> None:
    """The bench computes the before figures; untrained Punkt falls into the set's traps."""
    bench = _bench()
    items = bench.load_items(SET)
    item = next(i for i in items if len(i.sentences) >= 3)
    assert sorted(item.gold) == [
        len(item.sentences[0]) + 1,
        len(item.sentences[0]) + len(item.sentences[1]) + 2,
    ]
    assert bench.boundaries("A b.  C d. E", [(0, 4), (4, 10), (10, 12)]) == {6, 11}
    sc = bench.score(items, bench.punkt_untrained())
    p, r, f = bench.prf(sc.tp, sc.fp, sc.fn)
    assert sc.tp + sc.fn == sum(len(i.gold) for i in items)
    assert 0 < p < 0.9 and 0 < r < 1 and 0 < f < 1
    perfect = bench.score(items, lambda text: _gold_spans(items, text))
    assert (perfect.fp, perfect.fn) == (0, 0)


def _gold_spans(items: list, text: str) -> list[tuple[int, int]]:
    item = next(i for i in items if i.text == text)
    starts = [0, *sorted(item.gold)]
    return list(zip(starts, [*starts[1:], len(text)], strict=True))
