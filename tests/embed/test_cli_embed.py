"""`vllm-embed embed`, the core job: JSONL / Parquet in, Parquet parts out, against fake
servers over HTTP (CliRunner in-process): equal to the plain client, resume after an
interruption, bad rows named, --api-key, --cache, and --ray without the package (the job on
a Ray cluster: tests/ray/test_cli_embed_ray.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from embed_support import DIM, read, run, vectors, write_jsonl, write_parquet

from vllm_embed import EmbeddingClient
from vllm_embed_testing.fake_server import FakeEmbeddingServer, fake_vector


@pytest.mark.servers(2)
def test_jsonl_to_parquet_parts_equal_the_plain_client(
    tmp_path: Path, fake_servers: list[FakeEmbeddingServer]
) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", 2500)
    out = tmp_path / "out"
    urls = [a for s in fake_servers for a in ("--base-url", s.base_url)]
    result = run(src, out, "--column", "body", "--part-rows", "1000", *urls)
    assert result.exit_code == 0, result.output
    assert "embedded 2500 rows" in result.output
    assert "row/s" in result.output  # the progress bar's rate
    assert sorted(p.name for p in out.glob("part-*")) == [
        "part-00000-00000.parquet",
        "part-00000-00001.parquet",
        "part-00000-00002.parquet",
    ]
    table = read(out)
    assert table.column_names == ["id", "body", "lang", "embedding"]
    assert table.column("id").to_pylist() == list(range(2500))
    with EmbeddingClient([s.base_url for s in fake_servers]) as client:
        expected = client.embed_documents(table.column("body").to_pylist())
    np.testing.assert_array_equal(vectors(table), expected)
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["complete"] is True
    assert sum(p["rows"] for p in manifest["parts"].values()) == 2500


@pytest.mark.servers(1)
def test_parquet_input_role_query(tmp_path: Path, fake_servers: list[FakeEmbeddingServer]) -> None:
    src = write_parquet(tmp_path / "in.parquet", 300)
    out = tmp_path / "out"
    url = fake_servers[0].base_url
    result = run(src, out, "--column", "body", "--role", "raw", "--base-url", url, "-q")
    assert result.exit_code == 0, result.output
    table = read(out)
    got = vectors(table)
    np.testing.assert_array_equal(got[299], fake_vector("text number 299", DIM))


def test_an_interrupted_job_resumes_where_it_stopped(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", 3000)
    out = tmp_path / "out"
    # 40 requests of 64 texts = 2560 rows: parts 0 and 1 finish, part 2 does not
    with FakeEmbeddingServer(dim=DIM, fail_after=40, fail_mode=500) as flaky:
        first = run(
            src, out, "--column", "body", "--part-rows", "1000", "--batch-size", "64",
            "--base-url", flaky.base_url, "-q",
        )  # fmt: skip
    assert first.exit_code == 1
    assert "Error:" in first.output
    manifest = json.loads((out / "_manifest.json").read_text())
    assert sorted(manifest["parts"]) == ["part-00000-00000.parquet", "part-00000-00001.parquet"]
    assert manifest["complete"] is False
    assert not (out / "part-00000-00002.parquet").exists()

    with FakeEmbeddingServer(dim=DIM) as good:
        second = run(
            src, out, "--column", "body", "--part-rows", "1000", "--base-url", good.base_url
        )
        served = good.stats()["vectors"]
    assert second.exit_code == 0, second.output
    assert "resuming: 2000/3000" in second.output
    assert served == 1000  # only the unfinished part was embedded again
    table = read(out)
    assert table.column("id").to_pylist() == list(range(3000))
    got = vectors(table)
    for i in (0, 1999, 2000, 2999):
        np.testing.assert_array_equal(got[i], fake_vector(f"text number {i}", DIM))

    # other settings are refused rather than mixed into the same output
    with FakeEmbeddingServer(dim=DIM) as good:
        third = run(src, out, "--column", "body", "--part-rows", "500", "--base-url", good.base_url)
    assert third.exit_code == 1
    assert "part_rows" in third.output and "new OUTPUT" in third.output


@pytest.mark.servers(1)
def test_a_bad_row_is_named_by_file_and_line(
    tmp_path: Path, fake_servers: list[FakeEmbeddingServer]
) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", 50, bad={10: None, 20: 7})
    url = fake_servers[0].base_url
    result = run(src, tmp_path / "out", "--column", "body", "--base-url", url, "-q")
    assert result.exit_code == 1
    assert "in.jsonl line 12" in result.output  # row 10 sits on line 12 (after a blank line)
    assert "--on-bad-row drop" in result.output

    dropped = run(
        src, tmp_path / "out2", "--column", "body", "--base-url", url, "--on-bad-row", "drop", "-q"
    )
    assert dropped.exit_code == 0, dropped.output
    assert "2 bad row(s) dropped" in dropped.output
    ids = read(tmp_path / "out2").column("id").to_pylist()
    assert ids == [i for i in range(50) if i not in (10, 20)]


def test_api_key_option_is_sent_and_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--api-key (shared with migrate and doctor) reaches the server; never the output."""
    monkeypatch.delenv("VLLM_EMBED_API_KEY", raising=False)
    key = "sk-embed-cli-secret-42"
    src = write_jsonl(tmp_path / "in.jsonl", 20)
    with FakeEmbeddingServer(dim=DIM, api_key=key) as locked:
        refused = run(src, tmp_path / "a", "--column", "body", "--base-url", locked.base_url)
        result = run(
            src, tmp_path / "b", "--column", "body", "--base-url", locked.base_url,
            "--api-key", key, "-q",
        )  # fmt: skip
    assert refused.exit_code == 1 and "401" in refused.output
    assert result.exit_code == 0, result.output
    assert "embedded 20 rows" in result.output
    assert key not in result.output and key not in refused.output
    np.testing.assert_array_equal(
        vectors(read(tmp_path / "b"))[7], fake_vector("text number 7", DIM)
    )


def test_cache_option_serves_a_second_corpus_run_from_the_cache(tmp_path: Path) -> None:
    """--cache (shared with migrate): the same texts embedded again cost no server time."""
    src = write_jsonl(tmp_path / "in.jsonl", 30)
    cache = tmp_path / "cache.sqlite"
    with FakeEmbeddingServer(dim=DIM) as server:
        first = run(
            src, tmp_path / "a", "--column", "body", "--base-url", server.base_url,
            "--cache", cache, "-q",
        )  # fmt: skip
        after_first = server.stats()["vectors"]
        second = run(
            src, tmp_path / "b", "--column", "body", "--base-url", server.base_url,
            "--cache", cache, "-q",
        )  # fmt: skip
        after_second = server.stats()["vectors"]
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert cache.exists() and after_first == 31  # 30 rows + the cache's model probe
    # the second run re-checks the model with that one probe; its 30 rows are cache hits
    assert after_second - after_first == 1
    np.testing.assert_array_equal(vectors(read(tmp_path / "b")), vectors(read(tmp_path / "a")))


def test_ray_without_the_package_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm_embed_ray", None)
    src = write_jsonl(tmp_path / "in.jsonl", 3)
    result = run(src, tmp_path / "out", "--base-url", "http://127.0.0.1:9/v1", "--ray")
    assert result.exit_code == 1
    assert "pip install vllm-embed-ray" in result.output
