"""Vitamin K2 dev questions: answer rate at top-1/top-3 and abstention, on the default corpus.

    .venv/bin/python bench/k2.py [--questions bench/k2_questions.jsonl bench/k2_heldout.jsonl]

A question is answered right when the passage contains one of its ``expected`` substrings
(compared after normalising case, whitespace, quotes and dashes). Off-topic questions have no
expected text and must be abstained on.
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
from chatbot.evaluate import matches  # noqa: E402


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
            # per on-topic question: (kind, right at top-1, right in top-3, abstained)
            results: list[tuple[str, bool, bool, bool]] = []
            on_conf: list[float] = []
            off_conf: list[float] = []
            for r in on:
                a = retriever.ask(r["question"], k=3)
                on_conf.append(a.confidence)
                ok1 = bool(a.hits) and matches(a.hits[0].text, r["expected"])
                ok3 = any(matches(h.text, r["expected"]) for h in a.hits)
                results.append((r.get("kind", ""), ok1, ok3, not a.answered))
                if args.show and (not ok1 or not a.answered):
                    print(
                        f"  MISS {r['id']} {r['question']!r} conf={a.confidence:.2f} "
                        f"ok3={ok3} top={a.hits[0].text[:80] if a.hits else ''!r}"
                    )
            off_abst = 0
            for r in off:
                a = retriever.ask(r["question"], k=3)
                off_conf.append(a.confidence)
                off_abst += not a.answered
                if args.show and a.answered:
                    print(f"  FALSE {r['id']} {r['question']!r} conf={a.confidence:.2f}")
            name = Path(path).name
            for kind in sorted({k for k, *_ in results}):
                of_kind = [x for x in results if x[0] == kind]
                k1, k3, ka = (sum(x[i] for x in of_kind) for i in (1, 2, 3))
                print(
                    f"  {kind:<20}{len(of_kind):>4}{k1 / len(of_kind):>7.3f}"
                    f"{k3 / len(of_kind):>7.3f}{ka:>9}"
                )
            top1, top3, on_abst = (sum(x[i] for x in results) for i in (1, 2, 3))
            print(
                f"{name:<22}{len(on):>4}{top1 / len(on):>7.3f}{top3 / len(on):>7.3f}"
                f"{on_abst:>9}{len(off):>5}{off_abst:>10}"
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
