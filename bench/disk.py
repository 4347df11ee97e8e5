"""Size on disk of an index, per kind of file: bytes, bytes per passage, and × its text.

    .venv/bin/python bench/disk.py INDEX_DIR

The reference is the index's own text (the documents' UTF-8 bytes, text.bin), measured in
the same run: "× text" is a file kind's bytes over the text's. Issue 10's floor for SQuAD
dev (``bench/quality.py --keep DIR`` builds it) is at most 8,000 bytes per passage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path


def kind(name: str) -> str:
    """The group a file of an index folder counts under."""
    if name.startswith("bm25_"):
        return "bm25 postings"
    if name.startswith("words"):
        return "speller words"
    if name.startswith("sentence"):
        return "sentences (spans, vectors)"
    return name


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("index", type=Path)
    args = ap.parse_args()
    manifest = json.loads((args.index / "manifest.json").read_text())
    live = {e["name"] for e in manifest["segments"]}
    sizes: dict[str, int] = defaultdict(int)
    for p in args.index.iterdir():
        if p.is_dir() and p.name in live:
            for f in p.iterdir():
                sizes[kind(f.name)] += f.stat().st_size
        elif p.is_file():
            sizes[p.name if not p.name.startswith("tokens-") else "token codebook"] += (
                p.stat().st_size
            )
    passages = manifest["passages"]
    text = sizes.get("text.bin", 0) or 1
    total = sum(sizes.values())
    print(f"{args.index}: {passages} passages, {len(live)} segment(s)")
    print(f"{'file':<30}{'bytes':>14}{'per passage':>14}{'x text':>9}")
    for name, size in sorted(sizes.items(), key=lambda kv: -kv[1]):
        print(f"{name:<30}{size:>14,}{size / max(passages, 1):>14,.0f}{size / text:>9.2f}")
    print(f"{'total':<30}{total:>14,}{total / max(passages, 1):>14,.0f}{total / text:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
