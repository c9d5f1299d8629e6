"""``VLLMDocumentEmbedder``: a Haystack component embedding Documents."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

from haystack import Document, component
from tqdm import tqdm

from vllm_embed import EmbedResult

from ._settings import VLLMEmbedderSettings

__all__ = ["VLLMDocumentEmbedder"]

#: Texts given to the core per progress-bar step when the bar is on. The core pipelines
#: requests within a step; a step boundary waits for the step's last batch.
PROGRESS_STEP = 1024


@component
class VLLMDocumentEmbedder(VLLMEmbedderSettings):
    """Embeds Documents with your own vLLM (or any OpenAI-compatible) server.

    Each Document's text is ``prefix + separator.join(meta values + [content]) + suffix``
    (as Haystack's own embedders build it: ``meta_fields_to_embed`` in order, missing or
    ``None`` values skipped, ``None`` content as ``""``), with the model's document
    instruction applied by the core. The whole list goes to the core client, which
    splits it into requests by count and token budget and keeps several in flight.
    A failed request raises the core's named error (nothing is skipped silently).

    Example:
        .. code-block:: python

            from haystack import Document
            from haystack_integrations.components.embedders.vllm_embed import (
                VLLMDocumentEmbedder,
            )

            embedder = VLLMDocumentEmbedder(base_url="http://127.0.0.1:8000/v1")
            docs = embedder.run([Document(content="Jupiter is the largest planet.")])

    Outputs: ``documents`` (copies with ``embedding`` set) and ``meta`` (``model``,
    ``usage``, ``truncated``: how many texts the server cut to fit its context).
    """

    def __init__(
        self,
        *,
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        progress_bar: bool = True,
        **settings: Any,
    ) -> None:
        """``settings``: see :class:`VLLMTextEmbedder` (``base_url``, ``model``, ``api_key``,
        ``prefix``, ``suffix``, ``instructions``, ``batch_size``, ``cache``, ...)."""
        # (not super(): @component returns a new class, which zero-argument super() rejects)
        VLLMEmbedderSettings.__init__(self, **settings)
        self.meta_fields_to_embed = list(meta_fields_to_embed or [])
        self.embedding_separator = embedding_separator
        self.progress_bar = progress_bar

    def _extra_to_dict(self) -> dict[str, Any]:
        return {
            "meta_fields_to_embed": self.meta_fields_to_embed,
            "embedding_separator": self.embedding_separator,
            "progress_bar": self.progress_bar,
        }

    def _texts(self, documents: Any) -> list[str]:
        if not isinstance(documents, list) or not all(isinstance(d, Document) for d in documents):
            raise TypeError(
                f"{type(self).__name__} expects a list of Documents; "
                "to embed a string use VLLMTextEmbedder."
            )
        texts = []
        for doc in documents:
            values = [
                str(doc.meta[key])
                for key in self.meta_fields_to_embed
                if doc.meta.get(key) is not None
            ]
            body = self.embedding_separator.join([*values, doc.content or ""])
            texts.append(self.prefix + body + self.suffix)
        return texts

    def _steps(self, texts: list[str]) -> Iterator[list[str]]:
        if not self.progress_bar:
            yield texts
            return
        with tqdm(total=len(texts), desc="Calculating embeddings", unit="doc") as bar:
            for start in range(0, len(texts), PROGRESS_STEP):
                step = texts[start : start + PROGRESS_STEP]
                yield step
                bar.update(len(step))

    @staticmethod
    def _output(documents: list[Document], results: Sequence[EmbedResult]) -> dict[str, Any]:
        vectors: list[list[float]] = []
        for result in results:
            vectors.extend(result.vectors.tolist())
        embedded = [
            dataclasses.replace(d, embedding=v) for d, v in zip(documents, vectors, strict=True)
        ]
        tokens = sum(r.prompt_tokens for r in results)
        meta: dict[str, Any] = {
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            "truncated": sum(r.truncated for r in results),
        }
        if results:
            meta["model"] = results[0].model
        return {"documents": embedded, "meta": meta}

    @component.output_types(documents=list[Document], meta=dict[str, Any])
    def run(self, documents: list[Document]) -> dict[str, Any]:
        """Embed ``documents``; returns copies with ``embedding`` set, in input order.

        Raises:
            TypeError: ``documents`` is not a list of Documents.
        """
        texts = self._texts(documents)
        if not texts:
            return {"documents": [], "meta": {}}
        client = self.client
        results = [client.embed_with_info(step, kind="document") for step in self._steps(texts)]
        return self._output(documents, results)

    @component.output_types(documents=list[Document], meta=dict[str, Any])
    async def run_async(self, documents: list[Document]) -> dict[str, Any]:
        """Async :meth:`run` (one core async client per event loop)."""
        texts = self._texts(documents)
        if not texts:
            return {"documents": [], "meta": {}}
        client = self.async_client
        results = [
            await client.embed_with_info(step, kind="document") for step in self._steps(texts)
        ]
        return self._output(documents, results)
