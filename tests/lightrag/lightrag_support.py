"""What a LightRAG test needs besides the embedding function: a deterministic stub LLM
(no chat model exists here), a tokenizer that needs no download (tiktoken would fetch its
BPE file), and open / query helpers."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from lightrag import LightRAG, QueryParam
from lightrag.utils import EmbeddingFunc, Tokenizer

DOCS = [
    "Alice Cooper restores vintage Harley motorcycles in a garage near Lisbon.",
    "Bob Marley Museum in Kingston displays the singer's guitars and records.",
    "Carol Danvers trains Kree pilots on a distant planet called Hala.",
]


class CharTokenizer:
    """One token per character: deterministic, thread-safe, nothing to download."""

    def encode(self, content: str) -> list[int]:
        return [ord(c) for c in content]

    def decode(self, tokens: list[int]) -> str:
        return "".join(chr(t) for t in tokens)


class StubLLM:
    """Answers LightRAG's entity-extraction prompt with the input's capitalised words as
    entities (and one relation), every other prompt with a fixed answer; records prompts."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    async def __call__(
        self, prompt: str, system_prompt: str | None = None, history_messages: Any = None, **_: Any
    ) -> str:
        self.prompts.append(f"{system_prompt or ''}\n{prompt}")
        if "---Input Text---" not in prompt:
            return "stub answer"
        text = prompt.split("---Input Text---")[-1]
        names = sorted(set(re.findall(r"\b[A-Z][a-z]{3,}\b", text)))[:4]
        rows = [f"entity<|#|>{n}<|#|>Concept<|#|>{n} is named in the text." for n in names]
        if len(names) >= 2:
            rows.append(
                f"relation<|#|>{names[0]}<|#|>{names[1]}<|#|>mentioned together"
                f"<|#|>{names[0]} and {names[1]} appear in one sentence."
            )
        return "\n".join([*rows, "<|COMPLETE|>"])


async def open_rag(working_dir: Path, embedding_func: EmbeddingFunc, llm: StubLLM) -> LightRAG:
    """LightRAG over ``working_dir`` (its files go to ``store_dir(working_dir)``).

    LightRAG keeps per-workspace state process-wide (document status, pipeline status),
    so every test directory gets its own workspace, as two apps in one process would.
    """
    rag = LightRAG(
        working_dir=str(working_dir),
        workspace=working_dir.name,
        embedding_func=embedding_func,
        llm_model_func=llm,
        tokenizer=Tokenizer("chars", CharTokenizer()),
    )
    await rag.initialize_storages()
    return rag


async def naive_context(rag: LightRAG, question: str) -> str:
    """The chunks LightRAG's naive mode retrieves for ``question`` (no LLM call)."""
    param = QueryParam(mode="naive", only_need_context=True, enable_rerank=False)
    answer = await rag.aquery(question, param=param)
    return str(answer)


def store_dir(working_dir: Path) -> Path:
    return working_dir / working_dir.name


def vdb_files(working_dir: Path) -> list[Path]:
    return sorted(store_dir(working_dir).glob("vdb_*.json"))


async def top_chunk(rag: LightRAG, question: str) -> str:
    """The content of the one chunk naive mode ranks first for ``question``."""
    param = QueryParam(mode="naive", only_need_context=True, enable_rerank=False, chunk_top_k=1)
    context = str(await rag.aquery(question, param=param))
    for line in context.splitlines():
        if line.startswith('{"reference_id"'):
            return str(json.loads(line)["content"])
    raise AssertionError(f"no chunk retrieved for {question!r}:\n{context}")


async def migrate(path: Path, base_url: str, *options: str) -> str:
    """Run ``vllm-embed migrate PATH --base-url URL OPTIONS --yes`` as a user would (the
    script installed beside this Python); returns its output, fails the test on an error."""
    script = str(Path(sys.executable).with_name("vllm-embed"))
    command = [script, "migrate", str(path), "--base-url", base_url, *options, "--yes"]
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr
