"""Find the embedding section inside an app's larger config document.

Auto-detection, first match wins:

1. ``[tool.vllm-embed]`` (pyproject.toml), or a top-level ``vllm-embed`` table;
2. a top-level ``embedding`` / ``embedder`` / ``embeddings`` table (kano-backlog's TOML);
3. an ``embedder`` / ``embedding`` / ``embeddings`` object anywhere below, the shallowest
   one (a PDF knowledge base's ``pdf_knowledge.embedder``); two at the same depth is ambiguous;
4. the top level itself, when it holds known keys (a ``vllm-embed.toml`` or a JSON file
   that *is* the embedder object).

``section="a.b.c"`` skips detection. A ``vector`` table inside the section, or next to it
(kano-backlog's ``[vector]``), is returned alongside so it can be kept and exposed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vllm_embed._config_readers._keys import KEY_ALIASES
from vllm_embed._errors import ConfigValueError

__all__ = ["Located", "locate"]

_OWN_TABLES = (("tool", "vllm-embed"), ("tool", "vllm_embed"), ("vllm-embed",), ("vllm_embed",))
_SECTION_NAMES = ("embedding", "embedder", "embeddings")


@dataclass(frozen=True)
class Located:
    """The section found, where it was, and the ``vector`` table next to it (if any)."""

    path: tuple[str, ...]
    section: Mapping[str, Any]
    vector: Mapping[str, Any] = field(default_factory=dict)


def _looks_like_embedding(value: Any) -> bool:
    return isinstance(value, Mapping) and any(
        isinstance(k, str) and k.lower() in KEY_ALIASES for k in value
    )


def _get(document: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = document
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _vector_for(document: Mapping[str, Any], path: tuple[str, ...]) -> Mapping[str, Any]:
    section = _get(document, path)
    inner = section.get("vector") if isinstance(section, Mapping) else None
    if isinstance(inner, Mapping):
        return inner
    parent = _get(document, path[:-1]) if path else None
    sibling = parent.get("vector") if isinstance(parent, Mapping) else None
    return sibling if isinstance(sibling, Mapping) else {}


def _found(document: Mapping[str, Any], path: tuple[str, ...]) -> Located:
    section = document if not path else _get(document, path)
    assert isinstance(section, Mapping)
    return Located(path=path, section=section, vector=_vector_for(document, path))


def _explicit(document: Mapping[str, Any], section: str, where: str) -> Located:
    path = tuple(section.split("."))
    node: Any = document
    for depth, part in enumerate(path):
        if not isinstance(node, Mapping) or part not in node:
            here = ".".join(path[:depth]) or "the top level"
            keys = sorted(node) if isinstance(node, Mapping) else []
            raise ConfigValueError(
                f"Section {section!r} not found in {where}: {here} has no key {part!r} "
                f"(it has: {', '.join(map(str, keys)) or 'nothing'}). Check section=."
            )
        node = node[part]
    if not isinstance(node, Mapping):
        raise ConfigValueError(
            f"Section {section!r} in {where} is a {type(node).__name__}, not a table / "
            "object of settings. Point section= at the table that holds base_url, model, ..."
        )
    return _found(document, path)


def _search(document: Mapping[str, Any], where: str) -> tuple[str, ...] | None:
    """Breadth-first search for an embedder-like object below the top level."""
    level: list[tuple[tuple[str, ...], Mapping[str, Any]]] = [((), document)]
    while level:
        hits = [
            (*path, key)
            for path, node in level
            for key, value in node.items()
            if key in _SECTION_NAMES and _looks_like_embedding(value)
        ]
        if len(hits) > 1:
            found = ", ".join(".".join(h) for h in hits)
            raise ConfigValueError(
                f"Several embedding sections in {where} ({found}). Choose one with "
                f"section=, e.g. section={'.'.join(hits[0])!r} (--section on the CLI)."
            )
        if hits:
            return hits[0]
        level = [
            ((*path, key), value)
            for path, node in level
            for key, value in node.items()
            if isinstance(value, Mapping) and isinstance(key, str)
        ]
    return None


def locate(document: Mapping[str, Any], *, section: str | None, where: str) -> Located:
    """Find the embedding section of ``document`` (see the module docstring)."""
    if section:
        return _explicit(document, section, where)
    for path in _OWN_TABLES:
        if isinstance(_get(document, path), Mapping):
            return _found(document, path)
    found = _search(document, where)
    if found is not None:
        return _found(document, found)
    if _looks_like_embedding(document):
        return _found(document, ())
    raise ConfigValueError(
        f"No embedding settings found in {where}. Looked for [tool.vllm-embed], "
        "[embedding], an 'embedder' object (e.g. pdf_knowledge.embedder) and top-level "
        "base_url/model keys. Pass section='path.to.table' (--section on the CLI)."
    )
