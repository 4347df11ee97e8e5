"""Fit the trust model (chatbot/data/trust.json) and report it on held-out questions.

    .venv/bin/python bench/fit_trust.py [--squad-index DIR] [--covid-index DIR] [--cache F]
                                        [--write] [--C 1.0]

Rows: for each question, the head of the ranking (``Retriever.head``, k=3) with the trust
features (``chatbot.retrieval.trust.FEATURES``) of every candidate and a label (the passage
answers: covers half a gold span for SQuAD/COVID-QA, holds an expected text for vitamin K2).

Fitted on (``../shared/README.md``): the SQuAD dev *fit half* (first 24 articles, all 48
indexed), the same questions with their own article masked (nothing answers: every label 0),
COVID-QA's development half (first 49 articles, all 98 indexed) and the vitamin K2 dev
questions (bench/k2_questions.jsonl, weighted to a third of the total). Reported on: the SQuAD
*evaluation half*, COVID-QA's evaluation half and the K2 held-out file
(bench/k2_heldout.jsonl), which the fit never sees. ``--write`` saves the model.

Features are cached in ``--cache`` (a folder, one .npz per source: squad, covid, k2) keyed by
nothing but the file name: delete them after changing the features, the ranking or the
questions.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatbot import service  # noqa: E402
from chatbot.calibration import reliability, risk_coverage  # noqa: E402
from chatbot.config import Settings  # noqa: E402
from chatbot.embedder import get_embedder  # noqa: E402
from chatbot.evaluate import matches  # noqa: E402
from chatbot.retrieval import Retriever  # noqa: E402
from chatbot.retrieval.trust import FEATURES, GENERAL_FILE, MODEL_FILE, TrustModel  # noqa: E402
from chatbot.squad import covers, index_articles  # noqa: E402

SHARED = ROOT.parent / "shared" / "datasets"
SQUAD = SHARED / "squad-v1.1" / "dev-v1.1.json"
COVID = SHARED / "covid-qa" / "200423_covidQA.json"
SQUAD_FIT = 24  # articles 0..23 are the fit half
COVID_DEV = 49  # articles 0..48 may be used for development
K = 3
FIT_SPLITS = ("squad-fit", "covid-fit", "k2-dev")  # rows the model is fitted on
CALIBRATION_SPLITS = ("squad-fit", "covid-fit")  # shown passages the calibration is fitted on


def head_rows(r: Retriever, question: str, vec, tokens, mask=None):
    """(candidate passage ids, features) of the head of ``question``'s ranking, before the
    trust model re-orders it (``mask``: rank among these candidates only)."""
    f = r.features(question, vec)
    if f is None:
        return np.zeros(0, np.int64), np.zeros((0, len(FEATURES)))
    if mask is not None:
        keep = mask(f.cand)
        if keep.sum() < 2:
            return np.zeros(0, np.int64), np.zeros((0, len(FEATURES)))
        f = f.select(keep)
    ranked = r.rank(f, tokens)
    head = r.head(ranked, K)
    return f.cand[head], r.head_features(question, tokens, f, ranked, head)


def collect_squad(name: str, path: Path, index_dir: Path | None, dev: int, masked: bool):
    """Rows of a SQuAD-format file: group, split ('fit'/'eval'), X, y (and masked copies)."""
    settings = Settings.from_env()
    emb = get_embedder(settings.model)
    built = index_articles(path, emb, settings.splitter_settings(), keep_index=index_dir)
    index, questions = built.index, built.questions
    r = Retriever(index, emb, trust_model=None)
    queries = [r.spell(q.question) for q in questions]
    qvecs, qtokens = emb.encode_with_tokens(queries)
    out = []
    src = np.array([index.passage(i).source for i in range(index.size)])
    for n, (q, query, v, t) in enumerate(zip(questions, queries, qvecs, qtokens, strict=True)):
        split = "fit" if int(q.source[:3]) < dev else "eval"
        ids, x = head_rows(r, query, v, t)
        y = [covers(src[i], *_span(index, i), q) for i in ids]
        out.append((f"{name}-{split}", n, x, np.array(y, np.int8)))
        if masked and split == "fit":

            def other(cand, src=src, s=q.source):
                return src[cand] != s

            ids, x = head_rows(r, query, v, t, other)
            out.append((f"{name}-fit-masked", n, x, np.zeros(len(ids), np.int8)))
    return out


def _span(index, i):
    p = index.passage(int(i))
    return p.start, p.end


def collect_k2():
    """Rows of the vitamin K2 dev and held-out files on the default corpus."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        s = Settings.from_env(index=str(Path(tmp) / "index"))
        service.build(s, replace_all=True)
        r0 = service.open_retriever(s)
        r = Retriever(r0.index, r0.embedder, trust_model=None)
        for fname, split in [("k2_questions.jsonl", "k2-dev"), ("k2_heldout.jsonl", "k2-held")]:
            lines = (ROOT / "bench" / fname).read_text(encoding="utf-8").splitlines()
            for n, row in enumerate(json.loads(line) for line in lines if line.strip()):
                query = r.spell(row["question"])
                vecs, tokens = r.embedder.encode_with_tokens([query])
                ids, x = head_rows(r, query, vecs[0], tokens[0])
                exp = row["expected"]
                y = [bool(exp) and matches(r.index.passages[int(i)].text, exp) for i in ids]
                kind = row.get("kind", "")
                out.append((f"{split}-{kind}", n, x, np.array(y, np.int8)))
    return out


def write_general(path: Path) -> None:
    """Document frequencies of BM25 terms over the SQuAD fit half's paragraphs (terms in two
    or more): how common a word is in general English prose, whatever corpus is indexed."""
    from collections import Counter

    from chatbot.lexical import tokenize

    data = json.loads(SQUAD.read_text(encoding="utf-8"))["data"][:SQUAD_FIT]
    df: Counter[str] = Counter()
    n = 0
    for article in data:
        for para in article["paragraphs"]:
            n += 1
            df.update(set(tokenize(para["context"])))
    kept = {t: c for t, c in sorted(df.items()) if c >= 2}
    doc = {"documents": n, "source": "SQuAD v1.1 dev, first 24 articles", "df": kept}
    path.write_text(json.dumps(doc, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {path}: {len(kept)} terms over {n} paragraphs")


def save(rows, path: Path) -> None:
    np.savez_compressed(
        path,
        split=np.array([r[0] for r in rows]),
        qid=np.array([r[1] for r in rows]),
        sizes=np.array([len(r[3]) for r in rows]),
        X=np.concatenate([r[2] for r in rows]),
        y=np.concatenate([r[3] for r in rows]),
    )


def load(path: Path):
    """Rows saved by :func:`save`."""
    d = np.load(path)
    offs = np.concatenate([[0], np.cumsum(d["sizes"])])
    X = d["X"]
    if X.shape[1] != len(FEATURES):
        raise SystemExit(f"{path}: features of an older version; delete it to collect again")
    return [
        (str(s), int(q), X[a:b], d["y"][a:b])
        for s, q, a, b in zip(d["split"], d["qid"], offs[:-1], offs[1:], strict=True)
    ]


def fit(rows, C: float, k2_share: float = 1 / 3) -> TrustModel:
    """Logistic regression on the fit rows (SQuAD fit half, masked copies, K2 dev)."""
    from sklearn.linear_model import LogisticRegression

    use = [r for r in rows if r[0].startswith(FIT_SPLITS) and len(r[3])]
    X = np.concatenate([r[2] for r in use])
    y = np.concatenate([r[3] for r in use])
    k2 = np.concatenate([np.full(len(r[3]), r[0].startswith("k2")) for r in use])
    w = np.where(k2, k2_share / max(k2.sum(), 1), (1 - k2_share) / max((~k2).sum(), 1))
    w = w * len(w)
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    clf = LogisticRegression(C=C, max_iter=5000).fit((X - mean) / scale, y, sample_weight=w)
    return TrustModel(mean, scale, clf.coef_[0].astype(np.float64), float(clf.intercept_[0]))


def top(model: TrustModel | None, x: np.ndarray, y: np.ndarray) -> tuple[float, int, float]:
    """(confidence of the top passage, its label, top-3 hit) after re-ordering by ``model``."""
    if model is None:
        return 0.0, int(y[0]), float(y[:3].any())
    o = np.argsort(-model.score(x), kind="stable")
    return float(model.probability(x)[o[0]]), int(y[o[0]]), float(y[o[:3]].any())


def shown_rows(model: TrustModel, rows, splits: tuple[str, ...], n: int = 3):
    """(ranking probability, is top, label) of the first ``n`` passages after re-ordering,
    for the questions of ``splits`` (exact names)."""
    out = []
    for r in rows:
        if r[0] in splits and len(r[3]):
            p = model.score(r[2])
            for j, i in enumerate(np.argsort(-p, kind="stable")[:n]):
                out.append((p[i], float(j == 0), r[3][i]))
    return np.array(out)


def calibrate(model: TrustModel, rows) -> TrustModel:
    """``model`` with its shown-passage calibration fitted (:meth:`TrustModel.shown`) on the
    first three passages of the SQuAD and COVID-QA fit halves' questions as asked (nothing
    masked): what people are shown."""
    from sklearn.linear_model import LogisticRegression

    s = shown_rows(model, rows, CALIBRATION_SPLITS)
    q = np.clip(s[:, 0], 1e-9, 1 - 1e-9)
    X = np.stack([np.log(q / (1 - q)), s[:, 1]], axis=1)
    clf = LogisticRegression(C=100).fit(X, s[:, 2])
    a, c = clf.coef_[0]
    return replace(model, calibration=(float(a), float(c), float(clf.intercept_[0])))


def ece(conf: np.ndarray, right: np.ndarray) -> float:
    """Expected calibration error, ten equal-width bins (`chatbot.calibration.reliability`)."""
    return reliability(conf, right.astype(bool)).ece


def report(model: TrustModel, rows, thresholds: tuple[float, float]) -> None:
    """Per split: hit@1 before/after re-ordering, hit@3, ECE of the top passage, tier shares
    at ``thresholds`` (answer, possible), and right top passages left in *not found*."""
    splits = sorted({r[0] for r in rows})
    print(f"{'split':<22}{'n':>6}{'hit@1 was':>10}{'hit@1':>8}{'hit@3':>7}{'ECE':>7}", end="")
    print(f"{'answer':>8}{'ans.right':>10}{'possible':>9}{'none':>6}{'none.right':>11}")
    for s in splits:
        rs = [r for r in rows if r[0] == s and len(r[3])]
        if not rs:
            continue
        base = np.array([r[3][0] for r in rs], float)
        t = np.array([top(model, r[2], r[3]) for r in rs])
        conf, right, hit3 = t[:, 0], t[:, 1], t[:, 2]
        ans = conf >= thresholds[0]
        none = conf < thresholds[1]
        print(
            f"{s:<22}{len(rs):>6}{base.mean():>10.3f}{right.mean():>8.3f}{hit3.mean():>7.3f}"
            f"{ece(conf, right):>7.3f}{ans.mean():>8.3f}"
            f"{right[ans].mean() if ans.any() else float('nan'):>10.3f}"
            f"{(~ans & ~none).mean():>9.3f}{none.mean():>6.3f}{int(right[none].sum()):>11}"
        )


def risk_table(model: TrustModel, rows, splits: tuple[str, ...], thresholds) -> None:
    """Risk–coverage of the top passage on ``splits`` (answerable and not): at each
    threshold, the share of questions at or above it and the share of those wrong."""
    rs = [r for r in rows if r[0].startswith(splits) and len(r[3])]
    t = np.array([top(model, r[2], r[3]) for r in rs])
    print(f"risk-coverage on {', '.join(splits)} ({len(rs)} questions)")
    print(f"{'threshold':>10}{'coverage':>10}{'risk':>7}{'count':>7}")
    for row in risk_coverage(t[:, 0], t[:, 1].astype(bool), thresholds):
        print(f"{row.threshold:>10.2f}{row.coverage:>10.3f}{row.risk:>7.3f}{row.count:>7}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--squad-index", help="reuse/save the SQuAD index here")
    ap.add_argument("--covid-index", help="reuse/save the COVID-QA index here")
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "trust-rows"))
    ap.add_argument("--C", type=float, default=1.0, help="inverse regularisation strength")
    ap.add_argument("--k2-share", type=float, default=1 / 3, help="K2 dev's share of the weight")
    ap.add_argument("--write", action="store_true", help=f"save the model to {MODEL_FILE}")
    ap.add_argument(
        "--write-general", action="store_true", help=f"(re)write {GENERAL_FILE} and exit"
    )
    args = ap.parse_args()
    if args.write_general:
        write_general(GENERAL_FILE)
        return
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    if not SQUAD.exists():
        print(f"skipped: {SQUAD} not found")
        return
    idx = Path(args.squad_index) if args.squad_index else None
    cidx = Path(args.covid_index) if args.covid_index else None
    sources = {
        "squad": lambda: collect_squad("squad", SQUAD, idx, SQUAD_FIT, masked=True),
        "covid": lambda: collect_squad("covid", COVID, cidx, COVID_DEV, masked=False),
        "k2": collect_k2,
    }
    rows = []
    for name, collect in sources.items():
        if name == "covid" and not COVID.exists():
            continue
        path = cache / f"{name}.npz"
        if not path.exists():
            save(collect(), path)
        rows += load(path)
    settings = Settings.from_env()
    model = calibrate(fit(rows, args.C, args.k2_share), rows)
    print("weights (standardised features):")
    for name, c in sorted(zip(FEATURES, model.coef, strict=True), key=lambda t: -abs(t[1])):
        print(f"  {name:<12}{c:>8.3f}")
    print(f"  {'bias':<12}{model.bias:>8.3f}")
    report(model, rows, (settings.threshold, settings.possible_threshold))
    grid = [round(0.05 * i, 2) for i in range(2, 20)]
    risk_table(model, rows, ("k2-dev",), grid)
    risk_table(model, rows, ("squad-fit",), grid)
    rs = [r for r in rows if r[0] == "squad-eval" and len(r[3])]
    t = np.array([top(model, r[2], r[3]) for r in rs])
    rel = reliability(t[:, 0], t[:, 1].astype(bool))
    s = shown_rows(model, rows, ("squad-eval",))
    shown_ece = reliability(model.shown(s[:, 0], s[:, 1]), s[:, 2].astype(bool)).ece
    print(f"ECE of all three shown passages, SQuAD evaluation half: {shown_ece:.3f}")
    print(f"reliability of the top passage, SQuAD evaluation half (ECE {rel.ece:.3f})")
    print(f"{'bin':>12}{'count':>7}{'predicted':>11}{'observed':>10}")
    for b in rel.bins:
        print(f"{b.lower:>5.1f}–{b.upper:<5.1f}{b.count:>8}{b.predicted:>11.3f}{b.observed:>10.3f}")
    if args.write:
        MODEL_FILE.write_text(json.dumps(model.to_json(), indent=1) + "\n", encoding="utf-8")
        print(f"wrote {MODEL_FILE}")


if __name__ == "__main__":
    main()
