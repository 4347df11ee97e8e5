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
    RightWrong,
    best_threshold,
    match_rank,
    matches,
    metrics,
    normalize,
    write_report,
)


def _record(
    qid: str,
    question: str,
    answered: bool,
    confidence: float,
    texts: list[str],
    tier: str | None = None,
) -> dict:
    """A record shaped like ``Answer.to_dict()``; without ``tier``, shaped like one written
    before tiers existed."""
    record = {
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
    if tier is not None:
        record["tier"] = tier
    return record


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
    # ECE: each confidence in its own bin; gaps |1 - 0.9|, |0 - 0.6|, |0 - 0.2|, |1 - 0.4|.
    assert "calibration error (ECE, 10 bins)  0.375" in lines  # 1.5 / 4
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


# --------------------------------------------------------------------------- tiers, calibration


def _tiered() -> Evaluation:
    """One question per tier and outcome (threshold 0.5, possible threshold 0.25).

    q1 answer   0.9  right top   -> right            q4 possible 0.3  wrong top -> possible-wrong
    q2 answer   0.6  wrong top   -> wrong            q5 none     0.2  right top -> missed
    q3 possible 0.4  right top   -> possible-right   q6 none     0.1  wrong top -> abstained
    q7 written before tiers (no "tier"), not answered, 0.05, wrong top -> none, abstained
    """
    ev = Evaluation(threshold=0.5, k=3, possible_threshold=0.25)
    right = "Refunds are issued within 30 days."
    other = "Our office is on Main Street."
    cases = [
        ("q1", "answer", 0.9, right),
        ("q2", "answer", 0.6, other),
        ("q3", "possible", 0.4, right),
        ("q4", "possible", 0.3, other),
        ("q5", "none", 0.2, right),
        ("q6", "none", 0.1, other),
    ]
    for qid, tier, conf, top in cases:
        ev.add(_record(qid, "Refund?", tier == "answer", conf, [top, other], tier), ["30 days"])
    ev.add(_record("q7", "Refund?", False, 0.05, [other]), ["30 days"])
    return ev


def test_question_result_tier() -> None:
    def qr(answered: bool, tier: str = "") -> QuestionResult:
        return QuestionResult("i", "q", ["x"], answered, 0.5, 1, "", "", tier)

    assert qr(False, "possible").tier == "possible"
    assert (qr(True).tier, qr(False).tier) == ("answer", "none")  # from answered
    assert qr(True, "maybe").tier == "answer"  # an unknown tier too
    assert [r.tier for r in _tiered().results] == [
        *["answer", "answer", "possible", "possible", "none", "none"],
        "none",
    ]


def test_tier_counts_and_summary() -> None:
    ev = _tiered()
    assert ev.tier_counts() == {
        "answer": RightWrong(1, 1),
        "possible": RightWrong(1, 1),
        "none": RightWrong(1, 2),
    }
    s = ev.summary()
    assert s["tiers"] == {
        "answer": {"right": 1, "wrong": 1},
        "possible": {"right": 1, "wrong": 1},
        "none": {"right": 1, "wrong": 2},
    }
    assert (s["answered_right"], s["answered_wrong"]) == (1, 1)
    assert s["abstain_rate"] == 5 / 7  # a possible answer is not answered
    assert s["possible_threshold"] == 0.25
    # Every confidence in its own bin: gaps 0.1, 0.6, 0.6, 0.3, 0.8, 0.1, 0.05.
    assert s["ece"] == pytest.approx(2.55 / 7)
    rows = dict(ev.rows())
    assert rows["possible answer right / wrong"] == "1 / 1"
    assert rows["not found, top right / wrong"] == "1 / 2"
    assert rows["calibration error (ECE, 10 bins)"] == "0.364"


def test_reliability_and_risk_coverage_of_the_top_passages() -> None:
    ev = _tiered()
    rel = ev.reliability(bins=2)  # [0, 0.5): 0.4 R, 0.3, 0.2 R, 0.1, 0.05; [0.5, 1]: 0.9 R, 0.6
    assert [(b.count, b.observed) for b in rel.bins] == [(5, 0.4), (2, 0.5)]
    assert rel.bins[0].predicted == pytest.approx(1.05 / 5)
    assert ev.risk_thresholds() == [0.1, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    at = {row.threshold: row for row in ev.risk_coverage()}
    assert (at[0.25].count, at[0.25].coverage, at[0.25].risk) == (4, 4 / 7, 0.5)
    assert (at[0.5].count, at[0.5].risk) == (2, 0.5)
    assert (at[0.9].count, at[0.9].risk) == (1, 0.0)
    assert [r.count for r in ev.risk_coverage([0.0, 1.0])] == [7, 0]
    # Without a known possible threshold only the answer threshold is added.
    assert Evaluation(threshold=0.55).risk_thresholds() == [
        *[0.1, 0.2, 0.3, 0.4, 0.5, 0.55],
        *[0.6, 0.7, 0.8, 0.9],
    ]


def test_report_shows_tiers_and_calibration(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    write_report(_tiered(), str(out))
    page = out.read_text(encoding="utf-8")
    listed = page.split("<h2>Questions</h2>")[1]
    assert re.findall(r'<tr class="([\w-]+)">', listed) == [
        *["right", "wrong", "possible-right", "possible-wrong", "missed"],
        *["abstained", "abstained"],
    ]
    assert listed.count("<td>possible answer</td>") == 2 and "<td>not found</td>" in listed
    assert "<td>possible, right</td>" in listed and "<td>possible, wrong</td>" in listed
    assert "tr.possible-right td {" in page and "tr.possible-wrong td {" in page

    def num(*cells: str) -> str:
        return "".join(f'<td class="num">{c}</td>' for c in cells)

    tiers = page.split("<h2>Tiers</h2>")[1].split("<h2>")[0]
    assert "<tr><td>possible answer</td>" + num("1", "1", "2") + "</tr>" in tiers
    assert "<tr><td>not found</td>" + num("1", "2", "3") + "</tr>" in tiers
    calibration = page.split("<h2>Calibration</h2>")[1].split("<h2>")[0]
    assert "<strong>ECE 0.364</strong> over 7 questions" in calibration
    assert "<tr><td>0.9&ndash;1.0</td>" + num("1", "0.900", "1.000", "+0.100") in calibration
    assert "<tr><td>0.6&ndash;0.7</td>" + num("1", "0.600", "0.000", "-0.600") in calibration
    assert "<tr>" + num("0.250", "4", "0.571", "0.500") + "<td>possible threshold</td>" in page
    assert "<tr>" + num("0.500", "2", "0.286", "0.500") + "<td>answer threshold</td>" in page
    assert page.count("<td>0.") == 7  # seven non-empty reliability bins


def test_report_without_a_possible_threshold_or_questions(tmp_path: Path) -> None:
    out = tmp_path / "empty.html"
    write_report(Evaluation(threshold=0.5, k=3), str(out))
    page = out.read_text(encoding="utf-8")
    assert "<strong>ECE 0.000</strong> over 0 questions" in page
    assert "possible threshold" not in page and "answer threshold" in page
    assert "<tr><td>possible answer</td>" in page
