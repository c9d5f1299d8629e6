"""The server and client options shared by ``embed``, ``migrate`` and ``doctor``, defined once.

:func:`server_options` -- which server, as whom: ``--config`` (where the command reads a
config by option), ``--section``, ``--base-url``, ``--model``, ``--api-key`` (never
printed; ``VLLM_EMBED_API_KEY`` where the command reads it as the option's value).
:func:`client_options` -- how the client embeds: ``--dimensions``, ``--batch-size``,
``--cache``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = ["client_options", "server_options"]

F = TypeVar("F", bound=Callable[..., Any])


def _apply(func: F, decorators: list[Callable[[F], F]]) -> F:
    for decorator in reversed(decorators):  # first listed shows first in --help
        func = decorator(func)
    return func


def server_options(
    *, config: bool = True, several_urls: bool = False, api_key_envvar: bool = True
) -> Callable[[F], F]:
    """``--config`` (unless the command takes its config as an argument), ``--section``,
    ``--base-url`` (repeatable with ``several_urls``: failover), ``--model``, ``--api-key``.

    ``api_key_envvar``: the option's value defaults to ``VLLM_EMBED_API_KEY`` (off where
    the command loads the config itself, so doctor can say the key came from the env).
    """
    decorators: list[Callable[[F], F]] = []
    if config:
        decorators.append(
            click.option("--config", "config", help="App config to read the server settings from.")
        )
    decorators.append(
        click.option(
            "--section",
            help="Dotted path of the config's settings table, e.g. pdf_knowledge.embedder.",
        )
    )
    if several_urls:
        decorators.append(
            click.option(
                "--base-url",
                multiple=True,
                help="Server URL, e.g. http://localhost:8000/v1 (repeat for several servers, "
                "with failover).",
            )
        )
    else:
        decorators.append(
            click.option("--base-url", help="Server URL, e.g. http://localhost:8000/v1.")
        )
    decorators.append(
        click.option("--model", help="Model to embed with (default: the one the server serves).")
    )
    key_help = "API key (never printed); prefer VLLM_EMBED_API_KEY (keeps it out of history)."
    if api_key_envvar:
        decorators.append(
            click.option("--api-key", envvar="VLLM_EMBED_API_KEY", show_envvar=True, help=key_help)
        )
    else:
        decorators.append(click.option("--api-key", help=key_help))
    return lambda func: _apply(func, decorators)


def client_options(func: F) -> F:
    """``--dimensions`` (Matryoshka), ``--batch-size`` (texts per request), ``--cache``."""
    return _apply(
        func,
        [
            click.option(
                "--dimensions", type=click.IntRange(min=1), help="Matryoshka dimension to ask for."
            ),
            click.option("--batch-size", type=click.IntRange(min=1), help="Texts per request."),
            click.option(
                "--cache",
                help="Embedding cache (a SQLite path or redis:// URL): texts embedded by an "
                "earlier run, or for another store or corpus of the same app, cost no server "
                "time.",
            ),
        ],
    )
