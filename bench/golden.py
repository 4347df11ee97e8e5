"""Golden outputs: `chatbot ask` JSONL on SQuAD dev and the vitamin K2 questions, to compare.

    .venv/bin/python bench/golden.py write OUT_DIR [--work DIR] [--limit N]
    .venv/bin/python bench/golden.py compare OLD_DIR NEW_DIR

``write`` indexes the SQuAD v1.1 dev articles (each a .txt document, as bench/quality.py
writes them; ``--work DIR`` keeps the index for the next run) and the default corpus, then
runs ``chatbot ask`` over every SQuAD question and over bench/k2_questions.jsonl and
bench/k2_heldout.jsonl, writing squad.jsonl, k2.jsonl and k2_heldout.jsonl to OUT_DIR.
``compare`` reports, per file, how many records differ between two such folders (exact
JSON equality, absolute source paths cut to their file name: each run writes the SQuAD
articles into its own work folder) and shows the first difference; it exits 1 if any record
differs.
A refactoring that claims "no behaviour change" must compare equal.
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

from chatbot.cli import main as cli_main  # noqa: E402

SQUAD = ROOT.parent / "shared" / "datasets" / "squad-v1.1" / "dev-v1.1.json"
FILES = ("squad.jsonl", "k2.jsonl", "k2_heldout.jsonl")


def _ask(index: Path, questions: Path, out: Path) -> None:
    code = cli_main(["ask", str(questions), "--index", str(index), "--out", str(out), "-q"])
    if code != 0:
        raise SystemExit(f"chatbot ask failed ({code}) on {questions}")


def write(out: Path, work: Path, limit: int | None) -> None:
    from chatbot.squad import write_articles

    out.mkdir(parents=True, exist_ok=True)
    if SQUAD.exists():
        docs = work / "squad-docs"
        questions = write_articles(SQUAD, docs, limit)
        qfile = work / "squad-questions.jsonl"
        with qfile.open("w", encoding="utf-8") as fh:
            for q in questions:
                fh.write(json.dumps({"id": q.id, "question": q.question}) + "\n")
        index = work / "squad-index"
        if cli_main(["index", "build", str(docs), "--index", str(index), "-q"]) not in (0, 2):
            raise SystemExit("indexing SQuAD failed")
        _ask(index, qfile, out / "squad.jsonl")
    else:
        print(f"skipped SQuAD: {SQUAD} not found")
    k2_index = work / "k2-index"
    if cli_main(["index", "build", str(ROOT / "corpus"), "--index", str(k2_index), "-q"]) != 0:
        raise SystemExit("indexing corpus/ failed")
    _ask(k2_index, ROOT / "bench" / "k2_questions.jsonl", out / "k2.jsonl")
    _ask(k2_index, ROOT / "bench" / "k2_heldout.jsonl", out / "k2_heldout.jsonl")
    for name in FILES:
        if (out / name).exists():
            lines = (out / name).read_text(encoding="utf-8").count("\n")
            print(f"{name}: {lines} records")


def _portable(line: str) -> str:
    """A record with absolute sources cut to their file name: the SQuAD articles live in each
    run's own work folder, so only that part of their names may differ between runs."""
    record = json.loads(line)
    for p in record.get("passages", []):
        if os.path.isabs(p["source"]):
            p["source"] = os.path.basename(p["source"])
    return json.dumps(record, ensure_ascii=False, sort_keys=True)


def compare(old: Path, new: Path) -> int:
    differing = 0
    print(f"{'file':<18} {'records':>8} {'differ':>7}")
    for name in FILES:
        a, b = old / name, new / name
        if not a.exists() or not b.exists():
            print(f"{name:<18} {'missing':>8}")
            continue
        la = [_portable(line) for line in a.read_text(encoding="utf-8").splitlines()]
        lb = [_portable(line) for line in b.read_text(encoding="utf-8").splitlines()]
        diff = [i for i in range(max(len(la), len(lb))) if la[i : i + 1] != lb[i : i + 1]]
        print(f"{name:<18} {len(la):>8} {len(diff):>7}")
        if diff:
            i = diff[0]
            print(f"  first difference, record {i + 1}:\n  - {la[i : i + 1]}\n  + {lb[i : i + 1]}")
            differing += len(diff)
    return 1 if differing else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("out")
    w.add_argument("--work", help="keep the indexes here (default: a temporary folder)")
    w.add_argument("--limit", type=int, help="only the first N SQuAD articles")
    c = sub.add_parser("compare")
    c.add_argument("old")
    c.add_argument("new")
    args = ap.parse_args()
    if args.cmd == "compare":
        return compare(Path(args.old), Path(args.new))
    if args.work:
        write(Path(args.out), Path(args.work), args.limit)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            write(Path(args.out), Path(tmp), args.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
