"""Vitamin K2 dev questions: answer rate at top-1/top-3 and abstention, on the default corpus.

    .venv/bin/python bench/k2.py [--questions bench/k2_questions.jsonl bench/k2_heldout.jsonl]

A question is answered right when the passage contains one of its ``expected`` substrings
(compared after normalising case, whitespace, quotes and dashes). Off-topic questions have no
expected text and must be abstained on. Per file and per kind of on-topic question: hit@1
(top1), hit@3 (top3) and abstentions, from ``chatbot.evaluate.metrics``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatbot import service  # noqa: E402
from chatbot.config import Settings  # noqa: E402
from chatbot.evaluate import Metrics, match_rank, metrics  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--questions",
        nargs="+",
        default=[str(ROOT / "bench/k2_questions.jsonl"), str(ROOT / "bench/k2_heldout.jsonl")],
    )
    ap.add_argument("--show", action="store_true", help="print every miss")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env(index=str(Path(tmp) / "index"))
        service.build(settings, replace_all=True)
        retriever = service.open_retriever(settings)
        print(
            f"{'file':<22}{'on':>4}{'top1':>7}{'top3':>7}{'on-abst':>9}{'off':>5}{'off-abst':>10}"
        )
        separation: list[tuple[str, list[float], list[float]]] = []
        for path in args.questions:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
            rows = [json.loads(line) for line in lines if line.strip()]
            on = [r for r in rows if r["expected"]]
            off = [r for r in rows if not r["expected"]]
            # per on-topic question: (kind, rank of the first right passage, answered)
            results: list[tuple[str, int | None, bool]] = []
            on_conf: list[float] = []
            off_conf: list[float] = []
            for r in on:
                a = retriever.ask(r["question"], k=3)
                on_conf.append(a.confidence)
                rank = match_rank((h.text for h in a.hits), r["expected"])
                results.append((r.get("kind", ""), rank, a.answered))
                if args.show and (rank != 1 or not a.answered):
                    print(
                        f"  MISS {r['id']} {r['question']!r} conf={a.confidence:.2f} "
                        f"ok3={rank is not None} top={a.hits[0].text[:80] if a.hits else ''!r}"
                    )
            off_answered: list[bool] = []
            for r in off:
                a = retriever.ask(r["question"], k=3)
                off_conf.append(a.confidence)
                off_answered.append(a.answered)
                if args.show and a.answered:
                    print(f"  FALSE {r['id']} {r['question']!r} conf={a.confidence:.2f}")
            name = Path(path).name

            def figures(rows: list[tuple[str, int | None, bool]]) -> Metrics:
                return metrics([x[1] for x in rows], 3, answered=[x[2] for x in rows])

            for kind in sorted({k for k, *_ in results}):
                m = figures([x for x in results if x[0] == kind])
                print(f"  {kind:<20}{m.n:>4}{m.hit1:>7.3f}{m.hitk:>7.3f}{m.abstained:>9}")
            m = figures(results)
            # off-topic questions have no right passage: every answer is wrong
            off_m = metrics([None] * len(off), 3, answered=off_answered)
            print(
                f"{name:<22}{m.n:>4}{m.hit1:>7.3f}{m.hitk:>7.3f}"
                f"{m.abstained:>9}{off_m.n:>5}{off_m.abstained:>10}"
            )
            separation.append((name, on_conf, off_conf))
        print()
        print("How well confidence separates on-topic from off-topic questions, whatever the")
        print("threshold: AUC, and the fewest on-topic abstentions of any threshold that")
        print("abstains on every off-topic question (the threshold just above the highest")
        print("off-topic confidence).")
        print(f"{'file':<22}{'AUC':>7}{'max off conf':>14}{'on-abst at it':>15}")
        for name, on_c, off_c in separation:
            if not on_c or not off_c:
                continue
            auc = sum((a > b) + 0.5 * (a == b) for a in on_c for b in off_c)
            auc /= len(on_c) * len(off_c)
            top_off = max(off_c)
            fewest = sum(c <= top_off for c in on_c)
            print(f"{name:<22}{auc:>7.3f}{top_off:>14.3f}{fewest:>15}")


if __name__ == "__main__":
    main()
