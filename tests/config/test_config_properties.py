"""Property tests (hypothesis) for the TOML / JSON readers and ${VAR} expansion."""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path
from typing import Any

import tomlkit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vllm_embed._config import load_config
from vllm_embed._config_readers._expand import expand
from vllm_embed._errors import ConfigFileError
from vllm_embed._types import Secret

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# Text without "$" (which would be an env reference) and with no surrounding whitespace.
plain_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="$"),
    min_size=1,
    max_size=30,
).filter(lambda s: s.strip() == s and s != "")
hosts = st.from_regex(r"[a-z][a-z0-9\-]{0,20}(\.[a-z][a-z0-9]{0,10}){0,2}", fullmatch=True)
urls = st.builds(
    lambda scheme, host, port: f"{scheme}://{host}:{port}/v1",
    st.sampled_from(["http", "https"]),
    hosts,
    st.integers(1, 65535),
)
identifiers = st.from_regex(r"[a-z][a-z_0-9]{0,12}", fullmatch=True).filter(
    lambda s: s not in ("embedder", "embedding", "embeddings", "vector", "tool")
)

settings_tables = st.fixed_dictionaries(
    {"base_url": urls},
    optional={
        "model": plain_text,
        "api_key": plain_text,
        "dimension": st.integers(1, 10**6),
        "timeout": st.floats(0.001, 1e5, allow_nan=False, allow_infinity=False),
        "retries": st.integers(0, 50),
        "backoff_factor": st.floats(0, 100, allow_nan=False, allow_infinity=False),
        "batch_size": st.integers(1, 10**5),
        "max_concurrency": st.integers(1, 512),
        "headers": st.dictionaries(
            st.from_regex(r"X-[A-Za-z]{1,10}", fullmatch=True), plain_text, max_size=3
        ),
    },
)
# Other tables an app keeps in the same file (must be ignored).
app_tables = st.dictionaries(
    identifiers,
    st.dictionaries(identifiers, st.one_of(st.integers(), plain_text, st.booleans()), max_size=4),
    max_size=4,
)


def _check_fields(cfg: Any, table: dict[str, Any]) -> None:
    assert cfg.base_urls == (table["base_url"],)
    for key in ("model", "dimension", "retries", "batch_size", "max_concurrency"):
        assert getattr(cfg, key) == table.get(key)
    for key in ("timeout", "backoff_factor"):
        expected = table.get(key)
        assert getattr(cfg, key) == (None if expected is None else float(expected))
    assert cfg.headers == table.get("headers", {})
    assert cfg.api_key == (Secret(table["api_key"]) if "api_key" in table else None)


@SETTINGS
@given(table=settings_tables, others=app_tables, where=st.sampled_from(["embedding", "tool"]))
def test_toml_round_trip(table: dict[str, Any], others: dict[str, Any], where: str) -> None:
    doc: dict[str, Any] = dict(others)
    if where == "tool":
        doc["tool"] = {"vllm-embed": table}
    else:
        doc["embedding"] = table
    doc["vector"] = {"backend": "sqlite", "path": ".cache/vector"}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.toml"
        path.write_text(tomlkit.dumps(doc))
        cfg = load_config(path, env={})
    _check_fields(cfg, table)
    # kano-backlog's [vector] sits next to [embedding]; it is not [tool.vllm-embed]'s
    assert cfg.vector == ({} if where == "tool" else doc["vector"])
    prefix = "tool.vllm-embed" if where == "tool" else "embedding"
    assert cfg.origins["base_urls"] == f"file:{path}#{prefix}.base_url"


@SETTINGS
@given(
    table=settings_tables,
    others=app_tables,
    nest=st.lists(identifiers, max_size=4, unique=True),
    indent=st.sampled_from([None, 2, 4]),
)
def test_json_embedder_found_at_any_depth(
    table: dict[str, Any], others: dict[str, Any], nest: list[str], indent: int | None
) -> None:
    doc: dict[str, Any] = dict(others)
    node = doc
    for key in nest:
        node[key] = dict(node.get(key) or {}) if isinstance(node.get(key), dict) else {}
        node = node[key]
    node["embedder"] = table
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "app.json"
        path.write_text(json.dumps(doc, indent=indent))
        cfg = load_config(path, env={})
    _check_fields(cfg, table)
    dotted = ".".join([*nest, "embedder"])
    assert cfg.origins["model" if "model" in table else "base_urls"].startswith(
        f"file:{path}#{dotted}."
    )


@SETTINGS
@given(table=settings_tables, others=app_tables, cut=st.floats(0, 1, exclude_max=True))
def test_truncated_json_reports_a_position_inside_the_file(
    table: dict[str, Any], others: dict[str, Any], cut: float
) -> None:
    text = json.dumps({**others, "embedder": table}, indent=2)
    broken = text[: int(len(text) * cut)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "app.json"
        path.write_text(broken)
        try:
            load_config(path, env={})
        except ConfigFileError as err:
            lines = broken.split("\n")
            assert err.line is not None and err.column is not None
            assert 1 <= err.line <= len(lines)
            assert 1 <= err.column <= len(lines[err.line - 1]) + 1
            assert f"line {err.line}, column {err.column}" in str(err)
        else:  # pragma: no cover - a strict prefix of an object is never valid JSON
            raise AssertionError("truncated JSON was accepted")


@SETTINGS
@given(table=settings_tables, others=app_tables, data=st.data())
def test_a_broken_toml_line_is_reported_at_that_line(
    table: dict[str, Any], others: dict[str, Any], data: st.DataObject
) -> None:
    lines = tomlkit.dumps({**others, "embedding": table}).split("\n")
    at = data.draw(st.integers(0, len(lines)))
    lines.insert(at, "broken = = 1")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.toml"
        path.write_text("\n".join(lines))
        try:
            load_config(path, env={})
        except ConfigFileError as err:
            assert err.line == at + 1
            assert err.column == len("broken = ") + 1
        else:  # pragma: no cover
            raise AssertionError("broken TOML was accepted")


env_names = st.from_regex(r"[A-Z_][A-Z0-9_]{0,15}", fullmatch=True)
no_dollar = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="$"), max_size=20
)


@given(text=no_dollar)
def test_text_without_references_is_unchanged(text: str) -> None:
    assert expand(text, {}) == text


@given(before=no_dollar, after=no_dollar, name=env_names, value=st.text(max_size=20))
def test_reference_is_replaced_by_the_variable(
    before: str, after: str, name: str, value: str
) -> None:
    assert expand(f"{before}${{{name}}}{after}", {name: value}) == before + value + after


@given(name=env_names, default=st.text(alphabet=string.ascii_letters + ":/.-", max_size=20))
def test_default_applies_when_unset_or_empty(name: str, default: str) -> None:
    assert expand(f"${{{name}:-{default}}}", {}) == default
    assert expand(f"${{{name}:-{default}}}", {name: ""}) == default
    assert expand(f"${{{name}:-{default}}}", {name: "set"}) == "set"


@given(text=no_dollar)
def test_escaped_reference_is_literal(text: str) -> None:
    assert expand(f"$${{{text}", {}) == "${" + text
