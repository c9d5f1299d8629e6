"""Shapes the migration suites repeat, written once: what a respx route embedded, a store
directory's bytes, "the server goes away mid-run, the same call resumes", and "`vllm-embed
migrate` on the live server, then a query through the store's own library".

The store itself is always made and read by its real library: the caller passes the maker
(``make(path) -> store path``) and reads the result with that library.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner, Result

from vllm_embed import EmbeddingClient, MigrationError
from vllm_embed.cli import main
from vllm_embed.migrate import MigrationOptions, migrate_store, open_store, work_dir_for

if TYPE_CHECKING:
    import respx

    from vllm_embed_testing.vllm import LiveServer

__all__ = [
    "assert_server_gone_then_resumed",
    "embedded_texts",
    "listing",
    "live_embeddings",
    "migrate_on_live_server",
]


def listing(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` (relative path -> bytes)."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def embedded_texts(route: Any) -> list[str]:
    """Every text a respx route answered with 200 on /v1/embeddings, in order."""
    out: list[str] = []
    for call in route.calls:
        if not call.request.url.path.endswith("/embeddings"):
            continue
        response = call.response if call.has_response else None
        if response is not None and response.status_code == 200:
            out.extend(json.loads(call.request.content)["input"])
    return out


def assert_server_gone_then_resumed(
    make: Callable[[Path], Path],
    folder: Path,
    route: respx.Route,
    failing_after: Callable[[respx.Route, int], None],
    client: EmbeddingClient,
    *,
    texts: Sequence[str] | None = None,
    work_dir_beside: bool = True,
) -> tuple[Path, Path]:
    """A store of 10 records made by ``make`` under ``folder/app``; the server refuses
    connections after the dimension probe and two chunks of 4: the run fails saying to run
    it again, the original is byte-identical (with the work dir beside it, when
    ``work_dir_beside``). The same call then embeds only the 2 records left (none twice; all
    of ``texts`` once, when given), keeps a byte-identical backup and removes its work dir.
    A reference store made the same way under ``folder/ref`` is migrated in one run.
    Returns ``(store, reference)``: the caller compares their contents with the library."""
    (folder / "app").mkdir()
    store = make(folder / "app")
    original = listing(store)
    failing_after(route, 1 + 8)  # the dimension probe, then two chunks of 4

    with pytest.raises(MigrationError, match="run the same command again to resume"):
        migrate_store(open_store(store), client, MigrationOptions(chunk_rows=4))
    assert listing(store) == original
    if work_dir_beside:
        assert sorted(p.name for p in store.parent.iterdir()) == sorted(
            [store.name, f"{store.name}.vllm-embed-migrate"]
        )
    finished = embedded_texts(route)[1:]
    assert len(finished) == 8

    route.side_effect = route.side_effect.answer  # type: ignore[union-attr]
    route.reset()
    result = migrate_store(open_store(store), client, MigrationOptions(chunk_rows=4))
    resumed = embedded_texts(route)
    assert (result.resumed, result.embedded_now) == (8, 2)
    assert len(resumed) == 2 and not set(resumed) & set(finished)
    if texts is not None:
        assert sorted(finished + resumed) == sorted(texts)
    assert result.backup is not None and listing(result.backup) == original
    assert not work_dir_for(store).exists()

    (folder / "ref").mkdir()
    reference = make(folder / "ref")
    migrate_store(open_store(reference), client, MigrationOptions(chunk_rows=4))
    return store, reference


def migrate_on_live_server(
    server: LiveServer, store: Path, *, described: str, old_dim: int, new_dim: int, verified: str
) -> Result:
    """``vllm-embed migrate STORE`` on the live server (key from the environment, never
    printed): it succeeds, names the format (``described``), the dimensions and what
    ``verified`` it, and leaves the ``<store>.d<old_dim>.bak`` backup beside the store."""
    result = CliRunner().invoke(
        main,
        ["migrate", str(store), "--base-url", server.base_url, "--yes"],
        env={"VLLM_EMBED_API_KEY": server.api_key},
    )
    assert result.exit_code == 0, result.output
    assert f"format: {described}" in result.output
    assert f"dimension    {old_dim} -> {new_dim}" in result.output
    assert f"verified     {verified}" in result.output
    assert (store.parent / f"{store.name}.d{old_dim}.bak").exists()
    assert server.api_key not in result.output
    return result


def live_embeddings(client: EmbeddingClient) -> Any:
    """LangChain ``Embeddings`` over a vllm-embed client (a query the store's library makes
    with the live server's vectors); langchain-core is imported on call."""
    from langchain_core.embeddings import Embeddings

    class Live(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return client.embed_documents(list(texts)).tolist()  # type: ignore[no-any-return]

        def embed_query(self, text: str) -> list[float]:
            return client.embed_query(text).tolist()  # type: ignore[no-any-return]

    return Live()
