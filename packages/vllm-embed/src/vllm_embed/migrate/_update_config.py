"""``--update-config FILE``: after a migration, declare the new dimension (and model).

- TOML: edited with ``tomlkit``, which keeps comments, order and formatting.
- JSON: re-written with the same key order and the indentation the file used.
- Python module: never edited (it is code); the exact lines to change are returned.

The plan is made *before* the migration (so a config we cannot update stops the run
before any request) and applied after it succeeded.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vllm_embed._config_readers._sections import locate
from vllm_embed._errors import ConfigError, MigrationError

__all__ = ["ConfigUpdate", "plan_config_update"]

#: Keys that declare the store's dimension, and keys naming the model.
DIMENSION_KEYS = ("dimension", "dimensions", "embedding_dim", "dim")
MODEL_KEYS = ("model", "model_name")
#: Python-module names (the DVD video-QA pipeline's ``dvd/config.py`` and the config
#: readers' names).
PY_DIMENSION = re.compile(r"^(\s*)([A-Z0-9_]*(?:_DIM|_DIMENSION|_DIMENSIONS))(\s*=\s*)(\d+)(.*)$")
PY_MODEL = re.compile(
    r"^(\s*)([A-Z0-9_]*(?:EMBEDDING_MODEL|EMBEDDING_MODEL_NAME|EMBEDDING_LARGE_MODEL_NAME))"
    r"(\s*=\s*)(['\"])(.*?)\4(.*)$"
)


@dataclass
class ConfigUpdate:
    """A planned config change; `apply` performs it (or describes it, for Python)."""

    path: Path
    format: str
    section: tuple[str, ...] = ()
    dimension_keys: list[str] = field(default_factory=list)
    model_keys: list[str] = field(default_factory=list)
    python_lines: list[tuple[int, str, str]] = field(default_factory=list)  # (line, kind, text)

    def apply(self, new_dim: int, model: str | None) -> list[str]:
        """Write the change; return human-readable lines describing it."""
        if self.format == "toml":
            return self._apply_toml(new_dim, model)
        if self.format == "json":
            return self._apply_json(new_dim, model)
        return self._python_instructions(new_dim, model)

    # -- TOML ------------------------------------------------------------------------------
    def _apply_toml(self, new_dim: int, model: str | None) -> list[str]:
        import tomlkit

        document = tomlkit.parse(self.path.read_text(encoding="utf-8"))
        changes = _edit(_descend(document, self.section), self, new_dim, model)
        _atomic_write(self.path, tomlkit.dumps(document))
        return changes

    # -- JSON ------------------------------------------------------------------------------
    def _apply_json(self, new_dim: int, model: str | None) -> list[str]:
        text = self.path.read_text(encoding="utf-8")
        document = json.loads(text)
        changes = _edit(_descend(document, self.section), self, new_dim, model)
        indent = _json_indent(text)
        out = json.dumps(document, indent=indent, ensure_ascii=False)
        _atomic_write(self.path, out + ("\n" if text.endswith("\n") else ""))
        return changes

    # -- Python ----------------------------------------------------------------------------
    def _python_instructions(self, new_dim: int, model: str | None) -> list[str]:
        lines = [f"{self.path} is Python code and was not edited; change these lines:"]
        source = self.path.read_text(encoding="utf-8").splitlines()
        for number, kind, _ in self.python_lines:
            old = source[number - 1]
            if kind == "dimension":
                match = PY_DIMENSION.match(old)
                assert match is not None
                new = f"{match[1]}{match[2]}{match[3]}{new_dim}{match[5]}"
            elif model is not None:
                match = PY_MODEL.match(old)
                assert match is not None
                new = f"{match[1]}{match[2]}{match[3]}{match[4]}{model}{match[4]}{match[6]}"
            else:
                continue
            if new != old:
                lines.append(f"  line {number}: {old.strip()}")
                lines.append(f"       -> {new.strip()}")
        return lines


def plan_config_update(path: str | os.PathLike[str], section: str | None = None) -> ConfigUpdate:
    """Find what to change in ``path``; `MigrationError` if there is no dimension to update."""
    path = Path(path)
    if not path.is_file():
        raise MigrationError(f"--update-config: {path} does not exist.")
    suffix = path.suffix.lower()
    if suffix == ".py":
        return _plan_python(path)
    text = path.read_text(encoding="utf-8")
    if suffix == ".toml":
        import tomlkit
        from tomlkit.exceptions import ParseError

        try:
            document: Any = tomlkit.parse(text).unwrap()
        except ParseError as exc:
            raise MigrationError(f"--update-config: {path} is not valid TOML: {exc}") from exc
        fmt = "toml"
    elif suffix == ".json":
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MigrationError(f"--update-config: {path} is not valid JSON: {exc}") from exc
        fmt = "json"
    else:
        raise MigrationError(
            f"--update-config: cannot edit {path}; give a .toml, .json or .py config file."
        )
    try:
        located = locate(document, section=section, where=str(path))
    except ConfigError as exc:
        raise MigrationError(f"--update-config: {exc}") from exc
    dims = [k for k in located.section if k in DIMENSION_KEYS]
    if not dims:
        where = ".".join(located.path) or "the top level"
        raise MigrationError(
            f"--update-config: {path} declares no dimension in {where} (looked for "
            f"{', '.join(DIMENSION_KEYS)}); add one or leave --update-config away."
        )
    models = [k for k in located.section if k in MODEL_KEYS]
    return ConfigUpdate(path, fmt, located.path, dims, models)


def _plan_python(path: Path) -> ConfigUpdate:
    found: list[tuple[int, str, str]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if PY_DIMENSION.match(line):
            found.append((number, "dimension", line))
        elif PY_MODEL.match(line):
            found.append((number, "model", line))
    if not any(kind == "dimension" for _, kind, _ in found):
        raise MigrationError(
            f"--update-config: no NAME_DIM = <int> assignment found in {path}; "
            "change the declared dimension by hand or leave --update-config away."
        )
    return ConfigUpdate(path, "python", python_lines=found)


def _descend(document: Any, path: tuple[str, ...]) -> MutableMapping[str, Any]:
    node = document
    for part in path:
        node = node[part]
    assert isinstance(node, MutableMapping)
    return node


def _edit(
    section: MutableMapping[str, Any], plan: ConfigUpdate, new_dim: int, model: str | None
) -> list[str]:
    where = ".".join(plan.section) or "top level"
    changes = []
    for key in plan.dimension_keys:
        if section[key] != new_dim:
            changes.append(f"{plan.path} [{where}] {key}: {section[key]} -> {new_dim}")
            section[key] = new_dim
    for key in plan.model_keys if model is not None else []:
        if section[key] != model:
            changes.append(f"{plan.path} [{where}] {key}: {section[key]} -> {model}")
            section[key] = model
    return changes or [f"{plan.path} already declares dimension {new_dim}"]


def _json_indent(text: str) -> int | None:
    """The indentation of the first indented line (None for a one-line file)."""
    match = re.search(r"\n( +)\S", text)
    return len(match[1]) if match else None


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".vllm-embed.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
