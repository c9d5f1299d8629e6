"""Load a Python config module (like the DVD pipeline's ``config.py``) and read its names.

.. warning::
   Loading a Python config **executes it**, exactly as ``import config`` would in the
   app. Only load files you trust. A path is loaded from that path only: its directory is
   *not* added to ``sys.path`` and nothing is searched. A dotted name (``dvd.config``) is
   imported through the normal import system, from ``sys.path`` as it is.

The module's top-level names are mapped onto EmbedConfig fields with a table
(:data:`vllm_embed._config.PYTHON_NAME_MAP`): for each field, the first name in the list
that the module defines wins, so values set inside ``if SERVER == "VLLM":`` blocks are
picked up after the module has run, and ``EMBEDDING_API_KEY`` falls back to ``OPENAI_KEY``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import traceback
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vllm_embed._errors import ConfigFileError

__all__ = ["is_module_name", "load_module_from_name", "load_module_from_path", "module_values"]


def is_module_name(text: str) -> bool:
    """True when ``text`` looks like a dotted module name (``dvd.config``), not a path."""
    if not text or text.endswith((".toml", ".json", ".py")):
        return False
    return all(part.isidentifier() for part in text.split("."))


def _last_frame_in(exc: BaseException, filename: str | None) -> traceback.FrameSummary | None:
    """The innermost traceback frame that ran inside the config file itself."""
    if filename is None:
        return None
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == Path(filename)
    ]
    return frames[-1] if frames else None


def _raise_for(exc: BaseException, origin: str, filename: str | None) -> ConfigFileError:
    """Turn an exception raised by a config module into a one-line ConfigFileError."""
    if isinstance(exc, SyntaxError):
        return ConfigFileError(
            f"Python config {origin} has a syntax error at line {exc.lineno}, column "
            f"{exc.offset}: {exc.msg}. Fix the file; it must be importable Python.",
            path=filename,
            line=exc.lineno,
            column=exc.offset,
        )
    frame = _last_frame_in(exc, filename)
    where = f" at line {frame.lineno} ({(frame.line or '').strip()!r})" if frame else ""
    return ConfigFileError(
        f"Python config {origin} raised {type(exc).__name__}{where}: {exc}. "
        "Loading a Python config runs it like `import`; fix the error (or set the "
        "variables it needs) and retry. Set VLLM_EMBED_TRACEBACK=1 for the full traceback.",
        path=filename,
        line=frame.lineno if frame else None,
    )


def load_module_from_path(path: Path) -> types.ModuleType:
    """Execute the Python file at ``path`` as a fresh module and return it.

    The module runs under a private name and is removed from ``sys.modules`` afterwards,
    so loading twice re-executes it and nothing shadows the app's own ``config`` module.
    """
    path = path.resolve()
    if not path.is_file():
        raise ConfigFileError(
            f"Python config file not found: {path}. Check the path.", path=str(path)
        )
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    name = f"_vllm_embed_config_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - only for odd suffixes
        raise ConfigFileError(f"Cannot load {path} as Python.", path=str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses & co. look themselves up here while running
    try:
        spec.loader.exec_module(module)
    except PermissionError as exc:
        raise ConfigFileError(
            f"Python config is not readable (permission denied): {path}.", path=str(path)
        ) from exc
    except Exception as exc:
        raise _raise_for(exc, str(path), str(path)) from exc
    finally:
        sys.modules.pop(name, None)
    return module


def load_module_from_name(name: str) -> types.ModuleType:
    """Import ``name`` (``dvd.config``) through the normal import system."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise ConfigFileError(
                f"No config file and no importable module named {name!r}. Pass a path "
                "to a .toml/.json/.py file, or make the module importable (is its "
                "package on sys.path / PYTHONPATH?).",
                path=name,
            ) from exc
        raise _raise_for(exc, f"module {name!r}", _module_file(name)) from exc
    except Exception as exc:
        raise _raise_for(exc, f"module {name!r}", _module_file(name)) from exc


def _module_file(name: str) -> str | None:
    try:
        spec = importlib.util.find_spec(name)
    except Exception:
        return None
    return spec.origin if spec is not None else None


def module_values(
    module: types.ModuleType, names: Mapping[str, Sequence[str]]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Pick the module's values for each field: ``({field: value}, {field: NAME})``.

    For each field the first of its names that the module defines (and is not None) wins.
    """
    values: dict[str, Any] = {}
    used: dict[str, str] = {}
    namespace = vars(module)
    for field, candidates in names.items():
        for candidate in candidates:
            value = namespace.get(candidate)
            if value is not None:
                values[field] = value
                used[field] = candidate
                break
    return values, used
