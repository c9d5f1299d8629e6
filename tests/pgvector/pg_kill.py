"""Run one table's migration in this process and SIGKILL it at a fault point.

    python pg_kill.py URL BASE_URL TABLE PHASE AT BATCH_ROWS

PHASE is "batch" (killed right after the AT-th batch committed), "switch" (after the
switch transaction took its first lock) or "renamed" (after the renames, before COMMIT).
"""

from __future__ import annotations

import os
import signal
import sys

from vllm_embed import EmbeddingClient
from vllm_embed.migrate import pgvector as pg
from vllm_embed.migrate import space_of_client


def main() -> None:
    url, base_url, table, phase, at, batch_rows = sys.argv[1:7]
    seen = {"n": 0}

    def on_phase(name: str) -> None:
        if name == phase:
            seen["n"] += 1
            if seen["n"] >= int(at):
                os.kill(os.getpid(), signal.SIGKILL)

    with pg.connect(url) as conn:
        target = next(t for t in pg.discover(conn) if t.table == table)
    with EmbeddingClient(base_url) as client:
        options = pg.PgOptions(batch_rows=int(batch_rows), on_phase=on_phase)
        pg.migrate_table(url, target, client, space_of_client(client), options)
    print("finished without being killed")


if __name__ == "__main__":
    main()
