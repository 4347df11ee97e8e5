"""Settings: one home for configuration (defaults, then ``CHATBOT_*`` env vars, then CLI flags).

Relative paths (``index``, ``corpus``, ``examples``, ``admin_token_file``) are relative to the
working directory, as in git or pytest: run from the project root, the defaults ``corpus/``,
``index/`` and ``examples.txt`` are the project's own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent  # the checkout (for tests and benches)
BUNDLED_MODEL = "bundled:all-MiniLM-L6-v2"
ABSTAIN_MESSAGE = "I couldn't find that in the documents."


@dataclass(frozen=True)
class Settings:
    """Every tunable value. Relative paths are relative to the working directory."""

    index: str = "index"
    corpus: str = "corpus"
    # The chat's example questions, one a line; shown only if the index answers them
    # (the "answer" tier), so another corpus shows none.
    examples: str = "examples.txt"
    model: str = BUNDLED_MODEL
    backend: str = "openvino"  # what runs the model: "openvino" or "torch" (bench/README.md)
    max_chars: int = 500  # passage length bound (characters)
    min_chars: int = 120  # passages shorter than this are packed with a neighbour sentence
    overlap: int = 1  # sentences shared by consecutive passages of a paragraph
    # A research paper (a document with front matter, chatbot.structure) gets passages of up
    # to this many characters: its dense paragraphs need more context (bench/README.md,
    # "Issue 15"). 0: papers like any document.
    paper_max_chars: int = 800
    k: int = 3
    threshold: float = 0.81  # confidence from which the top passage is quoted as the answer
    possible_threshold: float = 0.51  # from here to `threshold`: a "possible answer" to check
    host: str = "127.0.0.1"
    port: int = 7860
    max_file_mb: float = 50.0
    admin_token: str = ""
    admin_token_file: str = ""  # read the admin token from this file (keeps it out of `ps`)
    batch_size: int = 64
    lock_timeout: float = 600.0  # seconds an index writer waits for another one
    # Limits on what a user or a document can make the system do (README: Security and limits).
    max_question_chars: int = 2000  # a question (and the previous one, for a follow-up)
    max_word_chars: int = 40  # longer "words" are never spelling-corrected or corrected into
    allow_outside_links: bool = False  # index symlinks that point outside the folder given
    api_batch_size: int = 32  # questions answered together (chat and /ask; 1 = each alone)
    threads: int = 0  # threads that run the embedding model (0: the library's default)
    # Ray (README: Scaling out): "" runs here; "auto" joins a running cluster; or HOST:PORT.
    ray_address: str = ""
    ray_actors: int = 0  # model-holding actors (0: one per ray_actor_cpus CPUs of the cluster)
    ray_actor_cpus: int = 1  # CPUs (and model threads) each actor reserves
    ray_batch: int = 1024  # passages or questions per actor call
    ray_retries: int = 3  # times a batch is re-run after the worker running it died

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, overridden by ``CHATBOT_<FIELD>`` env vars, then by non-None ``overrides``."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"CHATBOT_{f.name.upper()}")
            if raw is not None and raw != "":
                values[f.name] = _coerce(f.name, raw, type(getattr(cls(), f.name)))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values)

    def path(self, value: str) -> Path:
        """A configured path: ``~`` expanded, relative paths against the working directory."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else Path.cwd() / p

    @property
    def index_dir(self) -> Path:
        return self.path(self.index)

    @property
    def corpus_dir(self) -> Path:
        return self.path(self.corpus)

    @property
    def examples_path(self) -> Path:
        return self.path(self.examples)

    def splitter_settings(self) -> dict[str, int]:
        """The settings that shape passages; recorded in the manifest."""
        return {
            "max_chars": self.max_chars,
            "min_chars": self.min_chars,
            "overlap": self.overlap,
            "paper_max_chars": self.paper_max_chars,
        }


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(name: str, raw: str, kind: type) -> Any:
    if kind is bool:
        if raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE
        raise ValueError(f"CHATBOT_{name.upper()}={raw!r} is not true or false; fix or unset it")
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(
            f"CHATBOT_{name.upper()}={raw!r} is not a valid {kind.__name__}; fix or unset it"
        ) from None
