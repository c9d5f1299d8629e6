"""Reading the end of a log file (for error messages)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["tail"]


def tail(path: str | os.PathLike[str], lines: int = 60, max_bytes: int = 64_000) -> str:
    """The last ``lines`` lines of a text file (empty string if it cannot be read)."""
    try:
        with open(Path(path), "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])
