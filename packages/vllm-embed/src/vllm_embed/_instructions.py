"""Query / document instructions, and presets chosen from the model name.

Many retrieval models embed queries and documents differently: E5 wants ``query: `` and
``passage: ``, Qwen3-Embedding wants ``Instruct: <task>\\nQuery: `` before queries only, and
so on. :func:`resolve_instructions` picks the preset for a model name; unknown models get
no prefix at all. Presets can be overridden (pass an :class:`Instructions`) or disabled
(``instructions=None``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from vllm_embed._errors import ConfigValueError

__all__ = [
    "DEFAULT_QWEN3_TASK",
    "PRESETS",
    "Instructions",
    "preset_for_model",
    "resolve_instructions",
]

#: The task Qwen3-Embedding's model card uses for web-search style retrieval.
DEFAULT_QWEN3_TASK = "Given a web search query, retrieve relevant passages that answer the query"


@dataclass(frozen=True)
class Instructions:
    """Prefixes prepended to queries and to documents before embedding.

    >>> Instructions(query="query: ", document="passage: ").apply_query(["hi"])
    ['query: hi']
    """

    query: str = ""
    document: str = ""
    name: str = "custom"

    def __post_init__(self) -> None:
        if not isinstance(self.query, str) or not isinstance(self.document, str):
            raise ConfigValueError("Instructions.query and .document must be strings")

    @classmethod
    def qwen3(cls, task: str = DEFAULT_QWEN3_TASK) -> Instructions:
        """Qwen3-Embedding: ``Instruct: {task}\\nQuery: {text}`` for queries, bare documents."""
        return cls(query=f"Instruct: {task}\nQuery: ", document="", name="qwen3")

    @classmethod
    def none(cls) -> Instructions:
        """No prefix for either side."""
        return cls(name="none")

    @property
    def is_empty(self) -> bool:
        """True when neither side gets a prefix."""
        return not self.query and not self.document

    def apply_query(self, texts: Sequence[str]) -> list[str]:
        """Return the texts with the query prefix."""
        return _prefix(self.query, texts)

    def apply_document(self, texts: Sequence[str]) -> list[str]:
        """Return the texts with the document prefix."""
        return _prefix(self.document, texts)


def _prefix(prefix: str, texts: Sequence[str]) -> list[str]:
    if not prefix:
        return list(texts)
    return [prefix + t for t in texts]


_E5 = Instructions(query="query: ", document="passage: ", name="e5")
_BGE_EN = Instructions(
    query="Represent this sentence for searching relevant passages: ", document="", name="bge-en"
)
_JINA = Instructions(query="Query: ", document="Passage: ", name="jina")
_NOMIC = Instructions(query="search_query: ", document="search_document: ", name="nomic")
_QWEN3 = Instructions.qwen3()

#: Presets by name (also accepted as ``instructions="<name>"``).
PRESETS: dict[str, Instructions] = {
    "qwen3": _QWEN3,
    "e5": _E5,
    "bge-en": _BGE_EN,
    "jina": _JINA,
    "nomic": _NOMIC,
    "none": Instructions.none(),
}

# Matched against the lower-cased model name (a served name or an HF id), first match wins.
_RULES: tuple[tuple[re.Pattern[str], Instructions], ...] = (
    (re.compile(r"qwen3[-_]?embedding"), _QWEN3),
    # e5-mistral / multilingual-e5-large-instruct use the Instruct/Query format.
    (re.compile(r"e5-mistral|e5-.*instruct"), _QWEN3),
    (re.compile(r"(^|[/_-])(multilingual-)?e5-"), _E5),
    (re.compile(r"bge-(small|base|large)-en-v1\.5"), _BGE_EN),
    (re.compile(r"jina-embeddings-v[34]"), _JINA),
    (re.compile(r"nomic-embed"), _NOMIC),
)


def preset_for_model(model: str) -> Instructions:
    """The preset for a model name, or :meth:`Instructions.none` for unknown models."""
    name = model.lower()
    for pattern, preset in _RULES:
        if pattern.search(name):
            return preset
    return PRESETS["none"]


def resolve_instructions(spec: Instructions | str | None, model: str) -> Instructions:
    """Turn the client's ``instructions`` setting into concrete prefixes.

    ``"auto"``: the preset for ``model``; a preset name (``"e5"``, ``"qwen3"``, ...): that
    preset; an :class:`Instructions`: itself; ``None``: no prefixes.
    """
    if spec is None:
        return PRESETS["none"]
    if isinstance(spec, Instructions):
        return spec
    if spec == "auto":
        return preset_for_model(model)
    try:
        return PRESETS[spec]
    except KeyError:
        names = ", ".join(sorted(PRESETS))
        raise ConfigValueError(
            f"Unknown instructions preset {spec!r}. Use 'auto', None, one of: {names}, "
            "or an Instructions(query=..., document=...) object."
        ) from None
