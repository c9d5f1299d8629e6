"""Instruction presets chosen from the model name; overridable and disable-able."""

from __future__ import annotations

import pytest

from vllm_embed import ConfigValueError, Instructions
from vllm_embed._instructions import DEFAULT_QWEN3_TASK, preset_for_model, resolve_instructions

QWEN_Q = f"Instruct: {DEFAULT_QWEN3_TASK}\nQuery: "

TABLE = [
    ("Qwen/Qwen3-Embedding-8B", "qwen3", QWEN_Q, ""),
    ("qwen3-embedding-0.6b", "qwen3", QWEN_Q, ""),
    ("intfloat/e5-large-v2", "e5", "query: ", "passage: "),
    ("intfloat/multilingual-e5-base", "e5", "query: ", "passage: "),
    ("intfloat/e5-mistral-7b-instruct", "qwen3", QWEN_Q, ""),
    (
        "BAAI/bge-large-en-v1.5",
        "bge-en",
        "Represent this sentence for searching relevant passages: ",
        "",
    ),
    (
        "bge-small-en-v1.5",
        "bge-en",
        "Represent this sentence for searching relevant passages: ",
        "",
    ),
    ("jinaai/jina-embeddings-v3", "jina", "Query: ", "Passage: "),
    ("jinaai/jina-embeddings-v4", "jina", "Query: ", "Passage: "),
    ("nomic-ai/nomic-embed-text-v1.5", "nomic", "search_query: ", "search_document: "),
    ("minilm", "none", "", ""),
    ("BAAI/bge-m3", "none", "", ""),
    ("text-embedding-3-large", "none", "", ""),
]


@pytest.mark.parametrize(("model", "name", "query", "document"), TABLE)
def test_presets_by_model_name(model: str, name: str, query: str, document: str) -> None:
    preset = preset_for_model(model)
    assert (preset.name, preset.query, preset.document) == (name, query, document)
    assert resolve_instructions("auto", model) == preset


def test_apply() -> None:
    e5 = resolve_instructions("e5", "whatever")
    assert e5.apply_query(["a", ""]) == ["query: a", "query: "]
    assert e5.apply_document(["b"]) == ["passage: b"]
    assert Instructions.none().apply_query(["a"]) == ["a"]


def test_override_and_disable() -> None:
    custom = Instructions(query="Q> ", document="D> ")
    assert resolve_instructions(custom, "intfloat/e5-large") is custom
    assert resolve_instructions(None, "intfloat/e5-large").is_empty
    task = Instructions.qwen3("Given a video caption, retrieve relevant clips")
    assert task.apply_query(["car chase"]) == [
        "Instruct: Given a video caption, retrieve relevant clips\nQuery: car chase"
    ]


def test_unknown_preset_name() -> None:
    with pytest.raises(ConfigValueError, match="Unknown instructions preset 'e6'"):
        resolve_instructions("e6", "m")


def test_clients_tell_the_instructions_they_apply() -> None:
    from vllm_embed import EmbeddingClient

    e5 = EmbeddingClient("http://vllm.test/v1").instructions_for("intfloat/e5-large-v2")
    assert (e5.query, e5.document) == ("query: ", "passage: ")
    minilm = EmbeddingClient("http://vllm.test/v1")
    assert minilm.instructions_for("sentence-transformers/all-MiniLM-L6-v2").is_empty
    assert (
        EmbeddingClient("http://vllm.test/v1", instructions=None)
        .instructions_for("intfloat/e5-large-v2")
        .is_empty
    )
