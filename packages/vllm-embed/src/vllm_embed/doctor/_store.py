"""The store checks of doctor: a vector store's embedding space against the live server's.

The store's record (written by ``vllm-embed migrate``) when it has one, else a probe: a
few stored texts embedded again and compared with their stored vectors. File stores and
Qdrant server URLs (one collection, read as ``migrate`` reads it) here; Postgres in
:mod:`vllm_embed.doctor._postgres`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from vllm_embed._config import EmbedConfig
from vllm_embed._errors import VLLMEmbedError
from vllm_embed.doctor._checks import Check
from vllm_embed.doctor._server import config_migrate_command, doctor_client

if TYPE_CHECKING:
    from vllm_embed._client import EmbeddingClient

__all__ = ["PROBE_TEXTS", "check_store"]

#: Stored texts re-embedded by the probe of a store that records no embedding space.
PROBE_TEXTS = 8


def _fix(
    cfg: EmbedConfig, store: str, section: str | None, consent: bool, collection: str | None
) -> str:
    return config_migrate_command(
        cfg,
        section=section,
        store=store,
        collection=collection,
        allow_dangerous_deserialization=consent,
    )


def check_store(
    cfg: EmbedConfig,
    store_path: str,
    *,
    timeout: float = 10.0,
    section: str | None = None,
    allow_dangerous_deserialization: bool = False,
    collection: str | None = None,
) -> list[Check]:
    """Compare the embedding space a store was built in with the config's live server.

    The store's record (written by ``vllm-embed migrate``) when it has one: same space
    -> PASS, another model, dimension or instruction -> FAIL with the ``migrate``
    command. Without a record, a probe: a few stored texts are embedded again and
    compared with their stored vectors (cosine): same -> PASS, different -> FAIL, in
    between -> WARN with the figures.

    A store of several collections (a Chroma directory, LanceDB tables, Milvus Lite
    collections) is judged one collection at a time, one check each (``store space
    (collection NAME)``), unless ``collection`` names one: collections of one directory
    can be in different spaces. The store is read once; each collection keeps its own
    record and probe sample. A Qdrant server URL (``http://host:6333``, key from
    ``QDRANT_API_KEY``) is judged for the collection or alias ``collection`` names; an
    unreachable server, a refused key or a missing collection is a FAIL naming it.
    """
    checks = _check_store(
        cfg, store_path, timeout, section, allow_dangerous_deserialization, collection
    )
    return [c if c.collection else replace(c, collection=collection) for c in checks]


def _check_store(
    cfg: EmbedConfig,
    store_path: str,
    timeout: float,
    section: str | None,
    consent: bool,
    collection: str | None,
) -> list[Check]:
    from vllm_embed._errors import StoreError
    from vllm_embed._secrets import mask_url
    from vllm_embed.migrate import PickleConsentError, open_store, read_sidecar, space_of_client
    from vllm_embed.migrate._qdrant_collections import looks_like_qdrant_url

    name = "store space" if collection is None else f"store space (collection {collection})"
    parts: list[tuple[str | None, Any]] = []
    recorded = None
    given, store_path = store_path, mask_url(store_path)  # a server URL's password: hidden
    try:
        if looks_like_qdrant_url(given):
            parts = [(collection, _qdrant_server_collection(given, collection, timeout))]
        else:
            store = open_store(
                given, allow_dangerous_deserialization=consent, collection=collection
            )
            parts = _parts_of(store, collection)
    except PickleConsentError as exc:
        recorded = read_sidecar(exc.index_path)
        consent = True
    except StoreError as exc:
        return [Check(name, "fail", f"cannot read {store_path}: {exc}", None)]
    if not cfg.base_urls:
        return [Check(name, "skip", "no server configured")]
    with doctor_client(cfg, cfg.base_urls[0], timeout) as client:
        try:
            live = space_of_client(client)
        except VLLMEmbedError as exc:
            return [Check(name, "fail", f"cannot ask the server for its space: {exc}")]
        if not parts:  # a FAISS pickle read without consent: its sidecar only
            fix_cmd = _fix(cfg, store_path, section, consent, collection)
            if recorded is not None:
                return [_judge_recorded(name, store_path, recorded, live, fix_cmd)]
            return [
                Check(
                    name,
                    "warn",
                    f"{store_path} records no embedding space, and probing it needs its "
                    "pickle read",
                    "Re-run with --allow-dangerous-deserialization (only for a store you "
                    "trust) to compare a few stored vectors with the server's.",
                )
            ]
        return [
            replace(
                _judge_part(
                    client,
                    name if label is None else f"store space (collection {label})",
                    store_path,
                    part,
                    live,
                    _fix(cfg, store_path, section, consent, label),
                ),
                collection=label,
            )
            for label, part in parts
        ]


def _parts_of(store: Any, collection: str | None) -> list[tuple[str | None, Any]]:
    """A store of several collections (or one picked): one part per collection."""
    from vllm_embed.migrate._milvus_server import MilvusServerStore
    from vllm_embed.migrate.chroma import ChromaStore
    from vllm_embed.migrate.lancedb import LanceDBStore
    from vllm_embed.migrate.milvus import MilvusLiteStore

    if isinstance(store, ChromaStore | LanceDBStore | MilvusLiteStore | MilvusServerStore) and (
        collection is not None or len(store.collections) > 1
    ):
        return [(v.selector, v) for v in store.collection_views()]
    return [(collection, store)]


def _qdrant_server_collection(url: str, collection: str | None, timeout: float) -> Any:
    """Collection (or alias) ``collection`` of the Qdrant server at ``url`` (key from
    ``QDRANT_API_KEY``), read as ``migrate`` reads it: a part `_judge_part` judges."""
    from vllm_embed._errors import StoreFormatError
    from vllm_embed.migrate import _qdrant_collections, _qdrant_switch

    client = _qdrant_collections.connect_qdrant(url, timeout=timeout)
    try:
        if collection is None:
            names = ", ".join(_qdrant_switch.list_names(client)) or "none"
            raise StoreFormatError(
                f"name the Qdrant collection (or alias) to judge with --collection; found: {names}"
            )
        return _qdrant_switch.inspect_collection(client, collection)
    finally:
        client.close()


def _judge_recorded(name: str, where: str, recorded: Any, live: Any, fix_cmd: str) -> Check:
    """A recorded space against the server's: PASS when equal, else FAIL with the fix."""
    diffs = recorded.differences(live)
    if not diffs:
        return Check(name, "pass", f"{where} was built in {live.describe()}")
    return Check(
        name,
        "fail",
        f"{where} was built in {recorded.describe()}; the server embeds in "
        f"{live.describe()} ({'; '.join(diffs)}): queries would be compared with "
        "vectors of another space",
        f"Re-embed the store with the served model: `{fix_cmd}` (or point the "
        f"config at the server for {recorded.model!r}).",
    )


def _judge_part(
    client: EmbeddingClient, name: str, where: str, part: Any, live: Any, fix_cmd: str
) -> Check:
    """One store (or one collection of it): its record, else a probe of stored vectors."""
    from vllm_embed.migrate import judge_probe

    recorded = part.recorded_space()
    if recorded is not None:
        return _judge_recorded(name, where, recorded, live, fix_cmd)
    sample = part.sample_vectors(PROBE_TEXTS)
    if sample is None:
        return Check(
            name,
            "warn",
            f"{where} records no embedding space and has no stored text to probe",
            f"Migrate it once to record the space: `{fix_cmd}`.",
        )
    texts, stored = sample
    if stored.shape[1] != live.dimension:
        return Check(
            name,
            "fail",
            f"{where} holds {stored.shape[1]}-dim vectors; the server produces "
            f"{live.dimension} ({live.model!r})",
            f"Re-embed the store with the served model: `{fix_cmd}`.",
        )
    try:
        fresh = client.embed_with_info(texts, kind="document").vectors
    except VLLMEmbedError as exc:
        return Check(name, "fail", f"the probe request failed: {exc}")
    verdict = judge_probe(stored, fresh)
    detail = f"{where} records no space; {verdict.describe()}"
    if verdict.verdict == "same":
        return Check(name, "pass", f"{detail}: the server's model {live.model!r} made it")
    if verdict.verdict == "different":
        return Check(
            name,
            "fail",
            f"{detail}: another model (or instruction) made this store, not {live.model!r}",
            f"Re-embed the store with the served model: `{fix_cmd}`.",
        )
    return Check(
        name,
        "warn",
        f"{detail}: cannot tell whether {live.model!r} made it",
        f"If the model changed, re-embed the store: `{fix_cmd}`.",
    )
