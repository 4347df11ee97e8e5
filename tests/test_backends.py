"""The embedding backends: the setting, the fallback to torch, the OpenVINO model and its cache."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from chatbot import backends
from chatbot.config import BUNDLED_MODEL, Settings
from chatbot.embedder import LazyEmbedder, get_embedder

TEXTS = [
    "Vitamin K2 helps move calcium into bones and away from arteries.",
    "The Normans were the people who in the 10th and 11th centuries gave their name to "
    "Normandy, a region in France. They were descended from Norse raiders and pirates.",
    "Short.",
    "Super Bowl 50 was an American football game to determine the champion of the National "
    "Football League (NFL) for the 2015 season. " * 4,
]


def test_backend_setting_from_env() -> None:
    assert Settings().backend in backends.BACKENDS
    assert Settings.from_env({"CHATBOT_BACKEND": "openvino"}).backend == "openvino"
    assert Settings.from_env({"CHATBOT_BACKEND": "torch"}).backend == "torch"


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown embedding backend 'cuda'"):
        get_embedder("fake-64", "cuda")
    with pytest.raises(ValueError, match="CHATBOT_BACKEND"):
        backends.check_backend("onnx")


def test_fake_embedder_has_a_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    assert get_embedder("fake-64", "torch").backend == "fake"
    monkeypatch.setenv("CHATBOT_BACKEND", "openvino")
    assert get_embedder("fake-64").backend == "fake"  # the configured backend, then the fake
    assert LazyEmbedder("fake-64", 64, "openvino").backend == "fake"


def test_cache_root_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CHATBOT_CACHE_DIR", str(tmp_path / "own"))
    assert backends.cache_root() == tmp_path / "own"
    monkeypatch.delenv("CHATBOT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert backends.cache_root() == tmp_path / "xdg" / "chatbot"


def test_cache_key_changes_with_the_model_files(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"0123")
    key = backends.cache_key(str(model))
    assert key == backends.cache_key(str(model))
    (model / "weights.bin").write_bytes(b"01234")
    assert backends.cache_key(str(model)) != key
    key = backends.cache_key(str(model))
    stamp = time.time() + 10
    os.utime(model / "weights.bin", (stamp, stamp))
    assert backends.cache_key(str(model)) != key


def test_unconvertible_models_say_why() -> None:
    class Module:
        def __init__(self, config: dict | None = None) -> None:
            self.config = config or {}

        def get_config_dict(self) -> dict:
            return self.config

    class Transformer(Module): ...

    class Pooling(Module): ...

    class Dense(Module): ...

    class Model(list):
        tokenizer = type("Tok", (), {"is_fast": True, "model_input_names": ["input_ids"]})()

    assert "modules" in backends.convertible(Model([Transformer(), Pooling(), Dense()]))
    cls = backends.convertible(Model([Transformer(), Pooling({"pooling_mode": "cls"})]))
    assert "pooling" in cls
    mean = Model([Transformer(), Pooling({"pooling_mode": "mean"})])
    assert "tokenizer inputs" in backends.convertible(mean)  # no attention mask


# ---------------------------------------------------------------------------- real model


@pytest.fixture(scope="module")
def ov_cache(tmp_path_factory: pytest.TempPathFactory):
    """A fresh cache folder for converted models, for this module's tests."""
    root = tmp_path_factory.mktemp("ov-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHATBOT_CACHE_DIR", str(root))
        yield root


@pytest.fixture(scope="module")
def pair(ov_cache: Path):
    """The bundled model on torch and on OpenVINO (converted into ``ov_cache``)."""
    from chatbot.embedder import SentenceTransformerEmbedder

    torch_emb = get_embedder(BUNDLED_MODEL, "torch")
    ov_emb = SentenceTransformerEmbedder(BUNDLED_MODEL, "openvino")
    return torch_emb, ov_emb


def _min_cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sum(a * b, axis=1).min())


@pytest.mark.model
def test_openvino_vectors_match_torch(pair) -> None:
    torch_emb, ov_emb = pair
    assert torch_emb.backend == "torch" and ov_emb.backend == "openvino"
    assert ov_emb._ov.source == "converted"
    tv, tt = torch_emb.encode_with_tokens(TEXTS, batch_size=2)
    ov, ot = ov_emb.encode_with_tokens(TEXTS, batch_size=2)
    assert ov.dtype == np.float32 and ov.shape == tv.shape
    assert _min_cos(tv, ov) >= 0.9999
    for a, b in zip(tt, ot, strict=True):
        assert a.surface == b.surface and np.array_equal(a.words, b.words)
        assert a.vectors.shape == b.vectors.shape and len(a.vectors) > 0
        assert _min_cos(a.vectors, b.vectors) >= 0.9999
    # plain encode (through sentence-transformers on torch) agrees too
    plain = torch_emb.model.encode(TEXTS, normalize_embeddings=True)
    assert _min_cos(plain, ov_emb.encode(TEXTS)) >= 0.9999
    spans = [[(0, 10), (11, len(t))] for t in TEXTS]
    _, _, tp = torch_emb.encode_late(TEXTS, spans)
    _, _, op = ov_emb.encode_late(TEXTS, spans)
    for a, b in zip(tp, op, strict=True):
        assert _min_cos(a, b) >= 0.9999


@pytest.mark.model
def test_openvino_model_is_cached(pair, ov_cache: Path) -> None:
    from chatbot.embedder import SentenceTransformerEmbedder

    _, converted = pair
    (entry,) = (ov_cache / "openvino").iterdir()
    assert (entry / backends.IR_FILE).exists()
    assert not [p for p in (ov_cache / "openvino").iterdir() if p.name.startswith(".tmp-")]
    cached = SentenceTransformerEmbedder(BUNDLED_MODEL, "openvino")
    assert cached.backend == "openvino" and cached._ov.source == "cache"
    assert _min_cos(converted.encode(TEXTS), cached.encode(TEXTS)) >= 0.99999
    # a damaged cache entry is converted again, not fatal
    (entry / backends.IR_FILE).write_text("<not a model")
    again = SentenceTransformerEmbedder(BUNDLED_MODEL, "openvino")
    assert again.backend == "openvino" and again._ov.source == "converted"


@pytest.mark.model
def test_unconvertible_model_falls_back_to_torch(
    pair, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from chatbot.embedder import SentenceTransformerEmbedder

    monkeypatch.setattr(backends, "convertible", lambda model: "a test says no")
    emb = SentenceTransformerEmbedder(BUNDLED_MODEL, "openvino")
    assert emb.backend == "torch"
    assert "a test says no" in caplog.text
    torch_emb, _ = pair
    assert _min_cos(torch_emb.encode(TEXTS), emb.encode(TEXTS)) >= 0.99999


def test_an_index_is_asked_and_extended_with_the_backend_it_was_embedded_with() -> None:
    from chatbot.config import Settings
    from chatbot.service import index_backend

    openvino, torch = Settings(backend="openvino"), Settings(backend="torch")
    assert index_backend({"backend": "torch"}, openvino) == "torch"
    assert index_backend({"backend": "openvino"}, torch) == "openvino"
    assert index_backend({"backend": "fake"}, torch) == "torch"  # the test embedder's


@pytest.mark.model
def test_a_cached_model_starts_without_torch_and_embeds_identically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    import chatbot.embedder as emb

    monkeypatch.setenv("CHATBOT_CACHE_DIR", str(tmp_path))
    full = emb.SentenceTransformerEmbedder("bundled:all-MiniLM-L6-v2", "openvino")
    assert type(full.model).__name__ == "SentenceTransformer"  # converted, light record saved
    light = emb.SentenceTransformerEmbedder("bundled:all-MiniLM-L6-v2", "openvino")
    assert type(light.model).__name__ == "_LightModel" and light.backend == "openvino"
    texts = ["What is vitamin K2?", "Menatetrenone (MK-4) at 180\u2009μgm/day. " * 40, "x" * 900]
    v1, t1 = full.encode_with_tokens(texts)
    v2, t2 = light.encode_with_tokens(texts)
    np.testing.assert_array_equal(v1, v2)
    for a, b in zip(t1, t2, strict=True):
        np.testing.assert_array_equal(a.vectors, b.vectors)
        assert a.surface == b.surface and np.array_equal(a.words, b.words)
    spans = [[(0, 8)], [(0, 30), (31, 90)], [(0, 10)]]
    for a, b in zip(
        full.encode_late(texts, spans)[2], light.encode_late(texts, spans)[2], strict=True
    ):
        np.testing.assert_array_equal(a, b)
    words = ("vitamin", "vitamn", "osteoporosis", "bone")
    assert [full.knows_word(w) for w in words] == [light.knows_word(w) for w in words]
    code = (
        "import sys; from chatbot.embedder import SentenceTransformerEmbedder as E; "
        "e = E('bundled:all-MiniLM-L6-v2', 'openvino'); e.encode(['a question']); "
        "print(type(e.model).__name__, 'torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.split() == ["_LightModel", "False"]
