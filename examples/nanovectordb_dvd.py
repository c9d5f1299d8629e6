"""A DVD-style (Deep Video Discovery) ``database.json`` of clip captions on nano-vectordb.

Each record is one 10-second clip: ``caption`` holds its text, ``additional_data`` the
video's info, as the video-QA pipeline stores them. The store is opened with
:func:`vllm_embed_nanovectordb.aopen_db`, which refuses a ``database.json`` built with
another dimension (and prints the ``vllm-embed migrate`` command) before anything is written::

    python examples/nanovectordb_dvd.py --base-url http://127.0.0.1:8000/v1 --model minilm

``--base-url``, ``--api-key`` and ``--model`` default to ``VLLM_EMBED_BASE_URL``,
``VLLM_EMBED_API_KEY`` and ``VLLM_EMBED_MODEL``; ``--db`` keeps the database (default: a
temporary directory). Exit code 0 when every question finds its clip.

With LightRAG, the same function is its embedding function::

    fn = await VLLMEmbeddingFunction(base_url=..., model=...).resolve()
    EmbeddingFunc(embedding_dim=fn.embedding_dim, max_token_size=fn.max_token_size, func=fn)
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from vllm_embed import DimensionMismatchError
from vllm_embed_nanovectordb import VLLMEmbeddingFunction, aopen_db

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common, also under runpy.run_path
from _common import exit_with, server_parser

VIDEO = {"video_path": "videos/city_day.mp4", "duration_secs": 80, "fps": 1, "clip_secs": 10}
CAPTIONS = [
    "[From 00:00:00 to 00:00:10] A street market opens; vendors stack oranges and lemons.",
    "[From 00:00:10 to 00:00:20] A cyclist in a yellow jacket weaves through morning traffic.",
    "[From 00:00:20 to 00:00:30] Children feed ducks at a pond in a small park.",
    "[From 00:00:30 to 00:00:40] A high-speed car chase through narrow city streets at night.",
    "[From 00:00:40 to 00:00:50] A chef flips pancakes in a crowded diner kitchen.",
    "[From 00:00:50 to 00:01:00] Rain falls on umbrellas outside a train station.",
    "[From 00:01:00 to 00:01:10] A street musician plays the violin for a small crowd.",
    "[From 00:01:10 to 00:01:20] Fireworks light up the sky above the river.",
]
QUESTIONS = {
    "car chase scene": 3,
    "someone cooking breakfast": 4,
    "birds being fed by kids": 2,
    "live music performance": 6,
    "bad weather at the station": 5,
}


async def build_and_query(fn: VLLMEmbeddingFunction, db_path: Path) -> int:
    """Create (or reuse) the database, answer QUESTIONS; returns the number answered wrong."""
    db = await aopen_db(db_path, fn)  # checks the stored embedding_dim first
    vectors = await fn(CAPTIONS)  # float32, L2-normalised rows
    db.upsert(
        [
            {"__id__": f"clip_{i:03d}", "__vector__": vector, "caption": caption}
            for i, (caption, vector) in enumerate(zip(CAPTIONS, vectors, strict=True))
        ]
    )
    db.store_additional_data(**VIDEO)
    db.save()
    print(f"{db_path}: {len(db)} clips, {fn.embedding_dim}-dim, video {VIDEO['video_path']}")

    wrong = 0
    for question, clip in QUESTIONS.items():
        best = db.query(await fn.embed_query(question), top_k=1)[0]
        ok = best["__id__"] == f"clip_{clip:03d}"
        wrong += not ok
        print(f"{'ok ' if ok else 'BAD'} {best['__metrics__']:.3f}  {question}")
        print(f"      -> {best['caption']}")
    return wrong


def main(
    base_url: str | None, api_key: str | None, model: str | None, db: str | None = None
) -> int:
    """Run the example; 0 if every question finds its clip, 2 on a dimension mismatch."""
    fn = VLLMEmbeddingFunction(base_url=base_url, api_key=api_key, model=model)

    async def run(path: Path) -> int:
        try:
            return await build_and_query(fn, path)
        finally:
            await fn.aclose()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(db) if db else Path(tmp) / "database.json"
        try:
            wrong = asyncio.run(run(path))
        except DimensionMismatchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    print(f"{len(QUESTIONS) - wrong}/{len(QUESTIONS)} questions found their clip")
    return 0 if wrong == 0 else 1


if __name__ == "__main__":
    parser = server_parser(__doc__)
    parser.add_argument("--db", help="database.json to create or update (default: a temp dir)")
    args = parser.parse_args()
    exit_with(lambda: main(args.base_url, args.api_key, args.model, args.db))
