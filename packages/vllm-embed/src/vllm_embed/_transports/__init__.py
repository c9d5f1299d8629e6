"""Transports: how one HTTP request reaches a server. Chosen once per endpoint.

::

    Request(method, url, body, place) --Transport.send()--> Reply(status, headers, content)

The client decides *what* to send and what an answer means (:mod:`vllm_embed._base`,
:mod:`vllm_embed._wire`); a transport only moves bytes. Two of them:

``httpx``  (:class:`HttpxTransport`, :class:`AsyncHttpxTransport`) handles everything:
           https, proxies, a caller's own ``http_client=``, test mocks (respx).
``lean``   (:class:`LeanTransport`) the standard library's ``http.client``, one keep-alive
           connection per worker thread and host; a vLLM ``bytes`` answer is read straight
           into the result array (``Request.place``). About 4x less CPU per vector than
           httpx. The async twin runs it in worker threads (:class:`InThreads`).

:func:`choose_transport` is the one rule that picks between them. Both raise the same
``httpx.TransportError`` subclasses for network failures; the client turns those into its
own errors in one place (``BaseEmbeddingClient._transport_error``).
"""

from __future__ import annotations

from vllm_embed._transports._base import (
    AsyncTransport,
    Placer,
    Reply,
    Request,
    Transport,
    TransportName,
    choose_transport,
)
from vllm_embed._transports._httpx import AsyncHttpxTransport, HttpxTransport
from vllm_embed._transports._lean import InThreads, LeanTransport

__all__ = [
    "AsyncHttpxTransport",
    "AsyncTransport",
    "HttpxTransport",
    "InThreads",
    "LeanTransport",
    "Placer",
    "Reply",
    "Request",
    "Transport",
    "TransportName",
    "choose_transport",
]
