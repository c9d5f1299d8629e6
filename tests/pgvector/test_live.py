"""The three layouts migrated on the live vLLM CPU server, then queried through the real
library with the live server embedding the query: the expected neighbour comes back."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner
from pgvector_support import OLD_DIM, corpus, lightrag_tables, sql

from vllm_embed import EmbeddingClient
from vllm_embed.cli import main
from vllm_embed_testing.vllm import LiveServer


def migrate_live(url: str, server: LiveServer, *extra: str) -> str:
    result = CliRunner().invoke(
        main,
        ["migrate", url, "--base-url", server.base_url, "--api-key", server.api_key, "-y", *extra],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert server.api_key not in result.output
    return result.output


def recorded(url: str) -> tuple[str, int]:
    row = sql(url, "SELECT space->>'model', (space->>'dimension')::int FROM vllm_embed_spaces")
    return str(row[0][0]), int(row[0][1])


@pytest.fixture
def live(vllm_server: LiveServer) -> LiveServer:
    return vllm_server


def test_langchain_live(db: str, live: LiveServer, run_app: Any) -> None:
    texts = corpus(60)
    run_app("lc_create", url=db, collections={"docs": texts}, dim=OLD_DIM, typed=True)
    out = migrate_live(db, live)
    assert "langchain public.langchain_pg_embedding" in out
    assert recorded(db) == (live.model, 384)
    wanted = [texts[i] for i in (1, 30, 59)]
    found = run_app(
        "lc_query",
        url=db,
        collection="docs",
        queries=wanted,
        base_url=live.base_url,
        api_key=live.api_key,
    )
    assert found == wanted


def test_llamaindex_live(db: str, live: LiveServer) -> None:
    from pg_apps import li_create, li_query

    texts = corpus(60)
    made = li_create({"url": db, "table": "docs", "texts": texts, "dim": OLD_DIM})
    migrate_live(db, live, "--table", "data_docs")
    assert recorded(db) == (live.model, 384)
    queries = [made["embed_texts"][i] for i in (2, 41)]
    args = {"url": db, "table": "docs", "dim": 384, "queries": queries}
    found = li_query({**args, "base_url": live.base_url, "api_key": live.api_key})
    assert found == [texts[2], texts[41]]


def test_lightrag_live(db: str, live: LiveServer) -> None:
    names = lightrag_tables(db, 40, suffix="_old_model_8d")
    out = migrate_live(db, live)
    for name in names:
        assert f"lightrag   public.{name}" in out
    chunks = names[0]
    text = sql(db, f"SELECT content FROM {chunks} WHERE id = 'lightrag_vdb_chunks-9'")[0][0]
    with EmbeddingClient(live.base_url, api_key=live.api_key) as client:
        query = client.embed_query(text)
    top = sql(
        db,
        f"SELECT id FROM {chunks} ORDER BY content_vector <=> %s::vector LIMIT 1",
        [str(query.tolist())],
    )
    assert top == [("lightrag_vdb_chunks-9",)]
