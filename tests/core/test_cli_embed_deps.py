"""`vllm-embed embed` without pyarrow says which extra to install (no network needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from vllm_embed.cli import main


def test_embed_without_pyarrow_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "a"}\n')
    result = CliRunner().invoke(
        main, ["embed", str(src), str(tmp_path / "out"), "--base-url", "http://h/v1"]
    )
    assert result.exit_code == 1
    assert "pip install 'vllm-embed[parquet]'" in result.output
    assert not (tmp_path / "out").exists()


def test_embed_is_listed() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert "embed" in result.output
