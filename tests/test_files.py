"""chatbot.files.atomic_write and chatbot.progress.progress_bar."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import IO

import pytest

from chatbot.config import PROJECT_ROOT
from chatbot.files import atomic_write, is_temp_of
from chatbot.progress import NoBar, progress_bar


def test_atomic_write_writes_bytes_text_or_what_a_writer_writes(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    atomic_write(target, b"bytes\n")
    assert target.read_bytes() == b"bytes\n"
    atomic_write(target, "tèxt\n")
    assert target.read_text(encoding="utf-8") == "tèxt\n"
    atomic_write(target, lambda fh: fh.write(b"from a writer"))
    assert target.read_bytes() == b"from a writer"
    assert os.listdir(tmp_path) == ["out.json"]  # no temp file left


def test_a_failure_in_the_middle_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    target.write_text("old")

    def half_then_fail(fh: IO[bytes]) -> None:
        fh.write(b"half of the new")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["manifest.json"]  # the temp file is removed


def test_a_failed_rename_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")

    def refuse(*args: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError):
        atomic_write(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.txt"]


KILLED_WRITER = """
import os, sys
from chatbot.files import atomic_write

def die_half_way(fh):
    fh.write(b"half of the new")
    fh.flush()
    os._exit(9)  # as kill -9: no cleanup runs

atomic_write(sys.argv[1], die_half_way)
"""


def test_a_killed_writer_leaves_the_old_file_and_only_a_hidden_temp(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    target.write_text("old")
    done = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(target)], cwd=PROJECT_ROOT, timeout=60
    )
    assert done.returncode == 9
    assert target.read_text() == "old"
    left = [n for n in os.listdir(tmp_path) if n != "manifest.json"]
    assert len(left) == 1 and left[0].startswith(".") and is_temp_of("manifest.json", left[0])
    assert (tmp_path / left[0]).read_bytes() == b"half of the new"


def test_atomic_write_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "default.txt", "x")
        atomic_write(tmp_path / "given.txt", "x", mode=0o600)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "default.txt").stat().st_mode) == 0o644  # as open("w")
    assert stat.S_IMODE((tmp_path / "given.txt").stat().st_mode) == 0o600


def test_temp_names_of_earlier_versions_are_recognised() -> None:
    assert is_temp_of("manifest.json", ".manifest.json.tmp")
    assert is_temp_of("manifest.json", ".manifest.json.1a2b3c4d.tmp")
    assert not is_temp_of("manifest.json", "manifest.json")
    assert not is_temp_of("manifest.json", ".manifest.json.1a2b3c4d")


def test_progress_bar_is_a_no_op_when_disabled(capsys: pytest.CaptureFixture[str]) -> None:
    bar = progress_bar(10, "reading", "file", enabled=False)
    assert isinstance(bar, NoBar)
    with bar:
        for _ in range(10):
            bar.update()
        bar.update(5)
    bar.close()
    assert capsys.readouterr() == ("", "")
    bar.write("a message", file=sys.stderr)  # still printed, as tqdm.write would
    assert capsys.readouterr().err == "a message\n"


def test_progress_bar_with_nothing_to_count_is_a_no_op() -> None:
    assert isinstance(progress_bar(0, "splitting", "doc", enabled=True), NoBar)


def test_progress_bar_when_enabled_draws_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    with progress_bar(3, "embedding", "text", enabled=True, leave=True) as bar:
        bar.update(3)
    out, err = capsys.readouterr()
    assert out == "" and "embedding" in err and "3/3" in err
    with progress_bar(None, "answering", "q", enabled=True) as bar:  # no known total
        bar.update()
    assert "answering" in capsys.readouterr().err
