"""`vllm-embed doctor` against respx-mocked servers: one PASS/FAIL line per check."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import respx
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vllm_embed.cli import main
from vllm_embed_testing.respx_vllm import FakeServer

ROOT = "http://vllm.test:8000"
BASE_URL = ROOT + "/v1"

#: the config readers' fixtures (tests/config)
FIXTURES = Path(__file__).parents[1] / "config" / "fixtures"
KANO = FIXTURES / "kano_backlog_config.toml"
KEY_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-_"


def key_like(text: str) -> bool:
    """Letters and digits mixed, like a real key (so it cannot be a word of the report)."""
    return any(c.isdigit() for c in text) and any(c.isalpha() for c in text)


def mock_vllm(router: respx.MockRouter, **settings: object) -> FakeServer:
    """The project's fake vLLM at BASE_URL as the doctor tests want it by default: MiniLM
    (dimension 384, max_model_len 256) served as ``minilm``, not Matryoshka."""
    defaults: dict[str, object] = {"dim": 384, "models": ["minilm"], "max_model_len": 256}
    return FakeServer(router, base=ROOT, **{**defaults, **settings})  # type: ignore[arg-type]


def sent_auth(server: FakeServer) -> list[str | None]:
    """The Authorization header of every request the server answered."""
    return [request.headers.get("authorization") for request in server.requests]


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["doctor", *args])


def lines_for(result: Result, check: str) -> str:
    """The status line of one check (``  PASS  name  detail``)."""
    return next(
        line
        for line in result.output.splitlines()
        if line.split()[:1] in (["PASS"], ["FAIL"], ["WARN"], ["SKIP"]) and check in line
    )


def write_config(tmp_path: Path, *, dimension: int | None = 384, key: str | None = None) -> Path:
    lines = ["[embedding]", 'provider = "openai"', 'model = "minilm"', f'base_url = "{BASE_URL}"']
    if dimension is not None:
        lines.append(f"dimension = {dimension}")
    if key is not None:
        lines.append(f'api_key = "{key}"')
    lines += ["", "[vector]", 'backend = "nano-vectordb"', 'path = "data/notes db.json"']
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_every_check_passes_against_a_matching_server(tmp_path: Path) -> None:
    key = "sk-live-0123456789abcdef"
    with respx.mock(assert_all_called=False) as router:
        server = mock_vllm(router, api_key=key)
        result = run(str(write_config(tmp_path, key=key)))
    assert result.exit_code == 0, result.output
    for check in ("server reachable", "API key accepted", "model served", "dimension",
                  "max_model_len", "round trip"):  # fmt: skip
        assert lines_for(result, check).lstrip().startswith("PASS"), result.output
    assert "vLLM 0.32.0" in lines_for(result, "server reachable")
    assert "384, as declared" in lines_for(result, "dimension")
    assert "256 tokens" in lines_for(result, "max_model_len")
    assert " ms" in lines_for(result, "round trip")
    assert "All checks passed." in result.output
    assert key not in result.output
    assert f"Bearer {key}" in sent_auth(server)  # the key was really sent


def test_backlog_config_wrong_dimension_names_the_store_and_the_migrate_command() -> None:
    """kano-backlog's config declares 1024 (bge-large-zh); the server produces 384."""
    with respx.mock(assert_all_called=False) as router:
        mock_vllm(router, models=["BAAI/bge-large-zh-v1.5"])
        result = run(str(KANO), "--base-url", BASE_URL)
    assert result.exit_code == 1, result.output
    line = lines_for(result, "dimension")
    assert line.lstrip().startswith("FAIL")
    assert "declares 1024" in line and "produces 384" in line
    assert ".cache/vector" in line
    assert f"vllm-embed migrate .cache/vector --config {KANO}" in result.output
    assert "dummy-key" not in result.output
    assert "1 check(s) failed." in result.output


def test_migrate_command_quotes_paths_and_keeps_the_section(tmp_path: Path) -> None:
    path = write_config(tmp_path, dimension=1024)
    with respx.mock(assert_all_called=False) as router:
        mock_vllm(router)
        result = run(str(path), "--section", "embedding")
    assert result.exit_code == 1
    assert f"vllm-embed migrate 'data/notes db.json' --config {path} --section embedding" in (
        result.output
    )


def test_wrong_key_fails_without_printing_either_key(tmp_path: Path) -> None:
    right, wrong = "right-key-6f1c2a9e", "wrong-key-0b7d3e41"
    with respx.mock(assert_all_called=False) as router:
        mock_vllm(router, api_key=right)
        result = run(str(write_config(tmp_path, key=wrong)))
    assert result.exit_code == 1
    line = lines_for(result, "API key accepted")
    assert line.lstrip().startswith("FAIL") and "refused" in line
    assert "api_key" in result.output and "fix:" in result.output
    assert lines_for(result, "model served").lstrip().startswith("SKIP")
    assert right not in result.output and wrong not in result.output


def test_missing_key_says_none_was_sent(tmp_path: Path) -> None:
    with respx.mock(assert_all_called=False) as router:
        mock_vllm(router, api_key="needed-key-123")
        result = run(str(write_config(tmp_path)))
    assert result.exit_code == 1
    assert "no key was sent" in lines_for(result, "API key accepted")


def test_model_not_served_lists_what_is(tmp_path: Path) -> None:
    with respx.mock(assert_all_called=False) as router:
        mock_vllm(router, models=["minilm", "e5-small"])
        result = run(str(KANO), "--base-url", BASE_URL)
    assert result.exit_code == 1
    line = lines_for(result, "model served")
    assert "'BAAI/bge-large-zh-v1.5' is not served" in line
    assert "'minilm', 'e5-small'" in line
    assert "embedding.model" in result.output  # the fix names the key to change
    assert lines_for(result, "round trip").lstrip().startswith("SKIP")


def test_unreachable_server_fails_first_and_skips_the_rest() -> None:
    with respx.mock(assert_all_called=False) as router:
        router.route(host="vllm.test").mock(side_effect=httpx.ConnectError("refused"))
        result = run("--base-url", BASE_URL, "--model", "minilm")
    assert result.exit_code == 1
    assert lines_for(result, "server reachable").lstrip().startswith("FAIL")
    assert "Start the server" in result.output
    assert sum(line.lstrip().startswith("SKIP") for line in result.output.splitlines()) == 5


def test_server_without_health_route_still_counts_as_reachable() -> None:
    with respx.mock(assert_all_called=False) as router:
        mock_vllm(router, health=False, max_model_len=None)
        result = run("--base-url", BASE_URL, "--dimension", "384")
    assert result.exit_code == 0, result.output
    assert "no /health route" in lines_for(result, "server reachable")
    assert "only model 'minilm'" in lines_for(result, "model served")
    assert lines_for(result, "max_model_len").lstrip().startswith("WARN")


def test_undeclared_dimension_is_a_warning_with_the_value_to_declare(tmp_path: Path) -> None:
    with respx.mock(assert_all_called=False) as router:
        mock_vllm(router, dim=768)
        result = run(str(write_config(tmp_path, dimension=None)))
    assert result.exit_code == 0
    assert lines_for(result, "dimension").lstrip().startswith("WARN")
    assert "Declare dimension = 768" in result.output


def test_matryoshka_request_refused_or_honoured() -> None:
    env = {"VLLM_EMBED_DIMENSIONS": "128"}
    args = ["doctor", "--base-url", BASE_URL, "--dimension", "128"]
    with respx.mock(assert_all_called=False) as router:
        mock_vllm(router, matryoshka=False)
        refused = CliRunner().invoke(main, args, env=env)
    assert refused.exit_code == 1
    assert "refuses dimensions=128" in lines_for(refused, "dimension")
    assert "is_matryoshka" in refused.output
    with respx.mock(assert_all_called=False) as router:
        mock_vllm(router, matryoshka=True)
        honoured = CliRunner().invoke(main, args, env=env)
    assert honoured.exit_code == 0, honoured.output
    assert "128 (dimensions=128 requested), as declared" in lines_for(honoured, "dimension")


def test_without_a_file_the_migrate_hint_uses_options() -> None:
    with respx.mock(assert_all_called=False) as router:
        mock_vllm(router)
        result = run("--base-url", BASE_URL, "--model", "minilm", "--dimension", "1024")
    assert result.exit_code == 1
    assert f"vllm-embed migrate <store> --base-url {BASE_URL} --model minilm" in result.output


def test_json_output(tmp_path: Path) -> None:
    with respx.mock(assert_all_called=False) as router:
        mock_vllm(router)
        result = run(str(write_config(tmp_path, dimension=1024)), "--json")
    assert result.exit_code == 1
    checks = json.loads(result.stdout)
    assert [c["name"] for c in checks] == [
        "server reachable",
        "API key accepted",
        "model served",
        "dimension",
        "max_model_len",
        "round trip",
    ]
    by_name = {c["name"]: c for c in checks}
    assert by_name["dimension"]["status"] == "fail"
    assert "vllm-embed migrate" in by_name["dimension"]["fix"]
    assert by_name["round trip"]["status"] == "pass"


def test_each_base_url_is_checked() -> None:
    with respx.mock(assert_all_called=False) as router:
        mock_vllm(router)
        router.route(host="down.test").mock(side_effect=httpx.ConnectError("refused"))
        result = CliRunner().invoke(
            main,
            ["doctor", "--model", "minilm"],
            env={"VLLM_EMBED_BASE_URL": f"{BASE_URL},http://down.test:1/v1"},
        )
    assert result.exit_code == 1
    reach = [line for line in result.output.splitlines() if "server reachable" in line]
    assert [line.split()[0] for line in reach] == ["PASS", "FAIL"]


def test_no_base_url_anywhere_is_one_readable_error() -> None:
    result = run()
    assert result.exit_code == 1
    assert "Error: No base URL" in result.output
    assert "Traceback" not in result.output


def test_credentials_in_url_and_headers_are_not_printed(tmp_path: Path) -> None:
    path = tmp_path / "app.json"
    path.write_text(
        json.dumps(
            {
                "embedder": {
                    "base_url": "http://user:pa55word-xyz@vllm.test:8000/v1",
                    "model": "minilm",
                    "headers": {"Authorization": "Bearer header-token-abc123"},
                }
            }
        )
    )
    with respx.mock(assert_all_called=False) as router:
        mock_vllm(router)
        result = run(str(path))
    assert "pa55word-xyz" not in result.output
    assert "header-token-abc123" not in result.output
    assert "http://***@vllm.test:8000/v1" in result.output


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    key=st.text(alphabet=KEY_ALPHABET, min_size=12, max_size=48).filter(key_like),
    accepted=st.booleans(),
)
def test_keys_never_appear_in_doctor_output(key: str, accepted: bool) -> None:
    with respx.mock(assert_all_called=False) as router:
        mock_vllm(router, api_key=key if accepted else "the-server-key-xyz")
        result = CliRunner().invoke(
            main, ["doctor", "--base-url", BASE_URL], env={"VLLM_EMBED_API_KEY": key}
        )
        as_json = CliRunner().invoke(
            main, ["doctor", "--base-url", BASE_URL, "--json"], env={"VLLM_EMBED_API_KEY": key}
        )
    assert result.exit_code == (0 if accepted else 1)
    for output in (result.output, as_json.output):
        assert key not in output
        assert "the-server-key-xyz" not in output


def test_the_fix_command_has_one_builder_and_is_shell_quoted() -> None:
    """Every ``vllm-embed migrate`` fix comes from vllm_embed.doctor.migrate_command."""
    import shlex

    from vllm_embed.doctor import migrate_command

    command = migrate_command(
        "postgresql://app:***@db:5432/rag", table="my table", collection="it's b"
    )
    assert shlex.split(command) == [
        "vllm-embed", "migrate", "postgresql://app:***@db:5432/rag",
        "--table", "my table", "--collection", "it's b",
    ]  # fmt: skip
    unnamed = migrate_command(None, base_url=BASE_URL, model="m x", dimensions=64)
    assert (
        unnamed == f"vllm-embed migrate <store> --base-url {BASE_URL} --model 'm x' --dimensions 64"
    )
    from_file = migrate_command("a b.json", config="app.toml", section="rag.embedder")
    assert shlex.split(from_file)[2:] == [
        "a b.json",
        "--config",
        "app.toml",
        "--section",
        "rag.embedder",
    ]
