"""Retrieval: fuse dense and lexical evidence, rank passages, decide whether to answer.

:class:`Retriever` runs one stage module after another, each with one job:

- :mod:`.candidates`: the passages worth scoring (top FAISS ids ∪ top BM25);
- :mod:`.evidence`: their :class:`Features` (passage cosine, best-sentence cosine, BM25
  relative to an ideal passage);
- :mod:`.ranking`: the :class:`Fusion` mix, then token match re-scores its head;
- :mod:`.confidence`: the top passage's specific match through a logistic function;
- :mod:`.presentation`: hits, overlapping runner-ups trimmed, each text once, highlights.
"""

from __future__ import annotations

from .evidence import Features
from .ranking import Fusion, Ranking
from .retriever import Retriever

__all__ = ["Features", "Fusion", "Ranking", "Retriever"]
