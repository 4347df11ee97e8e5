"""Admin access: the token, a slow-down after wrong tokens, and the guard on Gradio's upload route.

Gradio serves ``POST /gradio_api/upload`` for every app, whether or not it has a file input,
and keeps what it receives in its temp folder. This chat accepts files only through the admin
panel, so :class:`UploadGuard` refuses that route unless the panel is enabled *and* the request
carries the admin token (the panel's page sets it as a same-site cookie when the token is
typed). Wrong tokens are counted per process by :class:`AdminGate`: after each one the next try
must wait longer (1 s, 2 s, 4 s … up to a minute), so a token cannot be guessed by brute force.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from .config import Settings

log = logging.getLogger(__name__)

COOKIE = "chatbot_admin"  # set by the admin panel's page; read by the upload guard
MAX_DELAY = 60.0  # seconds: the longest wait imposed after wrong tokens


def read_admin_token(settings: Settings) -> str:
    """The admin token: ``settings.admin_token``, or the first line of ``admin_token_file``.

    A token file keeps the token out of the process list (``ps`` shows command-line flags).
    Raises ValueError naming the fix if the file cannot be read or is empty.
    """
    if not settings.admin_token_file:
        return settings.admin_token
    path = settings.path(settings.admin_token_file)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ValueError(
            f"admin token file {path} cannot be read ({reason}); check --admin-token-file"
        ) from None
    token = lines[0].strip() if lines else ""
    if not token:
        raise ValueError(f"admin token file {path} is empty; write the token on its first line")
    return token


class AdminGate:
    """Checks admin tokens in constant time, slowing down after wrong ones.

    After ``n`` wrong tokens in a row, any try within ``2**(n-1)`` seconds (at most
    ``MAX_DELAY``) of the last wrong one is refused without being checked. A right token
    resets the count. An empty configured token never matches (uploads are off).
    """

    def __init__(self, token: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._token = token.encode("utf-8")
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._blocked_until = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self._token)

    def wait_seconds(self) -> float:
        """Seconds until the next token may be tried (0 when it may be tried now)."""
        with self._lock:
            return max(0.0, self._blocked_until - self._clock())

    def check(self, given: str | None) -> bool:
        """True for the right token; False for a wrong one or while slowed down."""
        if not self._token:
            return False
        with self._lock:
            now = self._clock()
            if now < self._blocked_until:
                return False
            if hmac.compare_digest(self._token, (given or "").encode("utf-8")):
                self._failures = 0
                return True
            self._failures += 1
            self._blocked_until = now + min(2.0 ** (self._failures - 1), MAX_DELAY)
        log.warning("wrong admin token (%d in a row)", self._failures)
        return False


def _cookie(headers: list[tuple[bytes, bytes]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            k, _, v = part.strip().partition("=")
            if k == name:
                return unquote(v)
    return None


class UploadGuard:
    """ASGI middleware: ``POST …/gradio_api/upload`` only with the admin token.

    Everything else passes through untouched. A refused upload gets ``403`` with a one-line
    reason, before any of its body is read or stored.
    """

    def __init__(self, app: Any, gate: AdminGate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope.get("type") == "http" and _is_upload(scope):
            reason = self._refusal(scope)
            if reason is not None:
                await _plain(send, 403, reason)
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: dict) -> str | None:
        if not self.gate.enabled:
            return "uploads are disabled: start the chat with an admin token to enable them"
        wait = self.gate.wait_seconds()
        if wait > 0:
            return f"too many wrong admin tokens; try again in {wait:.0f} s"
        token = _cookie(scope.get("headers", []), COOKIE)
        if not token:  # no guess made: refused without counting as a wrong token
            return "missing admin token: enter it in the Add documents panel first"
        if not self.gate.check(token):
            return "wrong admin token: enter it in the Add documents panel again"
        return None


def _is_upload(scope: dict) -> bool:
    last = scope.get("path", "").rstrip("/").rsplit("/", 1)[-1]
    return scope.get("method") == "POST" and last == "upload"


async def _plain(send: Callable, status: int, text: str) -> None:
    body = (text + "\n").encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
