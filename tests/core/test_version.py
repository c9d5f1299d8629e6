"""One version source: ``vllm_embed/_version.py``, read by hatch for the package metadata."""

from __future__ import annotations

import importlib.metadata

import vllm_embed
from vllm_embed import _constants


def test_metadata_module_and_user_agent_agree() -> None:
    assert importlib.metadata.version("vllm-embed") == vllm_embed.__version__
    assert f"vllm-embed/{vllm_embed.__version__}" == _constants.USER_AGENT
