"""Fixtures for the `vllm-embed embed` tests: fake servers in their own processes over
127.0.0.1 (the nox session passes ``--allow-hosts=127.0.0.1``); the helpers are in
``embed_support.py``."""

from __future__ import annotations

from vllm_embed_testing.pytest_plugin import fake_servers  # noqa: F401 (fixture)
