"""Shared fixtures: a fake-embedder index over tests/data/docs; the real model once per session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from chatbot.config import PROJECT_ROOT, Settings  # noqa: E402

DATA = Path(__file__).parent / "data"
DOCS = DATA / "docs"
CORPUS = PROJECT_ROOT / "corpus"


@pytest.fixture
def fake_settings(tmp_path: Path) -> Settings:
    """Settings for a fresh index in tmp_path using the deterministic fake embedder."""
    return Settings(index=str(tmp_path / "index"), corpus=str(tmp_path / "corpus"), model="fake-64")


@pytest.fixture
def fake_index(fake_settings: Settings, tmp_path: Path) -> Settings:
    """A built fake-embedder index over copies of tests/data/docs."""
    from chatbot import service

    shutil.copytree(DOCS, fake_settings.corpus_dir)
    service.build(fake_settings, replace_all=True)
    return fake_settings


@pytest.fixture(scope="session")
def real_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The real bundled model and an index of the real corpus, built once per session."""
    from chatbot import service

    root = tmp_path_factory.mktemp("real")
    settings = Settings(index=str(root / "index"), corpus=str(CORPUS))
    service.build(settings, replace_all=True)
    return settings


@pytest.fixture(scope="session")
def real_retriever(real_settings: Settings):
    from chatbot import service

    return service.open_retriever(real_settings)
