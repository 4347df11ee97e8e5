"""Evaluation: the one place retrieval figures are computed, and a self-contained HTML report.

:func:`metrics` turns the rank of the first right passage per question (and, optionally,
whether each question was answered) into hit@1, hit@k, MRR, abstain rate and answered-but-wrong
counts. Everything that reports such figures goes through it: :class:`Evaluation` (``chatbot
ask`` with expected answers, ``chatbot eval``), :mod:`chatbot.squad` (ranking figures of
``chatbot eval --baselines`` and bench/quality.py) and the bench scripts.

A passage "matches" when one of the expected strings occurs in it after light normalisation
(case, whitespace, typographic quotes and dashes, NFKC), because answers are verbatim passages
and the expected strings are short snippets a person typed.

Each question also keeps its tier (answer / possible / none, :func:`chatbot.batchio.record_tier`):
the summary counts the tiers split by whether the top passage was right, and the report shows
how well the top passage's confidence is calibrated (:func:`chatbot.calibration.reliability`)
and what each threshold would answer and get wrong (:func:`chatbot.calibration.risk_coverage`).
"""

from __future__ import annotations

import base64
import bisect
import html
import io
import logging
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from .batchio import record_tier
from .calibration import DEFAULT_BINS, Reliability, RiskCoverage, reliability, risk_coverage
from .config import Settings
from .files import atomic_write
from .types import TIERS

logger = logging.getLogger(__name__)

ABOVE_ALL = 1.01  # a threshold above every confidence: abstain on everything
TOP_ANSWER_CHARS = 300  # how much of the top answer is kept per question (memory, report)
# Thresholds of the report's risk-coverage table (the configured ones are added).
RISK_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
TIER_NAMES = {"answer": "answer", "possible": "possible answer", "none": "not found"}

_WS = re.compile(r"\s+")
_CHAR_MAP = str.maketrans(
    {
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", "-"),
        **dict.fromkeys("\u00ad\u200b\u200c\u200d\u2060\ufeff", ""),
    }
)


def normalize(text: str) -> str:
    """Canonical form for matching: NFKC, unified quotes/dashes, casefolded, single spaces."""
    text = unicodedata.normalize("NFKC", text).translate(_CHAR_MAP).casefold()
    return _WS.sub(" ", text).strip()


def _normalized_expected(expected: Iterable[str]) -> list[str]:
    return [e for e in (normalize(x) for x in expected) if e]


def matches(passage_text: str, expected: Iterable[str]) -> bool:
    """True if any expected string (normalised, non-empty) occurs in the normalised passage."""
    return match_rank([passage_text], expected) == 1


def match_rank(texts: Iterable[str], expected: Iterable[str]) -> int | None:
    """1-based rank of the first of ``texts`` that :func:`matches` ``expected``, else None.

    None as well when no expected string is left after normalisation (a blank expected text
    must not match every passage).
    """
    wanted = _normalized_expected(expected)
    if not wanted:
        return None
    for rank, text in enumerate(texts, 1):
        normalized = normalize(text)
        if any(w in normalized for w in wanted):
            return rank
    return None


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class Metrics:
    """Figures over ``n`` questions, from the rank of each one's first right passage.

    ``hit1``, ``hitk`` and ``mrr`` are fractions of ``n`` (MRR counts ranks up to ``mrr_k``
    when :func:`metrics` was given one, else every rank). The counts split the questions by
    whether they were answered and whether the top passage was right (rank 1).
    """

    n: int
    k: int
    hit1: float
    hitk: float
    mrr: float
    answered_right: int
    answered_wrong: int
    abstained_right: int  # abstained, and the top passage was indeed wrong
    abstained_wrong: int  # abstained although the top passage was right

    @property
    def abstained(self) -> int:
        """Questions abstained on."""
        return self.abstained_right + self.abstained_wrong

    @property
    def abstain_rate(self) -> float:
        """Fraction of the questions abstained on."""
        return self.abstained / self.n if self.n else 0.0

    @property
    def accuracy(self) -> float:
        """Fraction handled correctly: answered with a right top passage, or abstained on a
        wrong one."""
        return (self.answered_right + self.abstained_right) / self.n if self.n else 0.0


def metrics(
    ranks: Sequence[int | None],
    k: int,
    *,
    answered: Sequence[bool] | None = None,
    mrr_k: int | None = None,
) -> Metrics:
    """hit@1, hit@``k``, MRR (@``mrr_k``, default uncut) and answered/abstained counts.

    ``ranks[i]`` is the 1-based rank of question ``i``'s first right passage (None: none was
    right); ``answered[i]`` says whether it was answered rather than abstained on (default:
    every question answered, as for a plain ranking). Rates are 0.0 when there are no ranks.
    """
    n = len(ranks)
    flags: Sequence[bool] = [True] * n if answered is None else answered
    if len(flags) != n:
        raise ValueError(f"{n} ranks but {len(flags)} answered flags")

    def rate(count: float) -> float:
        return count / n if n else 0.0

    reciprocal = sum(1.0 / r for r in ranks if r is not None and (mrr_k is None or r <= mrr_k))
    top = [r == 1 for r in ranks]
    return Metrics(
        n=n,
        k=k,
        hit1=rate(sum(top)),
        hitk=rate(sum(1 for r in ranks if r is not None and r <= k)),
        mrr=rate(reciprocal),
        answered_right=sum(1 for a, t in zip(flags, top, strict=True) if a and t),
        answered_wrong=sum(1 for a, t in zip(flags, top, strict=True) if a and not t),
        abstained_right=sum(1 for a, t in zip(flags, top, strict=True) if not a and not t),
        abstained_wrong=sum(1 for a, t in zip(flags, top, strict=True) if not a and t),
    )


# --------------------------------------------------------------------------- batch evaluation


@dataclass
class QuestionResult:
    """How one question with expected answers fared.

    ``rank`` is the 1-based rank of the first returned passage that matches (None if none);
    ``confidence`` is the top passage's; ``top_answer`` is the top passage's text (what was,
    or would have been, answered), truncated to :data:`TOP_ANSWER_CHARS`. ``tier`` is
    ``"answer"``, ``"possible"`` or ``"none"``; left empty (or unknown) it follows
    ``answered``, as for records written before tiers existed.
    """

    id: str
    question: str
    expected: list[str]
    answered: bool
    confidence: float
    rank: int | None
    top_source: str
    top_answer: str
    tier: str = ""

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            self.tier = "answer" if self.answered else "none"

    @property
    def top_match(self) -> bool:
        """The top passage contains an expected answer."""
        return self.rank == 1

    def correct_at(self, threshold: float) -> bool:
        """Handled correctly if we answer iff ``confidence >= threshold``."""
        if self.confidence >= threshold:
            return self.top_match
        return not self.top_match


def best_threshold(results: Iterable[QuestionResult]) -> tuple[float, float]:
    """The abstain threshold maximising accuracy, and that accuracy.

    Candidates are the distinct confidences plus 0 and :data:`ABOVE_ALL`; ties go to the higher
    threshold since a confident wrong answer is the worst failure. Sorting plus prefix counts
    make this O(n log n), so it stays cheap for large batches.
    """
    pairs = sorted((r.confidence, r.top_match) for r in results)
    n = len(pairs)
    confidences = [c for c, _ in pairs]
    matched_before = [0]  # matched_before[i] = matches among the i lowest confidences
    for _, hit in pairs:
        matched_before.append(matched_before[-1] + int(hit))
    total_matched = matched_before[-1]
    best_t, best_acc = ABOVE_ALL, -1.0
    for t in sorted(set(confidences) | {0.0, ABOVE_ALL}):
        below = bisect.bisect_left(confidences, t)  # these abstain
        correct = (below - matched_before[below]) + (total_matched - matched_before[below])
        acc = correct / n if n else 0.0
        if acc >= best_acc:  # ascending scan: ">=" keeps the higher threshold on ties
            best_t, best_acc = t, acc
    return best_t, best_acc


class RightWrong(NamedTuple):
    """Questions whose top passage was right, and wrong (one tier's count)."""

    right: int
    wrong: int


def _truncate(text: str, limit: int = TOP_ANSWER_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


class Evaluation:
    """Accumulates per-question results as a batch runs; summarises and reports them.

    ``threshold`` and ``possible_threshold`` are the settings the answers were given with
    (the lower bounds of the *answer* and *possible* tiers); they are only reported.
    ``possible_threshold`` None: not known, left out of the report.
    """

    def __init__(
        self,
        threshold: float = Settings.threshold,
        k: int = 3,
        possible_threshold: float | None = None,
    ):
        self.threshold = float(threshold)
        self.possible_threshold = None if possible_threshold is None else float(possible_threshold)
        self.k = max(int(k), 1)
        self.results: list[QuestionResult] = []
        self.without_expected = 0  # questions seen that had nothing to check against

    def add(
        self,
        record: dict[str, Any],
        expected: list[str] | None,
        match: Callable[[dict[str, Any]], bool] | None = None,
    ) -> QuestionResult | None:
        """Score one ``Answer.to_dict()`` record; questions without ``expected`` are only counted.

        A passage is right when it contains an expected text, or, if ``match`` is given, when
        ``match(passage dict)`` is true (e.g. it covers a gold answer span; ``expected`` is then
        only shown in the report). Only questions with expected answers keep a result, so a
        large batch without them uses no memory here.
        """
        if not _normalized_expected(expected or []):
            self.without_expected += 1
            return None
        passages = record.get("passages") or []
        if match is None:
            rank = match_rank((str(p.get("text", "")) for p in passages), expected or [])
        else:
            rank = next((i for i, p in enumerate(passages, 1) if match(p)), None)
        top = passages[0] if passages else {}
        result = QuestionResult(
            id=str(record.get("id", "")),
            question=str(record.get("question", "")),
            expected=list(expected or []),
            answered=bool(record.get("answered")),
            confidence=float(record.get("confidence") or 0.0),
            rank=rank,
            top_source=str(top.get("source", "")),
            top_answer=_truncate(str(top.get("text", record.get("answer", "")))),
            tier=record_tier(record),
        )
        self.results.append(result)
        return result

    def metrics(self) -> Metrics:
        """:func:`metrics` of the results so far (MRR over every rank returned)."""
        rs = self.results
        return metrics([r.rank for r in rs], self.k, answered=[r.answered for r in rs])

    def tier_counts(self) -> dict[str, RightWrong]:
        """Per tier (``"answer"``, ``"possible"``, ``"none"``, in that order): how many
        questions landed there with a right top passage, and with a wrong one."""
        counts = {tier: [0, 0] for tier in TIERS}
        for r in self.results:
            counts[r.tier][0 if r.top_match else 1] += 1
        return {tier: RightWrong(*c) for tier, c in counts.items()}

    def reliability(self, bins: int = DEFAULT_BINS) -> Reliability:
        """:func:`~chatbot.calibration.reliability` of the top passages' confidences against
        whether the top passage was right."""
        rs = self.results
        return reliability([r.confidence for r in rs], [r.top_match for r in rs], bins)

    def risk_thresholds(self) -> list[float]:
        """The thresholds of the report's risk-coverage table: :data:`RISK_THRESHOLDS` and the
        configured ones, ascending."""
        configured = [self.threshold]
        if self.possible_threshold is not None:
            configured.append(self.possible_threshold)
        by_value = {round(t, 6): t for t in (*RISK_THRESHOLDS, *configured)}
        return [by_value[key] for key in sorted(by_value)]

    def risk_coverage(self, thresholds: Sequence[float] | None = None) -> list[RiskCoverage]:
        """:func:`~chatbot.calibration.risk_coverage` of the top passages (right or wrong) at
        ``thresholds`` (default :meth:`risk_thresholds`)."""
        rs = self.results
        ts = self.risk_thresholds() if thresholds is None else thresholds
        return risk_coverage([r.confidence for r in rs], [r.top_match for r in rs], ts)

    def summary(self) -> dict[str, Any]:
        """Headline figures; rates are fractions of the questions with expected answers.

        ``accuracy`` judges the actual answered flags (answered and right, or abstained when
        the top passage was wrong); ``best_threshold``/``best_accuracy`` say what the abstain
        threshold could have been on this batch. ``tiers`` maps each tier to its counts
        ``{"right": n, "wrong": n}`` (top passage right or wrong); ``ece`` is the expected
        calibration error of the top passages' confidences (:meth:`reliability`).
        """
        m = self.metrics()
        best_t, best_acc = best_threshold(self.results)
        return {
            "n": m.n,
            "k": m.k,
            "hit@1": m.hit1,
            "hit@k": m.hitk,
            "mrr": m.mrr,
            "abstain_rate": m.abstain_rate,
            "answered_right": m.answered_right,
            "answered_wrong": m.answered_wrong,
            "accuracy": m.accuracy,
            "threshold": self.threshold,
            "possible_threshold": self.possible_threshold,
            "best_threshold": best_t,
            "best_accuracy": best_acc,
            "tiers": {t: c._asdict() for t, c in self.tier_counts().items()},
            "ece": self.reliability().ece,
            "without_expected": self.without_expected,
        }

    def rows(self) -> list[tuple[str, str]]:
        """``(label, value)`` pairs of the summary, formatted for people."""
        s = self.summary()
        best = (
            "abstain on all" if s["best_threshold"] >= ABOVE_ALL else f"{s['best_threshold']:.3f}"
        )
        possible, none = s["tiers"]["possible"], s["tiers"]["none"]
        return [
            ("questions evaluated", str(s["n"])),
            ("hit@1", f"{s['hit@1']:.3f}"),
            (f"hit@{s['k']}", f"{s['hit@k']:.3f}"),
            ("MRR", f"{s['mrr']:.3f}"),
            ("abstain rate", f"{s['abstain_rate']:.3f}"),
            ("answered right", str(s["answered_right"])),
            ("answered wrong", str(s["answered_wrong"])),
            ("possible answer right / wrong", f"{possible['right']} / {possible['wrong']}"),
            ("not found, top right / wrong", f"{none['right']} / {none['wrong']}"),
            (f"accuracy (threshold {s['threshold']:.3f})", f"{s['accuracy']:.3f}"),
            ("best threshold", f"{best} (accuracy {s['best_accuracy']:.3f})"),
            (f"calibration error (ECE, {DEFAULT_BINS} bins)", f"{s['ece']:.3f}"),
            ("without expected answer", str(s["without_expected"])),
        ]

    def format_text(self) -> str:
        """A short aligned table, for stderr at the end of a batch run."""
        rows = self.rows()
        width = max(len(label) for label, _ in rows)
        return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


# --------------------------------------------------------------------------- HTML report


def _plot_png(evaluation: Evaluation) -> bytes:
    """Histogram of top-answer confidence, right vs wrong, with the answer threshold, the
    possible-answer threshold (when known) and the best threshold marked."""
    # Figure + FigureCanvasAgg directly: the Agg backend without touching pyplot's global state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rs = evaluation.results
    right = [r.confidence for r in rs if r.top_match]
    wrong = [r.confidence for r in rs if not r.top_match]
    best_t, _ = best_threshold(rs)
    possible = evaluation.possible_threshold
    values = right + wrong + [evaluation.threshold, min(best_t, 1.0)]
    values += [] if possible is None else [possible]
    lo, hi = min(0.0, *values), max(1.0, *values)
    bins = [lo + (hi - lo) * i / 20 for i in range(21)]

    fig = Figure(figsize=(7, 3.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if rs:
        ax.hist(
            [right, wrong],
            bins=bins,
            stacked=True,
            color=["#2e8b57", "#c0392b"],
            label=[f"top passage right ({len(right)})", f"top passage wrong ({len(wrong)})"],
        )
    else:
        ax.text(0.5, 0.5, "no questions with expected answers", ha="center", transform=ax.transAxes)
    ax.axvline(
        evaluation.threshold,
        color="#333333",
        linestyle="--",
        label=f"answer threshold ({evaluation.threshold:.2f})",
    )
    if possible is not None:
        ax.axvline(
            possible, color="#8e44ad", linestyle="-.", label=f"possible threshold ({possible:.2f})"
        )
    ax.axvline(
        min(best_t, hi), color="#1f6fb2", linestyle=":", label=f"best threshold ({best_t:.2f})"
    )
    ax.set_xlabel("confidence")
    ax.set_ylabel("questions")
    ax.set_xlim(lo, hi)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.right td { background: #eaf7ee; }
tr.wrong td { background: #fbeaea; }
tr.possible-right td { background: #e8f1fb; }
tr.possible-wrong td { background: #f5e8f3; }
tr.missed td { background: #fdf5e3; }
.answer { max-width: 40em; white-space: pre-wrap; }
"""

# Row status (also its CSS class) -> what the report says, by tier and top passage right/wrong.
_STATUS = {
    ("answer", True): "right",
    ("answer", False): "wrong",
    ("possible", True): "possible-right",
    ("possible", False): "possible-wrong",
    ("none", True): "missed",
    ("none", False): "abstained",
}
_STATUS_TEXT = {
    "right": "right",
    "wrong": "wrong",
    "possible-right": "possible, right",
    "possible-wrong": "possible, wrong",
    "missed": "missed",
    "abstained": "abstained",
}


def _status(r: QuestionResult) -> str:
    return _STATUS[(r.tier, r.top_match)]


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: set[int]) -> str:
    """An HTML table; cells are already escaped, those in ``numeric`` columns right-aligned."""
    parts = ["<table><tr>", *(f"<th>{h}</th>" for h in headers), "</tr>"]
    for row in rows:
        parts.append("<tr>")
        parts.extend(
            f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        parts.append("</tr>")
    parts.append("</table>")
    return "".join(parts)


def _tiers_html(evaluation: Evaluation) -> str:
    rows = [
        (TIER_NAMES[tier], str(c.right), str(c.wrong), str(c.right + c.wrong))
        for tier, c in evaluation.tier_counts().items()
    ]
    headers = ("tier", "top passage right", "top passage wrong", "questions")
    return "<h2>Tiers</h2>" + _table(headers, rows, {1, 2, 3})


def _calibration_html(evaluation: Evaluation) -> str:
    """The reliability table (with the ECE) and the risk-coverage table."""
    rel = evaluation.reliability()
    parts = [
        "<h2>Calibration</h2>",
        "<p>Is the top passage's confidence the probability that it is right? Questions are "
        f"grouped into {DEFAULT_BINS} equal-width confidence bins (empty ones left out); "
        "<em>predicted</em> is a bin's mean confidence, <em>observed</em> the fraction of its "
        "top passages that were right. The expected calibration error (ECE) is the gap "
        "|observed &minus; predicted| averaged over the bins, weighted by their questions: "
        f"<strong>ECE {rel.ece:.3f}</strong> over {rel.n} questions.</p>",
    ]
    if rel.bins:
        rows = [
            (
                f"{b.lower:.1f}&ndash;{b.upper:.1f}",
                str(b.count),
                f"{b.predicted:.3f}",
                f"{b.observed:.3f}",
                f"{b.observed - b.predicted:+.3f}",
            )
            for b in rel.bins
        ]
        headers = ("confidence", "questions", "predicted", "observed", "observed &minus; predicted")
        parts.append(_table(headers, rows, {1, 2, 3, 4}))
    marks: dict[float, list[str]] = {}
    marks.setdefault(evaluation.threshold, []).append("answer threshold")
    if evaluation.possible_threshold is not None:
        marks.setdefault(evaluation.possible_threshold, []).append("possible threshold")
    parts.append(
        "<h3>Risk and coverage</h3><p>Answering every question whose top passage has a "
        "confidence at or above the threshold: <em>coverage</em> is the share of questions "
        "that would be answered, <em>risk</em> the share of those whose top passage is wrong."
        "</p>"
    )
    rows = [
        (
            f"{row.threshold:.3f}",
            str(row.count),
            f"{row.coverage:.3f}",
            f"{row.risk:.3f}",
            ", ".join(marks.get(row.threshold, [])),
        )
        for row in evaluation.risk_coverage()
    ]
    parts.append(_table(("threshold", "questions", "coverage", "risk", ""), rows, {0, 1, 2, 3}))
    return "\n".join(parts)


def render_html(evaluation: Evaluation, *, title: str = "Batch evaluation") -> str:
    """The report as one HTML string (inline CSS, plot embedded as a base64 PNG)."""
    e = html.escape
    png = base64.b64encode(_plot_png(evaluation)).decode("ascii")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        "<h2>Summary</h2><table>",
    ]
    for label, value in evaluation.rows():
        parts.append(f'<tr><th>{e(label)}</th><td class="num">{e(value)}</td></tr>')
    parts.append("</table>")
    parts.append(
        "<p>Right/wrong judges the top passage: it is right when it contains an expected "
        "answer (case, spacing, quotes and dashes ignored). Accuracy counts answering with a "
        "right top passage and abstaining on a wrong one as correct; a possible answer counts "
        "as abstaining.</p>"
    )
    parts.append(
        f'<img src="data:image/png;base64,{png}" '
        'alt="Confidence of right and wrong top passages, with the thresholds">'
    )
    parts.append(_tiers_html(evaluation))
    parts.append(_calibration_html(evaluation))
    parts.append(
        "<h2>Questions</h2><p>Status: <em>right</em>/<em>wrong</em> answered; "
        "<em>possible, right</em>/<em>possible, wrong</em> shown as a possible answer; "
        "<em>missed</em> not found although the top passage was right; <em>abstained</em> "
        "not found, and the top passage was wrong.</p><table><tr>"
    )
    headers = ("id", "question", "expected", "tier", "confidence", "rank", "top source")
    parts.extend(f"<th>{h}</th>" for h in (*headers, "top answer", "status"))
    parts.append("</tr>")
    for r in evaluation.results:
        cells = [
            e(r.id),
            e(r.question),
            e(" || ".join(r.expected)),
            TIER_NAMES[r.tier],
            f"{r.confidence:.3f}",
            "&ndash;" if r.rank is None else str(r.rank),
            e(r.top_source),
        ]
        status = _status(r)
        parts.append(f'<tr class="{status}">')
        parts.extend(
            f'<td class="num">{c}</td>' if i in (4, 5) else f"<td>{c}</td>"
            for i, c in enumerate(cells)
        )
        parts.append(f'<td class="answer">{e(_truncate(r.top_answer))}</td>')
        parts.append(f"<td>{_STATUS_TEXT[status]}</td></tr>")
    parts.append("</table></body></html>\n")
    return "\n".join(parts)


def write_report(evaluation: Evaluation, path: str, *, title: str = "Batch evaluation") -> None:
    """Write the HTML report to ``path`` atomically, so a reader never sees a half-written
    report."""
    atomic_write(Path(path), render_html(evaluation, title=title))
    logger.info("wrote evaluation report %s (%d questions)", path, len(evaluation.results))


__all__ = [
    "RISK_THRESHOLDS",
    "Evaluation",
    "Metrics",
    "QuestionResult",
    "RightWrong",
    "best_threshold",
    "match_rank",
    "matches",
    "metrics",
    "normalize",
    "render_html",
    "write_report",
]
