"""The admin upload panel: name sanitising, token check, size limit, storing and indexing."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatbot import app as chat_app
from chatbot import build, service, store
from chatbot.config import Settings
from chatbot.documents import SUPPORTED_SUFFIXES
from chatbot.guard import AdminGate

TOKEN = "s3cret-token"


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("notes.txt", "notes.txt"),
        ("../../etc/passwd.txt", "passwd-@.txt"),
        ("..\\..\\windows\\win.ini.md", "win.ini-@.md"),
        ("/abs/path/Report 2024.PDF", "Report 2024-@.pdf"),
        (".hidden.txt", "hidden.txt"),
        ("café  ñ.docx", "café ñ.docx"),
        ("отчёт 2024.pdf", "отчёт 2024.pdf"),
        ("報告.md", "報告.md"),
        ("a\tb\nc.txt", "a_b_c.txt"),
        ("a<b>|c?.html", "a_b_c.html"),
        ("name.txt\x00.pdf", "name.txt.pdf"),
        ("-rf.md", "rf.md"),
    ],
)
def test_safe_upload_name(name: str, safe: str) -> None:
    """``@`` stands for the 8-character hash a name that came with folders gets."""
    assert re.fullmatch(re.escape(safe).replace("@", "[0-9a-f]{8}"), service.safe_upload_name(name))


def test_names_with_folders_never_replace_the_plain_name() -> None:
    plain = service.safe_upload_name("x.txt")
    assert plain == "x.txt"
    assert (
        len({plain, service.safe_upload_name("../../x.txt"), service.safe_upload_name("a/x.txt")})
        == 3
    )
    assert service.safe_upload_name("../../x.txt") == service.safe_upload_name("../../x.txt")


@pytest.mark.parametrize("name", ["evil.exe", "noext", ".txt", "..txt", "../", "", "\x00.txt"])
def test_unusable_upload_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="unsupported file type|no usable file name"):
        service.safe_upload_name(name)


def test_long_upload_names_are_shortened() -> None:
    safe = service.safe_upload_name("x" * 300 + ".txt")
    assert len(safe) <= service.MAX_NAME_CHARS and safe.endswith("x.txt")


@given(st.text(max_size=200))
def test_sanitised_names_stay_inside_the_folder(name: str) -> None:
    try:
        safe = service.safe_upload_name(name)
    except ValueError:
        return
    assert re.fullmatch(r"[^\W_][\w._ -]*", safe)
    assert Path(safe).name == safe and ".." not in Path(safe).parts
    assert Path(safe).suffix in SUPPORTED_SUFFIXES and len(safe) <= service.MAX_NAME_CHARS


def test_admin_gate_checks_tokens() -> None:
    assert AdminGate(TOKEN).check(TOKEN)
    assert not AdminGate(TOKEN).check("wrong")
    assert not AdminGate(TOKEN).check(None)
    assert not AdminGate(TOKEN).check("")
    assert not AdminGate("").check("")  # no token configured: uploads are off


def test_store_upload_sanitises_and_limits_size(fake_settings: Settings, tmp_path: Path) -> None:
    src = tmp_path / "upload.tmp"
    src.write_text("Hello\n\nSome text.\n")
    stored = service.store_upload(fake_settings, "../../escape.txt", src)
    assert stored.parent == fake_settings.corpus_dir / "uploads"
    assert re.fullmatch(r"escape-[0-9a-f]{8}\.txt", stored.name)
    assert stored.read_text() == src.read_text()
    assert not [p for p in stored.parent.iterdir() if p.name.startswith(".upload-")]
    tiny = replace(fake_settings, max_file_mb=0.00001)
    with pytest.raises(ValueError, match="over the 1e-05 MB limit"):
        service.store_upload(tiny, "big.txt", src)


def _files(tmp_path: Path) -> list[str]:
    up = tmp_path / "gradio-tmp"
    up.mkdir(parents=True)
    good = up / "coffee notes.txt"
    good.write_text("Coffee\n\nCoffee contains caffeine, a mild stimulant.\n")
    bad = up / "run.exe"
    bad.write_bytes(b"MZ")
    return [str(good), str(bad)]


def test_upload_needs_the_token(fake_index: Settings, tmp_path: Path) -> None:
    settings = replace(fake_index, admin_token=TOKEN)
    files = _files(tmp_path)
    assert chat_app.upload_documents(settings, "nope", files) == chat_app.WRONG_TOKEN
    assert chat_app.upload_documents(settings, None, files) == chat_app.WRONG_TOKEN
    no_token = replace(fake_index, admin_token="")
    assert chat_app.upload_documents(no_token, "", files) == chat_app.WRONG_TOKEN
    assert not (fake_index.corpus_dir / "uploads").exists()
    assert chat_app.upload_documents(settings, TOKEN, []).startswith("Choose")


def test_upload_stores_indexes_and_reports(fake_index: Settings, tmp_path: Path) -> None:
    settings = replace(fake_index, admin_token=TOKEN)
    live = service.LiveRetriever(settings)
    message = chat_app.upload_documents(settings, TOKEN, _files(tmp_path))
    assert message.startswith("added 1 document, ")
    assert "1 not stored: 'run.exe': unsupported file type" in message
    stored = settings.corpus_dir / "uploads" / "coffee notes.txt"
    assert stored.exists()
    assert build.default_source(stored) in store.load(settings.index_dir).documents
    hit = live.get().ask("caffeine stimulant coffee").hits[0]  # the chat sees it at once
    assert hit.source.endswith("uploads/coffee notes.txt")
    # The same upload again changes nothing.
    again = chat_app.upload_documents(settings, TOKEN, _files(tmp_path / "again"))
    assert again.startswith("no changes") and "skipped 1 unchanged" in again


def test_upload_of_a_bad_file_reports_why(fake_index: Settings, tmp_path: Path) -> None:
    settings = replace(fake_index, admin_token=TOKEN)
    empty = tmp_path / "empty.md"
    empty.write_text("")
    message = chat_app.upload_documents(settings, TOKEN, [str(empty)])
    assert "1 failed: empty.md: file is empty" in message


def _elem_ids(app: object) -> set[str]:
    return {b.elem_id for b in app.blocks.values() if getattr(b, "elem_id", None)}  # type: ignore[attr-defined]


def test_panel_only_with_an_admin_token(fake_index: Settings) -> None:
    plain = chat_app.build_app(fake_index)
    assert "upload-token" not in _elem_ids(plain)
    admin = chat_app.build_app(replace(fake_index, admin_token=TOKEN))
    assert {"qa-upload", "upload-token", "upload-files", "upload-add"} <= _elem_ids(admin)
    public = {f.api_name for f in admin.fns.values() if f.api_visibility == "public"}
    assert public == {chat_app.API_NAME}  # the upload is not part of the public API
    opts = chat_app.launch_options(fake_index, admin.live_retriever)  # type: ignore[attr-defined]
    assert opts["max_file_size"] == int(fake_index.max_file_mb * 1e6)


def test_admin_token_from_env(fake_index: Settings) -> None:
    env = {"CHATBOT_ADMIN_TOKEN": TOKEN}
    assert Settings.from_env(env, index=fake_index.index).admin_token == TOKEN
