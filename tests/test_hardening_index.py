"""Hardening of the index commands (issue 13): links out of the corpus, damaged manifests,
unwritable index folders, unusable indexes in status/list, leftovers of killed writes,
control characters in names, and the names of documents outside the project root."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatbot import index as ix
from chatbot import service
from chatbot.cli import main
from chatbot.config import Settings
from chatbot.documents import DocumentError, find_files

GOOD = "Green Tea\n\nGreen tea is brewed with water at about 80 degrees for three minutes.\n"
SECRET = "Secret Notes\n\nThe vault combination is four four seven nine.\n"
NOTES = "Meeting Notes\n\nThe garden committee meets on the first Monday of the month.\n"


def cli(*argv: str, settings: Settings) -> int:
    return main([*argv, "--model", settings.model, "--index", settings.index])


def all_text(settings: Settings) -> str:
    return "\n".join(d.text for d in ix.load(settings.index_dir).documents.values())


def one_error_line(err: str) -> str:
    """The single ``Error:`` line a failed command must print, and nothing else."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    return lines[0]


@pytest.fixture
def linked(tmp_path: Path) -> dict[str, Path]:
    """``docs/`` with a good file and a link to a secret file outside it."""
    docs, outside = tmp_path / "docs", tmp_path / "outside"
    docs.mkdir()
    outside.mkdir()
    (docs / "good.txt").write_text(GOOD)
    (outside / "secret.txt").write_text(SECRET)
    (docs / "secret.txt").symlink_to(outside / "secret.txt")
    return {"docs": docs, "outside": outside, "secret": outside / "secret.txt"}


# ---------------------------------------------------------------- 1. links out of the corpus


def test_a_link_out_of_the_folder_is_refused_and_the_rest_indexed(
    fake_settings: Settings, linked: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    docs = linked["docs"]
    assert cli("index", "add", str(docs), settings=fake_settings) == 2
    out = capsys.readouterr().out.strip()
    assert out.startswith("added 1 document, ") and "1 failed: " in out and "\n" not in out
    assert (
        f"{docs}/secret.txt: a link to a file outside {docs}/ ({linked['secret']}); copy the "
        "file into the folder, or set CHATBOT_ALLOW_OUTSIDE_LINKS=1"
    ) in out
    assert "vault combination" not in all_text(fake_settings)
    records = ix.load(fake_settings.index_dir).doc_records.values()
    assert [Path(r.path).name for r in records] == ["good.txt"]

    with pytest.raises(DocumentError, match="a link to a file outside"):
        find_files([docs])
    assert find_files([docs], allow_outside_links=True) == [docs / "good.txt", docs / "secret.txt"]


def test_a_full_build_refuses_it_too_and_drops_what_an_older_version_indexed(
    fake_settings: Settings,
    linked: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CHATBOT_ALLOW_OUTSIDE_LINKS", "1")  # as an index built before the fix
    assert cli("index", "build", str(linked["docs"]), settings=fake_settings) == 0
    assert "vault combination" in all_text(fake_settings)
    monkeypatch.delenv("CHATBOT_ALLOW_OUTSIDE_LINKS")
    capsys.readouterr()
    assert cli("index", "build", str(linked["docs"]), settings=fake_settings) == 2
    out = capsys.readouterr().out
    assert "removed 1 document" in out and "a link to a file outside" in out
    assert "vault combination" not in all_text(fake_settings)


def test_links_that_stay_inside_or_are_named_directly_are_indexed(
    fake_settings: Settings, linked: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    docs = linked["docs"]
    (docs / "secret.txt").unlink()
    (docs / "alias.txt").symlink_to(docs / "good.txt")  # inside: the same document, once
    (docs / "sub").mkdir()
    (docs / "sub" / "up.txt").symlink_to(docs / "good.txt")
    (docs / "more").symlink_to(linked["outside"], target_is_directory=True)  # not descended
    assert cli("index", "add", str(docs), settings=fake_settings) == 0
    assert capsys.readouterr().out.startswith("added 1 document, ")
    assert "vault combination" not in all_text(fake_settings)

    named = linked["outside"].parent / "named.txt"  # named on the command line: taken
    named.symlink_to(linked["secret"])
    assert cli("index", "add", str(named), settings=fake_settings) == 0
    assert "vault combination" in all_text(fake_settings)


def test_a_link_whose_target_is_given_too_is_no_failure(
    fake_settings: Settings, linked: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = (str(linked["docs"]), str(linked["outside"]))
    assert cli("index", "add", *args, settings=fake_settings) == 0
    assert capsys.readouterr().out.startswith("added 2 documents, ")


def test_outside_links_allowed_by_setting(
    fake_settings: Settings,
    linked: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CHATBOT_ALLOW_OUTSIDE_LINKS", "1")
    assert cli("index", "add", str(linked["docs"]), settings=fake_settings) == 0
    assert capsys.readouterr().out.startswith("added 2 documents, ")
    assert "vault combination" in all_text(fake_settings)
    allowed = Settings(index=fake_settings.index, model="fake-64", allow_outside_links=True)
    assert service.build(allowed, [linked["docs"]], replace_all=True).failed == []


def test_update_does_not_follow_a_file_replaced_by_a_link(
    fake_settings: Settings, linked: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    docs = linked["docs"]
    (docs / "secret.txt").unlink()
    notes = docs / "notes.txt"
    notes.write_text(NOTES)
    source = ix.default_source(notes)
    assert cli("index", "add", str(docs), settings=fake_settings) == 0
    notes.unlink()
    notes.symlink_to(linked["secret"])
    capsys.readouterr()
    assert cli("index", "update", settings=fake_settings) == 2
    out = capsys.readouterr().out
    assert f"{source}: now a link to {linked['secret']}, not followed" in out
    assert f"`chatbot index remove {source}`" in out
    text = all_text(fake_settings)
    assert "garden committee" in text and "vault combination" not in text
