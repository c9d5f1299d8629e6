"""Hide credentials in anything vllm-embed prints: API keys, auth headers, tokens, URLs.

One home for the client, the settings, the config readers, migrate and the CLI.

A masked value shows that something is set and how long it is, nothing of the value
itself (no prefix, no suffix): ``*** (masked, 24 chars)``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["is_secret_key", "mask", "mask_tree", "mask_url", "mask_url_in"]

_SECRET_NAME = re.compile(
    r"(^|[_\-.])(api[_\-]?key|key|token|secret|password|passwd|auth|authorization|cookie|"
    r"credentials?|bearer)($|[_\-.])",
    re.IGNORECASE,
)


def mask(value: object) -> str:
    """``*** (masked, N chars)`` for a set value, ``(not set)`` for None / empty."""
    if value is None:
        return "(not set)"
    text = value.get() if hasattr(value, "get") and not isinstance(value, Mapping) else value
    length = len(str(text))
    return f"*** (masked, {length} chars)" if length else "(empty)"


def is_secret_key(name: object) -> bool:
    """True for names that usually hold credentials (``api_key``, ``Authorization``, ...)."""
    return isinstance(name, str) and _SECRET_NAME.search(name) is not None


def mask_tree(value: Any) -> Any:
    """Copy of ``value`` with every credential-like entry masked, at any depth."""
    if isinstance(value, Mapping):
        return {
            k: mask(v) if is_secret_key(k) and isinstance(v, str | bytes) else mask_tree(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask_tree(v) for v in value]
    return value


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")


def mask_url(url: str) -> str:
    """A URL with any ``user:password@`` part replaced by ``***@`` (for messages, logs,
    reprs and stats); a URL without one comes back unchanged."""
    scheme, sep, rest = url.partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):
        return url
    ends = [i for i in (rest.find(c) for c in "/?#") if i >= 0]
    end = min(ends, default=len(rest))
    netloc = rest[:end]
    if "@" not in netloc:
        return url
    # rpartition: a password may hold an unescaped "@"; the host follows the last one.
    return f"{scheme}://***@{netloc.rpartition('@')[2]}{rest[end:]}"


def mask_url_in(text: str, url: str) -> str:
    """``text`` (a driver's error message, say) with ``url`` shown as :func:`mask_url`
    shows it and the URL's password, as written or percent-decoded, replaced by ``***``."""
    if url:
        text = text.replace(url, mask_url(url))
    for password in _passwords_of(url):
        text = text.replace(password, "***")
    return text


def _passwords_of(url: str) -> list[str]:
    try:
        raw = urlsplit(url).password
    except ValueError:
        return []
    return sorted({raw, unquote(raw)}, key=len, reverse=True) if raw else []
