"""The embedding-space record: round trip, differences, sidecar, probe verdicts."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from vllm_embed import EmbeddingClient, InvalidInputError, StoreFormatError
from vllm_embed.migrate import (
    EmbeddingSpace,
    judge_probe,
    read_sidecar,
    sidecar_path,
    write_sidecar,
)

SPACE = EmbeddingSpace(
    model="Qwen/Qwen3-Embedding-0.6B",
    dimension=1024,
    document_instruction="",
    query_instruction="Instruct: x\nQuery: ",
    tool_version="9.9",
    created_at="2026-01-01T00:00:00+00:00",
)


def test_round_trip_dict_and_json() -> None:
    assert EmbeddingSpace.from_dict(SPACE.to_dict()) == SPACE
    assert EmbeddingSpace.from_json(SPACE.to_json()) == SPACE
    assert SPACE.to_dict()["format_version"] == 1


def test_differences_name_each_field() -> None:
    other = EmbeddingSpace(model="BAAI/bge-m3", dimension=1024, document_instruction="passage: ")
    diffs = SPACE.differences(other)
    assert any("model" in d and "bge-m3" in d for d in diffs)
    assert any("document instruction" in d for d in diffs)
    assert not any(d.startswith("dimension") for d in diffs)
    assert SPACE.differences(SPACE) == []


@pytest.mark.parametrize(
    "bad", [{}, {"model": "m"}, {"model": 3, "dimension": 4}, {"model": "m", "dimension": "x"}]
)
def test_malformed_record_is_a_store_format_error(bad: dict[str, object]) -> None:
    with pytest.raises(StoreFormatError):
        EmbeddingSpace.from_dict(bad)


def test_sidecar_for_file_and_directory(tmp_path: Path) -> None:
    store = tmp_path / "database.json"
    store.write_text("{}")
    assert read_sidecar(store) is None
    side = write_sidecar(store, SPACE)
    assert side == tmp_path / "database.json.vllm-embed-space.json"
    assert json.loads(side.read_text())["model"] == SPACE.model
    assert read_sidecar(store) == SPACE
    folder = tmp_path / "faiss_index"
    folder.mkdir()
    assert sidecar_path(folder) == folder / "vllm-embed-space.json"
    write_sidecar(folder, SPACE)
    assert read_sidecar(folder) == SPACE
    assert not list(tmp_path.glob("*.tmp"))


def test_probe_verdicts() -> None:
    rng = np.random.default_rng(0)
    stored = rng.standard_normal((8, 32)).astype(np.float32)
    same = stored + 1e-3 * rng.standard_normal((8, 32)).astype(np.float32)
    assert judge_probe(stored, same).verdict == "same"
    other = rng.standard_normal((8, 32)).astype(np.float32)
    verdict = judge_probe(stored, other)
    assert verdict.verdict == "different"
    assert verdict.count == 8 and "mean cosine" in verdict.describe()
    su = stored / np.linalg.norm(stored, axis=1, keepdims=True)
    ou = other - (other * su).sum(axis=1, keepdims=True) * su  # orthogonal to stored
    ou /= np.linalg.norm(ou, axis=1, keepdims=True)
    mixed = 0.94 * su + np.sqrt(1 - 0.94**2) * ou  # cosine 0.94 with every stored row
    assert judge_probe(stored, mixed).verdict == "unsure"
    with pytest.raises(InvalidInputError):
        judge_probe(stored, other[:, :16])


def test_client_reports_instructions_without_io() -> None:
    client = EmbeddingClient("http://127.0.0.1:9/v1", instructions="e5")
    instr = client.instructions_for("intfloat/e5-base-v2")
    assert instr.document and instr.query
    assert client.normalize is False
    client.close()


# The record's bytes are pinned: stores written by an older release must stay readable
# and compare equal (``doctor --store``), so the refactors of the space keep them.
SPACE_JSON = (
    '{"created_at": "2026-01-01T00:00:00+00:00", "dimension": 1024, "document_instruction": "",'
    ' "format_version": 1, "model": "Qwen/Qwen3-Embedding-0.6B", "normalized": true,'
    ' "query_instruction": "Instruct: x\\nQuery: ", "tool": "vllm-embed", "tool_version": "9.9"}'
)
SIDECAR_TEXT = """{
  "created_at": "2026-01-01T00:00:00+00:00",
  "dimension": 1024,
  "document_instruction": "",
  "format_version": 1,
  "model": "Qwen/Qwen3-Embedding-0.6B",
  "normalized": true,
  "query_instruction": "Instruct: x\\nQuery: ",
  "tool": "vllm-embed",
  "tool_version": "9.9"
}
"""


def test_record_bytes_are_pinned(tmp_path: Path) -> None:
    assert SPACE.to_json() == SPACE_JSON
    assert write_sidecar(tmp_path / "s.json", SPACE).read_text(encoding="utf-8") == SIDECAR_TEXT


def test_space_of_client_is_the_client_record(fake_vllm: object) -> None:
    from vllm_embed import __version__
    from vllm_embed.migrate import space_of_client
    from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM, MODEL

    with EmbeddingClient(BASE_URL, api_key=API_KEY, instructions="e5") as client:
        record = space_of_client(client, normalized=False).to_dict()
    stamp = record.pop("created_at")
    assert datetime.fromisoformat(stamp).tzinfo is not None
    assert record == {
        "dimension": DIM,
        "document_instruction": "passage: ",
        "format_version": 1,
        "model": MODEL,
        "normalized": False,
        "query_instruction": "query: ",
        "tool": "vllm-embed",
        "tool_version": __version__,
    }


@pytest.mark.parametrize(
    ("kind", "document"), [("document", "passage: "), ("query", "query: "), ("raw", "")]
)
def test_migrated_store_record_bytes(
    tmp_path: Path, fake_vllm: object, kind: str, document: str
) -> None:
    """The record a migration writes (no timestamp: a resumed run writes the same bytes)."""
    from migrate_support import make_langchain_store

    from vllm_embed import __version__
    from vllm_embed.migrate import MigrationOptions, migrate_store, open_store
    from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM, MODEL

    path = make_langchain_store(tmp_path / "lc.json")
    with EmbeddingClient(BASE_URL, api_key=API_KEY, instructions="e5") as client:
        migrate_store(open_store(path), client, MigrationOptions(kind=kind))  # type: ignore[arg-type]
    side = tmp_path / "lc.json.vllm-embed-space.json"
    want = (
        "{\n"
        '  "created_at": "",\n'
        f'  "dimension": {DIM},\n'
        f'  "document_instruction": "{document}",\n'
        '  "format_version": 1,\n'
        f'  "model": "{MODEL}",\n'
        '  "normalized": true,\n'
        '  "query_instruction": "query: ",\n'
        '  "tool": "vllm-embed",\n'
        f'  "tool_version": "{__version__}"\n'
        "}\n"
    )
    assert side.read_text(encoding="utf-8") == want


def test_client_space_is_the_options_without_io() -> None:
    """``space_for``: the one place a client's space is built (unreachable server: no I/O)."""
    from vllm_embed._space import ClientSpace

    with EmbeddingClient(
        "http://127.0.0.1:9/v1", instructions="e5", dimensions=64, normalize=True, truncate="error"
    ) as client:
        space = client.space_for("intfloat/e5-base-v2", 512)
    assert space == ClientSpace(
        model="intfloat/e5-base-v2",
        document_instruction="passage: ",
        query_instruction="query: ",
        dimensions=64,
        client_side_dimensions=False,
        normalize=True,
        truncate="error",
        limit=511,
    )
    assert [space.instruction(r) for r in ("document", "query", "raw", "messages")] == [
        "passage: ",
        "query: ",
        "",
        "",
    ]
    record = space.record(64, role="query", normalized=True)
    assert (record.document_instruction, record.query_instruction) == ("query: ", "query: ")
    assert (record.model, record.dimension, record.created_at) == (space.model, 64, "")
