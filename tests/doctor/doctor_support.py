"""Helpers of the ``doctor --store`` tests: run the command against the respx fake vLLM
(vllm_embed_testing.respx_vllm's URL and key) and read its store lines."""

from __future__ import annotations

from pathlib import Path

import respx
from click.testing import CliRunner, Result

from vllm_embed import EmbeddingClient
from vllm_embed.cli import main
from vllm_embed.migrate import migrate_store, open_store
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM, MODEL, mount


def doctor_store(store: Path | str, *extra: str) -> Result:
    """``vllm-embed doctor --store STORE`` against the fake at BASE_URL, with its key."""
    args = ["doctor", "--base-url", BASE_URL, "--api-key", API_KEY, "--store", str(store)]
    return CliRunner().invoke(main, [*args, *extra])


def store_line(result: Result) -> str:
    """The first ``store space`` check line, as printed."""
    return next(line for line in result.output.splitlines() if "store space" in line)


def store_lines(result: Result) -> list[str]:
    """Every ``store space`` check line (one per collection), stripped."""
    return [line.strip() for line in result.output.splitlines() if "store space" in line]


def assert_passes_then_another_model_fails(store: Path, client: EmbeddingClient) -> None:
    """Migrated by ``client`` (the fake), the store passes; a server of another model at the
    same dimension fails it, naming both models and the fix command, never the key."""
    with respx.mock(assert_all_called=False) as router:
        mount(router)
        migrate_store(open_store(store), client)
        passed = doctor_store(store)
    assert passed.exit_code == 0, passed.output
    assert store_line(passed).lstrip().startswith("PASS")
    assert f"model {MODEL!r}, dim {DIM}" in store_line(passed)
    with respx.mock(assert_all_called=False) as router:
        mount(router, model="intfloat/other-model")  # same dimension, another model
        failed = doctor_store(store)
    assert failed.exit_code == 1, failed.output
    assert store_line(failed).lstrip().startswith("FAIL")
    assert MODEL in store_line(failed) and "intfloat/other-model" in store_line(failed)
    assert f"vllm-embed migrate {store}" in failed.output
    assert API_KEY not in passed.output + failed.output
