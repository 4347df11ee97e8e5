"""Evaluation: the one place retrieval figures are computed, and a self-contained HTML report.

:func:`metrics` turns the rank of the first right passage per question (and, optionally,
whether each question was answered) into hit@1, hit@k, MRR, abstain rate and answered-but-wrong
counts. Everything that reports such figures goes through it: :class:`Evaluation` (``chatbot
ask`` with expected answers, ``chatbot eval``), :mod:`chatbot.squad` (ranking figures of
``chatbot eval --baselines`` and bench/quality.py) and the bench scripts.

A passage "matches" when one of the expected strings occurs in it after light normalisation
(case, whitespace, typographic quotes and dashes, NFKC), because answers are verbatim passages
and the expected strings are short snippets a person typed.
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
from typing import Any

from .files import atomic_write

logger = logging.getLogger(__name__)

ABOVE_ALL = 1.01  # a threshold above every confidence: abstain on everything
TOP_ANSWER_CHARS = 300  # how much of the top answer is kept per question (memory, report)

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
    ``top_answer`` is the top passage's text (what was, or would have been, answered),
    truncated to :data:`TOP_ANSWER_CHARS`.
    """

    id: str
    question: str
    expected: list[str]
    answered: bool
    confidence: float
    rank: int | None
    top_source: str
    top_answer: str

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


def _truncate(text: str, limit: int = TOP_ANSWER_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


class Evaluation:
    """Accumulates per-question results as a batch runs; summarises and reports them."""

    def __init__(self, threshold: float = 0.5, k: int = 3):
        self.threshold = float(threshold)
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
        )
        self.results.append(result)
        return result

    def metrics(self) -> Metrics:
        """:func:`metrics` of the results so far (MRR over every rank returned)."""
        rs = self.results
        return metrics([r.rank for r in rs], self.k, answered=[r.answered for r in rs])

    def summary(self) -> dict[str, Any]:
        """Headline figures; rates are fractions of the questions with expected answers.

        ``accuracy`` judges the actual answered flags (answered and right, or abstained when
        the top passage was wrong); ``best_threshold``/``best_accuracy`` say what the abstain
        threshold could have been on this batch.
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
            "best_threshold": best_t,
            "best_accuracy": best_acc,
            "without_expected": self.without_expected,
        }

    def rows(self) -> list[tuple[str, str]]:
        """``(label, value)`` pairs of the summary, formatted for people."""
        s = self.summary()
        best = (
            "abstain on all" if s["best_threshold"] >= ABOVE_ALL else f"{s['best_threshold']:.3f}"
        )
        return [
            ("questions evaluated", str(s["n"])),
            ("hit@1", f"{s['hit@1']:.3f}"),
            (f"hit@{s['k']}", f"{s['hit@k']:.3f}"),
            ("MRR", f"{s['mrr']:.3f}"),
            ("abstain rate", f"{s['abstain_rate']:.3f}"),
            ("answered right", str(s["answered_right"])),
            ("answered wrong", str(s["answered_wrong"])),
            (f"accuracy (threshold {s['threshold']:.3f})", f"{s['accuracy']:.3f}"),
            ("best threshold", f"{best} (accuracy {s['best_accuracy']:.3f})"),
            ("without expected answer", str(s["without_expected"])),
        ]

    def format_text(self) -> str:
        """A short aligned table, for stderr at the end of a batch run."""
        rows = self.rows()
        width = max(len(label) for label, _ in rows)
        return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


# --------------------------------------------------------------------------- HTML report


def _plot_png(evaluation: Evaluation) -> bytes:
    """Histogram of top-answer confidence, right vs wrong, with both thresholds marked."""
    # Figure + FigureCanvasAgg directly: the Agg backend without touching pyplot's global state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rs = evaluation.results
    right = [r.confidence for r in rs if r.top_match]
    wrong = [r.confidence for r in rs if not r.top_match]
    best_t, _ = best_threshold(rs)
    values = right + wrong + [evaluation.threshold, min(best_t, 1.0)]
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
        label=f"abstain threshold ({evaluation.threshold:.2f})",
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
tr.missed td { background: #fdf5e3; }
.answer { max-width: 40em; white-space: pre-wrap; }
"""


def _status(r: QuestionResult) -> str:
    if r.answered:
        return "right" if r.top_match else "wrong"
    return "missed" if r.top_match else "abstained"


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
        "right top passage and abstaining on a wrong one as correct.</p>"
    )
    parts.append(
        f'<img src="data:image/png;base64,{png}" '
        'alt="Confidence of right and wrong top passages, with the thresholds">'
    )
    parts.append("<h2>Questions</h2><table><tr>")
    headers = ("id", "question", "expected", "answered", "confidence", "rank", "top source")
    parts.extend(f"<th>{h}</th>" for h in (*headers, "top answer", "status"))
    parts.append("</tr>")
    for r in evaluation.results:
        cells = [
            e(r.id),
            e(r.question),
            e(" || ".join(r.expected)),
            "yes" if r.answered else "no",
            f"{r.confidence:.3f}",
            "&ndash;" if r.rank is None else str(r.rank),
            e(r.top_source),
        ]
        parts.append(f'<tr class="{_status(r)}">')
        parts.extend(
            f'<td class="num">{c}</td>' if i in (4, 5) else f"<td>{c}</td>"
            for i, c in enumerate(cells)
        )
        parts.append(f'<td class="answer">{e(_truncate(r.top_answer))}</td>')
        parts.append(f"<td>{_status(r)}</td></tr>")
    parts.append("</table></body></html>\n")
    return "\n".join(parts)


def write_report(evaluation: Evaluation, path: str, *, title: str = "Batch evaluation") -> None:
    """Write the HTML report to ``path`` atomically, so a reader never sees a half-written
    report."""
    atomic_write(Path(path), render_html(evaluation, title=title))
    logger.info("wrote evaluation report %s (%d questions)", path, len(evaluation.results))


__all__ = [
    "Evaluation",
    "Metrics",
    "QuestionResult",
    "best_threshold",
    "match_rank",
    "matches",
    "metrics",
    "normalize",
    "render_html",
    "write_report",
]
