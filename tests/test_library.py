"""The front door: `from chatbot import Chatbot`, as README shows it; paths from the working dir."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chatbot.config import PROJECT_ROOT, Settings

DOCS = Path(__file__).parent / "data" / "docs"


def test_readme_example_from_another_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(DOCS, tmp_path / "papers")
    monkeypatch.chdir(tmp_path)
    from chatbot import Chatbot

    bot = Chatbot(index="kb-index", model="fake-64")
    summary = bot.add("papers/")
    assert summary.added and not summary.failed
    answer = bot.ask("How much calcium do adults need per day?")
    assert answer.answered and "1000 mg" in answer.answer
    top = answer.hits[0]
    document = Path(top.source) if Path(top.source).is_absolute() else PROJECT_ROOT / top.source
    assert document.read_text(encoding="utf-8")[top.start : top.end] == top.text
    # The index lives where the working directory says, not next to the package.
    assert (tmp_path / "kb-index" / "manifest.json").exists()
    assert not (PROJECT_ROOT / "kb-index").exists()
    follow = bot.ask("and in children?", previous="How much calcium do adults need per day?")
    assert follow.query.endswith("and in children?") and "calcium" in follow.query
    many = bot.ask_many(["How much calcium do adults need per day?", "Who painted it?"])
    assert many[0].hits[0].text == answer.hits[0].text
    removed = bot.remove(f"papers/{Path(top.source).name}")
    assert removed.removed
    assert all(h.source != top.source for h in bot.ask("calcium per day").hits)


def test_settings_paths_are_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert Settings(index="idx").index_dir == tmp_path / "idx"
    assert Settings(index="/abs/idx").index_dir == Path("/abs/idx")
    assert Settings(index="~/idx").index_dir == Path.home() / "idx"


@pytest.mark.slow
def test_importing_the_package_loads_no_model() -> None:
    code = "import sys, chatbot; print('torch' in sys.modules, chatbot.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "False"


def test_lock_timeout_is_a_setting() -> None:
    assert Settings.from_env({"CHATBOT_LOCK_TIMEOUT": "2.5"}).lock_timeout == 2.5
    with pytest.raises(ValueError, match="CHATBOT_LOCK_TIMEOUT"):
        Settings.from_env({"CHATBOT_LOCK_TIMEOUT": "soon"})
