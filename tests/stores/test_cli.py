"""``vllm-embed migrate`` on a Chroma directory and a kano index (CliRunner, fake vLLM)."""

from __future__ import annotations

from click.testing import CliRunner
from stores_support import OLD_DIM, embedded_texts, listing, make_kano_index, make_plain_chroma

from vllm_embed.cli import main
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM


def _run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(
        main, ["migrate", *args, "--base-url", BASE_URL, "--api-key", API_KEY, "--yes"]
    )


def test_collection_flag_migrates_one_collection(tmp_path, fake_vllm):
    db = make_plain_chroma(tmp_path / "db")
    result = _run(str(db), "--collection", "other")
    assert result.exit_code == 0, result.output
    assert "format: Chroma (other); 2 records; text from document" in result.stderr
    assert f"dimension    {OLD_DIM} -> {DIM}" in result.stdout
    assert "verified     vllm-embed, chromadb" in result.stdout
    assert f"backup       {tmp_path / f'db.d{OLD_DIM}.bak'}" in result.stdout
    assert embedded_texts(fake_vllm)[1:] == ["x one", "x two"]
    assert API_KEY not in result.output


def test_unknown_collection_exits_non_zero_and_writes_nothing(tmp_path, fake_vllm):
    db = make_plain_chroma(tmp_path / "db")
    before = listing(db)
    result = _run(str(db), "--collection", "nope")
    assert result.exit_code != 0
    assert "no collection 'nope'; collections: notes, other" in result.output
    assert listing(db) == before and embedded_texts(fake_vllm) == []


def test_kano_output_is_the_new_file_name(tmp_path, fake_vllm):
    db = make_kano_index(tmp_path / ".cache" / "vectors")
    result = _run(str(db.parent))
    assert result.exit_code == 0, result.output
    assert "format: kano-backlog SQLite index (binary; repo_chunks)" in result.stderr
    migrated = [p for p in db.parent.glob("repo_chunks.*.sqlite3") if ".bak" not in p.name]
    assert len(migrated) == 1 and migrated[0] != db
    assert f"migrated     kano-backlog SQLite index (binary; repo_chunks): {migrated[0]}" in (
        result.stdout
    )
