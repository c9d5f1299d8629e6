"""The settings table and the one resolver that the client and ``load_config`` share.

:data:`SETTING_TABLE` lists every setting that goes through precedence: its config field,
the client keyword argument it feeds, our environment variable and other tools' variables
(:data:`SETTING_FIELDS`: their config fields, in display order).
:func:`resolve` applies the precedence, highest first::

    explicit arguments > our variable (VLLM_EMBED_*) > the config file
        > other tools' variables (OPENAI_BASE_URL, OPENAI_API_BASE, VLLM_API_KEY,
          OPENAI_API_KEY) > unset (the client's default)

``EmbeddingClient(...)`` / ``AsyncEmbeddingClient(...)`` resolve the settings they were not
given with it (no file), and :func:`vllm_embed.load_config` with the file in between, so
an environment means the same to both: ``VLLM_EMBED_BASE_URL=a,b`` is two URLs,
``OPENAI_API_BASE`` (the older OpenAI SDK's name, which LangChain still reads) is honoured
by both, a bad value raises the same :class:`~vllm_embed.ConfigValueError`. Other tools'
variables sit below the file: a global ``OPENAI_BASE_URL`` meant for another tool must
not redirect an app whose config file names its own server.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from vllm_embed._errors import ConfigValueError
from vllm_embed._secrets import mask_url
from vllm_embed._types import RetryPolicy, Secret

__all__ = [
    "API_KEY_ENV_VARS",
    "BASE_URL_ENV_VARS",
    "ENV_VARS",
    "ENV_VAR_NAMES",
    "FALLBACK_ENV_VARS",
    "SETTING_FIELDS",
    "SETTING_TABLE",
    "Layer",
    "Setting",
    "check_http_url",
    "client_kwargs_from",
    "client_kwargs_from_env",
    "describe_origin",
    "positive_int_argument",
    "resolve",
]

#: ``{field: (value, origin)}``; origin is ``"argument"``, ``"env:VAR"`` or ``"file:..."``.
Layer = dict[str, tuple[Any, str]]


# ---------------------------------------------------------------------------------------
# value coercion: one function per kind, each raising ConfigValueError naming the origin


def describe_origin(origin: str) -> str:
    """``"env:VAR"`` -> ``"environment variable VAR"``, and so on (for messages)."""
    kind, _, detail = origin.partition(":")
    if kind == "env":
        return f"environment variable {detail}"
    if kind == "file":
        path, _, key = detail.rpartition("#")
        return f"{key!r} in {path}" if path else detail
    return {"argument": "the arguments", "default": "the defaults"}.get(kind, origin)


def _bad(name: str, origin: str, expected: str, value: Any, *, secret: bool = False) -> Exception:
    shown = "a value that" if secret else f"{value!r}, which"
    return ConfigValueError(
        f"{name} from {describe_origin(origin)} must be {expected}; got {shown} is not. "
        f"Fix it there."
    )


def _to_int(name: str, value: Any, origin: str, *, minimum: int, strict: bool = False) -> int:
    """An int >= ``minimum``; ``strict``: an int only (a keyword argument), else also its
    text or a whole float (the environment, a config file)."""
    number: Any = value
    if not strict and isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        number = int(value.strip())
    if not strict and isinstance(number, float) and number.is_integer():
        number = int(number)
    if isinstance(number, bool) or not isinstance(number, int) or number < minimum:
        expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise _bad(name, origin, expected, value)
    return number


def _to_float(name: str, value: Any, origin: str, *, positive: bool) -> float:
    number: Any = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = value
    ok = (
        not isinstance(number, bool)
        and isinstance(number, int | float)
        and math.isfinite(number)
        and (number > 0 if positive else number >= 0)
    )
    if not ok:
        raise _bad(name, origin, "a positive number" if positive else "a number >= 0", value)
    return float(number)


def check_http_url(url: str, origin: str = "argument") -> str:
    """``url`` stripped of spaces and trailing slashes; ConfigValueError (naming where it
    came from, credentials masked) unless it is ``http(s)://host...``. The one URL rule of
    the settings and the client's endpoints."""
    if not isinstance(url, str) or not url.strip():
        raise _bad("base_url", origin, "a non-empty URL like http://localhost:8000/v1", url)
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigValueError(
            f"base_url {mask_url(url)!r} from {describe_origin(origin)} is not an "
            "http(s) URL. Write it like http://localhost:8000/v1."
        )
    return url


def _to_urls(name: str, value: Any, origin: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(u, str) for u in items):
        raise _bad(name, origin, "a URL string or a list of URL strings", value)
    urls = tuple(check_http_url(u, origin) for u in items if u.strip())
    if not urls:
        raise _bad(name, origin, "a non-empty URL", value)
    return urls


def _to_secret(name: str, value: Any, origin: str) -> Secret:
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str):
        raise _bad(name, origin, "a string", value, secret=True)
    return Secret(value)


def _to_str(name: str, value: Any, origin: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _bad(name, origin, "a non-empty string", value)
    return value.strip()


def _to_cache(name: str, value: Any, origin: str) -> Any:
    """A cache location (path, sqlite:///..., redis://...) or an EmbeddingCache object."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, str):
        return _to_str(name, value, origin)
    if type(value).__name__ == "EmbeddingCache":
        return value
    raise _bad(name, origin, "a path or a redis:// URL", value)


def _to_headers(name: str, value: Any, origin: str) -> Mapping[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise _bad(name, origin, "a table / object of header names to values", "(not shown)")
    headers: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise ConfigValueError(
                f"header {key!r} from {describe_origin(origin)} must be a string. Fix it there."
            )
        headers[key] = str(item)
    return MappingProxyType(headers)


def _positive_int(n: str, v: Any, o: str) -> int:
    return _to_int(n, v, o, minimum=1)


def positive_int_argument(name: str, value: object) -> int:
    """A client keyword argument that must be a positive int (the same rule and message
    as the environment's and the config file's values)."""
    return _to_int(name, value, "argument", minimum=1, strict=True)


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _to_bool(name: str, value: Any, origin: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _bad(name, origin, "true or false (1/0, yes/no, on/off)", value)


def _to_metrics(name: str, value: Any, origin: str) -> Any:
    """True / False, or a prometheus_client CollectorRegistry (given in code)."""
    if type(value).__name__ == "CollectorRegistry":
        return value
    return _to_bool(name, value, origin)


def _to_hedge(name: str, value: Any, origin: str) -> bool | float:
    """Hedging: on / off (booleans, ``on``, ``true``, ...) or a fixed delay in seconds."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    try:
        return _to_float(name, value, origin, positive=True)
    except ConfigValueError:
        raise _bad(name, origin, "on, off or a delay in seconds > 0", value) from None


# ---------------------------------------------------------------------------------------
# the table


@dataclass(frozen=True)
class Setting:
    """One setting: where it may come from and how its value is checked."""

    #: The :class:`~vllm_embed.EmbedConfig` field.
    field: str
    #: The client keyword argument it feeds (None: the app's own, not the client's).
    client: str | None
    #: Our environment variable (above the config file), or None.
    env: str | None
    #: Other tools' variables, first set wins (below the config file).
    fallback_env: tuple[str, ...]
    #: ``coerce(display_name, value, origin)`` -> the checked value.
    coerce: Callable[[str, Any, str], Any]

    @property
    def display(self) -> str:
        """The name users write (one ``base_url``)."""
        return "base_url" if self.field == "base_urls" else self.field


SETTING_TABLE: tuple[Setting, ...] = (
    Setting(
        "base_urls",
        "base_url",
        "VLLM_EMBED_BASE_URL",  # several: comma-separated
        ("OPENAI_BASE_URL", "OPENAI_API_BASE"),
        _to_urls,
    ),
    Setting(
        "api_key",
        "api_key",
        "VLLM_EMBED_API_KEY",
        ("VLLM_API_KEY", "OPENAI_API_KEY"),
        _to_secret,
    ),
    Setting("model", "model", "VLLM_EMBED_MODEL", (), _to_str),
    # what the app declares its store was built with: checked, never sent
    Setting("dimension", None, "VLLM_EMBED_DIMENSION", (), _positive_int),
    Setting("dimensions", "dimensions", "VLLM_EMBED_DIMENSIONS", (), _positive_int),
    Setting("headers", "headers", None, (), _to_headers),
    Setting(
        "timeout",
        "timeout",
        "VLLM_EMBED_TIMEOUT",
        (),
        lambda n, v, o: _to_float(n, v, o, positive=True),
    ),
    Setting(
        "retries", "retry", "VLLM_EMBED_RETRIES", (), lambda n, v, o: _to_int(n, v, o, minimum=0)
    ),
    Setting(
        "backoff_factor",
        "retry",
        "VLLM_EMBED_BACKOFF_FACTOR",
        (),
        lambda n, v, o: _to_float(n, v, o, positive=False),
    ),
    Setting("batch_size", "batch_size", "VLLM_EMBED_BATCH_SIZE", (), _positive_int),
    Setting("max_concurrency", "max_concurrency", "VLLM_EMBED_MAX_CONCURRENCY", (), _positive_int),
    # the per-text embedding cache: a path / sqlite:///path / redis://host:port/db
    Setting("cache", "cache", "VLLM_EMBED_CACHE", (), _to_cache),
    # observability (vllm_embed._telemetry): OpenTelemetry spans, Prometheus metrics
    Setting("tracing", "tracing", "VLLM_EMBED_TRACING", (), _to_bool),
    Setting("metrics", "metrics", "VLLM_EMBED_METRICS", (), _to_metrics),
    # several base URLs: a cap per server, hedged small calls
    Setting(
        "max_in_flight_per_endpoint",
        "max_in_flight_per_endpoint",
        "VLLM_EMBED_MAX_IN_FLIGHT_PER_ENDPOINT",
        (),
        _positive_int,
    ),
    Setting("hedge", "hedge", "VLLM_EMBED_HEDGE", (), _to_hedge),
)

#: The config fields that go through precedence, in display order.
SETTING_FIELDS: tuple[str, ...] = tuple(s.field for s in SETTING_TABLE)

_BY_FIELD: dict[str, Setting] = {s.field: s for s in SETTING_TABLE}

#: field -> our variable (overrides the config file).
ENV_VARS: dict[str, str] = {s.field: s.env for s in SETTING_TABLE if s.env}
#: field -> other tools' variables, first set wins (used below the config file).
FALLBACK_ENV_VARS: dict[str, tuple[str, ...]] = {
    s.field: s.fallback_env for s in SETTING_TABLE if s.fallback_env
}
#: Every environment variable vllm-embed reads for a setting (tests clear them all).
ENV_VAR_NAMES: tuple[str, ...] = tuple(
    name for s in SETTING_TABLE for name in ((s.env,) if s.env else ()) + s.fallback_env
)
#: The variables read for the base URL / the API key, in order of precedence.
BASE_URL_ENV_VARS: tuple[str, ...] = (
    _BY_FIELD["base_urls"].env or "",
    *_BY_FIELD["base_urls"].fallback_env,
)
API_KEY_ENV_VARS: tuple[str, ...] = (
    _BY_FIELD["api_key"].env or "",
    *_BY_FIELD["api_key"].fallback_env,
)


# ---------------------------------------------------------------------------------------
# the resolver


def _is_unset(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _env_layers(env: Mapping[str, str]) -> tuple[Layer, Layer]:
    ours: Layer = {}
    others: Layer = {}
    for s in SETTING_TABLE:
        if s.env and not _is_unset(env.get(s.env)):
            ours[s.field] = (env[s.env], f"env:{s.env}")
        for var in s.fallback_env:
            if not _is_unset(env.get(var)):
                others[s.field] = (env[var], f"env:{var}")
                break
    return ours, others


def resolve(
    env: Mapping[str, str],
    *,
    arguments: Layer | None = None,
    file: Layer | None = None,
    skip: Collection[str] = (),
) -> tuple[dict[str, Any], dict[str, str]]:
    """Resolve every setting: ``(values, origins)`` keyed by config field.

    Precedence, highest first: ``arguments`` > our variables in ``env`` > ``file`` >
    other tools' variables in ``env``. Each value is checked (and converted: strings from
    the environment become numbers, URL tuples, :class:`~vllm_embed.Secret`) by its
    setting's ``coerce``, whose error names where it came from. Fields in ``skip`` are
    left out (the client skips what it was given explicitly); unset fields get origin
    ``"default"`` and no value.
    """
    ours, others = _env_layers(env)
    layers = (arguments or {}, ours, file or {}, others)
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for s in SETTING_TABLE:
        if s.field in skip:
            continue
        for layer in layers:
            if s.field in layer and not _is_unset(layer[s.field][0]):
                raw, origin = layer[s.field]
                values[s.field] = s.coerce(s.display, raw, origin)
                origins[s.field] = origin
                break
        else:
            origins[s.field] = "default"
    return values, origins


def retry_policy_from(retries: int | None, backoff_factor: float | None) -> RetryPolicy | None:
    """``retries`` / ``backoff_factor`` as a RetryPolicy (None when neither is set).

    ``retries`` counts retries, so ``max_attempts = retries + 1``.
    """
    if retries is None and backoff_factor is None:
        return None
    kwargs: dict[str, Any] = {}
    if retries is not None:
        kwargs["max_attempts"] = retries + 1
    if backoff_factor is not None:
        kwargs["backoff_factor"] = backoff_factor
    return RetryPolicy(**kwargs)


def client_kwargs_from(values: Mapping[str, Any]) -> dict[str, Any]:
    """Client keyword arguments from resolved values (unset fields left out).

    ``base_url`` is a string for one URL, a list for several; ``api_key`` stays a
    :class:`~vllm_embed.Secret`; ``retries`` / ``backoff_factor`` become ``retry``;
    ``dimension`` (the app's declaration) is not a client setting.
    """
    kwargs: dict[str, Any] = {}
    urls = values.get("base_urls")
    if urls:
        kwargs["base_url"] = urls[0] if len(urls) == 1 else list(urls)
    if values.get("api_key") is not None:
        kwargs["api_key"] = values["api_key"]
    if values.get("headers"):
        kwargs["headers"] = dict(values["headers"])
    retry = retry_policy_from(values.get("retries"), values.get("backoff_factor"))
    if retry is not None:
        kwargs["retry"] = retry
    for name in (
        "model",
        "dimensions",
        "timeout",
        "batch_size",
        "max_concurrency",
        "cache",
        "tracing",
        "metrics",
        "max_in_flight_per_endpoint",
        "hedge",
    ):
        if values.get(name) is not None:
            kwargs[name] = values[name]
    return kwargs


def fields_for_client_args(given: Collection[str]) -> frozenset[str]:
    """The config fields covered by the client keyword arguments in ``given``."""
    return frozenset(s.field for s in SETTING_TABLE if s.client is None or s.client in given)


def client_kwargs_from_env(
    given: Collection[str], env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The client keyword arguments the environment sets, other than those in ``given``.

    What the client constructor calls for the settings it was not given: the same
    :func:`resolve` as :func:`vllm_embed.load_config` without a file.
    """
    values, _ = resolve(os.environ if env is None else env, skip=fields_for_client_args(given))
    return client_kwargs_from(values)
