"""Errors of the server launcher.

Both carry the tail of the log that explains them, so a failed start is
diagnosable from the exception alone (pytest shows it, the CLI prints it).
"""

from __future__ import annotations

from pathlib import Path

from vllm_embed._errors import VLLMEmbedError

__all__ = ["ServerEnvError", "ServerStartError"]


class _LoggedError(VLLMEmbedError):
    """An error whose explanation lives in a log file; keeps the last lines of it."""

    def __init__(self, message: str, *, log_path: Path | None = None, log_tail: str = "") -> None:
        full = message
        if log_path is not None:
            full += f"\nFull log: {log_path}"
        if log_tail:
            full += f"\n--- last lines of the log ---\n{log_tail}"
        super().__init__(full)
        self.log_path = log_path
        self.log_tail = log_tail


class ServerEnvError(_LoggedError):
    """The vLLM server's virtual environment could not be created or installed."""


class ServerStartError(_LoggedError):
    """The vLLM server exited, or did not answer ``/health`` before the deadline."""
