"""Does the highlighted sentence hold the answer? Per question file, over right top passages.

    .venv/bin/python bench/highlight.py [--keep DIR] [--only k2|squad] [--show N] [--fit]

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
``keep_index``); without it the articles are indexed in a temporary folder (5-15 minutes).
Datasets that are absent are skipped with a message. ``--show N`` prints up to N misses per
row (question, highlighted sentence).

``--fit`` also grid-searches :class:`chatbot.retrieval.presentation.HighlightWeights` on the
SQuAD fit half and the K2 dev file (the best fit-half share among the weights that keep K2 dev
at or above 0.95; never the held-out file or the evaluation half) and prints the best weights,
the table they give, and what each weight adds.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatbot import service  # noqa: E402
from chatbot.config import Settings  # noqa: E402
from chatbot.embedder import get_embedder  # noqa: E402
from chatbot.evaluate import matches, normalize  # noqa: E402
from chatbot.lexical import tokenize  # noqa: E402
from chatbot.retrieval import Retriever  # noqa: E402
from chatbot.retrieval import presentation as pres  # noqa: E402
from chatbot.retrieval.confidence import WordWeights  # noqa: E402
from chatbot.squad import covers, index_articles  # noqa: E402

SQUAD = ROOT.parent / "shared" / "datasets" / "squad-v1.1" / "dev-v1.1.json"
K2_FILES = {
    "K2 dev": ROOT / "bench/k2_questions.jsonl",
    "K2 held-out": ROOT / "bench/k2_heldout.jsonl",
}
FIT_ARTICLES = 24  # SQuAD dev articles 1-24 are the fit half, 25-48 the evaluation half
FIT_ROWS = ("K2 dev", "SQuAD fit half (1-24)")
K2_FLOOR = 0.95  # issue 11: the highlight holds the answer in >= 95% of right K2 top passages


@dataclass
class Case:
    """One question whose top passage is right: its top hit's highlight and, for ``--fit``,
    the sentences it could have been (features and whether each holds the answer)."""

    question: str
    holds: bool  # the shipped highlight holds / covers the answer
    overlaps: bool
    shown: str  # the highlighted text
    features: np.ndarray  # (sentences inside the hit, FEATURES); empty: no sentence inside
    labels: np.ndarray  # per sentence inside the hit: holds / covers the answer
    sentences: list[str] = field(default_factory=list)  # the sentences inside the hit


@dataclass
class Row:
    """Highlight figures of one question file."""

    name: str
    questions: int = 0
    cases: list[Case] = field(default_factory=list)

    def line(self, holds: int | None = None) -> str:
        right = len(self.cases)
        holds = sum(c.holds for c in self.cases) if holds is None else holds
        over = sum(c.overlaps for c in self.cases)
        share = (lambda n: n / right) if right else (lambda n: float("nan"))
        return (
            f"| {self.name} | {self.questions} | {right} | "
            f"**{share(holds):.3f}** ({holds}) | {share(over):.3f} |"
        )


HEADER = (
    "| file | questions | right top | highlight holds / covers the answer | overlaps |\n"
    "| --- | --- | --- | --- | --- |"
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


Judge = Callable[[int, int], tuple[bool, bool]]  # passage span -> (holds, overlaps)


def make_case(
    retriever: Retriever,
    presenter: pres.Presenter,
    question: str,
    query: str,
    qvec: np.ndarray,
    tokens,
    judge_of: Callable[[object], Judge | None],
    label: str = "",
) -> Case | None:
    """Answer one question; a :class:`Case` if its top passage is right (``judge_of(hit)``
    gives the judge of highlight spans, in passage characters, or None for a wrong hit)."""
    answer = retriever.answer_with_vector(question, query, qvec, 1, token_vectors=tokens)
    if not answer.hits:
        return None
    hit = answer.hits[0]
    judge = judge_of(hit)
    if judge is None:
        return None
    p = retriever.index.passages[hit.passage_id]
    lo, hi = hit.start - p.start, hit.end - p.start
    holds, overlaps = judge(lo + hit.highlight.start, lo + hit.highlight.end)
    cues = presenter.cues(query, tokenize(query), tokens)
    features = presenter.features(hit.passage_id, qvec, cues)
    inside = [j for j, (s, e) in enumerate(p.sentences) if lo <= s and e <= hi]
    labels = np.array([judge(*p.sentences[j])[0] for j in inside], bool)
    shown = hit.text[hit.highlight.start : hit.highlight.end]
    texts = [p.text[s:e] for s, e in (p.sentences[j] for j in inside)]
    return Case(label or question, holds, overlaps, shown, features[inside], labels, texts)


def k2_rows(settings: Settings) -> list[Row]:
    """The vitamin K2 rows, over the default corpus indexed in a temporary folder."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env(index=str(Path(tmp) / "index"), corpus=str(ROOT / "corpus"))
        service.build(settings, replace_all=True)
        retriever = service.open_retriever(settings)
        presenter = presenter_of(retriever)
        for name, path in K2_FILES.items():
            lines = path.read_text(encoding="utf-8").splitlines()
            qs = [r for r in (json.loads(x) for x in lines if x.strip()) if r["expected"]]
            queries = [retriever.spell(r["question"]) for r in qs]
            qvecs, tokens = encode(retriever.embedder, queries)
            row = Row(name, len(qs))
            for r, query, v, t in zip(qs, queries, qvecs, tokens, strict=True):

                def judge_of(hit, expected=r["expected"]) -> Judge | None:
                    if not matches(hit.text, expected):
                        return None
                    p = retriever.index.passages[hit.passage_id]
                    wanted = [normalize(unicodedata.normalize("NFKC", e)) for e in expected]
                    spans = normalized_spans(p.text, wanted)
                    return lambda lo, hi: (
                        matches(p.text[lo:hi], expected),
                        any(s < hi and lo < e for s, e in spans),
                    )

                case = make_case(retriever, presenter, r["question"], query, v, t, judge_of)
                if case is not None:
                    row.cases.append(case)
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
    presenter = presenter_of(retriever)
    t0 = time.perf_counter()
    queries = [retriever.spell(q.question) for q in questions]
    qvecs, tokens = encode(emb, queries)
    fit, ev = Row("SQuAD fit half (1-24)"), Row("SQuAD eval half (25-48)")
    for q, query, v, t in zip(questions, queries, qvecs, tokens, strict=True):
        row = fit if int(q.source[:3]) < FIT_ARTICLES else ev
        row.questions += 1

        def judge_of(hit, q=q) -> Judge | None:
            if not covers(hit.source, hit.start, hit.end, q):
                return None
            at = index.passages[hit.passage_id].start
            return lambda lo, hi: (
                any(at + lo <= s and e <= at + hi for s, e in q.spans),
                any(s < at + hi and at + lo < e for s, e in q.spans),
            )

        gold = index.documents[q.source].text[q.spans[0][0] : q.spans[0][1]]
        label = f"{q.question} [{gold}]"
        case = make_case(retriever, presenter, q.question, query, v, t, judge_of, label)
        if case is not None:
            row.cases.append(case)
    print(f"# {len(questions)} questions in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return [fit, ev]


def encode(embedder, texts: list[str], chunk: int = 512) -> tuple[np.ndarray, list]:
    """``embedder.encode_with_tokens`` in chunks: the light (OpenVINO) path reads every
    text's offsets again for each text of a call, which grows with the square of its size."""
    vecs, tokens = [np.zeros((0, embedder.dim), np.float32)], []
    for lo in range(0, len(texts), chunk):
        v, t = embedder.encode_with_tokens(texts[lo : lo + chunk])
        vecs.append(v)
        tokens.extend(t)
    return np.concatenate(vecs), tokens


def presenter_of(retriever: Retriever) -> pres.Presenter:
    """A presenter like the retriever's, for the features of every sentence of a hit."""
    index = retriever.index
    return pres.Presenter(
        index.passages,
        index.passage_sentences,
        index.lexical.idf,
        pres.PassageTokens(index, getattr(retriever.embedder, "token_starts", None)),
        WordWeights(index.lexical),
    )


# ------------------------------------------------------------------------------ fitting


class Stacked:
    """One row's cases with at least one sentence inside the hit, stacked for fast argmax."""

    def __init__(self, cases: list[Case]) -> None:
        kept = [c for c in cases if len(c.features)]
        self.fixed = sum(c.holds for c in cases if not len(c.features))  # no sentence inside
        width = len(pres.FEATURES)
        self.x = np.concatenate([c.features for c in kept]) if kept else np.zeros((0, width))
        self.y = np.concatenate([c.labels for c in kept]) if kept else np.zeros(0, bool)
        self.counts = np.array([len(c.features) for c in kept], np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)
        self.pos = np.arange(len(self.y))

    def holds(self, w: np.ndarray) -> int:
        """How many cases the highlight of weights ``w`` gets right (first best sentence)."""
        if not len(self.y):
            return self.fixed
        s = self.x @ w
        best = np.repeat(np.maximum.reduceat(s, self.offsets), self.counts)
        first = np.minimum.reduceat(np.where(s >= best, self.pos, len(s)), self.offsets)
        return int(self.y[first].sum()) + self.fixed


# The weights --fit tries (HighlightWeights' fields; the cosine weighs 1).
GRID = {
    "terms": [0, 1, 1.5, 2, 2.5, 3],
    "answer_type": [0, 1, 1.5, 2, 2.5],
    "token": [0, 1.5, 2, 2.5, 3, 3.5],
    "token_best": [0, 0.5, 1, 1.5, 2],
    "previous": [0, 0.25, 0.5, 0.75, 1],
}


def fit(rows: list[Row]) -> None:
    """Grid-search :class:`HighlightWeights`: the best SQuAD fit-half share among the weights
    that keep the K2 dev share at or above :data:`K2_FLOOR` (ties: the smallest sum of
    weights); print the best and what each weight adds.

    (A blend of the two shares lets K2 dev's 71 questions, each worth 66 SQuAD ones, pick
    the weights: it chose weights that win one K2 dev question and lose 0.9 points on SQuAD.)
    """
    stacks = {r.name: Stacked(r.cases) for r in rows}
    for r in rows:  # the stacked argmax must reproduce the shipped highlight
        assert stacks[r.name].holds(pres.HighlightWeights().vector()) == sum(
            c.holds for c in r.cases
        ), r.name
    by_name = {r.name: r for r in rows}
    if any(name not in by_name for name in FIT_ROWS):
        print("--fit needs both K2 dev and the SQuAD fit half")
        return

    def share(name: str, w: pres.HighlightWeights) -> float:
        return stacks[name].holds(w.vector()) / max(len(by_name[name].cases), 1)

    k2_dev, squad_fit = FIT_ROWS
    scored = []
    for values in itertools.product(*GRID.values()):
        w = pres.HighlightWeights(**dict(zip(GRID, values, strict=True)))
        ok = share(k2_dev, w) >= K2_FLOOR
        scored.append((not ok, -share(squad_fit, w), sum(values), w))
    scored.sort(key=lambda x: x[:3])
    print(f"\nbest weights: SQuAD fit half share, with K2 dev >= {K2_FLOOR}:")
    for _, obj, _, w in scored[:5]:
        print(f"  {w}: {-obj:.4f} (K2 dev {share(k2_dev, w):.3f})")
    best = scored[0][3]

    print("\nwith the best weights:\n" + HEADER)
    for r in rows:
        print(r.line(stacks[r.name].holds(best.vector())))
    print("\nwhat each weight adds: the best weights with one set to 0")
    print("| weights | " + " | ".join(r.name for r in rows) + " |")
    print("| --- |" + " --- |" * len(rows))
    variants = {"cosine only": pres.HighlightWeights(0, 0, 0, 0, 0), "best": best}
    variants.update({f"best, {name} = 0": replace(best, **{name: 0}) for name in GRID})
    for label, w in variants.items():
        shares = " | ".join(f"{stacks[r.name].holds(w.vector()) / len(r.cases):.3f}" for r in rows)
        print(f"| {label} | {shares} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", help="save/reuse the SQuAD index in this folder")
    ap.add_argument("--only", choices=["k2", "squad"], help="only these rows")
    ap.add_argument("--show", type=int, default=0, help="print up to N misses per row")
    ap.add_argument("--fit", action="store_true", help="grid-search the highlight weights")
    args = ap.parse_args()
    settings = Settings.from_env()
    rows: list[Row] = []
    if args.only != "squad":
        rows += k2_rows(settings)
    if args.only != "k2":
        rows += squad_rows(settings, Path(args.keep) if args.keep else None)
    print(HEADER)
    for row in rows:
        print(row.line())
    for row in rows:
        for c in [c for c in row.cases if not c.holds][: args.show]:
            print(f"  MISS {row.name}: {c.question!r} -> {c.shown!r}")
    if args.fit:
        fit(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
