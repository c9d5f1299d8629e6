"""embed_dataset: a Ray Data ``map_batches`` over a pool of actors, one core client each."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa

from vllm_embed import ConfigValueError, EmbeddingClient
from vllm_embed.adapters import bad_row_error, vectors_to_arrow

if TYPE_CHECKING:
    import ray.data

__all__ = ["DEFAULT_BATCH_SIZE", "bad_row_error", "embed_dataset", "vectors_to_arrow"]

Role = Literal["document", "query", "raw"]
OnBadRow = Literal["raise", "drop"]

#: Rows per actor call. The actor's client splits them into requests of its own
#: ``batch_size`` (256) and sends up to ``max_concurrency`` (8) at once.
DEFAULT_BATCH_SIZE = 2048


def _client_kwargs(base_url: Any, client_options: dict[str, Any]) -> dict[str, Any]:
    kwargs = dict(client_options)
    if "request_batch_size" in kwargs:
        kwargs["batch_size"] = kwargs.pop("request_batch_size")
    kwargs["base_url"] = base_url
    return kwargs


class _Embedder:
    """One Ray actor: one core client, reused for every batch the actor is given."""

    def __init__(
        self,
        column: str,
        output_column: str,
        role: Role,
        on_bad_row: OnBadRow,
        client_kwargs: dict[str, Any],
    ) -> None:
        self._column = column
        self._output = output_column
        self._kind: Literal["raw", "query", "document"] = role
        self._drop = on_bad_row == "drop"
        self._client = EmbeddingClient(**client_kwargs)

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self._column not in batch.column_names:
            raise ConfigValueError(
                f"The dataset has no column {self._column!r} (columns: {batch.column_names}); "
                "pass column=<the column holding the text>."
            )
        texts: list[Any] = batch.column(self._column).to_pylist()
        bad = [i for i, text in enumerate(texts) if not isinstance(text, str)]
        if bad:
            if not self._drop:
                raise bad_row_error(batch.slice(bad[0], 1).to_pylist()[0], self._column)
            keep = np.ones(len(texts), dtype=bool)
            keep[bad] = False
            batch = batch.filter(pa.array(keep))
            texts = [texts[i] for i in np.flatnonzero(keep)]
        if texts:
            vectors = self._client.embed_with_info(texts, kind=self._kind).vectors
            dim = int(vectors.shape[1])
        else:  # every row of this batch was dropped: keep the schema (the dimension)
            dim = self._client.dimension()
            vectors = np.empty((0, dim), dtype=np.float32)
        column = vectors_to_arrow(vectors, dim)
        if self._output in batch.column_names:
            return batch.set_column(batch.column_names.index(self._output), self._output, column)
        return batch.append_column(self._output, column)

    def __del__(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            client.close()


def embed_dataset(
    ds: ray.data.Dataset,
    column: str = "text",
    output_column: str = "embedding",
    *,
    base_url: str | list[str] | None = None,
    concurrency: int | tuple[int, int] = 1,
    batch_size: int = DEFAULT_BATCH_SIZE,
    role: Role = "document",
    on_bad_row: OnBadRow = "raise",
    num_cpus: float = 0.5,
    ray_remote_args: dict[str, Any] | None = None,
    **client_options: Any,
) -> ray.data.Dataset:
    """Add an embedding column to a Ray Dataset, computed by a pool of actors.

    Each actor holds one :class:`vllm_embed.EmbeddingClient` built from ``base_url`` and
    ``client_options`` (``api_key``, ``model``, ``instructions``, ``dimensions``,
    ``retry``, ``timeout``, ``max_concurrency``, ``cache``, ...; ``request_batch_size``
    is the client's ``batch_size``, texts per request). With several base URLs every
    actor spreads its requests over all of them and fails over when one goes down.

    Args:
        ds: The dataset; lazy, nothing runs until the result is consumed.
        column: The column holding the text.
        output_column: The new column: ``fixed_size_list<float32>[dim]`` (a 2-D numpy
            array with ``batch_format="numpy"``). Replaced if it exists.
        base_url: One server URL or a list (default: ``VLLM_EMBED_BASE_URL``).
        concurrency: Actors: ``n`` (a fixed pool) or ``(min, max)`` (autoscaling).
        batch_size: Rows per actor call.
        role: ``"document"`` or ``"query"`` picks the model's instruction; ``"raw"``
            sends the text as it is.
        on_bad_row: A row whose text is missing or not a string raises
            :class:`vllm_embed.InvalidRowError` naming the row (``"raise"``), or is left
            out of the result (``"drop"``).
        num_cpus: CPUs Ray reserves per actor (the actors mostly wait on the servers).
        ray_remote_args: More ``map_batches`` arguments for the actors (``memory``,
            ``scheduling_strategy="SPREAD"``, ``resources``, ...).

    Returns:
        The dataset with every input row (except dropped ones) exactly once, its other
        columns unchanged, plus ``output_column``. Errors raised while it runs arrive as
        themselves (e.g. ``InvalidRowError``; Ray wraps them in a ``RayTaskError``
        subclass of the same class).
    """
    import ray.data

    if role not in ("document", "query", "raw"):
        raise ConfigValueError(f"role must be 'document', 'query' or 'raw', got {role!r}")
    if on_bad_row not in ("raise", "drop"):
        raise ConfigValueError(f"on_bad_row must be 'raise' or 'drop', got {on_bad_row!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(concurrency, tuple):
        low, high = concurrency
        if not 1 <= low <= high:
            raise ConfigValueError(f"concurrency must be n or (min, max), got {concurrency!r}")
        compute = ray.data.ActorPoolStrategy(min_size=low, max_size=high)
    elif isinstance(concurrency, int) and not isinstance(concurrency, bool) and concurrency >= 1:
        compute = ray.data.ActorPoolStrategy(size=concurrency)
    else:
        raise ConfigValueError(f"concurrency must be n or (min, max), got {concurrency!r}")
    client_kwargs = _client_kwargs(base_url, client_options)
    EmbeddingClient(**client_kwargs).close()  # bad settings fail here, not in every actor

    out = ds.map_batches(
        _Embedder,
        fn_constructor_kwargs={
            "column": column,
            "output_column": output_column,
            "role": role,
            "on_bad_row": on_bad_row,
            "client_kwargs": client_kwargs,
        },
        batch_size=batch_size,
        batch_format="pyarrow",
        compute=compute,
        num_cpus=num_cpus,
        udf_modifying_row_count=on_bad_row == "drop",
        **(ray_remote_args or {}),
    )
    # Our own errors (a bad row, a server refusing) reach the caller as themselves, not
    # as Ray Data's generic "UDF failed" wrapper.
    out.context.raise_original_map_exception = True
    return out
