"""Hardening of the index commands (issue 13): links out of the corpus, damaged manifests,
unwritable index folders, unusable indexes in status/list, leftovers of killed writes,
control characters in names, and the names of documents outside the project root."""

from __future__ import annotations

import builtins
import errno
import json
import os
from pathlib import Path

import pytest

from chatbot import build, service, store
from chatbot import index as ix
from chatbot.cli import main
from chatbot.config import PROJECT_ROOT, Settings
from chatbot.documents import DocumentError, find_files

GOOD = "Green Tea\n\nGreen tea is brewed with water at about 80 degrees for three minutes.\n"
SECRET = "Secret Notes\n\nThe vault combination is four four seven nine.\n"
NOTES = "Meeting Notes\n\nThe garden committee meets on the first Monday of the month.\n"


def cli(*argv: str, settings: Settings) -> int:
    return main([*argv, "--model", settings.model, "--index", settings.index])


def all_text(settings: Settings) -> str:
    return "\n".join(d.text for d in store.load(settings.index_dir).documents.values())


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
    records = store.load(fake_settings.index_dir).doc_records.values()
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
    source = build.default_source(notes)
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


# ---------------------------------------------------------------- 2. damaged manifests


def _manifest(settings: Settings) -> dict:
    return json.loads((settings.index_dir / "manifest.json").read_text())


DAMAGE = {
    "array": lambda m: [1, 2, 3],
    "null": lambda m: None,
    "string": lambda m: "x",
    "segments list": lambda m: dict(m, segments={}),
    "segment not an object": lambda m: dict(m, segments=[[]]),
    "segment count": lambda m: dict(m, segments=[dict(e, passages="many") for e in m["segments"]]),
    "tombstone out of range": lambda m: dict(
        m, segments=[dict(e, deleted=[e["documents"]]) for e in m["segments"]]
    ),
    "segment escapes": lambda m: dict(
        m, segments=[dict(e, name="../" + e["name"]) for e in m["segments"]]
    ),
    "generation escapes": lambda m: dict(m, generation="../" + m["generation"]),
    "generation not a string": lambda m: dict(m, generation=["gen-000001"]),
    "dim string": lambda m: dict(m, dim="64"),
    "splitter": lambda m: dict(m, splitter=None),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_manifest_is_one_error_line_and_build_repairs_it(
    damage: str, fake_index: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = fake_index.index_dir / "manifest.json"
    path.write_text(json.dumps(DAMAGE[damage](_manifest(fake_index))))
    questions = tmp_path / "q.txt"
    questions.write_text("How hot should the water be for tea?\n")
    extra = tmp_path / "extra.txt"
    extra.write_text(NOTES)
    for argv in (
        ("index", "status"),
        ("index", "list"),
        ("index", "add", str(extra)),
        ("index", "remove", str(extra)),
        ("index", "update"),
        ("ask", str(questions)),
    ):
        assert cli(*argv, settings=fake_index) == 1, argv
        err = one_error_line(capsys.readouterr().err)
        assert "rebuild" in err and "chatbot index build" in err, err
    with pytest.raises(store.IndexUnusable, match="manifest .* is damaged"):
        store.read_manifest(fake_index.index_dir)

    assert cli("index", "build", str(fake_index.corpus_dir), settings=fake_index) == 0
    assert capsys.readouterr().out.startswith("added 2 documents, ")
    index = store.load(fake_index.index_dir, "fake-64")
    assert len(index.documents) == 2
    segs = sorted(p.name for p in fake_index.index_dir.iterdir() if p.name.startswith("seg-"))
    assert segs[-1] == index.manifest["segments"][-1]["name"]


def test_a_manifest_that_is_not_json_text_is_one_error_line(
    fake_index: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    (fake_index.index_dir / "manifest.json").write_bytes(b"\xff\xfe\x00garbage")
    assert cli("index", "status", settings=fake_index) == 1
    assert "unreadable" in one_error_line(capsys.readouterr().err)
    assert cli("index", "build", str(fake_index.corpus_dir), settings=fake_index) == 0


def test_a_segment_outside_the_index_is_never_read(fake_index: Settings) -> None:
    manifest = _manifest(fake_index)
    name = manifest["segments"][0]["name"]
    outside = fake_index.index_dir.parent / "elsewhere"
    (fake_index.index_dir / name).rename(outside)
    path = fake_index.index_dir / "manifest.json"
    bad = dict(manifest, segments=[dict(manifest["segments"][0], name="../elsewhere")])
    path.write_text(json.dumps(bad))
    with pytest.raises(store.IndexUnusable, match="segment '../elsewhere' is not"):
        store.load(fake_index.index_dir)
    assert service.build(fake_index, replace_all=True).added  # rebuilt, not loaded
    assert outside.is_dir()  # and nothing outside the index folder was removed


# ---------------------------------------------------------------- 3. an unwritable index folder


def _denied(*args: object, **kwargs: object) -> None:
    raise PermissionError(errno.EACCES, "Permission denied", str(args[0]) if args else "")


def test_an_unwritable_folder_is_one_error_line_and_nothing_is_lost(
    fake_index: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = (fake_index.index_dir / "manifest.json").read_text()
    extra = tmp_path / "extra.txt"
    extra.write_text(NOTES)
    expected = (
        f"Error: index folder {fake_index.index_dir} is not writable (Permission denied); "
        "fix its permissions or use --index DIR"
    )
    monkeypatch.setattr(store.tempfile, "mkdtemp", _denied)  # writing a new generation fails
    assert cli("index", "add", str(extra), settings=fake_index) == 1
    assert one_error_line(capsys.readouterr().err) == expected
    monkeypatch.undo()

    real_open = builtins.open

    def no_lock(file: object, *args: object, **kwargs: object) -> object:
        if str(file).endswith(".lock"):
            _denied(file)
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(store, "open", no_lock, raising=False)  # taking the lock fails
    for argv in (
        ("index", "build", str(fake_index.corpus_dir)),
        ("index", "add", str(extra)),
        ("index", "remove", str(fake_index.corpus_dir / "tea.txt")),
        ("index", "update"),
    ):
        assert cli(*argv, settings=fake_index) == 1, argv
        assert one_error_line(capsys.readouterr().err) == expected
    monkeypatch.undo()
    assert (fake_index.index_dir / "manifest.json").read_text() == before
    assert len(store.load(fake_index.index_dir).documents) == 2


def test_a_full_disk_at_the_manifest_swap_leaves_no_orphan_generation(
    fake_index: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = sorted(p.name for p in fake_index.index_dir.iterdir())
    extra = tmp_path / "extra.txt"
    extra.write_text(NOTES)

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.os, "replace", full)
    with pytest.raises(store.IndexWriteError, match="is on a full disk .*free some space"):
        service.build(fake_index, [extra])
    monkeypatch.undo()
    assert sorted(p.name for p in fake_index.index_dir.iterdir()) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_for_real(
    fake_index: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = tmp_path / "extra.txt"
    extra.write_text(NOTES)
    (fake_index.index_dir / ".lock").unlink()
    fake_index.index_dir.chmod(0o555)
    try:
        assert cli("index", "add", str(extra), settings=fake_index) == 1
        assert "is not writable" in one_error_line(capsys.readouterr().err)
    finally:
        fake_index.index_dir.chmod(0o755)
    assert len(store.load(fake_index.index_dir).documents) == 2


# ---------------------------------------------------------------- 4. status/list, unusable index


@pytest.mark.parametrize("sub", ["status", "list"])
@pytest.mark.parametrize("problem", ["model", "splitter", "format", "damaged"])
def test_status_and_list_report_an_index_ask_refuses(
    sub: str,
    problem: str,
    fake_index: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = fake_index
    if problem == "model":
        settings = Settings(index=fake_index.index, model="fake-32")
    elif problem == "splitter":
        monkeypatch.setenv("CHATBOT_MAX_CHARS", "300")
    elif problem == "format":
        path = fake_index.index_dir / "manifest.json"
        path.write_text(json.dumps(dict(_manifest(fake_index), format=1)))
    else:
        seg = _manifest(fake_index)["segments"][0]["name"]
        (fake_index.index_dir / seg / "vectors.npy").unlink()
    assert cli("index", sub, settings=settings) == 1
    captured = capsys.readouterr()
    err = one_error_line(captured.err)
    assert err.startswith("Error: the index cannot be used: ") and "rebuild" in err
    assert {"model": "model", "splitter": "splitter", "format": "format 1", "damaged": "damaged"}[
        problem
    ] in err
    last = captured.out.strip().splitlines()[-1]
    if sub == "status":
        assert last.endswith("; unusable (see the error below)") and "stale" not in captured.out
    else:
        assert last.startswith("2 documents, ")


# ---------------------------------------------------------------- 5. leftovers of killed writes


def test_leftovers_are_removed_even_when_nothing_changed(
    fake_index: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index_dir = fake_index.index_dir
    extra = tmp_path / "extra.txt"
    extra.write_text(NOTES)
    service.build(fake_index, [extra])  # a second segment
    segs = sorted(p.name for p in index_dir.iterdir() if p.name.startswith("seg-"))
    assert segs == ["seg-000001", "seg-000002"]
    (index_dir / ".tmp-killed").mkdir()
    (index_dir / ".tmp-killed" / "vectors.npy").write_bytes(b"partial")
    (index_dir / "seg-000003").mkdir()  # renamed, but the manifest was never swapped
    (index_dir / ".manifest.json.tmp").write_text("{")
    (index_dir / "notes.txt").write_text("not ours")

    assert cli("index", "build", str(fake_index.corpus_dir), str(extra), settings=fake_index) == 0
    assert capsys.readouterr().out.startswith("no changes (index: 3 documents, ")
    left = sorted(
        p.name for p in index_dir.iterdir() if not p.name.startswith(("tokens-", "sentences-"))
    )
    assert left == [".lock", "manifest.json", "notes.txt", "seg-000001", "seg-000002"]
    assert (index_dir / _manifest(fake_index)["tokens"]["file"]).is_file()
    assert store.load(index_dir).manifest["generation"] == "gen-000002"


# ---------------------------------------------------------------- 6. control characters in names


def test_a_newline_in_a_name_keeps_one_document_per_line(
    fake_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    odd = docs / "two\nlines\t.txt"
    odd.write_text(NOTES)
    (docs / "good.txt").write_text(GOOD)
    assert cli("index", "add", str(docs), settings=fake_settings) == 0
    source = build.default_source(odd)
    assert source in store.load(fake_settings.index_dir).documents  # stored as it is
    capsys.readouterr()

    assert cli("index", "list", settings=fake_settings) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and lines[-1].startswith("2 documents, ")
    assert [line.split("\t")[-1] for line in lines[1:3] if "two" in line] == [
        ix.display_name(source)
    ]
    assert ix.display_name(source).endswith("two\\nlines\\t.txt")

    odd.write_text(NOTES + "\nMore\n\nThe committee also meets in June.\n")
    assert cli("index", "status", settings=fake_settings) == 0
    out = capsys.readouterr().out
    assert "two\\nlines\\t.txt" in out and "two\nlines" not in out


def test_display_name_escapes_only_what_is_unprintable() -> None:
    assert ix.display_name("corpus/café notes.md") == "corpus/café notes.md"
    assert ix.display_name("a\\b\rc\x1bd\u202ee.txt") == "a\\\\b\\rc\\x1bd\\u202ee.txt"


# ---------------------------------------------------------------- 7. names outside the project root


def test_names_outside_the_project_root_are_stable_absolute_paths(
    fake_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Documents outside the project root keep their absolute path as name (default_source):
    one name however the file is reached, so add/update/remove by path stay exact."""
    papers = tmp_path.resolve() / "papers"
    (papers / "sub").mkdir(parents=True)
    (papers / "a.txt").write_text(GOOD)
    (papers / "sub" / "b.txt").write_text(NOTES)
    assert not papers.resolve().is_relative_to(PROJECT_ROOT)
    assert cli("index", "add", str(papers), settings=fake_settings) == 0
    names = set(store.load(fake_settings.index_dir).documents)
    assert names == {(papers / "a.txt").resolve().as_posix(), (papers / "sub/b.txt").as_posix()}
    capsys.readouterr()
    assert cli("index", "add", str(papers / "sub" / "b.txt"), settings=fake_settings) == 0
    assert capsys.readouterr().out.startswith("no changes (index: 2 documents, ")
    assert cli("index", "remove", str(papers / "sub"), settings=fake_settings) == 0
    assert set(store.load(fake_settings.index_dir).documents) == {(papers / "a.txt").as_posix()}
