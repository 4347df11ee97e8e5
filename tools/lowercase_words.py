"""Write chatbot/data/lowercase_words.txt: common English words that are written in lower
case inside a sentence, from the SQuAD v1.1 dev *fit half* (articles 1-24).

    .venv/bin/python tools/lowercase_words.py [SQUAD.json]

The sentence splitter (chatbot/sentences.py) uses the list as general knowledge of English
capitalisation: such a word capitalised after an abbreviation or an initial starts a new
sentence ("... etc. Detailed data ...", "... at 9 a.m. Please ..."), and a word pair ending
in one is not a name-like collocation. Punkt learns the same from a large text; a small
document cannot teach it.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT.parent / "shared" / "datasets" / "squad-v1.1" / "dev-v1.1.json"
OUT = ROOT / "chatbot" / "data" / "lowercase_words.txt"
FIT_ARTICLES = 24
MIN_COUNT = 5  # occurrences inside sentences
MAX_UPPER_SHARE = 0.02  # capitalised inside a sentence at most this often
WORD = re.compile(r"(?<![\w.])([Aa]|[A-Za-z][a-z]+)(?![\w])")  # "a" is the one-letter word


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    data = json.loads(path.read_text(encoding="utf-8"))["data"][:FIT_ARTICLES]
    lower: Counter[str] = Counter()
    upper: Counter[str] = Counter()
    for article in data:
        for para in article["paragraphs"]:
            text = para["context"]
            for m in WORD.finditer(text):
                before = text[: m.start()].rstrip()
                if not before or before[-1] in ".?!:\"'“(":  # a possible sentence start
                    continue
                w = m.group(1)
                (lower if w[0].islower() else upper)[w.lower()] += 1
    words = sorted(
        w
        for w, n in lower.items()
        if n >= MIN_COUNT and upper[w] <= MAX_UPPER_SHARE * (n + upper[w])
    )
    header = (
        "# Words written in lower case inside sentences (SQuAD v1.1 dev fit half);\n"
        "# made by tools/lowercase_words.py, used by chatbot/sentences.py.\n"
    )
    OUT.write_text(header + "\n".join(words) + "\n", encoding="utf-8")
    print(f"{len(words)} words -> {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
