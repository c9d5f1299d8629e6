"""Planning one call and putting its results together (no I/O).

Instructions (``kind``), the truncation plan and batches (:class:`EmbedPlan`), the cache
space, the :class:`Output` array the batches write into, client-side dimensions and
normalisation, truncation judging and the :class:`~vllm_embed.EmbedResult`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from vllm_embed._batching import plan_batches, validate_texts
from vllm_embed._cache import CacheKeySpace, Lookup
from vllm_embed._errors import (
    ContextLengthError,
    DimensionsNotSupportedError,
    InvalidInputError,
    VectorWidthError,
)
from vllm_embed._instructions import Instructions, resolve_instructions
from vllm_embed._multivector import MAX_BATCH
from vllm_embed._space import ClientSpace
from vllm_embed._types import EmbedResult
from vllm_embed._wire import (
    Layout,
    direct_layout,
    unframed_layout,
)

if TYPE_CHECKING:
    pass

from vllm_embed._options import ClientOptions, HttpT, Kind
from vllm_embed._vectors import l2_normalize

__all__ = ["ClientAssembly", "EmbedPlan", "Output", "Placement"]


@dataclass
class EmbedPlan:
    """What one embed call will send: the final inputs and how to split them."""

    inputs: list[str]
    batches: list[tuple[int, int]]
    truncate_prompt_tokens: int | None
    #: Inputs that may exceed the context and need an exact token count (``/tokenize``).
    suspects: list[int]
    limit: int | None


class ClientAssembly(ClientOptions[HttpT]):
    """Plans and results: the client's I/O-free middle layer."""

    # ------------------------------------------------------------- planning
    def instructions_for(self, model: str) -> Instructions:
        """The query / document prefixes this client applies to ``model`` (no I/O).

        ``instructions="auto"`` resolves from the model name once; an explicit preset,
        :class:`Instructions` or ``None`` (no prefixes) is returned as configured.
        """
        if self._instructions is None:
            self._instructions = resolve_instructions(self._instructions_spec, model)
        return self._instructions

    _instructions_for = instructions_for

    def space_for(self, model: str, max_model_len: int | None = None) -> ClientSpace:
        """The embedding space this client's options make of ``model`` (no I/O).

        The one place it is built: the cache keys (:meth:`_cache_space`) and the space
        records stores keep (``vllm_embed.migrate.space_of_client``) both derive from it.
        ``max_model_len`` gives the truncation limit (None: not known).
        """
        instructions = self.instructions_for(model)
        return ClientSpace(
            model=model,
            document_instruction=instructions.document,
            query_instruction=instructions.query,
            dimensions=self._dimensions,
            client_side_dimensions=self._client_side_dimensions,
            normalize=self._normalize,
            truncate=self._truncate,
            limit=self._truncation_limit(max_model_len),
        )

    def _cache_space(self, role: str, model: str, max_model_len: int | None) -> CacheKeySpace:
        """What the cache keys of texts of this role are hashed over."""
        assert self._cache is not None
        return CacheKeySpace(
            self.space_for(model, max_model_len),
            role=role,
            transfer_dtype=self._embed_dtype,
            storage_dtype=self._cache.cache.dtype,
            namespace=self._cache.cache.namespace,
        )

    def _cached_result(self, lookup: Lookup, miss: EmbedResult | None, model: str) -> EmbedResult:
        """Hits and misses in input order; the hits count as inputs served."""
        result = lookup.assemble(miss, model)
        if self._telemetry is not None:
            self._telemetry.cache(model, len(lookup.hit_positions), len(lookup.miss_texts))
        if self._dimension is None:
            self._dimension = lookup.dim
        return result

    def _apply_kind(self, items: list[str], kind: Kind, model: str) -> list[str]:
        if kind == "raw":
            return items
        instr = self._instructions_for(model)
        if kind == "query":
            return instr.apply_query(items)
        if kind == "document":
            return instr.apply_document(items)
        raise InvalidInputError(f"kind must be 'raw', 'query' or 'document', got {kind!r}")

    @staticmethod
    def _validate(texts: object) -> list[str]:
        return validate_texts(texts)

    @staticmethod
    def _validate_query(text: object) -> str:
        if not isinstance(text, str):
            what = "None" if text is None else f"a {type(text).__name__}"
            raise InvalidInputError(
                f"embed_query() takes one string, got {what}. For several texts use embed()."
            )
        return text

    def _truncation_limit(self, max_model_len: int | None) -> int | None:
        """Tokens an input may have: max_model_len - 1 (vLLM issue 29496), or None."""
        if max_model_len is None or max_model_len < 2:
            return None
        return max_model_len - 1

    def _plan(self, inputs: list[str], max_model_len: int | None) -> EmbedPlan:
        limit = self._truncation_limit(max_model_len)
        suspects: list[int] = []
        if limit is not None and inputs and max(map(len, inputs)) * 4 + 2 >= limit:
            # Each token covers at least one UTF-8 byte, plus at most 2 special tokens:
            # an input with bytes + 2 < limit cannot exceed the limit. Cheap len() first.
            for i, text in enumerate(inputs):
                if len(text) * 4 + 2 >= limit and len(text.encode("utf-8")) + 2 >= limit:
                    suspects.append(i)
        tpt = limit if (self._truncate == "end" and limit is not None) else None
        batches = plan_batches(inputs, self._batch_size, self._max_tokens, token_cap=limit)
        return EmbedPlan(inputs, batches, tpt, suspects, limit)

    def _context_error(self, index: int, count: int, limit: int, url: str) -> ContextLengthError:
        return ContextLengthError(
            f"Input {index} has {count} tokens; the client allows at most {limit} "
            f"(max_model_len {limit + 1} minus one, see vLLM issue 29496) for the model on "
            f"{url}. Shorten it, or use truncate='end' (the default) to let the server cut it.",
            url=url,
            status_code=400,
            body=None,
            max_model_len=limit + 1,
            input_index=index,
        )

    @staticmethod
    def _estimate_too_long(text: str, limit: int) -> bool:
        """Fallback when the server has no /tokenize: about 4 UTF-8 bytes per token."""
        return math.ceil(len(text.encode("utf-8")) / 4) + 2 > limit

    def _multivector_plan(self, inputs: list[str], max_model_len: int | None) -> EmbedPlan:
        """The embed plan, in batches of at most ``MAX_BATCH`` texts (big answers)."""
        plan = self._plan(inputs, max_model_len)
        size = min(self._batch_size, MAX_BATCH)
        batches = plan_batches(inputs, size, self._max_tokens, token_cap=plan.limit)
        return EmbedPlan(inputs, batches, plan.truncate_prompt_tokens, plan.suspects, plan.limit)

    def _chat_result(
        self, rows: list[npt.NDArray[np.float32]], url: str
    ) -> npt.NDArray[np.float32]:
        """The conversations' vectors as one array (client-side dimensions / normalise)."""
        widths = {int(r.shape[0]) for r in rows}
        if len(widths) != 1:
            raise VectorWidthError(f"{url} returned vectors of widths {sorted(widths)}.", url=url)
        return self._postprocess(np.stack(rows).astype(np.float32, copy=False), url)

    def _messages_space(self, model: str) -> CacheKeySpace:
        """The cache space of conversations: the raw texts' settings, role ``messages``."""
        return self._cache_space("messages", model, None)

    def _score_spans(self, n: int) -> list[tuple[int, int]]:
        """Batches of a rerank / score over ``n`` documents (``batch_size`` each)."""
        size = self._batch_size
        return [(start, min(start + size, n)) for start in range(0, n, size)]

    # ------------------------------------------------------------- assembly
    def _prepare(
        self, items: list[str], kind: Kind, model: str, max_model_len: int | None
    ) -> EmbedPlan:
        """What one embed call sends: instructions applied (``kind``), batches planned.

        The twins' ``_embed_plan`` runs the plan. A cache works before this: the twins'
        ``_embed_cached`` looks the raw texts up (under `_cache_space`) and sends only the
        unique misses through ``_embed_items``, which calls this.
        """
        return self._plan(self._apply_kind(items, kind, model), max_model_len)

    def _finish(
        self, plan: EmbedPlan, out: Output, truncated: list[int], model: str
    ) -> EmbedResult:
        """The result of a plan whose batches all landed in ``out``."""
        raw = out.result()
        if self._wire_width is None and raw.shape[0]:
            self._wire_width = int(raw.shape[1])
        vectors = self._postprocess(raw, out.url)
        return self._result(
            vectors, truncated, out.prompt_tokens, model, exact=self._truncation_exact(plan)
        )

    def _output(self, n: int) -> Output:
        return Output(n, self._wire_width)

    def _postprocess(self, out: npt.NDArray[np.float32], url: str) -> npt.NDArray[np.float32]:
        """Client-side Matryoshka truncation and L2 normalisation (in place when possible)."""
        want = self._dimensions
        if want is not None and out.shape[1] != want:
            if out.shape[1] < want:
                raise DimensionsNotSupportedError(
                    f"dimensions={want} asked, but the model on {url} produces only "
                    f"{out.shape[1]}-dimensional vectors. Use dimensions <= {out.shape[1]}.",
                    url=url,
                    status_code=200,
                )
            if not self._client_side_dimensions:
                raise DimensionsNotSupportedError(
                    f"The server at {url} ignored dimensions={want} and returned "
                    f"{out.shape[1]} dimensions. Pass client_side_dimensions=True to truncate "
                    "and re-normalise on the client, or drop dimensions=...",
                    url=url,
                    status_code=200,
                )
            out = np.ascontiguousarray(out[:, :want])
            l2_normalize(out, in_place=True)
        elif self._normalize:
            l2_normalize(out, in_place=True)
        return out

    def _wants_token_counts(self, plan: EmbedPlan) -> bool:
        """True when the plan's long inputs should be counted with ``/tokenize``."""
        return (
            bool(plan.suspects)
            and plan.limit is not None
            and self._count_truncated == "exact"
            and self._pool.first().tokenize_supported is not False
        )

    def _judge_truncation(self, plan: EmbedPlan, counts: Sequence[int | None]) -> list[int]:
        """Indices of the plan's long inputs that exceed the limit.

        ``counts`` holds the exact token count of each suspect, or None where unknown (the
        length estimate is used then, unless ``count_truncated="off"``). With
        ``truncate="error"`` an exact count over the limit raises ContextLengthError.
        """
        if plan.limit is None or self._count_truncated == "off":
            return []
        limit = plan.limit
        truncated: list[int] = []
        for index, count in zip(plan.suspects, counts, strict=True):
            text = plan.inputs[index]
            too_long = count > limit if count is not None else self._estimate_too_long(text, limit)
            if not too_long:
                continue
            if self._truncate == "error" and count is not None:
                raise self._context_error(index, count, limit, self._pool.first().display_url)
            truncated.append(index)
        return truncated if self._truncate == "end" else []

    def _truncation_exact(self, plan: EmbedPlan) -> bool:
        """False when truncation was estimated or not counted (no /tokenize, or by choice)."""
        if not plan.suspects:
            return True
        return self._count_truncated == "exact" and (
            self._pool.first().tokenize_supported is not False
        )

    def _result(
        self,
        vectors: npt.NDArray[np.float32],
        truncated: list[int],
        prompt_tokens: int,
        model: str,
        *,
        exact: bool = True,
    ) -> EmbedResult:
        if vectors.shape[0] and self._dimension is None:
            self._dimension = int(vectors.shape[1])
        self.stats.add(
            inputs=int(vectors.shape[0]), truncated=len(truncated), prompt_tokens=prompt_tokens
        )
        return EmbedResult(
            vectors=vectors,
            truncated=len(truncated),
            truncated_indices=truncated,
            prompt_tokens=prompt_tokens,
            model=model,
            truncation_exact=exact,
        )

    def _empty(self, dim: int) -> EmbedResult:
        return EmbedResult(np.empty((0, dim), dtype=np.float32), 0, [], 0, self._model or "")


class Output:
    """The result array of one embed call, allocated when the first batch tells the
    dimension. Batches write their rows in place (thread-safe)."""

    def __init__(self, n: int, width: int | None = None) -> None:
        self.n = n
        #: The width the client's server answered with before (None: not known yet).
        self.width = width
        self.array: npt.NDArray[np.float32] | None = None
        self.prompt_tokens = 0
        self.url = ""
        self._lock = threading.Lock()

    def rows(self, start: int, end: int, dim: int, url: str) -> npt.NDArray[np.float32]:
        """The rows ``[start, end)`` of the result (allocating it on first use)."""
        array = self.array
        if array is None:
            if self.width is not None and dim != self.width:
                raise VectorWidthError(
                    f"{url} returned {dim}-wide vectors where this client's earlier answers "
                    f"were {self.width} wide. A gateway that ignores encoding_format (and "
                    "re-reads the vectors) or a model swapped behind the URL does this; "
                    "nothing was cached or written. Check what sits between the client and "
                    "vLLM, or create a new client if the model changed on purpose.",
                    url=url,
                )
            with self._lock:
                if self.array is None:
                    self.array = np.empty((self.n, dim), dtype=np.float32)
                array = self.array
        if array.shape[1] != dim:
            raise VectorWidthError(
                f"{url} returned {dim}-dimensional vectors where earlier batches had "
                f"{array.shape[1]}. All base URLs must serve the same model.",
                url=url,
            )
        return array[start:end]

    def put(self, start: int, end: int, vectors: npt.NDArray[Any], url: str) -> None:
        """Copy decoded vectors into place (casting float16 / big-endian to float32)."""
        self.rows(start, end, int(vectors.shape[1]), url)[:] = vectors

    def done(self, prompt_tokens: int, url: str) -> None:
        """Record one finished batch."""
        with self._lock:
            self.prompt_tokens += prompt_tokens
            self.url = url

    def result(self) -> npt.NDArray[np.float32]:
        """The filled array."""
        assert self.array is not None, "no batch completed"
        return self.array


class Placement:
    """``Request.place`` for a binary batch: once the headers are in, the rows of ``out``
    to read the body into (when it is little-endian float32 in vLLM's usual layout, see
    :func:`vllm_embed._wire.direct_layout`, or a ``bytes_only`` body of float32 rows when
    ``unframed``: :func:`vllm_embed._wire.unframed_layout`)."""

    __slots__ = ("framed", "layout", "n", "out", "start", "unframed", "url")

    def __init__(self, out: Output, start: int, n: int, url: str, *, unframed: bool) -> None:
        self.out, self.start, self.n, self.url = out, start, n, url
        self.unframed = unframed
        self.layout: Layout | None = None
        self.framed = True

    def __call__(self, headers: Mapping[str, str]) -> memoryview | None:
        content_type, metadata = headers.get("content-type", ""), headers.get("metadata")
        layout = direct_layout(content_type, metadata, self.n)
        if layout is None and self.unframed:
            layout = unframed_layout(content_type, metadata, headers.get("content-length"), self.n)
            self.framed = False
        if layout is None:
            return None
        self.layout = layout
        rows = self.out.rows(self.start, self.start + self.n, layout.dim, self.url)
        return memoryview(rows.data).cast("B")
