"""Tests for chatbot.evaluate: normalisation, matching, metrics, thresholds and the report."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatbot.evaluate import (
    ABOVE_ALL,
    Evaluation,
    QuestionResult,
    best_threshold,
    match_rank,
    matches,
    metrics,
    normalize,
    write_report,
)


def _record(qid: str, question: str, answered: bool, confidence: float, texts: list[str]) -> dict:
    """A record shaped like ``Answer.to_dict()``."""
    return {
        "id": qid,
        "question": question,
        "answered": answered,
        "answer": texts[0] if answered and texts else "",
        "confidence": confidence,
        "passages": [
            {
                "rank": i,
                "text": text,
                "score": 0.5,
                "source": f"doc{i}.md",
                "start": 0,
                "end": len(text),
                "heading": "",
                "highlight": {"start": 0, "end": len(text)},
            }
            for i, text in enumerate(texts, 1)
        ],
    }


# --------------------------------------------------------------------------- normalisation


def test_normalize() -> None:
    assert (
        normalize("  It\u2019s   the\u00a0\u201cMain\u201d\tStreet \u2014  OK\n")
        == 'it\'s the "main" street - ok'
    )
    assert normalize("\uff26\uff35\uff2c\uff2c width \ufb01") == "full width fi"  # NFKC
    assert normalize("Straße") == "strasse"  # casefold, not just lower
    assert normalize("a\u2013b\u2212c") == "a-b-c"


def test_matches() -> None:
    passage = "Refunds are issued within 30\u00a0days of purchase — no questions asked."
    assert matches(passage, ["30 DAYS"])
    assert matches(passage, ["nope", "purchase - no questions"])
    assert not matches(passage, ["60 days"])
    assert not matches(passage, [])
    assert not matches(passage, ["  ", ""])  # blank expected never matches everything


@given(st.text())
def test_normalize_is_idempotent(text: str) -> None:
    assert normalize(normalize(text)) == normalize(text)


@given(st.text(min_size=1), st.text(), st.text())
def test_expected_inside_passage_matches(expected: str, before: str, after: str) -> None:
    if normalize(expected):
        assert matches(before + " " + expected + " " + after, [expected])


# --------------------------------------------------------------------------- metrics


def test_metrics_on_hand_made_ranks() -> None:
    """Six questions, k=3; the top passage is right where the rank is 1.

    rank     1     2     None  1     4     None
    answered yes   yes   yes   no    no    no
    -> answered right 1, answered wrong 2, abstained on a wrong top 2, on a right top 1
    """
    ranks = [1, 2, None, 1, 4, None]
    m = metrics(ranks, 3, answered=[True, True, True, False, False, False])
    assert (m.n, m.k) == (6, 3)
    assert m.hit1 == 2 / 6
    assert m.hitk == 3 / 6  # ranks 1, 2, 1; rank 4 is beyond k
    assert m.mrr == pytest.approx((1 + 1 / 2 + 1 + 1 / 4) / 6)  # uncut: rank 4 counts
    assert (m.answered_right, m.answered_wrong) == (1, 2)
    assert (m.abstained_right, m.abstained_wrong, m.abstained) == (2, 1, 3)
    assert m.abstain_rate == 0.5
    assert m.accuracy == 3 / 6  # answered right + abstained on a wrong top passage

    cut = metrics(ranks, 5, mrr_k=2)  # a plain ranking: every question answered
    assert cut.hitk == 4 / 6
    assert cut.mrr == pytest.approx((1 + 1 / 2 + 1) / 6)  # ranks over 2 add nothing
    assert (cut.answered_right, cut.answered_wrong, cut.abstained) == (2, 4, 0)

    empty = metrics([], 3)
    assert (empty.n, empty.hit1, empty.hitk, empty.mrr) == (0, 0.0, 0.0, 0.0)
    assert (empty.abstain_rate, empty.accuracy) == (0.0, 0.0)
    with pytest.raises(ValueError, match="2 ranks but 1 answered"):
        metrics([1, None], 3, answered=[True])


def test_summary_is_the_metrics_of_the_ranks() -> None:
    ev = _four_questions()
    m = metrics([1, 2, None, 1], 3, answered=[True, True, False, False])
    assert ev.metrics() == m
    s = ev.summary()
    assert (s["hit@1"], s["hit@k"], s["mrr"]) == (m.hit1, m.hitk, m.mrr)
    assert (s["abstain_rate"], s["accuracy"]) == (m.abstain_rate, m.accuracy)


def test_match_rank() -> None:
    texts = ["Nothing here.", "Refunds within 30\u00a0days.", "30 days again"]
    assert match_rank(texts, ["30 DAYS"]) == 2
    assert match_rank(texts, ["60 days"]) is None
    assert match_rank(texts, ["  "]) is None  # blank expected never matches
    assert match_rank([], ["x"]) is None


def _four_questions() -> Evaluation:
    """Hand-computable example (threshold 0.5, k=3).

    q1 answered, conf 0.9, right passage at rank 1      -> answered right
    q2 answered, conf 0.6, right passage at rank 2      -> answered wrong
    q3 abstained, conf 0.2, no right passage            -> abstained correctly
    q4 abstained, conf 0.4, right passage at rank 1     -> abstained wrongly
    q5 has no expected answer                           -> ignored
    """
    ev = Evaluation(threshold=0.5, k=3)
    right = "Refunds are issued within 30 days."
    other = "Our office is on Main Street."
    ev.add(_record("q1", "Refund window?", True, 0.9, [right, other]), ["30 days"])
    ev.add(_record("q2", "Refund window?", True, 0.6, [other, right, other]), ["30 days"])
    ev.add(_record("q3", "Refund window?", False, 0.2, [other, other, other]), ["30 days"])
    ev.add(_record("q4", "Refund window?", False, 0.4, [right]), ["30 DAYS", "one month"])
    assert ev.add(_record("q5", "Other?", True, 0.8, [other]), None) is None
    return ev


def test_summary_hand_computed() -> None:
    ev = _four_questions()
    assert [r.rank for r in ev.results] == [1, 2, None, 1]
    s = ev.summary()
    assert s["n"] == 4
    assert s["hit@1"] == 0.5  # q1, q4
    assert s["hit@k"] == 0.75  # q1, q2, q4
    assert s["mrr"] == pytest.approx((1 + 1 / 2 + 0 + 1) / 4, abs=1e-12)  # 0.625
    assert s["abstain_rate"] == 0.5
    assert s["answered_right"] == 1
    assert s["answered_wrong"] == 1
    assert s["accuracy"] == 0.5  # q1 and q3 handled correctly
    assert s["threshold"] == 0.5
    assert s["without_expected"] == 1
    # Accuracy by threshold: 0 -> 2/4, 0.2 -> 2/4, 0.4 -> 3/4, 0.6 -> 2/4, 0.9 -> 3/4,
    # 1.01 -> 2/4. 0.4 and 0.9 tie; the higher threshold wins.
    assert s["best_threshold"] == 0.9
    assert s["best_accuracy"] == 0.75


def test_best_threshold_directly() -> None:
    def qr(conf: float, rank: int | None) -> QuestionResult:
        return QuestionResult("i", "q", ["x"], True, conf, rank, "", "")

    assert best_threshold([]) == (ABOVE_ALL, 0.0)
    # All top answers right: answering everything is perfect.
    assert best_threshold([qr(0.3, 1), qr(0.7, 1)]) == (0.3, 1.0)
    # All wrong: abstain on everything.
    assert best_threshold([qr(0.3, 2), qr(0.7, None)]) == (ABOVE_ALL, 1.0)
    # Separable: wrong answers below right ones.
    assert best_threshold([qr(0.2, None), qr(0.35, 3), qr(0.6, 1), qr(0.8, 1)]) == (0.6, 1.0)


def test_best_threshold_matches_brute_force() -> None:
    import random

    rng = random.Random(7)
    results = [
        QuestionResult(
            str(i), "q", ["x"], True, round(rng.random(), 2), rng.choice([1, 2, None]), "", ""
        )
        for i in range(300)
    ]
    candidates = sorted({r.confidence for r in results} | {0.0, ABOVE_ALL})
    accs = [(sum(r.correct_at(t) for r in results) / len(results), t) for t in candidates]
    best_acc, best_t = max(accs)  # max over (acc, t): ties go to the higher t
    assert best_threshold(results) == (best_t, best_acc)


def test_empty_evaluation() -> None:
    ev = Evaluation(threshold=0.5, k=3)
    s = ev.summary()
    assert s["n"] == 0 and s["hit@1"] == 0.0 and s["mrr"] == 0.0
    assert "questions evaluated" in ev.format_text()


def test_rank_beyond_k_counts_for_mrr_not_hit_at_k() -> None:
    ev = Evaluation(threshold=0.5, k=2)
    ev.add(_record("a", "q", True, 0.9, ["no", "no", "yes it is"]), ["yes"])
    s = ev.summary()
    assert (s["hit@1"], s["hit@k"]) == (0.0, 0.0)
    assert s["mrr"] == pytest.approx(1 / 3)


def test_format_text_is_aligned() -> None:
    text = _four_questions().format_text()
    lines = text.splitlines()
    assert any(line.startswith("hit@3") and line.endswith("0.750") for line in lines)
    assert any("MRR" in line and line.endswith("0.625") for line in lines)
    assert any(line.startswith("best threshold") and "0.900" in line for line in lines)
    value_columns = {len(line) - len(line[line.index("  ") :].lstrip()) for line in lines}
    assert len(value_columns) == 1  # every value starts in the same column


# --------------------------------------------------------------------------- report


def test_report(tmp_path: Path) -> None:
    ev = _four_questions()
    ev.add(
        _record("x<1>", "<script>alert('x')</script>", True, 0.7, ["<b>bold</b> " + "z" * 500]),
        ["<b>"],
    )
    out = tmp_path / "report.html"
    out.write_text("previous report", encoding="utf-8")
    write_report(ev, str(out), title="Eval & <test>")
    page = out.read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temp file left behind
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "x&lt;1&gt;" in page and "&lt;b&gt;bold&lt;/b&gt;" in page
    assert "<title>Eval &amp; &lt;test&gt;</title>" in page
    assert "z" * 299 not in page  # top answer truncated to 300 chars
    match = re.search(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert match is not None
    assert base64.b64decode(match.group(1)).startswith(b"\x89PNG\r\n\x1a\n")
    # Summary numbers for the five questions: hit@1 3/5, MRR (1 + .5 + 0 + 1 + 1)/5.
    assert '<th>hit@1</th><td class="num">0.600</td>' in page
    assert '<th>MRR</th><td class="num">0.700</td>' in page
    assert page.count('<tr class="') == 5


def test_report_empty_evaluation(tmp_path: Path) -> None:
    out = tmp_path / "empty.html"
    write_report(Evaluation(threshold=0.5, k=3), str(out))
    assert 'src="data:image/png;base64,' in out.read_text(encoding="utf-8")


def test_match_predicate_replaces_text_matching() -> None:
    """``match`` (e.g. gold-span coverage) decides rightness; ``expected`` is only shown."""
    ev = Evaluation(threshold=0.5, k=3)
    record = _record("s", "q", True, 0.9, ["1998 in Paris", "1998 in Rome", "x"])
    by_source = ev.add(record, ["1998"], match=lambda p: p["source"] == "doc2.md")
    assert by_source is not None and by_source.rank == 2
    assert ev.add(record, ["1998"]).rank == 1  # text matching: the first passage holds "1998"
    assert ev.add(record, ["1998"], match=lambda p: False).rank is None
    assert ev.add(record, None, match=lambda p: True) is None  # nothing expected: counted only
    assert ev.summary()["without_expected"] == 1
