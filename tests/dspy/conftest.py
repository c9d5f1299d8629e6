"""Fixtures for this adapter's unit tests (respx-mocked vLLM, sockets disabled).

DSPy fixes its disk cache directory when it is imported (``DSPY_CACHEDIR``, else
``~/.dspy_cache``): it is pointed at a directory of this test run before any test imports
dspy, so tests never read or write the developer's cache.
"""

from __future__ import annotations

import os
import tempfile

os.environ["DSPY_CACHEDIR"] = tempfile.mkdtemp(prefix="vllm-embed-dspy-cache-")

from vllm_embed_testing.pytest_plugin import clean_env  # noqa: F401 (autouse here)
from vllm_embed_testing.pytest_plugin import fake_vllm as server  # noqa: F401
