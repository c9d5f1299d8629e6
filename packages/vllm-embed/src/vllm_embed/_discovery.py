"""What the client learns from the server: the model list (``/v1/models``), the model to
use and its context length, and token counts (vLLM's ``/tokenize``). Pure functions; the
requests are steps in :mod:`vllm_embed._steps`."""

from __future__ import annotations

import json
from typing import Any

from vllm_embed._endpoints import Endpoint
from vllm_embed._errors import APIError, ConfigValueError
from vllm_embed._types import ModelInfo

__all__ = ["choose_model", "max_len_from", "parse_models", "tokenize_body", "tokenize_count"]


def parse_models(doc: Any, url: str) -> list[ModelInfo]:
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, list):
        raise APIError(
            f"{url}/models did not return an OpenAI-style model list. Check base_url.",
            url=url,
        )
    out = []
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        mml = item.get("max_model_len")
        out.append(
            ModelInfo(
                id=item["id"],
                max_model_len=int(mml) if isinstance(mml, int) and mml > 0 else None,
                owned_by=item.get("owned_by") if isinstance(item.get("owned_by"), str) else None,
            )
        )
    return out


def choose_model(models: list[ModelInfo], url: str) -> str:
    if len(models) == 1:
        return models[0].id
    if not models:
        raise ConfigValueError(f"The server at {url} serves no models. Pass model=... explicitly.")
    names = ", ".join(m.id for m in models)
    raise ConfigValueError(
        f"No model given and the server at {url} serves several: {names}. Pass model=<one of them>."
    )


def max_len_from(models: list[ModelInfo], model: str) -> int | None:
    for info in models:
        if info.id == model:
            return info.max_model_len
    return None


def tokenize_body(model: str, text: str) -> bytes:
    return json.dumps(
        {"model": model, "prompt": text, "add_special_tokens": True}, ensure_ascii=False
    ).encode("utf-8")


def tokenize_count(ep: Endpoint, status: int, content: bytes) -> int | None:
    """The token count in a ``/tokenize`` answer; None (and remembered) if unusable."""
    if status == 200:
        try:
            doc = json.loads(content)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            count = doc.get("count")
            if count is None and isinstance(doc.get("tokens"), list):
                count = len(doc["tokens"])
            if isinstance(count, int):
                ep.tokenize_supported = True
                return count
    ep.tokenize_supported = False
    return None
