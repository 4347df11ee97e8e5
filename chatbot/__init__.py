"""Retrieval-based question answering that quotes the documents verbatim, or says it can't.

The front door (see README, "Use it from Python")::

    from chatbot import Chatbot

    bot = Chatbot(index="kb-index")
    bot.add("papers/")
    answer = bot.ask("What does vitamin K2 do for bones?")

Names are imported on first use, so ``import chatbot`` stays cheap (no model, no torch).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Chatbot": "library",
    "Settings": "config",
    "Answer": "types",
    "Hit": "types",
    "Passage": "types",
    "Document": "types",
    "Summary": "index",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'chatbot' has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)
