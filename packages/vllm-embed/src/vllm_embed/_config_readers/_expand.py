"""``${VAR}`` and ``${VAR:-default}`` in config string values, taken from the environment.

So keys need not sit in files: ``api_key = "${EMBED_API_KEY}"``. ``$${`` is a literal
``${``. A variable that is unset (and has no ``:-default``) is an error naming the
variable and the key that used it, never a silent empty string. As in the shell,
``:-`` also applies when the variable is set but empty.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from vllm_embed._errors import ConfigValueError

__all__ = ["expand", "expand_tree"]

_PATTERN = re.compile(
    r"\$\$\{|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}|\$\{(?P<bad>[^}]*)\}?"
)


def expand(value: str, env: Mapping[str, str], *, where: str = "a config value") -> str:
    """Return ``value`` with every ``${VAR}`` / ``${VAR:-default}`` replaced from ``env``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name = match.group("name")
        if name is None:
            raise ConfigValueError(
                f"Malformed variable reference {match.group(0)!r} in {where}. "
                "Write ${NAME} or ${NAME:-default}; use $${ for a literal ${."
            )
        found = env.get(name)
        default = match.group("default")
        if default is not None and not found:
            return default
        if found is None:
            raise ConfigValueError(
                f"{where} refers to ${{{name}}}, but the environment variable {name} is "
                f"not set. Export {name}, or write ${{{name}:-default}}."
            )
        return found

    if "$" not in value:
        return value
    return _PATTERN.sub(replace, value)


def expand_tree(value: Any, env: Mapping[str, str], *, where: str) -> Any:
    """Expand every string inside nested dicts / lists; other values pass through."""
    if isinstance(value, str):
        return expand(value, env, where=where)
    if isinstance(value, Mapping):
        return {k: expand_tree(v, env, where=f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [expand_tree(v, env, where=f"{where}[{i}]") for i, v in enumerate(value)]
    return value
