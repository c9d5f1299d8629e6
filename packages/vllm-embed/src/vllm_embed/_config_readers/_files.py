"""Read TOML and JSON config files into plain dicts.

Every failure becomes a :class:`~vllm_embed.ConfigFileError` that names the file and,
for syntax errors, the line and column (1-based), so the user can open the file at the
right place. The file's text is never echoed back (it may hold API keys).
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from vllm_embed._errors import ConfigFileError

__all__ = ["guess_format", "read_json", "read_text", "read_toml"]

_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")
# A JSON "member list" as the seed documents show it: `"pdf_knowledge": { ... }` without
# the enclosing braces (a fragment pasted from a larger app config).
_JSON_FRAGMENT = re.compile(r'\A\s*"(?:[^"\\]|\\.)*"\s*:')


def read_text(path: Path) -> str:
    """Return the file's text, or raise ConfigFileError saying why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise ConfigFileError(
            f"Config file not found: {path}. Check the path (it is relative to "
            f"{Path.cwd()}), or pass the settings as environment variables "
            "(VLLM_EMBED_BASE_URL, VLLM_EMBED_MODEL, ...).",
            path=str(path),
        ) from exc
    except IsADirectoryError as exc:
        raise ConfigFileError(
            f"Config path is a directory, not a file: {path}. Name the config file itself.",
            path=str(path),
        ) from exc
    except PermissionError as exc:
        raise ConfigFileError(
            f"Config file is not readable (permission denied): {path}. "
            "Fix its permissions or run as a user who can read it.",
            path=str(path),
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigFileError(
            f"Config file is not UTF-8 text: {path} (byte {exc.start}). Save it as UTF-8.",
            path=str(path),
        ) from exc
    except OSError as exc:
        raise ConfigFileError(
            f"Config file could not be read: {path}: {exc.strerror or exc}.",
            path=str(path),
        ) from exc


def _end_position(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1


def read_toml(path: Path, text: str | None = None) -> dict[str, Any]:
    """Parse a TOML file with :mod:`tomllib`."""
    if text is None:
        text = read_text(path)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_POSITION.search(message)
        if match:
            line, column = int(match.group(1)), int(match.group(2))
            reason = message[: match.start()].strip()
        else:  # "(at end of document)"
            line, column = _end_position(text)
            reason = message.replace("(at end of document)", "").strip()
        raise ConfigFileError(
            f"TOML syntax error in {path} at line {line}, column {column}: {reason}. "
            "Fix the file (TOML strings need quotes, tables are [name]).",
            path=str(path),
            line=line,
            column=column,
        ) from exc


def read_json(path: Path, text: str | None = None) -> dict[str, Any]:
    """Parse a JSON file; a bare member list (``"key": {...}``) is read as an object.

    The seed documents show app configs as fragments such as
    ``"pdf_knowledge": {"embedder": {...}}``; such a file is accepted as if it were
    wrapped in ``{...}``. Line and column of errors always refer to the file itself.
    """
    if text is None:
        text = read_text(path)
    fragment = _JSON_FRAGMENT.match(text) is not None
    try:
        data = json.loads("{\n" + text + "\n}" if fragment else text)
    except json.JSONDecodeError as exc:
        line, column = exc.lineno, exc.colno
        if fragment:
            line -= 1
            total_lines = text.count("\n") + 1
            if line > total_lines:  # error in the closing brace we added: end of file
                line, column = _end_position(text)
            line = max(line, 1)
        raise ConfigFileError(
            f"JSON syntax error in {path} at line {line}, column {column}: {exc.msg}. "
            "Fix the file (JSON needs double quotes and no trailing commas).",
            path=str(path),
            line=line,
            column=column,
        ) from exc
    if not isinstance(data, dict):
        raise ConfigFileError(
            f"JSON config {path} holds a {type(data).__name__}, not an object. "
            'Its top level must be an object such as {"embedder": {...}}.',
            path=str(path),
        )
    return data


_UNSUPPORTED = {
    ".yaml": "YAML",
    ".yml": "YAML",
    ".ini": "INI",
    ".cfg": "INI",
    ".env": "a dotenv file",
}


def guess_format(path: Path, text: str) -> str:
    """Return "toml", "json" or "python" from the suffix, else from the content."""
    suffix = path.suffix.lower()
    if suffix in _UNSUPPORTED:
        raise ConfigFileError(
            f"{path} is {_UNSUPPORTED[suffix]}, which vllm-embed does not read. Use a TOML, "
            "JSON or Python config, or set VLLM_EMBED_* environment variables.",
            path=str(path),
        )
    if suffix == ".toml":
        return "toml"
    if suffix in (".json", ".jsonc"):
        return "json"
    if suffix == ".py":
        return "python"
    stripped = text.lstrip()
    if stripped.startswith("{") or _JSON_FRAGMENT.match(text):
        return "json"
    return "toml"
