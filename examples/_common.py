"""What the adapter examples share: the server options and the one-line error exit.

Each example runs as a script (``python examples/x.py``) and is loaded by the contract
tests with ``runpy.run_path`` (they call its ``main``); both find this module through the
examples folder on ``sys.path``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import NoReturn

from vllm_embed import VLLMEmbedError


def server_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser described by ``doc``'s first line, with ``--base-url``, ``--api-key`` and
    ``--model`` (defaults: ``VLLM_EMBED_BASE_URL``, ``VLLM_EMBED_API_KEY``,
    ``VLLM_EMBED_MODEL``); add the example's own options to it."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--base-url", default=os.environ.get("VLLM_EMBED_BASE_URL"))
    parser.add_argument("--api-key", default=os.environ.get("VLLM_EMBED_API_KEY"))
    parser.add_argument("--model", default=os.environ.get("VLLM_EMBED_MODEL"))
    return parser


def exit_with(run: Callable[[], int]) -> NoReturn:
    """Exit with ``run()``'s code; a vllm-embed error becomes one readable line and code 1
    (e.g. no base URL, wrong key)."""
    try:
        code = run()
    except VLLMEmbedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)
