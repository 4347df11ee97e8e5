"""Sentence-boundary precision and recall on the labelled set of tricky sentences.

    .venv/bin/python bench/sentences.py [--file FILE.jsonl] [--covid] [--show N]

``--file`` (alias ``--set``) picks the labelled set: ``tests/data/sentences.jsonl`` by default,
or the held-out ``tests/data/sentences_heldout.jsonl``, labelled without looking at any splitter.

Each item of ``tests/data/sentences.jsonl`` is a short text (``sep.join(sentences)``) whose
gold boundaries are the start offsets of its sentences after the first. A splitter's
boundaries are the start offsets of its predicted sentences after the first (leading
whitespace skipped); the two sets are compared per item and summed over the set.

Rows (those whose API is not importable yet are skipped with a note):

- untrained nltk Punkt, what the project used before (no abbreviations known);
- ``chatbot.splitter.sentence_spans``, the project's sentence function as it stands (Punkt plus
  line breaks for lists), with ``max_chars`` unbounded;
- ``chatbot.sentences.SentenceSplitter.default()``, the shipped abbreviation list only;
- ``SentenceSplitter.train`` on the set's own texts (transductive, as the index trains on the
  documents it indexes);
- with ``--covid``, ``SentenceSplitter.train`` on COVID-QA dev articles 0-48.

Prints a Markdown table (splitter | boundaries | precision | recall | F1), per-kind precision
and recall, and with ``--show N`` each splitter's N worst items with the boundaries it missed
(``missed``) and invented (``spurious``), marked ``|`` in context.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_SET = ROOT / "tests" / "data" / "sentences.jsonl"
COVID_QA = ROOT.parent / "shared" / "datasets" / "covid-qa" / "200423_covidQA.json"
COVID_DEV = range(49)  # articles 0-48; the rest are held out

SpanFn = Callable[[str], list[tuple[int, int]]]


@dataclass(frozen=True)
class Item:
    """One labelled text: its sentences and the separator that joins them."""

    id: str
    kind: str
    source: str
    sentences: list[str]
    sep: str = " "

    @property
    def text(self) -> str:
        return self.sep.join(self.sentences)

    @property
    def gold(self) -> set[int]:
        """Start offsets of the sentences after the first."""
        out, pos = set(), 0
        for s in self.sentences[:-1]:
            pos += len(s) + len(self.sep)
            out.add(pos)
        return out


@dataclass
class Score:
    """Boundary counts summed over items, overall and per kind."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    kinds: dict[str, list[int]] = field(default_factory=dict)
    errors: list[tuple[int, Item, set[int], set[int]]] = field(default_factory=list)

    def add(self, item: Item, pred: set[int]) -> None:
        gold = item.gold
        tp, fp, fn = len(gold & pred), len(pred - gold), len(gold - pred)
        self.tp, self.fp, self.fn = self.tp + tp, self.fp + fp, self.fn + fn
        k = self.kinds.setdefault(item.kind, [0, 0, 0])
        k[0], k[1], k[2] = k[0] + tp, k[1] + fp, k[2] + fn
        if fp or fn:
            self.errors.append((fp + fn, item, gold - pred, pred - gold))


def load_items(path: Path) -> list[Item]:
    """The labelled set, one JSON object a line."""
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            items.append(Item(d["id"], d["kind"], d["source"], d["sentences"], d.get("sep", " ")))
    return items


def boundaries(text: str, spans: Iterable[tuple[int, int]]) -> set[int]:
    """Start offsets (leading whitespace skipped) of the predicted sentences after the first."""
    starts = set()
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        if s < e:
            starts.add(s)
    if starts:
        starts.discard(min(starts))
    return starts


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall and F1 (1.0 when there is nothing to get wrong)."""
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def score(items: list[Item], spans: SpanFn) -> Score:
    """Compare one splitter's boundaries with the gold ones on every item."""
    sc = Score()
    for item in items:
        text = item.text
        sc.add(item, boundaries(text, spans(text)))
    return sc


def punkt_untrained() -> SpanFn:
    """nltk's PunktSentenceTokenizer with no parameters: what the project used before."""
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    tok = PunktSentenceTokenizer()
    return lambda text: list(tok.span_tokenize(text))


def _local(module: ModuleType) -> bool:
    """Is ``module`` from this checkout (not found through another checkout's editable install)?"""
    return Path(module.__file__ or "").resolve().is_relative_to(ROOT / "chatbot")


def project_sentence_spans(sentences: object = None) -> SpanFn | None:
    """``chatbot.splitter.sentence_spans`` with unbounded length (and ``sentences`` if given)."""
    try:
        from chatbot import splitter
    except ImportError:
        return None
    if not _local(splitter):
        return None
    kwargs = {} if sentences is None else {"sentences": sentences}

    def spans(text: str) -> list[tuple[int, int]]:
        found = splitter.sentence_spans(text, 0, len(text), 10**9, **kwargs)
        return [(s.start, s.end) for s in found]

    spans("Probe. Call.")  # raises TypeError if the signature is not the expected one
    return spans


def covid_dev_texts(path: Path) -> list[str]:
    """The whole papers of COVID-QA articles 0-48 (the dev half)."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    return [data[i]["paragraphs"][0]["context"] for i in COVID_DEV]


def _trained(name: str, cls: Any, texts: list[str], notes: list[str]) -> list[tuple[str, SpanFn]]:
    """Rows for a splitter trained on ``texts``: alone, and inside ``sentence_spans``."""
    t0 = time.perf_counter()
    trained = cls.train(texts)
    notes.append(
        f"trained on {name} ({len(texts)} texts, {sum(map(len, texts)):,} chars) "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    rows: list[tuple[str, SpanFn]] = [
        (f"SentenceSplitter: trained on {name} + abbreviations", trained.spans)
    ]
    try:
        fn = project_sentence_spans(trained)
    except TypeError as e:
        notes.append(f"sentence_spans(..., sentences=...) not accepted ({e})")
        fn = None
    if fn is not None:
        rows.append((f"sentence_spans (+ line breaks), trained on {name}", fn))
    return rows


def splitters(items: list[Item], covid: bool, notes: list[str]) -> list[tuple[str, SpanFn]]:
    """The rows to compare: the untrained tokenizer first, then whatever is importable."""
    rows: list[tuple[str, SpanFn]] = [("nltk Punkt, untrained (before)", punkt_untrained())]
    fn = project_sentence_spans()
    if fn is None:
        notes.append("chatbot.splitter.sentence_spans: not importable from this checkout")
    else:
        rows.append(("sentence_spans (+ line breaks), project default", fn))
    try:
        from chatbot import sentences
    except ImportError as e:
        notes.append(f"chatbot.sentences: not importable yet ({e})")
        return rows
    if not _local(sentences):
        notes.append(f"chatbot.sentences: not in this checkout (found {sentences.__file__})")
        return rows
    try:
        cls = sentences.SentenceSplitter
        rows.append(("SentenceSplitter: abbreviations only", cls.default().spans))
        rows += _trained("the set's texts", cls, [item.text for item in items], notes)
        if covid and COVID_QA.exists():
            rows += _trained("COVID-QA dev 0-48", cls, covid_dev_texts(COVID_QA), notes)
        elif covid:
            notes.append(f"--covid: {COVID_QA} not found, row skipped")
    except (TypeError, AttributeError) as e:
        notes.append(f"chatbot.sentences.SentenceSplitter: API not as expected ({e!r})")
    return rows


def context(text: str, at: int, width: int = 30) -> str:
    """``text`` around offset ``at`` with the boundary marked ``|``."""
    left = text[max(0, at - width) : at].replace("\n", "⏎")
    right = text[at : at + width].replace("\n", "⏎")
    return f"…{left}|{right}…"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--file",
        "--set",
        dest="set",
        default=str(DEFAULT_SET),
        help="the labelled set (JSON lines)",
    )
    ap.add_argument("--covid", action="store_true", help="also train on COVID-QA dev 0-48")
    ap.add_argument("--show", type=int, default=0, help="print each splitter's N worst items")
    args = ap.parse_args()

    items = load_items(Path(args.set))
    n_gold = sum(len(item.gold) for item in items)
    n_covid = sum(item.source.startswith("covid-qa") for item in items)
    print(
        f"# {Path(args.set).name}: {len(items)} items ({n_covid} from COVID-QA dev), "
        f"{sum(len(item.sentences) for item in items)} sentences, {n_gold} gold boundaries\n"
    )
    notes: list[str] = []
    results = [(name, score(items, fn)) for name, fn in splitters(items, args.covid, notes)]

    print("| # | splitter | boundaries | precision | recall | F1 |")
    print("|---:|---|---:|---:|---:|---:|")
    for n, (name, sc) in enumerate(results, 1):
        p, r, f = prf(sc.tp, sc.fp, sc.fn)
        print(f"| {n} | {name} | {sc.tp + sc.fp} | {p:.3f} | {r:.3f} | {f:.3f} |")
    for note in notes:
        print(f"\n- {note}", end="")
    print("\n")

    kinds = sorted({item.kind for item in items})
    per_kind = {
        k: (sum(i.kind == k for i in items), sum(len(i.gold) for i in items if i.kind == k))
        for k in kinds
    }
    print("Per kind, precision / recall of each splitter (#):\n")
    print(
        "| kind | items | gold | " + " | ".join(f"{n}" for n in range(1, len(results) + 1)) + " |"
    )
    print("|---|---:|---:|" + "---:|" * len(results))
    for k in kinds:
        cells = []
        for _, sc in results:
            tp, fp, fn = sc.kinds.get(k, [0, 0, 0])
            p, r, _ = prf(tp, fp, fn)
            cells.append(f"{p:.2f} / {r:.2f}")
        print(f"| {k} | {per_kind[k][0]} | {per_kind[k][1]} | " + " | ".join(cells) + " |")

    for name, sc in results if args.show else []:
        print(f"\n## {name}: {len(sc.errors)} items with errors, worst {args.show}\n")
        for _, item, missed, spurious in sorted(sc.errors, key=lambda e: -e[0])[: args.show]:
            text = item.text
            print(f"- {item.id} ({item.kind})")
            for at in sorted(missed):
                print(f"    missed   {context(text, at)}")
            for at in sorted(spurious):
                print(f"    spurious {context(text, at)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
