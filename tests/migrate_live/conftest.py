"""Live migrations: stores written by their real libraries, migrated on the live vLLM CPU
server, then queried through the real library (nox session ``migrate_live``).

Servers come from :mod:`vllm_embed_testing.vllm` (a start failure fails the run with the
server log; nothing skips). Sockets are allowed, to 127.0.0.1 only.
"""

from __future__ import annotations

import sys
from pathlib import Path

from vllm_embed_testing.pytest_plugin import make_client  # noqa: F401 (fixture)
from vllm_embed_testing.vllm import (  # noqa: F401 (fixtures)
    vllm_server,
    vllm_server_pool,
    vllm_server_python,
)

# the store makers of the unit suites
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stores"))
