"""TokenCodec: product-quantised token vectors (chatbot/codec.py), on small random data."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from chatbot.codec import TokenCodec, calibration_texts, default_codec, token_sample
from chatbot.embedder import FakeEmbedder


def unit_rows(n: int, dim: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return unit_rows(1000, 16)


@pytest.fixture(scope="module")
def codec(data: np.ndarray) -> TokenCodec:
    return TokenCodec.train(data, m=4)


def test_shapes_and_dtypes(codec: TokenCodec, data: np.ndarray) -> None:
    codes = codec.encode(data[:10])
    assert codes.dtype == np.uint8 and codes.shape == (10, 4) == (10, codec.code_size)
    out = codec.decode(codes)
    assert out.dtype == np.float32 and out.shape == (10, 16)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert codec.encode(data[:10].astype(np.float16)).shape == (10, 4)
    p = codec.params()
    assert (p["kind"], p["m"], p["nbits"], p["dim"]) == ("pq", 4, 8, 16)
    assert len(p["sha256"]) == 64


def test_round_trip_error_bound(codec: TokenCodec, data: np.ndarray) -> None:
    """4-d sub-vectors, 256 centroids each (about 4 rows per centroid): reconstructions lie
    close to their rows (a random unit vector has cosine about 0), and a decoded vector
    encodes to the same codes."""
    codes = codec.encode(data)
    raw = codec.decode(codes, normalize=False)
    err = np.linalg.norm(raw - data, axis=1)
    assert err.mean() < 0.5 and err.max() < 0.9
    cos = np.sum(codec.decode(codes) * data, axis=1)
    assert cos.mean() > 0.85 and cos.min() > 0.5
    # a centroid is its own nearest centroid
    assert np.array_equal(codec.encode(raw), codes)


def test_more_bytes_less_error(data: np.ndarray) -> None:
    errs = [
        np.linalg.norm(c.decode(c.encode(data), False) - data, axis=1).mean()
        for c in (TokenCodec.train(data, m) for m in (2, 4, 8))
    ]
    assert errs[0] > errs[1] > errs[2]


def test_deterministic_whatever_the_threads(data: np.ndarray) -> None:
    threads = faiss.omp_get_max_threads()
    try:
        faiss.omp_set_num_threads(1)
        one = TokenCodec.train(data, m=4)
        faiss.omp_set_num_threads(4)
        four = TokenCodec.train(data, m=4)
        assert faiss.omp_get_max_threads() == 4  # train restores the caller's setting
    finally:
        faiss.omp_set_num_threads(threads)
    again = TokenCodec.train(data.copy(), m=4)
    assert one.centroids.tobytes() == four.centroids.tobytes() == again.centroids.tobytes()
    assert one.params() == again.params()
    other = TokenCodec.train(data, m=4, seed=7)
    assert other.params()["sha256"] != one.params()["sha256"]


def test_save_load(codec: TokenCodec, data: np.ndarray, tmp_path) -> None:
    path = tmp_path / "codebook.npy"
    codec.save(path)
    for mmap in (True, False):
        back = TokenCodec.load(path, mmap=mmap)
        assert back == codec and back.params() == codec.params()
        assert np.array_equal(back.encode(data), codec.encode(data))
    assert np.load(path).dtype == np.dtype("<f4")


def test_empty_input(codec: TokenCodec) -> None:
    assert codec.encode(np.zeros((0, 16), np.float32)).shape == (0, 4)
    assert codec.encode(np.zeros((0, 16), np.float32)).dtype == np.uint8
    out = codec.decode(np.zeros((0, 4), np.uint8))
    assert out.shape == (0, 16) and out.dtype == np.float32
    with pytest.raises(ValueError):
        TokenCodec.train(np.zeros((0, 16), np.float32), m=4)


def test_bad_arguments(data: np.ndarray) -> None:
    with pytest.raises(ValueError, match="divide"):
        TokenCodec.train(data, m=5)
    with pytest.raises(ValueError, match="at least 256"):
        TokenCodec.train(data[:100], m=4)
    with pytest.raises(ValueError):
        TokenCodec(np.zeros((4, 3, 8), np.float32))  # 3 centroids: not a power of two


def test_fewer_bits(data: np.ndarray) -> None:
    """nbits < 8 still stores one byte per sub-vector, each below 2**nbits."""
    c = TokenCodec.train(data, m=4, nbits=4)
    codes = c.encode(data)
    assert codes.shape == (1000, 4) and codes.max() < 16
    assert c.params()["nbits"] == 4
    sub = data[:, :4]
    expect = ((sub[:, None, :] - c.centroids[0][None]) ** 2).sum(-1).argmin(1)
    assert np.array_equal(codes[:, 0], expect)


def test_default_codec_fake_embedder() -> None:
    """The calibration text trains a codebook for the fake test embedder too, the same one
    every time (it does not depend on any indexed document)."""
    emb = FakeEmbedder(64)
    texts = calibration_texts()
    assert len(texts) > 50 and sum(map(len, texts)) > 30_000
    sample = token_sample(emb, texts)
    assert sample.shape[1] == 64 and len(sample) > 256
    assert np.array_equal(token_sample(emb, texts), sample)
    a = default_codec(emb, m=4)  # = TokenCodec.train(sample, 4): deterministic (above)
    assert a.params()["dim"] == 64
    _, toks = emb.encode_with_tokens(["Oxygen is a chemical element with symbol O."])
    v = toks[0].vectors
    assert np.sum(a.decode(a.encode(v)) * v, axis=1).min() > 0.5
