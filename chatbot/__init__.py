"""Retrieval-based question answering that quotes the documents verbatim, or says it can't."""

from __future__ import annotations

__version__ = "0.1.0"
