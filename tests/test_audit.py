"""tools/audit.py: exact pins only; the offline fallback runs, and says so, when pip-audit can't."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from chatbot.config import PROJECT_ROOT

_spec = importlib.util.spec_from_file_location("audit", PROJECT_ROOT / "tools" / "audit.py")
assert _spec and _spec.loader
audit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(audit)


def requirements(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text(text)
    return path


def test_only_exact_pins_are_accepted(tmp_path: Path) -> None:
    good = requirements(tmp_path, "# comment\nPyStemmer==3.1.0  # why\n\nnumpy==2.4.6\n")
    assert audit.read_pins([good]) == {"pystemmer": "3.1.0", "numpy": "2.4.6"}
    for line in ("numpy>=2", "numpy", "numpy==2.*", "numpy==2,<3"):
        with pytest.raises(SystemExit, match="not one exact pin"):
            audit.read_pins([requirements(tmp_path, line)])


def test_project_pins_are_all_exact() -> None:
    files = [PROJECT_ROOT / f"requirements{x}.txt" for x in ("", "-dev", "-ray")]
    pins = audit.read_pins(files)
    assert {"cryptography", "pip-audit", "safety-db", "torch", "ray"} <= set(pins)


def test_unreachable_service_falls_back_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(audit, "pip_audit", lambda files: ({}, "pip-audit service unreachable"))
    old = requirements(tmp_path, "lxml==4.6.2\nnumpy==2.4.6\n")
    assert audit.main([str(old)]) == 1
    out = capsys.readouterr().out
    assert "pip-audit service unreachable; offline check against safety-db 2021.7.17" in out
    assert "1 of 2 pins flagged" in out and "FLAGGED lxml==4.6.2: pyup.io-" in out

    assert audit.main([str(requirements(tmp_path, "numpy==2.4.6\n"))]) == 0
    assert "0 of 1 pins flagged" in capsys.readouterr().out


def test_pip_audit_findings_fail_and_unaudited_pins_are_checked_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(audit, "pip_audit", lambda files: ({"numpy": ["PYSEC-1"]}, ""))
    assert audit.main([str(requirements(tmp_path, "numpy==2.4.6\ntqdm==4.70.1\n"))]) == 1
    out = capsys.readouterr().out
    assert "pip-audit (PyPI service): 1 of 2 pins audited, 1 flagged" in out
    assert "1 pins not audited online; offline check against safety-db" in out
    assert "FLAGGED numpy==2.4.6: PYSEC-1" in out
