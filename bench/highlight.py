"""Does the highlighted sentence hold the answer? Per question file, over right top passages.

    .venv/bin/python bench/highlight.py [--keep DIR] [--only k2|squad] [--show N]

Rows: the vitamin K2 dev and held-out files (the default corpus, indexed in a temporary
folder) and SQuAD v1.1 dev's fit half (articles 1-24) and evaluation half (articles 25-48,
from American_Broadcasting_Company on), all 48 articles indexed together, as
../shared/README.md prescribes. Only questions whose rank-1 passage is right count:

- vitamin K2: the top passage is right when it contains one of ``expected`` (normalised as in
  :func:`chatbot.evaluate.matches`); its highlight **holds** the answer when the highlighted
  text itself contains one of ``expected`` (same normalisation), and **overlaps** it when the
  highlight shares at least one character with an occurrence of an expected text in the
  passage;
- SQuAD: the top passage is right when it covers at least half of a gold answer span
  (:func:`chatbot.squad.covers`); the highlight **covers** the gold span when the highlight's
  span (in document characters) contains the whole of at least one gold answer span, and
  **overlaps** it when it shares at least one character with one.

``--keep DIR`` keeps (and reuses) the SQuAD index there (``chatbot.squad.index_articles``'s
``keep_index``); without it the articles are indexed in a temporary folder (about 3-5 minutes).
Datasets that are absent are skipped with a message. ``--show N`` prints up to N misses per
row (question, highlighted sentence).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatbot import service  # noqa: E402
from chatbot.config import Settings  # noqa: E402
from chatbot.embedder import get_embedder  # noqa: E402
from chatbot.evaluate import matches, normalize  # noqa: E402
from chatbot.retrieval import Retriever  # noqa: E402
from chatbot.squad import SquadQuestion, covers, index_articles  # noqa: E402
from chatbot.types import Answer  # noqa: E402

SQUAD = ROOT.parent / "shared" / "datasets" / "squad-v1.1" / "dev-v1.1.json"
K2_FILES = {
    "K2 dev": ROOT / "bench/k2_questions.jsonl",
    "K2 held-out": ROOT / "bench/k2_heldout.jsonl",
}
FIT_ARTICLES = 24  # SQuAD dev articles 1-24 are the fit half, 25-48 the evaluation half


@dataclass
class Row:
    """Highlight figures of one question file."""

    name: str
    questions: int = 0
    right_top: int = 0
    holds: int = 0
    overlaps: int = 0
    misses: list[str] = field(default_factory=list)

    def line(self) -> str:
        share = lambda n: n / self.right_top if self.right_top else float("nan")  # noqa: E731
        return (
            f"| {self.name} | {self.questions} | {self.right_top} | "
            f"**{share(self.holds):.3f}** ({self.holds}) | {share(self.overlaps):.3f} |"
        )


def normalized_spans(text: str, wanted: list[str]) -> list[tuple[int, int]]:
    """Character spans of ``text`` whose normalised form (:func:`chatbot.evaluate.normalize`,
    applied character by character) is one of ``wanted`` (normalised already)."""
    norm: list[str] = []
    where: list[int] = []  # original index of each normalised character
    for i, c in enumerate(text):
        piece = " " if c.isspace() else normalize(c)
        if not piece or (piece == " " and (not norm or norm[-1] == " ")):
            continue
        for ch in piece:
            norm.append(ch)
            where.append(i)
    joined = "".join(norm)
    spans = []
    for w in wanted:
        at = joined.find(w)
        while at >= 0:
            spans.append((where[at], where[at + len(w) - 1] + 1))
            at = joined.find(w, at + 1)
    return spans


def score_k2(row: Row, question: str, expected: list[str], answer: Answer) -> None:
    """Add one vitamin K2 question's top hit to ``row``."""
    row.questions += 1
    if not answer.hits or not matches(answer.hits[0].text, expected):
        return
    hit = answer.hits[0]
    row.right_top += 1
    lo, hi = hit.highlight.start, hit.highlight.end
    if matches(hit.text[lo:hi], expected):
        row.holds += 1
    else:
        row.misses.append(f"{question!r} -> {hit.text[lo:hi]!r}")
    wanted = [normalize(unicodedata.normalize("NFKC", e)) for e in expected]
    if any(s < hi and lo < e for s, e in normalized_spans(hit.text, wanted)):
        row.overlaps += 1


def score_squad(row: Row, q: SquadQuestion, answer: Answer, text: str) -> None:
    """Add one SQuAD question's top hit to ``row`` (``text``: the hit's document)."""
    row.questions += 1
    if not answer.hits:
        return
    hit = answer.hits[0]
    if not covers(hit.source, hit.start, hit.end, q):
        return
    row.right_top += 1
    lo, hi = hit.start + hit.highlight.start, hit.start + hit.highlight.end
    if any(lo <= s and e <= hi for s, e in q.spans):
        row.holds += 1
    else:
        gold = text[q.spans[0][0] : q.spans[0][1]]
        row.misses.append(f"{q.question!r} [{gold!r}] -> {text[lo:hi]!r}")
    if any(s < hi and lo < e for s, e in q.spans):
        row.overlaps += 1


def k2_rows(settings: Settings) -> list[Row]:
    """The vitamin K2 rows, over the default corpus indexed in a temporary folder."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env(index=str(Path(tmp) / "index"))
        service.build(settings, replace_all=True)
        retriever = service.open_retriever(settings)
        for name, path in K2_FILES.items():
            lines = path.read_text(encoding="utf-8").splitlines()
            qs = [r for r in (json.loads(x) for x in lines if x.strip()) if r["expected"]]
            row = Row(name)
            for r in qs:
                score_k2(row, r["question"], r["expected"], retriever.ask(r["question"], k=1))
            rows.append(row)
    return rows


def squad_rows(settings: Settings, keep: Path | None) -> list[Row]:
    """The SQuAD fit-half and evaluation-half rows (all 48 articles indexed)."""
    if not SQUAD.exists():
        print(f"skipped SQuAD: {SQUAD} not found (the shared datasets are not here)")
        return []
    emb = get_embedder(settings.model)
    t0 = time.perf_counter()
    built = index_articles(SQUAD, emb, settings.splitter_settings(), keep_index=keep)
    print(f"# SQuAD index ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    index, questions = built.index, built.questions
    retriever = Retriever(index, emb)
    t0 = time.perf_counter()
    answers = retriever.ask_many([q.question for q in questions], k=1)
    print(f"# {len(questions)} questions in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    fit, ev = Row("SQuAD fit half (1-24)"), Row("SQuAD eval half (25-48)")
    texts: dict[str, str] = {}
    for q, a in zip(questions, answers, strict=True):
        if q.source not in texts:
            texts[q.source] = index.documents[q.source].text
        row = fit if int(q.source[:3]) < FIT_ARTICLES else ev
        score_squad(row, q, a, texts[q.source])
    return [fit, ev]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", help="save/reuse the SQuAD index in this folder")
    ap.add_argument("--only", choices=["k2", "squad"], help="only these rows")
    ap.add_argument("--show", type=int, default=0, help="print up to N misses per row")
    args = ap.parse_args()
    settings = Settings.from_env()
    rows: list[Row] = []
    if args.only != "squad":
        rows += k2_rows(settings)
    if args.only != "k2":
        rows += squad_rows(settings, Path(args.keep) if args.keep else None)
    print("| file | questions | right top | highlight holds / covers the answer | overlaps |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        print(row.line())
    for row in rows:
        for miss in row.misses[: args.show]:
            print(f"  MISS {row.name}: {miss}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
