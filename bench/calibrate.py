"""Fit the confidence model: P(top passage is right) from the top passage's specific match.

    .venv/bin/python bench/calibrate.py [--keep DIR] [--limit N]

Training data, all with the project's default retrieval:
- SQuAD v1.1 dev questions against the indexed articles: label 1 if the top passage covers the
  gold answer, else 0; and the same questions with their own article's passages masked out
  (unanswerable: label 0);
- the vitamin K2 dev questions (bench/k2_questions.jsonl): label 1 if the top passage contains an
  expected text, 0 otherwise and for every off-topic question. The held-out file is not used.
The two sources get equal total weight. Prints the coefficients to copy into
``chatbot.retrieval.Fusion`` and what they do on each source at the default threshold.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatbot import service  # noqa: E402
from chatbot.config import Settings  # noqa: E402
from chatbot.embedder import get_embedder  # noqa: E402
from chatbot.evaluate import matches, metrics  # noqa: E402
from chatbot.retrieval import Retriever  # noqa: E402
from chatbot.squad import covers, index_articles  # noqa: E402

SQUAD = ROOT.parent / "shared" / "datasets" / "squad-v1.1" / "dev-v1.1.json"


def top_features(r: Retriever, f, tokens, mask: np.ndarray | None = None) -> tuple[list, int]:
    """[specific match] of the top candidate (optionally among ``mask``), and its passage."""
    if mask is not None:
        f = f.select(mask)
    ranked = r.rank(f, tokens)
    i = int(f.cand[int(ranked.order[0])])
    return [r.specific_match(tokens, i, ranked.word_scores.get(i))], i


def squad_rows(settings: Settings, keep: Path | None, limit: int | None) -> tuple[list, list]:
    """Features and labels of the SQuAD dev questions (and their own-article-masked copies)."""
    emb = get_embedder(settings.model)
    built = index_articles(SQUAD, emb, settings.splitter_settings(), limit=limit, keep_index=keep)
    index, questions = built.index, built.questions
    r = Retriever(index, emb)
    qvecs, qtokens = emb.encode_with_tokens([q.question for q in questions])
    X, y = [], []
    for q, v, t in zip(questions, qvecs, qtokens, strict=True):
        f = r.features(q.question, v)
        x, i = top_features(r, f, t)
        p = index.passages[i]
        X.append(x)
        y.append(int(covers(p.source, p.start, p.end, q)))
        own = np.array([index.passages[int(c)].source == q.source for c in f.cand])
        if (~own).sum() >= 2:
            # Rescore without the own article (BM25 normalisation is per question, unchanged).
            x, _ = top_features(r, f, t, ~own)
            X.append(x)
            y.append(0)
    return X, y


def k2_rows(settings: Settings) -> tuple[list, list]:
    """Features and labels of the vitamin K2 dev questions on the default corpus."""
    lines = (ROOT / "bench" / "k2_questions.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        s = Settings.from_env(index=str(Path(tmp) / "index"))
        service.build(s, replace_all=True)
        r = service.open_retriever(s)
    X, y = [], []
    for row in rows:
        vecs, tokens = r.embedder.encode_with_tokens([row["question"]])
        f = r.features(row["question"], vecs[0])
        x, i = top_features(r, f, tokens[0])
        X.append(x)
        y.append(int(bool(row["expected"]) and matches(r.index.passages[i].text, row["expected"])))
    return X, y


def main() -> None:
    from sklearn.linear_model import LogisticRegression

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", help="save/reuse the SQuAD index in this folder")
    ap.add_argument("--limit", type=int, help="only the first N SQuAD articles")
    args = ap.parse_args()
    if not SQUAD.exists():
        print(f"skipped: {SQUAD} not found")
        return
    settings = Settings.from_env()
    Xs, ys = squad_rows(settings, Path(args.keep) if args.keep else None, args.limit)
    Xk, yk = k2_rows(settings)
    X = np.array(Xs + Xk)
    y = np.array(ys + yk)
    w = np.concatenate([np.full(len(ys), len(yk) / len(ys)), np.ones(len(yk))])
    clf = LogisticRegression(C=10).fit(X, y, sample_weight=w)
    (a,), c = clf.coef_[0], clf.intercept_[0]
    print(f"conf_specific = {a:.2f}\nconf_bias = {-c:.2f}")
    p = clf.predict_proba(X)[:, 1] >= settings.threshold
    n = len(ys)
    for name, sl in [("squad", slice(0, n)), ("k2 dev", slice(n, None))]:
        # label 1: the top passage is right (rank 1); answered: the model's confidence passes
        ranks = [1 if label == 1 else None for label in y[sl]]
        m = metrics(ranks, 1, answered=[bool(a) for a in p[sl]])
        print(
            f"{name:<8} n={m.n:>6}  answered&right={m.answered_right / m.n:.3f}  "
            f"answered&wrong={m.answered_wrong / m.n:.3f}  abstained={m.abstain_rate:.3f}"
        )


if __name__ == "__main__":
    main()
