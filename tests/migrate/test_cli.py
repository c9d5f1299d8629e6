"""``vllm-embed migrate`` in-process (CliRunner) against the respx-mounted fake vLLM."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from migrate_support import (
    OLD_DIM,
    embedded_texts,
    make_content_store,
    make_dvd_store,
    make_langchain_faiss,
    make_llamaindex_store,
)

from vllm_embed.cli import main
from vllm_embed.migrate import work_dir_for
from vllm_embed_testing.respx_vllm import API_KEY, BASE_URL, DIM, MODEL


@pytest.fixture(autouse=True)
def _no_retry_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connection retries would wait seconds; the test only needs their outcome."""
    monkeypatch.setattr("time.sleep", lambda seconds: None)


def _run(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["migrate", *args], env=env, catch_exceptions=False)


def _server_args() -> list[str]:
    return ["--base-url", BASE_URL, "--api-key", API_KEY]


def test_migrates_in_place_and_prints_a_summary(tmp_path, fake_vllm):
    path = make_dvd_store(tmp_path / "database.json", n=10)
    original = path.read_bytes()
    result = _run(str(path), *_server_args(), "--yes")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "migrated     nano-vectordb (DVD database.json)" in out
    assert "records      10" in out
    assert f"dimension    {OLD_DIM} -> {DIM}" in out
    assert "records/s" in out
    assert "truncated    0 inputs" in out
    assert "verified     nano-vectordb" in out
    backup = tmp_path / f"database.d{OLD_DIM}.bak.json"
    assert f"backup       {backup}" in out
    assert backup.read_bytes() == original
    assert json.loads(path.read_bytes())["embedding_dim"] == DIM
    # the detected format is printed before work starts; plain progress lines off a TTY
    assert "format: nano-vectordb (DVD database.json); 10 records; text from caption" in (
        result.stderr
    )
    assert "embedded 10/10 (100%)" in result.stderr
    assert API_KEY not in result.output


def test_api_key_from_the_environment(tmp_path, fake_vllm):
    path = make_dvd_store(tmp_path / "database.json", n=3)
    result = _run(str(path), "--base-url", BASE_URL, env={"VLLM_EMBED_API_KEY": API_KEY})
    assert result.exit_code == 0, result.output
    auth = {c.request.headers.get("authorization") for c in fake_vllm.calls}
    assert auth == {f"Bearer {API_KEY}"}
    assert API_KEY not in result.output


def test_wrong_key_is_a_clear_error_without_the_key(tmp_path, fake_vllm):
    path = make_dvd_store(tmp_path / "database.json", n=3)
    original = path.read_bytes()
    result = _run(str(path), "--base-url", BASE_URL, "--api-key", "sk-wrong-secret-999")
    assert result.exit_code == 1
    assert "\nError: " in result.stderr
    assert "sk-wrong-secret-999" not in result.output
    assert path.read_bytes() == original


def test_dry_run_writes_nothing(tmp_path, fake_vllm):
    path = make_dvd_store(tmp_path / "database.json", n=10)
    before = sorted(tmp_path.iterdir())
    result = _run(str(path), *_server_args(), "--dry-run")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "format       nano-vectordb (DVD database.json)" in out
    assert "records      10 (0 without text)" in out
    assert "text field   caption" in out
    assert f"dimension    {OLD_DIM} -> {DIM} (probed, model {MODEL})" in out
    assert "estimate     ~" in out and "probe: 10 records" in out
    assert "dry run: nothing written" in out
    assert sorted(tmp_path.iterdir()) == before


def test_missing_text_stops_before_any_request(tmp_path, fake_vllm):
    path = make_dvd_store(tmp_path / "database.json", n=6)
    document = json.loads(path.read_bytes())
    document["data"][4]["caption"] = ""
    path.write_text(json.dumps(document), encoding="utf-8")
    result = _run(str(path), *_server_args())
    assert result.exit_code == 1
    assert "1 of 6 records" in result.stderr and "'clip-4'" in result.stderr
    assert "--drop-missing-text" in result.stderr
    assert embedded_texts(fake_vllm) == []
    assert fake_vllm.call_count == 0

    dropped = _run(str(path), *_server_args(), "--drop-missing-text")
    assert dropped.exit_code == 0, dropped.output
    assert "records      5, 1 dropped" in dropped.stdout


def test_server_gone_exits_non_zero_and_resumes(tmp_path, fake_vllm, failing_after):
    path = make_dvd_store(tmp_path / "database.json", n=10)
    original = path.read_bytes()
    failing_after(fake_vllm, 1)  # only the dimension probe gets through
    result = _run(str(path), *_server_args())
    assert result.exit_code == 1
    assert "run the same command again to resume" in result.stderr
    assert "Traceback" not in result.output
    assert path.read_bytes() == original
    assert work_dir_for(path).is_dir()


def test_update_config_toml_keeps_comments(tmp_path, fake_vllm):
    path = make_dvd_store(tmp_path / "database.json", n=3)
    config = tmp_path / "config.toml"
    config.write_text(
        "# kano backlog config\n"
        "[embedding]\n"
        'provider = "openai"\n'
        f'model = "old-model"  # the previous model\n'
        f"dimension = {OLD_DIM}\n"
        f'base_url = "{BASE_URL}"\n'
        f'api_key = "{API_KEY}"\n'
        "\n[vector]\n"
        'backend = "sqlite"\n',
        encoding="utf-8",
    )
    result = _run(
        str(path), "--config", str(config), "--model", MODEL, "--update-config", str(config)
    )
    assert result.exit_code == 0, result.output
    text = config.read_text(encoding="utf-8")
    assert text == (
        "# kano backlog config\n"
        "[embedding]\n"
        'provider = "openai"\n'
        f'model = "{MODEL}"  # the previous model\n'
        f"dimension = {DIM}\n"
        f'base_url = "{BASE_URL}"\n'
        f'api_key = "{API_KEY}"\n'
        "\n[vector]\n"
        'backend = "sqlite"\n'
    )
    assert f"dimension: {OLD_DIM} -> {DIM}" in result.stdout
    assert API_KEY not in result.output


def test_update_config_python_prints_the_lines(tmp_path, fake_vllm):
    path = make_dvd_store(tmp_path / "database.json", n=3)
    config = tmp_path / "config.py"
    source = (
        'SERVER = "VLLM"\n'
        "if SERVER == 'VLLM':\n"
        f'    EMBEDDING_ENDPOINT = "{BASE_URL}"\n'
        '    AOAI_EMBEDDING_LARGE_MODEL_NAME = "Qwen/Qwen3-Embedding-8B"\n'
        f"    AOAI_EMBEDDING_LARGE_DIM = {OLD_DIM}  # see the model table\n"
    )
    config.write_text(source, encoding="utf-8")
    result = _run(str(path), *_server_args(), "--update-config", str(config))
    assert result.exit_code == 0, result.output
    assert config.read_text(encoding="utf-8") == source  # code is never edited
    out = result.stdout
    assert "is Python code and was not edited" in out
    assert f"line 5: AOAI_EMBEDDING_LARGE_DIM = {OLD_DIM}  # see the model table" in out
    assert f"-> AOAI_EMBEDDING_LARGE_DIM = {DIM}  # see the model table" in out
    assert f'-> AOAI_EMBEDDING_LARGE_MODEL_NAME = "{MODEL}"' in out


def test_update_config_without_a_dimension_stops_first(tmp_path, fake_vllm):
    path = make_dvd_store(tmp_path / "database.json", n=3)
    original = path.read_bytes()
    config = tmp_path / "app.json"
    config.write_text(json.dumps({"embedder": {"base_url": BASE_URL}}), encoding="utf-8")
    result = _run(str(path), *_server_args(), "--update-config", str(config))
    assert result.exit_code == 1
    assert "declares no dimension in embedder" in result.stderr
    assert fake_vllm.call_count == 0
    assert path.read_bytes() == original


def test_llamaindex_out_directory(tmp_path, fake_vllm):
    directory = make_llamaindex_store(tmp_path / "storage")
    out = tmp_path / "storage-384"
    result = _run(str(directory), *_server_args(), "--out", str(out))
    assert result.exit_code == 0, result.output
    # the same files, plus the record of the new embedding space
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted([*(p.name for p in directory.iterdir()), "vllm-embed-space.json"])
    vectors = json.loads((out / "default__vector_store.json").read_bytes())["embedding_dict"]
    assert {len(v) for v in vectors.values()} == {DIM}
    assert "backup" not in result.stdout


def test_unknown_format_exit_code(tmp_path, fake_vllm):
    path = tmp_path / "x.json"
    path.write_text('{"a": 1}')
    result = _run(str(path), *_server_args())
    assert result.exit_code == 1
    assert "unknown store format" in result.stderr
    assert fake_vllm.call_count == 0


def test_help_lists_the_options():
    result = CliRunner().invoke(main, ["migrate", "--help"])
    assert result.exit_code == 0
    for option in (
        "--config",
        "--section",
        "--base-url",
        "--model",
        "--api-key",
        "--dimensions",
        "--out",
        "--text-field",
        "--drop-missing-text",
        "--allow-dangerous-deserialization",
        "--dry-run",
        "--update-config",
        "--batch-size",
        "--yes",
    ):
        assert option in result.output


def test_update_config_json_keeps_order_and_indent(tmp_path, fake_vllm):
    path = make_dvd_store(tmp_path / "database.json", n=3)
    config = tmp_path / "app.json"
    document = {
        "pdf_knowledge": {
            "name": "kb",
            "embedder": {"type": "openai", "model": "old", "dimension": OLD_DIM, "timeout": 30},
            "chunking": {"size": 512},
        }
    }
    config.write_text(json.dumps(document, indent=4) + "\n", encoding="utf-8")
    result = _run(str(path), *_server_args(), "--update-config", str(config))
    assert result.exit_code == 0, result.output
    document["pdf_knowledge"]["embedder"].update(model=MODEL, dimension=DIM)  # type: ignore[attr-defined]
    assert config.read_text(encoding="utf-8") == json.dumps(document, indent=4) + "\n"


def test_paths_with_spaces(tmp_path: Path, fake_vllm):
    directory = tmp_path / "my videos"
    directory.mkdir()
    path = make_dvd_store(directory / "database.json", n=2)
    result = _run(str(path), *_server_args())
    assert result.exit_code == 0, result.output


def test_progress_reporters_count_rate_and_eta(capsys):
    from vllm_embed.cli.migrate import _BarProgress, _LineProgress

    bar = _BarProgress()
    bar.start(total=10, done=4)
    bar.advance(6)
    assert (bar._bar.n, bar._bar.total) == (10, 10)
    bar.close()
    assert "10/10" in capsys.readouterr().err

    lines = _LineProgress(every=0.0)
    lines.start(total=8, done=2)
    lines.advance(3)
    lines.advance(3)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "resuming: 2/8 records already embedded"
    assert err[1].startswith("embedded 5/8 (62%)") and "rec/s, ETA" in err[1]
    assert err[2].startswith("embedded 8/8 (100%)")


def test_second_migration_with_cache_costs_no_server_time(tmp_path, fake_vllm):
    cache = str(tmp_path / "migrate-cache.sqlite")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = make_dvd_store(tmp_path / "a" / "database.json", n=12)
    result = _run(str(first), *_server_args(), "--cache", cache, "--yes")
    assert result.exit_code == 0, result.output
    assert re.search(r"cache +\d+ texts from the cache, 1[23] embedded", result.stdout)
    embedded = len(embedded_texts(fake_vllm))
    # the same texts in another store of the app (or a re-run): nothing re-embedded
    second = make_dvd_store(tmp_path / "b" / "database.json", n=12)
    result = _run(str(second), *_server_args(), "--cache", cache, "--yes")
    assert result.exit_code == 0, result.output
    assert re.search(r"cache +1[23] texts from the cache, 0 embedded", result.stdout)
    assert len(embedded_texts(fake_vllm)) - embedded <= 1  # at most the model probe
    assert json.loads(second.read_bytes())["data"] == json.loads(first.read_bytes())["data"]


def test_faiss_folder_needs_the_consent_flag(tmp_path, fake_vllm):
    folder = make_langchain_faiss(tmp_path / "faiss_index", n=6)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    refused = CliRunner().invoke(main, ["migrate", str(folder), *_server_args(), "--yes"])
    assert refused.exit_code == 1
    assert "--allow-dangerous-deserialization" in refused.output
    assert "runs code" in refused.output
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert fake_vllm.call_count == 0

    result = _run(str(folder), *_server_args(), "--allow-dangerous-deserialization", "--yes")
    assert result.exit_code == 0, result.output
    assert "format: LangChain FAISS (save_local); 6 records" in result.output
    assert f"dimension    {OLD_DIM} -> {DIM}" in result.output
    assert "verified     langchain-community FAISS" in result.output


def test_generic_store_says_which_field_it_chose(tmp_path, fake_vllm):
    path = make_content_store(tmp_path / "kb.json")
    result = _run(str(path), *_server_args(), "--yes")
    assert result.exit_code == 0, result.output
    assert "text from content (the only string field present in every record" in result.output


@pytest.mark.parametrize(
    ("option", "why"),
    [
        (["--table", "docs"], "picks tables of a postgresql:// database"),
        (["--id-column", "id"], "names a column of a Postgres table"),
        (["--text-column", "body"], "names a column of a Postgres table"),
        (["--vector-column", "v"], "names a column of a Postgres table"),
        (["--drop-backup"], "drops the backup tables"),
        (["--lock-timeout", "9"], "bounds the wait for a Postgres lock"),
    ],
)
def test_a_postgres_option_with_a_file_store_is_a_usage_error(tmp_path, option, why):
    """Postgres-only options are refused for a file store, naming the option and why;
    nothing is read or written (the fake server is not even mounted)."""
    path = make_dvd_store(tmp_path / "database.json", n=4)
    original = path.read_bytes()
    result = _run(str(path), *_server_args(), *option, "--yes")
    assert result.exit_code == 2, result.output
    assert f"{option[0]} applies only to Postgres" in result.stderr
    assert why in result.stderr and "a file store" in result.stderr
    assert path.read_bytes() == original
    assert not list(tmp_path.glob("*.bak*"))


@pytest.mark.parametrize(
    ("option", "why"),
    [
        (["--out", "new.json"], "switched in place"),
        (["--text-field", "body"], "--text-column"),
        (["--vector-name", "dense"], "--vector-column"),
        (["--update-config", "app.toml"], "record their new embedding space"),
        (["--allow-dangerous-deserialization"], "holds no pickle"),
        (["--drop-missing-text"], "embedded as an empty text"),
    ],
)
def test_a_file_store_option_with_a_postgres_url_is_a_usage_error(option, why):
    """File-store options are refused for a postgresql:// URL before any connection (the
    URL points at a port nothing listens on: a connection attempt would fail otherwise)."""
    url = "postgresql://someone:s3cret@127.0.0.1:1/db"
    result = _run(url, *_server_args(), *option, "--yes")
    assert result.exit_code == 2, result.output
    assert f"{option[0]} applies only to file stores" in result.stderr
    assert why in result.stderr and "a postgresql:// URL" in result.stderr
    assert "s3cret" not in result.output


def test_options_both_engines_read_pass_the_usage_check():
    """--collection, --dimensions, --batch-size, --dry-run apply to Postgres too: no usage
    error; the command goes on to connect (and fails on the closed port, exit 1)."""
    url = "postgresql://someone:s3cret@127.0.0.1:1/db"
    args = ["--collection", "a", "--dimensions", "8", "--batch-size", "2", "--dry-run"]
    result = _run(url, *_server_args(), *args)
    assert result.exit_code == 1, result.output
    assert "applies only" not in result.output and "s3cret" not in result.output
