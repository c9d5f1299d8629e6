"""``VLLMTextEmbedder``: a Haystack component embedding one query text."""

from __future__ import annotations

from typing import Any

from haystack import component

from vllm_embed import EmbedResult

from ._settings import VLLMEmbedderSettings

__all__ = ["VLLMTextEmbedder"]


@component
class VLLMTextEmbedder(VLLMEmbedderSettings):
    """Embeds a query with your own vLLM (or any OpenAI-compatible) server.

    The text gets the model's query instruction (the core's presets by model name, or
    ``instructions=...``; ``None`` turns it off), then ``prefix`` / ``suffix``. Pair it
    with :class:`VLLMDocumentEmbedder` (same settings) in the indexing pipeline.

    Example:
        .. code-block:: python

            from haystack_integrations.components.embedders.vllm_embed import VLLMTextEmbedder

            embedder = VLLMTextEmbedder(base_url="http://127.0.0.1:8000/v1", model="minilm")
            print(len(embedder.run("Which planet is the largest?")["embedding"]))

    Outputs: ``embedding`` (``list[float]``) and ``meta`` (``model``, ``usage``,
    ``truncated``: 1 when the server cut the text to fit its context).
    """

    def _text(self, text: Any) -> str:
        if not isinstance(text, str):
            raise TypeError(
                f"{type(self).__name__} expects a string, got {type(text).__name__}; "
                "to embed Documents use VLLMDocumentEmbedder."
            )
        return self.prefix + text + self.suffix

    @staticmethod
    def _output(result: EmbedResult) -> dict[str, Any]:
        meta = {
            "model": result.model,
            "usage": {"prompt_tokens": result.prompt_tokens, "total_tokens": result.prompt_tokens},
            "truncated": result.truncated,
        }
        embedding: list[float] = result.vectors[0].tolist()
        return {"embedding": embedding, "meta": meta}

    @component.output_types(embedding=list[float], meta=dict[str, Any])
    def run(self, text: str) -> dict[str, Any]:
        """Embed ``text`` as a query.

        Returns:
            ``{"embedding": list[float], "meta": {...}}``.
        """
        result = self.client.embed_with_info([self._text(text)], kind="query")
        return self._output(result)

    @component.output_types(embedding=list[float], meta=dict[str, Any])
    async def run_async(self, text: str) -> dict[str, Any]:
        """Async :meth:`run` (one core async client per event loop)."""
        result = await self.async_client.embed_with_info([self._text(text)], kind="query")
        return self._output(result)
