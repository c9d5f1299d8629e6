"""The ``vllm-embed`` command line.

One module per command group; each is imported only when its command runs, so
``vllm-embed --help`` stays fast. Errors reach the user as one readable line and a
non-zero exit code; set ``VLLM_EMBED_TRACEBACK=1`` to see the traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from vllm_embed._errors import VLLMEmbedError

# command name -> (module, attribute)
_COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("vllm_embed.cli.serve", "serve"),
    "config": ("vllm_embed.cli.config", "config"),
    "doctor": ("vllm_embed.cli.config", "doctor"),
    "migrate": ("vllm_embed.cli.migrate", "migrate"),
    "cache": ("vllm_embed.cli.cache", "cache"),
    "embed": ("vllm_embed.cli.embed", "embed"),
}

# exit codes
EXIT_ERROR = 1  # a vllm-embed error (bad input, server refused, check failed)
EXIT_USAGE = 2  # click's own usage errors
EXIT_INTERRUPTED = 130


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module = importlib.import_module(target[0])
        command: click.Command = getattr(module, target[1])
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except VLLMEmbedError as exc:
            if os.environ.get("VLLM_EMBED_TRACEBACK"):
                raise
            click.echo(f"Error: {exc}", err=True)
            sys.exit(EXIT_ERROR)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(EXIT_INTERRUPTED)


@click.group(cls=_LazyGroup)
@click.version_option(package_name="vllm-embed")
def main() -> None:
    """Embeddings from your own vLLM (or any OpenAI-compatible) server."""
