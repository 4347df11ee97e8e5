"""Progress bars: tqdm on stderr when wanted, otherwise an object that does nothing."""

from __future__ import annotations

import sys
from typing import IO, Any, Protocol


class Bar(Protocol):
    def update(self, n: float = 1) -> Any: ...
    def close(self) -> None: ...
    def write(self, s: str, file: IO[str] | None = None, end: str = "\n") -> None: ...


class NoBar:
    """A progress bar that shows nothing: callers need no ``if bar is not None``."""

    def update(self, n: float = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def write(self, s: str, file: IO[str] | None = None, end: str = "\n") -> None:
        """Print ``s`` as ``tqdm.write`` would (to ``file``, default stdout)."""
        print(s, file=file if file is not None else sys.stdout, end=end)

    def __enter__(self) -> NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(
    total: int | None,
    desc: str,
    unit: str,
    enabled: bool,
    *,
    leave: bool = False,
    smoothing: float = 0.3,
) -> Bar:
    """A tqdm bar on stderr counting ``unit`` when ``enabled`` (callers enable it on a
    terminal), else a :class:`NoBar`; also a NoBar when there is nothing to count
    (``total == 0``). ``total=None`` shows a count and rate without an end. The bar is a
    context manager that closes it; ``leave`` keeps the finished bar on screen.
    """
    if not enabled or total == 0:
        return NoBar()
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        dynamic_ncols=True,
        leave=leave,
        smoothing=smoothing,
    )
