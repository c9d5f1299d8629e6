"""Transports: how one HTTP request reaches a server. Chosen once per endpoint.

::

    Request(method, url, body, place) --Transport.send()--> Reply(status, headers, content)

The client decides *what* to send and what an answer means (:mod:`vllm_embed._base`,
:mod:`vllm_embed._wire`); a transport only moves bytes. Two of them:

``httpx``  (:class:`HttpxTransport`, :class:`AsyncHttpxTransport`) handles everything:
           https, proxies, a caller's own ``http_client=``, test mocks (respx).
``lean``   (:class:`LeanTransport`, :class:`AsyncLeanTransport`) plain sockets speaking a
           small HTTP/1.1 (:mod:`._http11`, sans I/O, shared by both), keep-alive; a vLLM
           ``bytes`` answer is read straight into the result array (``Request.place``).
           Several times less CPU per request than httpx or ``http.client``.

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
from vllm_embed._transports._lean import AsyncLeanTransport, LeanTransport

__all__ = [
    "AsyncHttpxTransport",
    "AsyncLeanTransport",
    "AsyncTransport",
    "HttpxTransport",
    "LeanTransport",
    "Placer",
    "Reply",
    "Request",
    "Transport",
    "TransportName",
    "choose_transport",
]
