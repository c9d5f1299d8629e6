"""Map the keys apps write in their TOML / JSON sections onto EmbedConfig fields.

The seeds use ``base_url``, ``api_key``, ``model``, ``dimension``, ``headers``,
``timeout``, ``retries``, ``backoff_factor`` (plus ``provider`` / ``type``, which are
kept as information); a few common spellings from other tools are accepted too.
Keys we do not know are kept in ``EmbedConfig.extra`` and reported with
:class:`UnknownConfigKeyWarning` (a typo such as ``base_ulr`` should not pass silently,
but an app's own extra keys must not stop it from loading).
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Mapping
from typing import Any

from vllm_embed._settings import SETTING_TABLE

__all__ = [
    "CLIENT_PASSTHROUGH_KEYS",
    "INFORMATIONAL_KEYS",
    "KEY_ALIASES",
    "SETTING_KEYS",
    "ConfigWarning",
    "UnknownConfigKeyWarning",
    "split_section",
]


class ConfigWarning(UserWarning):
    """Base class of the warnings the config readers emit."""


class UnknownConfigKeyWarning(ConfigWarning):
    """A config section holds a key vllm-embed does not use (kept in ``extra``)."""


# key as written in the file -> EmbedConfig field
KEY_ALIASES: dict[str, str] = {
    "base_url": "base_urls",
    "base_urls": "base_urls",
    "api_base": "base_urls",
    "openai_api_base": "base_urls",
    "endpoint": "base_urls",
    "url": "base_urls",
    "api_key": "api_key",
    "openai_api_key": "api_key",
    "model": "model",
    "model_name": "model",
    "dimension": "dimension",
    "dim": "dimension",
    "embedding_dim": "dimension",
    "dimensions": "dimensions",
    "headers": "headers",
    "timeout": "timeout",
    "retries": "retries",
    "max_retries": "retries",
    "backoff_factor": "backoff_factor",
    "batch_size": "batch_size",
    "max_concurrency": "max_concurrency",
    "cache": "cache",
    "embedding_cache": "cache",
    "tracing": "tracing",
    "metrics": "metrics",
    "max_in_flight_per_endpoint": "max_in_flight_per_endpoint",
    "hedge": "hedge",
}

#: The settings of ``_settings.SETTING_TABLE`` as users spell them in a file (one ``base_url``).
SETTING_KEYS: tuple[str, ...] = tuple(s.display for s in SETTING_TABLE)

# Kept in ``extra`` without a warning: they describe the app's setup.
INFORMATIONAL_KEYS = frozenset({"provider", "type", "name", "description", "enabled"})

# Kept in ``extra`` without a warning and passed on by ``EmbedConfig.client_kwargs()``.
CLIENT_PASSTHROUGH_KEYS = frozenset(
    {
        "encoding",
        "embed_dtype",
        "truncate",
        "instructions",
        "normalize",
        "max_tokens_per_request",
        "count_truncated",
        "client_side_dimensions",
        "verify",
    }
)


def split_section(
    section: Mapping[str, Any], *, where: str, warn: bool = True
) -> tuple[dict[str, tuple[str, Any]], dict[str, Any]]:
    """Split a section into ``({field: (key, value)}, extra)``.

    When two spellings of one field are present (``base_url`` and ``api_base``), the
    first in the file wins and the other is reported as unknown, never merged silently.
    """
    fields: dict[str, tuple[str, Any]] = {}
    extra: dict[str, Any] = {}
    for key, value in section.items():
        field = KEY_ALIASES.get(key.lower()) if isinstance(key, str) else None
        if field is not None and field not in fields:
            fields[field] = (key, value)
            continue
        extra[key] = value
        if key in INFORMATIONAL_KEYS or key in CLIENT_PASSTHROUGH_KEYS or not warn:
            continue
        if field is not None:
            hint = f"it repeats {fields[field][0]!r}, which is used"
        else:
            hint = "it is kept in EmbedConfig.extra and otherwise ignored"
            close = difflib.get_close_matches(str(key).lower(), KEY_ALIASES, n=1)
            if close:
                hint += f"; did you mean {close[0]!r}?"
        warnings.warn(
            f"Unknown key {key!r} in {where}: {hint}. Known keys: {', '.join(SETTING_KEYS)}.",
            UnknownConfigKeyWarning,
            stacklevel=4,
        )
    return fields, extra
