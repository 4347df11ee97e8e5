"""Passage retrieval quality on a SQuAD-format file: hit@1, hit@5, MRR@10, mean passage length.

    .venv/bin/python bench/quality.py [FILE.json] [--limit N] [--keep DIR]

Each article becomes one document (title line, paragraphs joined by a blank line), indexed with
the project's own pipeline and default settings; every question is asked. A hit is a returned
passage covering at least half of a gold answer span. The same passages are also ranked by
BM25 alone and by the dense model alone, in the same run. Default FILE: the SQuAD v1.1 dev set
in ../shared/datasets. ``--keep DIR`` saves the built index and reuses it next time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatbot.config import Settings  # noqa: E402
from chatbot.embedder import get_embedder  # noqa: E402
from chatbot.squad import format_figures, run  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "datasets" / "squad-v1.1" / "dev-v1.1.json"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", default=str(DEFAULT))
    ap.add_argument("--limit", type=int, help="only the first N articles")
    ap.add_argument("--keep", help="save/reuse the built index in this folder")
    args = ap.parse_args()
    path = Path(args.file)
    if not path.exists():
        print(f"skipped: {path} not found (the shared datasets are not here)")
        return 0
    settings = Settings.from_env()
    with tempfile.TemporaryDirectory() as tmp:
        figures, timings = run(
            path,
            Path(tmp),
            get_embedder(settings.model),
            settings.splitter_settings(),
            limit=args.limit,
            progress=sys.stderr.isatty(),
            keep_index=Path(args.keep) if args.keep else None,
        )
    print(f"# {path.name}, splitter {settings.splitter_settings()}")
    print(format_figures(figures, timings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
