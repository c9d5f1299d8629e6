"""Read embedding settings from the configs apps already have: :func:`load_config`.

Sources, as the apps write them (no rewrite by the user):

- **TOML** (``tomllib``): an ``[embedding]`` table (``provider``, ``model``, ``dimension``,
  ``base_url``, ``api_key``) next to a ``[vector]`` table that is kept in
  :attr:`EmbedConfig.vector`; our own ``[tool.vllm-embed]`` in ``pyproject.toml``; a
  ``vllm-embed.toml`` with the keys at the top level.
- **JSON**: an ``embedder`` object (``type``, ``base_url``, ``model``, ``api_key``,
  ``headers``, ``timeout``, ``retries``, ``backoff_factor``) anywhere in a larger app
  config (``pdf_knowledge.embedder``) or at the top level.
- **Python** module (path or dotted name): module-level names such as
  ``EMBEDDING_ENDPOINT``, mapped by :data:`PYTHON_NAME_MAP` (extend it, or pass
  ``names=``). **Loading a Python config executes it**; only the given path is loaded.
- **Environment**: ``VLLM_EMBED_BASE_URL`` (comma-separated for several),
  ``VLLM_EMBED_API_KEY``, ``VLLM_EMBED_MODEL``, ``VLLM_EMBED_DIMENSION``,
  ``VLLM_EMBED_DIMENSIONS``, ``VLLM_EMBED_TIMEOUT``, ``VLLM_EMBED_RETRIES``,
  ``VLLM_EMBED_BACKOFF_FACTOR``, ``VLLM_EMBED_BATCH_SIZE``, ``VLLM_EMBED_MAX_CONCURRENCY``.

Precedence, highest first: explicit arguments (``overrides=``) > our environment
variables > the file > other tools' variables used as fallbacks (``OPENAI_BASE_URL``,
``OPENAI_API_BASE``, ``VLLM_API_KEY``, ``OPENAI_API_KEY``) > defaults. The only default
value is ``https://api.openai.com/v1`` as base URL when the file says
``provider = "openai"`` and nothing gives a base URL (the convention of kano-backlog's
``[embedding]`` table: no ``base_url`` means OpenAI's own API). Other unset fields stay
``None`` and mean "the client's default".

String values may use ``${VAR}`` / ``${VAR:-default}`` (environment), so keys need not
sit in files. :attr:`EmbedConfig.origins` records where every field came from.
"""

from __future__ import annotations

import dataclasses
import os
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from vllm_embed._config_readers import _files, _python
from vllm_embed._config_readers._expand import expand_tree
from vllm_embed._config_readers._keys import (
    CLIENT_PASSTHROUGH_KEYS,
    KEY_ALIASES,
    SETTING_KEYS,
    ConfigWarning,
    UnknownConfigKeyWarning,
    split_section,
)
from vllm_embed._config_readers._sections import locate
from vllm_embed._errors import ConfigValueError
from vllm_embed._secrets import mask, mask_tree, mask_url
from vllm_embed._settings import (
    ENV_VARS,
    FALLBACK_ENV_VARS,
    SETTING_FIELDS,
    Layer,
    client_kwargs_from,
    resolve,
    retry_policy_from,
)
from vllm_embed._types import RetryPolicy, Secret

__all__ = [
    "ENV_VARS",
    "FALLBACK_ENV_VARS",
    "OPENAI_DEFAULT_BASE_URL",
    "PYTHON_NAME_MAP",
    "ConfigWarning",
    "EmbedConfig",
    "UnknownConfigKeyWarning",
    "load_config",
]

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"

#: Python config names, per EmbedConfig field; the first name the module defines wins.
#: Extend it for your own variable names (or pass ``names=`` to :func:`load_config`).
PYTHON_NAME_MAP: dict[str, tuple[str, ...]] = {
    "base_urls": ("EMBEDDING_ENDPOINT", "EMBEDDING_BASE_URL"),
    "api_key": ("EMBEDDING_API_KEY", "OPENAI_KEY"),
    "model": ("AOAI_EMBEDDING_LARGE_MODEL_NAME", "EMBEDDING_MODEL", "EMBEDDING_MODEL_NAME"),
    "dimension": ("AOAI_EMBEDDING_LARGE_DIM", "EMBEDDING_DIM", "EMBEDDING_DIMENSION"),
    "dimensions": ("EMBEDDING_DIMENSIONS",),
    "headers": ("EMBEDDING_HEADERS",),
    "timeout": ("EMBEDDING_TIMEOUT",),
    "retries": ("EMBEDDING_RETRIES",),
    "backoff_factor": ("EMBEDDING_BACKOFF_FACTOR",),
    "batch_size": ("EMBEDDING_BATCH_SIZE",),
    "max_concurrency": ("EMBEDDING_MAX_CONCURRENCY",),
}


_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, repr=False)
class EmbedConfig:
    """One resolved, immutable embedding configuration.

    ``dimension`` is what the app *declares* (what its existing store was built with);
    ``dimensions`` is a Matryoshka request sent to the server. ``vector`` is the app's
    vector-store table (a ``[vector]`` table such as kano-backlog's), kept as-is; ``extra``
    holds the other keys of the app's section. ``origins`` maps each setting to ``"argument"``,
    ``"env:VAR"``, ``"file:<path>#<key>"`` or ``"default"``. The repr masks keys.
    """

    base_urls: tuple[str, ...] = ()
    api_key: Secret | None = None
    model: str | None = None
    dimension: int | None = None
    dimensions: int | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    timeout: float | None = None
    retries: int | None = None
    backoff_factor: float | None = None
    batch_size: int | None = None
    max_concurrency: int | None = None
    cache: Any = None
    tracing: bool | None = None
    metrics: Any = None
    max_in_flight_per_endpoint: int | None = None
    hedge: bool | float | None = None
    vector: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    source: str | None = None
    format: str | None = None
    origins: Mapping[str, str] = field(default_factory=lambda: _EMPTY)

    @property
    def base_url(self) -> str | None:
        """The first base URL (None when there is none)."""
        return self.base_urls[0] if self.base_urls else None

    @property
    def store_path(self) -> str | None:
        """The app's vector store path from the ``vector`` table, when it names one."""
        path = self.vector.get("path")
        return str(path) if isinstance(path, str | os.PathLike) else None

    def retry_policy(self) -> RetryPolicy | None:
        """``retries`` / ``backoff_factor`` as a RetryPolicy (None when neither is set).

        ``retries`` counts retries, so ``max_attempts = retries + 1``.
        """
        return retry_policy_from(self.retries, self.backoff_factor)

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``EmbeddingClient(**config.client_kwargs())``.

        Only set values are included, so the client's defaults apply to the rest.
        ``base_url`` is a string for one URL, a list for several; ``api_key`` is the
        plain string (the client wraps it again).
        """
        kwargs = client_kwargs_from({name: getattr(self, name) for name in SETTING_FIELDS})
        if self.api_key is not None:
            kwargs["api_key"] = self.api_key.get()
        for name in CLIENT_PASSTHROUGH_KEYS & set(self.extra):
            kwargs[name] = self.extra[name]
        return kwargs

    def to_dict(self, *, mask_secrets: bool = True) -> dict[str, Any]:
        """Plain-data view (for ``config show --json``, logs). Keys masked by default."""
        data: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Mapping):
                value = dict(value)
            if isinstance(value, tuple):
                value = list(value)
            data[f.name] = value
        key = self.api_key
        if mask_secrets:
            data["api_key"] = None if key is None else mask(key)
            data["base_urls"] = [mask_url(u) for u in self.base_urls]
            for name in ("headers", "vector", "extra"):
                data[name] = mask_tree(data[name])
        else:
            data["api_key"] = None if key is None else key.get()
        return data

    def __repr__(self) -> str:
        shown = self.to_dict(mask_secrets=True)
        body = ", ".join(f"{k}={v!r}" for k, v in shown.items() if k != "origins")
        return f"EmbedConfig({body})"


# ---------------------------------------------------------------------------------------
# layers (the precedence itself is vllm_embed._settings.resolve, shared with the client)


def _override_layer(overrides: Mapping[str, Any]) -> tuple[Layer, dict[str, Any]]:
    layer: Layer = {}
    extra: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        name = key if key in SETTING_FIELDS else KEY_ALIASES.get(key)
        if name is not None:
            layer[name] = (value, "argument")
        elif key in CLIENT_PASSTHROUGH_KEYS:
            extra[key] = value
        else:
            raise ConfigValueError(
                f"Unknown setting {key!r} in overrides. Use one of: "
                f"{', '.join(SETTING_KEYS)} or a client option "
                f"({', '.join(sorted(CLIENT_PASSTHROUGH_KEYS))})."
            )
    return layer, extra


@dataclass
class _FileData:
    """What a source contributed before precedence: values, vector table, extras."""

    layer: Layer = field(default_factory=dict)
    vector: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    format: str | None = None
    vector_origin: str | None = None


def _read_document(path: Path, fmt: str, text: str) -> dict[str, Any]:
    return _files.read_toml(path, text) if fmt == "toml" else _files.read_json(path, text)


def _from_document(
    document: Mapping[str, Any],
    *,
    path: Path,
    fmt: str,
    section: str | None,
    env: Mapping[str, str],
) -> _FileData:
    where = str(path)
    found = locate(document, section=section, where=where)
    dotted = ".".join(found.path)
    prefix = f"{dotted}." if dotted else ""
    body = {k: v for k, v in found.section.items() if k != "vector"}
    label = f"[{dotted}] of {where}" if dotted else where
    fields, extra = split_section(body, where=label)
    data = _FileData(source=str(path), format=fmt)
    for name, (key, value) in fields.items():
        data.layer[name] = (
            expand_tree(value, env, where=f"{prefix}{key} in {where}"),
            f"file:{where}#{prefix}{key}",
        )
    data.extra = expand_tree(extra, env, where=f"[{dotted or 'top level'}] of {where}")
    if found.vector:
        data.vector = expand_tree(dict(found.vector), env, where=f"vector table of {where}")
        vector_key = f"{prefix}vector" if "vector" in found.section else "vector"
        data.vector_origin = f"file:{where}#{vector_key}"
    return data


def _from_module(
    module: types.ModuleType,
    *,
    label: str,
    names: Mapping[str, Sequence[str]] | None,
    env: Mapping[str, str],
) -> _FileData:
    table = dict(PYTHON_NAME_MAP)
    for key, extra_names in (names or {}).items():
        name = key if key in SETTING_FIELDS else KEY_ALIASES.get(key)
        if name is None:
            raise ConfigValueError(
                f"names= has an unknown setting {key!r}; use one of {', '.join(SETTING_KEYS)}."
            )
        given = (extra_names,) if isinstance(extra_names, str) else tuple(extra_names)
        table[name] = given + table.get(name, ())
    values, used = _python.module_values(module, table)
    filename = getattr(module, "__file__", None) or label
    data = _FileData(source=label, format="python")
    for name, value in values.items():
        where = f"{used[name]} in {filename}"
        data.layer[name] = (expand_tree(value, env, where=where), f"file:{filename}#{used[name]}")
    return data


def _read_source(
    source: str | os.PathLike[str] | types.ModuleType,
    *,
    section: str | None,
    names: Mapping[str, Sequence[str]] | None,
    env: Mapping[str, str],
) -> _FileData:
    if isinstance(source, types.ModuleType):
        return _from_module(source, label=source.__name__, names=names, env=env)
    text_source = os.fspath(source)
    path = Path(text_source).expanduser()
    if not path.exists() and _python.is_module_name(text_source):
        module = _python.load_module_from_name(text_source)
        return _from_module(module, label=text_source, names=names, env=env)
    if path.suffix.lower() == ".py":
        if section:
            raise ConfigValueError("section= applies to TOML / JSON files, not Python configs.")
        module = _python.load_module_from_path(path)
        return _from_module(module, label=str(path), names=names, env=env)
    text = _files.read_text(path)
    fmt = _files.guess_format(path, text)
    return _from_document(
        _read_document(path, fmt, text), path=path, fmt=fmt, section=section, env=env
    )


def _from_config(config: EmbedConfig) -> _FileData:
    layer: Layer = {}
    for name in SETTING_FIELDS:
        value = getattr(config, name)
        if value is not None and value != () and value != {}:
            layer[name] = (value, config.origins.get(name, "argument"))
    return _FileData(
        layer=layer,
        vector=dict(config.vector),
        extra=dict(config.extra),
        source=config.source,
        format=config.format,
        vector_origin=config.origins.get("vector"),
    )


# ---------------------------------------------------------------------------------------
# the public entry point


def load_config(
    source: str | os.PathLike[str] | types.ModuleType | EmbedConfig | None = None,
    *,
    section: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    names: Mapping[str, Sequence[str] | str] | None = None,
) -> EmbedConfig:
    """Resolve one :class:`EmbedConfig` from a file / module, the environment and arguments.

    Args:
        source: a ``.toml`` / ``.json`` / ``.py`` path, a dotted module name
            (``"dvd.config"``), a module object, an EmbedConfig (overrides applied on top),
            or None (environment only). **A Python config is executed** when loaded.
        section: dotted path of the settings table (``"pdf_knowledge.embedder"``);
            auto-detected when None.
        overrides: explicit values, highest precedence (``base_url``, ``model``, ...;
            ``None`` values are ignored).
        env: the environment to read (default ``os.environ``).
        names: extra Python config names per setting, tried before
            :data:`PYTHON_NAME_MAP`'s (``{"base_url": ["MY_EMBED_URL"]}``).

    Raises:
        ConfigFileError: missing / unreadable file, syntax error (with line and column),
            a Python config that raised.
        ConfigValueError: no base URL anywhere, invalid values (e.g. dimension <= 0),
            an unset ``${VAR}``, no embedding section found.

    Warns:
        UnknownConfigKeyWarning: a key in the section that vllm-embed does not use.
    """
    env = os.environ if env is None else env
    if isinstance(source, EmbedConfig):
        data = _from_config(source)
        env = {}  # the EmbedConfig already resolved its environment
    elif source is not None:
        data = _read_source(source, section=section, names=names, env=env)
    else:
        data = _FileData(format="env")
    arguments, passthrough = _override_layer(overrides or {})
    extra = {**data.extra, **passthrough}
    values, origins = resolve(env, arguments=arguments, file=data.layer)

    if "base_urls" not in values and str(extra.get("provider", "")).lower() == "openai":
        values["base_urls"] = (OPENAI_DEFAULT_BASE_URL,)
    if "base_urls" not in values:
        raise ConfigValueError(_no_base_url_message(data.source))
    origins["vector"] = data.vector_origin or "default"

    return EmbedConfig(
        **values,
        vector=MappingProxyType(data.vector),
        extra=MappingProxyType(extra),
        source=data.source,
        format=data.format,
        origins=MappingProxyType(origins),
    )


def _no_base_url_message(source: str | None) -> str:
    where = f"{source} has no base_url" if source else "No config file was given"
    return (
        f"No base URL for the embedding server: {where}, and neither VLLM_EMBED_BASE_URL "
        'nor OPENAI_BASE_URL is set. Add base_url = "http://host:8000/v1" to the config, '
        "export VLLM_EMBED_BASE_URL, or pass base_url=."
    )
