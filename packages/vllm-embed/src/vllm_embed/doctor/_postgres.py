"""The Postgres store checks of doctor: each pgvector table's space against the server's."""

from __future__ import annotations

from typing import Any

from vllm_embed._config import EmbedConfig
from vllm_embed._errors import VLLMEmbedError
from vllm_embed._secrets import mask_url
from vllm_embed.doctor._checks import Check, Status
from vllm_embed.doctor._fix import migrate_command
from vllm_embed.doctor._server import doctor_client

__all__ = ["check_postgres_store"]

_STATUS_OF_VERDICT: dict[str, Status] = {"same": "pass", "different": "fail", "unsure": "warn"}


def check_postgres_store(
    cfg: EmbedConfig, url: str, *, timeout: float = 10.0, collection: str | None = None
) -> list[Check]:
    """``--store postgresql://...``: one check per pgvector table (LangChain: per collection).

    The space recorded by ``vllm-embed migrate`` (column comment, ``vllm_embed_spaces``)
    against the server's, or a probe of a few stored rows when none is recorded. With
    ``collection``, only the checks of that LangChain collection (their ``collection``
    field); a FAIL when no table holds it.
    """
    from vllm_embed._errors import StoreError

    if not cfg.base_urls:
        return [Check("store space", "skip", "no server configured")]
    with doctor_client(cfg, cfg.base_urls[0], timeout) as client:
        try:
            found = store_checks(url, client)
        except StoreError as exc:
            return [Check("store space", "fail", str(exc))]
        except VLLMEmbedError as exc:
            return [Check("store space", "fail", f"cannot ask the server for its space: {exc}")]
    if collection is None:
        return found
    return [c for c in found if c.collection == collection] or [
        Check(
            "store space",
            "fail",
            f"no LangChain collection {collection!r} in {mask_url(url)}",
            "Run without --collection to see every table and collection.",
            collection=collection,
        )
    ]


class _Maker:
    """The checks of one table part: same name, fix and collection."""

    def __init__(self, name: str, fix: str, collection: str | None) -> None:
        self.name, self.fix, self.collection = name, fix, collection

    def __call__(self, status: Status, detail: str) -> Check:
        return Check(self.name, status, detail, self.fix, collection=self.collection)


def store_checks(url: str, client: Any) -> list[Check]:
    """Each pgvector table's (LangChain: each collection's) space against ``client``'s.

    A recorded space (column comment / ``vllm_embed_spaces``) is compared field by field:
    a same-dimension model change fails too. A table without a record is probed: a few
    stored texts are embedded again and compared with their stored vectors.
    """
    from vllm_embed.migrate import judge_probe, space_of_client
    from vllm_embed.migrate import pgvector as pg

    checks: list[Check] = []
    live = space_of_client(client)
    with pg.connect(url) as conn:
        targets = pg.discover(conn)
        if not targets:
            return [
                Check(
                    "store",
                    "warn",
                    f"no LangChain, LlamaIndex or LightRAG table in {mask_url(url)}",
                    "",
                )
            ]
        for target in targets:
            spaces = pg.read_spaces(conn, target)
            for collection, space in spaces.items():
                name = f"store {target.name}" + (f" [{collection}]" if collection else "")
                fix = migrate_command(
                    mask_url(url), table=target.name, collection=collection or None
                )
                check = _Maker(name, fix, collection or None)
                if space is not None:
                    diff = space.differences(live)
                    if diff:
                        checks.append(check("fail", "recorded " + "; ".join(diff) + " (server)"))
                    else:
                        checks.append(check("pass", f"recorded {space.describe()}"))
                    continue
                if target.old_dim is not None and target.old_dim != live.dimension:
                    checks.append(
                        check(
                            "fail",
                            f"dimension {target.old_dim} stored, server gives {live.dimension}",
                        )
                    )
                    continue
                texts, stored = pg.sample_rows(conn, target)
                if not texts:
                    checks.append(check("skip", "empty table: nothing to compare"))
                    continue
                fresh = client.embed_with_info(texts, kind="document").vectors
                verdict = judge_probe(stored, fresh)
                status = _STATUS_OF_VERDICT[verdict.verdict]
                checks.append(check(status, f"no recorded space; {verdict.describe()}"))
    return checks
