"""Vitamin K2 dev questions: answer rate at top-1/top-3 and abstention, on the default corpus.

    .venv/bin/python bench/k2.py [--questions bench/k2_questions.jsonl bench/k2_heldout.jsonl]

A passage is right when it contains one of the question's ``expected`` substrings (compared
after normalising case, whitespace, quotes and dashes). Kinds: answerable ("full",
"paraphrase", "keyword"), "nearmiss" (about the article's subject, not answered by it) and
"unrelated"; the last two have no expected text. Per file and kind: top-1/top-3 (answerable),
the share of questions in each tier (answer / possible / none) and how many answer-tier
answers are right; then issue 11's floors, each marked ok or MISS.
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

ON_KINDS = ("full", "paraphrase", "keyword")  # answerable; "nearmiss"/"unrelated" are not


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
            f"thresholds: answer >= {settings.threshold}, possible >= {settings.possible_threshold}"
        )
        head = f"{'file / kind':<24}{'n':>4}{'top1':>7}{'top3':>7}"
        print(head + f"{'answer':>8}{'ans.right':>10}{'possible':>9}{'none':>6}")
        floors: list[tuple[str, str, bool]] = []
        for path in args.questions:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
            rows = [json.loads(line) for line in lines if line.strip()]
            name = Path(path).name
            # per question: (kind, rank of the first right passage, tier)
            results: list[tuple[str, int | None, str]] = []
            for r in rows:
                a = retriever.ask(r["question"], k=3)
                kind = r.get("kind", "") or ("full" if r["expected"] else "unrelated")
                rank = (
                    match_rank((h.text for h in a.hits), r["expected"]) if r["expected"] else None
                )
                results.append((kind, rank, a.tier))
                bad = (r["expected"] and (rank != 1 or a.tier != "answer")) or (
                    not r["expected"] and a.tier != "none"
                )
                if args.show and bad:
                    top = a.hits[0].text[:70] if a.hits else ""
                    print(
                        f"  {a.tier.upper():<8} {r['id']} {r['question']!r} "
                        f"conf={a.confidence:.2f} rank={rank} top={top!r}"
                    )
            for kind in sorted({k for k, *_ in results}):
                _row(f"  {kind}", [x for x in results if x[0] == kind])
            on = [x for x in results if x[0] in ON_KINDS]
            m = _row(name, on)
            near = [x for x in results if x[0] == "nearmiss"]
            unrelated = [x for x in results if x[0] == "unrelated"]
            answer = [x for x in on if x[2] == "answer"]
            right = sum(x[1] == 1 for x in answer)
            floors += [
                (
                    name,
                    f"answerable in answer tier {len(answer)}/{len(on)} (>= 85%)",
                    len(answer) >= 0.85 * len(on),
                ),
                (
                    name,
                    f"answer tier right {right}/{len(answer)} (>= 97%)",
                    right >= 0.97 * len(answer),
                ),
                (
                    name,
                    f"answerable in none {sum(x[2] == 'none' for x in on)} (<= 1)",
                    sum(x[2] == "none" for x in on) <= 1,
                ),
                (
                    name,
                    f"unrelated in none {sum(x[2] == 'none' for x in unrelated)}"
                    f"/{len(unrelated)} (all)",
                    all(x[2] == "none" for x in unrelated),
                ),
                (
                    name,
                    f"near-miss in answer {sum(x[2] == 'answer' for x in near)} (0)",
                    not any(x[2] == "answer" for x in near),
                ),
                (
                    name,
                    f"near-miss in none {sum(x[2] == 'none' for x in near)}/{len(near)} (>= 70%)",
                    sum(x[2] == "none" for x in near) >= 0.7 * len(near),
                ),
                (name, f"top-1 {m.hit1:.3f}, top-3 {m.hitk:.3f}", True),
            ]
        print()
        print("Floors (issue 11):")
        for name, text, ok in floors:
            print(f"  {'ok  ' if ok else 'MISS'} {name:<22}{text}")


def _row(label: str, rows: list[tuple[str, int | None, str]]) -> Metrics:
    """Print one table row (top-1/top-3 over answerable rows; tier shares over all)."""
    m = metrics([x[1] for x in rows], 3, answered=[x[2] == "answer" for x in rows])
    n = len(rows)
    answer = [x for x in rows if x[2] == "answer"]
    share = {
        t: sum(x[2] == t for x in rows) / n if n else 0.0 for t in ("answer", "possible", "none")
    }
    right = sum(x[1] == 1 for x in answer) / len(answer) if answer else float("nan")
    answerable = any(x[1] is not None for x in rows) or label.strip() in ON_KINDS
    top1 = f"{m.hit1:>7.3f}{m.hitk:>7.3f}" if answerable else f"{'':>14}"
    print(
        f"{label:<24}{n:>4}{top1}{share['answer']:>8.3f}{right:>10.3f}"
        f"{share['possible']:>9.3f}{share['none']:>6.3f}"
    )
    return m


if __name__ == "__main__":
    main()
