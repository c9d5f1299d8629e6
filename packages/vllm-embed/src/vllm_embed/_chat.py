"""Chat-style and image inputs for ``/v1/embeddings`` (``messages``; no I/O but reading
image files).

vLLM embeds a conversation (``{"model", "messages": [...]}``) by rendering it with the
model's chat template (or the server's ``--chat-template``), so multimodal embedding models
(Jina v4, Qwen-VL based, VLM2Vec, ...) can take images as ``image_url`` content parts.
Local images go as ``data:`` URIs. One conversation per request (the form every vLLM
version takes), several requests in flight.

Images may be given as a path (``str`` / ``PathLike`` to a file), ``bytes``, a PIL image
(anything with ``save(fp, format=...)``), or an ``http(s)://`` / ``data:`` URL.
"""

from __future__ import annotations

import base64
import io
import json
import mimetypes
import os
from collections.abc import Generator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from vllm_embed._errors import InputNotSupportedError, InvalidInputError
from vllm_embed._http_errors import error_from_response
from vllm_embed._wire import decode_response, parse_error_body, rejects_encoding

__all__ = [
    "chat_steps",
    "check_conversations",
    "image_conversation",
    "image_part",
]

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"RIFF", "image/webp"),
    (b"BM", "image/bmp"),
)
_json_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _sniff(data: bytes) -> str:
    for magic, mime in _MAGIC:
        if data.startswith(magic) and (mime != "image/webp" or data[8:12] == b"WEBP"):
            return mime
    raise InvalidInputError(
        "The image bytes are not PNG, JPEG, GIF, WebP or BMP. Pass an image file's bytes, "
        "its path, a PIL image or an http(s):// URL."
    )


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def image_part(image: Any) -> dict[str, Any]:
    """An ``image_url`` content part for one image (see the module docstring)."""
    if isinstance(image, str) and image.startswith(("http://", "https://", "data:image/")):
        return {"type": "image_url", "image_url": {"url": image}}
    if isinstance(image, str | os.PathLike):
        path = Path(os.fspath(image)).expanduser()
        if not path.is_file():
            raise InvalidInputError(
                f"Image {os.fspath(image)!r} is not a file (nor an http(s):// or data: URL)."
            )
        data = path.read_bytes()
        mime = mimetypes.guess_type(path.name)[0] or _sniff(data)
        return {"type": "image_url", "image_url": {"url": _data_uri(data, mime)}}
    if isinstance(image, bytes | bytearray | memoryview):
        data = bytes(image)
        return {"type": "image_url", "image_url": {"url": _data_uri(data, _sniff(data))}}
    if callable(getattr(image, "save", None)):  # a PIL image
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return {
            "type": "image_url",
            "image_url": {"url": _data_uri(buffer.getvalue(), "image/png")},
        }
    raise InvalidInputError(
        f"Cannot use a {type(image).__name__} as an image: pass a path, bytes, a PIL image "
        "or an http(s):// URL."
    )


def image_conversation(image: Any, text: str | None = None) -> list[dict[str, Any]]:
    """One user message holding the image (and ``text`` after it, when given)."""
    content: list[dict[str, Any]] = [image_part(image)]
    if text:
        content.append({"type": "text", "text": text})
    return [{"role": "user", "content": content}]


def check_conversations(conversations: object) -> list[list[dict[str, Any]]]:
    """A list of conversations, each a list of ``{"role", "content"}`` messages."""
    if isinstance(conversations, str | bytes) or not isinstance(conversations, Sequence):
        raise InvalidInputError(
            "embed_messages() takes a list of conversations (each a list of "
            '{"role": ..., "content": ...} messages).'
        )
    out = []
    for i, conversation in enumerate(conversations):
        if isinstance(conversation, Mapping) or not isinstance(conversation, Sequence):
            raise InvalidInputError(
                f"Conversation {i} is not a list of messages; wrap a single message in a list."
            )
        messages = []
        for j, message in enumerate(conversation):
            if (
                not isinstance(message, Mapping)
                or "role" not in message
                or "content" not in message
            ):
                raise InvalidInputError(
                    f"Message {j} of conversation {i} needs 'role' and 'content' keys."
                )
            messages.append(dict(message))
        if not messages:
            raise InvalidInputError(f"Conversation {i} has no messages.")
        out.append(messages)
    return out


def conversation_key(messages: list[dict[str, Any]]) -> str:
    """The conversation as canonical JSON: the embedding cache's key text (an image's
    data: URI, so its bytes, is part of it)."""
    return json.dumps(messages, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def chat_body(model: str, messages: list[dict[str, Any]], encoding: str, embed_dtype: str) -> bytes:
    payload: dict[str, Any] = {"model": model, "messages": messages, "encoding_format": encoding}
    if encoding in ("bytes", "bytes_only"):
        payload["endianness"] = "little"
        if embed_dtype != "float32":
            payload["embed_dtype"] = embed_dtype
    return _json_encode(payload).encode("utf-8")


def unsupported(status: int, body: Any, url: str, request_id: str | None) -> Exception | None:
    """The named error for a server that cannot take this conversation, or None."""
    text = (body if isinstance(body, str) else json.dumps(body)).lower()
    if status not in (400, 422, 501):
        return None
    if "chat template" in text or "chat_template" in text:
        why = (
            "has no chat template for this model. Start vLLM with --chat-template FILE "
            "(or use a model that ships one)"
        )
    elif "multimodal" in text or "image" in text:
        why = (
            "does not take image inputs with this model. Serve a multimodal embedding "
            "model (e.g. jinaai/jina-embeddings-v4-vllm-retrieval)"
        )
    else:
        return None
    return InputNotSupportedError(
        f"The server at {url} {why}.", url=url, status_code=status, body=body, request_id=request_id
    )


def chat_steps(
    post: Any, model: str, messages: list[dict[str, Any]], embed_dtype: str
) -> Generator[Any, Any, npt.NDArray[np.float32]]:
    """One conversation's vector (the endpoint's negotiated encoding, as for texts)."""
    asked: dict[str, str] = {}

    def request_for(ep: Any) -> tuple[str, bytes]:
        encoding = ep.encoding.current(ep.display_url, 1)
        asked[ep.base_url] = encoding
        return ep.embeddings_url, chat_body(model, messages, encoding, embed_dtype)

    for _ in range(6):
        ep, reply = yield from post(request_for)
        encoding = asked[ep.base_url]
        if reply.status == 200:
            decoded = decode_response(
                content=reply.content,
                content_type=reply.headers.get("content-type", ""),
                metadata_header=reply.headers.get("metadata"),
                n_inputs=1,
                url=ep.display_url,
                embed_dtype=embed_dtype,
            )
            if decoded.encoding != encoding:
                ep.encoding.reject(encoding)
            vector: npt.NDArray[np.float32] = np.asarray(decoded.vectors[0], dtype=np.float32)
            return vector
        body = parse_error_body(reply.content)
        if rejects_encoding(reply.status, body, encoding):
            ep.encoding.reject(encoding)
            continue
        request_id = reply.headers.get("x-request-id")
        named = unsupported(reply.status, body, ep.display_url, request_id)
        if named is not None:
            raise named
        raise error_from_response(
            reply.status, body, url=ep.display_url, request_id=request_id, model=model
        )
    raise RuntimeError("chat negotiation did not settle")  # pragma: no cover
