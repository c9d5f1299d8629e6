"""`vllm-embed migrate` (the API and the command) of a Chroma directory made with
VLLMEmbeddingFunction: the migrated collection's record describes the new vectors, so
reopening it without the function queries the new model; a server giving other vectors
under that model's name is refused by name."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import chromadb
import pytest
import respx
from click.testing import CliRunner

from vllm_embed import DimensionMismatchError, EmbeddingClient, RetryPolicy
from vllm_embed.cli import main
from vllm_embed.migrate import migrate_store, open_store
from vllm_embed_chroma import VLLMEmbeddingFunction
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM, MODEL, mount

NEW_URL = "http://new-vllm.test/v1"
NEW_MODEL = "new-model"  # no instruction preset for this name
NEW_DIM = 24
#: A server serving another model under the new model's name (vLLM --served-model-name).
RENAMED_URL = "http://renamed-vllm.test/v1"
TEXTS = ["Jupiter is the largest planet.", "Mars is red.", "Venus is hot."]


@pytest.fixture
def servers() -> Iterator[None]:
    """The app's old server (MODEL, DIM) and the new one (NEW_MODEL, NEW_DIM)."""
    with respx.mock(assert_all_called=False) as router:
        mount(router)
        mount(router, NEW_URL, model=NEW_MODEL, dim=NEW_DIM)
        mount(router, RENAMED_URL, model=NEW_MODEL, dim=DIM)
        yield


def _migrate_api(path: Path) -> None:
    with EmbeddingClient(NEW_URL, api_key=API_KEY, retry=RetryPolicy(max_attempts=1)) as new:
        result = migrate_store(open_store(path), new)
    assert (result.old_dim, result.new_dim) == (DIM, NEW_DIM)


def _migrate_cli(path: Path) -> None:
    args = ["migrate", str(path), "--base-url", NEW_URL, "--api-key", API_KEY, "--yes"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert API_KEY not in result.output


@pytest.mark.parametrize("migrate", [_migrate_api, _migrate_cli], ids=["api", "cli"])
def test_migrated_record_carries_the_new_model_and_dimension(
    servers: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    migrate: Callable[[Path], None],
) -> None:
    monkeypatch.setenv("VLLM_EMBED_API_KEY", API_KEY)
    monkeypatch.setenv("VLLM_EMBED_BASE_URL", BASE_URL)  # the app reads its server's URL
    path = tmp_path / "chroma"
    client = chromadb.PersistentClient(path=str(path))
    made = client.create_collection(
        "docs", embedding_function=VLLMEmbeddingFunction(instructions="e5")
    )
    made.add(ids=["j", "m", "v"], documents=TEXTS)
    before = made.configuration_json["embedding_function"]["config"]
    assert (before["model"], before["dimension"]) == (MODEL, DIM)
    assert before["instructions"] == {"query": "query: ", "document": "passage: "}
    client.close()  # the app is stopped while its store is migrated

    migrate(path)

    reopened = chromadb.PersistentClient(path=str(path)).get_collection("docs")
    record = reopened.configuration_json["embedding_function"]
    assert record["name"] == "vllm-embed"
    assert record["config"] == {
        **before,
        "model": NEW_MODEL,
        "dimension": NEW_DIM,
        "instructions": {"query": "", "document": ""},  # the new model's: none
    }
    # the app's server now serves the new model: queries work without passing the function
    monkeypatch.setenv("VLLM_EMBED_BASE_URL", NEW_URL)
    hits = reopened.query(query_texts=["Mars is red."], n_results=1)
    assert hits["ids"][0] == ["m"]
    # a server giving other vectors under that name is refused by name, not mixed in
    stale = VLLMEmbeddingFunction.build_from_config({**record["config"], "base_url": RENAMED_URL})
    with pytest.raises(DimensionMismatchError, match="vllm-embed migrate"):
        stale.embed_query(["Mars is red."])
